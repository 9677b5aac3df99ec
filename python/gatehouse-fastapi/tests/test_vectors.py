"""The package against the shared vectors (Tests/Fixtures/identity-signatures.json), which
gatehouse's Swift tests check too: the two implementations cannot drift apart."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import make_vectors
from gatehouse_fastapi import GatehouseConfig
from gatehouse_fastapi.dependencies import UnsignedRequest, identity_of
from gatehouse_fastapi.signature import (
    Failure,
    canonical_string,
    parse_signature_header,
    sign,
    signature_header_value,
    verify,
)
from gatehouse_fastapi.testing import identity_headers

VECTORS = Path(__file__).resolve().parents[3] / "Tests" / "Fixtures" / "identity-signatures.json"
CASES = json.loads(VECTORS.read_text(encoding="utf-8"))


def config_of(case: dict, clock=None) -> GatehouseConfig:
    return GatehouseConfig(
        secret=case["secret"],
        claim_headers=case["claim_headers"],
        claims_header=case["claims_header"],
        clock=clock or (lambda: float(case["t"])),
    )


def scope_of(case: dict, **changes) -> dict:
    """The ASGI scope uvicorn would build for the request gatehouse forwarded."""
    target = changes.pop("target", case["target"]).encode("utf-8")
    raw_path, _, query = target.partition(b"?")
    headers = [(b"host", b"api"), (b"x-request-id", case["request_id"].encode())]
    if case["auth_method"]:
        headers.append((b"x-auth-method", case["auth_method"].encode()))
    for name, value in case["headers"].items():
        if value is not None:
            headers.append((name.lower().encode(), value.encode("utf-8")))
    headers.append((b"x-gatehouse-signature", case["signature"].encode()))
    scope = {
        "type": "http",
        "method": case["method"],
        "path": raw_path.decode("latin-1"),
        "raw_path": raw_path,
        "query_string": query,
        "headers": headers,
    }
    scope.update(changes)
    return scope


def ids(case: dict) -> str:
    return case["name"].split(":")[0]


def test_the_file_covers_what_both_sides_must_agree_on():
    assert len(CASES) >= 8
    assert any(c["auth_method"] == "" and all(v is None for v in c["headers"].values()) for c in CASES), "anonymous"
    assert any(c["claims_header"] == "" for c in CASES), "no claims header"
    assert any(c["claim_headers"] != make_vectors.DEFAULT_CLAIM_HEADERS for c in CASES), "custom headers"
    assert any("?" in c["target"] for c in CASES), "a query"
    assert any("%" in c["target"].partition("?")[0] for c in CASES), "escapes in the path"
    assert any(any(v and not v.isascii() for v in c["headers"].values()) for c in CASES), "non-ASCII values"
    assert any(None in c["headers"].values() and c["auth_method"] for c in CASES), "an absent header"
    assert {c["method"] for c in CASES} >= {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}


def test_the_file_is_what_the_generator_writes():
    """make_vectors.py (plain hmac, independent of the package) reproduces the file exactly."""
    result = subprocess.run(
        [sys.executable, str(Path(make_vectors.__file__)), "--check"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_canonical_string_and_signature(case):
    config = config_of(case)
    assert config.signed_header_names == tuple(name.lower() for name in case["header_names"])
    canonical = canonical_string(
        t=case["t"],
        method=case["method"],
        target=case["target"],
        request_id=case["request_id"],
        auth_method=case["auth_method"],
        identity_headers=[(name, case["headers"][name]) for name in case["header_names"]],
    )
    assert canonical == case["canonical"].encode("utf-8")
    assert signature_header_value(case["t"], sign(case["secret"], canonical)) == case["signature"]
    assert parse_signature_header(case["signature"]) == tuple(
        part.split("=", 1)[1].encode() for part in case["signature"].split(",")
    )


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_verify_accepts_the_vector(case):
    config = config_of(case)
    reason = verify(
        secrets=config.secrets,
        header=case["signature"].encode(),
        method=case["method"],
        target=case["target"],
        request_id=case["request_id"],
        auth_method=case["auth_method"],
        identity_headers=[(name, case["headers"][name]) for name in case["header_names"]],
        now=float(case["t"]),
        max_skew=60,
    )
    assert reason is None


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_the_request_gatehouse_forwarded_verifies_from_the_asgi_scope(case):
    """Target and method recomputed from the scope (raw path bytes + query), header values
    read from the scope's raw bytes."""
    user = identity_of(scope_of(case), config_of(case))
    if case["auth_method"]:
        assert user is not None and user.auth_method == case["auth_method"]
        expected_id = next(v for n, v in case["headers"].items() if n.lower() == "x-user-id")
        assert user.id == expected_id
    else:
        assert user is None


