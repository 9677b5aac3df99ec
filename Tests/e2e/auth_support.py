"""Shared helpers for the token-verification tests (test_auth*.py): starting gatehouse in
front of a JWKSServer, and asserting gatehouse's 401 / 400 / 503 answers exactly."""

from __future__ import annotations

import base64
import email.utils
import json
import re
import threading
import time

import httpx

from conftest import Gatehouse, RawConnection, header_values, wait_until
from jwks_server import JWKSServer
from tokens import split

# The complete vocabulary of `error_description` / "Invalid token: <reason>".
REASONS = {
    "expired",
    "not yet valid",
    "bad signature",
    "unknown key",
    "issuer mismatch",
    "audience mismatch",
    "malformed",
    "algorithm not allowed",
}

NO_TOKEN_CHALLENGE = 'Bearer realm="gatehouse"'


def invalid_token_challenge(reason: str) -> str:
    return f'Bearer realm="gatehouse", error="invalid_token", error_description="{reason}"'


INVALID_REQUEST_CHALLENGE = 'Bearer realm="gatehouse", error="invalid_request"'


def start_auth_gatehouse(
    gatehouse_factory, upstream_url: str, jwks: JWKSServer, wait_ready: bool = True, **env: str | None
) -> Gatehouse:
    """gatehouse with BETTER_AUTH_URL = the JWKS server's origin (unless `env` sets its own
    auth variables). With wait_ready, returns once /readyz is 200 (first JWKS fetch done);
    otherwise once /healthz answers."""
    settings: dict[str, str | None] = {"BETTER_AUTH_URL": jwks.origin}
    settings.update(env)
    if wait_ready:
        return gatehouse_factory(upstream_url, **settings)
    return gatehouse_factory(upstream_url, ready_path="/healthz", **settings)


def bearer(token: str, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {token}"}


def readyz(gh: Gatehouse) -> tuple[int, dict]:
    response = httpx.get(f"{gh.admin_url}/readyz", timeout=5)
    try:
        body = response.json()
    except ValueError:
        body = {"_raw": response.text}
    return response.status_code, body


def wait_readyz(gh: Gatehouse, predicate, timeout: float, what: str) -> tuple[int, dict]:
    """Polls /readyz until predicate(status, body) holds."""
    last: list = []

    def check():
        status, body = readyz(gh)
        last[:] = [status, body]
        return (status, body) if predicate(status, body) else None

    try:
        return wait_until(check, timeout=timeout, interval=0.05, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last /readyz: {last}") from None


def _token_parts(token: str | None) -> list[str]:
    """Pieces of a token that must never be echoed: the whole token, each segment of
    substance, and the payload's string values."""
    if not token:
        return []
    parts = [token]
    pieces = token.split(".")
    parts += [p for p in pieces[1:] if len(p) >= 8]
    if len(pieces) == 3:
        try:
            payload = json.loads(base64.urlsafe_b64decode(pieces[1] + "=" * (-len(pieces[1]) % 4)))
            if isinstance(payload, dict):
                for key in ("email", "sub", "name", "id"):
                    value = payload.get(key)
                    if isinstance(value, str) and len(value) >= 6:
                        parts.append(value)
        except Exception:  # noqa: BLE001 - a deliberately broken payload
            pass
    return parts


def assert_nothing_of_token_in(response: httpx.Response, token: str | None) -> None:
    # X-Request-Id is 32 random hex digits made by gatehouse: a short garbage token such as
    # "abc" turns up in it by chance (about 1 run in 150), without anything being echoed.
    # It is checked for its shape instead, so nothing else can hide in it.
    request_id = response.headers.get("x-request-id")
    assert request_id is None or re.fullmatch(r"[0-9a-f]{32}", request_id), request_id
    text = response.text + "\n" + "\n".join(
        f"{k}: {v}" for k, v in response.headers.items() if k.lower() != "x-request-id")
    for part in _token_parts(token):
        assert part not in text, f"the response echoes part of the token ({part[:40]}…): {text[:500]}"


def assert_invalid_token(response: httpx.Response, reason: str | set[str], token: str | None = None) -> str:
    """401 invalid_token with the exact challenge and body; returns the reason given."""
    allowed = {reason} if isinstance(reason, str) else set(reason)
    assert allowed <= REASONS, allowed - REASONS
    assert response.status_code == 401, (response.status_code, response.headers, response.text)
    challenge = response.headers.get("www-authenticate")
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"detail"}, body
    detail = body["detail"]
    assert isinstance(detail, str) and detail.startswith("Invalid token: "), body
    given = detail.removeprefix("Invalid token: ")
    assert given in allowed, f"reason {given!r}, expected {sorted(allowed)}; body {body}"
    assert challenge == invalid_token_challenge(given), challenge
    assert response.headers.get_list("www-authenticate") == [challenge]
    assert_nothing_of_token_in(response, token)
    return given


def assert_no_token(response: httpx.Response) -> None:
    assert response.status_code == 401, (response.status_code, response.headers, response.text)
    assert response.headers.get_list("www-authenticate") == [NO_TOKEN_CHALLENGE], response.headers
    assert response.json() == {"detail": "Not authenticated"}


def assert_invalid_request(response: httpx.Response, token: str | None = None) -> None:
    assert response.status_code == 400, (response.status_code, response.headers, response.text)
    assert response.headers.get_list("www-authenticate") == [INVALID_REQUEST_CHALLENGE], response.headers
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("detail"), str) and body["detail"], body
    assert_nothing_of_token_in(response, token)


