"""A stand-in for Better Auth's session endpoint, run in a thread of the test process: it
answers `GET /api/auth/get-session` the way better-auth 1.4.19 does (cookie and bearer plugin
alike), and serves the JWKS of `JWKSServer` (which it extends) on the same origin, so that
BETTER_AUTH_URL = `server.origin` configures both JWTs and sessions.

    server = GetSessionServer(keys=[key.jwk()]).start()
    session = server.create_session(role="admin", expires_in=3600)
    session.token            # the raw 32-character token ([A-Za-z0-9]), Better Auth's session.token
    session.signed           # "<token>.<signature>": signature = standard base64 of HMAC-SHA256(secret, token)
    session.value            # URL-encoded `signed` (encodeURIComponent): the cookie value, and the
                             # bearer plugin's set-auth-token value
    session.cookie()         # "better-auth.session_token=<value>" (the server's cookie name)
    server.lookup_count()    # get-session requests so far; lookup_count(session) / lookup_count("value")

What better-auth 1.4.19 does, and this server with it:
  - The session cookie `<prefix>.session_token` holds encodeURIComponent(token + "." + signature);
    better-call's getSignedCookie splits at the last ".", wants a 44-character signature ending
    in "=", and checks the HMAC. Anything else, or a token with no session: `null`.
  - The bearer plugin reads `Authorization: Bearer <value>`: a value with a "." must be correctly
    signed; a value without one is the raw token, accepted unless `require_signature`. A bad
    bearer is ignored (then the cookie, if any, decides).
  - No session: 200 `null` (`null_status = 401` takes the other branch, 401 `null`).
  - A session: 200 {"session": {...}, "user": {...}}, dates as JSON.stringify writes a Date
    (`2026-12-09T13:00:00.000Z`), with a Set-Cookie refreshing the session cookie (and, for a
    bearer, the plugin's `set-auth-token` header).
  - An expired session: Better Auth itself answers `null` (and deletes it); this server answers
    with the session as stored when `serve_expired` is set (the default), as a stale replica or a
    skewed clock would, so a proxy's own expiry check can be tested.

Outage switches (read per request), set with `set_outage(kind)`: None (healthy), "500",
"404" (an HTML page), "garbage" (200, not JSON), "bad_shape" (200, JSON without session.id),
"hang" (answers after `hang_seconds`), "stopped" (stops listening: connection refused;
`set_outage(None)` listens again on the same port). `lookup_delay` slows every lookup (a slow
but healthy Better Auth). The listen backlog is deep, so a burst of lookups is not slowed by
dropped connection attempts.

Every get-session request is recorded (`lookups()`) with its headers in wire order, the
credential it carried, and the answer; `max_in_flight` is the highest number of get-session
requests that were being answered at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar
from urllib.parse import quote, unquote

from jwks_server import JWKSServer, RecordedRequest, _Server

GET_SESSION_PATH = "/api/auth/get-session"
DEV_COOKIE = "better-auth.session_token"
SECURE_COOKIE = "__Secure-better-auth.session_token"
# Better Auth's default session lifetime (7 days), what its Set-Cookie's Max-Age says.
SESSION_MAX_AGE = 604800

_ALNUM = string.ascii_letters + string.digits
OUTAGES = (None, "500", "garbage", "bad_shape", "404", "hang", "stopped")


def generate_id(length: int = 32) -> str:
    """Better Auth's generateId: [A-Za-z0-9], 32 characters."""
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def iso(ts: float) -> str:
    """JavaScript's Date.prototype.toISOString(): milliseconds and a Z."""
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def sign(secret: bytes, token: str) -> str:
    """better-call's signature: standard base64 (padded) of HMAC-SHA256(secret, value)."""
    return base64.b64encode(hmac.new(secret, token.encode(), hashlib.sha256).digest()).decode("ascii")


def encode_uri_component(text: str) -> str:
    """JavaScript's encodeURIComponent (leaves A-Z a-z 0-9 - _ . ! ~ * ' ( ) alone)."""
    return quote(text, safe="-_.!~*'()")


def signed_value(secret: bytes, token: str) -> str:
    """The session cookie's value as Better Auth sets it: encodeURIComponent(token.signature)."""
    return encode_uri_component(f"{token}.{sign(secret, token)}")


class _SessionHTTPServer(_Server):
    # socketserver's default listen backlog is 5: a burst of lookups on new connections would
    # overflow it, and the dropped SYNs come back a second later, i.e. a "slow Better Auth".
    request_queue_size = 512


@dataclass
class Session:
    token: str
    signature: str
    session: dict  # the session object, as get-session serialises it
    user: dict  # the user object, as get-session serialises it
    expires_at: float  # epoch seconds
    cookie_name: str

    @property
    def signed(self) -> str:
        return f"{self.token}.{self.signature}"

    @property
    def value(self) -> str:
        """URL-encoded `signed`: what the browser sends in the cookie, and the bearer value."""
        return encode_uri_component(self.signed)

    @property
    def id(self) -> str:
        return self.session["id"]

    @property
    def user_id(self) -> str:
        return self.user["id"]

    def cookie(self, name: str | None = None) -> str:
        return f"{name or self.cookie_name}={self.value}"

    def body(self) -> bytes:
        return json.dumps({"session": self.session, "user": self.user}, separators=(",", ":")).encode()


