"""Writes Tests/Fixtures/identity-signatures.json: the X-Gatehouse-Signature vectors shared by
gatehouse's Swift tests and this package's tests.

Deliberately independent of gatehouse_fastapi: the canonical string is assembled here from the
specification (issue #15) with plain string operations, and signed with hmac/hashlib, so a bug
in the package cannot hide in its own expected values.

    python python/gatehouse-fastapi/tests/make_vectors.py           # rewrite the file
    python python/gatehouse-fastapi/tests/make_vectors.py --check   # exit 1 if it is out of date

Each case:
    name            what it exercises
    secret          the signing secret (UTF-8; the HMAC key is its bytes)
    t, method, target, request_id, auth_method
                    as gatehouse forwards them ("" auth_method: anonymous)
    claim_headers   GATEHOUSE_CLAIM_HEADERS as configured
    claims_header   GATEHOUSE_CLAIMS_HEADER as configured ("" = none)
    header_names    the identity headers the signature covers, as configured, in signing order
    headers         value of each of header_names as sent, null when gatehouse sends none
    canonical       the exact string signed (UTF-8)
    signature       the X-Gatehouse-Signature value
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[3] / "Tests" / "Fixtures" / "identity-signatures.json"

DEFAULT_CLAIM_HEADERS = "X-User-Id=sub,X-User-Email=email"
DEFAULT_CLAIMS_HEADER = "X-Auth-Claims"
SECRET = "0123456789abcdef0123456789abcdef"


def b64url(obj: dict) -> str:
    data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def names_of(claim_headers: str, claims_header: str) -> list[str]:
    names = [item.split("=", 1)[0].strip() for item in claim_headers.split(",") if item.strip()]
    return names + ([claims_header] if claims_header else [])


def case(
    name: str,
    *,
    t: int,
    method: str,
    target: str,
    request_id: str,
    auth_method: str,
    values: dict[str, str | None],
    secret: str = SECRET,
    claim_headers: str = DEFAULT_CLAIM_HEADERS,
    claims_header: str = DEFAULT_CLAIMS_HEADER,
) -> dict:
    header_names = names_of(claim_headers, claims_header)
    assert set(values) == set(header_names), (name, values, header_names)
    canonical = "gatehouse-v1\n" + f"{t}\n{method}\n{target}\n{request_id}\n{auth_method}\n"
    for header in header_names:
        value = values[header]
        canonical += f"{header.lower()}:{'' if value is None else value}\n"
    mac = hmac.new(secret.encode("utf-8"), canonical.encode("utf-8"), hashlib.sha256).hexdigest()
    return {
        "name": name,
        "secret": secret,
        "t": t,
        "method": method,
        "target": target,
        "request_id": request_id,
        "auth_method": auth_method,
        "claim_headers": claim_headers,
        "claims_header": claims_header,
        "header_names": header_names,
        "headers": {header: values[header] for header in header_names},
        "canonical": canonical,
        "signature": f"t={t},v1={mac}",
    }


def cases() -> list[dict]:
    session_claims = {
        "id": "Vq1wT2yH7pLx0aBcDeFgHiJkLmNoPqRs",
        "name": "Grace Hopper",
        "email": "grace@example.com",
        "emailVerified": True,
        "image": None,
        "createdAt": "2025-11-08T13:00:00.417Z",
        "updatedAt": "2025-12-08T12:00:00.052Z",
        "role": "admin",
        "sub": "Vq1wT2yH7pLx0aBcDeFgHiJkLmNoPqRs",
        "sid": "s3SsIoNiDaBcDeFgHiJkLmNoPqRsTuVw",
        "exp": 1796824800,
    }
    unicode_claims = {"sub": "user-ü-7", "email": "zoë@exämple.com", "name": "Zoë Ünïcödé 日本語 🚀"}
    org_claims = {"sub": "user-9", "role": ["user", "admin"], "org": {"id": "org_42", "plan": "team"}}
    return [
        case(
            "spec example: default headers, an escaped slash and a query",
            t=1796220000,
            method="GET",
            target="/items/a%2Fb?x=1",
            request_id="req-123",
            auth_method="jwt",
            values={"X-User-Id": "user-42", "X-User-Email": "ada@example.com", "X-Auth-Claims": "eyJzdWIiOiJ1c2VyLTQyIn0"},
        ),
        case(
            "percent-encoded raw path kept byte for byte (escapes in both cases, %2e, ;), session",
            t=1796220001,
            method="POST",
            target="/files/%E2%82%AC%20report%3bv%3D1/a%2e%2E/x;y=1",
            request_id="7f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f",
            auth_method="session",
            values={
                "X-User-Id": session_claims["sub"],
                "X-User-Email": session_claims["email"],
                "X-Auth-Claims": b64url(session_claims),
            },
        ),
        case(
            "query with repeated, empty and valueless parameters, and an upstream path prefix",
            t=1796220002,
            method="GET",
            target="/v1/search?q=caf%C3%A9&q=tea&empty=&flag&plus=a+b",
            request_id="req.search:01",
            auth_method="jwt",
            values={"X-User-Id": "user-42", "X-User-Email": "ada@example.com", "X-Auth-Claims": b64url({"sub": "user-42"})},
        ),
        case(
            "non-ASCII UTF-8 header values (raw bytes, not escaped)",
            t=1796220003,
            method="PUT",
            target="/profile",
            request_id="req-utf8",
            auth_method="jwt",
            claim_headers="X-User-Id=sub,X-User-Email=email,X-User-Name=name",
            values={
                "X-User-Id": unicode_claims["sub"],
                "X-User-Email": unicode_claims["email"],
                "X-User-Name": unicode_claims["name"],
                "X-Auth-Claims": b64url(unicode_claims),
            },
        ),
        case(
            "anonymous request on a public path: empty auth method, every identity header absent",
            t=1796220004,
            method="GET",
            target="/docs?x=1",
            request_id="anon-1",
            auth_method="",
            values={"X-User-Id": None, "X-User-Email": None, "X-Auth-Claims": None},
        ),
        case(
            "custom header configuration: other names and order, dot paths, spaces in the list",
            t=1796220005,
            method="DELETE",
            target="/orgs/org_42/members/user-9",
            request_id="del-9",
            auth_method="jwt",
            claim_headers="X-Org=org.id, X-Role=role,X-User-Id=sub , X-Plan=org.plan",
            claims_header="X-Verified-Claims",
            values={
                "X-Org": "org_42",
                # an array claim is not a header value: gatehouse sends no X-Role
                "X-Role": None,
                "X-User-Id": "user-9",
                "X-Plan": "team",
                "X-Verified-Claims": b64url(org_claims),
            },
        ),
        case(
            "no claims header (GATEHOUSE_CLAIMS_HEADER empty), a claim header absent (no email claim)",
            t=1796220006,
            method="PATCH",
            target="/items/7",
            request_id="patch-7",
            auth_method="jwt",
            claims_header="",
            values={"X-User-Id": "user-7", "X-User-Email": None},
        ),
        case(
            "WebSocket handshake: signed as the GET it is",
            t=1796220007,
            method="GET",
            target="/ws/echo?room=1",
            request_id="ws-1",
            auth_method="session",
            values={"X-User-Id": "user-42", "X-User-Email": "ada@example.com", "X-Auth-Claims": b64url({"sub": "user-42", "sid": "s1"})},
        ),
        case(
            "custom method, a request id of 128 characters, a non-ASCII secret",
            t=1796220008,
            method="PURGE",
            target="/cache/%7Euser/",
            request_id=("Az09-_.:" * 16),
            auth_method="jwt",
            secret="clé-secrète-de-rotation-ünïcödé-0123456789abcdef",
            values={"X-User-Id": "user-42", "X-User-Email": "ada@example.com", "X-Auth-Claims": b64url({"sub": "user-42"})},
        ),
        case(
            "empty query: a request for /a? is signed as /a (ASGI cannot tell them apart)",
            t=1796220009,
            method="HEAD",
            target="/a",
            request_id="head-1",
            auth_method="",
            values={"X-User-Id": None, "X-User-Email": None, "X-Auth-Claims": None},
        ),
    ]


def render() -> str:
    return json.dumps(cases(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {len(cases())} cases to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
