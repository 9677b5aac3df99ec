"""CORS: preflights reach FastAPI's CORSMiddleware without a token (or are refused with
GATEHOUSE_CORS_PREFLIGHT=reject), and gatehouse's own answers are readable by allowed origins
only."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from auth_support import assert_forwarded, assert_no_token, bearer, start_auth_gatehouse
from conftest import GATEHOUSE_BIN, free_port, gatehouse_env, require_binary
from tokens import better_auth_payload
from upstream_app import FRONTEND_ORIGIN

OTHER_ORIGIN = "https://evil.example.test"


@pytest.fixture(scope="module")
def gh(gatehouse_factory, upstream, jwks):
    return start_auth_gatehouse(
        gatehouse_factory, upstream.url, jwks,
        GATEHOUSE_CORS_ALLOW_ORIGINS=f"{FRONTEND_ORIGIN},http://localhost:3000",
        GATEHOUSE_CORS_ALLOW_CREDENTIALS="true",
        GATEHOUSE_RULES="/echo/admin/** role=admin",
    )


@pytest.fixture(scope="module")
def strict(gatehouse_factory, upstream, jwks):
    """Any origin may read gatehouse's answers, but preflights are refused."""
    return start_auth_gatehouse(
        gatehouse_factory, upstream.url, jwks, GATEHOUSE_CORS_ALLOW_ORIGINS="*", GATEHOUSE_CORS_PREFLIGHT="reject"
    )


def preflight(origin: str) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": "DELETE", "Access-Control-Request-Headers": "authorization"}


def cors_fields(response: httpx.Response) -> dict[str, str]:
    return {k.lower(): v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


def test_preflight_reaches_fastapi_cors_middleware_without_a_token(gh):
    response = httpx.options(f"{gh.url}/echo/admin/users", headers=preflight(FRONTEND_ORIGIN), timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == FRONTEND_ORIGIN
    assert response.headers["access-control-max-age"] == "123", "FastAPI's CORSMiddleware answered"
    assert "DELETE" in response.headers["access-control-allow-methods"]
    assert response.headers.get("x-request-id")
    # a preflight from an origin FastAPI does not allow: its own refusal comes back untouched
    refused = httpx.options(f"{gh.url}/echo/admin/users", headers=preflight(OTHER_ORIGIN), timeout=10)
    assert refused.status_code == 400 and refused.text == "Disallowed CORS origin"


def test_own_401_is_readable_by_an_allowed_origin_only(gh):
    allowed = httpx.get(f"{gh.url}/echo/x", headers={"Origin": FRONTEND_ORIGIN}, timeout=10)
    assert_no_token(allowed)
    assert cors_fields(allowed) == {
        "access-control-allow-origin": FRONTEND_ORIGIN,
        "access-control-allow-credentials": "true",
        "access-control-expose-headers": "WWW-Authenticate, X-Request-Id, Retry-After",
    }
    assert allowed.headers["vary"] == "Origin"

    for headers in ({"Origin": OTHER_ORIGIN}, {"Origin": "null"}, {}):
        other = httpx.get(f"{gh.url}/echo/x", headers=headers, timeout=10)
        assert_no_token(other)
        assert cors_fields(other) == {}, (headers, other.headers)
        assert other.headers["vary"] == "Origin"


def test_own_403_and_400_carry_cors_too(gh, key, jwks):
    token = key.token(better_auth_payload(jwks.origin, role="user"))
    forbidden = httpx.get(f"{gh.url}/echo/admin/x", headers={"Origin": FRONTEND_ORIGIN, **bearer(token)}, timeout=10)
    assert forbidden.status_code == 403
    assert forbidden.headers["access-control-allow-origin"] == FRONTEND_ORIGIN
    twice = httpx.get(f"{gh.url}/echo/x?x=1", headers=[("Origin", "http://localhost:3000"), *bearer(token).items(),
                                                      ("Authorization", f"Bearer {token}")], timeout=10)
    assert twice.status_code == 400
    assert twice.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_forwarded_responses_keep_fastapis_cors_headers_only(gh, key, jwks):
    token = key.token(better_auth_payload(jwks.origin))
    response = httpx.get(f"{gh.url}/echo/x", headers={"Origin": FRONTEND_ORIGIN, **bearer(token)}, timeout=10)
    assert_forwarded(response)
    assert response.headers.get_list("access-control-allow-origin") == [FRONTEND_ORIGIN]
    assert "access-control-expose-headers" not in response.headers, "gatehouse adds nothing to FastAPI's answers"


def test_preflight_reject_answers_403_without_cors_permission(strict):
    response = httpx.options(f"{strict.url}/echo/x", headers=preflight(FRONTEND_ORIGIN), timeout=10)
    assert response.status_code == 403
    assert response.json() == {"detail": "CORS preflight not allowed"}
    assert cors_fields(response) == {}
    # gatehouse's other answers are readable by any origin with `*`
    unauthenticated = httpx.get(f"{strict.url}/echo/x", headers={"Origin": OTHER_ORIGIN}, timeout=10)
    assert_no_token(unauthenticated)
    assert unauthenticated.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in unauthenticated.headers


def test_wildcard_with_credentials_fails_startup():
    require_binary()
    env = gatehouse_env("http://127.0.0.1:9", free_port(), free_port(), GATEHOUSE_CORS_ALLOW_ORIGINS="*",
                        GATEHOUSE_CORS_ALLOW_CREDENTIALS="true")
    result = subprocess.run([str(GATEHOUSE_BIN), "serve"], env=env, capture_output=True, text=True, timeout=15,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "GATEHOUSE_CORS_ALLOW_CREDENTIALS" in result.stderr
