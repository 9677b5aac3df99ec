"""Configuration: the identity secret(s), the identity header names, the clock tolerance.

Read from the same environment variables as gatehouse (so one Compose or Kubernetes secret
configures both), or given in code::

    GatehouseConfig.from_env()                      # what the dependencies use by default
    GatehouseConfig(secret="...", max_skew=30)      # explicit, nothing read from the environment
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

from .signature import ConfigurationError, SigningKey, parse_secrets

__all__ = [
    "DEFAULT_CLAIM_HEADERS",
    "DEFAULT_CLAIMS_HEADER",
    "DEFAULT_MAX_SKEW",
    "ConfigurationError",
    "GatehouseConfig",
    "parse_claim_headers",
]

logger = logging.getLogger("gatehouse_fastapi")

#: gatehouse's default ``GATEHOUSE_CLAIM_HEADERS``.
DEFAULT_CLAIM_HEADERS = "X-User-Id=sub,X-User-Email=email"
#: gatehouse's default ``GATEHOUSE_CLAIMS_HEADER``.
DEFAULT_CLAIMS_HEADER = "X-Auth-Claims"
#: Seconds a signature's ``t`` may differ from the app's clock, either way.
DEFAULT_MAX_SKEW = 60.0
#: At most one "without a valid signature" warning per this many seconds.
WARNING_INTERVAL = 60.0

_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DURATION_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_MAX_SECRET_FILE_BYTES = 64 * 1024

UNSIGNED_WARNING = "identity headers without a valid gatehouse signature — is the app reachable around the proxy?"


ClaimHeaders = Union[str, Iterable[tuple[str, str]]]


def parse_claim_headers(text: str, source: str = "GATEHOUSE_CLAIM_HEADERS") -> tuple[tuple[str, str], ...]:
    """``Header=claim.path`` pairs, comma-separated, as gatehouse reads ``GATEHOUSE_CLAIM_HEADERS``
    (spaces around names ignored, empty items skipped, empty text = no claim headers).
    Returns ``(header name, claim path)`` pairs with the name as written."""
    pairs: list[tuple[str, str]] = []
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, path = item.partition("=")
        name, path = name.strip(" "), path.strip(" ")
        if not sep or not _TOKEN_RE.fullmatch(name) or not path or any(not p for p in path.split(".")):
            raise ConfigurationError(
                f"{source}: invalid value {text!r}; expected a comma list of Header=claim.path "
                "such as X-User-Id=sub,X-Org=org.id"
            )
        pairs.append((name, path))
    return tuple(pairs)


def _parse_duration(text: str, source: str) -> float:
    match = _DURATION_RE.fullmatch(text.strip())
    if match is None:
        raise ConfigurationError(
            f"{source}: invalid value {text!r}; expected a duration such as 500ms, 30s or 2m "
            "(a bare number means seconds)"
        )
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


class GatehouseConfig:
    """How the dependencies read and check what gatehouse sends.

    :param secret: ``GATEHOUSE_IDENTITY_SECRET``'s syntax: one secret, or ``"new,old"`` during a
        rotation (both verify); ``str`` (UTF-8) or ``bytes``. ``None``: no signature check —
        identity headers are trusted as they arrive, which is safe only when nothing but
        gatehouse can reach the app.
    :param claim_headers: ``GATEHOUSE_CLAIM_HEADERS`` as text, or ``(header, claim path)``
        pairs; must be the same as gatehouse's (the signature covers them in this order).
    :param claims_header: ``GATEHOUSE_CLAIMS_HEADER``; ``None`` or ``""`` when gatehouse sends none.
    :param max_skew: seconds a signature's time may be off from ``clock()``, either way. A
        captured request replayed later than this is refused.
    :param clock: returns the current Unix time in seconds (tests may pass a fake one).
    """

    __slots__ = (
        "secrets",
        "claim_headers",
        "claims_header",
        "max_skew",
        "clock",
        "signed_header_names",
        "header_names_as_written",
        "_signed_names",
        "_keys",
        "_wanted",
        "_lock",
        "_last_warning",
    )

    def __init__(
        self,
        *,
        secret: str | bytes | Sequence[bytes] | None = None,
        claim_headers: ClaimHeaders = DEFAULT_CLAIM_HEADERS,
        claims_header: str | None = DEFAULT_CLAIMS_HEADER,
        max_skew: float = DEFAULT_MAX_SKEW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if secret is None:
            secrets: tuple[bytes, ...] = ()
        elif isinstance(secret, (str, bytes)):
            secrets = parse_secrets(secret, "secret")
        else:
            secrets = tuple(bytes(s) for s in secret)
            if not 1 <= len(secrets) <= 2:
                raise ConfigurationError("secret: expected one secret, or two during a rotation")
            parse_secrets(b",".join(secrets), "secret")
        #: The secrets signatures are checked against (the first is the one gatehouse signs with).
        self.secrets = secrets
        self._keys = tuple(SigningKey(s) for s in secrets)
        pairs = parse_claim_headers(claim_headers, "claim_headers") if isinstance(claim_headers, str) else tuple(
            (str(name), str(path)) for name, path in claim_headers
        )
        for name, path in pairs:
            if not _TOKEN_RE.fullmatch(name) or not path or any(not p for p in path.split(".")):
                raise ConfigurationError(f"claim_headers: invalid entry {name!r}={path!r}")
        #: ``(lowercased header name, claim path)`` in gatehouse's order.
        self.claim_headers: tuple[tuple[str, str], ...] = tuple((name.lower(), path) for name, path in pairs)
        if claims_header is not None and claims_header != "" and not _TOKEN_RE.fullmatch(claims_header):
            raise ConfigurationError(f"claims_header: invalid header name {claims_header!r}")
        #: The lowercased claims header name, or ``None``.
        self.claims_header: str | None = claims_header.lower() if claims_header else None
        if not (max_skew >= 0):
            raise ConfigurationError(f"max_skew must be a number of seconds >= 0, not {max_skew!r}")
        self.max_skew = float(max_skew)
        self.clock = clock
        #: Lowercased name -> the name as configured (how :mod:`gatehouse_fastapi.testing` sends it).
        self.header_names_as_written: dict[str, str] = {name.lower(): name for name, _ in pairs}
        if claims_header:
            self.header_names_as_written.setdefault(claims_header.lower(), claims_header)
        #: The identity header names the signature covers, lowercased, in signing order.
        self.signed_header_names: tuple[str, ...] = tuple(name for name, _ in self.claim_headers) + (
            (self.claims_header,) if self.claims_header else ()
        )
        self._signed_names = tuple(name.encode("latin-1") for name in self.signed_header_names)
        self._wanted = frozenset(
            name.encode("latin-1")
            for name in (*self.signed_header_names, "x-auth-method", "x-request-id", "x-gatehouse-signature")
        )
        self._lock = threading.Lock()
        self._last_warning: float | None = None

    @property
    def verifies_signature(self) -> bool:
        """Whether a secret is configured (requests need a valid signature)."""
        return bool(self.secrets)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> GatehouseConfig:
        """Reads gatehouse's variables: ``GATEHOUSE_IDENTITY_SECRET`` or
        ``GATEHOUSE_IDENTITY_SECRET_FILE`` (the file's content, trailing line breaks removed;
        not both), ``GATEHOUSE_CLAIM_HEADERS``, ``GATEHOUSE_CLAIMS_HEADER`` (empty = none), and
        the package's own ``GATEHOUSE_IDENTITY_MAX_SKEW`` (a duration, default ``60s``).
        Keyword arguments override what the environment says (``clock=...``, ``max_skew=...``).

        Raises :class:`~gatehouse_fastapi.signature.ConfigurationError` (an
        :class:`~gatehouse_fastapi.signature.IdentitySecretError` for a bad secret) naming the
        variable."""
        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = {}
        if "secret" not in overrides:
            secret, source = _secret_from_env(env)
            if secret is None:
                _warn_unsigned_once()
            else:
                kwargs["secret"] = parse_secrets(secret, source)
        if "claim_headers" not in overrides:
            kwargs["claim_headers"] = parse_claim_headers(env.get("GATEHOUSE_CLAIM_HEADERS", DEFAULT_CLAIM_HEADERS))
        if "claims_header" not in overrides:
            claims_header = env.get("GATEHOUSE_CLAIMS_HEADER", DEFAULT_CLAIMS_HEADER)
            if claims_header and not _TOKEN_RE.fullmatch(claims_header):
                raise ConfigurationError(
                    f"GATEHOUSE_CLAIMS_HEADER: invalid value {claims_header!r}; expected a header name or empty for none"
                )
            kwargs["claims_header"] = claims_header or None
        if "max_skew" not in overrides and "GATEHOUSE_IDENTITY_MAX_SKEW" in env:
            kwargs["max_skew"] = _parse_duration(env["GATEHOUSE_IDENTITY_MAX_SKEW"], "GATEHOUSE_IDENTITY_MAX_SKEW")
        kwargs.update(overrides)
        return cls(**kwargs)

    def warn_unsigned(self, reason: str) -> bool:
        """Logs :data:`UNSIGNED_WARNING` (with ``reason``) unless it was logged less than a minute
        ago by ``clock()``; returns whether it logged."""
        now = self.clock()
        with self._lock:
            if self._last_warning is not None and 0 <= now - self._last_warning < WARNING_INTERVAL:
                return False
            self._last_warning = now
        logger.warning("%s (%s; at most one such warning per minute)", UNSIGNED_WARNING, reason)
        return True

    def __repr__(self) -> str:
        secrets = f"<{len(self.secrets)} secret(s) redacted>" if self.secrets else "None"
        return (
            f"GatehouseConfig(secret={secrets}, claim_headers={self.claim_headers!r}, "
            f"claims_header={self.claims_header!r}, max_skew={self.max_skew!r})"
        )


def _secret_from_env(env: Mapping[str, str]) -> tuple[str | bytes | None, str]:
    direct = env.get("GATEHOUSE_IDENTITY_SECRET")
    path = env.get("GATEHOUSE_IDENTITY_SECRET_FILE")
    if direct is not None and path is not None:
        raise ConfigurationError(
            "GATEHOUSE_IDENTITY_SECRET_FILE: set either it or GATEHOUSE_IDENTITY_SECRET, not both"
        )
    if direct is not None:
        return direct, "GATEHOUSE_IDENTITY_SECRET"
    if path is not None:
        try:
            with Path(path).open("rb") as handle:
                data = handle.read(_MAX_SECRET_FILE_BYTES + 1)
        except OSError as exc:
            raise ConfigurationError(f"GATEHOUSE_IDENTITY_SECRET_FILE: cannot read {path!r} ({exc.strerror})") from None
        if len(data) > _MAX_SECRET_FILE_BYTES:
            raise ConfigurationError(f"GATEHOUSE_IDENTITY_SECRET_FILE: {path!r} is larger than 64 KiB")
        return data.rstrip(b"\r\n"), "GATEHOUSE_IDENTITY_SECRET_FILE"
    return None, "GATEHOUSE_IDENTITY_SECRET"


_unsigned_warned = False


def _warn_unsigned_once() -> None:
    global _unsigned_warned
    if not _unsigned_warned:
        _unsigned_warned = True
        logger.warning(
            "GATEHOUSE_IDENTITY_SECRET is not set: identity headers are trusted without a signature check; "
            "make sure nothing but gatehouse can reach this app"
        )

