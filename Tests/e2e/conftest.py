"""Fixtures for the end-to-end suite: the real upstream (uvicorn + upstream_app) and the
real gatehouse binary, each a subprocess on free 127.0.0.1 ports (the upstream on a Unix socket
instead with E2E_UPSTREAM_SOCKET=unix).

    GATEHOUSE_BIN       gatehouse binary to test (default: <repo>/.build/debug/gatehouse)
    E2E_UPSTREAM_SOCKET how the upstream listens: tcp (127.0.0.1:<port>, the default) or unix
                        (uvicorn --uds <tmp>/uvicorn.sock, gatehouse given unix:<path>)

Every gatehouse started here writes stdout/stderr to files under pytest's tmp dir; when a
test fails, the tail of each running instance's logs (and the upstream's) is attached to
the report.
"""

from __future__ import annotations

import atexit
import ctypes
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import httpx
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GATEHOUSE_BIN = Path(os.environ.get("GATEHOUSE_BIN", REPO / ".build" / "debug" / "gatehouse"))
# uvicorn's HTTP/1.1 implementation for the upstream: h11 (pure Python, the default), or
# httptools (llhttp, what `uvicorn[standard]` and `fastapi[standard]` install and most
# deployments run). `make test` runs the whole suite on each.
UPSTREAM_HTTP = os.environ.get("E2E_UPSTREAM_HTTP", "h11")
if UPSTREAM_HTTP not in ("h11", "httptools"):
    raise SystemExit(f"E2E_UPSTREAM_HTTP must be h11 or httptools, not {UPSTREAM_HTTP!r}")

# How FastAPI listens: on a TCP port (GATEHOUSE_UPSTREAM=http://127.0.0.1:<port>), or on a Unix
# socket (uvicorn --uds, GATEHOUSE_UPSTREAM=unix:<path>). `make test` runs the suite each way.
UPSTREAM_SOCKET = os.environ.get("E2E_UPSTREAM_SOCKET", "tcp")
if UPSTREAM_SOCKET not in ("tcp", "unix"):
    raise SystemExit(f"E2E_UPSTREAM_SOCKET must be tcp or unix, not {UPSTREAM_SOCKET!r}")
# sun_path: 108 bytes, the last one the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107

# Processes alive right now, whose logs are attached to a failing test's report.
_LIVE: list["_Logged"] = []


# ---------------------------------------------------------------------------------------
# helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, limit: int = 6000) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return "(no file)"
    text = data[-limit:].decode("utf-8", "replace")
    return ("…(truncated)…\n" if len(data) > limit else "") + text


# Every gatehouse this session started (their logs stay on disk until the session ends).
EVERY_GATEHOUSE: list = []


@dataclass
class _Logged:
    name: str
    proc: subprocess.Popen
    stdout_path: Path
    stderr_path: Path

    def logs(self, limit: int = 6000) -> str:
        return f"--- stdout ---\n{_tail(self.stdout_path, limit)}\n--- stderr ---\n{_tail(self.stderr_path, limit)}"

    def stdout(self) -> str:
        return self.stdout_path.read_bytes().decode("utf-8", "replace")

    def stderr(self) -> str:
        return self.stderr_path.read_bytes().decode("utf-8", "replace")

    def output(self) -> str:
        return self.stdout() + self.stderr()

    def stop(self, sig: int = signal.SIGKILL, timeout: float = 10) -> int | None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self in _LIVE:
            _LIVE.remove(self)
        return self.proc.returncode


@dataclass
class Upstream(_Logged):
    port: int = 0
    # Set when uvicorn listens on a Unix socket (--uds) instead of a port.
    socket_path: Path | None = None

    @property
    def url(self) -> str:
        """What gatehouse is given as GATEHOUSE_UPSTREAM."""
        if self.socket_path is not None:
            return f"unix:{self.socket_path}"
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kwargs) -> httpx.Client:
        """An httpx client that talks to the upstream directly, over whichever socket it has."""
        if self.socket_path is not None:
            return httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket_path)), base_url="http://upstream", **kwargs)
        return httpx.Client(base_url=self.url, **kwargs)


@dataclass
class Gatehouse(_Logged):
    port: int = 0
    admin_port: int = 0
    env: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def rss_kib(self) -> int:
        """Resident set size (VmRSS) of the gatehouse process, in KiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS in /proc/<pid>/status")

    def terminate_and_wait(self, timeout: float = 30) -> int:
        """SIGTERM, then wait for the exit; returns the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            self.stop()
        return code


