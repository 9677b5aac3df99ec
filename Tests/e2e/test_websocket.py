"""WebSocket tunnels: a handshake is authenticated like any request, then FastAPI's own
WebSocket endpoint talks to the client through gatehouse, byte for byte, until one side
closes. Tokens are PyJWT/cryptography-made; the client is the `websockets` library."""

from __future__ import annotations

import json
import os
import socket
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from auth_support import bearer, start_auth_gatehouse
from conftest import unreachable_upstream_url, wait_until
from tokens import better_auth_payload

QUERY = "access_token"


@pytest.fixture(scope="module")
def gh(gatehouse_factory, upstream, jwks):
    return start_auth_gatehouse(gatehouse_factory, upstream.url, jwks, GATEHOUSE_TOKEN_QUERY_PARAM=QUERY)


@pytest.fixture(scope="module")
def token(key, jwks) -> str:
    return key.token(better_auth_payload(jwks.origin, user_id="ws-user-1"))


def ws_url(gh, path: str) -> str:
    return gh.url.replace("http://", "ws://", 1) + path


def handshake_info(ws) -> dict:
    """The upstream's first message: what its handshake looked like on arrival."""
    info = json.loads(ws.recv(timeout=10))
    info["header_map"] = {}
    for name, value in info["headers"]:
        info["header_map"].setdefault(name, []).append(value)
    return info


def test_echoes_a_thousand_messages_with_a_valid_token(gh, token):
    with connect(ws_url(gh, "/ws/echo"), additional_headers=bearer(token), open_timeout=10) as ws:
        info = handshake_info(ws)
        assert info["header_map"]["x-user-id"] == ["ws-user-1"]
        sent = []
        for i in range(1000):
            message = f"message {i} " + "x" * (i % 97) if i % 3 else os.urandom(1 + i % 300)
            sent.append(message)
            ws.send(message)
        received = [ws.recv(timeout=10) for _ in range(1000)]
        assert received == sent


def test_large_binary_message_arrives_intact(gh, token):
    payload = os.urandom(3 * 1024 * 1024)
    with connect(ws_url(gh, "/ws/echo"), additional_headers=bearer(token), max_size=None, open_timeout=10) as ws:
        handshake_info(ws)
        ws.send(payload)
        assert ws.recv(timeout=20) == payload


def test_no_token_is_refused_without_upgrade(gh):
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(gh, "/ws/echo"), open_timeout=10)
    response = refused.value.response
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="gatehouse"'
    assert json.loads(response.body) == {"detail": "Not authenticated"}


def test_bad_token_is_refused_without_upgrade(gh, key, jwks):
    expired = key.token(better_auth_payload(jwks.origin, now=time.time() - 4000))
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(gh, "/ws/echo"), additional_headers=bearer(expired), open_timeout=10)
    assert refused.value.response.status_code == 401
    assert 'error="invalid_token"' in refused.value.response.headers["WWW-Authenticate"]


def test_token_from_query_parameter_is_removed_before_forwarding(gh, token):
    with connect(ws_url(gh, f"/ws/echo?room=7&{QUERY}={token}&x=1"), open_timeout=10) as ws:
        info = handshake_info(ws)
    assert info["query"] == "room=7&x=1"
    assert info["header_map"]["x-user-id"] == ["ws-user-1"]
    assert token not in json.dumps(info)


def test_forged_identity_headers_are_replaced(gh, token):
    headers = bearer(token) | {"X-User-Id": "admin", "X-Auth-Claims": "e30"}
    with connect(ws_url(gh, "/ws/echo"), additional_headers=headers, open_timeout=10) as ws:
        info = handshake_info(ws)
    assert info["header_map"]["x-user-id"] == ["ws-user-1"]
    assert info["header_map"]["x-auth-claims"] != ["e30"]


def test_subprotocol_and_handshake_fields_pass_through(gh, token):
    with connect(
        ws_url(gh, "/ws/echo"), additional_headers=bearer(token), subprotocols=["chat.v2", "chat.v1"], open_timeout=10
    ) as ws:
        info = handshake_info(ws)
        assert ws.subprotocol == "chat.v2"
        assert ws.response.status_code == 101
        assert ws.response.headers.get("X-Request-Id")
    fields = info["header_map"]
    assert fields["sec-websocket-protocol"] == ["chat.v2, chat.v1"]
    assert fields["upgrade"] == ["websocket"]
    assert fields["x-forwarded-for"] == ["127.0.0.1"]


