"""Token verification's configuration: what BETTER_AUTH_URL implies, the overrides, auth
being mandatory, and proxy-only mode (GATEHOUSE_AUTH=off)."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from auth_support import assert_forwarded, assert_invalid_token, bearer, one_header, start_auth_gatehouse
from conftest import GATEHOUSE_BIN, free_port, gatehouse_env, header_values, require_binary, run_gatehouse_command
from jwks_server import JWKSServer
from tokens import SigningKey, better_auth_payload


def env_with(**overrides: str | None) -> dict:
    return gatehouse_env("http://127.0.0.1:9", free_port(), free_port(), **overrides)


def serve_expecting_failure(env: dict) -> subprocess.CompletedProcess:
    require_binary()
    try:
        return subprocess.run(
            [str(GATEHOUSE_BIN), "serve"], env=env, capture_output=True, text=True, timeout=15, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"gatehouse serve kept running with a bad configuration: {exc}")


def effective(result: subprocess.CompletedProcess) -> dict[str, str]:
    """check-config's NAME=value lines."""
    values = {}
    for line in result.stdout.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip().isupper():
            values[name.strip()] = value.strip()
    return values


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate("EdDSA")


@pytest.fixture
def jwks(key):
    server = JWKSServer(keys=[key.jwk()]).start()
    yield server
    server.stop()


# ---------------------------------------------------------------------------------------
# auth is mandatory


def test_serve_without_any_auth_configuration_exits_2_naming_better_auth_url():
    result = serve_expecting_failure(env_with(GATEHOUSE_AUTH=None))
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "BETTER_AUTH_URL" in result.stderr, result.stderr


def test_serve_with_auth_jwt_but_no_url_exits_2_naming_better_auth_url():
    result = serve_expecting_failure(env_with(GATEHOUSE_AUTH="jwt"))
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "BETTER_AUTH_URL" in result.stderr, result.stderr


def test_check_config_without_any_auth_configuration_fails_naming_better_auth_url():
    result = run_gatehouse_command(["check-config"], env_with(GATEHOUSE_AUTH=None))
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert "BETTER_AUTH_URL" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "variable,value",
    [
        ("GATEHOUSE_AUTH", "maybe"),
        ("GATEHOUSE_ALGORITHMS", "HS256"),
        ("GATEHOUSE_ALGORITHMS", "none"),
        ("GATEHOUSE_ALGORITHMS", "EdDSA,RS1"),
        ("GATEHOUSE_CLOCK_SKEW", "soon"),
        ("GATEHOUSE_MAX_TOKEN_BYTES", "lots"),
        ("GATEHOUSE_JWKS_TTL", "5 minutes"),
        ("GATEHOUSE_JWKS_FETCH_TIMEOUT", "-1s"),
        ("GATEHOUSE_TOKEN_CACHE_SIZE", "-1"),
        ("GATEHOUSE_FORWARD_TOKEN", "maybe"),
        ("GATEHOUSE_CLAIM_HEADERS", "X-User-Id"),
        ("BETTER_AUTH_URL", "not a url"),
    ],
)
def test_serve_rejects_a_malformed_auth_variable_with_exit_2_naming_it(variable, value):
    overrides = {"BETTER_AUTH_URL": "http://127.0.0.1:1", variable: value}
    result = serve_expecting_failure(env_with(**overrides))
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert any(variable in line for line in result.stderr.splitlines()), result.stderr


# ---------------------------------------------------------------------------------------
# check-config: derived and overridden values


def test_check_config_derives_jwks_url_issuer_and_audience_from_better_auth_url():
    result = run_gatehouse_command(["check-config"], env_with(BETTER_AUTH_URL="http://127.0.0.1:1"))
    assert result.returncode == 0, (result.stdout, result.stderr)
    values = effective(result)
    assert values.get("GATEHOUSE_JWKS_URL") == "http://127.0.0.1:1/api/auth/jwks", result.stdout
    assert values.get("GATEHOUSE_ISSUER") == "http://127.0.0.1:1", result.stdout
    assert values.get("GATEHOUSE_AUDIENCE", "").split(",") == ["http://127.0.0.1:1"], result.stdout


