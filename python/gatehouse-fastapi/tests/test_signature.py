"""Verification through the dependencies: clock skew, rotation, the raw target, malformed and
duplicated headers; and the secret's configuration (length, rotation syntax, the _FILE variant)."""

from __future__ import annotations

import pytest
from support import NOW, OLD_SECRET, OTHER_SECRET, SECRET, Clock, client, make_app

from gatehouse_fastapi import ConfigurationError, GatehouseConfig, IdentitySecretError
from gatehouse_fastapi.signature import MIN_SECRET_BYTES, parse_secrets
from gatehouse_fastapi.testing import identity_headers

USER = {"sub": "user-42", "email": "ada@example.com"}


def app_with(secret: str = SECRET, clock: Clock | None = None, **kwargs):
    clock = clock or Clock()
    return client(make_app(GatehouseConfig(secret=secret, clock=clock, **kwargs))), clock


# ---------------------------------------------------------------------------------------------
# clock skew


@pytest.mark.parametrize(
    ("age", "status"),
    [(0, 200), (59, 200), (60, 200), (61, 401), (3600, 401), (-60, 200), (-61, 401)],
)
def test_the_signature_time_may_be_60_seconds_off_either_way(age, status):
    """t = now - age: a signature 60 s old (or 60 s ahead) passes, 61 s is a replay."""
    c, _ = app_with()
    headers = identity_headers(USER, secret=SECRET, target="/me", now=NOW - age)
    assert c.get("/me", headers=headers).status_code == status


def test_a_captured_request_replayed_later_is_refused():
    c, clock = app_with()
    headers = identity_headers(USER, secret=SECRET, target="/me", now=NOW)
    assert c.get("/me", headers=headers).status_code == 200
    clock.now = NOW + 61
    replay = c.get("/me", headers=headers)
    assert replay.status_code == 401 and replay.json() == {"detail": "Not authenticated"}


@pytest.mark.parametrize(("skew", "age", "status"), [(5, 5, 200), (5, 6, 401), (0, 0, 200), (0, 1, 401), (300, 299, 200)])
def test_the_tolerance_is_configurable(skew, age, status):
    c, _ = app_with(max_skew=skew)
    assert c.get("/me", headers=identity_headers(USER, secret=SECRET, target="/me", now=NOW - age)).status_code == status


def test_the_tolerance_from_the_environment():
    assert GatehouseConfig.from_env({"GATEHOUSE_IDENTITY_MAX_SKEW": "10s", "GATEHOUSE_IDENTITY_SECRET": SECRET}).max_skew == 10
    assert GatehouseConfig.from_env({"GATEHOUSE_IDENTITY_MAX_SKEW": "500ms", "GATEHOUSE_IDENTITY_SECRET": SECRET}).max_skew == 0.5
    assert GatehouseConfig.from_env({"GATEHOUSE_IDENTITY_MAX_SKEW": "2m", "GATEHOUSE_IDENTITY_SECRET": SECRET}).max_skew == 120
    assert GatehouseConfig.from_env({"GATEHOUSE_IDENTITY_MAX_SKEW": "30", "GATEHOUSE_IDENTITY_SECRET": SECRET}).max_skew == 30
    assert GatehouseConfig.from_env({"GATEHOUSE_IDENTITY_SECRET": SECRET}).max_skew == 60
    with pytest.raises(ConfigurationError, match="GATEHOUSE_IDENTITY_MAX_SKEW"):
        GatehouseConfig.from_env({"GATEHOUSE_IDENTITY_MAX_SKEW": "soon", "GATEHOUSE_IDENTITY_SECRET": SECRET})


# ---------------------------------------------------------------------------------------------
# rotation


def test_rotation_both_secrets_verify_a_third_does_not():
    c, _ = app_with(secret=f"{SECRET},{OLD_SECRET}")
    for signer in (SECRET, OLD_SECRET):
        assert c.get("/me", headers=identity_headers(USER, secret=signer, target="/me", now=NOW)).status_code == 200
    assert c.get("/me", headers=identity_headers(USER, secret=OTHER_SECRET, target="/me", now=NOW)).status_code == 401


def test_after_the_rotation_the_old_secret_no_longer_verifies():
    c, _ = app_with(secret=SECRET)
    assert c.get("/me", headers=identity_headers(USER, secret=OLD_SECRET, target="/me", now=NOW)).status_code == 401


def test_the_helper_signs_with_the_first_of_two_secrets_as_gatehouse_does():
    c, _ = app_with(secret=SECRET)
    headers = identity_headers(USER, secret=f"{SECRET},{OLD_SECRET}", target="/me", now=NOW)
    assert c.get("/me", headers=headers).status_code == 200


