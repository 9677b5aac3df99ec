"""A client that announces a body and stops early must not leave a half-sent request on a
pooled upstream connection: the upstream would read the next request's bytes as the rest of
the body, and whatever follows as a new request (request smuggling).

uvicorn closes a connection whose request body it did not read, which hides the problem, so
these tests use a minimal keep-alive HTTP/1.1 upstream that answers before reading the body and
then skips exactly Content-Length bytes — legal, and what many servers do.
"""

from __future__ import annotations

import socket
import socketserver
import threading

import httpx
import pytest

from conftest import UPSTREAM_SOCKET, unix_socket_path


class KeepAliveUpstream(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        self.request_lines: list[bytes] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class KeepAliveUnixUpstream(socketserver.ThreadingUnixStreamServer):
    """The same upstream on a Unix socket (E2E_UPSTREAM_SOCKET=unix)."""

    daemon_threads = True

    def __init__(self, path):
        self.request_lines: list[bytes] = []
        self.path = path
        super().__init__(str(path), _Handler)

    @property
    def url(self) -> str:
        return f"unix:{self.path}"


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            line = self.rfile.readline(8192)
            if not line:
                return
            self.server.request_lines.append(line.rstrip(b"\r\n"))
            length = 0
            while (header := self.rfile.readline(8192)) not in (b"\r\n", b""):
                name, _, value = header.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            # Answer first, then skip the body: the connection stays open for the next request.
            body = b'{"ok":true}'
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            self.wfile.flush()
            if length and len(self.rfile.read(length)) < length:
                return


@pytest.fixture
def keepalive_gatehouse(gatehouse_factory, tmp_path):
    if UPSTREAM_SOCKET == "unix":
        upstream = KeepAliveUnixUpstream(unix_socket_path(tmp_path, "keepalive.sock"))
    else:
        upstream = KeepAliveUpstream()
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        yield gatehouse_factory(upstream.url), upstream
    finally:
        upstream.shutdown()
        upstream.server_close()


def send_short_body(port: int, path: str, declared: int, sent: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (path.encode(), declared, sent))
        s.shutdown(socket.SHUT_WR)
        s.settimeout(10)
        try:
            while s.recv(65536):
                pass
        except OSError:
            pass


def test_body_shorter_than_content_length_never_desyncs_the_upstream(keepalive_gatehouse):
    gatehouse, upstream = keepalive_gatehouse
    for round in range(3):
        send_short_body(gatehouse.port, f"/short-{round}", 200, b"0123456789")
        with httpx.Client(base_url=gatehouse.url, timeout=10) as client:
            for i in range(3):
                # Each request line the upstream parses must be one a client sent.
                assert client.post(f"/after-{round}-{i}", content=b"x" * 300).status_code == 200
    expected_prefixes = (b"POST /short-", b"POST /after-")
    smuggled = [line for line in upstream.request_lines if not line.startswith(expected_prefixes)]
    assert not smuggled, f"the upstream parsed request lines no client sent: {smuggled[:5]}"
    assert sum(line.startswith(b"POST /after-") for line in upstream.request_lines) == 9
