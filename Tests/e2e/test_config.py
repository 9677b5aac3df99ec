"""Configuration by environment, the subcommands, and the admin listener."""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest

from conftest import GATEHOUSE_BIN, free_port, gatehouse_env, require_binary, run_gatehouse_command

ALL_VARIABLES = [
    "GATEHOUSE_UPSTREAM",
    "GATEHOUSE_LISTEN",
    "GATEHOUSE_ADMIN_LISTEN",
    "GATEHOUSE_TRUSTED_PROXIES",
    "GATEHOUSE_UPSTREAM_TIMEOUT",
    "GATEHOUSE_UPSTREAM_IDLE_TIMEOUT",
    "GATEHOUSE_MAX_HEADER_BYTES",
    "GATEHOUSE_HEADER_READ_TIMEOUT",
    "GATEHOUSE_SHUTDOWN_DELAY",
    "GATEHOUSE_SHUTDOWN_TIMEOUT",
    "GATEHOUSE_LOG_LEVEL",
    "GATEHOUSE_LOG_FORMAT",
]


def env_with(**overrides: str) -> dict:
    return gatehouse_env("http://127.0.0.1:9", free_port(), free_port(), **overrides)


def env_without(name: str, **overrides: str) -> dict:
    env = env_with(**overrides)
    env.pop(name, None)
    return env


def serve_expecting_failure(env: dict) -> subprocess.CompletedProcess:
    """`gatehouse serve` with a bad environment must exit by itself, quickly."""
    require_binary()
    try:
        return subprocess.run(
            [str(GATEHOUSE_BIN), "serve"], env=env, capture_output=True, text=True,
            timeout=15, stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"gatehouse serve kept running with a bad configuration: {exc}")


# ---------------------------------------------------------------------------------------
# bad configuration: exit 2, one stderr line per problem naming the variable

BAD_SINGLE = [
    ("GATEHOUSE_UPSTREAM_TIMEOUT", {"GATEHOUSE_UPSTREAM_TIMEOUT": "abc"}),
    ("GATEHOUSE_UPSTREAM_IDLE_TIMEOUT", {"GATEHOUSE_UPSTREAM_IDLE_TIMEOUT": "10 minutes"}),
    ("GATEHOUSE_HEADER_READ_TIMEOUT", {"GATEHOUSE_HEADER_READ_TIMEOUT": "-5s"}),
    ("GATEHOUSE_SHUTDOWN_DELAY", {"GATEHOUSE_SHUTDOWN_DELAY": "5x"}),
    ("GATEHOUSE_MAX_HEADER_BYTES", {"GATEHOUSE_MAX_HEADER_BYTES": "12XB"}),
    ("GATEHOUSE_TRUSTED_PROXIES", {"GATEHOUSE_TRUSTED_PROXIES": "10.0.0.0/99"}),
    ("GATEHOUSE_LOG_FORMAT", {"GATEHOUSE_LOG_FORMAT": "xml"}),
    ("GATEHOUSE_LOG_LEVEL", {"GATEHOUSE_LOG_LEVEL": "loud"}),
    ("GATEHOUSE_LISTEN", {"GATEHOUSE_LISTEN": "127.0.0.1:notaport"}),
    ("GATEHOUSE_UPSTREAM", {"GATEHOUSE_UPSTREAM": "not a url"}),
]


@pytest.mark.parametrize("variable,overrides", BAD_SINGLE, ids=[f"{v}={list(o.values())[0]}" for v, o in BAD_SINGLE])
def test_serve_rejects_a_malformed_variable_with_exit_2_naming_it(variable, overrides):
    result = serve_expecting_failure(env_with(**overrides))
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    problem_lines = [line for line in result.stderr.splitlines() if variable in line]
    assert problem_lines, f"stderr does not name {variable}:\n{result.stderr}"


def test_serve_without_upstream_exits_2_naming_it():
    result = serve_expecting_failure(env_without("GATEHOUSE_UPSTREAM"))
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "GATEHOUSE_UPSTREAM" in result.stderr, result.stderr


def test_serve_reports_every_bad_variable_on_its_own_line():
    result = serve_expecting_failure(
        env_with(GATEHOUSE_UPSTREAM_TIMEOUT="abc", GATEHOUSE_LOG_FORMAT="xml", GATEHOUSE_MAX_HEADER_BYTES="12XB")
    )
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    for variable in ["GATEHOUSE_UPSTREAM_TIMEOUT", "GATEHOUSE_LOG_FORMAT", "GATEHOUSE_MAX_HEADER_BYTES"]:
        assert any(variable in line for line in lines), f"{variable} not named in:\n{result.stderr}"
    # one line per problem: no line names two of them
    for line in lines:
        named = [v for v in ("GATEHOUSE_UPSTREAM_TIMEOUT", "GATEHOUSE_LOG_FORMAT", "GATEHOUSE_MAX_HEADER_BYTES") if v in line]
        assert len(named) <= 1, f"one line names several problems: {line!r}"


