"""A FastAPI app built on the gatehouse-fastapi package (python/gatehouse-fastapi), for
test_fastapi_package.py. Configured from the environment like a deployment
(GATEHOUSE_IDENTITY_SECRET, GATEHOUSE_IDENTITY_MAX_SKEW, ...), so the test starts it with the
variables it wants:

    GATEHOUSE_IDENTITY_SECRET=... python -m uvicorn package_app:app --port 9000

Every endpoint reports the user it got and the headers the signature covers, as it received
them, so the test can replay them around gatehouse.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request, WebSocket
from gatehouse_fastapi import CurrentUser, GatehouseUser, OptionalUser, configure, require

app = FastAPI(title="gatehouse-fastapi e2e app")
configure(app)

# What gatehouse signs, besides the method and the target (default header configuration).
SIGNED = ("x-user-id", "x-user-email", "x-auth-claims", "x-auth-method", "x-request-id", "x-gatehouse-signature")


def report(request: Request, user: GatehouseUser | None) -> dict:
    return {
        "user": user.model_dump(mode="json") if user is not None else None,
        "method": request.method,
        "raw_path": request.scope["raw_path"].decode("latin-1"),
        "query_string": request.scope["query_string"].decode("latin-1"),
        "received": {name: request.headers[name] for name in SIGNED if name in request.headers},
    }


@app.get("/whoami/{rest:path}", operation_id="whoami_get")
@app.post("/whoami/{rest:path}", operation_id="whoami_post")
async def whoami(request: Request, user: CurrentUser) -> dict:
    return report(request, user)


@app.get("/a", operation_id="a_get")
@app.post("/a", operation_id="a_post")
async def a(request: Request, user: CurrentUser) -> dict:
    return report(request, user)


@app.get("/b")
async def b(request: Request, user: CurrentUser) -> dict:
    return report(request, user)


@app.get("/admin/stats")
async def admin(request: Request, user: Annotated[GatehouseUser, Depends(require(role="admin"))]) -> dict:
    return report(request, user)


@app.get("/public/whoami")
async def public_whoami(request: Request, user: OptionalUser) -> dict:
    """On a public path: anonymous through gatehouse gives None."""
    return report(request, user)


@app.get("/public/me")
async def public_me(request: Request, user: CurrentUser) -> dict:
    """A public path (gatehouse lets anyone through) whose endpoint still needs a user."""
    return report(request, user)


@app.get("/public/open")
async def public_open() -> dict:
    """No dependency at all: nothing is checked."""
    return {"open": True}


@app.websocket("/ws")
async def ws(websocket: WebSocket, user: CurrentUser) -> None:
    await websocket.accept()
    await websocket.send_json({"user": user.id, "auth_method": user.auth_method})
    await websocket.close()
