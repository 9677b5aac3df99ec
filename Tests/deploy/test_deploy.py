"""Static checks of deploy/: what a user of the Docker image, the Compose stack, the Kubernetes
manifests and the systemd unit relies on. No container engine or cluster is needed: Dockerfiles go
through hadolint, manifests through kubernetes-validate (bundled schemas), the unit through
systemd-analyze, shell scripts through shellcheck, and the rest is checked structurally."""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from deploy_support import (
    COMPOSE,
    DEPLOY,
    DOCKER,
    KUBERNETES,
    REPO,
    SYSTEMD,
    interpolate,
    load_yaml_documents,
    parse_env_file,
    run,
    seconds,
    tool,
)

@pytest.fixture(scope="session")
def documented_variables() -> set[str]:
    """Every GATEHOUSE_* variable the README documents, plus BETTER_AUTH_URL."""
    names = set(re.findall(r"`(GATEHOUSE_[A-Z0-9_]+)`", (REPO / "README.md").read_text()))
    assert len(names) > 20, "README's configuration reference not found"
    return names | {"BETTER_AUTH_URL"}


DOCKERFILES = [DOCKER / "Dockerfile", COMPOSE / "auth" / "Dockerfile", COMPOSE / "api" / "Dockerfile"]


# ------------------------------------------------------------------------------------------------
# Dockerfiles
# ------------------------------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    current = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, rest = current.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    return instructions


def stages(path: Path) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in dockerfile_instructions(path):
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def build_args(path: Path) -> dict[str, str]:
    args = {}
    for keyword, rest in dockerfile_instructions(path):
        if keyword == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name] = value
    return args


def base_image(stage: list[tuple[str, str]], args: dict[str, str]) -> str:
    image = stage[0][1].split()[0]
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)


def exec_form(rest: str) -> list[str]:
    value = json.loads(rest)
    assert isinstance(value, list), f"not exec form: {rest}"
    return value


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_hadolint_clean(dockerfile: Path):
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.fail("hadolint not found: pip install -r Tests/deploy/requirements.txt")
    result = run([hadolint, "--no-color", "--failure-threshold", "style", str(dockerfile)])
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_gatehouse_image_build_stage():
    dockerfile = DOCKER / "Dockerfile"
    build, _runtime = stages(dockerfile)
    args = build_args(dockerfile)
    image = base_image(build, args)
    match = re.fullmatch(r"swift:(\d+)\.(\d+)(?:\.(\d+))?-bookworm", image)
    assert match, f"build stage must be a pinned official Swift 6 bookworm image, is {image}"
    tools = re.search(r"swift-tools-version:\s*(\d+)\.(\d+)", (REPO / "Package.swift").read_text())
    assert (int(match.group(1)), int(match.group(2))) >= (int(tools.group(1)), int(tools.group(2))), (
        "the Swift image is older than Package.swift's tools version"
    )
    runs = " ".join(rest for keyword, rest in build if keyword == "RUN")
    for package in ("libcurl4-openssl-dev", "libssl-dev", "libsodium-dev", "libevent-dev", "pkg-config"):
        assert package in runs
    assert re.search(r"swift build -c release --static-swift-stdlib --product gatehouse", runs)
    # Everything the build stage copies exists (a fresh clone has no Package.resolved: globbed).
    for keyword, rest in build:
        if keyword == "COPY":
            for source in rest.split()[:-1]:
                if not source.startswith("--") and not source.endswith("*"):
                    assert (REPO / source).exists(), f"COPY source {source} missing"


def test_gatehouse_image_runtime_stage():
    dockerfile = DOCKER / "Dockerfile"
    _build, runtime = stages(dockerfile)
    assert base_image(runtime, build_args(dockerfile)) == "debian:bookworm-slim"
    instructions: dict[str, list[str]] = {}
    for keyword, rest in runtime:
        instructions.setdefault(keyword, []).append(rest)

    apt = next(rest for rest in instructions["RUN"] if "apt-get install" in rest)
    assert "--no-install-recommends" in apt and "rm -rf /var/lib/apt/lists/*" in apt
    installed = set(apt.split("--no-install-recommends", 1)[1].split("&&", 1)[0].split())
    assert installed == {"libcurl4", "libssl3", "libsodium23", "libevent-core-2.1-7", "ca-certificates"}

    user = instructions["USER"][-1]
    assert re.fullmatch(r"10001(:10001)?", user), "run as the fixed non-root uid 10001"
    assert any("--uid 10001" in rest for rest in instructions["RUN"])
    assert any(rest.startswith("--from=build") and "gatehouse" in rest for rest in instructions["COPY"])
    assert set(" ".join(instructions["EXPOSE"]).split()) == {"8080", "9901"}
    assert instructions["STOPSIGNAL"] == ["SIGTERM"]
    assert exec_form(instructions["ENTRYPOINT"][-1]) == ["gatehouse"]
    assert exec_form(instructions["CMD"][-1]) == ["serve"]
    healthcheck = instructions["HEALTHCHECK"][-1]
    assert exec_form(healthcheck.split("CMD", 1)[1].strip())[:2] == ["gatehouse", "healthcheck"]
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(instructions["ENV"])))
    assert env == {
        "GATEHOUSE_LISTEN": "0.0.0.0:8080",
        "GATEHOUSE_ADMIN_LISTEN": "0.0.0.0:9901",
        "GATEHOUSE_LOG_FORMAT": "json",
    }


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; a pattern matching a parent
    folder matches everything below it; `!` re-includes."""

    def regex(pattern: str) -> re.Pattern:
        out = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return re.compile(out + r"(?:/.*)?")

    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        if regex(body.strip("/")).fullmatch(path):
            excluded = not negate
    return excluded


def dockerignore_patterns(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_gatehouse_build_context_filter():
    patterns = dockerignore_patterns(DOCKER / "Dockerfile.dockerignore")
    tracked = run(["git", "ls-files"], cwd=REPO).stdout.split()
    needed = [
        p
        for p in tracked
        if p == "Package.swift"
        or p.startswith("Sources/")
        or re.match(r"Tests/\w+Tests/", p)
        or re.match(r"Fuzz/(Support|TokenParser|JWKSParser)/", p)
    ]
    assert len(needed) > 20
    for path in needed + ["Package.resolved"]:
        assert not dockerignore_excludes(patterns, path), f"{path} would be missing from the build"
    for path in [
        ".build/release/gatehouse",
        ".build-fuzz/x",
        ".venv/bin/python",
        ".git/HEAD",
        "deploy/compose/.env",
        "Tests/e2e/conftest.py",
        "bench/results/x.txt",
        "README.md",
    ]:
        assert dockerignore_excludes(patterns, path), f"{path} would be sent to the builder"


SOCKET_DIR = "/run/app"
SOCKET_PATH = f"{SOCKET_DIR}/uvicorn.sock"


def test_api_image_listens_on_a_unix_socket_only():
    """uvicorn --uds in a directory the image's non-root uid owns; no port, no TCP health check."""
    instructions: dict[str, list[str]] = {}
    for keyword, rest in dockerfile_instructions(COMPOSE / "api" / "Dockerfile"):
        instructions.setdefault(keyword, []).append(rest)
    assert "EXPOSE" not in instructions, "FastAPI listens on no TCP port"
    command = exec_form(instructions["CMD"][-1])
    assert command[:2] == ["uvicorn", "app:app"]
    assert command[command.index("--uds") + 1] == SOCKET_PATH
    assert "--port" not in command and "--host" not in command
    uid = instructions["USER"][-1].split(":")[0]
    assert any(
        re.search(rf"install -d -o {uid} -g \d+ -m 07\d\d {SOCKET_DIR}(\s|$)", rest) for rest in instructions["RUN"]
    ), f"{SOCKET_DIR} must be created writable by uid {uid}"
    healthcheck = exec_form(instructions["HEALTHCHECK"][-1].split("CMD", 1)[1].strip())
    assert SOCKET_PATH in healthcheck[-1] and "AF_UNIX" in healthcheck[-1]


