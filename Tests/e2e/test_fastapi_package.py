"""The gatehouse-fastapi package (python/gatehouse-fastapi) end to end: a FastAPI app using it
(package_app.py) behind the real gatehouse with GATEHOUSE_IDENTITY_SECRET, JWTs from a JWKS and
Better Auth sessions from a get-session server (get_session_server.py).

What a user of the pair relies on:
  - through gatehouse, JWT, session (cookie and bearer) and anonymous public requests reach the
    endpoints with the right user (or none);
  - the same app reached directly, around gatehouse, refuses forged identity headers (401) and
    logs one warning;
  - a captured, valid header set replayed later than the app's tolerance is refused, and one
    captured for /a is refused on /b (and for GET on POST);
  - what gatehouse signs and what the package recomputes agree on raw escaped paths, queries, the
    upstream's path prefix, WebSocket handshakes, a custom header configuration with non-ASCII
    values, and the rotation order (gatehouse signs with the first secret).

The replay is not waited out for 60 s: a second instance of the app runs with
GATEHOUSE_IDENTITY_MAX_SKEW=1s, and the captured headers reach it 2 s later. The unit tests
(python/gatehouse-fastapi/tests) check the exact ±60 s edges with a fake clock.
"""

from __future__ import annotations

import base64
import json
import signal
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from auth_support import bearer
from conftest import REPO, start_upstream, wait_until
from get_session_server import GetSessionServer
from tokens import better_auth_payload

SECRET = "e2e-identity-secret-0123456789abcdef-XYZ"
WARNING = "identity headers without a valid gatehouse signature — is the app reachable around the proxy?"
NO_TOKEN = 'Bearer realm="gatehouse"'
INSUFFICIENT = 'Bearer realm="gatehouse", error="insufficient_scope"'
NOT_AUTHENTICATED = {"detail": "Not authenticated"}
# When each app instance started (the warning is rate-limited per minute).
STARTED: dict[str, float] = {}


def require_current_package() -> None:
    """The app imports the installed gatehouse_fastapi (pip install ./python/gatehouse-fastapi,
    which `make venv` runs whenever the package changes): refuse to test a stale copy."""
    import gatehouse_fastapi

    installed = Path(gatehouse_fastapi.__file__).resolve().parent
    source = REPO / "python" / "gatehouse-fastapi" / "src" / "gatehouse_fastapi"
    stale = [
        path.name
        for path in sorted(source.iterdir())
        if path.is_file() and path.suffix in (".py", ".typed")
        and (not (installed / path.name).is_file() or (installed / path.name).read_bytes() != path.read_bytes())
    ]
    if stale:
        pytest.fail(
            f"the installed gatehouse_fastapi ({installed}) differs from python/gatehouse-fastapi/src in {stale}: "
            "run `.venv/bin/pip install ./python/gatehouse-fastapi` (or `make venv`)",
            pytrace=False,
        )