# ---------------------------------------------------------------------------------------------
# the target and the method, recomputed from the ASGI scope


@pytest.mark.parametrize(
    "target",
    [
        "/items/a%2Fb",
        "/items/caf%C3%A9%20x",
        "/items/caf%c3%a9",
        "/items/%7Euser;v=1",
        "/items/a?x=1&x=2&empty=&flag",
        "/items/q?name=caf%C3%A9+tea",
    ],
)
def test_raw_path_and_query_byte_for_byte(target):
    c, _ = app_with()
    response = c.get(target, headers=identity_headers(USER, secret=SECRET, target=target, now=NOW))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("signed", "sent"),
    [
        ("/items/a%2Fb", "/items/a/b"),  # decoded: another target
        ("/items/a/b", "/items/a%2Fb"),
        ("/items/caf%C3%A9", "/items/caf%c3%a9"),  # escapes are not normalised
        ("/items/a", "/items/b"),
        ("/items/a?x=1", "/items/a?x=2"),
        ("/items/a?x=1", "/items/a"),
        ("/items/a", "/items/a?x=1"),
    ],
)
def test_a_signature_for_one_target_fails_on_another(signed, sent):
    c, _ = app_with()
    assert c.get(sent, headers=identity_headers(USER, secret=SECRET, target=signed, now=NOW)).status_code == 401


def test_an_empty_query_is_the_same_target():
    """ASGI gives no way to tell /items/a? from /items/a: the spec signs both as /items/a."""
    c, _ = app_with()
    assert c.get("/items/a?", headers=identity_headers(USER, secret=SECRET, target="/items/a", now=NOW)).status_code == 200


def test_a_signature_for_one_method_fails_on_another():
    c, _ = app_with()
    headers = identity_headers(USER, secret=SECRET, method="GET", target="/items/a", now=NOW)
    assert c.post("/items/a", headers=headers).status_code == 401
    headers = identity_headers(USER, secret=SECRET, method="POST", target="/items/a", now=NOW)
    assert c.post("/items/a", headers=headers).status_code == 200


def test_websocket_handshakes_are_signed_as_get():
    c, _ = app_with()
    headers = identity_headers(USER, secret=SECRET, method="GET", target="/ws", now=NOW)
    with c.websocket_connect("/ws", headers=headers) as ws:
        assert ws.receive_json() == {"user": "user-42"}


def test_an_unsigned_websocket_handshake_is_refused():
    from starlette.websockets import WebSocketDisconnect

    c, _ = app_with()
    with pytest.raises(WebSocketDisconnect) as closed:
        with c.websocket_connect("/ws", headers={"X-User-Id": "admin"}) as ws:
            ws.receive_json()
    assert closed.value.code == 1008


# ---------------------------------------------------------------------------------------------
# malformed and duplicated headers


@pytest.mark.parametrize(
    "mangle",
    [
        lambda v: v.upper(),  # hex must be lowercase
        lambda v: v.replace("t=", "t= "),
        lambda v: v + ",v1=" + "0" * 64,
        lambda v: v.split(",")[1] + "," + v.split(",")[0],  # order fixed
        lambda v: v[:-1],  # 63 hex digits
        lambda v: v.replace("v1=", "v2="),
        lambda v: "t=1e9," + v.split(",")[1],
        lambda v: "t=-5," + v.split(",")[1],
        lambda v: "",
        lambda v: v + " ",
    ],
)
def test_a_malformed_signature_header_is_refused(mangle):
    c, _ = app_with()
    headers = identity_headers(USER, secret=SECRET, target="/me", now=NOW)
    headers["X-Gatehouse-Signature"] = mangle(headers["X-Gatehouse-Signature"])
    assert c.get("/me", headers=headers).status_code == 401


@pytest.mark.parametrize("name", ["X-User-Id", "X-Auth-Claims", "X-Auth-Method", "X-Request-Id", "X-Gatehouse-Signature"])
def test_a_duplicated_signed_header_is_refused(name):
    """gatehouse strips every identity header clients send: two of one name never come from it."""
    c, _ = app_with()
    headers = identity_headers(USER, secret=SECRET, target="/me", now=NOW)
    pairs = list(headers.items()) + [(name, headers[name])]
    assert c.get("/me", headers=pairs).status_code == 401


def test_headers_outside_the_signature_do_not_matter():
    c, _ = app_with()
    headers = identity_headers(USER, secret=SECRET, target="/me", now=NOW)
    headers.update({"X-Forwarded-For": "10.0.0.1", "Cookie": "a=b", "Authorization": "Bearer xyz"})
    assert c.get("/me", headers=headers).status_code == 200


# ---------------------------------------------------------------------------------------------
# the secret's configuration


