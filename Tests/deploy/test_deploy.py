"""Static checks of deploy/: what a user of the Docker image, the Compose stack, the Kubernetes
manifests and the systemd unit relies on. No container engine or cluster is needed: Dockerfiles go
through hadolint, manifests through kubernetes-validate (bundled schemas), the unit through
systemd-analyze, shell scripts through shellcheck, and the rest is checked structurally."""

from __future__ import annotations

import json
import os
import re
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


def test_api_build_context_filter_keeps_secrets_out():
    patterns = dockerignore_patterns(COMPOSE / "api" / "Dockerfile.dockerignore")
    assert not dockerignore_excludes(patterns, "example/app.py")
    assert not dockerignore_excludes(patterns, "example/requirements.txt")
    assert dockerignore_excludes(patterns, "compose/.env")
    for keyword, rest in dockerfile_instructions(COMPOSE / "api" / "Dockerfile"):
        if keyword == "COPY":
            for source in rest.split()[:-1]:
                assert (DEPLOY / source).exists(), f"COPY source {source} missing (context is deploy/)"


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


@pytest.mark.parametrize("public_url", [None, "https://auth.example.com"])
def test_compose_issuer_matches_better_auth(public_url):
    """The iss/aud gatehouse expects equal the origin Better Auth signs with, by default and with
    AUTH_PUBLIC_URL set."""
    env = dict(COMPOSE_ENV)
    if public_url:
        env["AUTH_PUBLIC_URL"] = public_url
    with (COMPOSE / "docker-compose.yml").open() as handle:
        services = interpolate(yaml.safe_load(handle), env)["services"]
    better_auth_origin = "{0.scheme}://{0.netloc}".format(urlsplit(services["auth"]["environment"]["BETTER_AUTH_URL"]))
    gatehouse = services["gatehouse"]["environment"]
    assert gatehouse["GATEHOUSE_ISSUER"] == better_auth_origin
    assert gatehouse["GATEHOUSE_AUDIENCE"] == better_auth_origin
    # The JWKS is always fetched over the private network.
    assert gatehouse["BETTER_AUTH_URL"] == "http://auth:3000"
    assert services["auth"]["environment"] == services["auth-migrate"]["environment"]


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
    server = (COMPOSE / "auth" / "server.mjs").read_text()
    assert "toNodeHandler(auth)" in server and '"/api/auth/"' in server
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
