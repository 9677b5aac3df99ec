"""Every dependency through TestClient and the testing helper: CurrentUser, OptionalUser,
require(...); forged headers; the warning; trust mode without a secret; configuration from the
environment; OpenAPI."""

from __future__ import annotations

import base64
import json
import logging
from datetime import datetime, timezone

import httpx
import pytest
from fastapi import FastAPI
from support import NOW, SECRET, Clock, client, make_app

from gatehouse_fastapi import CurrentUser, GatehouseConfig, GatehouseUser, require
from gatehouse_fastapi.config import UNSIGNED_WARNING
from gatehouse_fastapi.dependencies import _reset_default_config
from gatehouse_fastapi.testing import identity_headers

NO_TOKEN = 'Bearer realm="gatehouse"'
INSUFFICIENT = 'Bearer realm="gatehouse", error="insufficient_scope"'

SESSION_CLAIMS = {
    "id": "Vq1wT2yH7pLx0aBcDeFgHiJkLmNoPqRs",
    "name": "Grace Hopper",
    "email": "grace@example.com",
    "emailVerified": True,
    "image": None,
    "createdAt": "2025-11-08T13:00:00.417Z",
    "role": "admin",
    "sub": "Vq1wT2yH7pLx0aBcDeFgHiJkLmNoPqRs",
    "sid": "s3SsIoNiDaBcDeFgHiJkLmNoPqRsTuVw",
    "exp": 1796824800,
}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def signed(clock):
    return client(make_app(GatehouseConfig(secret=SECRET, clock=clock)))


def signed_headers(user, target: str, **kwargs) -> dict:
    return identity_headers(user, secret=SECRET, target=target, now=NOW, **kwargs)