# Variables that configure (or explicitly disable) JWT verification. Unless a test sets one
# of them, gatehouse runs in proxy-only mode (GATEHOUSE_AUTH=off): auth is mandatory otherwise.
AUTH_SELECTING_VARIABLES = ("GATEHOUSE_AUTH", "BETTER_AUTH_URL", "GATEHOUSE_JWKS_URL")


def gatehouse_env(upstream: str, port: int, admin_port: int, **overrides: str | None) -> dict:
    """A clean environment for gatehouse: no inherited GATEHOUSE_* variables (nor
    BETTER_AUTH_URL). GATEHOUSE_AUTH=off unless `overrides` sets one of
    AUTH_SELECTING_VARIABLES. An override whose value is None removes that variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_") and k != "BETTER_AUTH_URL"}
    env.update(
        GATEHOUSE_UPSTREAM=upstream,
        GATEHOUSE_LISTEN=f"127.0.0.1:{port}",
        GATEHOUSE_ADMIN_LISTEN=f"127.0.0.1:{admin_port}",
        GATEHOUSE_LOG_FORMAT="json",
    )
    if not any(name in overrides for name in AUTH_SELECTING_VARIABLES):
        env["GATEHOUSE_AUTH"] = "off"
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run_gatehouse_command(args: list[str], env: dict, timeout: float = 20) -> subprocess.CompletedProcess:
    """Runs a short-lived gatehouse subcommand and returns its result (text output)."""
    require_binary()
    return subprocess.run(
        [str(GATEHOUSE_BIN), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def require_binary() -> None:
    if not GATEHOUSE_BIN.is_file() or not os.access(GATEHOUSE_BIN, os.X_OK):
        pytest.fail(
            f"gatehouse binary not found at {GATEHOUSE_BIN}; build it (swift build) or set GATEHOUSE_BIN",
            pytrace=False,
        )


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when pytest dies, so no process outlives it."""
    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc!r})")


# ---------------------------------------------------------------------------------------
# process starters


def unix_socket_path(tmp_dir: Path, name: str = "uvicorn.sock") -> Path:
    """`tmp_dir/name`, or the same name in a fresh short directory under /tmp when that path
    would not fit in sun_path (a long TMPDIR)."""
    path = tmp_dir / name
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        short = tempfile.mkdtemp(prefix="gh-e2e-", dir="/tmp")
        atexit.register(shutil.rmtree, short, ignore_errors=True)
        path = Path(short) / name
    return path


def unreachable_upstream_url() -> str:
    """An upstream URL nothing listens on, of the kind E2E_UPSTREAM_SOCKET selects: a free port,
    or the path of a socket that does not exist."""
    if UPSTREAM_SOCKET == "unix":
        return f"unix:{tempfile.gettempdir()}/gh-e2e-absent-{os.getpid()}-{time.monotonic_ns()}.sock"
    return f"http://127.0.0.1:{free_port()}"


def start_upstream(
    tmp_dir: Path, app: str = "upstream_app:app", cwd: Path = HERE, socket_kind: str | None = None
) -> Upstream:
    """uvicorn serving `app`, on 127.0.0.1:<free port> or on `tmp_dir`/uvicorn.sock
    (`socket_kind`, default E2E_UPSTREAM_SOCKET)."""
    socket_kind = socket_kind or UPSTREAM_SOCKET
    port, socket_path = 0, None
    if socket_kind == "unix":
        socket_path = unix_socket_path(tmp_dir)
        listen = ["--uds", str(socket_path)]
        tag = f"uds-{tmp_dir.name}"
    else:
        port = free_port()
        listen = ["--host", "127.0.0.1", "--port", str(port)]
        tag = str(port)
    stdout_path, stderr_path = tmp_dir / f"upstream-{tag}.out", tmp_dir / f"upstream-{tag}.err"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", app,
                *listen,
                "--http", UPSTREAM_HTTP,
                # h11: headers of up to 1 MiB, so the header-size tests measure gatehouse, not uvicorn
                *(["--h11-max-incomplete-event-size", str(1 << 20)] if UPSTREAM_HTTP == "h11" else []),
                "--log-level", "warning",
                "--timeout-graceful-shutdown", "1",
            ],
            cwd=cwd,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
    up = Upstream(
        name=f"upstream:{socket_path or port}", proc=proc, stdout_path=stdout_path, stderr_path=stderr_path,
        port=port, socket_path=socket_path,
    )
    _LIVE.append(up)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"uvicorn exited with {proc.returncode}\n{up.logs()}")
        with up.client(timeout=1) as direct:
            return direct.get("/openapi.json").status_code == 200

    try:
        wait_until(ready, timeout=30, what="upstream to answer")
    except BaseException:
        up.stop()
        raise
    return up


