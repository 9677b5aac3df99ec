"""The FastAPI upstream the end-to-end suite puts behind gatehouse.

Run it with uvicorn (cwd Tests/e2e):

    python -m uvicorn upstream_app:app --host 127.0.0.1 --port 9000 \
        --h11-max-incomplete-event-size 1048576

Every endpoint reports what it received or misbehaves on purpose in one precise way, so
the tests can tell what gatehouse changed on the way in and on the way out.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from typing import AsyncIterator, Iterator

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response, StreamingResponse

app = FastAPI(title="gatehouse e2e upstream")

# The one origin FastAPI's CORSMiddleware allows (test_cors.py). It answers preflights itself
# (OPTIONS with Origin and Access-Control-Request-Method) and only adds headers to requests
# carrying an Origin, so the other tests, which send none, see no difference.
FRONTEND_ORIGIN = "https://app.example.test"
app.add_middleware(
    CORSMiddleware,
    allow_origins=[FRONTEND_ORIGIN],
    allow_credentials=True,
    allow_methods=["*"],
    allow_headers=["*"],
    max_age=123,
)

# Every method the tests send to /echo, including a custom one (PURGE).
ECHO_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE"]

# ---------------------------------------------------------------------------------------
# Deterministic payload: a fixed 64 KiB pseudo-random block, repeated. The tests import
# `payload_sha256` to know the expected digest without downloading twice.

BLOCK_SIZE = 64 * 1024
BLOCK = random.Random(20240917).randbytes(BLOCK_SIZE)


def payload_chunks(size: int, chunk_size: int = BLOCK_SIZE) -> Iterator[bytes]:
    """Yields `size` bytes of the repeated block, in pieces of at most `chunk_size`."""
    sent = 0
    while sent < size:
        offset = sent % BLOCK_SIZE
        n = min(chunk_size, BLOCK_SIZE - offset, size - sent)
        yield BLOCK[offset : offset + n]
        sent += n


def payload_sha256(size: int) -> str:
    digest = hashlib.sha256()
    for chunk in payload_chunks(size):
        digest.update(chunk)
    return digest.hexdigest()


async def _read_body(request: Request) -> tuple[int, str]:
    """Streams the request body (never buffering it whole); returns (length, sha256)."""
    digest = hashlib.sha256()
    length = 0
    async for chunk in request.stream():
        digest.update(chunk)
        length += len(chunk)
    return length, digest.hexdigest()


# ---------------------------------------------------------------------------------------


@app.api_route("/echo", methods=ECHO_METHODS)
@app.api_route("/echo/{anything:path}", methods=ECHO_METHODS)
async def echo(request: Request) -> JSONResponse:
    """Reports the request exactly as uvicorn received it (header names are lowercased by
    uvicorn's HTTP parser; values, order and repetitions are kept)."""
    length, sha = await _read_body(request)
    scope = request.scope
    return JSONResponse(
        {
            "method": request.method,
            "raw_path": scope["raw_path"].decode("latin-1"),
            "query_string": scope["query_string"].decode("latin-1"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "body_len": length,
            "body_sha256": sha,
        }
    )


@app.api_route("/upload", methods=["POST", "PUT"])
async def upload(request: Request, delay: float = 0.0) -> JSONResponse:
    """Streams the body and returns its length and digest. `delay` seconds are waited
    before the first read, so a client that keeps sending fills the proxy's buffers."""
    if delay:
        await asyncio.sleep(delay)
    length, sha = await _read_body(request)
    return JSONResponse({"len": length, "sha256": sha})


@app.get("/download")
async def download(size: int) -> StreamingResponse:
    """`size` deterministic bytes, chunked (no Content-Length)."""

    async def body() -> AsyncIterator[bytes]:
        for chunk in payload_chunks(size):
            yield chunk

    return StreamingResponse(body(), media_type="application/octet-stream")


@app.api_route("/download_len", methods=["GET", "HEAD"])
async def download_len(size: int) -> StreamingResponse:
    """The same bytes as /download, with a Content-Length."""

    async def body() -> AsyncIterator[bytes]:
        for chunk in payload_chunks(size):
            yield chunk

    return StreamingResponse(
        body(), media_type="application/octet-stream", headers={"content-length": str(size)}
    )


@app.get("/cookies")
async def cookies() -> Response:
    """Two Set-Cookie fields (a=1 then b=2) and a repeated custom field."""
    response = Response(content=b"cookies", media_type="text/plain")
    response.raw_headers.extend(
        [
            (b"set-cookie", b"a=1; Path=/"),
            (b"set-cookie", b"b=2; Path=/"),
            (b"x-multi", b"one"),
            (b"x-multi", b"two"),
        ]
    )
    return response


@app.get("/hop")
async def hop() -> Response:
    """A response carrying hop-by-hop fields that must not reach the client."""
    response = Response(content=b"hop", media_type="text/plain")
    response.raw_headers.extend(
        [
            (b"connection", b"X-Secret-Hop"),
            (b"x-secret-hop", b"1"),
            (b"keep-alive", b"timeout=5"),
            (b"proxy-authenticate", b"Basic"),
            (b"trailer", b"X-T"),
            (b"upgrade", b"foo"),
            (b"proxy-connection", b"keep-alive"),
            (b"x-normal", b"yes"),
        ]
    )
    return response


@app.get("/closing/{n}")
async def closing(n: str) -> Response:
    """Answers, then uvicorn closes the connection (`Connection: close`): the proxy must open a
    new upstream connection for the next request."""
    return Response(content=f"closing {n}".encode(), media_type="text/plain", headers={"connection": "close"})


@app.api_route("/status/{code}", methods=["GET", "HEAD", "POST"])
async def status(code: int) -> Response:
    """Responds with `code`; 204 and 304 without a body, others with a small JSON body."""
    if code in (204, 304):
        return Response(status_code=code)
    headers = {"location": "/echo/redirected"} if 300 <= code < 400 else None
    return JSONResponse({"status": code}, status_code=code, headers=headers)


@app.get("/sse")
async def sse(count: int = 5, interval: float = 0.2) -> StreamingResponse:
    """`count` server-sent events `interval` seconds apart; each carries its send time."""

    async def events() -> AsyncIterator[bytes]:
        for i in range(count):
            if i:
                await asyncio.sleep(interval)
            # Each yield is one ASGI body message: uvicorn writes it to the socket at once.
            yield f'id: {i}\ndata: {{"i": {i}, "t": {time.time()!r}}}\n\n'.encode()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


@app.get("/slow")
async def slow(seconds: float = 1.0) -> JSONResponse:
    await asyncio.sleep(seconds)
    return JSONResponse({"slept": seconds})


class _Abort(Exception):
    """Raised inside a streaming body: uvicorn then closes the socket without finishing
    the message (no terminating chunk, or fewer bytes than Content-Length)."""


@app.get("/die")
async def die(after: int = 1000, length: int | None = None) -> StreamingResponse:
    """Sends `after` bytes, then the upstream connection dies mid-body. With `length`, the
    response declares that Content-Length (which must exceed `after`); otherwise chunked."""

    async def body() -> AsyncIterator[bytes]:
        for chunk in payload_chunks(after):
            yield chunk
        await asyncio.sleep(0.05)  # let uvicorn put the bytes on the wire first
        raise _Abort("upstream dies mid-body (on purpose)")

    headers = {"content-length": str(length)} if length is not None else None
    return StreamingResponse(body(), media_type="application/octet-stream", headers=headers)


@app.get("/stall")
async def stall(after: int = 1000, sleep: float = 5.0) -> StreamingResponse:
    """Sends `after` bytes, goes silent for `sleep` seconds, then sends `b"end"` and
    finishes normally (chunked)."""

    async def body() -> AsyncIterator[bytes]:
        for chunk in payload_chunks(after):
            yield chunk
        await asyncio.sleep(sleep)
        yield b"end"

    return StreamingResponse(body(), media_type="application/octet-stream")


# ---------------------------------------------------------------------------------------
# long streams and WebSockets (route policy issue)


@app.get("/sse_pattern")
async def sse_pattern(bursts: int = 5, burst: int = 200, gap: float = 1.0) -> StreamingResponse:
    """`bursts` bursts of `burst` events each, `gap` seconds of silence between bursts: a
    long-lived stream compressed in time (many events, long quiet spells)."""

    async def events() -> AsyncIterator[bytes]:
        n = 0
        for b in range(bursts):
            if b:
                await asyncio.sleep(gap)
            for _ in range(burst):
                yield f"id: {n}\ndata: {n}\n\n".encode()
                n += 1
        yield b"event: end\ndata: done\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"cache-control": "no-cache"})


@app.websocket("/ws/echo")
async def ws_echo(websocket: WebSocket) -> None:
    """Accepts (with the first offered subprotocol, if any), sends one JSON message describing
    the handshake it received, then echoes every message until the client closes."""
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol=offered[0] if offered else None)
    await websocket.send_json(
        {
            "path": websocket.scope["path"],
            "query": websocket.scope["query_string"].decode("latin-1"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in websocket.scope["headers"]],
        }
    )
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


@app.websocket("/ws/deny")
async def ws_deny(websocket: WebSocket) -> None:
    """Refuses the handshake: uvicorn answers 403 instead of 101."""
    await websocket.close(code=1008)


@app.websocket("/ws/bye")
async def ws_bye(websocket: WebSocket) -> None:
    """Accepts, sends one message, and closes with an application close code."""
    await websocket.accept()
    await websocket.send_text("bye")
    await websocket.close(code=4001, reason="done here")