def test_fastapi_refusal_is_relayed(gh, token):
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(gh, "/ws/deny"), additional_headers=bearer(token), open_timeout=10)
    assert refused.value.response.status_code == 403


def test_close_code_from_fastapi_reaches_the_client(gh, token):
    # FastAPI sends its message and close frame right behind the 101: nothing may be lost.
    with connect(ws_url(gh, "/ws/bye"), additional_headers=bearer(token), open_timeout=10) as ws:
        assert ws.recv(timeout=10) == "bye"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 4001
    assert closed.value.rcvd.reason == "done here"


def test_upstream_down_is_502(gatehouse_factory, jwks, token):
    dead = unreachable_upstream_url()
    gh = start_auth_gatehouse(gatehouse_factory, dead, jwks)
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(gh, "/ws/echo"), additional_headers=bearer(token), open_timeout=10)
    assert refused.value.response.status_code == 502


def test_tunnel_is_logged_when_it_ends(gh, token):
    with connect(ws_url(gh, "/ws/echo?tag=logcheck"), additional_headers=bearer(token), open_timeout=10) as ws:
        handshake_info(ws)
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"

    def logged():
        for line in gh.stdout().splitlines():
            if '"path":"/ws/echo?tag=' in line.replace(" ", ""):
                return json.loads(line)
        return None

    entry = wait_until(logged, timeout=5, what="access-log line for the tunnel")
    assert int(entry["status"]) == 101
    assert entry["user"] == "ws-user-1"
    assert int(entry["bytes"]) > 0


def test_max_connections_makes_new_connections_wait(gatehouse_factory, upstream, jwks, token):
    gh = start_auth_gatehouse(gatehouse_factory, upstream.url, jwks, GATEHOUSE_MAX_CONNECTIONS="2")
    first = connect(ws_url(gh, "/ws/echo"), additional_headers=bearer(token), open_timeout=10)
    second = connect(ws_url(gh, "/ws/echo"), additional_headers=bearer(token), open_timeout=10)
    try:
        handshake_info(first)
        handshake_info(second)
        # A third connection is accepted by the kernel but not served while two are open.
        with pytest.raises(httpx.TimeoutException):
            httpx.get(f"{gh.url}/echo/third", headers=bearer(token), timeout=1.0)
        # The open tunnels are unaffected.
        first.send("still here")
        assert first.recv(timeout=5) == "still here"
        with socket.create_connection(("127.0.0.1", gh.port), timeout=5) as waiting:
            waiting.sendall(
                f"GET /echo/waited HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n".encode()
            )
            second.close()
            waiting.settimeout(10)
            answer = waiting.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    finally:
        first.close()
        second.close()


def test_silent_tunnel_is_closed_after_the_idle_timeout(gatehouse_factory, upstream, jwks, token):
    gh = start_auth_gatehouse(gatehouse_factory, upstream.url, jwks, GATEHOUSE_UPSTREAM_IDLE_TIMEOUT="1s")
    with connect(ws_url(gh, "/ws/echo"), additional_headers=bearer(token), open_timeout=10, ping_interval=None) as ws:
        handshake_info(ws)
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert 0.8 <= time.monotonic() - started < 5