class GatehouseStartError(AssertionError):
    pass


def start_gatehouse(
    tmp_dir: Path, upstream: str, wait_ready: bool = True, ready_path: str = "/readyz", **env_overrides: str
) -> Gatehouse:
    """Starts `gatehouse serve` and waits (at most 30 s) for GET `ready_path` on the admin
    listener to answer 200 (/readyz; /healthz where the upstream is down on purpose)."""
    require_binary()
    port, admin_port = free_port(), free_port()
    while admin_port == port:
        admin_port = free_port()
    env = gatehouse_env(upstream, port, admin_port, **env_overrides)
    stdout_path, stderr_path = tmp_dir / f"gatehouse-{port}.out", tmp_dir / f"gatehouse-{port}.err"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        for attempt in range(50):
            try:
                proc = subprocess.Popen(
                    [str(GATEHOUSE_BIN), "serve"],
                    env=env,
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=_die_with_parent,
                )
                break
            except OSError as exc:  # ETXTBSY: the binary is being relinked right now
                if exc.errno != errno.ETXTBSY or attempt == 49:
                    raise
                time.sleep(0.2)
    gh = Gatehouse(
        name=f"gatehouse:{port}", proc=proc, stdout_path=stdout_path, stderr_path=stderr_path,
        port=port, admin_port=admin_port, env=env,
    )
    _LIVE.append(gh)
    EVERY_GATEHOUSE.append(gh)
    if not wait_ready:
        return gh

    def ready() -> bool:
        if proc.poll() is not None:
            raise GatehouseStartError(f"gatehouse exited with {proc.returncode} before becoming ready\n{gh.logs()}")
        return httpx.get(f"{gh.admin_url}{ready_path}", timeout=1).status_code == 200

    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if ready():
                    break
            except GatehouseStartError:
                raise
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            if time.monotonic() > deadline:
                raise GatehouseStartError(f"gatehouse {ready_path} did not answer 200 within 30 s\n{gh.logs()}")
            time.sleep(0.05)
    except BaseException:
        gh.stop()
        raise
    return gh


# ---------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def upstream(tmp_path_factory) -> Iterator[Upstream]:
    """The test app under uvicorn, on a TCP port or a Unix socket (E2E_UPSTREAM_SOCKET)."""
    up = start_upstream(tmp_path_factory.mktemp("upstream"))
    yield up
    up.stop(signal.SIGTERM, timeout=3)


@pytest.fixture(scope="session")
def tcp_upstream(tmp_path_factory, upstream) -> Iterator[Upstream]:
    """The test app on a TCP port, for what only an http:// upstream has (a path prefix): the
    session's upstream, or with E2E_UPSTREAM_SOCKET=unix a second uvicorn on 127.0.0.1."""
    if upstream.socket_path is None:
        yield upstream
        return
    up = start_upstream(tmp_path_factory.mktemp("upstream-tcp"), socket_kind="tcp")
    yield up
    up.stop(signal.SIGTERM, timeout=3)


@pytest.fixture(scope="session")
def gatehouse_factory(tmp_path_factory):
    """Starts gatehouse instances with extra env; all are killed at session end."""
    started: list[Gatehouse] = []
    tmp = tmp_path_factory.mktemp("gatehouse")

    def factory(upstream_url: str, wait_ready: bool = True, ready_path: str = "/readyz", **env: str) -> Gatehouse:
        gh = start_gatehouse(tmp, upstream_url, wait_ready=wait_ready, ready_path=ready_path, **env)
        started.append(gh)
        return gh

    yield factory
    for gh in started:
        gh.stop()


@pytest.fixture(scope="session")
def gatehouse(gatehouse_factory, upstream) -> Gatehouse:
    """The default instance: everything at its default except the listen addresses."""
    return gatehouse_factory(upstream.url)


