"""What the soak and chaos drivers share: the processes (issuer, uvicorn upstream, gatehouse),
the signing keys and tokens, the pool of Better Auth sessions, the request classes with their expected answers, the recorder,
the per-second sampler of gatehouse's RSS / fds / threads, and the report (Markdown, JSON, PNG).

Everything talks to 127.0.0.1 only. No token or session credential is ever printed or written: results carry
the class, status and a short reason; the report directory is scanned at the end for every minted
token, every session token and signature, and every made-up session cookie.
"""

from __future__ import annotations

import asyncio
import ctypes
import base64
import errno
import hashlib
import hmac
import json
import math
import os
import random
import re
import resource
import signal
import socket
import string
import subprocess
import sys
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidHandshake

import payload

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ALGORITHMS = ["EdDSA", "ES256", "ES512", "RS256", "PS256"]
PY = sys.executable


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def env_range(name: str, default: tuple[float, float]) -> tuple[float, float]:
    value = os.environ.get(name)
    if not value:
        return default
    low, _, high = value.partition("-")
    return float(low), float(high or low)


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.1f} ms"


# ---------------------------------------------------------------------------------------
# processes


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)


def _spawn(name: str, argv: list[str], log_path: Path, env: dict | None = None, cwd: Path | None = None,
           stdout_pipe: bool = False) -> Proc:
    log = log_path.open("ab")
    for attempt in range(50):
        try:
            popen = subprocess.Popen(
                argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout_pipe else log, stderr=log, preexec_fn=_die_with_parent,
            )
            break
        except OSError as exc:  # ETXTBSY: the binary is being relinked
            if exc.errno != errno.ETXTBSY or attempt == 49:
                raise
            time.sleep(0.2)
    log.close()
    return Proc(name, popen, log_path)


@dataclass
class IssuerProc(Proc):
    jwks_port: int = 0
    control_port: int = 0

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.jwks_port}"

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"


def start_issuer(report_dir: Path, rotate_seconds: float) -> IssuerProc:
    proc = _spawn("issuer", [PY, str(HERE / "issuer.py"), "--rotate-seconds", str(rotate_seconds)],
                  report_dir / "issuer.log", cwd=HERE, stdout_pipe=True)
    line = proc.popen.stdout.readline()  # type: ignore[union-attr]
    if not line:
        raise RuntimeError(f"issuer did not start; see {proc.log_path}")
    ports = json.loads(line)
    return IssuerProc(proc.name, proc.popen, proc.log_path, ports["jwks_port"], ports["control_port"])


@dataclass
class UpstreamProc(Proc):
    port: int = 0
    http: str = "httptools"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_upstream(report_dir: Path, port: int | None = None, http: str = "httptools") -> UpstreamProc:
    port = port or free_port()
    proc = _spawn(
        "upstream",
        [PY, "-m", "uvicorn", "upstream:app", "--app-dir", str(HERE), "--host", "127.0.0.1", "--port", str(port),
         "--http", http, "--log-level", "warning", "--timeout-graceful-shutdown", "1"],
        report_dir / "upstream.log", cwd=HERE,
    )
    up = UpstreamProc(proc.name, proc.popen, proc.log_path, port, http)
    wait_http(f"{up.url}/_control/health", 30, proc=up)
    return up


@dataclass
class GatehouseProc(Proc):
    port: int = 0
    admin_port: int = 0
    env: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"


def gatehouse_binary() -> Path:
    value = os.environ.get("GATEHOUSE_BIN")
    path = Path(value) if value else REPO / ".build" / "release" / "gatehouse"
    if not path.is_file() or not os.access(path, os.X_OK):
        raise SystemExit(f"gatehouse binary not found at {path}; build it or set GATEHOUSE_BIN")
    return path


def start_gatehouse(binary: Path, report_dir: Path, upstream_url: str, issuer_origin: str, **overrides: str) -> GatehouseProc:
    port, admin_port = free_port(), free_port()
    while admin_port == port:
        admin_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_") and k != "BETTER_AUTH_URL"}
    env.update(
        BETTER_AUTH_URL=issuer_origin,
        GATEHOUSE_UPSTREAM=upstream_url,
        GATEHOUSE_LISTEN=f"127.0.0.1:{port}",
        GATEHOUSE_ADMIN_LISTEN=f"127.0.0.1:{admin_port}",
        GATEHOUSE_LOG_FORMAT="json",
    )
    env.update(overrides)
    proc = _spawn("gatehouse", [str(binary), "serve"], report_dir / "gatehouse.log", env=env)
    gh = GatehouseProc(proc.name, proc.popen, proc.log_path, port, admin_port, env)
    wait_http(f"{gh.admin_url}/readyz", 30, proc=gh)
    return gh


def wait_http(url: str, timeout: float, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}; see {proc.log_path}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer 200 within {timeout} s ({last!r})")


# ---------------------------------------------------------------------------------------
# /proc


@dataclass
class ProcSample:
    rss_kib: int
    fds: int
    threads: int
    cpu_seconds: float


def proc_sample(pid: int) -> ProcSample | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rss = threads = 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    fields = stat.rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    return ProcSample(rss, fds, threads, cpu)


def close_wait_sockets(pid: int, remote_port: int) -> int:
    """gatehouse's TCP sockets to `remote_port` in CLOSE-WAIT (the peer closed, gatehouse has
    not): idle upstream connections uvicorn closed that libcurl still holds in its pool."""
    try:
        inodes = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
        count = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[9] in inodes and fields[3] == "08" and int(fields[2].rsplit(":", 1)[1], 16) == remote_port:
                    count += 1
        return count
    except (FileNotFoundError, ProcessLookupError):
        return 0


# ---------------------------------------------------------------------------------------
# keys and tokens