def test_serve_with_bad_config_does_not_open_its_port():
    port = free_port()
    env = env_with(GATEHOUSE_LOG_FORMAT="xml")
    env["GATEHOUSE_LISTEN"] = f"127.0.0.1:{port}"
    result = serve_expecting_failure(env)
    assert result.returncode == 2
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)


# ---------------------------------------------------------------------------------------
# check-config


def test_check_config_accepts_a_valid_environment_and_prints_the_effective_config():
    port, admin = free_port(), free_port()
    env = gatehouse_env(
        "http://127.0.0.1:8123/api/v1", port, admin,
        GATEHOUSE_UPSTREAM_TIMEOUT="45s",
        GATEHOUSE_TRUSTED_PROXIES="10.0.0.0/8,192.168.0.0/16",
    )
    result = run_gatehouse_command(["check-config"], env)
    assert result.returncode == 0, (result.stdout, result.stderr)
    out = result.stdout
    assert "http://127.0.0.1:8123/api/v1" in out, out
    assert str(port) in out and str(admin) in out, out
    assert "10.0.0.0/8" in out and "192.168.0.0/16" in out, out
    # effective = including the defaults of variables that were not set
    missing = [v for v in ALL_VARIABLES if v not in out]
    assert not missing, f"effective config does not mention {missing}:\n{out}"


def test_check_config_exits_1_and_names_the_bad_variable():
    result = run_gatehouse_command(["check-config"], env_with(GATEHOUSE_SHUTDOWN_TIMEOUT="soon"))
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "GATEHOUSE_SHUTDOWN_TIMEOUT" in result.stdout + result.stderr


def test_check_config_exits_1_without_upstream():
    result = run_gatehouse_command(["check-config"], env_without("GATEHOUSE_UPSTREAM"))
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "GATEHOUSE_UPSTREAM" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "variable,value",
    [
        ("GATEHOUSE_UPSTREAM_TIMEOUT", "500ms"),
        ("GATEHOUSE_UPSTREAM_TIMEOUT", "30s"),
        ("GATEHOUSE_UPSTREAM_IDLE_TIMEOUT", "5m"),
        ("GATEHOUSE_UPSTREAM_IDLE_TIMEOUT", "1h"),
        ("GATEHOUSE_HEADER_READ_TIMEOUT", "15"),
        ("GATEHOUSE_SHUTDOWN_DELAY", "1500ms"),
        ("GATEHOUSE_MAX_HEADER_BYTES", "64KiB"),
        ("GATEHOUSE_MAX_HEADER_BYTES", "1MiB"),
        ("GATEHOUSE_MAX_HEADER_BYTES", "65536"),
        ("GATEHOUSE_TRUSTED_PROXIES", "127.0.0.0/8"),
        ("GATEHOUSE_TRUSTED_PROXIES", "10.0.0.0/8, ::1/128"),
        ("GATEHOUSE_LOG_FORMAT", "text"),
        ("GATEHOUSE_LOG_LEVEL", "debug"),
    ],
)
def test_check_config_accepts_documented_value_syntax(variable, value):
    result = run_gatehouse_command(["check-config"], env_with(**{variable: value}))
    assert result.returncode == 0, (result.stdout, result.stderr)


def test_check_config_does_not_start_serving():
    port = free_port()
    env = env_with()
    env["GATEHOUSE_LISTEN"] = f"127.0.0.1:{port}"
    started = time.monotonic()
    result = run_gatehouse_command(["check-config"], env)
    assert result.returncode == 0
    assert time.monotonic() - started < 10
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)


# ---------------------------------------------------------------------------------------
# admin listener and healthcheck


def test_healthz_answers_200(gatehouse):
    assert httpx.get(f"{gatehouse.admin_url}/healthz", timeout=5).status_code == 200


def test_readyz_answers_200_json_when_ready(gatehouse):
    response = httpx.get(f"{gatehouse.admin_url}/readyz", timeout=5)
    assert response.status_code == 200
    assert isinstance(response.json(), dict)


def test_admin_endpoints_are_not_served_on_the_proxy_port(gatehouse, upstream):
    # /readyz on the proxy port belongs to the upstream app (which has none: 404 from FastAPI)
    response = httpx.get(f"{gatehouse.url}/readyz", timeout=5)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


def test_healthcheck_subcommand_exits_0_when_ready(gatehouse):
    result = run_gatehouse_command(["healthcheck"], gatehouse.env)
    assert result.returncode == 0, (result.stdout, result.stderr)


def test_healthcheck_subcommand_exits_1_when_nothing_listens():
    result = run_gatehouse_command(["healthcheck"], env_with())
    assert result.returncode == 1, (result.stdout, result.stderr)