def start_app(tmp: Path, **env: str):
    """package_app under uvicorn with `env` added to its environment (it reads its
    configuration from there, as a deployment would)."""
    require_current_package()
    with pytest.MonkeyPatch.context() as patch:
        for name in ("GATEHOUSE_IDENTITY_SECRET", "GATEHOUSE_IDENTITY_SECRET_FILE", "GATEHOUSE_IDENTITY_MAX_SKEW",
                     "GATEHOUSE_CLAIM_HEADERS", "GATEHOUSE_CLAIMS_HEADER"):
            patch.delenv(name, raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        return start_upstream(tmp, app="package_app:app")


@pytest.fixture(scope="module")
def server(key):
    srv = GetSessionServer(keys=[key.jwk()]).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    up = start_app(tmp_path_factory.mktemp("package-app"), GATEHOUSE_IDENTITY_SECRET=SECRET)
    STARTED[up.name] = time.time()
    yield up
    up.stop(signal.SIGTERM, timeout=3)


@pytest.fixture(scope="module")
def strict_app(tmp_path_factory):
    """The same app, the same secret, a tolerance of one second."""
    up = start_app(tmp_path_factory.mktemp("package-app-strict"), GATEHOUSE_IDENTITY_SECRET=SECRET,
                   GATEHOUSE_IDENTITY_MAX_SKEW="1s")
    yield up
    up.stop(signal.SIGTERM, timeout=3)


@pytest.fixture(scope="module")
def gh(gatehouse_factory, app, server):
    return gatehouse_factory(
        app.url,
        BETTER_AUTH_URL=server.origin,
        GATEHOUSE_SESSIONS="both",
        GATEHOUSE_IDENTITY_SECRET=SECRET,
        GATEHOUSE_PUBLIC_PATHS="/public/**,/docs,/openapi.json",
    )


@pytest.fixture(scope="module")
def client(gh):
    with httpx.Client(base_url=gh.url, timeout=15) as c:
        yield c


@pytest.fixture(scope="module")
def direct(app):
    """The app reached around gatehouse."""
    with app.client(timeout=15) as c:
        yield c


def jwt_for(key, server, **claims) -> tuple[str, dict]:
    payload = better_auth_payload(server.origin, **claims)
    return key.token(payload), payload


def assert_not_authenticated(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == NOT_AUTHENTICATED
    assert response.headers["www-authenticate"] == NO_TOKEN


def warnings_logged(app) -> int:
    return app.stderr().count(WARNING)


# ---------------------------------------------------------------------------------------------
# around gatehouse (first: the warning count starts here)


FORGED = {
    "X-User-Id": "admin",
    "X-User-Email": "root@example.com",
    "X-Auth-Method": "jwt",
    "X-Auth-Claims": base64.urlsafe_b64encode(b'{"sub":"admin","role":"admin"}').decode().rstrip("="),
}


def test_forged_identity_headers_around_gatehouse_are_refused(app, direct, gh):
    for path in ("/whoami/x", "/a", "/admin/stats", "/public/whoami", "/public/me"):
        assert_not_authenticated(direct.get(path, headers=FORGED))
    # A made-up signature is no better.
    forged = dict(FORGED, **{"X-Gatehouse-Signature": f"t={int(time.time())},v1={'ab' * 32}", "X-Request-Id": "r"})
    assert_not_authenticated(direct.get("/whoami/x", headers=forged))
    # Endpoints without the package's dependencies are not affected.
    assert direct.get("/public/open").json() == {"open": True}
    wait_until(lambda: warnings_logged(app) >= 1, timeout=5, what="the warning in the app's log")
    assert warnings_logged(app) == 1, app.stderr()
    assert SECRET not in app.output()


def test_a_request_around_gatehouse_without_identity_is_refused_too(direct):
    """With a secret configured even "anonymous" must come through gatehouse: an OptionalUser
    endpoint cannot tell an unsigned request from a forged one."""
    assert_not_authenticated(direct.get("/public/whoami"))


# ---------------------------------------------------------------------------------------------
# through gatehouse


def test_a_jwt_user_reaches_the_endpoint(client, key, server):
    token, payload = jwt_for(key, server, email="ada@example.com", name="Ada Lovelace", role="admin")
    response = client.get("/whoami/x", headers=bearer(token))
    assert response.status_code == 200, response.text
    user = response.json()["user"]
    assert user["id"] == payload["sub"]
    assert (user["email"], user["name"], user["role"], user["email_verified"]) == (
        "ada@example.com", "Ada Lovelace", "admin", True,
    )
    assert user["auth_method"] == "jwt" and user["session_id"] is None
    assert user["claims"] == payload
    assert user["expires_at"].startswith(time.strftime("%Y-%m-%dT", time.gmtime(payload["exp"])))


@pytest.mark.parametrize("how", ["cookie", "bearer"])
def test_a_session_user_reaches_the_endpoint(client, server, how):
    session = server.create_session(role="editor")
    headers = {"Cookie": session.cookie()} if how == "cookie" else {"Authorization": f"Bearer {session.value}"}
    response = client.get("/whoami/x", headers=headers)
    assert response.status_code == 200, response.text
    user = response.json()["user"]
    assert user["id"] == session.user_id
    assert user["auth_method"] == "session"
    assert user["session_id"] == session.id
    assert user["email"] == session.user["email"] and user["role"] == "editor"
    assert user["claims"]["sid"] == session.id and user["claims"]["exp"] == int(session.expires_at)


def test_anonymous_on_a_public_path(client):
    """Signed with an empty identity: the app knows it came through gatehouse, anonymously."""
    response = client.get("/public/whoami")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"] is None
    assert body["received"]["x-gatehouse-signature"].startswith("t=")
    # A public path whose endpoint needs a user: the app's own 401, gatehouse's challenge.
    assert_not_authenticated(client.get("/public/me"))


def test_forged_headers_sent_through_gatehouse_are_stripped(client):
    forged = dict(FORGED, **{"X-Gatehouse-Signature": f"t={int(time.time())},v1={'cd' * 32}"})
    response = client.get("/public/whoami", headers=forged)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"] is None
    assert "x-user-id" not in body["received"]
    assert body["received"]["x-gatehouse-signature"] != forged["X-Gatehouse-Signature"]


def test_require_role_answers_403_with_gatehouse_s_challenge(client, key, server):
    admin, _ = jwt_for(key, server, role="admin")
    assert client.get("/admin/stats", headers=bearer(admin)).status_code == 200
    user, _ = jwt_for(key, server, role="user")
    response = client.get("/admin/stats", headers=bearer(user))
    assert response.status_code == 403
    assert response.json() == {"detail": "Forbidden"}
    assert response.headers["www-authenticate"] == INSUFFICIENT


@pytest.mark.parametrize(
    "target",
    [
        "/whoami/caf%C3%A9%20menu",
        "/whoami/caf%c3%a9",
        "/whoami/%7Euser;v=1/x",
        "/whoami/q?name=caf%C3%A9+tea&x=1&x=2&empty=&flag&slash=a%2Fb",
    ],
)
def test_the_raw_target_is_verified_byte_for_byte(client, key, server, target):
    token, _ = jwt_for(key, server)
    response = client.get(target, headers=bearer(token))
    assert response.status_code == 200, response.text
    body = response.json()
    path, _, query = target.partition("?")
    assert (body["raw_path"], body["query_string"]) == (path, query)


def test_the_upstream_path_prefix_is_part_of_the_signed_target(gatehouse_factory, app, server, key):
    """GATEHOUSE_UPSTREAM=http://app/whoami: /x reaches FastAPI as /whoami/x, and that is what
    gatehouse signs (the target as forwarded)."""
    if app.socket_path is not None:
        pytest.skip("a path prefix needs an http:// upstream (the tcp run covers it)")
    prefixed = gatehouse_factory(
        f"{app.url}/whoami", BETTER_AUTH_URL=server.origin, GATEHOUSE_IDENTITY_SECRET=SECRET,
    )
    token, payload = jwt_for(key, server)
    response = httpx.get(f"{prefixed.url}/x/caf%C3%A9?q=1", headers=bearer(token), timeout=15)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["raw_path"], body["query_string"]) == ("/whoami/x/caf%C3%A9", "q=1")
    assert body["user"]["id"] == payload["sub"]


def test_rotation_order_gatehouse_signs_with_the_first_secret(gatehouse_factory, app, server, key, tmp_path):
    """The app knows SECRET. gatehouse with "SECRET,OLD" (read from a file, as Compose and
    Kubernetes give it) signs with SECRET: accepted. gatehouse with "NEW,SECRET" signs with NEW,
    which the app does not know yet: refused — hence "the app first" when rotating."""
    token, _ = jwt_for(key, server)
    secret_file = tmp_path / "identity_secret"
    secret_file.write_text(f"{SECRET},old-identity-secret-0123456789abcdef-XYZ\n")
    current = gatehouse_factory(app.url, BETTER_AUTH_URL=server.origin, GATEHOUSE_IDENTITY_SECRET_FILE=str(secret_file))
    assert httpx.get(f"{current.url}/a", headers=bearer(token), timeout=15).status_code == 200
    ahead = gatehouse_factory(
        app.url, BETTER_AUTH_URL=server.origin, GATEHOUSE_IDENTITY_SECRET=f"new-identity-secret-0123456789abcdef-XYZ,{SECRET}"
    )
    assert_not_authenticated(httpx.get(f"{ahead.url}/a", headers=bearer(token), timeout=15))


CUSTOM_CLAIM_HEADERS = "X-Org=org.id, X-User-Id=sub,X-User-Name=name"


@pytest.fixture(scope="module")
def custom_app(tmp_path_factory):
    """The app with gatehouse's header configuration changed on both sides: other names and
    order, a dot path, and no claims header."""
    up = start_app(tmp_path_factory.mktemp("package-app-custom"), GATEHOUSE_IDENTITY_SECRET=SECRET,
                   GATEHOUSE_CLAIM_HEADERS=CUSTOM_CLAIM_HEADERS, GATEHOUSE_CLAIMS_HEADER="")
    yield up
    up.stop(signal.SIGTERM, timeout=3)


@pytest.mark.parametrize("org", [{"id": "org_42"}, None])
def test_a_custom_header_configuration_signs_and_verifies_alike(gatehouse_factory, custom_app, server, key, org):
    """Non-ASCII values, an absent claim header (no org), no X-Auth-Claims: the identity comes
    from the claim headers alone."""
    custom = gatehouse_factory(
        custom_app.url, BETTER_AUTH_URL=server.origin, GATEHOUSE_IDENTITY_SECRET=SECRET,
        GATEHOUSE_CLAIM_HEADERS=CUSTOM_CLAIM_HEADERS, GATEHOUSE_CLAIMS_HEADER="",
    )
    token, payload = jwt_for(key, server, name="Zoë Ünïcödé 日本", org=org)
    response = httpx.get(f"{custom.url}/whoami/x", headers=bearer(token), timeout=15)
    assert response.status_code == 200, response.text
    user = response.json()["user"]
    expected = {"sub": payload["sub"], "name": "Zoë Ünïcödé 日本"}
    if org:
        expected["org"] = org
    assert (user["id"], user["name"], user["claims"]) == (payload["sub"], "Zoë Ünïcödé 日本", expected)
    assert "x-auth-claims" not in response.json()["received"]


def test_post_through_gatehouse(client, key, server):
    token, payload = jwt_for(key, server)
    response = client.post("/a", headers=bearer(token), json={"x": 1})
    assert response.status_code == 200 and response.json()["user"]["id"] == payload["sub"]


def test_websocket_handshake_through_gatehouse(gh, key, server):
    token, payload = jwt_for(key, server)
    url = gh.url.replace("http://", "ws://") + "/ws"
    with connect(url, additional_headers=bearer(token), open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10)) == {"user": payload["sub"], "auth_method": "jwt"}