@pytest.mark.parametrize("case", CASES, ids=ids)
@pytest.mark.parametrize(
    "change",
    ["method", "target", "query", "request id", "auth method", "a header value", "a byte of v1", "the secret"],
)
def test_any_change_breaks_the_signature(case, change):
    scope = scope_of(case)
    config = config_of(case)
    headers = scope["headers"]

    def replace(name: bytes, value: bytes) -> None:
        scope["headers"] = [(n, value if n == name else v) for n, v in headers]
        if name not in dict(headers):
            scope["headers"].append((name, value))

    if change == "method":
        scope["method"] = "POST" if case["method"] != "POST" else "PUT"
    elif change == "target":
        scope["raw_path"] = scope["raw_path"] + b"x"
    elif change == "query":
        scope["query_string"] = scope["query_string"] + b"&y=2" if scope["query_string"] else b"y=2"
    elif change == "request id":
        replace(b"x-request-id", case["request_id"].encode() + b"1")
    elif change == "auth method":
        replace(b"x-auth-method", b"session" if case["auth_method"] != "session" else b"jwt")
    elif change == "a header value":
        name = case["header_names"][-1].lower().encode()
        value = case["headers"][case["header_names"][-1]]
        replace(name, (value or "").encode("utf-8") + b"A")
    elif change == "a byte of v1":
        sig = case["signature"]
        flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
        replace(b"x-gatehouse-signature", flipped.encode())
    elif change == "the secret":
        config = GatehouseConfig(
            secret="x" * 32, claim_headers=case["claim_headers"], claims_header=case["claims_header"],
            clock=lambda: float(case["t"]),
        )
    with pytest.raises(UnsignedRequest) as failure:
        identity_of(scope, config)
    assert str(failure.value) == Failure.MISMATCH


def test_the_testing_helper_signs_what_the_independent_generator_signs():
    """identity_headers() output checked against make_vectors' own canonical string and HMAC."""
    claims = {"sub": "user-42", "email": "zoë@example.com", "name": "Zoë", "level": 2}
    config = GatehouseConfig(claim_headers="X-User-Id=sub,X-User-Email=email,X-Level=level", claims_header="X-Auth-Claims")
    headers = identity_headers(
        claims, secret=make_vectors.SECRET, method="POST", target="/a%2Fb?x=1", request_id="rid-1", now=1796220000,
        config=config,
    )
    expected = make_vectors.case(
        "helper",
        t=1796220000,
        method="POST",
        target="/a%2Fb?x=1",
        request_id="rid-1",
        auth_method="jwt",
        claim_headers="X-User-Id=sub,X-User-Email=email,X-Level=level",
        values={
            "X-User-Id": "user-42",
            "X-User-Email": "zoë@example.com",
            "X-Level": "2",
            "X-Auth-Claims": make_vectors.b64url(claims),
        },
    )
    assert headers == {
        **expected["headers"],
        "X-Auth-Method": "jwt",
        "X-Request-Id": "rid-1",
        "X-Gatehouse-Signature": expected["signature"],
    }
