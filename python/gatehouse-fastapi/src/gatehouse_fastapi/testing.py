"""Test helpers: the headers gatehouse would send, so ``TestClient`` tests need no proxy.

::

    from fastapi.testclient import TestClient
    from gatehouse_fastapi.testing import identity_headers

    SECRET = "test-secret-of-at-least-32-bytes!!"
    app = create_app()          # configured with GatehouseConfig(secret=SECRET), or the env variable

    def test_me():
        headers = identity_headers({"sub": "user-42", "email": "ada@example.com"}, secret=SECRET, target="/me")
        assert TestClient(app).get("/me", headers=headers).json()["id"] == "user-42"

The signature is made by :mod:`gatehouse_fastapi.signature`, the same code that verifies it.
"""

from __future__ import annotations

import base64
import json
import math
import time
import uuid
from collections.abc import Mapping
from typing import Any

from .config import GatehouseConfig
from .signature import canonical_string, parse_secrets, sign, signature_header_value
from .user import GatehouseUser, claim_at

__all__ = ["identity_headers", "header_text"]

_DEFAULTS = GatehouseConfig()


def header_text(value: Any) -> str | None:
    """How gatehouse writes a claim into a claim header: strings as they are, booleans as
    ``true``/``false``, whole numbers without a fraction; anything else (``null``, objects,
    arrays) is not sent (``None``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return None


def _claims_of(user: GatehouseUser | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    if isinstance(user, GatehouseUser):
        claims = dict(user.claims)
        fields: dict[str, Any] = {
            "id": user.id,
            "sub": user.id,
            "email": user.email,
            "emailVerified": user.email_verified,
            "name": user.name,
            "role": user.role,
            "sid": user.session_id,
            "exp": int(user.expires_at.timestamp()) if user.expires_at is not None else None,
        }
        claims.update({key: value for key, value in fields.items() if value is not None})
        return claims, user.auth_method
    claims = dict(user)
    if "sub" not in claims and isinstance(claims.get("id"), str):
        claims["sub"] = claims["id"]
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise ValueError("a user needs a non-empty string `sub` (or `id`) claim")
    return claims, "session" if "sid" in claims else "jwt"


def identity_headers(
    user: GatehouseUser | Mapping[str, Any] | None = None,
    *,
    secret: str | bytes | None = None,
    method: str = "GET",
    target: str | bytes = "/",
    request_id: str | None = None,
    now: float | None = None,
    auth_method: str | None = None,
    config: GatehouseConfig | None = None,
) -> dict[str, str]:
    """The identity headers gatehouse would forward for this request, signed.

    :param user: a :class:`GatehouseUser`, a dict of claims (needs ``sub`` or ``id``), or
        ``None`` for an anonymous request on a public path.
    :param secret: signs with it (``"new,old"``: the first signs, as gatehouse does). Default:
        ``config``'s first secret; with neither, no ``X-Gatehouse-Signature`` is added.
    :param method: the request method the test will use.
    :param target: the path and query exactly as the test client will send them
        (percent-encoded), e.g. ``"/items/a%2Fb?x=1"``.
    :param request_id: ``X-Request-Id`` (default: a random one).
    :param now: the signature's time (Unix seconds; default: now).
    :param auth_method: ``jwt`` or ``session`` (default: the user's, or ``session`` when the
        claims have ``sid``).
    :param config: the claim and claims header names (default: gatehouse's defaults).
    :returns: header name -> value: the claim headers, the claims header, ``X-Auth-Method``,
        ``X-Request-Id`` and ``X-Gatehouse-Signature``. A value that is not ASCII (a non-ASCII
        claim in a claim header) is a ``str`` that gatehouse sends as UTF-8; send such headers
        with ``httpx.Headers(headers, encoding="utf-8")``.
    """
    config = config or _DEFAULTS
    values: dict[str, str] = {}
    method_value = ""
    if user is not None:
        claims, default_method = _claims_of(user)
        method_value = auth_method or default_method
        for name, path in config.claim_headers:
            text = header_text(claim_at(claims, path))
            # gatehouse leaves out values with control characters, removes the spaces around a
            # value (RFC 9110 §5.5: they are no part of it, and HTTP servers strip them), and
            # leaves out what is then empty.
            if text is not None and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
                text = text.strip(" ")
                if text:
                    values.setdefault(name, text)
        if config.claims_header:
            payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            values[config.claims_header] = base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")
    headers = {config.header_names_as_written.get(name, name): value for name, value in values.items()}
    if method_value:
        headers["X-Auth-Method"] = method_value
    rid = request_id if request_id is not None else uuid.uuid4().hex
    headers["X-Request-Id"] = rid
    keys = parse_secrets(secret, "secret") if secret is not None else config.secrets
    if keys:
        t = int(now if now is not None else time.time())
        canonical = canonical_string(
            t=t,
            method=method,
            target=target,
            request_id=rid,
            auth_method=method_value,
            identity_headers=[(name, values.get(name)) for name in config.signed_header_names],
        )
        headers["X-Gatehouse-Signature"] = signature_header_value(t, sign(keys[0], canonical))
    return headers
