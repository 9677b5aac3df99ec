"""A Better Auth-shaped issuer for the soak and chaos runs (standard library + `cryptography`):
a JWKS on 127.0.0.1 with one key for each algorithm gatehouse accepts, rotated on a timer,
Better Auth's get-session endpoint on the same listener (same origin, as in Better Auth), and a
second, control listener the driver uses to get the signing keys, create sessions and inject
faults.

    python issuer.py [--rotate-seconds 60] [--keep-generations 1]

prints one JSON line `{"jwks_port": P, "control_port": C}` and serves until killed.

JWKS listener (what gatehouse is given as BETTER_AUTH_URL=http://127.0.0.1:P):

    GET /api/auth/jwks     {"keys": [...]}: every key of the current generation and of the
                           `--keep-generations` before it, members in Better Auth's order,
                           compact JSON, no Cache-Control (unless set below), connection closed
                           after every answer

    GET /api/auth/get-session
                           what better-auth 1.4.19 answers (the e2e tests' get_session_server.py
                           documents it): the session cookie `better-auth.session_token` holds
                           encodeURIComponent(token + "." + signature), signature = standard
                           base64 of HMAC-SHA256(secret, token), checked as better-call's
                           getSignedCookie does; the bearer plugin reads `Authorization: Bearer
                           <value>` (signed, or the bare token) and, when that is not a valid
                           session credential, falls back to the cookie. No session, a bad
                           signature or an expired session: 200 `null` (Better Auth deletes an
                           expired session and answers null). A session: 200 {"session",
                           "user"} with ISO dates, a Set-Cookie refreshing the cookie and, for a
                           bearer, `set-auth-token` (gatehouse must drop both). Connection closed
                           after every answer.

Every `--rotate-seconds` (0: only on POST /rotate) a new generation of five keys (EdDSA, ES256,
ES512, RS256, PS256, each with a new 32-character kid) is published; the oldest is then dropped
once more than `--keep-generations` older ones are published. So a key is served for
(1 + keep) periods.

Control listener (loopback, test keys only):

    GET  /keys             the published generations with their private keys (PKCS#8 PEM), for
                           minting tokens: {"generation": g, "generations": [{"generation",
                           "created", "keys": [{"alg", "kid", "pem"}]}]}
    GET  /state            mode, generation, served generation, fetch counts per mode, recent
                           fetch log (wall-clock time, mode, status); get-session lookups per
                           mode and per outcome, per session and credential kind
                           (`lookups_by_session`: {session id: {"cookie": n, "bearer": n}}), and
                           a recent lookup log (wall-clock time, mode, kind, outcome). No
                           credential is in /state.
    POST /mode?m=NAME      normal | 500 | garbage | many (a valid JWKS of 101 unrelated keys)
                           | stopped (the listener is closed: connection refused)
    POST /max-age?s=N      send Cache-Control: max-age=N (negative: no header)
    POST /rotate           publish a new generation now
    POST /sessions?n=N&ttl=S
                           creates N sessions (each with its own user) expiring S seconds from
                           now (on a whole second); answers {"sessions": [{"id", "user_id",
                           "token", "signature", "value", "expires_at"}]}: `value` is the cookie
                           value and the bearer value. Test secrets, loopback only; the driver
                           never prints or writes them.

Faults and get-session (the listener serves both, so a fault hits both where it makes sense):
    500      get-session answers 500 {"message":"Internal Server Error"}, as the JWKS does
    garbage  get-session answers 200 with a body that is not JSON, as the JWKS does
    stopped  the listener is closed: both are refused (Better Auth down)
    many     a JWKS-only fault (a well-formed document of the wrong keys); get-session answers
             normally, so no session request may fail while it lasts
    max-age, rotate: JWKS only
gatehouse must answer 503 "Authentication service unavailable" for a session it has not cached
while get-session is faulty (500, garbage, stopped), never 401, and keep serving the ones it has.

"served generation" is the newest generation that went out in a complete 200 document in
normal mode: keys gatehouse has certainly been offered.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
import socket
import string
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from datetime import datetime, timezone
from urllib.parse import parse_qs, quote, unquote, urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

ALGORITHMS = ["EdDSA", "ES256", "ES512", "RS256", "PS256"]
JWKS_PATH = "/api/auth/jwks"
GET_SESSION_PATH = "/api/auth/get-session"
SESSION_COOKIE = "better-auth.session_token"
SESSION_MAX_AGE = 604800  # Better Auth's default session lifetime, its Set-Cookie's Max-Age
MODES = ("normal", "500", "garbage", "many", "stopped")
_ALNUM = string.ascii_letters + string.digits


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(value: int, length: int | None = None) -> bytes:
    length = length or max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(length, "big")


def random_kid() -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(32))


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


def send_closing(h: BaseHTTPRequestHandler, status: int, ctype: str, extra: list, body: bytes) -> bool:
    """One answer with Content-Length, then the connection closes; False when the client left
    before it was written."""
    try:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        for name, value in extra:
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(body)
        h.wfile.flush()
        return True
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        return False


class StoredSession:
    """A session row and its user, as get-session serialises them."""

    def __init__(self, secret: bytes, ttl: float) -> None:
        now = time.time()
        self.token = random_kid()  # Better Auth's generateId: 32 × [A-Za-z0-9]
        self.signature = sign(secret, self.token)
        self.value = encode_uri_component(f"{self.token}.{self.signature}")
        self.expires_at = float(int(now + ttl))
        user_id = random_kid()
        self.user = {
            "id": user_id,
            "name": "Soak Session",
            "email": f"session-{user_id[:8].lower()}@soak.example",
            "emailVerified": True,
            "image": None,
            "createdAt": iso(now - 86400 * 30 + 0.417),
            "updatedAt": iso(now - 3600 + 0.052),
        }
        self.session = {
            "id": random_kid(),
            "expiresAt": iso(self.expires_at),
            "token": self.token,
            "createdAt": iso(now),
            "updatedAt": iso(now),
            "ipAddress": "127.0.0.1",
            "userAgent": "soak-driver",
            "userId": user_id,
        }
        self.body = json.dumps({"session": self.session, "user": self.user}, separators=(",", ":")).encode()

    def public(self) -> dict:
        """What the control listener gives the driver (test credentials, loopback only)."""
        return {"id": self.session["id"], "user_id": self.user["id"], "token": self.token, "signature": self.signature,
                "value": self.value, "expires_at": self.expires_at}


def generate_private(alg: str):
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "ES512":
        return ec.generate_private_key(ec.SECP521R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(alg: str, kid: str, private) -> dict:
    """The public JWK as Better Auth publishes it (member order included)."""
    public = private.public_key()
    if alg == "EdDSA":
        x = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"alg": alg, "crv": "Ed25519", "x": b64url(x), "kty": "OKP", "kid": kid}
    if alg in ("ES256", "ES512"):
        numbers = public.public_numbers()
        size = 32 if alg == "ES256" else 66
        return {
            "alg": alg, "crv": "P-256" if alg == "ES256" else "P-521", "kty": "EC",
            "x": b64url(_int_bytes(numbers.x, size)), "y": b64url(_int_bytes(numbers.y, size)), "kid": kid,
        }
    numbers = public.public_numbers()
    return {"alg": alg, "kty": "RSA", "n": b64url(_int_bytes(numbers.n)), "e": b64url(_int_bytes(numbers.e)), "kid": kid}


class Generation:
    def __init__(self, number: int) -> None:
        self.number = number
        self.created = time.time()
        self.keys = []  # (alg, kid, private)
        for alg in ALGORITHMS:
            self.keys.append((alg, random_kid(), generate_private(alg)))
        self.jwks = [public_jwk(alg, kid, private) for alg, kid, private in self.keys]
        self.private_json = {
            "generation": number,
            "created": self.created,
            "keys": [
                {
                    "alg": alg,
                    "kid": kid,
                    "pem": private.private_bytes(
                        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                    ).decode("ascii"),
                }
                for alg, kid, private in self.keys
            ],
        }


class Issuer:
    def __init__(self, rotate_seconds: float, keep: int) -> None:
        self.rotate_seconds = rotate_seconds
        self.keep = keep
        self.lock = threading.RLock()
        self.generations: list[Generation] = [Generation(1)]
        self.mode = "normal"
        self.max_age: int | None = None
        self.served_generation = 0
        self.fetches: dict[str, int] = {m: 0 for m in MODES}
        self.fetch_log: list[tuple[float, str, int]] = []
        self.rotations: list[tuple[float, int]] = [(time.time(), 1)]
        # 101 keys nobody signs with: a well-formed document gatehouse must refuse whole
        self.many_document = json.dumps(
            {"keys": [public_jwk("EdDSA", random_kid(), ed25519.Ed25519PrivateKey.generate()) for _ in range(101)]},
            separators=(",", ":"),
        ).encode()
        self.jwks_port = 0
        self._jwks_server: ThreadingHTTPServer | None = None
        # Better Auth sessions: BETTER_AUTH_SECRET (test only), the session table, lookups
        self.secret = secrets.token_bytes(32)
        self.sessions: dict[str, StoredSession] = {}  # token -> session
        self.lookups: dict[str, int] = {m: 0 for m in MODES}
        self.lookup_outcomes: dict[str, int] = {}
        self.lookups_by_session: dict[str, dict[str, int]] = {}
        self.lookup_log: list[tuple[float, str, str, str]] = []
        self.sessions_created = 0

    # -- keys -----------------------------------------------------------------------------

    def rotate(self) -> int:
        new = Generation(self.generations[-1].number + 1)  # key generation outside the lock
        with self.lock:
            new.number = self.generations[-1].number + 1
            new.private_json["generation"] = new.number
            self.generations.append(new)
            del self.generations[: max(0, len(self.generations) - 1 - self.keep)]
            self.rotations.append((time.time(), new.number))
            return new.number

    def rotation_loop(self) -> None:
        while True:
            time.sleep(self.rotate_seconds)
            self.rotate()

    def document(self) -> tuple[bytes, int]:
        with self.lock:
            keys = [jwk for g in self.generations for jwk in g.jwks]
            newest = self.generations[-1].number
        return json.dumps({"keys": keys}, separators=(",", ":")).encode(), newest

    # -- the JWKS listener ----------------------------------------------------------------

    def start_jwks(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                server = _Server(("127.0.0.1", self.jwks_port), _JWKSHandler)
                break
            except OSError:
                if not self.jwks_port or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        server.issuer = self  # type: ignore[attr-defined]
        self.jwks_port = server.server_address[1]
        self._jwks_server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop_jwks(self) -> None:
        server, self._jwks_server = self._jwks_server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(mode)
        with self.lock:
            previous, self.mode = self.mode, mode
        if mode == "stopped" and previous != "stopped":
            self.stop_jwks()
        elif mode != "stopped" and previous == "stopped":
            self.start_jwks()

    def answer_jwks(self, h: BaseHTTPRequestHandler) -> None:
        with self.lock:
            mode, max_age = self.mode, self.max_age
        path = urlsplit(h.path).path
        extra = []
        newest = 0
        if path != JWKS_PATH:
            status, body = 404, b'{"message":"Not Found"}'
        elif mode == "500":
            status, body = 500, b'{"message":"Internal Server Error"}'
        elif mode == "garbage":
            status, body = 200, b'{"keys": [{"kty": "OKP", "crv": \x00\xff garbage ' + os.urandom(64)
        elif mode == "many":
            status, body = 200, self.many_document
        else:
            status = 200
            body, newest = self.document()
            if max_age is not None:
                extra.append(("Cache-Control", f"max-age={max_age}"))
        complete = send_closing(h, status, "application/json", extra, body)
        h.close_connection = True
        if path == JWKS_PATH:
            with self.lock:
                self.fetches[mode] += 1
                self.fetch_log.append((time.time(), mode, status))
                del self.fetch_log[:-5000]
                if complete and newest:
                    self.served_generation = max(self.served_generation, newest)

    # -- get-session ----------------------------------------------------------------------

    def create_sessions(self, n: int, ttl: float) -> list[dict]:
        if not 1 <= n <= 1000 or ttl <= 0:
            raise ValueError("n must be 1-1000 and ttl positive")
        made = [StoredSession(self.secret, ttl) for _ in range(n)]
        now = time.time()
        with self.lock:
            for token in [t for t, s in self.sessions.items() if s.expires_at < now - 600]:
                del self.sessions[token]  # long expired: Better Auth would have deleted them
            for session in made:
                self.sessions[session.token] = session
            self.sessions_created += n
        return [session.public() for session in made]

    def _verified_token(self, decoded: str) -> str | None:
        """better-call's getSignedCookie on a decoded value: the token, or None."""
        pos = decoded.rfind(".")
        if pos < 1:
            return None
        token, signature = decoded[:pos], decoded[pos + 1:]
        if len(signature) != 44 or not signature.endswith("="):
            return None
        if not hmac.compare_digest(signature, sign(self.secret, token)):
            return None
        return token

    def _resolve(self, h: BaseHTTPRequestHandler) -> tuple[str | None, str | None]:
        """(kind, token): which credential the request carries ("cookie", "bearer" or None) and
        the session token it proves (None: no valid signature). The bearer plugin first (a
        valid bearer wins; an invalid one is ignored), then the cookie."""
        kind, token = None, None
        authorization = h.headers.get_all("Authorization") or []
        if authorization:
            kind = "bearer"
            value = authorization[0]
            if value.startswith("Bearer "):
                bearer = value[len("Bearer "):]
                token = self._verified_token(unquote(bearer)) if "." in bearer else bearer
        if token is None:
            cookie = None
            for header in h.headers.get_all("Cookie") or []:
                for piece in header.split(";"):
                    name, sep, value = piece.strip().partition("=")
                    if sep and name == SESSION_COOKIE and cookie is None:
                        cookie = value
            if cookie is not None:
                kind = kind or "cookie"
                if kind == "bearer":
                    kind = "cookie"  # the bearer was not a session: the cookie decides
                try:
                    token = self._verified_token(unquote(cookie, errors="strict"))
                except UnicodeDecodeError:
                    token = None
        return kind, token

    def answer_session(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        if length:
            h.rfile.read(length)
        with self.lock:
            mode = self.mode
        kind, token = self._resolve(h)
        extra: list[tuple[str, str]] = []
        session = None
        if mode == "500":
            status, ctype, body, outcome = 500, "application/json", b'{"message":"Internal Server Error"}', "500"
        elif mode == "garbage":
            status, ctype, body, outcome = 200, "application/json", b'{"session": {"id": \x00\xff garbage ' + os.urandom(64), "garbage"
        else:  # normal, and "many" (a JWKS-only fault)
            with self.lock:
                session = self.sessions.get(token) if token else None
            if session is not None and session.expires_at <= time.time():
                with self.lock:  # Better Auth deletes an expired session and answers null
                    self.sessions.pop(session.token, None)
                session, outcome = None, "expired"
            else:
                outcome = "session" if session is not None else "null"
            ctype = "application/json"
            if session is None:
                status, body = 200, b"null"
            else:
                status, body = 200, session.body
                extra.append(("Set-Cookie", f"{SESSION_COOKIE}={session.value}; Max-Age={SESSION_MAX_AGE}; "
                                            "Path=/; HttpOnly; SameSite=Lax"))
                if kind == "bearer":
                    extra.append(("set-auth-token", session.value))
                    extra.append(("Access-Control-Expose-Headers", "set-auth-token"))
        with self.lock:
            self.lookups[mode] += 1
            self.lookup_outcomes[outcome] = self.lookup_outcomes.get(outcome, 0) + 1
            if session is not None:
                per = self.lookups_by_session.setdefault(session.session["id"], {})
                per[kind or "none"] = per.get(kind or "none", 0) + 1
            self.lookup_log.append((time.time(), mode, kind or "none", outcome))
            del self.lookup_log[:-5000]
        send_closing(h, status, ctype, extra, body)
        h.close_connection = True

    # -- control --------------------------------------------------------------------------

    def state(self) -> dict:
        with self.lock:
            return {
                "mode": self.mode,
                "max_age": self.max_age,
                "generation": self.generations[-1].number,
                "published": [g.number for g in self.generations],
                "served_generation": self.served_generation,
                "fetches": dict(self.fetches),
                "fetch_log": list(self.fetch_log[-2000:]),
                "rotations": list(self.rotations),
                "rotate_seconds": self.rotate_seconds,
                "sessions_created": self.sessions_created,
                "lookups": dict(self.lookups),
                "lookup_outcomes": dict(self.lookup_outcomes),
                "lookups_by_session": {sid: dict(per) for sid, per in self.lookups_by_session.items()},
                "lookup_log": list(self.lookup_log[-2000:]),
            }

    def keys(self) -> dict:
        with self.lock:
            return {
                "generation": self.generations[-1].number,
                "generations": [g.private_json for g in self.generations],
            }

    def control(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        query = parse_qs(url.query)
        status, payload = 200, None
        try:
            if h.command == "GET" and url.path == "/keys":
                payload = self.keys()
            elif h.command == "GET" and url.path == "/state":
                payload = self.state()
            elif h.command == "POST" and url.path == "/mode":
                self.set_mode(query["m"][0])
                payload = {"mode": self.mode}
            elif h.command == "POST" and url.path == "/max-age":
                seconds = int(query["s"][0])
                with self.lock:
                    self.max_age = seconds if seconds >= 0 else None
                payload = {"max_age": self.max_age}
            elif h.command == "POST" and url.path == "/rotate":
                payload = {"generation": self.rotate()}
            elif h.command == "POST" and url.path == "/sessions":
                payload = {"sessions": self.create_sessions(int(query.get("n", ["1"])[0]), float(query["ttl"][0]))}
            else:
                status, payload = 404, {"error": "no such control"}
        except (KeyError, ValueError, IndexError) as exc:
            status, payload = 400, {"error": repr(exc)}
        body = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1, and no request log: a request line can carry a credential."""

    protocol_version = "HTTP/1.1"
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002
        pass


class _JWKSHandler(_QuietHandler):
    server_version = "soak-issuer"

    def do_GET(self):  # noqa: N802
        if urlsplit(self.path).path == GET_SESSION_PATH:
            self.server.issuer.answer_session(self)  # type: ignore[attr-defined]
        else:
            self.server.issuer.answer_jwks(self)  # type: ignore[attr-defined]


class _ControlHandler(_QuietHandler):
    server_version = "soak-issuer-control"

    def do_GET(self):  # noqa: N802
        self.server.issuer.control(self)  # type: ignore[attr-defined]

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.issuer.control(self)  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rotate-seconds", type=float, default=float(os.environ.get("ROTATE_SECONDS", "60")))
    parser.add_argument("--keep-generations", type=int, default=1)
    args = parser.parse_args()
    issuer = Issuer(args.rotate_seconds, args.keep_generations)
    issuer.start_jwks()
    control = _Server(("127.0.0.1", 0), _ControlHandler)
    control.issuer = issuer  # type: ignore[attr-defined]
    if args.rotate_seconds > 0:
        threading.Thread(target=issuer.rotation_loop, daemon=True).start()
    print(json.dumps({"jwks_port": issuer.jwks_port, "control_port": control.server_address[1]}), flush=True)
    try:
        control.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
