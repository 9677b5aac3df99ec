"""The FastAPI dependencies: ``CurrentUser``, ``OptionalUser`` and ``require(...)``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, Optional, Union

from fastapi import Depends, FastAPI, HTTPException, WebSocketException, status
from fastapi.security import HTTPBearer
from starlette.requests import HTTPConnection

from .config import GatehouseConfig
from .signature import Failure, target_from_scope, verify
from .user import GatehouseUser, IdentityError, claim_matches, user_from_headers

__all__ = [
    "CurrentUser",
    "OptionalUser",
    "configure",
    "get_config",
    "gatehouse_bearer",
    "optional_user",
    "current_user",
    "require",
]

logger = logging.getLogger("gatehouse_fastapi")

#: gatehouse's challenge for a request without a credential (RFC 6750 §3).
CHALLENGE = 'Bearer realm="gatehouse"'
#: gatehouse's challenge for a verified user who fails a rule (RFC 6750 §3.1).
INSUFFICIENT_SCOPE_CHALLENGE = 'Bearer realm="gatehouse", error="insufficient_scope"'


class GatehouseBearer(HTTPBearer):
    """The bearer security scheme, declared for OpenAPI only: FastAPI's ``/docs`` shows the
    lock and its "Authorize" button sends ``Authorization: Bearer <token>``, which gatehouse
    verifies (and forwards). The app itself never looks at the token: it trusts what gatehouse
    verified. Works for HTTP and WebSocket routes alike."""

    def __init__(self) -> None:
        super().__init__(
            auto_error=False,
            scheme_name="gatehouse",
            description=(
                "A Better Auth JWT (or session token, when gatehouse accepts sessions). gatehouse "
                "verifies it and forwards the verified identity; open the docs through gatehouse."
            ),
        )

    async def __call__(self, conn: HTTPConnection) -> None:  # type: ignore[override,unused-ignore]
        return None


#: The sub-dependency that puts the bearer scheme into the OpenAPI document.
gatehouse_bearer = GatehouseBearer()

_default_config: GatehouseConfig | None = None
_default_lock = threading.Lock()


def _env_config() -> GatehouseConfig:
    global _default_config
    config = _default_config
    if config is None:
        with _default_lock:
            if _default_config is None:
                _default_config = GatehouseConfig.from_env()
            config = _default_config
    return config


def _reset_default_config() -> None:
    """Forgets the configuration read from the environment (for tests that change it)."""
    global _default_config
    with _default_lock:
        _default_config = None


def configure(app: FastAPI, config: GatehouseConfig | None = None) -> GatehouseConfig:
    """Sets the configuration the dependencies use for ``app`` (``app.state.gatehouse``):
    ``config``, else :meth:`GatehouseConfig.from_env`. Call it at import time so a bad secret
    stops the app at startup instead of failing requests. Without it, the dependencies read the
    environment on first use."""
    config = config if config is not None else GatehouseConfig.from_env()
    app.state.gatehouse = config
    return config


def get_config(conn: HTTPConnection) -> GatehouseConfig:
    """The configuration for this request's app: ``app.state.gatehouse`` if set (see
    :func:`configure`), else the one read from the environment."""
    app = conn.scope.get("app")
    state = getattr(app, "state", None)
    config = getattr(state, "gatehouse", None) if state is not None else None
    if isinstance(config, GatehouseConfig):
        return config
    return _env_config()


def _unauthenticated(conn: HTTPConnection) -> Exception:
    if conn.scope["type"] == "websocket":
        return WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason="Not authenticated")
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED, detail="Not authenticated", headers={"WWW-Authenticate": CHALLENGE}
    )


def _forbidden(conn: HTTPConnection) -> Exception:
    if conn.scope["type"] == "websocket":
        return WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason="Forbidden")
    return HTTPException(
        status_code=status.HTTP_403_FORBIDDEN,
        detail="Forbidden",
        headers={"WWW-Authenticate": INSUFFICIENT_SCOPE_CHALLENGE},
    )


def identity_of(scope: Mapping[str, Any], config: GatehouseConfig) -> GatehouseUser | None:
    """The verified user of an ASGI scope (``None``: anonymous), the core of the dependencies.

    With a secret configured, ``X-Gatehouse-Signature`` is checked first, and any failure —
    no signature, a wrong one, an old one, a duplicated signed header — raises
    :class:`UnsignedRequest` before a single identity header is read."""
    wanted = config._wanted
    headers: dict[bytes, bytes] = {}
    duplicate = False
    for name, value in scope["headers"]:
        if name in wanted:
            if name in headers:
                duplicate = True
            headers[name] = value
    if config.secrets:
        if duplicate:
            reason: str | None = Failure.DUPLICATE
        else:
            reason = verify(
                secrets=config._keys,
                header=headers.get(b"x-gatehouse-signature"),
                # A WebSocket handshake is a GET; ASGI's websocket scope has no method.
                method=scope.get("method", "GET").encode("latin-1"),
                target=target_from_scope(scope),
                request_id=headers.get(b"x-request-id", b""),
                auth_method=headers.get(b"x-auth-method", b""),
                identity_headers=[(key, headers.get(key)) for key in config._signed_names],
                now=config.clock(),
                max_skew=config.max_skew,
            )
        if reason is not None:
            raise UnsignedRequest(reason)
    return user_from_headers(headers, config.claim_headers, config.claims_header)


class UnsignedRequest(Exception):
    """The request has no valid gatehouse signature (the argument says why)."""


async def optional_user(
    conn: HTTPConnection, _bearer: Annotated[None, Depends(gatehouse_bearer)] = None
) -> GatehouseUser | None:
    """The verified user, or ``None`` for a request gatehouse forwarded anonymously (a public
    or optional path). With a secret configured, a request without a valid signature gets 401."""
    config = get_config(conn)
    try:
        return identity_of(conn.scope, config)
    except UnsignedRequest as exc:
        config.warn_unsigned(str(exc))
        raise _unauthenticated(conn) from None
    except IdentityError as exc:
        logger.warning("unreadable identity headers: %s", exc)
        raise _unauthenticated(conn) from None


#: The verified user, or ``None`` when the request came through gatehouse anonymously.
OptionalUser = Annotated[Optional[GatehouseUser], Depends(optional_user)]


async def current_user(conn: HTTPConnection, user: OptionalUser) -> GatehouseUser:
    """The verified user; 401 ``{"detail":"Not authenticated"}`` with
    ``WWW-Authenticate: Bearer realm="gatehouse"`` when there is none."""
    if user is None:
        raise _unauthenticated(conn)
    return user


#: The verified user; 401 when there is none (FastAPI's own shape, gatehouse's challenge).
CurrentUser = Annotated[GatehouseUser, Depends(current_user)]

ClaimValue = Union[str, bool, int, float]


def require(
    role: str | None = None, claims: Mapping[str, ClaimValue] | None = None
) -> Callable[..., Awaitable[GatehouseUser]]:
    """A dependency that demands a verified user whose claims meet every requirement, as a
    ``GATEHOUSE_RULES`` rule would; it returns the user::

        @app.get("/admin")
        async def admin(user: Annotated[GatehouseUser, Depends(require(role="admin"))]): ...

        @app.post("/reports", dependencies=[Depends(require(claims={"emailVerified": True}))])

    ``role="admin"``: the ``role`` claim is ``"admin"`` or an array containing it. ``claims``
    maps dot paths (``org.role``) to a string (equal, or contained in an array), a boolean
    (equal, or the string ``"true"``/``"false"``) or a number (equal). A missing claim, ``null``
    or an object never matches.

    No user: 401, as :data:`CurrentUser`. A user failing a requirement: 403
    ``{"detail":"Forbidden"}`` with ``WWW-Authenticate: Bearer realm="gatehouse",
    error="insufficient_scope"`` — the answer gatehouse gives for its own rules."""
    requirements: list[tuple[str, ClaimValue]] = []
    if role is not None:
        if not isinstance(role, str) or not role:
            raise ValueError("role must be a non-empty string")
        requirements.append(("role", role))
    for path, expected in (claims or {}).items():
        if not isinstance(path, str) or not path or any(not part for part in path.split(".")):
            raise ValueError(f"invalid claim path {path!r}")
        if not isinstance(expected, (str, bool, int, float)):
            raise ValueError(f"claim {path!r}: expected a string, boolean or number, not {type(expected).__name__}")
        requirements.append((path, expected))

    async def requirement(conn: HTTPConnection, user: CurrentUser) -> GatehouseUser:
        for path, expected in requirements:
            if not claim_matches(user.claims, path, expected):
                raise _forbidden(conn)
        return user

    described = ", ".join(f"{path}={expected!r}" for path, expected in requirements)
    requirement.__name__ = "require"
    requirement.__qualname__ = f"require({described})"
    requirement.__doc__ = f"A verified user with {described or 'any claims'}."
    return requirement
