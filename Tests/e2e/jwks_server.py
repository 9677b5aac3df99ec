"""A stand-in for Better Auth's JWKS endpoint, run in a thread of the test process.

    server = JWKSServer(keys=[key.jwk()]).start()
    server.origin            # "http://127.0.0.1:<port>" (what BETTER_AUTH_URL is set to)
    server.jwks_url          # origin + "/api/auth/jwks"
    server.fetch_count()     # GETs of /api/auth/jwks so far

`GET /api/auth/jwks` answers exactly like Better Auth 1.4's jwt plugin: 200,
`Content-Type: application/json`, body `{"keys":[...]}` (compact JSON, each key's members in
the plugin's order: see tokens.SigningKey.jwk) and, by default, neither Cache-Control nor ETag.
Everything is controllable from the test while the server runs (attributes are read per
request):

    keys            list of JWK dicts published (set_keys / add_key / remove_key)
    cache_control   e.g. "max-age=5" (None: no header)
    etag            e.g. '"v1"' (None: no header); a request whose If-None-Match matches gets 304
    status          force this status with a small JSON error body (e.g. 500)
    body            raw bytes served instead of the JWKS (garbage, or a >1 MiB document)
    delay           seconds to wait before answering (slow issuer)
    routes          {path: (status, content_type, body)} for other paths; anything else is 404

`stop()` closes the listening socket, so the next fetch gets "connection refused"; `start()`
again listens on the same port. Every request (any path) is recorded with its headers and the
time it arrived, so tests can count fetches and inspect User-Agent / If-None-Match. Each
response closes its connection, so a stopped server serves nothing on kept-alive connections.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import ClassVar
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

JWKS_PATH = "/api/auth/jwks"


@dataclass
class RecordedRequest:
    method: str
    path: str  # the request target as sent (path and query)
    headers: dict[str, str]  # lowercased names; the last value wins
    raw_headers: list[tuple[str, str]]
    time: float  # time.monotonic() when the request head was read
    status: int | None = None  # what the server answered (None if it did not answer)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "jwks-test"
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr log
        pass

    def do_GET(self):  # noqa: N802
        self.owner._handle(self)

    def do_HEAD(self):  # noqa: N802
        self.owner._handle(self)

    def do_POST(self):  # noqa: N802
        self.owner._handle(self)

    @property
    def owner(self) -> "JWKSServer":
        return self.server.owner  # type: ignore[attr-defined]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@dataclass
class JWKSServer:
    keys: list[dict] = field(default_factory=list)
    cache_control: str | None = None
    etag: str | None = None
    status: int | None = None
    body: bytes | None = None
    delay: float = 0.0
    routes: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)
    port: int = 0

    def __post_init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._lock = threading.RLock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    # The socket server class (a subclass may listen with a deeper backlog).
    server_class: ClassVar[type] = _Server

    def start(self) -> "JWKSServer":
        if self._httpd is not None:
            return self
        deadline = time.monotonic() + 10
        while True:
            try:
                httpd = self.server_class(("127.0.0.1", self.port), _Handler)
                break
            except OSError:
                # restarting on the same port right after stop(): retry briefly
                if not self.port or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        httpd.owner = self  # type: ignore[attr-defined]
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops listening: further connections are refused."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def __enter__(self) -> "JWKSServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- addresses ------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def jwks_url(self) -> str:
        return self.origin + JWKS_PATH

    def url(self, path: str) -> str:
        return self.origin + path

    # -- what is published ----------------------------------------------------------------

    def set_keys(self, keys: list[dict]) -> None:
        with self._lock:
            self.keys = list(keys)

    def add_key(self, jwk: dict) -> None:
        with self._lock:
            self.keys = [*self.keys, jwk]

    def remove_key(self, kid: str) -> None:
        with self._lock:
            self.keys = [k for k in self.keys if k.get("kid") != kid]

    def configure(self, **attrs) -> None:
        """Changes several attributes at once (no request sees half of the change), e.g.
        configure(keys=[...], etag='"v2"')."""
        with self._lock:
            for name, value in attrs.items():
                if not hasattr(self, name):
                    raise AttributeError(name)
                setattr(self, name, list(value) if name == "keys" else value)

    def document(self) -> bytes:
        """The JWKS body as Better Auth serves it (compact JSON, members in insertion order)."""
        with self._lock:
            keys = list(self.keys)
        return json.dumps({"keys": keys}, separators=(",", ":")).encode()

    # -- what was requested ---------------------------------------------------------------

    def recorded(self, path: str | None = JWKS_PATH) -> list[RecordedRequest]:
        """Requests received so far (to `path`, ignoring the query; None: any path)."""
        with self._lock:
            reqs = list(self.requests)
        if path is None:
            return reqs
        return [r for r in reqs if r.path.split("?", 1)[0] == path]

    def fetch_count(self) -> int:
        return len(self.recorded())

    def wait_for_fetches(self, count: int, timeout: float) -> list[RecordedRequest]:
        """Waits until at least `count` JWKS fetches were received; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            reqs = self.recorded()
            if len(reqs) >= count:
                return reqs
            if time.monotonic() > deadline:
                raise AssertionError(f"expected at least {count} JWKS fetches within {timeout}s, saw {len(reqs)}")
            time.sleep(0.02)

    # -- the handler ----------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        raw_headers = [(k, v) for k, v in h.headers.items()]
        rec = RecordedRequest(
            method=h.command,
            path=h.path,
            headers={k.lower(): v for k, v in raw_headers},
            raw_headers=raw_headers,
            time=time.monotonic(),
        )
        with self._lock:
            self.requests.append(rec)
            delay, status, body_override = self.delay, self.status, self.body
            cache_control, etag, routes = self.cache_control, self.etag, dict(self.routes)
            document = self.document()
        # a request body (none expected) is drained so the connection stays sane
        length = int(h.headers.get("Content-Length") or 0)
        if length:
            h.rfile.read(length)
        if delay:
            time.sleep(delay)
        path = h.path.split("?", 1)[0]
        extra: list[tuple[str, str]] = []
        if path != JWKS_PATH:
            if path in routes:
                code, ctype, body = routes[path]
            else:
                code, ctype, body = 404, "application/json", b'{"message":"Not Found"}'
        elif status is not None:
            code, ctype, body = status, "application/json", b'{"message":"Internal Server Error"}'
        else:
            if cache_control is not None:
                extra.append(("Cache-Control", cache_control))
            if etag is not None:
                extra.append(("ETag", etag))
            inm = h.headers.get("If-None-Match")
            if etag is not None and inm is not None and _etag_matches(inm, etag):
                code, ctype, body = 304, None, b""
            else:
                code, ctype = 200, "application/json"
                body = body_override if body_override is not None else document
        rec.status = code
        try:
            h.send_response(code)
            if ctype is not None:
                h.send_header("Content-Type", ctype)
            for name, value in extra:
                h.send_header(name, value)
            if code != 304:
                h.send_header("Content-Length", str(len(body)))
            h.send_header("Connection", "close")
            h.end_headers()
            if h.command != "HEAD" and code != 304:
                h.wfile.write(body)
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass  # the client gave up (e.g. a fetch timeout while we were slow)
        h.close_connection = True


def _etag_matches(if_none_match: str, etag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    def norm(tag: str) -> str:
        tag = tag.strip()
        return tag[2:] if tag.startswith("W/") else tag
    return any(norm(t) == norm(etag) for t in if_none_match.split(","))
