"""Shared pieces of the unit tests: a fixed clock, a secret, and an app using every dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, WebSocket
from fastapi.testclient import TestClient

from gatehouse_fastapi import CurrentUser, GatehouseConfig, GatehouseUser, OptionalUser, configure, require

SECRET = "s3cr3t-for-the-unit-tests-0123456789abcdef"
OLD_SECRET = "the-previous-secret-still-valid-0123456789"
OTHER_SECRET = "an-unknown-third-secret-0123456789abcdefgh"
NOW = 1796220000.0


class Clock:
    """A settable clock: ``config.clock``."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_app(config: GatehouseConfig | None) -> FastAPI:
    app = FastAPI()
    if config is not None:
        configure(app, config)

    @app.get("/me")
    async def me(user: CurrentUser) -> GatehouseUser:
        return user

    @app.get("/optional")
    async def optional(user: OptionalUser) -> dict:
        return {"user": user.id if user else None}

    @app.get("/items/{rest:path}")
    async def get_item(rest: str, user: CurrentUser) -> dict:
        return {"rest": rest, "user": user.id}

    @app.post("/items/{rest:path}")
    async def post_item(rest: str, user: CurrentUser) -> dict:
        return {"rest": rest, "user": user.id}

    @app.get("/admin")
    async def admin(user: Annotated[GatehouseUser, Depends(require(role="admin"))]) -> dict:
        return {"admin": user.id}

    @app.get("/verified", dependencies=[Depends(require(claims={"emailVerified": True, "org.plan": "team"}))])
    async def verified() -> dict:
        return {"ok": True}

    @app.get("/level")
    async def level(user: Annotated[GatehouseUser, Depends(require(role="admin", claims={"level": 2}))]) -> dict:
        return {"ok": True}

    @app.get("/public")
    async def public() -> dict:
        return {"public": True}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, user: CurrentUser) -> None:
        await websocket.accept()
        await websocket.send_json({"user": user.id})
        await websocket.close()

    return app


def client(app: FastAPI) -> TestClient:
    return TestClient(app, raise_server_exceptions=True)