def api_build_context() -> Path:
    """The api image's build context (docker-compose.yml: the repository root)."""
    with (COMPOSE / "docker-compose.yml").open() as handle:
        build = yaml.safe_load(handle)["services"]["api"]["build"]
    return (COMPOSE / build["context"]).resolve()


PACKAGE = "python/gatehouse-fastapi"


def test_api_build_context_filter_keeps_secrets_out():
    context = api_build_context()
    assert context == REPO.resolve(), "the api image needs deploy/example/ and python/gatehouse-fastapi/"
    patterns = dockerignore_patterns(COMPOSE / "api" / "Dockerfile.dockerignore")
    for path in ("deploy/example/app.py", "deploy/example/requirements.txt"):
        assert not dockerignore_excludes(patterns, path), f"{path} would be missing from the build"
    for path in (
        "deploy/compose/.env",
        "deploy/compose/gatehouse-identity.secret",
        ".venv/bin/python",
        ".git/HEAD",
        ".build/release/gatehouse",
        f"{PACKAGE}/tests/test_vectors.py",
        f"{PACKAGE}/build/lib/gatehouse_fastapi/__init__.py",
        f"{PACKAGE}/src/gatehouse_fastapi.egg-info/PKG-INFO",
        f"{PACKAGE}/src/gatehouse_fastapi/__pycache__/x.pyc",
        "README.md",
    ):
        assert dockerignore_excludes(patterns, path), f"{path} would be sent to the builder"
    for keyword, rest in dockerfile_instructions(COMPOSE / "api" / "Dockerfile"):
        if keyword == "COPY":
            for source in rest.split()[:-1]:
                assert (context / source).exists(), f"COPY source {source} missing (context is the repository root)"
                assert not dockerignore_excludes(patterns, source.rstrip("/")) or source == PACKAGE, source


def test_api_image_installs_the_package():
    """deploy/example/requirements.txt names the package by its path from the repository root;
    the image copies that layout, installs from it, and sends every file pip needs to build it."""
    requirements = (REPO / "deploy" / "example" / "requirements.txt").read_text().split("\n")
    assert f"./{PACKAGE}" in [line.strip() for line in requirements]
    # Tests/e2e/requirements.txt must spell it identically (pip refuses two spellings of one project).
    e2e = [line.strip() for line in (REPO / "Tests" / "e2e" / "requirements.txt").read_text().splitlines()]
    assert [line for line in e2e if PACKAGE in line and not line.startswith("#")] == [f"./{PACKAGE}"]
    instructions = dockerfile_instructions(COMPOSE / "api" / "Dockerfile")
    workdirs = [rest for keyword, rest in instructions if keyword == "WORKDIR"]
    copies = [rest.split() for keyword, rest in instructions if keyword == "COPY"]
    runs = [rest for keyword, rest in instructions if keyword == "RUN"]
    assert [PACKAGE, PACKAGE] in copies
    assert ["deploy/example/requirements.txt", "deploy/example/requirements.txt"] in copies
    install = next(run for run in runs if "pip install" in run)
    assert "-r deploy/example/requirements.txt" in install and "--no-cache-dir" in install
    # pip runs where the copied layout is: the first WORKDIR, before the install.
    assert workdirs[0] == "/src"
    patterns = dockerignore_patterns(COMPOSE / "api" / "Dockerfile.dockerignore")
    tracked = run(["git", "ls-files", "-co", "--exclude-standard", PACKAGE], cwd=REPO).stdout.split()
    needed = [p for p in tracked if p.startswith(f"{PACKAGE}/src/") and "__pycache__" not in p]
    needed += [f"{PACKAGE}/pyproject.toml", f"{PACKAGE}/README.md"]
    assert any(p.endswith("py.typed") for p in needed)
    for path in needed:
        assert (REPO / path).exists(), path
        assert not dockerignore_excludes(patterns, path), f"{path} would be missing from the build"


# ------------------------------------------------------------------------------------------------
# Compose
# ------------------------------------------------------------------------------------------------

COMPOSE_ENV = {"POSTGRES_PASSWORD": "test-password", "BETTER_AUTH_SECRET": "x" * 32}


@pytest.fixture(scope="module")
def compose() -> dict:
    with (COMPOSE / "docker-compose.yml").open() as handle:
        return interpolate(yaml.safe_load(handle), COMPOSE_ENV)


def published_container_ports(service: dict) -> list[str]:
    ports = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports.append(str(entry["target"]))
        else:
            ports.append(str(entry).rsplit(":", 1)[-1].split("/")[0])
    return ports


def test_compose_services(compose):
    assert set(compose["services"]) == {"db", "auth-migrate", "auth", "api", "gatehouse"}


def test_compose_only_gatehouse_publishes_the_api(compose):
    services = compose["services"]
    assert published_container_ports(services["gatehouse"]) == ["8080"]
    assert "ports" not in services["api"], "FastAPI must be reachable only through gatehouse"
    # No network at all: FastAPI listens on a Unix socket (see test_compose_api_socket).
    assert services["api"].get("network_mode") == "none"
    assert "networks" not in services["api"]
    assert "ports" not in services["db"]
    assert "ports" not in services["auth-migrate"]
    auth_ports = services["auth"].get("ports", [])
    assert published_container_ports(services["auth"]) == ["3000"]
    assert all(str(p).startswith("127.0.0.1:") for p in auth_ports), "sign-in port on loopback only"
    assert all("expose" not in s for s in services.values())
    networks = compose["networks"]
    for name in services["db"]["networks"]:
        assert networks[name].get("internal") is True


