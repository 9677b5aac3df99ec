# gatehouse — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
DEBUG_BIN = $$(swift build --show-bin-path)/gatehouse
RELEASE_BIN = $$(swift build -c release --show-bin-path)/gatehouse

.PHONY: all deps venv build release test unit e2e demo bench fuzz deploy-check soak chaos clean

all: build

deps:
	@scripts/install-deps.sh

venv: $(VENV)/.installed
$(VENV)/.installed: Tests/e2e/requirements.txt deploy/example/requirements.txt Tests/deploy/requirements.txt Tests/soak/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r Tests/e2e/requirements.txt \
		-r deploy/example/requirements.txt -r Tests/deploy/requirements.txt -r Tests/soak/requirements.txt
	touch $@

# The app-side package is installed into the venv from its source (Tests/e2e/requirements.txt);
# a change to it reinstalls.
PKG := python/gatehouse-fastapi
$(VENV)/.installed: $(PKG)/pyproject.toml $(PKG)/README.md $(wildcard $(PKG)/src/gatehouse_fastapi/*)

build: deps
	swift build

release: deps
	swift build -c release

## test: everything — a check that nothing refers outside the repository, Swift unit tests, the fuzz corpus replayed and each fuzzer run briefly,
## the deploy/ checks, the gatehouse-fastapi wheel built and its unit tests, a 60-second soak and the quick chaos pass (Tests/soak, debug binary, so CI keeps
## the harness alive), then the end-to-end suite against the real binary, once with the
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
	$(VENV)/bin/pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w .build/wheels ./$(PKG)
	$(PY) -m pytest $(PKG)/tests -q -p no:cacheprovider
	SOAK_SECONDS=60 SOAK_SSE_SECONDS=5-20 SOAK_RSS_GROWTH_PERCENT=10 GATEHOUSE_BIN=$(DEBUG_BIN) $(PY) Tests/soak/soak.py
	CHAOS_QUICK=1 GATEHOUSE_BIN=$(DEBUG_BIN) $(PY) Tests/soak/chaos.py
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
	$(PY) $(PKG)/bench.py

## fuzz: libFuzzer on the JWT, JWKS, HTTP/1.1 request and route-rules parsers (FUZZ_SECONDS per target, default 60;
## FUZZ_SANITIZE=address,undefined, FUZZ_KEEP=1, FUZZ_TARGETS: see scripts/fuzz.sh).
fuzz: deps
	scripts/fuzz.sh $(or $(FUZZ_SECONDS),60)

## deploy-check: lint and validate deploy/ (Dockerfiles, Compose, Kubernetes, systemd, shell scripts).
deploy-check: deps venv
	$(PY) -m pytest Tests/deploy -q -p no:cacheprovider

## soak: issue #16's mixed workload (valid tokens of all five algorithms, Better Auth sessions as
## cookie and bearer, refusals, uploads and downloads up to 64 MiB, SSE, WebSockets, key rotation every 60 s) against the release binary for
## SOAK_SECONDS (default 600); pass table, report and plot in Tests/soak/reports/.
soak: deps venv release
	GATEHOUSE_BIN=$(RELEASE_BIN) SOAK_SECONDS=$(or $(SOAK_SECONDS),600) $(PY) Tests/soak/soak.py

## chaos: the soak workload at a lower rate while faults are injected (upstream killed, issuer down,
## 500 / garbage / 101 keys, kid flood, late upstream, idle + slowloris connections, abandoned 1 GiB
## upload, then all of them at once for 60 s, SIGTERM), each expected outcome asserted;
## CHAOS_QUICK=1 for the 3-minute subset.
chaos: deps venv release
	GATEHOUSE_BIN=$(RELEASE_BIN) $(PY) Tests/soak/chaos.py

clean:
	rm -rf .build .build-fuzz .build-fuzz-* .build-fuzzreplay $(VENV)