def test_check_config_shows_the_auth_defaults():
    result = run_gatehouse_command(["check-config"], env_with(BETTER_AUTH_URL="http://127.0.0.1:1"))
    assert result.returncode == 0, (result.stdout, result.stderr)
    out = result.stdout
    for name in [
        "GATEHOUSE_ALGORITHMS", "GATEHOUSE_CLOCK_SKEW", "GATEHOUSE_MAX_TOKEN_BYTES", "GATEHOUSE_JWKS_TTL",
        "GATEHOUSE_JWKS_MIN_TTL", "GATEHOUSE_JWKS_MAX_TTL", "GATEHOUSE_JWKS_REFETCH_COOLDOWN",
        "GATEHOUSE_JWKS_FETCH_TIMEOUT", "GATEHOUSE_JWKS_MAX_STALE", "GATEHOUSE_TOKEN_CACHE_SIZE",
        "GATEHOUSE_CLAIM_HEADERS", "GATEHOUSE_CLAIMS_HEADER", "GATEHOUSE_FORWARD_TOKEN",
    ]:
        assert name in out, f"{name} missing from:\n{out}"
    values = effective(result)
    assert set(values["GATEHOUSE_ALGORITHMS"].split(",")) == {"EdDSA", "ES256", "ES512", "RS256", "PS256"}
    assert "X-User-Id=sub" in values["GATEHOUSE_CLAIM_HEADERS"] and "X-User-Email=email" in values["GATEHOUSE_CLAIM_HEADERS"]
    assert values["GATEHOUSE_CLAIMS_HEADER"] == "X-Auth-Claims"


