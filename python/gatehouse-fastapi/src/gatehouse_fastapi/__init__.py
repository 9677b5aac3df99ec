"""gatehouse-fastapi: FastAPI dependencies for an app behind gatehouse.

gatehouse verifies Better Auth JWTs and sessions and forwards the verified identity as headers
(``X-User-Id``, ``X-User-Email``, ``X-Auth-Claims``, ``X-Auth-Method``), signed with
``X-Gatehouse-Signature`` when ``GATEHOUSE_IDENTITY_SECRET`` is set. This package checks that
signature and turns the headers into a :class:`GatehouseUser`::

    from typing import Annotated
    from fastapi import Depends, FastAPI
    from gatehouse_fastapi import CurrentUser, GatehouseUser, OptionalUser, configure, require

    app = FastAPI()
    configure(app)   # reads GATEHOUSE_IDENTITY_SECRET(_FILE); a bad value fails here, at startup

    @app.get("/me")
    async def me(user: CurrentUser):
        return {"id": user.id, "email": user.email}

    @app.get("/admin/stats")
    async def stats(user: Annotated[GatehouseUser, Depends(require(role="admin"))]): ...
"""

from .config import DEFAULT_MAX_SKEW, GatehouseConfig
from .dependencies import (
    CurrentUser,
    OptionalUser,
    configure,
    current_user,
    gatehouse_bearer,
    get_config,
    optional_user,
    require,
)
from .signature import ConfigurationError, IdentitySecretError
from .user import GatehouseUser

__all__ = [
    "DEFAULT_MAX_SKEW",
    "ConfigurationError",
    "CurrentUser",
    "GatehouseConfig",
    "GatehouseUser",
    "IdentitySecretError",
    "OptionalUser",
    "configure",
    "current_user",
    "gatehouse_bearer",
    "get_config",
    "optional_user",
    "require",
]

__version__ = "0.1.0"
