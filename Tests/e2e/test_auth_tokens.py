"""Token verification at the edge: where the token comes from, every way a token is refused
(status, challenge and reason exactly), and what FastAPI learns about a verified user."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from auth_support import (
    REASONS,
    assert_forwarded,
    assert_invalid_request,
    assert_invalid_token,
    assert_no_token,
    bearer,
    decode_b64url_header,
    one_header,
    start_auth_gatehouse,
)
from conftest import header_values
from jwks_server import JWKSServer
from tokens import (
    ALGORITHMS,
    SigningKey,
    alg_none,
    b64url,
    better_auth_payload,
    hs256_with_public_key,
    json_bytes,
    payload_bytes_of,
    payload_of,
    random_id,
    sign_compact,
    split,
    tamper_payload,
    with_padding,
)

COOKIE = "gh_token"
QUERY = "access_token"


# ---------------------------------------------------------------------------------------
# fixtures: one JWKS server with a key of every algorithm (+ a second EdDSA key), and
# gatehouse instances in front of it


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    ring = {alg: SigningKey.generate(alg) for alg in ALGORITHMS}
    ring["EdDSA-2"] = SigningKey.generate("EdDSA")
    return ring


@pytest.fixture(scope="module")
def outsider() -> SigningKey:
    """A key that is never published in the configured JWKS."""
    return SigningKey.generate("EdDSA")


@pytest.fixture(scope="module")
def jwks(keys, outsider):
    server = JWKSServer(keys=[k.jwk() for k in keys.values()])
    server.routes["/evil-jwks"] = (200, "application/json", json_bytes({"keys": [outsider.jwk()]}))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gh(gatehouse_factory, upstream, jwks):
    """BETTER_AUTH_URL plus both optional token sources."""
    return start_auth_gatehouse(
        gatehouse_factory, upstream.url, jwks, GATEHOUSE_TOKEN_COOKIE=COOKIE, GATEHOUSE_TOKEN_QUERY_PARAM=QUERY
    )


@pytest.fixture(scope="module")
def client(gh):
    with httpx.Client(base_url=gh.url, timeout=15) as c:
        yield c


@pytest.fixture(scope="module")
def mint(keys, jwks):
    """mint(alg="EdDSA", **claims) -> a Better Auth-shaped token for this JWKS server's origin."""

    def make(alg: str = "EdDSA", **claims) -> str:
        return keys[alg].token(better_auth_payload(jwks.origin, **claims))

    return make


# ---------------------------------------------------------------------------------------
# where the token comes from


def test_no_token_is_401_not_authenticated(client):
    assert_no_token(client.get("/echo/none"))


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNz", "Digest username=\"u\"", "Token abc.def.ghi", "Bearerxyz"],
)
def test_non_bearer_authorization_counts_as_no_token(client, authorization):
    assert_no_token(client.get("/echo/basic", headers={"Authorization": authorization}))


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_bearer_scheme_is_case_insensitive(client, mint, scheme):
    token = mint()
    echo = assert_forwarded(client.get("/echo/scheme", headers=bearer(token, scheme)))
    assert one_header(echo, "x-user-id") == payload_of(token)["sub"]
    assert header_values(echo, "authorization") == [f"{scheme} {token}"]


def test_token_from_the_configured_cookie(client, mint):
    token = mint()
    echo = assert_forwarded(client.get("/echo/cookie", headers={"Cookie": f"theme=dark; {COOKIE}={token}; lang=en"}))
    assert one_header(echo, "x-user-id") == payload_of(token)["sub"]
    assert one_header(echo, "x-user-email") == payload_of(token)["email"]


@pytest.mark.parametrize(
    "query,remaining",
    [
        ("a=1&{p}={t}&b=2&a=3", "a=1&b=2&a=3"),
        ("{p}={t}&x=1", "x=1"),
        ("x=1&y=%20z&{p}={t}", "x=1&y=%20z"),
        ("{p}={t}", ""),
    ],
    ids=["middle", "first", "last", "only"],
)
def test_token_from_the_configured_query_parameter_is_removed_before_forwarding(gh, mint, query, remaining):
    token = mint()
    target = "/echo/query?" + query.format(p=QUERY, t=token)
    echo = assert_forwarded(httpx.get(gh.url + target, timeout=10))
    assert echo["query_string"] == remaining, echo["query_string"]
    assert token not in json.dumps(echo)
    assert one_header(echo, "x-user-id") == payload_of(token)["sub"]