def test_check_config_overrides():
    result = run_gatehouse_command(
        ["check-config"],
        env_with(
            BETTER_AUTH_URL="http://127.0.0.1:1",
            GATEHOUSE_JWKS_URL="http://127.0.0.1:2/keys.json",
            GATEHOUSE_ISSUER="https://issuer.example",
            GATEHOUSE_AUDIENCE="https://api.example,https://app.example",
        ),
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    values = effective(result)
    assert values.get("GATEHOUSE_JWKS_URL") == "http://127.0.0.1:2/keys.json", result.stdout
    assert values.get("GATEHOUSE_ISSUER") == "https://issuer.example", result.stdout
    assert set(values.get("GATEHOUSE_AUDIENCE", "").split(",")) == {"https://api.example", "https://app.example"}


@pytest.mark.parametrize(
    "variable,value",
    [
        ("GATEHOUSE_CLOCK_SKEW", "500ms"),
        ("GATEHOUSE_CLOCK_SKEW", "30s"),
        ("GATEHOUSE_MAX_TOKEN_BYTES", "16KiB"),
        ("GATEHOUSE_MAX_TOKEN_BYTES", "8192"),
        ("GATEHOUSE_JWKS_TTL", "5m"),
        ("GATEHOUSE_JWKS_FETCH_TIMEOUT", "500ms"),
        ("GATEHOUSE_JWKS_MAX_STALE", "24h"),
        ("GATEHOUSE_TOKEN_CACHE_SIZE", "0"),
        ("GATEHOUSE_ALGORITHMS", "EdDSA"),
        ("GATEHOUSE_CLAIM_HEADERS", "X-User-Id=sub,X-Org=org.id"),
        ("GATEHOUSE_TOKEN_COOKIE", "gh_token"),
        ("GATEHOUSE_TOKEN_QUERY_PARAM", "access_token"),
        ("GATEHOUSE_FORWARD_TOKEN", "false"),
    ],
)
def test_check_config_accepts_documented_auth_value_syntax(variable, value):
    result = run_gatehouse_command(["check-config"], env_with(BETTER_AUTH_URL="http://127.0.0.1:1", **{variable: value}))
    assert result.returncode == 0, (result.stdout, result.stderr)


# ---------------------------------------------------------------------------------------
# the derived values at work


def test_better_auth_url_alone_fetches_the_jwks_and_verifies_with_its_origin(gatehouse_factory, upstream, jwks, key):
    gh = start_auth_gatehouse(gatehouse_factory, upstream.url, jwks)
    assert [r.path for r in jwks.recorded(None)][:1] == ["/api/auth/jwks"]
    token = key.token(better_auth_payload(jwks.origin))
    echo = assert_forwarded(httpx.get(f"{gh.url}/echo/derived", headers=bearer(token), timeout=10))
    assert one_header(echo, "x-user-id")
    # iss / aud must be the origin exactly
    for claim, reason in (("iss", "issuer mismatch"), ("aud", "audience mismatch")):
        bad = key.token(better_auth_payload(jwks.origin, **{claim: jwks.origin + "/"}))
        assert_invalid_token(httpx.get(f"{gh.url}/echo/derived", headers=bearer(bad), timeout=10), reason, bad)


def test_better_auth_url_with_trailing_slash_gives_the_same_endpoints(gatehouse_factory, upstream, jwks, key):
    gh = start_auth_gatehouse(gatehouse_factory, upstream.url, jwks, BETTER_AUTH_URL=jwks.origin + "/")
    assert jwks.fetch_count() >= 1, [r.path for r in jwks.recorded(None)]
    token = key.token(better_auth_payload(jwks.origin))
    assert_forwarded(httpx.get(f"{gh.url}/echo/slash", headers=bearer(token), timeout=10))


def test_jwks_url_issuer_and_audience_overrides(gatehouse_factory, upstream, key):
    server = JWKSServer(routes={}).start()
    try:
        # the keys live at a custom path; /api/auth/jwks serves an empty set
        server.routes["/custom/keys"] = (200, "application/json", b'{"keys":[' + _json(key.jwk()) + b"]}")
        gh = start_auth_gatehouse(
            gatehouse_factory, upstream.url, server,
            BETTER_AUTH_URL=None,
            GATEHOUSE_JWKS_URL=server.url("/custom/keys"),
            GATEHOUSE_ISSUER="https://auth.example.com",
            GATEHOUSE_AUDIENCE="https://api.example.com, https://other.example.com",
        )
        assert server.recorded("/custom/keys"), "the configured JWKS URL was not fetched"
        assert not server.recorded("/api/auth/jwks")
        good = key.token(better_auth_payload("https://auth.example.com", aud="https://other.example.com"))
        assert_forwarded(httpx.get(f"{gh.url}/echo/o", headers=bearer(good), timeout=10))
        good_list = key.token(better_auth_payload("https://auth.example.com", aud=["https://x.example", "https://api.example.com"]))
        assert_forwarded(httpx.get(f"{gh.url}/echo/o", headers=bearer(good_list), timeout=10))
        wrong_iss = key.token(better_auth_payload(server.origin, aud="https://api.example.com"))
        assert_invalid_token(httpx.get(f"{gh.url}/echo/o", headers=bearer(wrong_iss), timeout=10), "issuer mismatch", wrong_iss)
        wrong_aud = key.token(better_auth_payload("https://auth.example.com", aud=server.origin))
        assert_invalid_token(httpx.get(f"{gh.url}/echo/o", headers=bearer(wrong_aud), timeout=10), "audience mismatch", wrong_aud)
    finally:
        server.stop()


def _json(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# ---------------------------------------------------------------------------------------
# GATEHOUSE_AUTH=off (the default `gatehouse` fixture of this suite)


def test_auth_off_forwards_requests_without_a_token(client):
    assert_forwarded(client.get("/echo/off"))


def test_auth_off_forwards_a_bearer_token_untouched(client):
    echo = assert_forwarded(client.get("/echo/off", headers={"Authorization": "Bearer not-even-a-jwt"}))
    assert header_values(echo, "authorization") == ["Bearer not-even-a-jwt"]


def test_auth_off_still_strips_forged_identity_headers(client):
    forged = [
        ("X-User-Id", "admin"),
        ("x-user-email", "admin@example.com"),
        ("X-AUTH-CLAIMS", "eyJzdWIiOiJhZG1pbiJ9"),
        ("X-User-ID", "root"),
        ("X-Unrelated", "kept"),
    ]
    echo = assert_forwarded(client.get("/echo/forged", headers=forged))
    for name in ("x-user-id", "x-user-email", "x-auth-claims"):
        assert header_values(echo, name) == [], f"forged {name} reached FastAPI: {echo['headers']}"
    assert header_values(echo, "x-unrelated") == ["kept"]


def test_underscore_spellings_of_managed_headers_are_dropped(client):
    """WSGI servers (and Starlette's WSGIMiddleware, for a mounted Flask or Django app) read
    X_User_Id and X-User-Id as the same variable: such spellings of the identity, forwarding
    and request-id headers never reach FastAPI; other underscore headers pass."""
    forged = [
        ("X_User_Id", "admin"),
        ("x_auth_claims", "eyJzdWIiOiJhZG1pbiJ9"),
        ("X-User_Email", "admin@example.com"),
        ("X_Forwarded_For", "6.6.6.6"),
        ("X_Request_Id", "forged-id"),
        ("X_Unrelated_Thing", "kept"),
    ]
    echo = assert_forwarded(client.get("/echo/underscores", headers=forged))
    for name in ("x_user_id", "x_auth_claims", "x-user_email", "x_forwarded_for", "x_request_id"):
        assert header_values(echo, name) == [], f"{name} reached FastAPI: {echo['headers']}"
    assert header_values(echo, "x_unrelated_thing") == ["kept"]
    assert "6.6.6.6" not in json.dumps(echo["headers"])

