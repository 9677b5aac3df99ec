"""The identity signature: gatehouse's ``X-Gatehouse-Signature``, byte for byte.

This module is the one implementation of the canonical string, of signing and of verifying
in this package: the FastAPI dependencies verify with it and
:func:`gatehouse_fastapi.testing.identity_headers` signs with it.

gatehouse sends, on every request it forwards::

    X-Gatehouse-Signature: t=<unix seconds>,v1=<64 lowercase hex digits>

``v1`` is HMAC-SHA256, keyed by the secret's UTF-8 bytes, of the canonical string: these
lines, each ending in LF (0x0A), the last one included::

    gatehouse-v1
    <t>                      the same decimal digits as in the header
    <method>                 e.g. GET
    <target>                 raw path bytes as forwarded, plus "?" and the raw query if non-empty
    <request id>             the X-Request-Id value gatehouse sends
    <auth method>            jwt, session, or empty when anonymous
    <name>:<value>           one line per identity header (GATEHOUSE_CLAIM_HEADERS in order, then
                             GATEHOUSE_CLAIMS_HEADER), name lowercased, value as sent ("" if absent)

Nothing is trimmed, escaped or re-encoded.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Union

__all__ = [
    "MIN_SECRET_BYTES",
    "SIGNATURE_HEADER",
    "VERSION",
    "ConfigurationError",
    "IdentitySecretError",
    "Failure",
    "SigningKey",
    "canonical_string",
    "parse_secrets",
    "parse_signature_header",
    "sign",
    "signature_header_value",
    "target_from_scope",
    "verify",
]

#: The header gatehouse signs every forwarded request with (lowercase, as ASGI delivers it).
SIGNATURE_HEADER = "x-gatehouse-signature"
#: The first line of the canonical string.
VERSION = "gatehouse-v1"
#: Each secret must have at least this many bytes (UTF-8), as gatehouse requires.
MIN_SECRET_BYTES = 32

_VERSION_LINE = VERSION.encode("ascii")
_LF = b"\n"
_SIGNATURE_RE = re.compile(rb"t=([0-9]{1,19}),v1=([0-9a-f]{64})")

Text = Union[str, bytes]


class ConfigurationError(ValueError):
    """An environment variable or argument is invalid; the message names it and never shows a
    secret."""


class IdentitySecretError(ConfigurationError):
    """A configured identity secret is not usable (too short, empty, too many, whitespace
    around it)."""


class Failure:
    """Why a request's signature was refused (the reason is for logs, never for clients)."""

    MISSING = "no X-Gatehouse-Signature header"
    MALFORMED = "malformed X-Gatehouse-Signature header"
    DUPLICATE = "a signed header appears more than once"
    STALE = "signature time outside the allowed clock skew"
    MISMATCH = "signature does not match (another secret, target, method or header values)"


def _bytes(value: Text | int, what: str) -> bytes:
    if type(value) is bytes:  # the hot path: everything from an ASGI scope is bytes already
        return value
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value).encode("ascii")
    raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")


def canonical_string(
    *,
    t: int | Text,
    method: Text,
    target: Text,
    request_id: Text,
    auth_method: Text,
    identity_headers: Iterable[tuple[Text, Text | None]],
) -> bytes:
    """The exact bytes gatehouse signs.

    ``identity_headers`` are ``(name, value)`` pairs in signing order (each
    ``GATEHOUSE_CLAIM_HEADERS`` entry in its configured order, then ``GATEHOUSE_CLAIMS_HEADER``);
    a value of ``None`` is an absent header and signs as empty. Names are lowercased here;
    values are used as given (``str`` is encoded as UTF-8). ``t`` is the decimal text of the
    header's ``t`` (an ``int`` is formatted in decimal). A component containing CR or LF (which
    no HTTP request can carry) raises ``ValueError``: each line is one component."""
    head: tuple[bytes, ...]
    if (
        type(t) is bytes
        and type(method) is bytes
        and type(target) is bytes
        and type(request_id) is bytes
        and type(auth_method) is bytes
    ):
        head = (t, method, target, request_id, auth_method)
    else:
        head = (
            _bytes(t, "t"),
            _bytes(method, "method"),
            _bytes(target, "target"),
            _bytes(request_id, "request id"),
            _bytes(auth_method, "auth method"),
        )
    lines = [_VERSION_LINE, *head]
    for name, value in identity_headers:
        if type(name) is not bytes:
            name = _bytes(name, "header name")
        if value is None:
            value = b""
        elif type(value) is not bytes:
            value = _bytes(value, "header value")
        lines.append(name.lower() + b":" + value)
    lines.append(b"")
    data = _LF.join(lines)
    if data.count(_LF) != len(lines) - 1 or b"\r" in data:
        raise ValueError("a component of the canonical string contains a line break")
    return data


_PAD_OUTER = bytes(x ^ 0x5C for x in range(256))
_PAD_INNER = bytes(x ^ 0x36 for x in range(256))


