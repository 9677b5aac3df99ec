"""A small FastAPI app to put behind gatehouse (`make demo`, the Compose example).

Run it on its own with:

    uvicorn app:app --host 127.0.0.1 --port 8000

and point gatehouse at it with GATEHOUSE_UPSTREAM=http://127.0.0.1:8000.

Identity comes from the gatehouse-fastapi package (python/gatehouse-fastapi): `CurrentUser` is the
user gatehouse verified. With GATEHOUSE_IDENTITY_SECRET (or GATEHOUSE_IDENTITY_SECRET_FILE) set
here and in gatehouse, every request must carry gatehouse's signature, so identity headers sent
around the proxy are refused; without it they are trusted as they arrive (keep the app reachable
through gatehouse only).
"""

import asyncio
import json
from datetime import datetime, timezone
from typing import Annotated, AsyncIterator

from fastapi import Depends, FastAPI, Request
from fastapi.responses import StreamingResponse
from gatehouse_fastapi import CurrentUser, GatehouseUser, configure, require
from pydantic import BaseModel

app = FastAPI(title="gatehouse demo")
# Reads GATEHOUSE_IDENTITY_SECRET(_FILE) now: a bad secret stops the app at startup.
configure(app)


class Item(BaseModel):
    name: str
    price: float = 0.0


# A fixed catalogue; a real app would use a database.
ITEMS = [Item(name="apple", price=0.5), Item(name="bread", price=2.25)]


@app.get("/")
async def hello(request: Request) -> dict:
    """Says hello, and shows what gatehouse told the app about the original client."""
    return {
        "message": "Hello from FastAPI, behind gatehouse",
        "client": request.headers.get("x-forwarded-for"),
        "request_id": request.headers.get("x-request-id"),
    }


@app.get("/me")
async def me(user: CurrentUser) -> dict:
    """The user gatehouse verified (401 without one)."""
    return {"user_id": user.id, "email": user.email, "name": user.name, "auth_method": user.auth_method}


@app.get("/admin/stats")
async def admin_stats(user: Annotated[GatehouseUser, Depends(require(role="admin"))]) -> dict:
    """Only for users whose `role` claim is `admin` (Better Auth's admin plugin); 403 otherwise."""
    return {"items": len(ITEMS), "admin": user.id}


@app.get("/items")
async def list_items() -> list[Item]:
    return ITEMS


@app.post("/items")
async def create_item(item: Item) -> Item:
    """Echoes the item back (nothing is stored)."""
    return item


@app.get("/events")
async def events() -> StreamingResponse:
    """Server-sent events: five ticks, one second apart. gatehouse passes each on at once."""

    async def ticks() -> AsyncIterator[str]:
        for n in range(1, 6):
            now = datetime.now(timezone.utc).isoformat()
            yield f"data: {json.dumps({'tick': n, 'time': now})}\n\n"
            if n < 5:
                await asyncio.sleep(1)

    return StreamingResponse(ticks(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