@pytest.fixture(scope="module")
def key():
    """One Ed25519 signing key (Python `cryptography`), fresh for each test module that asks."""
    from tokens import SigningKey

    return SigningKey.generate("EdDSA")


@pytest.fixture(scope="module")
def jwks(key):
    """A Better Auth-shaped JWKS server publishing `key` alone (modules may override)."""
    from jwks_server import JWKSServer

    server = JWKSServer(keys=[key.jwk()]).start()
    yield server
    server.stop()


@pytest.fixture
def client(gatehouse) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gatehouse.url, timeout=30) as c:
        yield c


# ---------------------------------------------------------------------------------------
# failure reports: attach the logs of every process alive during the failing test


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for proc in list(_LIVE):
            report.sections.append((f"{proc.name} (pid {proc.proc.pid}) logs", proc.logs(limit=4000)))


# ---------------------------------------------------------------------------------------
# a raw HTTP/1.1 client, for what httpx would normalise or refuse to send


class RawResponse:
    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes, complete: bool):
        self.status = status
        self.reason = reason
        self.headers = headers  # in wire order, names as sent
        self.body = body
        self.complete = complete  # False when the connection ended before the framing said so

    def get_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def get(self, name: str) -> str | None:
        values = self.get_all(name)
        return values[0] if values else None

    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        return (
            f"RawResponse({self.status} {self.reason}, headers={self.headers}, "
            f"body={self.body[:200]!r}, complete={self.complete})"
        )


class ConnectionClosed(Exception):
    """The server closed (or reset) the connection before a response head arrived."""


class RawConnection:
    """One TCP connection; send arbitrary bytes, read responses one at a time."""

    def __init__(self, port: int, timeout: float = 10, host: str = "127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.eof = False

    def __enter__(self) -> "RawConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_until_closed(self, timeout: float) -> bytes:
        """Everything until the peer closes; raises socket.timeout if it does not."""
        self.sock.settimeout(timeout)
        while self._fill():
            pass
        data, self.buf = self.buf, b""
        return data

    def read_response(self, head_request: bool = False) -> RawResponse:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionClosed(f"connection closed before a response head; got {self.buf[:500]!r}")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
        resp = RawResponse(status, reason, headers, b"", True)
        if status == 100:
            return self.read_response(head_request)
        if head_request or status in (204, 304) or 100 <= status < 200:
            return resp
        te = ",".join(resp.get_all("transfer-encoding")).lower()
        cl = resp.get("content-length")
        if "chunked" in te:
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    if not self._fill():
                        resp.body, resp.complete = body, False
                        return resp
                size_line, self.buf = self.buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    # the trailer section: field lines until an empty one
                    while True:
                        while b"\r\n" not in self.buf:
                            if not self._fill():
                                resp.body, resp.complete = body, False
                                return resp
                        line, self.buf = self.buf.split(b"\r\n", 1)
                        if not line:
                            resp.body = body
                            return resp
                while len(self.buf) < size + 2:
                    if not self._fill():
                        resp.body, resp.complete = body + self.buf[:size], False
                        self.buf = b""
                        return resp
                body += self.buf[:size]
                self.buf = self.buf[size + 2 :]
        if cl is not None:
            n = int(cl)
            while len(self.buf) < n:
                if not self._fill():
                    resp.body, resp.complete = self.buf, False
                    self.buf = b""
                    return resp
            resp.body, self.buf = self.buf[:n], self.buf[n:]
            return resp
        # delimited by close
        while self._fill():
            pass
        resp.body, self.buf = self.buf, b""
        return resp


def raw_request(port: int, data: bytes, timeout: float = 10, head_request: bool = False) -> RawResponse:
    with RawConnection(port, timeout=timeout) as conn:
        conn.send(data)
        return conn.read_response(head_request=head_request)


@pytest.fixture
def raw(gatehouse):
    """raw(b"GET / HTTP/1.1\\r\\n...") -> RawResponse, against the default instance."""

    def send(data: bytes, **kw) -> RawResponse:
        return raw_request(gatehouse.port, data, **kw)

    return send


def header_values(echo: dict, name: str) -> list[str]:
    """Values of `name` (case-insensitive) among the headers the upstream received."""
    return [v for k, v in echo["headers"] if k.lower() == name.lower()]