def assert_keys_unavailable(response: httpx.Response, token: str | None = None) -> None:
    assert response.status_code == 503, (response.status_code, response.headers, response.text)
    retry_after = response.headers.get("retry-after")
    assert retry_after is not None, f"503 without Retry-After: {response.headers}"
    assert retry_after.strip().isdigit() or email.utils.parsedate(retry_after), retry_after
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("detail"), str) and body["detail"], body
    assert_nothing_of_token_in(response, token)


def assert_forwarded(response: httpx.Response) -> dict:
    """The request reached FastAPI's /echo; returns what it saw."""
    assert response.status_code == 200, (response.status_code, response.headers, response.text)
    echo = response.json()
    assert "headers" in echo and "method" in echo, echo
    return echo


def one_header(echo: dict, name: str) -> str | None:
    values = header_values(echo, name)
    assert len(values) <= 1, f"{name} arrived {len(values)} times: {values}"
    return values[0] if values else None


def decode_b64url_header(value: str) -> bytes:
    """X-Auth-Claims: base64url (padding tolerated)."""
    assert set(value) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_="), value
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def signature_of(token: str) -> str:
    return split(token)[2]


# ---------------------------------------------------------------------------------------
# many requests, fast: keep-alive raw connections in threads


def fire(port: int, requests: list[bytes], connections: int = 16, timeout: float = 30) -> list[tuple[int, dict]]:
    """Sends each raw HTTP/1.1 request (keep-alive) spread over `connections` parallel
    connections; returns (status, JSON body) per request, in the given order."""
    results: list[tuple[int, dict] | None] = [None] * len(requests)
    errors: list[BaseException] = []

    def worker(indices: list[int]) -> None:
        try:
            conn = RawConnection(port, timeout=timeout)
            try:
                for i in indices:
                    try:
                        conn.send(requests[i])
                        resp = conn.read_response()
                    except Exception:  # noqa: BLE001 - server closed a kept-alive connection: retry once
                        conn.close()
                        conn = RawConnection(port, timeout=timeout)
                        conn.send(requests[i])
                        resp = conn.read_response()
                    try:
                        body = resp.json()
                    except ValueError:
                        body = {"_raw": resp.body[:200].decode("latin-1")}
                    www = resp.get("www-authenticate")
                    results[i] = (resp.status, {"body": body, "www-authenticate": www})
                    if (resp.get("connection") or "").lower() == "close":
                        conn.close()
                        conn = RawConnection(port, timeout=timeout)
            finally:
                conn.close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=worker, args=(list(range(n, len(requests), connections)),), daemon=True)
        for n in range(connections)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5)
    if errors:
        raise errors[0]
    missing = [i for i, r in enumerate(results) if r is None]
    assert not missing, f"{len(missing)} requests got no response"
    return results  # type: ignore[return-value]


def raw_get(path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def now() -> float:
    return time.time()
