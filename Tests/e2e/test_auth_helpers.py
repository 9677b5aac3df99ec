"""The test helpers themselves (no gatehouse involved): tokens.py mints tokens that an
independent verifier (PyJWT) accepts, in Better Auth's exact shape, and jwks_server.py
behaves like Better Auth's JWKS endpoint and like each failure it is asked to simulate."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from pathlib import Path

import httpx
import jwt
import pytest

from jwks_server import JWKS_PATH, JWKSServer
from tokens import (
    ALGORITHMS,
    SigningKey,
    alg_none,
    b64url_decode,
    better_auth_payload,
    header_of,
    hs256_with_public_key,
    payload_bytes_of,
    payload_of,
    random_id,
    tamper_payload,
    with_padding,
)

# Tests/Fixtures/, found relative to this file (see its README for their origin).
FIXTURES = json.loads((Path(__file__).resolve().parent.parent / "Fixtures" / "better-auth-1.4-examples.json").read_text())
FIXTURE_JWKS = ["ex1_jwks", "ex2_jwks", "ex3_es256_jwks", "ex3_rs256_jwks", "ex3_ps256_jwks", "ex3_es512_jwks"]


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {alg: SigningKey.generate(alg) for alg in ALGORITHMS}


def pyjwt_verify(token: str, jwk: dict, audience: str) -> dict:
    key = jwt.PyJWK(jwk)
    return jwt.decode(token, key.key, algorithms=[jwk["alg"]], audience=audience, issuer=audience)


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_minted_tokens_verify_with_pyjwt_and_have_better_auth_shape(keys, alg):
    key = keys[alg]
    origin = "http://127.0.0.1:3000"
    token = key.token(better_auth_payload(origin))
    assert pyjwt_verify(token, key.jwk(), origin)["sub"] == payload_of(token)["id"]
    # header exactly {"alg","kid"}, in that order, compact
    assert b64url_decode(token.split(".")[0]) == json.dumps({"alg": alg, "kid": key.kid}, separators=(",", ":")).encode()
    assert "=" not in token
    assert len(key.kid) == 32 and key.kid.isalnum()
    payload = payload_of(token)
    assert list(payload) == [
        "iat", "name", "email", "emailVerified", "image", "createdAt", "updatedAt", "id", "sub", "exp", "iss", "aud",
    ]
    assert payload["exp"] - payload["iat"] == 900
    assert payload["image"] is None and payload["sub"] == payload["id"]


@pytest.mark.parametrize("name", FIXTURE_JWKS)
def test_minted_jwks_members_are_in_better_auth_order(keys, name):
    fixture_key = FIXTURES[name]["keys"][0]
    ours = keys[fixture_key["alg"]].jwk()
    assert list(ours) == list(fixture_key)
    assert {k: len(v) for k, v in ours.items() if k in ("x", "y", "n")} == {
        k: len(v) for k, v in fixture_key.items() if k in ("x", "y", "n")
    }


@pytest.mark.parametrize(
    "token_name,jwks_name",
    [
        ("ex1_token", "ex1_jwks"),
        ("ex2_token_new", "ex2_jwks"),
        ("ex3_es256_token", "ex3_es256_jwks"),
        ("ex3_rs256_token", "ex3_rs256_jwks"),
        ("ex3_ps256_token", "ex3_ps256_jwks"),
    ],
)
def test_fixture_tokens_verify_with_pyjwt(token_name, jwks_name):
    token = FIXTURES[token_name]
    kid = header_of(token)["kid"]
    jwk = next(k for k in FIXTURES[jwks_name]["keys"] if k["kid"] == kid)
    claims = jwt.decode(
        token, jwt.PyJWK(jwk).key, algorithms=[jwk["alg"]], options={"verify_exp": False, "verify_aud": False}
    )
    assert claims["sub"]


def test_malformed_variants_are_what_they_claim(keys):
    key = keys["EdDSA"]
    origin = "http://127.0.0.1:3000"
    token = key.token(better_auth_payload(origin, email="orig@example.com"))
    tampered = tamper_payload(token, email="evil@example.com")
    assert payload_of(tampered)["email"] == "evil@example.com" and tampered.split(".")[2] == token.split(".")[2]
    with pytest.raises(jwt.InvalidSignatureError):
        pyjwt_verify(tampered, key.jwk(), origin)
    assert "=" in with_padding(token)
    none = alg_none(better_auth_payload(origin))
    assert header_of(none) == {"alg": "none"} and none.endswith(".")
    hs = hs256_with_public_key(key, better_auth_payload(origin))
    assert header_of(hs)["alg"] == "HS256"
    # (PyJWT refuses a PEM as HMAC secret, which is the point of the attack: check by hand)
    signing_input, _, mac = hs.rpartition(".")
    assert b64url_decode(mac) == hmac.new(key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    assert payload_bytes_of(token) == json.dumps(payload_of(token), separators=(",", ":")).encode()
    other = key.token(better_auth_payload(origin), kid=random_id())
    assert header_of(other)["kid"] != key.kid


# ---------------------------------------------------------------------------------------
# the JWKS server


def test_jwks_server_serves_better_auth_shape_without_cache_headers(keys):
    with JWKSServer(keys=[keys["EdDSA"].jwk(), keys["ES256"].jwk()]) as server:
        response = httpx.get(server.jwks_url, headers={"User-Agent": "ua-test/1"})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert "cache-control" not in response.headers and "etag" not in response.headers
        assert response.content.startswith(b'{"keys":[{"alg":"EdDSA","crv":"Ed25519","x":"')
        assert [k["kid"] for k in response.json()["keys"]] == [keys["EdDSA"].kid, keys["ES256"].kid]
        # usable by an independent JWKS client
        client = jwt.PyJWKClient(server.jwks_url, cache_jwk_set=False)
        token = keys["ES256"].token(better_auth_payload(server.origin))
        signing_key = client.get_signing_key_from_jwt(token)
        assert jwt.decode(token, signing_key.key, algorithms=["ES256"], audience=server.origin)["iss"] == server.origin
        recorded = server.recorded()
        assert recorded[0].header("user-agent") == "ua-test/1"
        assert server.fetch_count() == 2


def test_jwks_server_cache_control_etag_and_304(keys):
    with JWKSServer(keys=[keys["EdDSA"].jwk()], cache_control="max-age=7", etag='"v1"') as server:
        first = httpx.get(server.jwks_url)
        assert first.headers["cache-control"] == "max-age=7" and first.headers["etag"] == '"v1"'
        again = httpx.get(server.jwks_url, headers={"If-None-Match": '"v1"'})
        assert again.status_code == 304 and again.content == b""
        changed = httpx.get(server.jwks_url, headers={"If-None-Match": '"v0"'})
        assert changed.status_code == 200
        assert [r.status for r in server.recorded()] == [200, 304, 200]
        assert server.recorded()[1].header("if-none-match") == '"v1"'


def test_jwks_server_failure_modes(keys):
    server = JWKSServer(keys=[keys["EdDSA"].jwk()]).start()
    try:
        server.status = 500
        assert httpx.get(server.jwks_url).status_code == 500
        server.status, server.body = None, b"<html>not json"
        assert httpx.get(server.jwks_url).content == b"<html>not json"
        server.body = b"x" * ((1 << 20) + 1)
        assert len(httpx.get(server.jwks_url).content) > 1 << 20
        server.body, server.delay = None, 0.3
        started = time.monotonic()
        assert httpx.get(server.jwks_url).status_code == 200
        assert time.monotonic() - started >= 0.3
        server.delay = 0
        assert httpx.get(server.url("/evil-jwks")).status_code == 404
        assert [r.path for r in server.recorded("/evil-jwks")] == ["/evil-jwks"]
        port = server.port
        server.stop()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}{JWKS_PATH}", timeout=2)
        server.start()
        assert server.port == port and httpx.get(server.jwks_url).status_code == 200
    finally:
        server.stop()


def test_jwks_server_closes_each_connection(keys):
    with JWKSServer(keys=[keys["EdDSA"].jwk()]) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(f"GET {JWKS_PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 200") and b"Connection: close" in data
