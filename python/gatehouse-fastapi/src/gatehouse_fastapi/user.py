"""``GatehouseUser``: the verified identity gatehouse forwarded, and how it is read from the
headers."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, Field

__all__ = ["GatehouseUser", "IdentityError", "claim_at", "claim_matches", "user_from_headers"]


class IdentityError(ValueError):
    """The identity headers cannot be read (the claims header is not base64url JSON)."""


class GatehouseUser(BaseModel):
    """The user gatehouse verified for this request.

    The fields come from the claims (the JWT payload, or for a Better Auth session the user
    object plus ``sub``, ``sid`` and ``exp``); ``claims`` holds all of them."""

    id: str = Field(description="The user's id: the `sub` claim (Better Auth's user id).")
    email: str | None = Field(default=None, description="The `email` claim.")
    email_verified: bool | None = Field(default=None, description="The `emailVerified` claim.")
    name: str | None = Field(default=None, description="The `name` claim.")
    role: str | None = Field(
        default=None,
        description="The `role` claim (Better Auth's admin plugin); an array of roles is joined with commas.",
    )
    auth_method: str = Field(
        default="jwt", description="`jwt` or `session`: which kind of credential gatehouse verified (X-Auth-Method)."
    )
    session_id: str | None = Field(default=None, description="The `sid` claim: the Better Auth session's id (sessions only).")
    expires_at: datetime | None = Field(
        default=None, description="The `exp` claim as a UTC datetime: when the token or session expires."
    )
    claims: dict[str, Any] = Field(default_factory=dict, description="Every verified claim.")

    def has_role(self, role: str) -> bool:
        """Whether the ``role`` claim is ``role``, or an array containing it (gatehouse's
        ``role=...`` rule)."""
        return claim_matches(self.claims, "role", role)


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The claim at a dot path (``org.id``), or ``None``."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def claim_matches(claims: Mapping[str, Any], path: str, expected: str | bool | int | float) -> bool:
    """gatehouse's ``GATEHOUSE_RULES`` requirement ``path=expected``:

    - a string matches the claim string, or an element of a claim array;
    - a boolean matches the claim boolean, or the string ``"true"``/``"false"``;
    - a number matches a claim number (not a boolean) of equal value.

    A missing claim, ``null`` or an object never matches."""
    value = claim_at(claims, path)
    if value is None or isinstance(value, Mapping):
        return False
    if isinstance(expected, bool):
        if isinstance(value, bool):
            return value is expected
        return isinstance(value, str) and value == ("true" if expected else "false")
    if isinstance(expected, (int, float)):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value == expected
    if isinstance(value, str):
        return value == expected
    if isinstance(value, list):
        return any(isinstance(item, str) and item == expected for item in value)
    return False


def decode_claims(value: bytes) -> dict[str, Any]:
    """The claims header: base64url (padding optional) of a JSON object."""
    try:
        decoded = base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))
        claims = json.loads(decoded)
    except (binascii.Error, ValueError) as exc:
        raise IdentityError(f"the claims header is not base64url JSON ({exc.__class__.__name__})") from None
    if not isinstance(claims, dict):
        raise IdentityError("the claims header is not a JSON object")
    return claims


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def user_from_headers(
    headers: Mapping[bytes, bytes],
    claim_headers: tuple[tuple[str, str], ...],
    claims_header: str | None,
) -> GatehouseUser | None:
    """The user the (already trusted) identity headers describe, or ``None`` when the request is
    anonymous (no user id).

    ``claims`` is the claims header decoded; without a claims header (``GATEHOUSE_CLAIMS_HEADER``
    empty, or an older gatehouse), the claims are rebuilt from the claim headers (string values
    at their dot paths). ``id`` is ``claims["sub"]``, else the header mapped to ``sub``."""
    raw_claims = headers.get(claims_header.encode("latin-1")) if claims_header else None
    claims: dict[str, Any]
    if raw_claims:
        claims = decode_claims(raw_claims)
    else:
        claims = {}
        for name, path in claim_headers:
            raw = headers.get(name.encode("latin-1"))
            if raw is None or raw == b"":
                continue
            node = claims
            *parents, leaf = path.split(".")
            for part in parents:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
            node.setdefault(leaf, raw.decode("utf-8", "replace"))
    user_id = claims.get("sub")
    if not isinstance(user_id, str) or not user_id:
        user_id = None
        for name, path in claim_headers:
            if path == "sub":
                raw = headers.get(name.encode("latin-1"))
                if raw:
                    user_id = raw.decode("utf-8", "replace")
                    break
    if not user_id:
        return None
    method = headers.get(b"x-auth-method")
    role = claims.get("role")
    if isinstance(role, list) and all(isinstance(r, str) for r in role):
        role = ",".join(role)
    verified = claims.get("emailVerified")
    exp = claims.get("exp")
    expires_at = None
    if isinstance(exp, (int, float)) and not isinstance(exp, bool):
        try:
            expires_at = datetime.fromtimestamp(exp, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            expires_at = None
    return GatehouseUser(
        id=user_id,
        email=_text(claims.get("email")),
        email_verified=verified if isinstance(verified, bool) else None,
        name=_text(claims.get("name")),
        role=_text(role),
        # An older gatehouse (before sessions) sent no X-Auth-Method: it verified JWTs only.
        auth_method=method.decode("latin-1") if method else "jwt",
        session_id=_text(claims.get("sid")),
        expires_at=expires_at,
        claims=claims,
    )