class KeyRing:
    """The issuer's signing keys, fetched over its control listener. `follow` (the soak): valid
    tokens use the newest published generation as soon as it appears (gatehouse meets the new
    kid and fetches on first sight). Otherwise (chaos) the generation in use is set explicitly
    with `use`, so valid tokens only name kids gatehouse is known to hold."""

    def __init__(self, control_url: str, follow: bool) -> None:
        self.control_url = control_url
        self.follow = follow
        self.keys: dict[int, dict[str, tuple[str, Any]]] = {}  # generation -> alg -> (kid, key)
        self.published: list[int] = []
        self.current = 0
        self.switches: list[tuple[float, int]] = []

    async def refresh(self, client: httpx.AsyncClient) -> None:
        document = (await client.get(f"{self.control_url}/keys", timeout=10)).json()
        for gen in document["generations"]:
            number = gen["generation"]
            if number not in self.keys:
                self.keys[number] = {
                    k["alg"]: (k["kid"], serialization.load_pem_private_key(k["pem"].encode(), password=None))
                    for k in gen["keys"]
                }
        self.published = [g["generation"] for g in document["generations"]]
        for number in list(self.keys):
            if number not in self.published:
                del self.keys[number]
        if self.follow or self.current == 0:
            self.use(max(self.published))

    def use(self, generation: int) -> None:
        if generation != self.current:
            self.current = generation
            self.switches.append((time.monotonic(), generation))

    async def follow_loop(self, client: httpx.AsyncClient, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh(client)
            except (httpx.HTTPError, ValueError):
                pass

    def key(self, alg: str, generation: int | None = None) -> tuple[str, Any]:
        return self.keys[generation or self.current][alg]


class Minter:
    """Tokens of Better Auth's shape, made with PyJWT from the issuer's keys. Every token's
    signature segment is remembered (only to check that none reaches a log)."""

    REPEATED_POOL = 8
    REPEATED_MAX_AGE = 300.0

    def __init__(self, ring: KeyRing, origin: str, rng: random.Random) -> None:
        self.ring = ring
        self.origin = origin
        self.rng = rng
        self.signatures: set[str] = set()
        self.minted = 0
        self._pools: dict[tuple[int, str], list[tuple[str, str, float]]] = {}
        # keys nobody publishes: for forgeries and kid floods
        self._rogue = {
            "EdDSA": ed25519.Ed25519PrivateKey.generate(),
            "ES256": ec.generate_private_key(ec.SECP256R1()),
            "ES512": ec.generate_private_key(ec.SECP521R1()),
            "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        }
        self._rogue["PS256"] = self._rogue["RS256"]

    def _payload(self, sub: str, now: float, **changes: Any) -> dict:
        claims = {
            "iat": int(now), "name": "Soak Tester", "email": f"{sub[:12].lower()}@soak.example",
            "emailVerified": True, "id": sub, "sub": sub, "exp": int(now) + 900,
            "iss": self.origin, "aud": self.origin,
        }
        claims.update(changes)
        return claims

    def _sign(self, claims: dict, key: Any, alg: str, kid: str) -> str:
        # Better Auth's header: {"alg", "kid"} and no "typ" (PyJWT drops a falsy typ)
        token = jwt.encode(claims, key, algorithm=alg, headers={"kid": kid, "typ": None})
        self.signatures.add(token.rsplit(".", 1)[1])
        self.minted += 1
        return token

    def new_sub(self) -> str:
        return "u" + "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(23))

    def valid(self, alg: str, repeated: bool, generation: int | None = None) -> tuple[str, str]:
        """(token, sub). Repeated tokens come from a small pool per generation and algorithm."""
        generation = generation or self.ring.current
        kid, key = self.ring.key(alg, generation)
        now = time.time()
        if not repeated:
            sub = self.new_sub()
            return self._sign(self._payload(sub, now), key, alg, kid), sub
        pool = self._pools.setdefault((generation, alg), [])
        pool[:] = [entry for entry in pool if now - entry[2] < self.REPEATED_MAX_AGE]
        if len(pool) < self.REPEATED_POOL:
            sub = self.new_sub()
            pool.append((self._sign(self._payload(sub, now), key, alg, kid), sub, now))
        for stale in [k for k in self._pools if k[0] not in self.ring.keys]:
            del self._pools[stale]
        token, sub, _ = self.rng.choice(pool)
        return token, sub

    def expired(self, alg: str) -> str:
        kid, key = self.ring.key(alg)
        now = time.time()
        return self._sign(self._payload(self.new_sub(), now - 1500, exp=int(now) - 600), key, alg, kid)

    def wrong_audience(self, alg: str) -> str:
        kid, key = self.ring.key(alg)
        return self._sign(self._payload(self.new_sub(), time.time(), aud="https://wrong-audience.example"), key, alg, kid)

    def forged(self, alg: str) -> str:
        """A current kid, signed by a key that is not the issuer's: bad signature."""
        kid, _ = self.ring.key(alg)
        return self._sign(self._payload(self.new_sub(), time.time()), self._rogue[alg], alg, kid)

    def unknown_kid(self, alg: str = "EdDSA") -> str:
        kid = "flood" + "".join(self.rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(27))
        return self._sign(self._payload(self.new_sub(), time.time()), self._rogue[alg], alg, kid)


def bearer(token: str | None) -> dict:
    return {"authorization": f"Bearer {token}"} if token else {}


# ---------------------------------------------------------------------------------------
# Better Auth sessions

SESSION_COOKIE = "better-auth.session_token"  # gatehouse's name for it with BETTER_AUTH_URL http://
SESSION_UNAVAILABLE = "Authentication service unavailable"
_ALNUM = string.ascii_letters + string.digits


def session_cookie(value: str, others: bool = False) -> dict:
    """The Cookie header a browser sends (optionally among other cookies of the site)."""
    cookie = f"{SESSION_COOKIE}={value}"
    return {"cookie": f"theme=dark; {cookie}; lang=en" if others else cookie}


@dataclass
class PooledSession:
    """A session the issuer created (loopback, test credentials; never printed or written)."""

    id: str
    user_id: str
    token: str
    signature: str
    value: str  # encodeURIComponent(token.signature): the cookie value and the bearer value
    expires_at: float  # epoch seconds


class SessionPool:
    """The driver's Better Auth sessions: `size` live sessions, each created (POST /sessions on
    the issuer's control listener) with its own lifetime drawn from `lifetime` seconds. A session
    is used only while at least `margin` seconds of it are left (a request started then reaches
    gatehouse well before `expiresAt`, even at the short-request deadline); past that it is
    retired and a new one takes its place, so over a run sessions come and go (new credentials:
    lookups) while the live ones are asked for again and again (cache hits).

    For the cache bound, every use is noted per credential (session id and kind, "cookie" or
    "bearer": gatehouse caches the two apart): first start and last end, in monotonic time.
    `secrets` holds every credential string the pool made (tokens, signatures in both
    encodings, made-up cookie tokens) for the leak scan."""

    def __init__(self, control_url: str, rng: random.Random, size: int = 12,
                 lifetime: tuple[float, float] = (60.0, 180.0), margin: float = 35.0) -> None:
        self.control_url = control_url
        self.rng = rng
        self.size = size
        self.lifetime = lifetime
        self.margin = max(margin, 1.0)
        self.live: list[PooledSession] = []
        self.retired = 0
        self.created = 0
        self.made_up = 0
        self.secrets: set[str] = set()
        self.uses: dict[tuple[str, str], list[float]] = {}  # (id, kind) -> [first start, last end, count]
        self.use_times: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)  # (id, kind) -> [(start, end)]
        self._rogue_secret = os.urandom(32)
        self._lock = asyncio.Lock()

    def _remember(self, token: str, signature: str) -> None:
        self.secrets.update((token, signature, quote(signature, safe="")))

    async def create(self, client: httpx.AsyncClient, n: int = 1, ttl: float | None = None) -> list[PooledSession]:
        """Creates `n` sessions (each with a lifetime from the range unless `ttl`) on the issuer."""
        made = []
        for _ in range(n):
            seconds = ttl if ttl is not None else self.rng.uniform(*self.lifetime)
            response = await client.post(f"{self.control_url}/sessions", params={"n": 1, "ttl": f"{seconds:.0f}"}, timeout=10)
            response.raise_for_status()
            for item in response.json()["sessions"]:
                session = PooledSession(item["id"], item["user_id"], item["token"], item["signature"], item["value"],
                                        float(item["expires_at"]))
                self._remember(session.token, session.signature)
                made.append(session)
        self.created += len(made)
        return made

    def usable(self, session: PooledSession, now: float | None = None) -> bool:
        return session.expires_at - (now or time.time()) >= self.margin

    async def refresh(self, client: httpx.AsyncClient) -> None:
        """Retires the sessions too close to their expiry and tops the pool up."""
        async with self._lock:
            now = time.time()
            keep = [x for x in self.live if self.usable(x, now)]
            self.retired += len(self.live) - len(keep)
            self.live = keep
            if len(self.live) < self.size:
                self.live += await self.create(client, self.size - len(self.live))

    async def maintain_loop(self, client: httpx.AsyncClient, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh(client)
            except (httpx.HTTPError, ValueError, KeyError):
                pass

    async def pick(self, client: httpx.AsyncClient) -> PooledSession:
        """A live session with at least `margin` seconds left (one is created now if the
        maintenance loop has fallen behind)."""
        now = time.time()
        usable = [x for x in self.live if self.usable(x, now)]
        if usable:
            return self.rng.choice(usable)
        await self.refresh(client)
        return self.rng.choice(self.live)

    def note(self, session: PooledSession, kind: str, start: float, end: float) -> None:
        self.use_times[(session.id, kind)].append((start, end))
        entry = self.uses.get((session.id, kind))
        if entry is None:
            self.uses[(session.id, kind)] = [start, end, 1]
        else:
            entry[0] = min(entry[0], start)
            entry[1] = max(entry[1], end)
            entry[2] += 1

    def made_up_value(self) -> str:
        """A well-shaped session cookie value nobody issued: a random 32-character token and a
        correct-looking signature made with a secret that is not the issuer's. Distinct each
        time, so each costs gatehouse one lookup (then its negative cache holds it)."""
        token = "".join(self.rng.choice(_ALNUM) for _ in range(32))
        signature = base64.b64encode(hmac.new(self._rogue_secret, token.encode(), hashlib.sha256).digest()).decode()
        self._remember(token, signature)
        self.made_up += 1
        return quote(f"{token}.{signature}", safe="-_.!~*'()")

    def lookup_bound(self, ttl: float) -> tuple[int, dict[tuple[str, str], int]]:
        """gatehouse's documented cache, per credential: a live session is trusted for `ttl`
        after its lookup finished (never past expiresAt, which no use comes near: `margin`), so
        two lookups of one credential start at least `ttl` apart, and every lookup was caused
        by a request between the credential's first start and last end. Hence at most
        ⌊(last end − first start) / ttl⌋ + 1 lookups per credential. (Total, per credential.)"""
        per = {key: int((end - start) // ttl) + 1 for key, (start, end, _) in self.uses.items()}
        return sum(per.values()), per

    def lookup_floor(self, ttl: float) -> dict[tuple[str, str], int]:
        """The fewest lookups a cache that forgets after `ttl` can have made, per credential.
        Whatever lookup served a use ended before that use's answer (the use waited for it, or
        found its entry), so its entry is gone by the use's end + `ttl`. Walking the uses by
        start: a use that starts after the current one's end + `ttl` cannot be served by any
        lookup counted so far, so it needs one more. A cache that never expired entries would
        make one lookup per credential and fall below this for long-lived credentials."""
        floor = {}
        for key, times in self.use_times.items():
            count, covered_until = 0, float("-inf")
            for start, end in sorted(times):
                if start > covered_until:
                    count += 1
                    covered_until = end + ttl
            floor[key] = count
        return floor


# ---------------------------------------------------------------------------------------
# results


OK, UNEXPECTED, MISMATCH, TRANSPORT, CUT, HUNG = "ok", "unexpected_status", "mismatch", "transport_error", "cut", "hung"


@dataclass
class Result:
    cls: str
    start: float
    end: float
    outcome: str
    status: int | None = None
    detail: str = ""
    latency: float | None = None  # the class's latency figure (see each class)
    extra: dict = field(default_factory=dict)
    tags: tuple = ()


class Recorder:
    def __init__(self) -> None:
        self.results: list[Result] = []
        self.t0 = time.monotonic()
        self.completions: deque[tuple[float, float | None, str]] = deque()  # (end, latency, class kind)
        self.in_flight: dict[str, int] = defaultdict(int)
        self.started: dict[str, int] = defaultdict(int)
        self.shed: dict[str, int] = defaultdict(int)
        self.ws_rtts: list[float] = []

    def add(self, result: Result, kind: str) -> None:
        self.results.append(result)
        self.completions.append((result.end, result.latency if result.outcome == OK else None, kind))


class RequestClass:
    """One kind of request with its expected answer. `run` returns a Result; the runner adds
    the deadline. A new class (as SessionGet for Better Auth sessions) is a subclass with a
    name, a kind ("short", "transfer", "sse", "ws") and a `run`, added to the mix with a weight."""

    name = "?"
    kind = "short"

    def deadline(self, ctx: "Context") -> float:
        return ctx.short_deadline

    async def run(self, ctx: "Context", rng: random.Random) -> Result:
        raise NotImplementedError


@dataclass
class Context:
    base_url: str
    ws_url: str
    minter: Minter
    recorder: Recorder
    short: httpx.AsyncClient
    transfer: httpx.AsyncClient
    stream: httpx.AsyncClient
    sse_seconds: tuple[float, float] = (30.0, 120.0)
    short_deadline: float = 30.0
    transfer_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(4))
    transfer_waiting: int = 0
    max_transfer_waiting: int = 16
    max_in_flight: int = 3000
    # set by the chaos driver: tags added to each result started while a fault is active
    active_tags: set = field(default_factory=set)
    # set by the chaos driver while it compares latencies: arrivals of these kinds are skipped
    # (counted as shed "(paused)"), so the comparison is not decided by which of two runs
    # happened to overlap a 64 MiB transfer hashed by Python on the same two cores
    paused_kinds: set = field(default_factory=set)
    # Better Auth sessions (the session classes need it; gatehouse runs with GATEHOUSE_SESSIONS=both)
    sessions: SessionPool | None = None
    control: httpx.AsyncClient | None = None  # for the pool's issuer calls

    @classmethod
    def create(cls, base_url: str, minter: Minter, recorder: Recorder, **kw) -> "Context":
        timeout = httpx.Timeout(60.0, connect=10.0)
        return cls(
            base_url=base_url,
            ws_url=base_url.replace("http://", "ws://"),
            minter=minter,
            recorder=recorder,
            short=httpx.AsyncClient(base_url=base_url, timeout=timeout,
                                    limits=httpx.Limits(max_connections=256, max_keepalive_connections=48)),
            transfer=httpx.AsyncClient(base_url=base_url, timeout=timeout,
                                       limits=httpx.Limits(max_connections=16, max_keepalive_connections=8)),
            stream=httpx.AsyncClient(base_url=base_url, timeout=timeout,
                                     limits=httpx.Limits(max_connections=None, max_keepalive_connections=16)),
            control=httpx.AsyncClient(timeout=10),
            **kw,
        )

    async def aclose(self) -> None:
        for client in (self.short, self.transfer, self.stream):
            await client.aclose()
        if self.control is not None:
            await self.control.aclose()


def _unexpected(cls: str, start: float, expected: Any, response: httpx.Response, body: bytes = b"") -> Result:
    text = body[:120].decode("utf-8", "replace") if body else ""
    return Result(cls, start, time.monotonic(), UNEXPECTED, response.status_code,
                  f"expected {expected}, got {response.status_code} {text}".strip())


class ValidGet(RequestClass):
    """GET with a valid token (repeated from a small pool, or distinct), any of the five
    algorithms: 200, and FastAPI saw the token's sub as X-User-Id and `X-Auth-Method: jwt`.
    Latency: to the full body."""

    kind = "short"

    def __init__(self, repeated: bool) -> None:
        self.repeated = repeated
        self.name = "get_repeated" if repeated else "get_distinct"

    async def run(self, ctx: Context, rng: random.Random) -> Result:
        alg = rng.choice(ALGORITHMS)
        token, sub = ctx.minter.valid(alg, repeated=self.repeated)
        n = rng.randrange(1 << 30)
        start = time.monotonic()
        response = await ctx.short.get(f"/echo/{self.name}/{alg}", params={"n": n}, headers=bearer(token))
        end = time.monotonic()
        if response.status_code != 200:
            return _unexpected(self.name, start, 200, response, response.content)
        body = response.json()
        if body.get("n") != n or body.get("user") != sub or body.get("method") != "jwt":
            return Result(self.name, start, end, MISMATCH, 200, "echo does not match the request (n, X-User-Id or X-Auth-Method)")
        return Result(self.name, start, end, OK, 200, latency=end - start, extra={"alg": alg})


def _detail(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("detail") if isinstance(body, dict) else None


def _session_refusal(name: str, start: float, response: httpx.Response, expected: Any) -> Result:
    """A session request answered with something other than expected; `extra` keeps what the
    chaos run's fault windows look at (the status is in `status`): the body's detail and
    whether Retry-After was sent. Never the credential."""
    result = _unexpected(name, start, expected, response, response.content)
    result.extra = {"detail": _detail(response), "retry_after": "retry-after" in response.headers}
    return result


def session_unavailable(r: "Result") -> bool:
    """The answer gatehouse owes a session it has not cached while Better Auth is down or
    faulty: 503 {"detail": "Authentication service unavailable"} with Retry-After."""
    return (r.outcome == UNEXPECTED and r.status == 503 and r.extra.get("detail") == SESSION_UNAVAILABLE
            and bool(r.extra.get("retry_after")))


class SessionGet(RequestClass):
    """GET with a Better Auth session from the pool, as the session cookie (a browser: GET is a
    safe method, no Origin needed; sometimes among other cookies) or as the bearer plugin's
    token (`Authorization: Bearer <value>`): 200, FastAPI saw the session's user id as
    X-User-Id and `X-Auth-Method: session`, and neither Better Auth's Set-Cookie nor its
    set-auth-token reached the client. Latency: to the full body."""

    kind = "short"

    def __init__(self, via: str) -> None:
        assert via in ("cookie", "bearer"), via
        self.via = via
        self.name = f"session_{via}"

    async def run(self, ctx: Context, rng: random.Random) -> Result:
        assert ctx.sessions is not None and ctx.control is not None, "a session class needs Context.sessions"
        session = await ctx.sessions.pick(ctx.control)
        headers = session_cookie(session.value, others=rng.random() < 0.5) if self.via == "cookie" else bearer(session.value)
        n = rng.randrange(1 << 30)
        start = time.monotonic()
        response = await ctx.short.get(f"/echo/{self.name}", params={"n": n}, headers=headers)
        end = time.monotonic()
        ctx.sessions.note(session, self.via, start, end)
        if response.status_code != 200:
            return _session_refusal(self.name, start, response, 200)
        if response.headers.get_list("set-cookie") or "set-auth-token" in response.headers:
            return Result(self.name, start, end, MISMATCH, 200, "Better Auth's Set-Cookie / set-auth-token reached the client")
        body = response.json()
        if body.get("n") != n or body.get("user") != session.user_id or body.get("method") != "session":
            return Result(self.name, start, end, MISMATCH, 200, "echo does not match the session (n, X-User-Id or X-Auth-Method)")
        return Result(self.name, start, end, OK, 200, latency=end - start)


REFUSALS = {
    "refuse_expired": "Invalid token: expired",
    "refuse_forged": "Invalid token: bad signature",
    "refuse_audience": "Invalid token: audience mismatch",
    "refuse_no_token": "Not authenticated",
    "refuse_unknown_kid": "Invalid token: unknown key",
    "refuse_made_up_session": "Invalid token: session not found",
}


class Refusal(RequestClass):
    """A request gatehouse must refuse: 401, WWW-Authenticate, FastAPI's body shape with the
    reason. Latency: to the full body."""

    kind = "short"

    def __init__(self, name: str) -> None:
        self.name = name
        self.expected_detail = REFUSALS[name]

    def token(self, ctx: Context, rng: random.Random) -> str | None:
        alg = rng.choice(ALGORITHMS)
        if self.name == "refuse_expired":
            return ctx.minter.expired(alg)
        if self.name == "refuse_forged":
            return ctx.minter.forged(alg)
        if self.name == "refuse_audience":
            return ctx.minter.wrong_audience(alg)
        if self.name == "refuse_unknown_kid":
            return ctx.minter.unknown_kid(alg)
        return None

    async def run(self, ctx: Context, rng: random.Random) -> Result:
        if self.name == "refuse_made_up_session":
            # a well-shaped session cookie Better Auth never issued: one lookup, `null`, 401
            assert ctx.sessions is not None, "refuse_made_up_session needs Context.sessions"
            headers = session_cookie(ctx.sessions.made_up_value(), others=rng.random() < 0.5)
        else:
            headers = bearer(self.token(ctx, rng))
        start = time.monotonic()
        response = await ctx.short.get(f"/echo/{self.name}", headers=headers)
        end = time.monotonic()
        detail = _detail(response)
        if response.status_code != 401 or detail != self.expected_detail or "www-authenticate" not in response.headers:
            if self.name == "refuse_made_up_session":
                return _session_refusal(self.name, start, response, f"401 {self.expected_detail!r}")
            return _unexpected(self.name, start, f"401 {self.expected_detail!r}", response, response.content)
        return Result(self.name, start, end, OK, 401, latency=end - start)


class Upload(RequestClass):
    """POST of 1 KiB-64 MiB (log-uniform) of deterministic bytes, with Content-Length or
    chunked: 200 and FastAPI's length and SHA-256 equal ours. Latency: whole exchange."""

    kind = "transfer"
    name = "upload"

    def deadline(self, ctx: Context) -> float:
        return 120.0

    async def run(self, ctx: Context, rng: random.Random) -> Result:
        size, seed = rng.choice(payload.SIZES), rng.randrange(1 << 31)
        use_length = rng.random() < 0.5
        token, _ = ctx.minter.valid(rng.choice(ALGORITHMS), repeated=True)
        digest = hashlib.sha256()

        async def body():
            for index, piece in enumerate(payload.chunks(seed, size)):
                digest.update(piece)
                yield piece
                if index % 16 == 15:
                    await asyncio.sleep(0)

        headers = bearer(token)
        if use_length:
            headers["content-length"] = str(size)
        start = time.monotonic()
        response = await ctx.transfer.post("/upload", content=body(), headers=headers)
        end = time.monotonic()
        if response.status_code != 200:
            return _unexpected(self.name, start, 200, response, response.content)
        answer = response.json()
        if answer.get("len") != size or answer.get("sha256") != digest.hexdigest():
            return Result(self.name, start, end, MISMATCH, 200,
                          f"sent {size} bytes, FastAPI received {answer.get('len')} with another SHA-256"
                          if answer.get("len") != size else "SHA-256 differs at FastAPI")
        return Result(self.name, start, end, OK, 200, latency=end - start, extra={"bytes": size})


class Download(RequestClass):
    """GET of 1 KiB-64 MiB of deterministic bytes (Content-Length or chunked): 200 and the
    bytes' SHA-256 equal FastAPI's X-Content-SHA256. A body that ends early is a cut
    (connection aborted, never a complete-looking short body); a short body that looked
    complete is a mismatch. Latency: whole exchange."""

    kind = "transfer"
    name = "download"
    size: int | None = None  # a fixed size instead of a random one

    def deadline(self, ctx: Context) -> float:
        return 120.0

    async def run(self, ctx: Context, rng: random.Random) -> Result:
        size, seed = self.size or rng.choice(payload.SIZES), rng.randrange(16)
        token, _ = ctx.minter.valid(rng.choice(ALGORITHMS), repeated=True)
        start = time.monotonic()
        received = 0
        digest = hashlib.sha256()
        async with ctx.transfer.stream(
            "GET", "/download", params={"size": size, "seed": seed, "length": rng.randrange(2)}, headers=bearer(token)
        ) as response:
            if response.status_code != 200:
                body = await response.aread()
                return _unexpected(self.name, start, 200, response, body)
            expected = response.headers.get("x-content-sha256")
            try:
                async for piece in response.aiter_raw():
                    digest.update(piece)
                    received += len(piece)
            except httpx.HTTPError as exc:
                return Result(self.name, start, time.monotonic(), CUT, 200,
                              f"body cut after {received} of {size} bytes ({type(exc).__name__})")
        end = time.monotonic()
        if received != size or digest.hexdigest() != expected:
            return Result(self.name, start, end, MISMATCH, 200,
                          f"200 with {received} of {size} bytes" if received != size else "SHA-256 differs")
        return Result(self.name, start, end, OK, 200, latency=end - start, extra={"bytes": size})


class ServerSentEvents(RequestClass):
    """An SSE stream of numbered events, one a second, for `sse_seconds`: 200, every number in
    order, then the end event with the count. Latency: to the first event."""

    kind = "sse"
    name = "sse"

    def deadline(self, ctx: Context) -> float:
        return ctx.sse_seconds[1] + 30.0

    async def run(self, ctx: Context, rng: random.Random) -> Result:
        seconds = rng.uniform(*ctx.sse_seconds)
        token, _ = ctx.minter.valid(rng.choice(ALGORITHMS), repeated=True)
        start = time.monotonic()
        first: float | None = None
        last_event = start
        max_gap = 0.0
        expected_next = 0
        ended = False
        event: dict[str, str] = {}
        async with ctx.stream.stream("GET", "/sse", params={"seconds": f"{seconds:.1f}", "interval": "1"},
                                     headers=bearer(token)) as response:
            if response.status_code != 200:
                body = await response.aread()
                return _unexpected(self.name, start, 200, response, body)
            try:
                async for line in response.aiter_lines():
                    if line:
                        name, _, value = line.partition(":")
                        event[name] = value.strip()
                        continue
                    now = time.monotonic()
                    if first is None:
                        first = now - start
                    max_gap = max(max_gap, now - last_event)
                    last_event = now
                    if event.get("event") == "end":
                        if event.get("data") != str(expected_next):
                            return Result(self.name, start, now, MISMATCH, 200,
                                          f"end event says {event.get('data')}, received {expected_next}")
                        ended = True
                    elif event.get("data") != str(expected_next):
                        return Result(self.name, start, now, MISMATCH, 200,
                                      f"event {event.get('data')} where {expected_next} was due")
                    else:
                        expected_next += 1
                    event = {}
            except httpx.HTTPError as exc:
                return Result(self.name, start, time.monotonic(), CUT, 200,
                              f"stream cut after {expected_next} events ({type(exc).__name__})")
        end = time.monotonic()
        if not ended:
            return Result(self.name, start, end, MISMATCH, 200,
                          f"stream ended cleanly after {expected_next} events without its end event")
        return Result(self.name, start, end, OK, 200, latency=first,
                      extra={"events": expected_next, "max_gap": max_gap})


class WebSocketEcho(RequestClass):
    """A WebSocket through gatehouse (token in Authorization): 101, then 10-30 text and binary
    messages (16 B-16 KiB, numbered), each echoed unchanged. Latency: the handshake; every
    message's round trip is recorded too."""

    kind = "ws"
    name = "websocket"

    def deadline(self, ctx: Context) -> float:
        return 60.0

    async def run(self, ctx: Context, rng: random.Random) -> Result:
        token, _ = ctx.minter.valid(rng.choice(ALGORITHMS), repeated=True)
        start = time.monotonic()
        handshake: float | None = None
        sent = 0
        try:
            async with ws_connect(f"{ctx.ws_url}/ws/echo", additional_headers=bearer(token), open_timeout=30,
                                  close_timeout=10, ping_interval=None, max_size=1 << 20) as ws:
                handshake = time.monotonic() - start
                for k in range(rng.randrange(10, 31)):
                    size = int(16 * 1024 ** rng.random())
                    if rng.random() < 0.5:
                        message: str | bytes = f"{k}:" + "".join(rng.choice("abcdefghij") for _ in range(size))
                    else:
                        message = k.to_bytes(4, "big") + rng.randbytes(size)
                    t = time.monotonic()
                    await ws.send(message)
                    echoed = await ws.recv()
                    ctx.recorder.ws_rtts.append(time.monotonic() - t)
                    if echoed != message:
                        return Result(self.name, start, time.monotonic(), MISMATCH, 101, f"message {k} echoed differently")
                    sent += 1
                    await asyncio.sleep(rng.uniform(0, 0.1))
        except InvalidStatus as exc:
            return Result(self.name, start, time.monotonic(), UNEXPECTED, exc.response.status_code,
                          f"expected 101, got {exc.response.status_code}")
        except ConnectionClosed as exc:
            return Result(self.name, start, time.monotonic(), CUT, 101, f"closed after {sent} echoes ({exc.rcvd})")
        except (InvalidHandshake, OSError) as exc:
            return Result(self.name, start, time.monotonic(), TRANSPORT if handshake is None else CUT, None,
                          f"{type(exc).__name__}")
        end = time.monotonic()
        return Result(self.name, start, end, OK, 101, latency=handshake, extra={"messages": sent})


class SlowGet(RequestClass):
    """GET /slow (the chaos run's in-flight requests during the drain): 200 after `seconds`."""

    kind = "short"
    name = "slow"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def run(self, ctx: Context, rng: random.Random) -> Result:
        token, _ = ctx.minter.valid("EdDSA", repeated=True)
        start = time.monotonic()
        response = await ctx.transfer.get("/slow", params={"seconds": self.seconds}, headers=bearer(token))
        end = time.monotonic()
        if response.status_code != 200 or response.json().get("slept") != self.seconds:
            return _unexpected(self.name, start, 200, response, response.content)
        return Result(self.name, start, end, OK, 200, latency=end - start)


SESSION_CLASSES = ("session_cookie", "session_bearer", "refuse_made_up_session")


def soak_mix() -> list[tuple[RequestClass, float]]:
    """The issue's mix: 70 % valid GETs (25 % repeated JWT, 25 % distinct JWT, 10 % session
    cookie, 10 % session bearer), 10 % refusals (expired, forged, audience, no token, made-up
    session cookie: 2 % each), 10 % transfers, 5 % SSE, 5 % WebSockets."""
    return [
        (ValidGet(repeated=True), 25.0),
        (ValidGet(repeated=False), 25.0),
        (SessionGet("cookie"), 10.0),
        (SessionGet("bearer"), 10.0),
        (Refusal("refuse_expired"), 2.0),
        (Refusal("refuse_forged"), 2.0),
        (Refusal("refuse_audience"), 2.0),
        (Refusal("refuse_no_token"), 2.0),
        (Refusal("refuse_made_up_session"), 2.0),
        (Upload(), 5.0),
        (Download(), 5.0),
        (ServerSentEvents(), 5.0),
        (WebSocketEcho(), 5.0),
    ]


async def execute(ctx: Context, cls: RequestClass, rng: random.Random, tags: tuple = ()) -> Result:
    """Runs one request under its deadline and records it. Transport errors before an answer
    are `transport_error`; past the deadline, `hung`."""
    recorder = ctx.recorder
    tags = tuple(sorted(set(tags) | ctx.active_tags))
    waited = False
    if cls.kind == "transfer":
        ctx.transfer_waiting += 1
        waited = True
        await ctx.transfer_slots.acquire()
        ctx.transfer_waiting -= 1
    recorder.in_flight[cls.kind] += 1
    recorder.started[cls.name] += 1
    start = time.monotonic()
    deadline = cls.deadline(ctx)
    try:
        result = await asyncio.wait_for(cls.run(ctx, rng), deadline)
    except (asyncio.TimeoutError, TimeoutError):
        result = Result(cls.name, start, time.monotonic(), HUNG, None, f"no answer within its {deadline:.0f} s deadline")
    except httpx.HTTPError as exc:
        result = Result(cls.name, start, time.monotonic(), TRANSPORT, None, type(exc).__name__)
    except OSError as exc:
        result = Result(cls.name, start, time.monotonic(), TRANSPORT, None, type(exc).__name__)
    finally:
        recorder.in_flight[cls.kind] -= 1
        if waited:
            ctx.transfer_slots.release()
    result.tags = tuple(sorted(set(result.tags) | set(tags) | ctx.active_tags))
    recorder.add(result, cls.kind)
    return result


class Load:
    """Starts requests at `rate` per second, each of a class picked by weight, until stopped.
    Transfers wait for one of a few slots; when too many already wait, the arrival is counted as
    shed and skipped (reported), so a slow machine cannot pile up unbounded work."""

    def __init__(self, ctx: Context, mix: list[tuple[RequestClass, float]], rate: float, seed: int) -> None:
        self.ctx = ctx
        self.classes = [c for c, _ in mix]
        self.weights = [w for _, w in mix]
        self.rate = rate
        self.rng = random.Random(seed)
        self.tasks: set[asyncio.Task] = set()
        self.stopped = asyncio.Event()

    def spawn(self, cls: RequestClass, tags: tuple = ()) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(execute(self.ctx, cls, random.Random(self.rng.random()), tags))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def run(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        i = 0
        while not self.stopped.is_set():
            due = t0 + i / self.rate
            if due - t0 >= seconds:
                break
            delay = due - loop.time()
            if delay < -1.0:
                # The driver fell behind (a stall on a busy machine): skip the missed arrivals
                # instead of starting them all at once, so the load keeps its shape and a burst of
                # the driver's making is not mistaken for gatehouse's memory growth.
                missed = int(-delay * self.rate)
                self.ctx.recorder.shed["(driver lag)"] += missed
                i += missed
                continue
            if delay > 0:
                try:
                    await asyncio.wait_for(self.stopped.wait(), delay)
                    break
                except (asyncio.TimeoutError, TimeoutError):
                    pass
            i += 1
            cls = self.rng.choices(self.classes, self.weights)[0]
            if cls.kind in self.ctx.paused_kinds:
                self.ctx.recorder.shed["(paused)"] += 1
                continue
            if cls.kind == "transfer" and self.ctx.transfer_waiting >= self.ctx.max_transfer_waiting:
                self.ctx.recorder.shed[cls.name] += 1
                continue
            if len(self.tasks) >= self.ctx.max_in_flight:
                self.ctx.recorder.shed[cls.name] += 1
                continue
            self.spawn(cls)

    async def drain(self, timeout: float) -> int:
        """Waits for every started request (each is bounded by its deadline); returns how many
        were still running at `timeout` (then cancelled)."""
        if not self.tasks:
            return 0
        done, pending = await asyncio.wait(set(self.tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        return len(pending)


# ---------------------------------------------------------------------------------------
# the sampler


@dataclass
class Sample:
    t: float
    rss_kib: int
    fds: int
    threads: int
    cpu_seconds: float
    req_per_s: float
    p99_short: float | None
    sse_open: int
    ws_open: int
    transfers: int


class Sampler:
    """Every second: gatehouse's RSS, fds, threads and CPU from /proc; requests completed in that
    second; p99 of the short requests completed in the last 5 s."""

    def __init__(self, pid: int, recorder: Recorder) -> None:
        self.pid = pid
        self.recorder = recorder
        self.samples: list[Sample] = []
        self._recent: deque[tuple[float, float]] = deque()
        self._last: float | None = None

    def take(self) -> Sample | None:
        now = time.monotonic()
        completed = 0
        while self.recorder.completions:
            end, latency, kind = self.recorder.completions.popleft()
            completed += 1
            if kind == "short" and latency is not None:
                self._recent.append((end, latency))
        while self._recent and self._recent[0][0] < now - 5:
            self._recent.popleft()
        proc = proc_sample(self.pid)
        if proc is None:
            return None
        elapsed = now - self._last if self._last is not None else 1.0
        self._last = now
        sample = Sample(
            t=now - self.recorder.t0, rss_kib=proc.rss_kib, fds=proc.fds, threads=proc.threads,
            cpu_seconds=proc.cpu_seconds, req_per_s=completed / max(0.001, elapsed),
            p99_short=percentile([lat for _, lat in self._recent], 99),
            sse_open=self.recorder.in_flight["sse"], ws_open=self.recorder.in_flight["ws"],
            transfers=self.recorder.in_flight["transfer"],
        )
        self.samples.append(sample)
        return sample

    async def run(self, interval: float = 1.0) -> None:
        next_at = time.monotonic()
        while True:
            next_at += interval
            self.take()
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))


# ---------------------------------------------------------------------------------------
# admin endpoints


async def readyz(client: httpx.AsyncClient, gh: GatehouseProc) -> tuple[int, dict]:
    response = await client.get(f"{gh.admin_url}/readyz", timeout=5)
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, {}


async def session_metrics(client: httpx.AsyncClient, gh: GatehouseProc) -> dict[str, float]:
    """gatehouse's session figures: `lookups_<result>` (gatehouse_session_lookups_total by
    result), `cache_hits`, `cache_misses`, `lookup_seconds_count`."""
    text = (await client.get(f"{gh.admin_url}/metrics", timeout=5)).text
    counts: dict[str, float] = defaultdict(float)
    for match in re.finditer(r'^gatehouse_session_lookups_total\{result="([a-z_]+)"\}\s+([0-9.e+]+)$', text, re.M):
        counts[f"lookups_{match.group(1)}"] += float(match.group(2))
    for name, key in (("gatehouse_session_cache_hits_total", "cache_hits"), ("gatehouse_session_cache_misses_total", "cache_misses"),
                      ("gatehouse_session_lookup_duration_seconds_count", "lookup_seconds_count")):
        match = re.search(rf"^{name}(?:\{{\}})?\s+([0-9.e+]+)$", text, re.M)
        if match:
            counts[key] = float(match.group(1))
    return dict(counts)


async def jwks_fetch_metrics(client: httpx.AsyncClient, gh: GatehouseProc) -> dict[str, float]:
    """gatehouse_jwks_fetches_total by result."""
    text = (await client.get(f"{gh.admin_url}/metrics", timeout=5)).text
    counts: dict[str, float] = defaultdict(float)
    for match in re.finditer(r'^gatehouse_jwks_fetches_total\{result="([a-z_]+)"\}\s+([0-9.e+]+)$', text, re.M):
        counts[match.group(1)] += float(match.group(2))
    return dict(counts)


# ---------------------------------------------------------------------------------------
# reporting


def summarize_classes(results: list[Result], judge: Callable[[Result], str] | None = None) -> dict[str, dict]:
    """Per class: counts by outcome and p50/p99 of the class's latency figure."""
    by_class: dict[str, dict] = {}
    for r in results:
        entry = by_class.setdefault(r.cls, {"count": 0, "outcomes": defaultdict(int), "latencies": [], "examples": []})
        entry["count"] += 1
        verdict = judge(r) if judge else r.outcome
        entry["outcomes"][verdict] += 1
        if r.outcome == OK and r.latency is not None:
            entry["latencies"].append(r.latency)
        if r.outcome != OK and len(entry["examples"]) < 5:
            entry["examples"].append(f"{r.outcome} at t={r.start:.1f}s: {r.detail}")
    out = {}
    for name, entry in sorted(by_class.items()):
        lat = entry["latencies"]
        out[name] = {
            "count": entry["count"],
            "outcomes": dict(entry["outcomes"]),
            "p50_s": percentile(lat, 50),
            "p99_s": percentile(lat, 99),
            "max_s": max(lat) if lat else None,
            "examples": entry["examples"],
        }
    return out


def access_log_latencies(log: Path) -> dict[str, list[float]]:
    """gatehouse's own view from its access log, per request class: `duration_ms` (request head
    to the end of the answer) for plain requests; for SSE and WebSockets, whose duration is the
    stream's, `upstream_ms` (to FastAPI's response head). Seconds."""
    out: dict[str, list[float]] = defaultdict(list)
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("msg") != "request":
            continue
        path = entry.get("path", "")
        if path.startswith("/echo/"):
            name = path.split("/")[2].split("?")[0]
        elif path.startswith("/sse"):
            name = "sse"
        elif path.startswith("/ws/"):
            name = "websocket"
        else:
            name = path.split("?")[0].strip("/")
        field_name = "upstream_ms" if name in ("sse", "websocket") else "duration_ms"
        try:
            out[name].append(float(entry[field_name]) / 1000)
        except (KeyError, ValueError):
            pass
    return out


def scan_for_tokens(paths: list[Path], signatures: set[str], secrets: set[str] = frozenset()) -> list[str]:
    """Files under `paths` containing any minted token's signature segment, or any of `secrets`
    (session tokens, their signatures, made-up cookie tokens: SessionPool.secrets) anywhere."""
    leaks = []
    pattern = re.compile(rb"[A-Za-z0-9_-]{40,}")
    needles = [x.encode() for x in secrets if len(x) >= 16]
    for path in paths:
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            if file.suffix == ".png":
                continue
            data = file.read_bytes()
            if any(match.group().decode() in signatures for match in pattern.finditer(data)) or any(
                    needle in data for needle in needles):
                leaks.append(str(file))
    return leaks


def plot(samples: list[Sample], path: Path, title: str, marks: list[tuple[float, str]] = ()) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s.t for s in samples]
    fig, axes = plt.subplots(4, 1, figsize=(11, 10), sharex=True)
    axes[0].plot(t, [s.rss_kib / 1024 for s in samples], color="tab:blue")
    axes[0].set_ylabel("RSS (MiB)")
    axes[1].plot(t, [s.fds for s in samples], color="tab:orange", label="fds")
    axes[1].plot(t, [s.threads for s in samples], color="tab:gray", label="threads")
    axes[1].set_ylabel("fds / threads")
    axes[1].legend(loc="upper left")
    axes[2].plot(t, [s.req_per_s for s in samples], color="tab:green")
    axes[2].set_ylabel("req/s (completed)")
    axes[3].plot(t, [(s.p99_short or 0) * 1000 for s in samples], color="tab:red")
    axes[3].set_ylabel("p99 short req (ms, 5 s window)")
    axes[3].set_xlabel("seconds since start")
    for ax in axes:
        ax.grid(alpha=0.3)
        for x, label in marks:
            ax.axvline(x, color="black", alpha=0.25, linestyle="--")
    for x, label in marks:
        axes[0].annotate(label, (x, 1), xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
                         va="top", ha="right", alpha=0.7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def git_commit() -> str:
    """The commit the binary was built from: SOAK_COMMIT when set (a binary built elsewhere),
    else the repository's HEAD."""
    if os.environ.get("SOAK_COMMIT"):
        return os.environ["SOAK_COMMIT"]
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def report_dir(kind: str) -> Path:
    root = Path(os.environ.get("SOAK_REPORT_DIR", REPO / "Tests" / "soak" / "reports"))
    path = root / f"{time.strftime('%Y%m%dT%H%M%S')}-{kind}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def criteria_table(rows: list[tuple[str, str, str, Any]]) -> str:
    """Markdown table of (criterion, target, measured, pass); pass None = informational,
    "known" = failing for a known, reported gatehouse finding (not counted)."""
    lines = ["| criterion | target | measured | result |", "|---|---|---|---|"]
    for name, target, measured, ok in rows:
        verdict = {None: "info", "known": "KNOWN ISSUE", True: "PASS"}.get(ok, "**FAIL**")
        lines.append(f"| {name} | {target} | {measured} | {verdict} |")
    return "\n".join(lines)


def class_table(summary: dict[str, dict], server: dict[str, list[float]] | None = None) -> str:
    """Per class: the driver's latency figure (what a client saw, including the driver's own
    scheduling on a busy machine) and, with `server`, gatehouse's own p99 from its access log."""
    server = server or {}
    lines = ["| class | requests | outcomes | p50 | p99 | max | gatehouse p99 (access log) |",
             "|---|---|---|---|---|---|---|"]
    for name, s in summary.items():
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(s["outcomes"].items()))
        lines.append(f"| {name} | {s['count']} | {outcomes} | {ms(s['p50_s'])} | {ms(s['p99_s'])} | {ms(s['max_s'])} "
                     f"| {ms(percentile(server.get(name, []), 99))} |")
    return "\n".join(lines)


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


async def stop_gatehouse(gh: GatehouseProc, timeout: float) -> tuple[int | None, float]:
    """SIGTERM; (exit code or None if it had to be killed, seconds to exit)."""
    start = time.monotonic()
    gh.popen.send_signal(signal.SIGTERM)
    deadline = start + timeout
    while time.monotonic() < deadline:
        code = gh.popen.poll()
        if code is not None:
            return code, time.monotonic() - start
        await asyncio.sleep(0.05)
    gh.kill()
    return None, time.monotonic() - start