class SigningKey:
    """One secret, prepared for HMAC-SHA256 (RFC 2104) over many messages: the padded key's
    inner and outer SHA-256 states are computed once and copied per message, which costs less
    than half of ``hmac.digest`` (OpenSSL 3 sets up a MAC context on every call)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, secret: Text) -> None:
        key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(key.translate(_PAD_INNER))
        self._outer = hashlib.sha256(key.translate(_PAD_OUTER))

    def hexdigest(self, message: bytes) -> str:
        """Lowercase hex HMAC-SHA256 of ``message``."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def __repr__(self) -> str:
        return "SigningKey(<redacted>)"


def sign(secret: Text | SigningKey, canonical: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of ``canonical`` keyed by ``secret`` (``str`` as UTF-8)."""
    key = secret if isinstance(secret, SigningKey) else SigningKey(secret)
    return key.hexdigest(canonical)


def signature_header_value(t: int, v1: str) -> str:
    """``t=<t>,v1=<v1>``: the value of ``X-Gatehouse-Signature``."""
    return f"t={t},v1={v1}"


def parse_signature_header(value: Text) -> tuple[bytes, bytes] | None:
    """``(t digits, v1 hex)`` of an ``X-Gatehouse-Signature`` value, or ``None`` when it is not
    exactly ``t=<decimal>,v1=<64 lowercase hex>``."""
    data = value.encode("latin-1") if isinstance(value, str) else value
    match = _SIGNATURE_RE.fullmatch(data)
    if match is None:
        return None
    return match.group(1), match.group(2)


def target_from_scope(scope: Mapping[str, Any]) -> bytes:
    """The request target as gatehouse forwarded it, from an ASGI scope:
    ``raw_path`` + ``?`` + ``query_string`` (the ``?`` only with a non-empty query).

    ``raw_path`` keeps percent-encoding exactly as received. A server that does not provide it
    (it is optional in ASGI) falls back to the decoded ``path``, which differs from the signed
    target when the path had escapes; uvicorn, hypercorn and Starlette's TestClient provide it."""
    raw_path: bytes | None = scope.get("raw_path")
    if raw_path is None:
        raw_path = str(scope.get("path", "")).encode("utf-8")
    query: bytes = scope.get("query_string") or b""
    return raw_path + b"?" + query if query else raw_path


def verify(
    *,
    secrets: Sequence[bytes | SigningKey],
    header: bytes | None,
    method: Text,
    target: Text,
    request_id: Text,
    auth_method: Text,
    identity_headers: Iterable[tuple[Text, Text | None]],
    now: float,
    max_skew: float,
) -> str | None:
    """Checks one request's ``X-Gatehouse-Signature`` value (``header``, ``None`` if absent).

    Returns ``None`` when it is valid — ``|now - t| <= max_skew`` and ``v1`` equals the HMAC
    under one of ``secrets`` (raw secrets or prepared :class:`SigningKey` s; compared in
    constant time) — else the reason (a :class:`Failure` constant) for the log."""
    if header is None:
        return Failure.MISSING
    parsed = parse_signature_header(header)
    if parsed is None:
        return Failure.MALFORMED
    t, mac = parsed
    if abs(now - int(t)) > max_skew:
        return Failure.STALE
    canonical = canonical_string(
        t=t,
        method=method,
        target=target,
        request_id=request_id,
        auth_method=auth_method,
        identity_headers=identity_headers,
    )
    expected = mac.decode("ascii")
    for secret in secrets:
        key = secret if isinstance(secret, SigningKey) else SigningKey(secret)
        if hmac.compare_digest(key.hexdigest(canonical), expected):
            return None
    return Failure.MISMATCH


def parse_secrets(value: Text, source: str = "GATEHOUSE_IDENTITY_SECRET") -> tuple[bytes, ...]:
    """One secret, or two separated by a comma during a rotation (the first is the one
    gatehouse signs with; both verify). Each must be at least :data:`MIN_SECRET_BYTES` bytes
    and must not start or end with whitespace (``"new, old"`` would otherwise silently make the
    second secret `` old``). Raises :class:`IdentitySecretError` naming ``source``, never
    showing the value."""
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)
    expected = (
        f"expected one secret of at least {MIN_SECRET_BYTES} bytes, "
        "or two separated by a comma during a rotation (the first signs)"
    )
    if not data:
        raise IdentitySecretError(f"{source} is empty; {expected}")
    parts = data.split(b",")
    if len(parts) > 2:
        raise IdentitySecretError(f"{source} holds {len(parts)} comma-separated secrets; {expected}")
    for index, part in enumerate(parts, 1):
        which = "the secret" if len(parts) == 1 else f"secret {index} of 2"
        if len(part) < MIN_SECRET_BYTES:
            raise IdentitySecretError(
                f"{source}: {which} is shorter than {MIN_SECRET_BYTES} bytes (value not shown); {expected}"
            )
        if part != part.strip():
            raise IdentitySecretError(
                f"{source}: {which} starts or ends with whitespace (value not shown); "
                "write the secrets without spaces around the comma"
            )
    return tuple(parts)