# RFC 6455 §1.3's example key, and the accept value every server must answer it with.
EXAMPLE_KEY, EXAMPLE_ACCEPT = "dGhlIHNhbXBsZSBub25jZQ==", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def raw_handshake(token: str) -> bytes:
    """A handshake for FastAPI's /ws/echo with RFC 6455's example key, as raw bytes."""
    return (
        f"GET /ws/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: Upgrade\r\n"
        f"Upgrade: websocket\r\nSec-WebSocket-Key: {EXAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def test_upgrade_later_on_a_keep_alive_connection_works_too(gh, token):
    """Not only the first request of a connection may be a handshake."""
    with socket.create_connection(("127.0.0.1", gh.port), timeout=10) as sock:
        sock.sendall(f"GET /echo/first HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        first = b""
        while b"\r\n\r\n" not in first:
            first += sock.recv(65536)
        head, _, body = first.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = int([line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")][0])
        while len(body) < length:
            body += sock.recv(65536)
        sock.sendall(raw_handshake(token))
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 101"), answer[:300]
        assert EXAMPLE_ACCEPT in answer


def test_handshake_pipelined_behind_a_request_waits_for_its_answer(gh, token):
    """A handshake that arrives while the previous response is still being written (pipelined
    here, so always; a fast client can do it by chance after reading a whole body) is held
    until that response ends, then tunnelled: never served as a plain request."""
    with socket.create_connection(("127.0.0.1", gh.port), timeout=10) as sock:
        first = f"GET /echo/first HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        sock.sendall(first + raw_handshake(token))
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head[:300]
        length = int([line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")][0])
        while len(rest) < length or b"\r\n\r\n" not in rest[length:]:
            chunk = sock.recv(65536)
            assert chunk, "connection closed before the handshake's answer"
            rest += chunk
        assert b'"raw_path":"/echo/first"' in rest[:length]
        answer = rest[length:]
        assert answer.startswith(b"HTTP/1.1 101"), answer[:300]
        assert EXAMPLE_ACCEPT in answer
        # The tunnel works: a masked text frame (RFC 6455 §5.3) comes back from FastAPI's echo.
        message, mask = b"ping-7f3a", [1, 2, 3, 4]
        sock.sendall(bytes([0x81, 0x80 | len(message)] + mask) + bytes(b ^ mask[i % 4] for i, b in enumerate(message)))
        echoed = answer.partition(b"\r\n\r\n")[2]
        while message not in echoed:
            chunk = sock.recv(65536)
            assert chunk, "tunnel closed before the echo"
            echoed += chunk


def test_handshake_behind_a_closing_request_is_dropped(gh, token):
    """Behind a request that closes the connection (`Connection: close`), a pipelined handshake
    is never tunnelled: the client gets the one answer, then end-of-stream."""
    with socket.create_connection(("127.0.0.1", gh.port), timeout=10) as sock:
        first = f"GET /echo/first HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        sock.sendall(first.encode() + raw_handshake(token))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        assert data.startswith(b"HTTP/1.1 200"), data[:300]
        assert data.count(b"HTTP/1.1 ") == 1, data[:600]


def test_other_upgrade_protocols_are_plain_requests(gh, token):
    """`Upgrade: h2c` is hop-by-hop: dropped, and the request served normally."""
    response = httpx.get(
        f"{gh.url}/echo/h2c", headers=bearer(token) | {"Connection": "Upgrade", "Upgrade": "h2c"}, timeout=10
    )
    assert response.status_code == 200
    names = {name.lower() for name, _ in response.json()["headers"]}
    assert "upgrade" not in names


def test_route_rules_apply_to_handshakes(gatehouse_factory, upstream, key, jwks):
    """A role rule refuses the handshake with 403 (no upgrade); a public path needs no token."""
    gh = start_auth_gatehouse(
        gatehouse_factory, upstream.url, jwks,
        GATEHOUSE_RULES="/ws/echo role=admin", GATEHOUSE_PUBLIC_PATHS="/ws/bye",
        GATEHOUSE_CORS_ALLOW_ORIGINS="https://app.example.test",
    )
    member = key.token(better_auth_payload(jwks.origin, user_id="member-1", role="member"))
    admin = key.token(better_auth_payload(jwks.origin, user_id="admin-1", role="admin"))
    with pytest.raises(InvalidStatus) as refused:
        connect(
            ws_url(gh, "/ws/echo"), additional_headers=bearer(member), origin="https://app.example.test", open_timeout=10
        )
    response = refused.value.response
    assert response.status_code == 403
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="gatehouse", error="insufficient_scope"'
    assert json.loads(response.body) == {"detail": "Forbidden"}
    # The browser can read the refusal (CORS fields on gatehouse's own answer).
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.test"

    with connect(ws_url(gh, "/ws/echo"), additional_headers=bearer(admin), open_timeout=10) as ws:
        assert handshake_info(ws)["header_map"]["x-user-id"] == ["admin-1"]
    with connect(ws_url(gh, "/ws/bye"), open_timeout=10) as ws:  # public: no token at all
        assert ws.recv(timeout=10) == "bye"


def test_handshake_announcing_a_body_is_a_plain_request(gh, token):
    """RFC 6455: a handshake has no content. One with a body is no handshake: it is served as
    a plain request (answered, not left hanging), its hop-by-hop Upgrade dropped."""
    request = (
        f"GET /echo/with-body HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: Upgrade\r\n"
        "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        "Content-Length: 4\r\n\r\nbody"
    ).encode()
    with socket.create_connection(("127.0.0.1", gh.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
