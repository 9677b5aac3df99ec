"""Better Auth sessions (issue #14) end to end: the real gatehouse in front of the FastAPI
upstream and of a Better Auth-shaped get-session server (get_session_server.py), which also
serves the JWKS. Every test checks what a user of the pair would notice: which cookie and
bearer values sign a user in, what FastAPI learns, what is refused (and with which status,
challenge and body), what Better Auth is asked (and how often), and that the session token
never leaks.

Instances (one per configuration, module scope):
    dev          BETTER_AUTH_URL=http://<server>  sessions=both, rules, CORS origin, JWT cookie, 2 workers
    prod         BETTER_AUTH_URL=https://...      sessions=cookie, __Secure- cookie name
    prefixed     GATEHOUSE_SESSION_COOKIE_PREFIX=myapp
    named        GATEHOUSE_SESSION_COOKIE=sid (https), FORWARD_TOKEN=false, TRUSTED_ORIGINS patterns
    bearer_only  sessions=bearer
    outage       SESSION_TIMEOUT=500ms, its own server switched between outages
    overload     SESSION_MAX_LOOKUPS=1, a slow server
    cached       SESSION_CACHE_TTL=2s, 2 workers
"""

from __future__ import annotations

import base64
import email.utils
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import tokens
from auth_support import (
    NO_TOKEN_CHALLENGE,
    assert_forwarded,
    assert_invalid_token,
    assert_no_token,
    decode_b64url_header,
    fire,
    invalid_token_challenge,
    one_header,
    raw_get,
)
from conftest import header_values, wait_until
from get_session_server import (
    DEV_COOKIE,
    GET_SESSION_PATH,
    SECURE_COOKIE,
    GetSessionServer,
    Session,
    encode_uri_component,
    generate_id,
    sign,
)
from tokens import better_auth_payload, payload_of
from upstream_app import FRONTEND_ORIGIN

PROD_ORIGIN = "https://auth.example.test"
EVIL_ORIGIN = "https://evil.example.test"
UNAVAILABLE = {"detail": "Authentication service unavailable"}
CROSS_SITE = {"detail": "Cross-site request refused"}
CACHE_TTL = 2.0
# What a lookup request may carry: the one credential, and gatehouse's own fields.
LOOKUP_FIELDS = {"host", "user-agent", "accept", "accept-encoding", "connection"}

# Every gatehouse and get-session server this module started, for the final leak check.
INSTANCES: list = []
SERVERS: list[GetSessionServer] = []
# Made-up cookie values the module sent (the flood): their tokens must not be logged either.
MADE_UP: list[str] = []


# ---------------------------------------------------------------------------------------
# helpers


def session_cookie(session: Session, name: str | None = None, others: bool = False) -> dict[str, str]:
    value = session.cookie(name)
    return {"Cookie": f"theme=dark; {value}; lang=en" if others else value}


def session_bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def expected_claims(session: Session) -> dict:
    """The JWT plugin's shape: every member of `user`, plus sub, sid and exp (epoch seconds)."""
    return {**session.user, "sub": session.user["id"], "sid": session.session["id"], "exp": int(session.expires_at)}


def identity(echo: dict) -> dict:
    claims_header = one_header(echo, "x-auth-claims")
    return {
        "id": one_header(echo, "x-user-id"),
        "email": one_header(echo, "x-user-email"),
        "method": one_header(echo, "x-auth-method"),
        "claims": json.loads(decode_b64url_header(claims_header)) if claims_header else None,
    }


def assert_session_identity(echo: dict, session: Session) -> None:
    seen = identity(echo)
    assert seen["method"] == "session", echo["headers"]
    assert seen["id"] == session.user_id, echo["headers"]
    assert seen["email"] == session.user["email"], echo["headers"]
    assert seen["claims"] == expected_claims(session), seen["claims"]
    assert_no_token_in_identity(echo, session)


def assert_no_token_in_identity(echo: dict, session: Session) -> None:
    """session.token (and its signature) in no identity header and no claim."""
    for name, value in echo["headers"]:
        if name.lower().startswith(("x-user-", "x-auth-")):
            text = value
            if name.lower() == "x-auth-claims":
                text += decode_b64url_header(value).decode()
            for secret in (session.token, session.signature, session.value):
                assert secret not in text, f"{name} carries the session credential"
    claims = identity(echo)["claims"] or {}
    assert "token" not in claims and session.token not in json.dumps(claims), claims


def assert_session_refused(response: httpx.Response, reason: str | set[str], session: Session | None = None) -> str:
    """401 invalid_token with the RFC 6750 challenge and the reason, as for tokens."""
    allowed = {reason} if isinstance(reason, str) else set(reason)
    assert response.status_code == 401, (response.status_code, response.headers, response.text)
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"detail"}, body
    given = str(body["detail"]).removeprefix("Invalid token: ")
    assert given in allowed and body["detail"] == f"Invalid token: {given}", (body, sorted(allowed))
    assert response.headers.get_list("www-authenticate") == [invalid_token_challenge(given)], response.headers
    if session is not None:
        assert_no_session_echo(response, session)
    return given


def assert_no_session_echo(response: httpx.Response, session: Session) -> None:
    text = response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    for secret in (session.token, session.signature, session.value):
        assert secret not in text, f"gatehouse's answer echoes the session credential: {text[:400]}"