@pytest.mark.parametrize("value", ["", "x" * 31, "é" * 15 + "a", f"{SECRET},", f",{SECRET}", f"{SECRET},short"])
def test_a_secret_shorter_than_32_bytes_is_an_error(value):
    with pytest.raises(IdentitySecretError) as error:
        GatehouseConfig.from_env({"GATEHOUSE_IDENTITY_SECRET": value})
    message = str(error.value)
    assert "GATEHOUSE_IDENTITY_SECRET" in message and ("32 bytes" in message or "empty" in message)
    for part in value.split(","):
        assert len(part) < 8 or part not in message, "the value is never shown"


def test_32_bytes_is_enough_counted_in_utf8_bytes():
    assert parse_secrets("x" * 32) == (b"x" * 32,)
    assert parse_secrets("é" * 16) == (("é" * 16).encode(),)
    assert MIN_SECRET_BYTES == 32


def test_three_secrets_are_an_error():
    with pytest.raises(IdentitySecretError, match="3 comma-separated"):
        GatehouseConfig.from_env({"GATEHOUSE_IDENTITY_SECRET": f"{SECRET},{OLD_SECRET},{OTHER_SECRET}"})


def test_spaces_around_the_comma_are_an_error_not_a_silent_other_secret():
    with pytest.raises(IdentitySecretError, match="whitespace") as error:
        GatehouseConfig.from_env({"GATEHOUSE_IDENTITY_SECRET": f"{SECRET}, {OLD_SECRET}"})
    assert OLD_SECRET not in str(error.value) and SECRET not in str(error.value)


def test_the_secret_from_a_file_trailing_newlines_removed(tmp_path):
    path = tmp_path / "identity_secret"
    path.write_bytes(f"{SECRET},{OLD_SECRET}\n\n".encode())
    config = GatehouseConfig.from_env({"GATEHOUSE_IDENTITY_SECRET_FILE": str(path)})
    assert config.secrets == (SECRET.encode(), OLD_SECRET.encode())
    path.write_bytes(f"{SECRET}\r\n".encode())
    assert GatehouseConfig.from_env({"GATEHOUSE_IDENTITY_SECRET_FILE": str(path)}).secrets == (SECRET.encode(),)


def test_secret_file_errors_name_the_variable(tmp_path):
    path = tmp_path / "identity_secret"
    path.write_text("short\n")
    with pytest.raises(IdentitySecretError, match="GATEHOUSE_IDENTITY_SECRET_FILE") as error:
        GatehouseConfig.from_env({"GATEHOUSE_IDENTITY_SECRET_FILE": str(path)})
    assert "short" not in str(error.value).replace("shorter", "")
    with pytest.raises(ConfigurationError, match="GATEHOUSE_IDENTITY_SECRET_FILE: cannot read"):
        GatehouseConfig.from_env({"GATEHOUSE_IDENTITY_SECRET_FILE": str(tmp_path / "missing")})
    with pytest.raises(ConfigurationError, match="not both"):
        GatehouseConfig.from_env({"GATEHOUSE_IDENTITY_SECRET_FILE": str(path), "GATEHOUSE_IDENTITY_SECRET": SECRET})


def test_a_secret_in_code_uses_the_same_rules():
    with pytest.raises(IdentitySecretError, match="shorter than 32 bytes"):
        GatehouseConfig(secret="too-short")
    assert GatehouseConfig(secret=f"{SECRET},{OLD_SECRET}").secrets == (SECRET.encode(), OLD_SECRET.encode())
    assert GatehouseConfig(secret=[SECRET.encode()]).secrets == (SECRET.encode(),)


def test_the_secret_is_never_in_the_repr():
    config = GatehouseConfig(secret=SECRET)
    assert SECRET not in repr(config) and "redacted" in repr(config)


def test_header_configuration_from_the_environment():
    config = GatehouseConfig.from_env(
        {"GATEHOUSE_CLAIM_HEADERS": "X-Org=org.id, X-User-Id=sub", "GATEHOUSE_CLAIMS_HEADER": "", "GATEHOUSE_IDENTITY_SECRET": SECRET}
    )
    assert config.signed_header_names == ("x-org", "x-user-id")
    assert config.claims_header is None
    with pytest.raises(ConfigurationError, match="GATEHOUSE_CLAIM_HEADERS"):
        GatehouseConfig.from_env({"GATEHOUSE_CLAIM_HEADERS": "X-Org", "GATEHOUSE_IDENTITY_SECRET": SECRET})
    with pytest.raises(ConfigurationError, match="GATEHOUSE_CLAIMS_HEADER"):
        GatehouseConfig.from_env({"GATEHOUSE_CLAIMS_HEADER": "Bad Header", "GATEHOUSE_IDENTITY_SECRET": SECRET})
