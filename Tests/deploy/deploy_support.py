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


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _closing_brace(text: str, start: int) -> int:
    """Index of the `}` that closes the `${` whose `{` is at `start` (nested `${…}` allowed)."""
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    raise ValueError(f"unclosed ${{ in {text!r}")


def _substitute(text: str, env: dict[str, str]) -> str:
    out: list[str] = []
    index = 0
    while index < len(text):
        dollar = text.find("$", index)
        if dollar < 0:
            out.append(text[index:])
            break
        out.append(text[index:dollar])
        following = text[dollar + 1 : dollar + 2]
        if following == "$":
            out.append("$")
            index = dollar + 2
        elif following == "{":
            close = _closing_brace(text, dollar + 1)
            out.append(_expression(text[dollar + 2 : close], env))
            index = close + 1
        elif (name := _NAME.match(text, dollar + 1)) is not None:
            out.append(env.get(name.group(0), ""))
            index = name.end()
        else:
            out.append("$")
            index = dollar + 1
    return "".join(out)


def _expression(inner: str, env: dict[str, str]) -> str:
    name = _NAME.match(inner)
    if name is None:
        raise ValueError(f"invalid interpolation ${{{inner}}}")
    rest = inner[name.end() :]
    variable = name.group(0)
    present, current = variable in env, env.get(variable, "")
    if not rest:
        return current
    for operator in (":-", "-", ":?", "?", ":+", "+"):
        if rest.startswith(operator):
            argument = rest[len(operator) :]
            break
    else:
        raise ValueError(f"unsupported interpolation ${{{inner}}}")
    set_and_non_empty = present and current != ""
    strict = operator.startswith(":")
    if operator in (":-", "-"):
        return _substitute(argument, env) if not (set_and_non_empty if strict else present) else current
    if operator in (":?", "?"):
        if not (set_and_non_empty if strict else present):
            raise KeyError(f"required variable {variable} is not set: {_substitute(argument, env)}")
        return current
    return _substitute(argument, env) if (set_and_non_empty if strict else present) else ""


def interpolate(value, env: dict[str, str]):
    """Compose's variable interpolation: $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
    ${VAR:?err}, ${VAR?err}, ${VAR:+alternative}, ${VAR+alternative}, nested expressions in the
    argument (${A:+,${A}}), and $$ for a literal dollar."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value
    return _substitute(value, env)


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