def test_the_docs_are_public_and_show_the_lock(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    scheme = spec["components"]["securitySchemes"]["gatehouse"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert spec["paths"]["/whoami/{rest}"]["get"]["security"] == [{"gatehouse": []}]


# ---------------------------------------------------------------------------------------------
# replays: a header set captured from a request gatehouse really signed


def capture(client, key, server, path: str = "/a") -> dict:
    token, _ = jwt_for(key, server)
    response = client.get(path, headers=bearer(token))
    assert response.status_code == 200, response.text
    received = response.json()["received"]
    assert set(received) >= {"x-user-id", "x-auth-claims", "x-auth-method", "x-request-id", "x-gatehouse-signature"}
    return received


def test_a_captured_header_set_is_valid_on_its_own_target_within_the_tolerance(client, direct, key, server):
    """The control for the replays below: the captured headers are complete and valid."""
    received = capture(client, key, server, "/a")
    response = direct.get("/a", headers=received)
    assert response.status_code == 200 and response.json()["user"]["id"] == received["x-user-id"]


def test_a_signature_for_a_sent_to_b_is_refused(client, direct, key, server):
    received = capture(client, key, server, "/a")
    assert_not_authenticated(direct.get("/b", headers=received))
    assert_not_authenticated(direct.get("/a?x=1", headers=received))
    assert_not_authenticated(direct.post("/a", headers=received))


def test_altered_identity_in_a_captured_set_is_refused(client, direct, key, server):
    received = capture(client, key, server, "/a")
    assert_not_authenticated(direct.get("/a", headers=dict(received, **{"x-user-id": "admin"})))
    assert_not_authenticated(direct.get("/a", headers=dict(received, **{"x-auth-method": "session"})))
    assert_not_authenticated(direct.get("/a", headers={k: v for k, v in received.items() if k != "x-auth-claims"}))


def test_a_signature_replayed_after_the_tolerance_is_refused(client, key, server, strict_app):
    received = capture(client, key, server, "/a")
    signed_at = int(received["x-gatehouse-signature"].split(",")[0][2:])
    # t is whole seconds: two seconds after it, the signature is over a second old.
    time.sleep(max(0.0, signed_at + 2.2 - time.time()))
    with strict_app.client(timeout=15) as late:
        assert_not_authenticated(late.get("/a", headers=received))
    assert WARNING in strict_app.stderr()


def test_the_warning_is_still_logged_once(app):
    """Every unsigned request this module sent to the app came within a minute or so; the
    warning is rate-limited to one per minute."""
    minutes = (time.time() - STARTED[app.name]) / 60
    assert 1 <= warnings_logged(app) <= 1 + int(minutes)