def assert_retry_after(response: httpx.Response) -> None:
    retry_after = response.headers.get("retry-after")
    assert retry_after is not None, f"{response.status_code} without Retry-After: {response.headers}"
    assert retry_after.strip().isdigit() or email.utils.parsedate(retry_after), retry_after


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.headers, response.text)
    assert response.json() == UNAVAILABLE
    assert_retry_after(response)


def assert_cross_site_refused(response: httpx.Response) -> None:
    assert response.status_code == 403, (response.status_code, response.headers, response.text)
    assert response.json() == CROSS_SITE


def lookup_fields(lookup) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for name, value in lookup.raw_headers:
        fields.setdefault(name.lower(), []).append(value)
    return fields


def scrape(gh) -> dict[tuple[str, tuple], float]:
    response = httpx.get(f"{gh.admin_url}/metrics", timeout=5)
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def metric(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def access_entry(gh, request_id: str, timeout: float = 5) -> dict:
    """The access-log line (JSON, stdout) of the request with this X-Request-Id."""

    def find():
        for line in gh.stdout().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and request_id in json.dumps(entry):
                return entry
        return None

    return wait_until(find, timeout=timeout, what=f"the access-log line of {request_id}")


def flat(entry: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in entry.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def shaped(token: str | None = None, signature: str | None = None) -> str:
    """A cookie value of the right shape (URL-encoded `<32 alnum>.<44-char base64>`)."""
    token = token or generate_id()
    signature = signature or sign(b"not the secret", token)
    return encode_uri_component(f"{token}.{signature}")


# ---------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def make_server(key):
    started: list[GetSessionServer] = []

    def make(**attrs) -> GetSessionServer:
        server = GetSessionServer(keys=[key.jwk()], **attrs).start()
        started.append(server)
        SERVERS.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def start(gatehouse_factory, upstream):
    """start(server, https=False, **env): gatehouse with sessions=both in front of `server`.
    https: BETTER_AUTH_URL is a production https origin, and the session, JWKS, issuer and
    audience settings point at the local server explicitly."""

    def run(server: GetSessionServer, https: bool = False, **env: str) -> object:
        settings: dict[str, str] = {"GATEHOUSE_SESSIONS": "both", "GATEHOUSE_SHUTDOWN_DELAY": "100ms"}
        if https:
            settings.update(
                BETTER_AUTH_URL=PROD_ORIGIN,
                GATEHOUSE_SESSION_URL=server.url(GET_SESSION_PATH),
                GATEHOUSE_JWKS_URL=server.jwks_url,
                GATEHOUSE_ISSUER=server.origin,
                GATEHOUSE_AUDIENCE=server.origin,
            )
        else:
            settings["BETTER_AUTH_URL"] = server.origin
        settings.update(env)
        gh = gatehouse_factory(upstream.url, **settings)
        INSTANCES.append(gh)
        return gh

    return run


@pytest.fixture(scope="module")
def srv(make_server):
    return make_server()


@pytest.fixture(scope="module")
def dev(start, srv):
    return start(
        srv,
        GATEHOUSE_TOKEN_COOKIE="gh_token",
        GATEHOUSE_CORS_ALLOW_ORIGINS=FRONTEND_ORIGIN,
        GATEHOUSE_RULES="/echo/admin/** role=admin",
        GATEHOUSE_LOG_LEVEL="debug",
        GATEHOUSE_WORKERS="2",
    )


@pytest.fixture(scope="module")
def client(dev):
    with httpx.Client(base_url=dev.url, timeout=15) as c:
        yield c


@pytest.fixture(scope="module")
def secure_srv(make_server):
    return make_server(cookie_name=SECURE_COOKIE)


@pytest.fixture(scope="module")
def prod(start, secure_srv):
    return start(secure_srv, https=True, GATEHOUSE_SESSIONS="cookie")


@pytest.fixture(scope="module")
def prefixed_srv(make_server):
    return make_server(cookie_name="myapp.session_token")


@pytest.fixture(scope="module")
def prefixed(start, prefixed_srv):
    return start(prefixed_srv, GATEHOUSE_SESSIONS="cookie", GATEHOUSE_SESSION_COOKIE_PREFIX="myapp")


@pytest.fixture(scope="module")
def named_srv(make_server):
    return make_server(cookie_name="sid")


@pytest.fixture(scope="module")
def named(start, named_srv):
    return start(
        named_srv, https=True, GATEHOUSE_SESSION_COOKIE="sid", GATEHOUSE_FORWARD_TOKEN="false",
        GATEHOUSE_TRUSTED_ORIGINS="https://*.example.test,http://localhost:3000",
    )


@pytest.fixture(scope="module")
def bearer_only(start, srv):
    return start(srv, GATEHOUSE_SESSIONS="bearer")


# ---------------------------------------------------------------------------------------
# the cookie's name


def test_dev_cookie_name_signs_the_user_in(dev, srv):
    session = srv.create_session()
    echo = assert_forwarded(httpx.get(f"{dev.url}/echo/dev", headers=session_cookie(session, others=True), timeout=10))
    assert_session_identity(echo, session)
    lookups = srv.lookups_of(session)
    assert len(lookups) == 1, lookups
    assert lookup_fields(lookups[0]).get("cookie") == [f"{DEV_COOKIE}={session.value}"]
    # the production name is not this deployment's cookie: not consulted at all
    other = srv.create_session()
    for headers in (session_cookie(other, SECURE_COOKIE), {"Cookie": "theme=dark"}, {}):
        refused = httpx.get(f"{dev.url}/echo/dev", headers=headers, timeout=10)
        assert_no_token(refused)
        assert refused.headers.get_list("www-authenticate") == [NO_TOKEN_CHALLENGE]
    assert srv.lookup_count(other) == 0


def test_production_cookie_name_when_better_auth_url_is_https(prod, secure_srv):
    session = secure_srv.create_session()
    echo = assert_forwarded(httpx.get(f"{prod.url}/echo/prod", headers=session_cookie(session, others=True), timeout=10))
    assert_session_identity(echo, session)
    lookups = secure_srv.lookups_of(session)
    assert len(lookups) == 1 and lookup_fields(lookups[0]).get("cookie") == [f"{SECURE_COOKIE}={session.value}"]
    # the development name is not consulted in production
    other = secure_srv.create_session()
    assert_no_token(httpx.get(f"{prod.url}/echo/prod", headers=session_cookie(other, DEV_COOKIE), timeout=10))
    assert secure_srv.lookup_count(other) == 0


def test_cookie_prefix_follows_better_auths_cookie_prefix(prefixed, prefixed_srv):
    session = prefixed_srv.create_session()
    echo = assert_forwarded(httpx.get(f"{prefixed.url}/echo/p", headers=session_cookie(session), timeout=10))
    assert_session_identity(echo, session)
    assert lookup_fields(prefixed_srv.lookups_of(session)[0]).get("cookie") == [f"myapp.session_token={session.value}"]
    for name in (DEV_COOKIE, SECURE_COOKIE):
        assert_no_token(httpx.get(f"{prefixed.url}/echo/p", headers=session_cookie(session, name), timeout=10))
    assert prefixed_srv.lookup_count(session) == 1


def test_full_cookie_name_overrides_the_rule(named, named_srv):
    session = named_srv.create_session()
    echo = assert_forwarded(httpx.get(f"{named.url}/echo/n", headers=session_cookie(session), timeout=10))
    assert_session_identity(echo, session)
    assert lookup_fields(named_srv.lookups_of(session)[0]).get("cookie") == [f"sid={session.value}"]
    for name in (DEV_COOKIE, SECURE_COOKIE):
        assert_no_token(httpx.get(f"{named.url}/echo/n", headers=session_cookie(session, name), timeout=10))
    assert named_srv.lookup_count(session) == 1


# ---------------------------------------------------------------------------------------
# bearer sessions (Better Auth's bearer plugin)


@pytest.mark.parametrize("form", ["signed", "raw"])
def test_bearer_session(client, srv, form):
    session = srv.create_session()
    value = session.value if form == "signed" else session.token
    echo = assert_forwarded(client.get(f"/echo/bearer-{form}", headers={**session_bearer(value), "Cookie": "theme=dark"}))
    assert_session_identity(echo, session)
    lookups = srv.lookups_of(session)
    assert len(lookups) == 1, lookups
    fields = lookup_fields(lookups[0])
    assert fields.get("authorization") == [f"Bearer {value}"], fields
    assert "cookie" not in fields, fields


def test_bearer_session_with_sessions_bearer_only(bearer_only, srv):
    session = srv.create_session()
    echo = assert_forwarded(httpx.get(f"{bearer_only.url}/echo/b", headers=session_bearer(session.value), timeout=10))
    assert_session_identity(echo, session)
    # the cookie is not a credential in this mode
    cookie_only = srv.create_session()
    assert_no_token(httpx.get(f"{bearer_only.url}/echo/b", headers=session_cookie(cookie_only), timeout=10))
    assert srv.lookup_count(cookie_only) == 0


def test_bearer_session_is_refused_when_sessions_are_cookie_only(prod, secure_srv):
    session = secure_srv.create_session()
    for value in (session.value, session.token):
        assert_invalid_token(httpx.get(f"{prod.url}/echo/b", headers=session_bearer(value), timeout=10), "malformed")
    assert secure_srv.lookup_count(session) == 0
    # the same session as a cookie is good
    echo = assert_forwarded(httpx.get(f"{prod.url}/echo/b", headers=session_cookie(session), timeout=10))
    assert_session_identity(echo, session)


def test_bearer_session_better_auth_does_not_know_is_refused(client, srv):
    for value in (srv.forged_value(), srv.unknown_value(), generate_id()):
        assert_session_refused(client.get("/echo/b", headers=session_bearer(value)), "session not found")


# ---------------------------------------------------------------------------------------
# which credential counts


def test_jwt_bearer_next_to_a_session_cookie_decides_alone(client, srv, key):
    session = srv.create_session()
    jwt = key.token(better_auth_payload(srv.origin))
    echo = assert_forwarded(client.get("/echo/both", headers={**session_bearer(jwt), **session_cookie(session)}))
    assert one_header(echo, "x-auth-method") == "jwt"
    assert one_header(echo, "x-user-id") == payload_of(jwt)["sub"]
    # a bad JWT is not rescued by the cookie
    expired = key.token(better_auth_payload(srv.origin, now=time.time() - 7200))
    assert_invalid_token(client.get("/echo/both", headers={**session_bearer(expired), **session_cookie(session)}),
                         "expired", expired)
    # nor is a JWT in the token cookie
    echo = assert_forwarded(client.get("/echo/both", headers={"Cookie": f"gh_token={jwt}; {session.cookie()}"}))
    assert one_header(echo, "x-auth-method") == "jwt"
    assert srv.lookup_count(session) == 0, "the session cookie was looked up although a JWT was sent"


# ---------------------------------------------------------------------------------------
# what FastAPI receives


def test_identity_reaches_fastapi_in_the_jwt_plugins_shape(client, srv):
    session = srv.create_session(name="Ada Byron", role="editor", emailVerified=False)
    echo = assert_forwarded(client.get("/echo/me", headers=session_cookie(session)))
    assert_session_identity(echo, session)
    claims = identity(echo)["claims"]
    assert isinstance(claims["exp"], int) and claims["sid"] == session.id and claims["role"] == "editor"
    # the client's own cookie still reaches FastAPI (GATEHOUSE_FORWARD_TOKEN defaults to true)
    assert header_values(echo, "cookie") == [session.cookie()]


def test_route_rules_apply_to_sessions(client, srv):
    member = srv.create_session(role="user")
    admin = srv.create_session(role="admin")
    forbidden = client.get("/echo/admin/users", headers=session_cookie(member))
    assert forbidden.status_code == 403, (forbidden.status_code, forbidden.text)
    assert forbidden.json() == {"detail": "Forbidden"}
    assert_session_identity(assert_forwarded(client.get("/echo/admin/users", headers=session_cookie(admin))), admin)


def test_client_sent_identity_headers_are_stripped(client, srv, key):
    session = srv.create_session()
    forged = {
        "X-Auth-Method": "jwt",
        "X-User-Id": "admin",
        "X-User-Email": "admin@example.com",
        "X-Auth-Claims": tokens.b64url(b'{"sub":"admin","role":"admin"}'),
    }
    echo = assert_forwarded(client.get("/echo/forged", headers={**forged, **session_cookie(session)}))
    assert header_values(echo, "x-auth-method") == ["session"]
    assert_session_identity(echo, session)
    jwt = key.token(better_auth_payload(srv.origin))
    echo = assert_forwarded(client.get("/echo/forged", headers={**forged, "X-Auth-Method": "session", **session_bearer(jwt)}))
    assert header_values(echo, "x-auth-method") == ["jwt"]


def test_forward_token_false_keeps_the_session_credential_from_fastapi(named, named_srv):
    session = named_srv.create_session()
    echo = assert_forwarded(httpx.get(f"{named.url}/echo/nf", headers=session_cookie(session, others=True), timeout=10))
    assert_session_identity(echo, session)
    cookies = "; ".join(header_values(echo, "cookie"))
    assert "theme=dark" in cookies and "lang=en" in cookies, echo["headers"]
    assert "sid=" not in cookies, echo["headers"]
    for secret in (session.token, session.signature, session.value):
        assert secret not in json.dumps(echo), "the session credential reached FastAPI"
    bearer_session = named_srv.create_session()
    echo = assert_forwarded(httpx.get(f"{named.url}/echo/nf", headers=session_bearer(bearer_session.value), timeout=10))
    assert_session_identity(echo, bearer_session)
    assert header_values(echo, "authorization") == []
    assert bearer_session.token not in json.dumps(echo)


def test_forward_token_false_also_keeps_better_auths_cookie_cache_from_fastapi(start, srv):
    """Better Auth's cookie cache (`<prefix>.session_data`, chunked as `.session_data.0`, …)
    holds the session object, `session.token` included: it stays behind with the session cookie."""
    gh = start(srv, GATEHOUSE_FORWARD_TOKEN="false")
    session = srv.create_session()
    cookie = f"theme=dark; better-auth.session_data=eyJzZXNzaW9uIjp7fX0; {session_cookie(session)['Cookie']}; better-auth.session_data.0=abc; better-auth.session_data.x=keep"
    echo = assert_forwarded(httpx.get(f"{gh.url}/echo/cc", headers={"Cookie": cookie}, timeout=10))
    assert_session_identity(echo, session)
    cookies = "; ".join(header_values(echo, "cookie"))
    assert "theme=dark" in cookies and "better-auth.session_data.x=keep" in cookies, cookies
    assert "session_data=" not in cookies.replace("session_data.x=keep", "") and "session_data.0" not in cookies, cookies
    assert "session_token" not in cookies, cookies


# ---------------------------------------------------------------------------------------
# shape check: refused at once, Better Auth never asked


BAD_SHAPES = {
    "token of 31": lambda: shaped(generate_id(31)),
    "token of 33": lambda: shaped(generate_id(33)),
    "dash in token": lambda: shaped(generate_id(16) + "-" + generate_id(15)),
    "space in token": lambda: encode_uri_component(generate_id(16) + " " + generate_id(15) + "." + sign(b"x", "y")),
    "signature of 43": lambda: shaped(signature=sign(b"x", "y")[:-2] + "="),
    "signature without =": lambda: shaped(signature=sign(b"x", "y")[:-1] + "A"),
    "base64url signature": lambda: shaped(signature="-_" + sign(b"x", "y")[2:]),
    "no signature": lambda: generate_id(),
    "two dots": lambda: shaped() + ".x",
    "bad percent": lambda: generate_id() + "." + "%ZZ" + sign(b"x", "y")[3:],
    "over-long": lambda: generate_id(32) + "." + "A" * 5000 + "=",
}


@pytest.mark.parametrize("shape", list(BAD_SHAPES))
def test_a_cookie_that_cannot_be_a_session_is_refused_without_a_lookup(client, srv, shape):
    value = BAD_SHAPES[shape]()
    before = srv.lookup_count()
    response = client.get("/echo/shape", headers={"Cookie": f"{DEV_COOKIE}={value}"})
    assert_invalid_token(response, "malformed")
    assert value not in response.text
    assert srv.lookup_count() == before, f"{shape}: Better Auth was asked"


@pytest.mark.parametrize("value", [generate_id(31), generate_id(33), generate_id(20) + "*" + generate_id(11),
                                   "A" * 6000], ids=["31", "33", "star", "over-long"])
def test_a_bearer_that_cannot_be_a_session_is_refused_without_a_lookup(client, srv, value):
    before = srv.lookup_count()
    assert_invalid_token(client.get("/echo/shape", headers=session_bearer(value)), "malformed")
    assert srv.lookup_count() == before
    # while a raw token of the right shape is a bearer session
    session = srv.create_session()
    assert_session_identity(assert_forwarded(client.get("/echo/shape", headers=session_bearer(session.token))), session)


# ---------------------------------------------------------------------------------------
# Better Auth's answers


@pytest.mark.parametrize("null_status", [200, 401])
@pytest.mark.parametrize("kind", ["unknown", "forged", "revoked"])
def test_null_from_get_session_is_401_session_not_found(client, srv, null_status, kind):
    srv.null_status = null_status
    try:
        if kind == "revoked":
            session = srv.create_session()
            srv.revoke(session)
            value = session.value
        else:
            value = srv.unknown_value() if kind == "unknown" else srv.forged_value()
        response = client.get("/echo/null", headers={"Cookie": f"{DEV_COOKIE}={value}"})
        assert_session_refused(response, "session not found")
        assert srv.lookup_count(value) == 1
        assert value not in response.text
    finally:
        srv.null_status = 200


def test_expired_session_is_401_session_expired(client, srv):
    session = srv.create_session(expires_in=-5)
    assert_session_refused(client.get("/echo/expired", headers=session_cookie(session)), "session expired", session)
    assert_session_refused(client.get("/echo/expired", headers=session_bearer(session.value)), "session expired", session)


def test_a_cached_session_is_never_used_past_its_expiry(client, srv):
    session = srv.create_session(expires_in=2)  # expiresAt on a whole second, 1 to 2 s away
    assert_forwarded(client.get("/echo/soon", headers=session_cookie(session)))
    assert_forwarded(client.get("/echo/soon", headers=session_cookie(session)))
    time.sleep(max(0.0, session.expires_at - time.time()) + 0.3)
    assert_session_refused(client.get("/echo/soon", headers=session_cookie(session)),
                           {"session expired", "session not found"}, session)


def test_set_cookie_from_get_session_never_reaches_the_client(client, srv):
    for headers_of in (session_cookie, lambda s: session_bearer(s.value)):
        session = srv.create_session()
        response = client.get("/echo/refresh", headers=headers_of(session))
        assert_forwarded(response)
        lookup = srv.lookups_of(session)[0]
        assert lookup.outcome == "session" and lookup.status == 200  # Better Auth sent its Set-Cookie
        assert response.headers.get_list("set-cookie") == [], response.headers
        assert "set-auth-token" not in response.headers
        # (the body is FastAPI's echo, which holds the client's own credential; the headers are gatehouse's)
        assert not [k for k, v in response.headers.items() if session.token in v], response.headers
        # FastAPI's own cookies come through unchanged
        cookies = client.get("/cookies", headers=headers_of(session))
        assert cookies.status_code == 200 and cookies.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]


def test_lookup_carries_only_the_one_credential(client, srv):
    marker = "mark" + generate_id(12)
    client_fields = {
        "User-Agent": f"client-ua-{marker}",
        "X-Forwarded-For": "203.0.113.9",
        "X-Forwarded-Host": f"{marker}.example.test",
        "X-Forwarded-Proto": "https",
        "X-Real-IP": "203.0.113.9",
        "Forwarded": f"for=203.0.113.9;host={marker}.example.test",
        "X-Request-Id": f"rid-{marker}",
        "Accept-Language": f"fr-{marker[:6]}",
        "Referer": f"https://{marker}.example.test/page",
        "X-Custom": marker,
    }
    cookie_session = srv.create_session()
    assert_forwarded(client.get("/echo/only", headers={
        **client_fields, "Cookie": f"theme={marker}; {cookie_session.cookie()}; other={marker}"}))
    bearer_session = srv.create_session()
    assert_forwarded(client.get("/echo/only", headers={
        **client_fields, **session_bearer(bearer_session.value), "Cookie": f"theme={marker}"}))

    for session, credential, expected in (
        (cookie_session, "cookie", f"{DEV_COOKIE}={cookie_session.value}"),
        (bearer_session, "authorization", f"Bearer {bearer_session.value}"),
    ):
        lookups = srv.lookups_of(session)
        assert len(lookups) == 1
        lookup = lookups[0]
        assert lookup.request.method == "GET" and lookup.request.path == GET_SESSION_PATH, lookup.request.path
        fields = lookup_fields(lookup)
        assert fields.get(credential) == [expected], fields
        assert set(fields) <= LOOKUP_FIELDS | {credential}, f"unexpected fields in the lookup: {sorted(fields)}"
        assert fields["host"] == [f"127.0.0.1:{srv.port}"], fields["host"]
        leaked = [(k, v) for k, v in lookup.raw_headers if marker in v or "203.0.113.9" in v]
        assert not leaked, f"client header values reached Better Auth: {leaked}"


# ---------------------------------------------------------------------------------------
# CSRF: cookie-authenticated writes must come from a trusted origin


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_cookie_write_without_origin_or_referer_is_refused(client, srv, method):
    session = srv.create_session()
    response = client.request(method, "/echo/write", headers=session_cookie(session), content=b'{"x":1}')
    assert_cross_site_refused(response)
    assert srv.lookup_count(session) == 0, "refused before Better Auth is asked"


@pytest.mark.parametrize("origin", [EVIL_ORIGIN, "null", "http://app.example.test", f"{FRONTEND_ORIGIN}.evil.test",
                                    "https://app.example.test:8443", "http://127.0.0.1:1"])
def test_cookie_write_from_a_foreign_origin_is_refused(client, srv, origin):
    session = srv.create_session()
    response = client.post("/echo/write", headers={**session_cookie(session), "Origin": origin}, content=b"x")
    assert_cross_site_refused(response)


@pytest.mark.parametrize("which", ["better_auth_url", "cors_allow_origins"])
def test_cookie_write_from_a_trusted_origin_passes(client, srv, which):
    origin = srv.origin if which == "better_auth_url" else FRONTEND_ORIGIN
    session = srv.create_session()
    response = client.post("/echo/write", headers={**session_cookie(session), "Origin": origin}, content=b'{"x":1}')
    echo = assert_forwarded(response)
    assert echo["method"] == "POST" and echo["body_len"] == 7
    assert_session_identity(echo, session)


def test_referer_stands_in_for_a_missing_origin(client, srv):
    session = srv.create_session()
    ok = client.delete("/echo/write", headers={**session_cookie(session), "Referer": f"{FRONTEND_ORIGIN}/settings?tab=1"})
    assert_session_identity(assert_forwarded(ok), session)
    assert_cross_site_refused(client.delete(
        "/echo/write", headers={**session_cookie(session), "Referer": f"{EVIL_ORIGIN}/{FRONTEND_ORIGIN}"}))
    # Origin, when present, decides: a trusted Referer does not rescue a foreign Origin
    assert_cross_site_refused(client.delete("/echo/write", headers={
        **session_cookie(session), "Origin": EVIL_ORIGIN, "Referer": f"{FRONTEND_ORIGIN}/settings"}))


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_safe_methods_need_no_origin(dev, srv, method):
    session = srv.create_session()
    # its own connection: a HEAD answer must not leave bytes behind for the next request
    response = httpx.request(method, f"{dev.url}/echo/read", headers=session_cookie(session), timeout=10)
    assert response.status_code == 200, (response.status_code, response.text)
    assert srv.lookup_count(session) == 1


def test_bearer_writes_need_no_origin(client, srv, key):
    session = srv.create_session()
    echo = assert_forwarded(client.post("/echo/write", headers=session_bearer(session.value), content=b"x"))
    assert_session_identity(echo, session)
    raw = srv.create_session()
    assert_forwarded(client.put("/echo/write", headers=session_bearer(raw.token), content=b"x"))
    jwt = key.token(better_auth_payload(srv.origin))
    assert one_header(assert_forwarded(client.delete("/echo/write", headers=session_bearer(jwt))), "x-auth-method") == "jwt"


def test_production_trusts_better_auth_urls_origin(prod, secure_srv):
    session = secure_srv.create_session()
    ok = httpx.post(f"{prod.url}/echo/w", headers={**session_cookie(session), "Origin": PROD_ORIGIN}, content=b"x", timeout=10)
    assert_session_identity(assert_forwarded(ok), session)
    for origin in ("http://auth.example.test", EVIL_ORIGIN):
        refused = httpx.post(f"{prod.url}/echo/w", headers={**session_cookie(session), "Origin": origin}, content=b"x", timeout=10)
        assert_cross_site_refused(refused)


@pytest.mark.parametrize("origin,allowed", [
    ("https://app.example.test", True),
    ("https://auth.example.test", True),
    ("http://localhost:3000", True),
    ("http://app.example.test", False),
    ("https://example.test.evil.test", False),
    ("http://localhost:3001", False),
    (EVIL_ORIGIN.replace("example", "exampl"), False),
])
def test_trusted_origins_variable_and_patterns(named, named_srv, origin, allowed):
    session = named_srv.create_session()
    response = httpx.patch(f"{named.url}/echo/w", headers={**session_cookie(session), "Origin": origin}, content=b"x", timeout=10)
    if allowed:
        assert_session_identity(assert_forwarded(response), session)
    else:
        assert_cross_site_refused(response)


# ---------------------------------------------------------------------------------------
# Better Auth unavailable: 503, never 401; cached sessions keep working


@pytest.fixture(scope="module")
def flaky(make_server):
    return make_server(hang_seconds=4.0)


@pytest.fixture(scope="module")
def outage(start, flaky):
    return start(flaky, GATEHOUSE_SESSION_TIMEOUT="500ms", GATEHOUSE_WORKERS="2")


@pytest.mark.parametrize("kind", ["500", "garbage", "bad_shape", "404", "hang", "stopped"])
def test_outage_is_503_and_cached_sessions_keep_working(outage, flaky, kind):
    cached = flaky.create_session()
    with httpx.Client(base_url=outage.url, timeout=10) as c:
        assert_forwarded(c.get("/echo/before", headers=session_cookie(cached)))
        fresh = flaky.create_session()
        before = scrape(outage)
        flaky.set_outage(kind)
        try:
            for headers in (session_cookie(fresh), session_bearer(fresh.value), {"Cookie": f"{DEV_COOKIE}={flaky.unknown_value()}"}):
                started = time.monotonic()
                response = c.get("/echo/outage", headers=headers)
                elapsed = time.monotonic() - started
                assert_unavailable(response)
                assert_no_session_echo(response, fresh)
                assert elapsed < 1.8, f"{kind}: the 503 took {elapsed:.2f}s (GATEHOUSE_SESSION_TIMEOUT=500ms)"
            echo = assert_forwarded(c.get("/echo/during", headers=session_cookie(cached)))
            assert_session_identity(echo, cached)
        finally:
            flaky.set_outage(None)
        after = scrape(outage)
        moved = metric(after, "gatehouse_session_lookups_total", result="unavailable") - metric(
            before, "gatehouse_session_lookups_total", result="unavailable")
        assert moved >= 2, moved
        assert flaky.lookup_count(cached) == 1
        # the 503 was not remembered: once Better Auth answers, the same session works
        assert_session_identity(assert_forwarded(c.get("/echo/after", headers=session_cookie(fresh))), fresh)


@pytest.fixture(scope="module")
def slow(make_server):
    return make_server(lookup_delay=1.0)


@pytest.fixture(scope="module")
def overload(start, slow):
    return start(slow, GATEHOUSE_SESSION_MAX_LOOKUPS="1", GATEHOUSE_WORKERS="2")


def test_lookups_past_the_limit_are_503_not_401(overload, slow):
    sessions = [slow.create_session() for _ in range(8)]
    before = scrape(overload)
    barrier = threading.Barrier(len(sessions))

    def one(session: Session) -> httpx.Response:
        with httpx.Client(base_url=overload.url, timeout=10) as c:
            barrier.wait(timeout=10)
            return c.get("/echo/crowd", headers=session_cookie(session))

    with ThreadPoolExecutor(len(sessions)) as pool:
        responses = list(pool.map(one, sessions))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(503) >= 1 and statuses.count(200) >= 1, statuses
    for session, response in zip(sessions, responses):
        if response.status_code == 503:
            assert_unavailable(response)
        else:
            assert_session_identity(assert_forwarded(response), session)
    assert slow.max_in_flight == 1, f"{slow.max_in_flight} lookups at once with GATEHOUSE_SESSION_MAX_LOOKUPS=1"
    after = scrape(overload)
    overloaded = metric(after, "gatehouse_session_lookups_total", result="overloaded") - metric(
        before, "gatehouse_session_lookups_total", result="overloaded")
    assert overloaded == statuses.count(503), (overloaded, statuses)


# ---------------------------------------------------------------------------------------
# the cache: one lookup per credential per TTL, and none for a credential already refused


@pytest.fixture(scope="module")
def cached_srv(make_server):
    return make_server(lookup_delay=0.05)


@pytest.fixture(scope="module")
def cached(start, cached_srv):
    return start(cached_srv, GATEHOUSE_SESSION_CACHE_TTL=f"{CACHE_TTL:g}s", GATEHOUSE_WORKERS="2")


def test_a_thousand_requests_with_one_cookie_cost_one_lookup_per_ttl(cached, cached_srv):
    session = cached_srv.create_session()
    requests = [raw_get("/echo/ttl", session_cookie(session))] * 1000
    started = time.monotonic()
    results = fire(cached.port, requests, connections=20)
    elapsed = time.monotonic() - started
    assert {status for status, _ in results} == {200}, {status for status, _ in results}
    lookups = cached_srv.lookups_of(session)
    if elapsed < CACHE_TTL:
        assert len(lookups) == 1, f"{len(lookups)} lookups for 1000 requests within the TTL ({elapsed:.2f}s)"
    else:  # a very slow machine: still one per TTL
        assert len(lookups) <= 1 + int(elapsed // CACHE_TTL), (len(lookups), elapsed)
    # past the TTL: asked once more, then cached again
    time.sleep(max(0.0, lookups[-1].request.time + CACHE_TTL + 0.5 - time.monotonic()))
    count = len(lookups)
    for _ in range(5):
        echo = assert_forwarded(httpx.get(f"{cached.url}/echo/ttl", headers=session_cookie(session), timeout=10))
    assert_session_identity(echo, session)
    assert cached_srv.lookup_count(session) == count + 1


def test_a_thousand_made_up_cookies_cost_at_most_a_thousand_lookups_then_none(cached, cached_srv):
    values = [cached_srv.unknown_value() for _ in range(500)] + [cached_srv.forged_value() for _ in range(500)]
    MADE_UP.extend(values)
    requests = [raw_get(f"/echo/flood/{i}", {"Cookie": f"{DEV_COOKIE}={v}"}) for i, v in enumerate(values)]
    cached_srv.lookup_delay = 0.0  # 1 000 lookups: as fast as the server can answer
    total_before = cached_srv.lookup_count()
    expected = {"body": {"detail": "Invalid token: session not found"},
                "www-authenticate": invalid_token_challenge("session not found")}
    first = fire(cached.port, requests, connections=20)
    wrong = [(i, r) for i, r in enumerate(first) if r != (401, expected)]
    assert not wrong, (len(wrong), wrong[:3], [(l.outcome, l.status) for l in cached_srv.lookups()
                                               if l.credential == values[wrong[0][0]]])
    asked = cached_srv.lookup_count(*values)
    assert 1 <= asked <= 1000, asked
    assert cached_srv.lookup_count() - total_before == asked
    second = fire(cached.port, requests, connections=20)
    assert all(r == (401, expected) for r in second), [r for r in second if r != (401, expected)][:3]
    assert cached_srv.lookup_count(*values) == asked, "a refused credential was looked up again within the negative TTL"


# ---------------------------------------------------------------------------------------
# metrics and the access log


def test_metrics_count_lookups_and_cache_hits(dev, srv):
    before = scrape(dev)
    session = srv.create_session()
    expired = srv.create_session(expires_in=-5)
    with httpx.Client(base_url=dev.url, timeout=10) as c:
        assert c.get("/echo/m", headers=session_cookie(session)).status_code == 200
        assert c.get("/echo/m", headers=session_cookie(session)).status_code == 200
        assert c.get("/echo/m", headers={"Cookie": f"{DEV_COOKIE}={srv.unknown_value()}"}).status_code == 401
        assert c.get("/echo/m", headers=session_cookie(expired)).status_code == 401
    after = scrape(dev)

    def moved(name, **labels):
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert moved("gatehouse_session_lookups_total", result="found") == 1
    assert moved("gatehouse_session_lookups_total", result="not_found") == 1
    assert moved("gatehouse_session_lookups_total", result="expired") == 1
    assert moved("gatehouse_session_cache_hits_total") >= 1
    assert moved("gatehouse_session_cache_misses_total") >= 3
    assert moved("gatehouse_session_lookup_duration_seconds_count") == 3
    assert moved("gatehouse_session_lookup_duration_seconds_sum") > 0


def test_access_log_records_the_auth_method(dev, srv, key):
    session = srv.create_session()
    jwt = key.token(better_auth_payload(srv.origin))
    ids = {"session": f"sess-log-{generate_id(10)}", "jwt": f"jwt-log-{generate_id(10)}"}
    assert httpx.get(f"{dev.url}/echo/log", headers={**session_cookie(session), "X-Request-Id": ids["session"]},
                     timeout=10).status_code == 200
    assert httpx.get(f"{dev.url}/echo/log", headers={**session_bearer(jwt), "X-Request-Id": ids["jwt"]},
                     timeout=10).status_code == 200
    for method, request_id in ids.items():
        entry = flat(access_entry(dev, request_id))
        methods = [v for k, v in entry.items() if k.rsplit(".", 1)[-1] == "auth_method"]
        assert methods == [method], entry
        assert session.token not in json.dumps(entry)


# ---------------------------------------------------------------------------------------
# last (file order): nothing of any session credential in any output of this module's instances


def test_websocket_handshake_on_the_session_cookie_needs_a_trusted_origin(dev, srv):
    """A WebSocket handshake is a GET, but browsers attach cookies to cross-site handshakes
    (cross-site WebSocket hijacking): on the session cookie it needs a trusted Origin, which
    every browser sends on a handshake."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    session = srv.create_session()
    url = dev.url.replace("http://", "ws://", 1) + "/ws/echo"
    for origin in (None, "https://evil.example.com"):
        headers = dict(session_cookie(session))
        if origin:
            headers["Origin"] = origin
        before = srv.lookup_count()
        with pytest.raises(InvalidStatus) as refused:
            connect(url, additional_headers=headers, open_timeout=10)
        assert refused.value.response.status_code == 403
        assert json.loads(refused.value.response.body) == {"detail": "Cross-site request refused"}
        assert srv.lookup_count() == before  # refused before any lookup
    with connect(url, additional_headers={**session_cookie(session), "Origin": srv.origin}, open_timeout=10) as ws:
        info = json.loads(ws.recv(timeout=10))
        sent = {name: value for name, value in info["headers"]}
        assert sent["x-auth-method"] == "session"
        assert sent["x-user-id"] == session.user["id"]
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
    # A bearer session needs no Origin: no browser attaches a bearer on its own.
    with connect(url, additional_headers=session_bearer(session.value), open_timeout=10) as ws:
        json.loads(ws.recv(timeout=10))


def test_zz_session_tokens_appear_in_no_gatehouse_output():
    if len(INSTANCES) < 3:
        pytest.skip("meaningful only after the module ran")
    with ThreadPoolExecutor(len(INSTANCES)) as pool:  # SIGTERM: every buffered line is written
        list(pool.map(lambda gh: gh.proc.poll() is None and gh.terminate_and_wait(timeout=30), INSTANCES))
    sessions = [s for server in SERVERS for s in server.sessions.values()]
    assert any(l.outcome == "session" and l.status == 200 for server in SERVERS for l in server.lookups()), \
        "no session was ever looked up successfully: nothing to check"
    for s in sessions:
        tokens.MINTED.append(s.value)  # test_zz_no_secrets checks the whole suite's output too
    known = {s.token for s in sessions} | {value[:32] for value in MADE_UP}
    for gh in INSTANCES:
        output = gh.output()
        windows: set[str] = set()
        for run in re.findall(r"[A-Za-z0-9]{32,}", output):
            windows.update(run[i : i + 32] for i in range(len(run) - 31))
        leaked = windows & known
        assert not leaked, f"{gh.name}: session tokens in its output: {sorted(leaked)[:3]}"
        for s in sessions:
            for secret in (s.signature, s.value, s.value.split(".", 1)[1], base64.b64decode(s.signature).hex()):
                assert secret not in output, f"{gh.name}: a session signature in its output"