def volume_mounts(service: dict) -> dict[str, tuple[str, bool]]:
    """target -> (source, read_only) for the short and the long syntax."""
    mounts = {}
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            mounts[entry["target"]] = (entry.get("source"), bool(entry.get("read_only")))
        else:
            source, target, *mode = entry.split(":")
            mounts[target] = (source, "ro" in (mode[0].split(",") if mode else []))
    return mounts


def test_compose_api_socket(compose):
    """api and gatehouse share uvicorn's socket through one named volume, and nothing else does."""
    services = compose["services"]
    api, gatehouse = volume_mounts(services["api"]), volume_mounts(services["gatehouse"])
    assert SOCKET_DIR in api and SOCKET_DIR in gatehouse, (api, gatehouse)
    volume = api[SOCKET_DIR][0]
    assert volume in compose["volumes"], f"{volume} must be a named volume"
    assert gatehouse[SOCKET_DIR] == (volume, True), "gatehouse mounts the socket volume read-only"
    assert api[SOCKET_DIR] == (volume, False), "uvicorn creates its socket there"
    others = [name for name, s in services.items() if name not in ("api", "gatehouse")]
    assert all(volume not in [m[0] for m in volume_mounts(services[n]).values()] for n in others)
    assert services["gatehouse"]["environment"]["GATEHOUSE_UPSTREAM"] == f"unix:{SOCKET_PATH}"
    # Where the command comes from: the api image's CMD, unless Compose overrides it.
    command = services["api"].get("command")
    if command is None:
        for keyword, rest in dockerfile_instructions(COMPOSE / "api" / "Dockerfile"):
            if keyword == "CMD":
                command = exec_form(rest)
    assert command[command.index("--uds") + 1] == SOCKET_PATH
    # api's health check goes through the socket, never a port.
    check = " ".join(services["api"]["healthcheck"]["test"])
    assert SOCKET_PATH in check and "AF_UNIX" in check
    assert not re.search(r"127\.0\.0\.1|localhost|:8000", check), check


def test_compose_startup_order(compose):
    services = compose["services"]

    def conditions(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}

    assert conditions("gatehouse") == {"auth": "service_healthy", "api": "service_healthy"}
    assert conditions("auth") == {"db": "service_healthy", "auth-migrate": "service_completed_successfully"}
    assert conditions("auth-migrate") == {"db": "service_healthy"}
    for name, service in services.items():
        for dep, spec in service.get("depends_on", {}).items():
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}, which has no healthcheck"


