"""The FastAPI app the soak and chaos runs put behind gatehouse (run under uvicorn):

    python -m uvicorn upstream:app --app-dir Tests/soak --host 127.0.0.1 --port 9000

    GET  /echo/{path}?n=          {"path", "n", "user", "method"}: user is the X-User-Id gatehouse
                                  added, method its X-Auth-Method (jwt or session)
    POST /upload?id=              streams the body; {"len", "sha256"}
    GET  /download?size=&seed=&length=1
                                  `size` deterministic bytes (payload.py), SHA-256 in
                                  X-Content-SHA256; Content-Length with length=1, else chunked
    GET  /sse?seconds=&interval=  events `id: i / data: i` every `interval` s for `seconds`,
                                  then `event: end / data: <count>`
    GET  /slow?seconds=           answers after `seconds`
    WS   /ws/echo                 echoes every message until the client closes

Chaos controls (called on the upstream's own port, never through gatehouse):

    POST /_control/delay?seconds=10   every request (and WebSocket handshake) waits this long
                                      before the app sees it; 0 turns it off
    GET  /_control/uploads/{id}       what became of the upload sent with ?id= (receiving,
                                      complete, disconnected after N bytes)
    GET  /_control/health             200, never delayed
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from typing import AsyncIterator

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.requests import ClientDisconnect

import payload

api = FastAPI(title="gatehouse soak upstream")

# Uploads sent with an id (the chaos run's abandoned upload); bounded.
UPLOADS: "OrderedDict[str, str]" = OrderedDict()
DELAY = {"seconds": 0.0}


def _record_upload(upload_id: str, state: str) -> None:
    if not upload_id:
        return
    UPLOADS[upload_id] = state
    UPLOADS.move_to_end(upload_id)
    while len(UPLOADS) > 1000:
        UPLOADS.popitem(last=False)


@api.get("/echo/{rest:path}")
async def echo(request: Request, rest: str, n: int = 0) -> JSONResponse:
    return JSONResponse({"path": "/echo/" + rest, "n": n, "user": request.headers.get("x-user-id"),
                         "method": request.headers.get("x-auth-method")})


@api.post("/upload")
async def upload(request: Request, id: str = "") -> JSONResponse:  # noqa: A002 - the query name
    _record_upload(id, "receiving")
    digest = hashlib.sha256()
    length = 0
    try:
        async for piece in request.stream():
            digest.update(piece)
            length += len(piece)
    except ClientDisconnect:
        _record_upload(id, f"disconnected after {length}")
        raise
    _record_upload(id, "complete")
    return JSONResponse({"len": length, "sha256": digest.hexdigest()})


@api.get("/download")
async def download(size: int, seed: int = 0, length: int = 1) -> StreamingResponse:
    sha = await asyncio.to_thread(payload.sha256_of, seed, size)

    async def body() -> AsyncIterator[bytes]:
        for piece in payload.chunks(seed, size):
            yield piece

    headers = {"x-content-sha256": sha}
    if length:
        headers["content-length"] = str(size)
    return StreamingResponse(body(), media_type="application/octet-stream", headers=headers)


@api.get("/sse")
async def sse(seconds: float = 30.0, interval: float = 1.0) -> StreamingResponse:
    count = max(1, int(seconds / interval))

    async def events() -> AsyncIterator[bytes]:
        for i in range(count):
            if i:
                await asyncio.sleep(interval)
            yield f"id: {i}\ndata: {i}\n\n".encode()
        yield f"event: end\ndata: {count}\n\n".encode()

    return StreamingResponse(events(), media_type="text/event-stream", headers={"cache-control": "no-cache"})


@api.get("/slow")
async def slow(seconds: float = 1.0) -> JSONResponse:
    await asyncio.sleep(seconds)
    return JSONResponse({"slept": seconds})


@api.websocket("/ws/echo")
async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            elif message.get("bytes") is not None:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        return


@api.post("/_control/delay")
async def set_delay(seconds: float) -> JSONResponse:
    DELAY["seconds"] = max(0.0, seconds)
    return JSONResponse({"delay": DELAY["seconds"]})


@api.get("/_control/uploads/{upload_id}")
async def upload_state(upload_id: str) -> JSONResponse:
    return JSONResponse({"id": upload_id, "state": UPLOADS.get(upload_id)})


@api.get("/_control/health")
async def health() -> JSONResponse:
    return JSONResponse({"ok": True})


class _Delay:
    """Plain ASGI middleware: holds every request (and WebSocket handshake) for the configured
    delay before the app sees it; the control endpoints are never held."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket") and DELAY["seconds"] > 0 and not scope["path"].startswith("/_control/"):
            await asyncio.sleep(DELAY["seconds"])
        await self.inner(scope, receive, send)


app = _Delay(api)
