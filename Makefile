# gatehouse — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
DEBUG_BIN = $$(swift build --show-bin-path)/gatehouse
RELEASE_BIN = $$(swift build -c release --show-bin-path)/gatehouse

.PHONY: all deps venv build release test unit e2e demo bench fuzz deploy-check clean

all: build

deps:
	@scripts/install-deps.sh

venv: $(VENV)/.installed
$(VENV)/.installed: Tests/e2e/requirements.txt deploy/example/requirements.txt Tests/deploy/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r Tests/e2e/requirements.txt \
		-r deploy/example/requirements.txt -r Tests/deploy/requirements.txt
	touch $@

build: deps
	swift build

release: deps
	swift build -c release

## test: everything — a check that nothing refers outside the repository, Swift unit tests, the fuzz corpus replayed and each fuzzer run briefly,
## the deploy/ checks, then the end-to-end suite against the real binary, once with the
## upstream on uvicorn's httptools parser and once on h11 (last, so its closing line is the
## summary).
test: deps venv
	scripts/check-standalone.sh
	swift build --build-tests
	swift test --skip-build
	HTTP1_PROBE=$$(swift build --show-bin-path)/http1-probe $(PY) -m pytest Tests/differential -q -p no:cacheprovider
	FUZZ_REPLAY_SCRATCH=.build scripts/fuzz.sh --replay
	scripts/fuzz.sh $(or $(TEST_FUZZ_SECONDS),15)
	$(PY) -m pytest Tests/deploy -q -p no:cacheprovider
	E2E_UPSTREAM_HTTP=httptools E2E_UPSTREAM_SOCKET=unix GATEHOUSE_BIN=$(DEBUG_BIN) $(PY) -m pytest Tests/e2e -q -p no:cacheprovider
	GATEHOUSE_BIN=$(DEBUG_BIN) $(PY) -m pytest Tests/e2e -q -p no:cacheprovider

unit: deps
	swift test

e2e: deps venv
	swift build
	GATEHOUSE_BIN=$(DEBUG_BIN) $(PY) -m pytest Tests/e2e -q -p no:cacheprovider

## demo: the example FastAPI app with gatehouse in front of it (Ctrl-C stops both).
demo: deps venv release
	GATEHOUSE_BIN=$(RELEASE_BIN) scripts/demo.sh

## bench: wrk through nginx and through gatehouse, same upstream, same run.
bench: venv release
	@scripts/install-deps.sh bench
	$(VENV)/bin/pip install -q --disable-pip-version-check -r bench/requirements.txt
	swift build -c release --product jose-bench
	$$(swift build -c release --show-bin-path)/jose-bench
	bench/jose_instructions.sh
	GATEHOUSE_BIN=$(RELEASE_BIN) bench/run.sh
	GATEHOUSE_BIN=$(RELEASE_BIN) $(VENV)/bin/python bench/memory.py

## fuzz: libFuzzer on the JWT and JWKS parsers (FUZZ_SECONDS per target, default 60).
fuzz: deps
	scripts/fuzz.sh $(or $(FUZZ_SECONDS),60)

## deploy-check: lint and validate deploy/ (Dockerfiles, Compose, Kubernetes, systemd, shell scripts).
deploy-check: deps venv
	$(PY) -m pytest Tests/deploy -q -p no:cacheprovider

clean:
	rm -rf .build .build-fuzz .build-fuzzreplay $(VENV)