def test_compose_healthchecks(compose):
    services = compose["services"]
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    assert services["gatehouse"]["healthcheck"]["test"] == ["CMD", "gatehouse", "healthcheck"]
    for name in ("auth", "api"):
        assert services[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")


def option_value(args: list[str], short: str, long: str) -> str | None:
    """The value of `-h X`, `-hX`, `--host X` or `--host=X` in an argument list."""
    for index, arg in enumerate(args):
        if arg in (short, long) and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(long + "="):
            return arg.split("=", 1)[1]
        if arg.startswith(short) and len(arg) > len(short) and not arg.startswith("--"):
            return arg[len(short) :]
    return None


def test_compose_db_healthcheck_checks_tcp(compose):
    """Without -h, pg_isready asks over the Unix socket, which the postgres image's first-start
    initialisation server answers before anything listens on 5432: clients that connect over TCP
    (auth-migrate) would start too early."""
    test = compose["services"]["db"]["healthcheck"]["test"]
    args = shlex.split(test[1]) if test[0] == "CMD-SHELL" else test[1:]
    assert args[0] == "pg_isready", args
    assert option_value(args, "-h", "--host") == "127.0.0.1", args
    assert option_value(args, "-p", "--port") == "5432", args
    # The port checked is the one auth and auth-migrate connect to.
    database = urlsplit(compose["services"]["auth"]["environment"]["DATABASE_URL"])
    assert (database.hostname, database.port) == ("db", 5432)


def test_compose_no_two_services_build_one_image_name(compose):
    """auth-migrate and auth build the same context; if both also named the same image, a
    parallel build fails with "already exists"."""
    services = compose["services"]
    assert "image" not in services["auth-migrate"], "auth-migrate must not tag auth's image"
    assert services["auth-migrate"]["build"] == services["auth"]["build"]
    assert services["auth"]["image"] == "gatehouse-example-auth:local"
    named = [service["image"] for service in services.values() if "build" in service and "image" in service]
    assert len(named) == len(set(named)), named


def test_compose_gatehouse_configuration(compose, documented_variables):
    gatehouse = compose["services"]["gatehouse"]
    env = gatehouse["environment"]
    assert set(env) <= documented_variables, set(env) - documented_variables
    assert env["GATEHOUSE_UPSTREAM"] == f"unix:{SOCKET_PATH}"
    assert env["BETTER_AUTH_URL"] == "http://auth:3000"
    assert gatehouse["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert (COMPOSE / gatehouse["build"]["context"] / gatehouse["build"]["dockerfile"]).resolve() == (
        DOCKER / "Dockerfile"
    ).resolve()
    grace = seconds(gatehouse["stop_grace_period"])
    assert grace >= seconds(env["GATEHOUSE_SHUTDOWN_DELAY"]) + seconds(env["GATEHOUSE_SHUTDOWN_TIMEOUT"]) + 5


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def better_auth_session_cookie(base_url: str) -> str:
    """Better Auth 1.4's name for its session cookie (createCookieGetter): `__Secure-` when its
    baseURL starts with https://, with the default prefix `better-auth`."""
    return ("__Secure-" if base_url.startswith("https://") else "") + "better-auth.session_token"


def gatehouse_session_cookie(env: dict[str, str]) -> str:
    """The cookie gatehouse reads (issue #14): GATEHOUSE_SESSION_COOKIE, else `__Secure-` when
    BETTER_AUTH_URL is https, plus GATEHOUSE_SESSION_COOKIE_PREFIX (`better-auth`)."""
    if env.get("GATEHOUSE_SESSION_COOKIE"):
        return env["GATEHOUSE_SESSION_COOKIE"]
    secure = env["BETTER_AUTH_URL"].lower().startswith("https://")
    prefix = env.get("GATEHOUSE_SESSION_COOKIE_PREFIX", "better-auth")
    return ("__Secure-" if secure else "") + prefix + ".session_token"


PRIVATE_AUTH_URL = "http://auth:3000"


@pytest.mark.parametrize("trusted", [None, "", "http://localhost:3001, https://app.example.com"])
@pytest.mark.parametrize("public_url", [None, "https://auth.example.com"])
def test_compose_gatehouse_follows_better_auth(public_url, trusted):
    """By default and with AUTH_PUBLIC_URL (and TRUSTED_ORIGINS) set: the iss/aud gatehouse expects
    equal the origin Better Auth signs with, gatehouse reads the session cookie under the name
    Better Auth gives it, it trusts the origins Better Auth trusts for cookie-authenticated
    writes, and it calls Better Auth over the private network."""
    env = dict(COMPOSE_ENV)
    if public_url:
        env["AUTH_PUBLIC_URL"] = public_url
    if trusted is not None:
        env["TRUSTED_ORIGINS"] = trusted
    with (COMPOSE / "docker-compose.yml").open() as handle:
        services = interpolate(yaml.safe_load(handle), env)["services"]
    auth = services["auth"]["environment"]
    better_auth_origin = origin_of(auth["BETTER_AUTH_URL"])
    assert auth["BETTER_AUTH_URL"] == (public_url or PRIVATE_AUTH_URL)
    gatehouse = services["gatehouse"]["environment"]
    issuer = gatehouse.get("GATEHOUSE_ISSUER") or origin_of(gatehouse["BETTER_AUTH_URL"])
    audience = gatehouse.get("GATEHOUSE_AUDIENCE") or origin_of(gatehouse["BETTER_AUTH_URL"])
    assert issuer == better_auth_origin
    assert better_auth_origin in audience.split(",")
    assert gatehouse_session_cookie(gatehouse) == better_auth_session_cookie(auth["BETTER_AUTH_URL"])
    # Better Auth's trusted origins: its base URL's origin plus trustedOrigins (auth.mjs splits
    # TRUSTED_ORIGINS on commas and drops empty entries). gatehouse's list has no empty entry.
    items = gatehouse["GATEHOUSE_TRUSTED_ORIGINS"].split(",")
    assert all(item.strip() for item in items), gatehouse["GATEHOUSE_TRUSTED_ORIGINS"]
    expected = [better_auth_origin] + [o.strip() for o in auth["TRUSTED_ORIGINS"].split(",") if o.strip()]
    assert [item.strip() for item in items] == expected
    # The JWKS and get-session are always fetched over the private network.
    assert gatehouse.get("GATEHOUSE_JWKS_URL", gatehouse["BETTER_AUTH_URL"] + "/api/auth/jwks") == (
        PRIVATE_AUTH_URL + "/api/auth/jwks"
    )
    assert gatehouse.get("GATEHOUSE_SESSION_URL", gatehouse["BETTER_AUTH_URL"] + "/api/auth/get-session") == (
        PRIVATE_AUTH_URL + "/api/auth/get-session"
    )
    assert services["auth"]["environment"] == services["auth-migrate"]["environment"]


def test_compose_gatehouse_accepts_sessions(compose):
    services = compose["services"]
    gatehouse = services["gatehouse"]
    assert gatehouse["environment"]["GATEHOUSE_SESSIONS"] == "both"
    # get-session answers bearer tokens only with the bearer plugin (test_better_auth_server_source),
    # and gatehouse reaches the auth service by name on a network they share.
    assert urlsplit(gatehouse["environment"]["GATEHOUSE_SESSION_URL"]).hostname == "auth"
    assert "private" in gatehouse["networks"] and "private" in services["auth"]["networks"]
    assert published_container_ports(services["auth"]) == [str(urlsplit(PRIVATE_AUTH_URL).port)]


SECRETS_DIR = "/run/secrets"


def test_compose_identity_secret_wiring(compose, documented_variables):
    """gatehouse signs with the Compose secret and the api verifies with the same one: one
    file-based secret, mounted into exactly those two services, each pointed at it by
    GATEHOUSE_IDENTITY_SECRET_FILE; the value itself is in no environment, not in git and not in
    any build context."""
    services = compose["services"]
    secrets = compose.get("secrets", {})
    mounts = {
        name: [entry if isinstance(entry, str) else entry["source"] for entry in service.get("secrets", [])]
        for name, service in services.items()
    }
    shared = set(mounts["gatehouse"]) & set(mounts["api"])
    assert len(shared) == 1, mounts
    (secret,) = shared
    assert {name for name, used in mounts.items() if secret in used} == {"gatehouse", "api"}
    # A file secret: Compose bind-mounts it. An `environment:` secret is copied into the
    # container instead, which fails on read_only services (both are).
    assert set(secrets[secret]) == {"file"}, secrets[secret]
    assert services["gatehouse"]["read_only"] and services["api"]["read_only"]
    source = secrets[secret]["file"]
    assert not Path(source).is_absolute()
    relative = ((COMPOSE / source).resolve()).relative_to(REPO.resolve()).as_posix()
    assert run(["git", "check-ignore", "-q", relative], cwd=REPO).returncode == 0, f"git must ignore {relative}"
    for filter_file in (COMPOSE / "api" / "Dockerfile.dockerignore", DOCKER / "Dockerfile.dockerignore"):
        assert dockerignore_excludes(dockerignore_patterns(filter_file), relative), f"{filter_file.name} sends {relative}"
    for name in ("gatehouse", "api"):
        env = services[name]["environment"]
        target = next(
            (entry.get("target") or entry["source"]) if isinstance(entry, dict) else entry
            for entry in services[name]["secrets"]
            if (entry if isinstance(entry, str) else entry["source"]) == secret
        )
        path = target if target.startswith("/") else f"{SECRETS_DIR}/{target}"
        assert env["GATEHOUSE_IDENTITY_SECRET_FILE"] == path, name
        assert "GATEHOUSE_IDENTITY_SECRET" not in env, f"{name}: the secret belongs in the file, not the environment"
    assert "GATEHOUSE_IDENTITY_SECRET_FILE" in documented_variables
    # How to create it is written where the user starts.
    for doc in (COMPOSE / "docker-compose.yml", COMPOSE / "README.md"):
        assert re.search(rf"openssl rand -base64 \d+ > deploy/compose/{re.escape(Path(source).name)}", doc.read_text()), doc
    # Nothing else the stack reads from the environment can reach the app's identity check.
    assert not any("GATEHOUSE_IDENTITY_SECRET" in str(services[n].get("environment", {})) for n in services
                   if n not in ("gatehouse", "api"))


def test_compose_api_app_uses_the_package():
    """The app behind gatehouse in the stack reads identity through gatehouse-fastapi
    (which checks the signature), not from raw headers."""
    source = (DEPLOY / "example" / "app.py").read_text()
    assert re.search(r"^from gatehouse_fastapi import .*\bCurrentUser\b", source, re.MULTILINE)
    assert re.search(r"^configure\(app\)", source, re.MULTILINE), "configure(app): a bad secret fails at startup"
    assert "Header()" not in source, "identity from raw headers bypasses the signature check"


def test_compose_builds_and_env_example(compose):
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = COMPOSE / build["context"]
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
    required = set(re.findall(r"\$\{(\w+):\?", (COMPOSE / "docker-compose.yml").read_text()))
    assert required == {"POSTGRES_PASSWORD", "BETTER_AUTH_SECRET"}
    example = (COMPOSE / ".env.example").read_text()
    for name in required:
        assert re.search(rf"^{name}=", example, re.MULTILINE), f".env.example lacks {name}"
    # The filled-in .env holds secrets: git must ignore it.
    assert run(["git", "check-ignore", "-q", "deploy/compose/.env"], cwd=REPO).returncode == 0


def test_compose_schema():
    """The Compose specification's JSON schema (vendored in check-jsonschema, offline)."""
    checker = tool("check-jsonschema")
    if checker is None:
        pytest.fail("check-jsonschema not found: pip install -r Tests/deploy/requirements.txt")
    result = run([checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE / "docker-compose.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_config_with_docker_cli():
    """`docker compose config` when a compose plugin is available (it needs no engine)."""
    docker = tool("docker")
    if docker is None or run([docker, "compose", "version"]).returncode != 0:
        pytest.skip("the docker CLI has no compose plugin here; structure checked by the tests above")
    result = run(
        [docker, "compose", "-f", str(COMPOSE / "docker-compose.yml"), "config", "--quiet"],
        env={**os.environ, **COMPOSE_ENV},
    )
    assert result.returncode == 0, result.stderr


def test_better_auth_server_source():
    package = json.loads((COMPOSE / "auth" / "package.json").read_text())
    assert package["type"] == "module", "better-auth is ESM-only"
    dependencies = package["dependencies"]
    assert re.fullmatch(r"1\.4\.\d+", dependencies["better-auth"]), "pin better-auth 1.4.x exactly"
    assert re.fullmatch(r"\d+\.\d+\.\d+", dependencies["pg"]), "pin pg exactly"
    auth = (COMPOSE / "auth" / "auth.mjs").read_text()
    assert "emailAndPassword: { enabled: true }" in auth
    assert re.search(r"plugins:\s*\[\s*(//[^\n]*\n\s*)*jwt\(", auth)
    # The bearer plugin, so that `Authorization: Bearer <set-auth-token>` is a session.
    assert re.search(r'import\s*\{[^}]*\bbearer\b[^}]*\}\s*from\s*"better-auth/plugins"', auth)
    assert re.search(r"plugins:\s*\[.*\bbearer\(\s*\)", auth, re.DOTALL)
    # The JWT's claims are the whole user object, not just "email and name".
    assert "email and name" not in auth
    for field in ("id", "name", "email", "emailVerified", "image", "createdAt", "updatedAt"):
        assert re.search(rf"\b{field}\b", auth), field
    server = (COMPOSE / "auth" / "server.mjs").read_text()
    assert "toNodeHandler(auth)" in server and '"/api/auth/"' in server
    for script in ("server.mjs", "migrate.mjs"):
        text = (COMPOSE / "auth" / script).read_text()
        assert re.search(r'^import \{[^}]*\bauth\b[^}]*\} from "\./auth\.mjs";$', text, re.MULTILINE), script
    copied = next(
        rest
        for keyword, rest in dockerfile_instructions(COMPOSE / "auth" / "Dockerfile")
        if keyword == "COPY" and ".mjs" in rest
    ).split()[:-1]
    assert sorted(copied) == sorted(p.name for p in (COMPOSE / "auth").glob("*.mjs"))


@pytest.mark.parametrize("script", sorted((COMPOSE / "auth").glob("*.mjs")), ids=lambda p: p.name)
def test_better_auth_server_syntax(script: Path):
    node = tool("node")
    if node is None:
        pytest.skip("node not installed: JavaScript syntax not checked")
    result = run([node, "--check", str(script)])
    assert result.returncode == 0, result.stderr


# The Better Auth server's own logic, run by node against stand-ins for better-auth and pg (the
# real packages are installed only inside the image): what auth.mjs hands betterAuth(), its
# BETTER_AUTH_URL check, and migrate.mjs's connect retry.
STUB_PACKAGES = {
    "better-auth": {
        "package.json": json.dumps(
            {"name": "better-auth", "type": "module",
             "exports": {".": "./index.js", "./plugins": "./plugins.js", "./db": "./db.js", "./node": "./node.js"}}
        ),
        "index.js": "export const betterAuth = (options) =>"
        " ({ options, api: { getJwks: async () => ({ keys: [{ kid: 'k' }] }) } });\n",
        "plugins.js": "export const jwt = (options) => ({ id: 'jwt', options });\n"
        "export const bearer = (options) => ({ id: 'bearer', options });\n",
        "db.js": "export const getMigrations = async () =>"
        " ({ toBeCreated: [], toBeAdded: [], runMigrations: async () => {} });\n",
        "node.js": "export const toNodeHandler = () => async () => {};\n",
    },
    # PG_STUB_FAILURES: what each successive Client.connect() throws, comma-separated: an error
    # code, or `msg:` and a message; past the list, connect() succeeds.
    "pg": {
        "package.json": json.dumps({"name": "pg", "type": "module", "exports": "./index.js"}),
        "index.js": """
const failures = (process.env.PG_STUB_FAILURES ?? "").split(",").filter(Boolean);
let attempts = 0;
export class Client {
  constructor(options) { this.options = options; }
  async connect() {
    const failure = failures[attempts++];
    if (!failure) return;
    if (failure.startsWith("msg:")) throw new Error(failure.slice(4));
    throw Object.assign(new Error(`stub failure ${failure}`), { code: failure });
  }
  async query() { return { rows: [{ "?column?": 1 }] }; }
  async end() {}
}
export class Pool {
  constructor(options) { this.options = options; }
  async query() { return { rows: [] }; }
  async end() {}
}
export default { Client, Pool };
""",
    },
}

AUTH_TEST_ENV = {
    "BETTER_AUTH_SECRET": "x" * 32,
    "DATABASE_URL": "postgres://auth:pg-secret-value@db:5432/auth",
}


@pytest.fixture
def stubbed_auth_server(tmp_path: Path) -> Path:
    node = tool("node")
    if node is None:
        pytest.skip("node not installed: the Better Auth server's logic not run")
    for package, files in STUB_PACKAGES.items():
        folder = tmp_path / "node_modules" / package
        folder.mkdir(parents=True)
        for name, text in files.items():
            (folder / name).write_text(text)
    for script in (COMPOSE / "auth").glob("*.mjs"):
        (tmp_path / script.name).write_text(script.read_text())
    (tmp_path / "inspect.mjs").write_text(
        'import { auth } from "./auth.mjs";\n'
        "const { plugins, ...rest } = auth.options;\n"
        "console.log(JSON.stringify({ ...rest, database: undefined, plugins }));\n"
    )
    return tmp_path


def run_node(folder: Path, script: str, **env: str):
    environment = {"PATH": os.environ.get("PATH", ""), **AUTH_TEST_ENV, **env}
    return run([tool("node"), script], cwd=folder, env=environment)


@pytest.mark.parametrize("base_url", ["http://auth:3000", "https://auth.example.com", "http://[::1]:3000"])
def test_better_auth_config(stubbed_auth_server: Path, base_url: str):
    result = run_node(
        stubbed_auth_server, "inspect.mjs", BETTER_AUTH_URL=base_url, TRUSTED_ORIGINS=" http://a:1, ,http://b:2"
    )
    assert result.returncode == 0, result.stderr
    options = json.loads(result.stdout)
    assert options["baseURL"] == base_url
    assert options["emailAndPassword"] == {"enabled": True}
    assert options["trustedOrigins"] == ["http://a:1", "http://b:2"]
    plugins = {plugin["id"]: plugin.get("options") for plugin in options["plugins"]}
    assert list(plugins) == ["jwt", "bearer"]
    assert plugins["jwt"]["jwt"] == {"issuer": base_url, "audience": base_url}
    # requireSignature stays off: Better Auth also takes the raw token, as issue #14 describes.
    assert not (plugins["bearer"] or {}).get("requireSignature")


@pytest.mark.parametrize(
    "base_url",
    [
        "https://auth.example.com/",  # a trailing slash: not the origin gatehouse derives
        "https://auth.example.com/auth",  # Better Auth would serve /auth/jwks, not /api/auth/jwks
        "https://auth.example.com/api/auth",
        "https://auth.example.com?x=1",
        "https://Auth.Example.com",  # browsers send the host in lower case
        "https://auth.example.com:443",  # the default port is not part of the origin
        "ftp://auth.example.com",
        "auth:3000",
        "not a url",
    ],
)
def test_better_auth_refuses_a_base_url_that_is_not_a_bare_origin(stubbed_auth_server: Path, base_url: str):
    # server.mjs imports the same auth.mjs (checked in test_better_auth_server_source); it is not
    # started here, since a check that let the value through would leave it listening.
    for script in ("migrate.mjs", "inspect.mjs"):
        result = run_node(stubbed_auth_server, script, BETTER_AUTH_URL=base_url)
        assert result.returncode == 2, (script, result.stdout, result.stderr)
        assert "must be a bare origin" in result.stderr and "AUTH_PUBLIC_URL" in result.stderr
        assert json.dumps(base_url) in result.stderr


def test_migrate_retries_while_the_database_starts(stubbed_auth_server: Path):
    """Refused connections, a server starting up (57P03) and a dropped connection are retried."""
    result = run_node(
        stubbed_auth_server, "migrate.mjs", BETTER_AUTH_URL="http://auth:3000",
        PG_STUB_FAILURES="ECONNREFUSED,57P03,msg:Connection terminated unexpectedly",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "waiting for PostgreSQL at db:5432" in result.stdout
    assert "is up (attempt 4)" in result.stdout
    assert "auth-migrate: done, 1 signing key(s)" in result.stdout


def test_migrate_reports_a_lasting_database_error_at_once(stubbed_auth_server: Path):
    """A wrong password (28P01) is not retried: one clear line, no stack, no password."""
    result = run_node(
        stubbed_auth_server, "migrate.mjs", BETTER_AUTH_URL="http://auth:3000", PG_STUB_FAILURES="28P01"
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "auth-migrate: failed: cannot use PostgreSQL at db:5432" in result.stderr
    assert "waiting for" not in result.stdout
    assert "pg-secret-value" not in result.stdout + result.stderr
    assert "    at " not in result.stderr, "a stack trace instead of one line"


def test_migrate_gives_up_after_its_connect_budget():
    source = (COMPOSE / "auth" / "migrate.mjs").read_text()
    budget = re.search(r"const CONNECT_WAIT_MS = ([\d_]+);", source)
    assert budget and 10_000 <= int(budget.group(1).replace("_", "")) <= 60_000
    assert "did not accept a connection within" in source


# ------------------------------------------------------------------------------------------------
# The curl walk-through (deploy/compose/README.md and the head of docker-compose.yml)
# ------------------------------------------------------------------------------------------------


def shell_lines(text: str) -> list[str]:
    """Logical lines (backslash continuations joined) of the ```sh blocks of a Markdown text."""
    lines: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL):
        lines += block.replace("\\\n", " ").splitlines()
    return lines


def compose_comment_lines() -> list[str]:
    """The commands in docker-compose.yml's opening comment, "#   " stripped and joined."""
    head = []
    for line in (COMPOSE / "docker-compose.yml").read_text().splitlines():
        if not line.startswith("#"):
            break
        head.append(line[1:].strip())
    return "\n".join(head).replace("\\\n", " ").splitlines()


def curl_invocations(line: str) -> list[list[str]]:
    """The arguments of each curl in a shell line (up to a pipe or the end)."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:
        return []
    calls = []
    for index, token in enumerate(tokens):
        if token == "curl" or token.endswith("$(curl"):
            args = []
            for arg in tokens[index + 1 :]:
                if arg in ("|", "||", "&&", ";"):
                    break
                args.append(arg)
            calls.append(args)
    return calls


def sends_cookie(args: list[str]) -> bool:
    return any(
        arg in ("-b", "--cookie") or (re.fullmatch(r"-[A-Za-z]+", arg) and "b" in arg[1:]) for arg in args
    )


def headers(args: list[str]) -> dict[str, str]:
    result = {}
    for flag, value in zip(args, args[1:]):
        if flag in ("-H", "--header"):
            name, _, field = value.partition(":")
            result[name.strip().lower()] = field.strip()
    return result


def is_write(args: list[str]) -> bool:
    return any(arg in ("-d", "--data", "--data-raw", "--json") for arg in args) or (
        "-X" in args and args[args.index("-X") + 1].upper() not in ("GET", "HEAD", "OPTIONS")
    )


def target(args: list[str]) -> str:
    return next(arg for arg in args if arg.startswith(("localhost:", "http://localhost", "127.0.0.1:")))


COMPOSE_README = COMPOSE / "README.md"


@pytest.mark.parametrize("where", ["README.md", "docker-compose.yml"])
def test_walkthrough_posts_to_better_auth_with_a_cookie_send_its_origin(compose, where: str):
    """Better Auth 1.4 answers 403 to a POST that carries a cookie but no trusted Origin."""
    lines = shell_lines(COMPOSE_README.read_text()) if where == "README.md" else compose_comment_lines()
    calls = [args for line in lines for args in curl_invocations(line)]
    auth_posts = [args for args in calls if ":3000/api/auth/" in target(args) and is_write(args)]
    assert auth_posts, "no sign-up or sign-in step found"
    trusted = origin_of(compose["services"]["auth"]["environment"]["BETTER_AUTH_URL"])
    for args in auth_posts:
        if sends_cookie(args):
            assert headers(args).get("origin") == trusted, args
    sign_ins = [args for args in auth_posts if "sign-in" in target(args) or "sign-up" in target(args)]
    assert any("-c" in args or "--cookie-jar" in args for args in sign_ins), "sign-in must store the cookie (-c jar)"


def test_walkthrough_shows_both_kinds_of_session(compose):
    lines = shell_lines(COMPOSE_README.read_text())
    calls = [args for line in lines for args in curl_invocations(line)]
    gatehouse = [args for args in calls if ":8080" in target(args)]
    # A cookie session: the jar, no Authorization header.
    assert any(
        sends_cookie(args) and "authorization" not in headers(args) and not is_write(args) for args in gatehouse
    )
    # A cookie-authenticated write, with an Origin gatehouse trusts.
    trusted = compose["services"]["gatehouse"]["environment"]["GATEHOUSE_TRUSTED_ORIGINS"].split(",")
    writes = [args for args in gatehouse if sends_cookie(args) and is_write(args) and "origin" in headers(args)]
    assert writes and all(headers(args)["origin"] in trusted for args in writes)
    # A bearer session: a variable taken from sign-in's set-auth-token header, sent as a bearer.
    assignment = next(
        (line for line in lines if re.match(r"\s*\w+=\$\(curl", line) and "set-auth-token" in line.lower()), None
    )
    assert assignment is not None, "no step reads set-auth-token"
    variable = re.match(r"\s*(\w+)=", assignment).group(1)
    assert "/api/auth/sign-in/" in assignment and " -D " in f" {assignment} "
    assert any(headers(args).get("authorization") == f"Bearer ${variable}" for args in gatehouse)


# ------------------------------------------------------------------------------------------------
# Kubernetes
# ------------------------------------------------------------------------------------------------

MANIFESTS = ["configmap.yaml", "deployment.yaml", "service.yaml", "podmonitor.yaml"]


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict]:
    resources = {}
    for name in MANIFESTS:
        for doc in load_yaml_documents(KUBERNETES / name):
            resources[doc["kind"]] = doc
    assert set(resources) == {"ConfigMap", "Deployment", "Service", "PodMonitor"}
    return resources


@pytest.fixture(scope="module")
def pod(k8s) -> dict:
    return k8s["Deployment"]["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def gatehouse(pod) -> dict:
    [sidecar] = [c for c in pod["initContainers"] if c["name"] == "gatehouse"]
    return sidecar


@pytest.fixture(scope="module")
def app(pod) -> dict:
    [container] = pod["containers"]
    return container


def named_port(container: dict, port) -> int:
    if isinstance(port, int):
        return port
    [number] = [p["containerPort"] for p in container.get("ports", []) if p["name"] == port]
    return number


# 1.30: the oldest release with both native sidecars and the preStop sleep action on by default.
@pytest.mark.parametrize("version", ["1.30.0", "latest"])
@pytest.mark.parametrize("manifest", ["configmap.yaml", "deployment.yaml", "service.yaml"])
def test_kubernetes_schema(manifest: str, version: str):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    if version == "latest":
        version = kubernetes_validate.latest_version()
    for doc in load_yaml_documents(KUBERNETES / manifest):
        kubernetes_validate.validate(doc, version, strict=True)


def test_native_sidecar(gatehouse, app):
    assert gatehouse["restartPolicy"] == "Always", "a native sidecar is an initContainer with restartPolicy Always"
    assert named_port(gatehouse, "http") == 8080
    assert named_port(gatehouse, "admin") == 9901
    assert "ports" not in app, "FastAPI exposes no port: it is reached through gatehouse only"
    command = app["command"]
    assert f"--uds={SOCKET_PATH}" in command, "FastAPI listens on a Unix socket"
    assert not [a for a in command if a.startswith(("--host", "--port", "--fd"))], "and on no TCP port"


def test_socket_volume_is_shared_by_both_containers_only(pod, gatehouse, app):
    [volume] = [v for v in pod["volumes"] if any(
        m["name"] == v["name"] and m["mountPath"] == SOCKET_DIR for m in app.get("volumeMounts", []))]
    assert "emptyDir" in volume, "the socket lives in an emptyDir of the pod"
    [app_mount] = [m for m in app["volumeMounts"] if m["name"] == volume["name"]]
    [gatehouse_mount] = [m for m in gatehouse.get("volumeMounts", []) if m["name"] == volume["name"]]
    assert app_mount["mountPath"] == gatehouse_mount["mountPath"] == SOCKET_DIR
    assert not app_mount.get("readOnly"), "uvicorn creates the socket"
    assert gatehouse_mount.get("readOnly") is True
    # The app's probes cannot use a port it does not have: they go through the socket.
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        if probe in app:
            assert set(app[probe]) & {"httpGet", "tcpSocket", "grpc"} == set(), probe
            script = " ".join(app[probe]["exec"]["command"])
            assert SOCKET_PATH in script and "AF_UNIX" in script, probe


def test_probes_use_the_admin_port(gatehouse):
    expectations = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in expectations.items():
        http = gatehouse[probe]["httpGet"]
        assert http["path"] == path, probe
        assert named_port(gatehouse, http["port"]) == 9901, probe


def test_configuration_is_consistent(k8s, gatehouse, app, documented_variables):
    config = k8s["ConfigMap"]["data"]
    assert set(config) <= documented_variables, set(config) - documented_variables
    assert gatehouse["envFrom"] == [{"configMapRef": {"name": k8s["ConfigMap"]["metadata"]["name"]}}]
    assert config["GATEHOUSE_UPSTREAM"] == f"unix:{SOCKET_PATH}"
    assert f"--uds={config['GATEHOUSE_UPSTREAM'].removeprefix('unix:')}" in app["command"]
    assert int(config["GATEHOUSE_LISTEN"].rsplit(":", 1)[1]) == named_port(gatehouse, "http")
    assert int(config["GATEHOUSE_ADMIN_LISTEN"].rsplit(":", 1)[1]) == named_port(gatehouse, "admin")
    assert config["GATEHOUSE_UPSTREAM"] and (config.get("BETTER_AUTH_URL") or config.get("GATEHOUSE_JWKS_URL"))


def test_termination_grace_period_covers_the_shutdown(k8s, pod, app):
    """App preStop sleep, then uvicorn's drain, then (the sidecar stops last) gatehouse's delay and
    drain must all fit, or the kubelet SIGKILLs a draining gatehouse."""
    config = k8s["ConfigMap"]["data"]
    gatehouse_budget = seconds(config["GATEHOUSE_SHUTDOWN_DELAY"]) + seconds(config["GATEHOUSE_SHUTDOWN_TIMEOUT"])
    pre_stop = app["lifecycle"]["preStop"]["sleep"]["seconds"]
    graceful = next(float(a.split("=", 1)[1]) for a in app["command"] if a.startswith("--timeout-graceful-shutdown="))
    grace = pod["terminationGracePeriodSeconds"]
    assert grace >= 35
    assert grace >= pre_stop + graceful + gatehouse_budget, (grace, pre_stop, graceful, gatehouse_budget)


def test_pod_hardening(pod, gatehouse, app):
    assert pod["enableServiceLinks"] is False
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    for container in (gatehouse, app):
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == 10001
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert "add" not in context["capabilities"]
        assert context["seccompProfile"]["type"] == "RuntimeDefault"
        resources = container["resources"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources[kind]), (container["name"], kind)


def test_service_reaches_gatehouse_only(k8s, pod, gatehouse):
    spec = k8s["Service"]["spec"]
    labels = k8s["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"].items() <= labels.items()
    assert k8s["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    [port] = spec["ports"]
    assert named_port(gatehouse, port["targetPort"]) == 8080


def test_podmonitor(k8s, gatehouse):
    monitor = k8s["PodMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    labels = k8s["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert set(endpoint) <= {"port", "path", "interval", "scheme", "scrapeTimeout", "honorLabels", "relabelings"}
    assert named_port(gatehouse, endpoint["port"]) == 9901
    assert endpoint["path"] == "/metrics"


def test_kustomization(pod):
    [kustomization] = load_yaml_documents(KUBERNETES / "kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(MANIFESTS)
    images = {c["image"].split(":")[0] for c in pod["initContainers"] + pod["containers"]}
    assert {i["name"] for i in kustomization["images"]} == images


# ------------------------------------------------------------------------------------------------
# systemd
# ------------------------------------------------------------------------------------------------


def unit_directives(path: Path) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        directives.setdefault(key.strip(), []).append(value.strip())
    return directives


def test_systemd_unit_hardening(documented_variables):
    unit = unit_directives(SYSTEMD / "gatehouse.service")
    expected = {
        "Type": "exec",
        "EnvironmentFile": "/etc/gatehouse/gatehouse.env",
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "CapabilityBoundingSet": "",
        "SystemCallFilter": "@system-service",
        "MemoryDenyWriteExecute": "yes",
        "Restart": "on-failure",
        "KillSignal": "SIGTERM",
    }
    for key, value in expected.items():
        assert unit.get(key) == [value], f"{key}={unit.get(key)}"
    assert unit["ExecStart"][0].split()[0] == "/usr/local/bin/gatehouse"
    assert "gatehouse healthcheck" in unit["ExecStartPost"][0]

    env = parse_env_file(SYSTEMD / "gatehouse.env.example")
    assert set(env) <= documented_variables, set(env) - documented_variables
    assert env["GATEHOUSE_UPSTREAM"] == f"unix:{SOCKET_PATH}"
    assert "AF_UNIX" in unit["RestrictAddressFamilies"][0].split(), "connecting to the socket needs AF_UNIX"
    budget = seconds(env["GATEHOUSE_SHUTDOWN_DELAY"]) + seconds(env["GATEHOUSE_SHUTDOWN_TIMEOUT"])
    assert seconds(unit["TimeoutStopSec"][0]) >= budget + 5


@pytest.fixture
def verifiable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at a stub, because verify checks that the binary exists."""
    stub = tmp_path / "gatehouse"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    unit = tmp_path / "gatehouse.service"
    unit.write_text((SYSTEMD / "gatehouse.service").read_text().replace("/usr/local/bin/gatehouse", str(stub)))
    return unit


def systemd_analyze() -> str:
    binary = tool("systemd-analyze")
    if binary is None:
        pytest.skip("systemd-analyze not installed (Debian: apt-get install systemd)")
    return binary


def test_systemd_analyze_verify(verifiable_unit: Path):
    binary = systemd_analyze()
    result = run([binary, "verify", str(verifiable_unit)], cwd=verifiable_unit.parent)
    output = (result.stdout + result.stderr).strip()
    if (
        result.returncode != 0
        and re.search(r"Failed to (initialize|connect|create|set up)", output)
        and "gatehouse.service" not in output
    ):
        pytest.skip(f"systemd-analyze verify cannot run in this environment: {output[:200]}")
    # verify exits 0 even for unknown or unparsable directives, so any message is a failure.
    assert result.returncode == 0 and not output, output


def test_systemd_exposure_level(verifiable_unit: Path):
    binary = systemd_analyze()
    result = run([binary, "security", "--offline=yes", str(verifiable_unit)], cwd=verifiable_unit.parent)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout + result.stderr)
    if match is None:
        pytest.skip(f"systemd-analyze security --offline not supported: {result.stderr[:200]}")
    assert float(match.group(1)) <= 2.0, result.stdout


# ------------------------------------------------------------------------------------------------
# Shell scripts
# ------------------------------------------------------------------------------------------------


def shell_scripts() -> list[str]:
    listed = run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.sh"], cwd=REPO).stdout.split()
    return sorted(set(listed) | {".ci/run"})


@pytest.mark.parametrize("script", shell_scripts())
def test_shellcheck(script: str):
    shellcheck = tool("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (scripts/install-deps.sh installs it)")
    assert (REPO / script).is_file(), script
    result = run([shellcheck, "--format=gcc", script], cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------------------------
# The repository stands alone
# ------------------------------------------------------------------------------------------------


def test_repository_refers_to_nothing_outside_itself():
    result = run([str(REPO / "scripts/check-standalone.sh")], cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


# Written with "@" for "/" so that this file does not itself trip the check it tests.
@pytest.mark.parametrize(
    "where, line",
    [
        ("Tests/e2e/test_x.py", 'FIX = Path("@work@shared@fixtures@x.json")'),
        ("Tests/X/Support.swift", 'let root = "..@shared@fixtures"'),
        ("Fuzz/gen.py", 'candidate = directory @ "shared@fixtures@x.json"'),
        ("bench/run.sh", "cat @home@someone@notes.txt"),
        ("Makefile", "include ..@shared@notes@x.mk"),
    ],
)
def test_standalone_check_catches_outside_paths(tmp_path: Path, where: str, line: str):
    """The check itself: a copy of the layout with one line that reaches outside must fail,
    naming the file; the same tree without that line passes."""
    for folder in ["Tests", "Fuzz", "scripts", "bench"]:
        (tmp_path / folder).mkdir()
    (tmp_path / "Makefile").write_text("test:\n\ttrue\n")
    clean = run([str(REPO / "scripts/check-standalone.sh"), str(tmp_path)], cwd=tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    target = tmp_path / where
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(line.replace("@", "/") + "\n")
    result = run([str(REPO / "scripts/check-standalone.sh"), str(tmp_path)], cwd=tmp_path)
    assert result.returncode == 1
    assert where in result.stderr
