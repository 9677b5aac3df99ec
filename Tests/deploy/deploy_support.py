"""Helpers for the deploy/ checks: paths, YAML loading, durations, Compose interpolation.

(Not a conftest.py: Tests/e2e imports `from conftest`, and a second conftest module on
sys.path would shadow it when both folders run in one pytest invocation.)"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKER = DEPLOY / "docker"
COMPOSE = DEPLOY / "compose"
KUBERNETES = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"


def tool(name: str) -> str | None:
    """A tool from the virtualenv running the tests (pip-installed linters), else from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name)


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=False, capture_output=True, text=True, timeout=60, **kwargs)


def load_yaml_documents(path: Path) -> list[dict]:
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")


def seconds(value: str | float) -> float:
    """gatehouse / Compose / systemd duration ("500ms", "5s", "1.5m", "1h", bare seconds)."""
    if isinstance(value, (int, float)):
        return float(value)
    match = _DURATION.match(str(value).strip())
    assert match, f"not a duration: {value!r}"
    number, unit = float(match.group(1)), match.group(2) or "s"
    return number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


_INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def interpolate(value, env: dict[str, str]):
    """Compose's variable interpolation (${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, $$)."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3)
        present = name in env
        current = env.get(name, "")
        if operator in (":-", "-"):
            use_default = (not current) if operator == ":-" else (not present)
            return argument if use_default else current
        if operator in (":?", "?"):
            missing = (not current) if operator == ":?" else (not present)
            if missing:
                raise KeyError(f"required variable {name} is not set: {argument}")
            return current
        return current

    return _INTERPOLATION.sub(replace, value)


def parse_env_file(path: Path) -> dict[str, str]:
    """NAME=value lines; comments and blank lines ignored (commented-out examples are not values)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        values[name.strip()] = value.strip()
    return values
