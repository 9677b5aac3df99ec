"""Route policy end to end: public and optional paths, claim rules (403 insufficient_scope),
paths spelled to slip past a rule, identity headers stripped on every kind of route, the
metrics and log labels, and startup failing on an invalid pattern."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from auth_support import assert_forwarded, assert_invalid_token, assert_no_token, bearer, start_auth_gatehouse
from conftest import GATEHOUSE_BIN, free_port, gatehouse_env, header_values, raw_request, require_binary
from test_metrics import scrape, value
from tokens import better_auth_payload, payload_of, tamper_payload

PUBLIC = "/openapi.json, GET /echo/public/*"
OPTIONAL = "/echo/optional/**"
RULES = "/echo/admin/** role=admin; POST /echo/verified/** emailVerified=true; /echo/reports/** scope~reports:read"
FORBIDDEN_CHALLENGE = 'Bearer realm="gatehouse", error="insufficient_scope"'
FORGED = {"X-User-Id": "forged-admin", "X-User-Email": "boss@example.com", "X-Auth-Claims": "eyJyb2xlIjoiYWRtaW4ifQ"}


@pytest.fixture(scope="module")
def gh(gatehouse_factory, upstream, jwks):
    return start_auth_gatehouse(
        gatehouse_factory, upstream.url, jwks,
        GATEHOUSE_PUBLIC_PATHS=PUBLIC, GATEHOUSE_OPTIONAL_AUTH_PATHS=OPTIONAL, GATEHOUSE_RULES=RULES,
    )


@pytest.fixture
def client(gh):
    with httpx.Client(base_url=gh.url, timeout=10) as c:
        yield c


@pytest.fixture
def token(key, jwks):
    """token(**claims) -> a valid Better Auth-shaped token with extra claims."""

    def mint(**claims) -> str:
        return key.token(better_auth_payload(jwks.origin, **claims))

    return mint


def assert_forbidden(response: httpx.Response) -> None:
    assert response.status_code == 403, (response.status_code, response.text)
    assert response.headers.get_list("www-authenticate") == [FORBIDDEN_CHALLENGE]
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": "Forbidden"}
    assert response.headers.get("x-request-id")


def assert_no_identity_from_client(echo: dict) -> None:
    for name in FORGED:
        assert header_values(echo, name) == [], (name, echo["headers"])


# ---------------------------------------------------------------------------------------
# public and optional paths


def test_public_path_needs_no_token_and_forged_identity_is_removed(client):
    echo = assert_forwarded(client.get("/echo/public/page", headers=FORGED))
    assert echo["raw_path"] == "/echo/public/page"
    assert_no_identity_from_client(echo)
    # GET covers HEAD; another method on the same path still needs a token
    assert client.head("/echo/public/page").status_code == 200
    assert_no_token(client.post("/echo/public/page", content=b"x"))
    # * is exactly one segment
    assert_no_token(client.get("/echo/public/a/b"))
    assert client.get("/openapi.json").status_code == 200


def test_a_public_pattern_does_not_open_the_trailing_slash_spelling(client):
    """FastAPI routes /echo/public/page/ to /echo/{anything:path} (a route of its own), so
    the public `GET /echo/public/*` does not open it; `**` patterns open their subtree."""
    assert_no_token(client.get("/echo/public/page/"))
    assert_no_token(client.get("/openapi.json/"))
    assert_forwarded(client.get("/echo/optional/items/"))


def test_optional_path_without_token_is_forwarded_anonymously(client):
    echo = assert_forwarded(client.get("/echo/optional/items", headers=FORGED))
    assert_no_identity_from_client(echo)


def test_optional_path_with_a_token_forwards_the_identity(client, token):
    good = token()
    sub = payload_of(good)["sub"]
    echo = assert_forwarded(client.get("/echo/optional/items", headers={**bearer(good), **FORGED}))
    assert header_values(echo, "X-User-Id") == [sub], "the verified sub only, never the forged one"


def test_optional_path_with_a_bad_token_is_still_refused(client, token):
    assert_invalid_token(client.get("/echo/optional/items", headers=bearer(tamper_payload(token(), role="admin"))), "bad signature")


# ---------------------------------------------------------------------------------------
# claim rules


def test_role_rule(client, token):
    assert_no_token(client.get("/echo/admin/users"))
    assert_forbidden(client.get("/echo/admin/users", headers=bearer(token())))
    assert_forbidden(client.get("/echo/admin", headers=bearer(token(role="user"))))
    assert_forwarded(client.get("/echo/admin/users", headers=bearer(token(role="admin"))))
    # an array claim matches on any element
    assert_forwarded(client.get("/echo/admin/", headers=bearer(token(role=["editor", "admin"]))))


def test_scope_and_boolean_rules(client, token):
    assert_forwarded(client.get("/echo/reports/q3", headers=bearer(token(scope="openid reports:read"))))
    assert_forbidden(client.get("/echo/reports/q3", headers=bearer(token(scope="openid reports:readx"))))
    unverified = token(emailVerified=False)
    assert_forbidden(client.post("/echo/verified/orders", headers=bearer(unverified), content=b"{}"))
    assert_forwarded(client.get("/echo/verified/orders", headers=bearer(unverified)))  # the rule is POST only
    assert_forwarded(client.post("/echo/verified/orders", headers=bearer(token()), content=b"{}"))


@pytest.mark.parametrize(
    "target, status",
    [
        ("/echo/%61dmin/users", 403),  # %61 is "a": the admin rule applies
        ("/echo/admin/%2e%2e/public/x", 400),  # Starlette would serve it as an admin route
        ("/echo/public/../admin/users", 400),
        ("/echo/admin/./users", 400),
        ("//echo/admin/users", 400),
        ("/echo//admin/users", 400),
        ("/echo/admin%2Fusers", 400),  # Starlette would route /echo/admin/users
        ("/echo/public%2F..%2Fadmin", 400),
        ("/echo/admin%0A", 400),  # Python's `$` matches before a final newline: Starlette runs /echo/admin
        ("/echo/public/x%0a", 400),
    ],
)
def test_spellings_cannot_slip_past_the_admin_rule(gh, token, target, status):
    user = token(role="user")
    request = f"GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {user}\r\nConnection: close\r\n\r\n".encode()
    response = raw_request(gh.port, request)
    assert response.status == status, response
    if status == 400:
        assert response.json() == {"detail": "Invalid request path"}


@pytest.mark.parametrize("target", ["/echo/admin#", "/echo/public/x#/../../admin", "/echo/admin?x=1#frag"])
def test_a_fragment_in_the_target_is_refused(gh, token, target):
    """uvicorn's httptools parser would route `/echo/admin#...` as `/echo/admin`, h11 would not."""
    request = f"GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token()}\r\nConnection: close\r\n\r\n"
    response = raw_request(gh.port, request.encode())
    assert response.status == 400, response
    assert response.json() == {"detail": "Fragment in request target"}