@dataclass
class Lookup:
    """One get-session request as received."""

    request: RecordedRequest
    kind: str | None  # "cookie", "bearer", or None (neither carried)
    credential: str | None  # the cookie value / bearer value exactly as received
    token: str | None = None  # the session token it resolved to, when it did
    status: int | None = None  # what was answered (None: nothing, e.g. the client gave up)
    outcome: str = ""  # "session", "null", "500", "garbage", ...

    @property
    def raw_headers(self) -> list[tuple[str, str]]:
        return self.request.raw_headers


@dataclass
class GetSessionServer(JWKSServer):
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    cookie_name: str = DEV_COOKIE
    null_status: int = 200
    outage: str | None = None
    hang_seconds: float = 5.0
    lookup_delay: float = 0.0
    refresh_cookie: bool = True
    serve_expired: bool = True
    bearer_plugin: bool = True
    require_signature: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self.sessions: dict[str, Session] = {}
        self._lookups: list[Lookup] = []
        self._in_flight = 0
        self.max_in_flight = 0
        self._wake = threading.Event()

    # JWKSServer.start with a deep listen backlog (and, after stop(), the same port).
    server_class: ClassVar[type] = _SessionHTTPServer

    # -- sessions -------------------------------------------------------------------------

    def create_session(
        self,
        user: dict | None = None,
        *,
        expires_in: float = 7 * 86400,
        cookie_name: str | None = None,
        ip_address: str | None = "127.0.0.1",
        user_agent: str | None = "Mozilla/5.0 (test browser)",
        **user_fields: Any,
    ) -> Session:
        """Registers a session (and its user) and returns it. `user` replaces the whole user
        object; `user_fields` are added to (or, given None, removed from) the default one,
        which has role "user". expiresAt falls on a whole second; a negative `expires_in`
        makes an already expired session."""
        now = time.time()
        token = generate_id()
        user_id = generate_id()
        if user is None:
            user = {
                "id": user_id,
                "name": "Grace Hopper",
                "email": f"grace-{user_id[:8].lower()}@example.com",
                "emailVerified": True,
                "image": None,
                "createdAt": iso(now - 86400 * 30 + 0.417),
                "updatedAt": iso(now - 3600 + 0.052),
                "role": "user",
            }
            for key, value in user_fields.items():
                if value is None:
                    user.pop(key, None)
                else:
                    user[key] = value
        expires_at = float(int(now + expires_in))
        session = {
            "id": generate_id(),
            "expiresAt": iso(expires_at),
            "token": token,
            "createdAt": iso(now - 60 + 0.123),
            "updatedAt": iso(now - 60 + 0.123),
            "ipAddress": ip_address,
            "userAgent": user_agent,
            "userId": user["id"],
        }
        s = Session(
            token=token, signature=sign(self.secret, token), session=session, user=user,
            expires_at=expires_at, cookie_name=cookie_name or self.cookie_name,
        )
        with self._lock:
            self.sessions[token] = s
        return s

    def revoke(self, session: Session) -> None:
        with self._lock:
            self.sessions.pop(session.token, None)

    def forged_value(self) -> str:
        """A well-shaped cookie value whose signature is wrong (made with another secret)."""
        return signed_value(secrets.token_bytes(32), generate_id())

    def unknown_value(self) -> str:
        """A correctly signed cookie value for a token that has no session."""
        return signed_value(self.secret, generate_id())

    # -- outages --------------------------------------------------------------------------

    def set_outage(self, kind: str | None) -> None:
        """None (healthy), "500", "garbage" (200, not JSON), "bad_shape" (200, JSON without a
        session id), "404", "hang" (answers after hang_seconds), "stopped" (connection
        refused). Leaving "hang" releases the requests still waiting."""
        assert kind in OUTAGES, kind
        if kind == "stopped":
            self.stop()
        elif not self.running:
            self.start()
        with self._lock:
            self.outage = None if kind == "stopped" else kind
            if kind != "hang":
                self._wake.set()
                self._wake = threading.Event()

    def stop(self) -> None:
        with self._lock:
            self._wake.set()
            self._wake = threading.Event()
        super().stop()

    # -- what was asked -------------------------------------------------------------------

    def lookups(self) -> list[Lookup]:
        with self._lock:
            return list(self._lookups)

    def lookup_count(self, *credentials: "Session | str") -> int:
        """All get-session requests, or those carrying one of `credentials` (a Session: any
        of its forms, matched by the token it resolved to; a string: that exact value)."""
        found = self.lookups()
        if not credentials:
            return len(found)
        tokens = {c.token for c in credentials if isinstance(c, Session)}
        values = {c for c in credentials if isinstance(c, str)}
        return sum(1 for l in found if (l.token is not None and l.token in tokens) or l.credential in values)

    def lookups_of(self, session: Session) -> list[Lookup]:
        return [l for l in self.lookups() if l.token == session.token]

    def wait_for_lookups(self, count: int, timeout: float) -> list[Lookup]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.lookups()
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.01)

    # -- the handler ----------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        if h.path.split("?", 1)[0] != GET_SESSION_PATH:
            super()._handle(h)
            return
        raw_headers = [(k, v) for k, v in h.headers.items()]
        rec = RecordedRequest(
            method=h.command, path=h.path, headers={k.lower(): v for k, v in raw_headers},
            raw_headers=raw_headers, time=time.monotonic(),
        )
        length = int(h.headers.get("Content-Length") or 0)
        if length:
            h.rfile.read(length)
        with self._lock:
            self.requests.append(rec)
            outage, hang, delay, wake = self.outage, self.hang_seconds, self.lookup_delay, self._wake
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            lookup = self._resolve(h, rec)
            with self._lock:
                self._lookups.append(lookup)
            if delay:
                wake.wait(delay)
            if outage == "hang":
                wake.wait(hang)
            self._answer(h, lookup, outage)
        finally:
            with self._lock:
                self._in_flight -= 1
        h.close_connection = True

    def _verified_token(self, decoded: str) -> str | None:
        """better-call's getSignedCookie on a decoded value: the token, or None."""
        pos = decoded.rfind(".")
        if pos < 1:
            return None
        token, signature = decoded[:pos], decoded[pos + 1 :]
        if len(signature) != 44 or not signature.endswith("="):
            return None
        if not hmac.compare_digest(signature, sign(self.secret, token)):
            return None
        return token

    def _resolve(self, h: BaseHTTPRequestHandler, rec: RecordedRequest) -> Lookup:
        """Which credential the request carries and which session token it proves."""
        lookup = Lookup(request=rec, kind=None, credential=None)
        authorization = h.headers.get_all("Authorization") or []
        cookie_headers = h.headers.get_all("Cookie") or []
        cookie_value = None
        for header in cookie_headers:
            for piece in header.split(";"):
                name, sep, value = piece.strip().partition("=")
                if sep and name == self.cookie_name and cookie_value is None:
                    cookie_value = value
        if authorization:
            lookup.kind = "bearer"
            value = authorization[0]
            lookup.credential = value[7:] if value[:7].lower() == "bearer " else value
            if self.bearer_plugin and value.startswith("Bearer "):
                bearer = value[len("Bearer "):]
                if "." in bearer:
                    lookup.token = self._verified_token(unquote(bearer))
                elif not self.require_signature:
                    lookup.token = bearer
        if lookup.token is None and cookie_value is not None:
            if lookup.kind is None:
                lookup.kind, lookup.credential = "cookie", cookie_value
            try:
                lookup.token = self._verified_token(unquote(cookie_value, errors="strict"))
            except UnicodeDecodeError:
                lookup.token = None
        return lookup

    def _answer(self, h: BaseHTTPRequestHandler, lookup: Lookup, outage: str | None) -> None:
        extra: list[tuple[str, str]] = []
        ctype = "application/json"
        if outage == "500":
            code, body, lookup.outcome = 500, b'{"message":"Internal Server Error"}', "500"
        elif outage == "404":
            code, ctype, body, lookup.outcome = 404, "text/html", b"<html><body>Not Found</body></html>", "404"
        elif outage == "garbage":
            code, ctype, body, lookup.outcome = 200, "text/html", b"<!doctype html><h1>502 Bad Gateway</h1>", "garbage"
        elif outage == "bad_shape":
            code, body, lookup.outcome = 200, b'{"session":{},"user":{"name":"nobody"}}', "bad_shape"
        else:
            with self._lock:
                session = self.sessions.get(lookup.token) if lookup.token else None
            if session is not None and session.expires_at <= time.time() and not self.serve_expired:
                session = None
            if session is None:
                code, body, lookup.outcome = self.null_status, b"null", "null"
            else:
                code, body, lookup.outcome = 200, session.body(), "session"
                if self.refresh_cookie:
                    secure = "; Secure" if self.cookie_name.startswith("__Secure-") else ""
                    extra.append(("Set-Cookie", f"{self.cookie_name}={session.value}; Max-Age={SESSION_MAX_AGE}; "
                                                f"Path=/; HttpOnly{secure}; SameSite=Lax"))
                if lookup.kind == "bearer":
                    extra.append(("set-auth-token", session.value))
                    extra.append(("Access-Control-Expose-Headers", "set-auth-token"))
        lookup.status = code
        try:
            h.send_response(code)
            h.send_header("Content-Type", ctype)
            for name, value in extra:
                h.send_header(name, value)
            h.send_header("Content-Length", str(len(body)))
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(body)
            h.wfile.flush()
        except OSError:
            lookup.status = None  # the client gave up (a lookup timeout while we hung)
