"""A client that announces a body and stops early must not leave a half-sent request on a
pooled upstream connection: the next request through that connection would be parsed as the
rest of the body (request smuggling)."""

from __future__ import annotations

import socket

import httpx


def test_body_shorter_than_content_length_never_desyncs_the_upstream(gatehouse):
    for _ in range(5):
        # The upstream answers 404 without reading the body; the client sends 10 of 1000
        # announced bytes and half-closes.
        with socket.create_connection(("127.0.0.1", gatehouse.port), timeout=10) as s:
            s.sendall(
                b"POST /status/404 HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n0123456789"
            )
            s.shutdown(socket.SHUT_WR)
            s.settimeout(10)
            try:
                while s.recv(65536):
                    pass
            except OSError:
                pass
        # Requests right after it (same pooled upstream connections) arrive intact.
        with httpx.Client(base_url=gatehouse.url, timeout=10) as client:
            for i in range(3):
                response = client.post(f"/echo/after-{i}", content=b"payload")
                assert response.status_code == 200, response.text
                echo = response.json()
                assert echo["method"] == "POST"
                assert echo["raw_path"] == f"/echo/after-{i}"
                assert echo["body_len"] == 7


def test_truncated_upload_is_not_delivered_as_complete(gatehouse, upstream):
    """The echo endpoint reads the whole body; a cut upload must not reach it as a short,
    complete-looking body."""
    with socket.create_connection(("127.0.0.1", gatehouse.port), timeout=10) as s:
        s.sendall(b"POST /echo/cut HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n" + b"x" * 100)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(10)
        received = b""
        try:
            while chunk := s.recv(65536):
                received += chunk
        except OSError:
            pass
    assert b'"body_len":100' not in received.replace(b" ", b"")