def test_preflight_with_a_body_or_an_odd_path_is_not_exempt(gh):
    preflight = "Origin: https://app.example.test\r\nAccess-Control-Request-Method: POST\r\n"
    with_body = f"OPTIONS /echo/admin/x HTTP/1.1\r\nHost: x\r\n{preflight}Content-Length: 4\r\nConnection: close\r\n\r\nbody"
    response = raw_request(gh.port, with_body.encode())
    assert response.status == 401, response  # an ordinary OPTIONS: it needs a token
    odd = f"OPTIONS /echo/public/../admin HTTP/1.1\r\nHost: x\r\n{preflight}Connection: close\r\n\r\n"
    response = raw_request(gh.port, odd.encode())
    assert response.status == 400, response
    assert response.json() == {"detail": "Invalid request path"}


def test_a_path_the_rules_allow_reaches_fastapi_byte_for_byte(gh, token):
    request = (f"GET /echo/%70ublic-not/%7Ex?q=%2e HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token()}\r\n"
               "Connection: close\r\n\r\n").encode()
    response = raw_request(gh.port, request)
    assert response.status == 200, response
    assert response.json()["raw_path"] == "/echo/%70ublic-not/%7Ex"


# ---------------------------------------------------------------------------------------
# metrics and logs


def test_route_class_and_forbidden_are_counted_and_logged(gh, client, token):
    before = scrape(gh)
    client.get("/echo/public/m")
    client.get("/echo/optional/m")
    refused_token = token(role="user")
    client.get("/echo/admin/m", headers=bearer(refused_token))
    after = scrape(gh)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("gatehouse_requests_total", route_class="public", status="200") == 1
    assert moved("gatehouse_requests_total", route_class="optional", status="200") == 1
    assert moved("gatehouse_requests_total", route_class="protected", status="403") == 1
    assert moved("gatehouse_auth_decisions_total", result="rejected", reason="forbidden") == 1

    lines = [json.loads(line) for line in gh.stdout().splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("msg") == "request" and line.get("path") == "/echo/admin/m"]
    assert requests and requests[-1]["status"] == "403" and requests[-1]["auth"] == "forbidden"
    assert requests[-1]["route_class"] == "protected"
    assert requests[-1]["user"] == payload_of(refused_token)["sub"]  # who was refused, never the token
    optional = [line for line in lines if line.get("msg") == "request" and line.get("path") == "/echo/optional/m"]
    assert optional and optional[-1]["auth"] == "anonymous" and optional[-1]["route_class"] == "optional"


# ---------------------------------------------------------------------------------------
# startup


@pytest.mark.parametrize(
    "variable, value, offending",
    [
        ("GATEHOUSE_RULES", "/admin/** role=admin; /reports/*x scope~reports:read", "/reports/*x scope~reports:read"),
        ("GATEHOUSE_PUBLIC_PATHS", "/health, get /public/*", "get /public/*"),
        ("GATEHOUSE_OPTIONAL_AUTH_PATHS", "/items/../admin", "/items/../admin"),
    ],
)
def test_invalid_pattern_fails_startup_naming_variable_and_pattern(variable, value, offending):
    require_binary()
    env = gatehouse_env("http://127.0.0.1:9", free_port(), free_port(), BETTER_AUTH_URL="http://127.0.0.1:9", **{variable: value})
    try:
        result = subprocess.run([str(GATEHOUSE_BIN), "serve"], env=env, capture_output=True, text=True, timeout=15,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"gatehouse serve kept running with an invalid pattern: {exc}")
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    problem = [line for line in result.stderr.splitlines() if variable + ":" in line]
    assert problem, result.stderr
    assert f'"{offending}"' in problem[0], problem
