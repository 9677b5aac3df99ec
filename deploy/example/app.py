"""A small FastAPI app to put behind gatehouse (`make demo`).

Run it on its own with:

    uvicorn app:app --host 127.0.0.1 --port 8000

and point gatehouse at it with GATEHOUSE_UPSTREAM=http://127.0.0.1:8000.
"""

import asyncio
import json
from datetime import datetime, timezone
from typing import Annotated, AsyncIterator

from fastapi import FastAPI, Header, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

app = FastAPI(title="gatehouse demo")


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
async def me(
    x_user_id: Annotated[str | None, Header()] = None,
    x_user_email: Annotated[str | None, Header()] = None,
) -> dict:
    """The identity headers this app received (null when absent)."""
    return {"user_id": x_user_id, "email": x_user_email}


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