@pytest.mark.parametrize("ways", ["header+cookie", "header+query", "cookie+query"])
def test_token_sent_two_ways_is_400_invalid_request(gh, mint, ways):
    token = mint()
    headers: list[tuple[str, str]] = []
    target = "/echo/twice"
    if "header" in ways:
        headers.append(("Authorization", f"Bearer {token}"))
    if "cookie" in ways:
        headers.append(("Cookie", f"{COOKIE}={token}"))
    if "query" in ways:
        target += f"?{QUERY}={token}"
    assert_invalid_request(httpx.get(gh.url + target, headers=headers, timeout=10), token)


def test_two_different_tokens_two_ways_is_400(gh, mint):
    first, second = mint(), mint()
    response = httpx.get(f"{gh.url}/echo/twice?{QUERY}={second}", headers=bearer(first), timeout=10)
    assert_invalid_request(response, first)
    assert_invalid_request(response, second)


def test_two_authorization_headers_is_400_invalid_request(client, mint):
    token = mint()
    headers = [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    assert_invalid_request(client.get("/echo/two-auth", headers=headers), token)


# ---------------------------------------------------------------------------------------
# what FastAPI receives


def test_default_better_auth_payload_is_forwarded(client, mint):
    token = mint()
    echo = assert_forwarded(client.get("/echo/me", headers=bearer(token)))
    claims = payload_of(token)
    assert one_header(echo, "x-user-id") == claims["sub"]
    assert one_header(echo, "x-user-email") == claims["email"]
    forwarded = one_header(echo, "x-auth-claims")
    assert forwarded is not None, echo["headers"]
    assert decode_b64url_header(forwarded) == payload_bytes_of(token)
    assert json.loads(decode_b64url_header(forwarded)) == claims
    assert header_values(echo, "authorization") == [f"Bearer {token}"]


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_each_algorithm_is_accepted(client, mint, alg):
    token = mint(alg)
    echo = assert_forwarded(client.get(f"/echo/alg/{alg}", headers=bearer(token)))
    assert one_header(echo, "x-user-id") == payload_of(token)["sub"]
    assert decode_b64url_header(one_header(echo, "x-auth-claims")) == payload_bytes_of(token)


def test_forged_identity_headers_never_reach_fastapi_with_a_valid_token(client, keys, jwks):
    # the token has no email claim: a forged X-User-Email must not survive either
    payload = better_auth_payload(jwks.origin)
    del payload["email"]
    token = keys["EdDSA"].token(payload)
    assert "email" not in payload_of(token)
    forged = [
        ("X-User-Id", "admin"),
        ("x-user-email", "admin@example.com"),
        ("X-AUTH-CLAIMS", b64url(b'{"sub":"admin"}')),
        ("x-User-ID", "root"),
        ("Authorization", f"Bearer {token}"),
    ]
    echo = assert_forwarded(client.get("/echo/forged", headers=forged))
    assert header_values(echo, "x-user-id") == [payload_of(token)["sub"]]
    assert header_values(echo, "x-user-email") == []
    assert [decode_b64url_header(v) for v in header_values(echo, "x-auth-claims")] == [payload_bytes_of(token)]


# ---------------------------------------------------------------------------------------
# refusals: each with its exact status, challenge and reason


def check(client, token: str, reason, path: str = "/echo/refused") -> str:
    return assert_invalid_token(client.get(path, headers=bearer(token)), reason, token)


def test_alg_none_is_refused(client, jwks):
    payload = better_auth_payload(jwks.origin)
    # RFC 7519 unsecured JWS: empty signature (structurally odd too, so either reason will do)
    check(client, alg_none(payload), {"algorithm not allowed", "malformed"})
    # with a kid and a non-empty "signature": only the algorithm is wrong
    check(client, alg_none(payload, kid=random_id(), signature=b64url(b"\x00" * 64)), "algorithm not allowed")


def test_alg_none_with_a_published_kid_is_refused(client, keys, jwks):
    token = alg_none(better_auth_payload(jwks.origin), kid=keys["EdDSA"].kid, signature=b64url(b"\x01" * 64))
    check(client, token, "algorithm not allowed")


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256"])
def test_hs256_signed_with_the_public_key_is_refused(client, keys, jwks, alg):
    key = keys[alg]
    payload = better_auth_payload(jwks.origin)
    check(client, hs256_with_public_key(key, payload), "algorithm not allowed")
    check(client, hs256_with_public_key(key, payload, secret=key.public_raw()), "algorithm not allowed")
    check(client, hs256_with_public_key(key, payload, secret=json_bytes(key.jwk())), "algorithm not allowed")


def test_alg_header_not_matching_the_keys_alg_is_refused(client, keys, jwks):
    payload = better_auth_payload(jwks.origin)
    # header ES256, kid of the EdDSA key, validly ES256-signed (by the ES256 key)
    es = keys["ES256"]
    token = sign_compact({"alg": "ES256", "kid": keys["EdDSA"].kid}, payload, es.sign_bytes)
    check(client, token, "algorithm not allowed")
    # header EdDSA, kid of the ES256 key
    token = sign_compact({"alg": "EdDSA", "kid": es.kid}, payload, keys["EdDSA"].sign_bytes)
    check(client, token, "algorithm not allowed")
    # the same RSA key material, other padding: PS256 under the RS256 key's kid
    rs = keys["RS256"]
    token = sign_compact({"alg": "PS256", "kid": rs.kid}, payload, lambda data: rs.sign_bytes(data, alg="PS256"))
    check(client, token, "algorithm not allowed")


def test_kid_swap_is_a_bad_signature(client, keys, jwks):
    # signed by EdDSA key A, header names EdDSA key B (both published)
    token = keys["EdDSA"].token(better_auth_payload(jwks.origin), kid=keys["EdDSA-2"].kid)
    check(client, token, "bad signature")


def test_unknown_kid_is_refused(client, outsider, jwks):
    check(client, outsider.token(better_auth_payload(jwks.origin)), "unknown key")


def test_missing_kid_with_several_published_keys_is_refused(client, keys, jwks):
    token = keys["EdDSA"].token(better_auth_payload(jwks.origin), omit_kid=True)
    check(client, token, "unknown key")


def test_expired_beyond_the_clock_skew(client, mint):
    check(client, mint(now=time.time() - 900 - 120), "expired")


def test_expired_within_the_clock_skew_is_still_accepted(client, mint):
    token = mint(now=time.time() - 900 - 10)  # exp 10 s ago, skew 30 s
    assert assert_forwarded(client.get("/echo/skew", headers=bearer(token)))


def test_not_before_in_the_future(client, mint):
    check(client, mint(nbf=int(time.time()) + 120), "not yet valid")


def test_not_before_within_the_clock_skew_is_accepted(client, mint):
    assert_forwarded(client.get("/echo/nbf", headers=bearer(mint(nbf=int(time.time()) + 10))))


def test_issued_in_the_future(client, mint):
    check(client, mint(now=time.time() + 120), "not yet valid")


def test_wrong_issuer(client, mint):
    check(client, mint(iss="https://evil.example.com"), "issuer mismatch")


def test_wrong_audience(client, mint):
    check(client, mint(aud="https://evil.example.com"), "audience mismatch")


def test_audience_array_without_ours(client, mint):
    check(client, mint(aud=["https://a.example.com", "https://b.example.com"]), "audience mismatch")


def test_audience_array_containing_ours_is_accepted(client, mint, jwks):
    token = mint("ES256", aud=["https://api.example.com", jwks.origin])
    assert_forwarded(client.get("/echo/aud", headers=bearer(token)))


def test_missing_sub(client, mint):
    check(client, mint(sub=None), "malformed")


def test_missing_exp(client, mint):
    check(client, mint(exp=None), "malformed")


@pytest.mark.parametrize(
    "claims",
    [{"sub": ""}, {"sub": 123}, {"sub": {"id": "x"}}, {"exp": "9999999999"}, {"exp": None, "nbf": 0}],
    ids=["empty-sub", "numeric-sub", "object-sub", "string-exp", "no-exp-with-nbf"],
)
def test_unusable_registered_claims_are_malformed(client, mint, claims):
    check(client, mint(**claims), "malformed")


def test_duplicate_json_members_are_malformed(client, keys, jwks):
    key = keys["EdDSA"]
    body = json_bytes(better_auth_payload(jwks.origin))[:-1] + b',"sub":"someone-else"}'
    check(client, sign_compact({"alg": "EdDSA", "kid": key.kid}, body, key.sign_bytes), "malformed")
    header = b'{"alg":"EdDSA","kid":"' + key.kid.encode() + b'","alg":"none"}'
    check(client, sign_compact(header, better_auth_payload(jwks.origin), key.sign_bytes), "malformed")


def test_tampered_payload_is_a_bad_signature(client, mint):
    token = mint(email="real@example.com")
    check(client, tamper_payload(token, email="admin@example.com"), "bad signature")
    check(client, tamper_payload(token, sub="someone-else"), "bad signature")


def test_truncated_tokens(client, mint):
    token = mint()
    header, payload, signature = split(token)
    check(client, f"{header}.{payload}", "malformed")
    check(client, f"{header}.{payload}.", "malformed")
    check(client, token[: len(header) + 1 + len(payload) // 2], "malformed")
    # a signature 3 bytes short (still valid base64url)
    check(client, f"{header}.{payload}.{signature[:-4]}", {"bad signature", "malformed"})


def test_base64_padding_is_malformed(client, mint):
    check(client, with_padding(mint()), "malformed")


@pytest.mark.parametrize(
    "token",
    ["abc", "a.b.c", "....", "eyJhbGciOiJFZERTQSJ9.e30.c2ln.extra.parts"],
    ids=["word", "abc", "dots", "five-parts"],
)
def test_garbage_is_malformed(client, token):
    check(client, token, "malformed")


def test_signed_non_json_payload_is_malformed(client, keys):
    check(client, keys["EdDSA"].token(b"not json"), "malformed")
    check(client, keys["EdDSA"].token(b'["an","array"]'), "malformed")


def test_oversized_token_is_malformed(client, mint):
    token = mint(blob="x" * (20 * 1024))
    assert len(token) > 16 * 1024
    check(client, token, "malformed")


def test_large_token_under_the_limit_is_accepted(client, mint):
    token = mint(blob="x" * (10 * 1024))
    assert 13 * 1024 < len(token) < 16 * 1024
    assert_forwarded(client.get("/echo/large", headers=bearer(token)))


def test_crit_header_is_refused(client, keys, jwks):
    key = keys["EdDSA"]
    token = key.token(better_auth_payload(jwks.origin), extra_header={"crit": ["exp"], "exp": int(time.time()) + 60})
    reason = check(client, token, REASONS)
    assert reason != "expired"


def test_jku_header_is_ignored_and_never_fetched(client, keys, outsider, jwks):
    evil = jwks.url("/evil-jwks")
    # signed by a published key: verified against the configured JWKS, jku ignored
    good = keys["EdDSA"].token(better_auth_payload(jwks.origin), extra_header={"jku": evil})
    assert_forwarded(client.get("/echo/jku", headers=bearer(good)))
    # signed by the key that /evil-jwks publishes: unknown to the configured JWKS
    bad = outsider.token(better_auth_payload(jwks.origin), extra_header={"jku": evil})
    check(client, bad, "unknown key")
    # same with x5u and an embedded jwk
    embedded = outsider.token(better_auth_payload(jwks.origin), extra_header={"jwk": outsider.jwk(), "x5u": evil})
    check(client, embedded, "unknown key")
    time.sleep(0.5)
    assert jwks.recorded("/evil-jwks") == [], "gatehouse followed a token's jku/x5u"


# ---------------------------------------------------------------------------------------
# other instances: algorithm allow-list; claim headers; no token forwarding


@pytest.fixture(scope="module")
def eddsa_only(gatehouse_factory, upstream, jwks):
    return start_auth_gatehouse(gatehouse_factory, upstream.url, jwks, GATEHOUSE_ALGORITHMS="EdDSA")


@pytest.mark.parametrize("alg", ["ES256", "ES512", "RS256", "PS256"])
def test_algorithm_not_in_the_allow_list_is_refused(eddsa_only, mint, alg):
    token = mint(alg)
    assert_invalid_token(httpx.get(f"{eddsa_only.url}/echo/a", headers=bearer(token), timeout=10), "algorithm not allowed", token)


def test_algorithm_in_the_allow_list_is_accepted(eddsa_only, mint):
    assert_forwarded(httpx.get(f"{eddsa_only.url}/echo/a", headers=bearer(mint("EdDSA")), timeout=10))


CLAIM_HEADERS = ",".join(
    [
        "X-User-Id=sub",
        "X-User-Email=email",
        "X-Org=org.id",
        "X-Team=org.team.name",
        "X-Org-Obj=org",
        "X-Roles=roles",
        "X-Image=image",
        "X-Evil=evil",
        "X-Tab=tab",
        "X-Missing=nope.nothing",
    ]
)


@pytest.fixture(scope="module")
def claims_gh(gatehouse_factory, upstream, jwks):
    """Custom claim headers, no token forwarding, no cookie / query sources."""
    return start_auth_gatehouse(
        gatehouse_factory, upstream.url, jwks, GATEHOUSE_CLAIM_HEADERS=CLAIM_HEADERS, GATEHOUSE_FORWARD_TOKEN="false"
    )


def test_nested_claims_become_headers_and_unsafe_values_do_not(claims_gh, mint):
    token = mint(
        org={"id": "org_123", "team": {"name": "core"}},
        roles=["admin", "dev"],
        evil="line\r\nX-Injected: 1",
        tab="a\tb",
    )
    echo = assert_forwarded(httpx.get(f"{claims_gh.url}/echo/claims", headers=bearer(token), timeout=10))
    claims = payload_of(token)
    assert one_header(echo, "x-user-id") == claims["sub"]
    assert one_header(echo, "x-user-email") == claims["email"]
    assert one_header(echo, "x-org") == "org_123"
    assert one_header(echo, "x-team") == "core"
    for name in ("x-org-obj", "x-roles", "x-image", "x-evil", "x-tab", "x-missing", "x-injected"):
        assert header_values(echo, name) == [], f"{name} was forwarded: {echo['headers']}"
    assert decode_b64url_header(one_header(echo, "x-auth-claims")) == payload_bytes_of(token)


def test_forward_token_false_removes_authorization(claims_gh, mint):
    token = mint()
    echo = assert_forwarded(httpx.get(f"{claims_gh.url}/echo/nofwd", headers=bearer(token), timeout=10))
    assert header_values(echo, "authorization") == []
    assert token not in json.dumps(echo)
    assert one_header(echo, "x-user-id") == payload_of(token)["sub"]


def test_identity_names_configured_with_underscores_are_not_forged_with_dashes(gatehouse_factory, upstream, jwks, mint):
    """WSGI reads X-Tenant and X_Tenant as one variable: with X_Tenant configured, a client's
    X-Tenant is stripped as well."""
    gh = start_auth_gatehouse(gatehouse_factory, upstream.url, jwks, GATEHOUSE_CLAIM_HEADERS="X-User-Id=sub,X_Tenant=org")
    token = mint()  # no org claim: no X_Tenant from gatehouse either
    forged = {"X-Tenant": "evil", "x_tenant": "evil", "Authorization": f"Bearer {token}"}
    echo = assert_forwarded(httpx.get(f"{gh.url}/echo/tenant", headers=forged, timeout=10))
    assert "evil" not in json.dumps(echo["headers"]), echo["headers"]


def test_forged_configured_claim_header_is_removed(claims_gh, mint):
    token = mint()  # no org claim
    forged = {"X-Org": "org_admin", "x-team": "root", "Authorization": f"Bearer {token}"}
    echo = assert_forwarded(httpx.get(f"{claims_gh.url}/echo/forged-org", headers=forged, timeout=10))
    assert header_values(echo, "x-org") == [] and header_values(echo, "x-team") == []


def test_cookie_and_query_are_not_token_sources_unless_configured(claims_gh, mint):
    token = mint()
    assert_no_token(httpx.get(f"{claims_gh.url}/echo/c", headers={"Cookie": f"{COOKIE}={token}"}, timeout=10))
    assert_no_token(httpx.get(f"{claims_gh.url}/echo/q?{QUERY}={token}", timeout=10))
    for name in ("token", "access_token", "better-auth.session_token", "jwt"):
        assert_no_token(httpx.get(f"{claims_gh.url}/echo/c", headers={"Cookie": f"{name}={token}"}, timeout=10))