def assert_not_authenticated(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == {"detail": "Not authenticated"}
    assert response.headers["www-authenticate"] == NO_TOKEN


def assert_forbidden(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.json() == {"detail": "Forbidden"}
    assert response.headers["www-authenticate"] == INSUFFICIENT


# ---------------------------------------------------------------------------------------------
# CurrentUser


def test_current_user_of_a_session(signed):
    response = signed.get("/me", headers=signed_headers(SESSION_CLAIMS, "/me"))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == SESSION_CLAIMS["sub"]
    assert body["email"] == "grace@example.com"
    assert body["email_verified"] is True
    assert body["name"] == "Grace Hopper"
    assert body["role"] == "admin"
    assert body["auth_method"] == "session"
    assert body["session_id"] == SESSION_CLAIMS["sid"]
    assert body["claims"] == SESSION_CLAIMS
    expires_at = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert expires_at == datetime.fromtimestamp(SESSION_CLAIMS["exp"], tz=timezone.utc)


def test_current_user_of_a_jwt(signed):
    claims = {"sub": "user-42", "email": "ada@example.com", "name": "Ada", "emailVerified": False, "exp": 1796221000}
    body = signed.get("/me", headers=signed_headers(claims, "/me")).json()
    assert (body["id"], body["auth_method"], body["session_id"], body["email_verified"]) == ("user-42", "jwt", None, False)
    assert body["expires_at"].startswith("2026-")


def test_current_user_from_a_gatehouse_user(signed):
    user = GatehouseUser(id="u-1", email="x@example.com", role="editor", auth_method="session", session_id="s-1")
    body = signed.get("/me", headers=signed_headers(user, "/me")).json()
    assert (body["id"], body["email"], body["role"], body["auth_method"], body["session_id"]) == (
        "u-1", "x@example.com", "editor", "session", "s-1",
    )


def test_current_user_anonymous_through_gatehouse_is_401(signed):
    assert_not_authenticated(signed.get("/me", headers=signed_headers(None, "/me")))


def test_non_ascii_values_arrive_as_utf8():
    config = GatehouseConfig(secret=SECRET, clock=Clock(), claim_headers="X-User-Id=sub,X-User-Name=name")
    c = client(make_app(config))
    claims = {"sub": "user-ü", "name": "Zoë 日本"}
    headers = identity_headers(claims, secret=SECRET, target="/me", now=NOW, config=config)
    response = c.get("/me", headers=httpx.Headers(headers, encoding="utf-8"))
    assert response.status_code == 200 and response.json()["name"] == "Zoë 日本"


# ---------------------------------------------------------------------------------------------
# OptionalUser


def test_optional_user(signed):
    assert signed.get("/optional", headers=signed_headers(None, "/optional")).json() == {"user": None}
    assert signed.get("/optional", headers=signed_headers({"sub": "u-9"}, "/optional")).json() == {"user": "u-9"}


def test_optional_user_refuses_a_request_that_did_not_come_through_gatehouse(signed):
    """With a secret, "anonymous" needs gatehouse's signature too: no signature is "around gatehouse"."""
    assert_not_authenticated(signed.get("/optional"))


# ---------------------------------------------------------------------------------------------
# require


@pytest.mark.parametrize(
    ("claims", "status"),
    [
        ({"sub": "u", "role": "admin"}, 200),
        ({"sub": "u", "role": ["user", "admin"]}, 200),
        ({"sub": "u", "role": "user"}, 403),
        ({"sub": "u", "role": "admin,user"}, 403),  # gatehouse's role=admin does not split strings either
        ({"sub": "u", "role": None}, 403),
        ({"sub": "u", "role": {"name": "admin"}}, 403),
        ({"sub": "u"}, 403),
    ],
)
def test_require_role(signed, claims, status):
    response = signed.get("/admin", headers=signed_headers(claims, "/admin"))
    if status == 403:
        assert_forbidden(response)
    else:
        assert response.status_code == 200 and response.json() == {"admin": "u"}


def test_require_without_a_user_is_401_not_403(signed):
    assert_not_authenticated(signed.get("/admin", headers=signed_headers(None, "/admin")))
    assert_not_authenticated(signed.get("/admin"))


@pytest.mark.parametrize(
    ("claims", "status"),
    [
        ({"emailVerified": True, "org": {"plan": "team"}}, 200),
        ({"emailVerified": "true", "org": {"plan": "team"}}, 200),
        ({"emailVerified": False, "org": {"plan": "team"}}, 403),
        ({"emailVerified": 1, "org": {"plan": "team"}}, 403),
        ({"emailVerified": True, "org": {"plan": ["free", "team"]}}, 200),
        ({"emailVerified": True, "org": "team"}, 403),
        ({"emailVerified": True}, 403),
    ],
)
def test_require_claims_with_dot_paths_and_booleans(signed, claims, status):
    response = signed.get("/verified", headers=signed_headers({"sub": "u", **claims}, "/verified"))
    assert response.status_code == status


@pytest.mark.parametrize(
    ("level", "status"), [(2, 200), (2.0, 200), ("2", 403), (True, 403), (3, 403)]
)
def test_require_numbers_and_role_together(signed, level, status):
    response = signed.get("/level", headers=signed_headers({"sub": "u", "role": "admin", "level": level}, "/level"))
    assert response.status_code == status


def test_require_rejects_bad_requirements_at_definition():
    with pytest.raises(ValueError):
        require(role="")
    with pytest.raises(ValueError):
        require(claims={"org..id": "x"})
    with pytest.raises(ValueError):
        require(claims={"org": {"id": "x"}})  # type: ignore[dict-item]


def test_require_is_documented_in_openapi_as_the_same_lock(signed):
    spec = signed.get("/openapi.json").json()
    assert spec["paths"]["/admin"]["get"]["security"] == [{"gatehouse": []}]


# ---------------------------------------------------------------------------------------------
# forged headers, the warning


FORGED = {"X-User-Id": "admin", "X-User-Email": "root@example.com", "X-Auth-Method": "jwt"}


@pytest.mark.parametrize("path", ["/me", "/optional", "/admin", "/verified"])
def test_forged_identity_headers_without_a_signature_are_refused(signed, path):
    forged = dict(FORGED, **{"X-Auth-Claims": base64.urlsafe_b64encode(b'{"sub":"admin","role":"admin"}').decode()})
    assert_not_authenticated(signed.get(path, headers=forged))


def test_forged_headers_next_to_a_valid_signature_for_other_values_are_refused(signed):
    headers = signed_headers({"sub": "user-42"}, "/me")
    headers["X-User-Id"] = "admin"
    assert_not_authenticated(signed.get("/me", headers=headers))


def test_anonymous_signature_with_identity_headers_added_is_refused(signed):
    headers = signed_headers(None, "/me")
    headers.update(FORGED)
    assert_not_authenticated(signed.get("/me", headers=headers))


def test_the_warning_is_logged_at_most_once_per_minute(signed, clock, caplog):
    caplog.set_level(logging.WARNING, logger="gatehouse_fastapi")

    def warnings() -> int:
        return sum(UNSIGNED_WARNING in record.getMessage() for record in caplog.records)

    for _ in range(5):
        signed.get("/me", headers=FORGED)
    assert warnings() == 1
    clock.now += 59
    signed.get("/me", headers=FORGED)
    assert warnings() == 1
    clock.now += 2
    signed.get("/me", headers=FORGED)
    signed.get("/optional")
    assert warnings() == 2
    assert SECRET not in caplog.text


def test_the_warning_text_is_the_documented_one():
    assert UNSIGNED_WARNING == (
        "identity headers without a valid gatehouse signature — is the app reachable around the proxy?"
    )


def test_public_routes_are_untouched(signed):
    assert signed.get("/public").json() == {"public": True}
    assert signed.get("/openapi.json").status_code == 200


# ---------------------------------------------------------------------------------------------
# without a secret: headers trusted as they arrive


@pytest.fixture
def trusting():
    return client(make_app(GatehouseConfig(secret=None)))


def test_without_a_secret_headers_are_trusted(trusting):
    body = trusting.get("/me", headers=identity_headers({"sub": "u-1", "email": "a@example.com"}, target="/me")).json()
    assert (body["id"], body["email"], body["auth_method"]) == ("u-1", "a@example.com", "jwt")
    assert "X-Gatehouse-Signature" not in identity_headers({"sub": "u-1"})


def test_without_a_secret_and_without_a_claims_header_claims_come_from_the_claim_headers(trusting):
    body = trusting.get("/me", headers={"X-User-Id": "u-2", "X-User-Email": "b@example.com"}).json()
    assert (body["id"], body["email"], body["auth_method"], body["claims"]) == (
        "u-2", "b@example.com", "jwt", {"sub": "u-2", "email": "b@example.com"},
    )


def test_without_a_secret_missing_identity_is_still_401(trusting):
    assert_not_authenticated(trusting.get("/me"))
    assert trusting.get("/optional").json() == {"user": None}


def test_an_unreadable_claims_header_is_401(trusting, caplog):
    assert_not_authenticated(trusting.get("/me", headers={"X-User-Id": "u", "X-Auth-Claims": "not base64!"}))
    assert_not_authenticated(
        trusting.get("/me", headers={"X-User-Id": "u", "X-Auth-Claims": base64.urlsafe_b64encode(b"[1]").decode()})
    )


def test_without_a_claims_header_configured_the_claim_headers_give_the_identity():
    config = GatehouseConfig(secret=SECRET, clock=Clock(), claim_headers="X-User-Id=sub,X-Org=org.id", claims_header="")
    c = client(make_app(config))
    headers = identity_headers({"sub": "u-3", "org": {"id": "o-1"}}, secret=SECRET, target="/me", now=NOW, config=config)
    assert "X-Auth-Claims" not in headers
    body = c.get("/me", headers=headers).json()
    assert (body["id"], body["claims"]) == ("u-3", {"sub": "u-3", "org": {"id": "o-1"}})


# ---------------------------------------------------------------------------------------------
# configuration from the environment


@pytest.fixture
def env(monkeypatch):
    for name in ("GATEHOUSE_IDENTITY_SECRET", "GATEHOUSE_IDENTITY_SECRET_FILE", "GATEHOUSE_CLAIM_HEADERS",
                 "GATEHOUSE_CLAIMS_HEADER", "GATEHOUSE_IDENTITY_MAX_SKEW"):
        monkeypatch.delenv(name, raising=False)
    _reset_default_config()
    yield monkeypatch
    _reset_default_config()


def test_an_unconfigured_app_reads_the_environment_on_first_use(env):
    env.setenv("GATEHOUSE_IDENTITY_SECRET", SECRET)
    c = client(make_app(None))
    assert_not_authenticated(c.get("/me", headers=FORGED))
    assert c.get("/me", headers=identity_headers({"sub": "u-5"}, secret=SECRET, target="/me")).json()["id"] == "u-5"


def test_the_secret_file_variable(env, tmp_path):
    path = tmp_path / "gatehouse_identity_secret"
    path.write_text(SECRET + "\n")
    env.setenv("GATEHOUSE_IDENTITY_SECRET_FILE", str(path))
    c = client(make_app(None))
    assert c.get("/me", headers=identity_headers({"sub": "u-6"}, secret=SECRET, target="/me")).status_code == 200
    assert_not_authenticated(c.get("/me", headers=FORGED))


def test_configure_fails_at_startup_on_a_bad_secret(env):
    from gatehouse_fastapi import IdentitySecretError, configure

    env.setenv("GATEHOUSE_IDENTITY_SECRET", "short")
    with pytest.raises(IdentitySecretError, match="GATEHOUSE_IDENTITY_SECRET"):
        configure(FastAPI())


def test_no_secret_in_the_environment_warns_once(env, caplog):
    import gatehouse_fastapi.config as config_module

    env.setattr(config_module, "_unsigned_warned", False)
    caplog.set_level(logging.WARNING, logger="gatehouse_fastapi")
    GatehouseConfig.from_env({})
    GatehouseConfig.from_env({})
    assert sum("is not set" in r.getMessage() for r in caplog.records) == 1


# ---------------------------------------------------------------------------------------------
# OpenAPI


def test_openapi_declares_the_bearer_scheme_on_protected_routes(signed):
    spec = signed.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["gatehouse"]["type"] == "http"
    assert spec["components"]["securitySchemes"]["gatehouse"]["scheme"] == "bearer"
    for path in ("/me", "/optional", "/admin", "/verified"):
        assert spec["paths"][path]["get"]["security"] == [{"gatehouse": []}], path
    assert "security" not in spec["paths"]["/public"]["get"]
    # the bearer is for the docs only: it is not a parameter of any route
    assert all(p.get("name") != "authorization" for p in spec["paths"]["/me"]["get"].get("parameters", []))


def test_the_docs_authorize_header_does_not_replace_the_signature(signed):
    """Swagger's Authorize sends Authorization: Bearer …; the app still trusts only what
    gatehouse verified and signed."""
    assert_not_authenticated(signed.get("/me", headers={"Authorization": "Bearer anything"}))


def test_the_user_model_in_a_response_schema():
    app = FastAPI()

    @app.get("/me")
    async def me(user: CurrentUser) -> GatehouseUser:
        return user

    schema = app.openapi()["components"]["schemas"]["GatehouseUser"]
    assert set(schema["properties"]) == {
        "id", "email", "email_verified", "name", "role", "auth_method", "session_id", "expires_at", "claims",
    }


def test_user_has_role():
    user = GatehouseUser(id="u", claims={"sub": "u", "role": ["a", "b"]})
    assert user.has_role("b") and not user.has_role("c")


def test_claims_header_is_base64url_without_padding():
    headers = identity_headers({"sub": "u?>"}, secret=SECRET, target="/")
    value = headers["X-Auth-Claims"]
    assert "=" not in value and "+" not in value and "/" not in value
    assert json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))) == {"sub": "u?>"}
