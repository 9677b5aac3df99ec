"""gatehouse's own errors: an upstream that is down, slow, silent or dies; requests that
are too large, malformed, or too slow to arrive."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from conftest import ConnectionClosed, RawConnection, raw_request, unreachable_upstream_url


def assert_json_error(response: httpx.Response | object, status: int) -> None:
    """gatehouse's errors look like FastAPI's: {"detail": "..."} as application/json."""
    if isinstance(response, httpx.Response):
        code, content_type, body = response.status_code, response.headers.get("content-type"), response.content
    else:  # RawResponse
        code, content_type, body = response.status, response.get("content-type"), response.body
    assert code == status, response
    assert content_type is not None and content_type.split(";")[0].strip() == "application/json", (
        f"content-type {content_type!r}, body {body[:200]!r}"
    )
    parsed = json.loads(body)
    assert isinstance(parsed, dict) and isinstance(parsed.get("detail"), str) and parsed["detail"], parsed


# ---------------------------------------------------------------------------------------
# upstream refused: 502


@pytest.fixture(scope="module")
def dead_upstream_gatehouse(gatehouse_factory):
    # Nothing listens on that port (or at that socket path). Readiness may legitimately depend
    # on the upstream, so wait for liveness only.
    return gatehouse_factory(unreachable_upstream_url(), ready_path="/healthz")


def test_upstream_refusing_connections_gives_502_json(dead_upstream_gatehouse):
    started = time.monotonic()
    response = httpx.get(f"{dead_upstream_gatehouse.url}/anything?x=1", timeout=30)
    assert_json_error(response, 502)
    assert time.monotonic() - started < 5, "a refused connection should fail fast"


def test_502_carries_the_request_id(dead_upstream_gatehouse):
    response = httpx.post(
        f"{dead_upstream_gatehouse.url}/items", json={"a": 1}, headers={"X-Request-Id": "dead-1"}, timeout=30
    )
    assert_json_error(response, 502)
    assert response.headers.get("x-request-id") == "dead-1"


# ---------------------------------------------------------------------------------------
# upstream slow (504) or silent mid-stream (aborted)

UPSTREAM_TIMEOUT = 0.8
IDLE_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def timeouts_gatehouse(gatehouse_factory, upstream):
    return gatehouse_factory(
        upstream.url,
        GATEHOUSE_UPSTREAM_TIMEOUT="800ms",
        GATEHOUSE_UPSTREAM_IDLE_TIMEOUT="1s",
    )


def test_no_response_headers_within_upstream_timeout_gives_504_json(timeouts_gatehouse):
    started = time.monotonic()
    response = httpx.get(f"{timeouts_gatehouse.url}/slow?seconds=4", timeout=30)
    elapsed = time.monotonic() - started
    assert_json_error(response, 504)
    assert UPSTREAM_TIMEOUT - 0.1 <= elapsed < UPSTREAM_TIMEOUT + 1.5, f"504 after {elapsed:.2f}s"


def test_response_within_upstream_timeout_is_not_cut(timeouts_gatehouse):
    response = httpx.get(f"{timeouts_gatehouse.url}/slow?seconds=0.3", timeout=30)
    assert response.status_code == 200
    assert response.json() == {"slept": 0.3}


def test_upstream_silent_mid_body_aborts_the_client_connection(timeouts_gatehouse):
    received = 0
    started = time.monotonic()
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        with httpx.stream("GET", f"{timeouts_gatehouse.url}/stall?after=20000&sleep=5", timeout=30) as response:
            assert response.status_code == 200
            for chunk in response.iter_raw():
                received += len(chunk)
    elapsed = time.monotonic() - started
    assert received <= 20000, "bytes sent after the stall reached the client"
    assert elapsed < IDLE_TIMEOUT + 2.5, f"connection aborted only after {elapsed:.2f}s"


def test_long_stream_with_regular_events_outlives_both_timeouts(timeouts_gatehouse):
    """Neither timeout limits a response's total duration: 6 events 0.5 s apart (2.5 s)."""
    with httpx.stream("GET", f"{timeouts_gatehouse.url}/sse?count=6&interval=0.5", timeout=30) as response:
        assert response.status_code == 200
        events = [line for line in response.iter_lines() if line.startswith("data:")]
    assert len(events) == 6


@pytest.mark.parametrize("length", [None, 500_000], ids=["chunked", "content-length"])
def test_upstream_dying_mid_body_aborts_the_client_connection(gatehouse, length):
    url = f"{gatehouse.url}/die?after=100000" + (f"&length={length}" if length else "")
    received = 0
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        with httpx.stream("GET", url, timeout=30) as response:
            assert response.status_code == 200
            for chunk in response.iter_raw():
                received += len(chunk)
    assert received <= 100000


def test_upstream_dying_mid_body_is_incomplete_on_the_wire(gatehouse):
    """The same, seen with a raw socket: the framing must show the body is incomplete."""
    with RawConnection(gatehouse.port, timeout=20) as conn:
        conn.send(b"GET /die?after=30000 HTTP/1.1\r\nHost: h\r\n\r\n")
        response = conn.read_response()
    assert response.status == 200
    assert not response.complete, f"a dead upstream produced a complete-looking response: {response!r}"
    assert len(response.body) <= 30000


def test_gatehouse_still_serves_after_upstream_failures(gatehouse):
    for _ in range(3):
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            with httpx.stream("GET", f"{gatehouse.url}/die?after=1000", timeout=30) as response:
                for _chunk in response.iter_raw():
                    pass
    assert httpx.get(f"{gatehouse.url}/echo/still-alive", timeout=10).status_code == 200


# ---------------------------------------------------------------------------------------
# header size: 431


def send_and_read(port: int, request: bytes) -> object:
    try:
        return raw_request(port, request, timeout=10)
    except (ConnectionResetError, BrokenPipeError, ConnectionClosed) as exc:
        pytest.fail(f"connection dropped instead of an HTTP error response: {exc!r}")


def test_header_block_over_default_limit_gives_431_json(gatehouse):
    request = b"GET /echo/big HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * (40 * 1024) + b"\r\n\r\n"
    assert_json_error(send_and_read(gatehouse.port, request), 431)


def test_many_headers_over_default_limit_give_431(gatehouse):
    fields = b"".join(b"X-Field-%d: %s\r\n" % (i, b"v" * 400) for i in range(100))  # ~42 KiB
    request = b"GET /echo/many HTTP/1.1\r\nHost: h\r\n" + fields + b"\r\n"
    assert_json_error(send_and_read(gatehouse.port, request), 431)


def test_header_block_under_default_limit_is_forwarded_intact(client):
    value = "b" * (20 * 1024)
    response = client.get("/echo/big", headers={"X-Big": value})
    assert response.status_code == 200
    assert [v for k, v in response.json()["headers"] if k == "x-big"] == [value]


@pytest.fixture(scope="module")
def limits_gatehouse(gatehouse_factory, upstream):
    return gatehouse_factory(
        upstream.url,
        GATEHOUSE_MAX_HEADER_BYTES="8KiB",
        GATEHOUSE_HEADER_READ_TIMEOUT="1s",
    )


def test_configured_header_limit_is_enforced(limits_gatehouse):
    small = b"GET /echo/s HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 6000 + b"\r\n\r\n"
    response = send_and_read(limits_gatehouse.port, small)
    assert response.status == 200, response
    large = b"GET /echo/l HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 12000 + b"\r\n\r\n"
    assert_json_error(send_and_read(limits_gatehouse.port, large), 431)


# ---------------------------------------------------------------------------------------
# malformed framing: 400


BAD_FRAMING = {
    "cl-and-te": b"POST /echo/x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\n",
    "te-and-cl": b"POST /echo/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
    b"0\r\n\r\n",
    "cl-not-a-number": b"POST /echo/x HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\nhello",
    "cl-negative": b"POST /echo/x HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\nhello",
    "cl-two-values": b"POST /echo/x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
}


@pytest.mark.parametrize("name", list(BAD_FRAMING))
def test_bad_request_framing_gives_400_json(gatehouse, name):
    assert_json_error(send_and_read(gatehouse.port, BAD_FRAMING[name]), 400)


@pytest.mark.parametrize(
    "coding, status",
    [("gzip", 400), ("chunked, gzip", 400), ("gzip, chunked", 501), ("identity", 400)],
)
def test_transfer_codings_other_than_chunked_are_refused(gatehouse, coding, status):
    """RFC 9112 §6.3: without chunked last a request body has no knowable length (400);
    §6.1: a coding gatehouse would not pass on is not implemented (501). Either way the
    request gets gatehouse's answer rather than being half-forwarded."""
    request = (
        b"POST /echo/te HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: " + coding.encode() + b"\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n"
    )
    assert_json_error(send_and_read(gatehouse.port, request), status)


def test_cl_te_request_cannot_smuggle_a_second_request(gatehouse):
    smuggled = b"GET /echo/smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
    request = (
        b"POST /echo/x HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        % (5 + len(smuggled))
    ) + smuggled
    with RawConnection(gatehouse.port, timeout=5) as conn:
        conn.send(request)
        first = conn.read_response()
        assert first.status == 400, first
        try:
            second = conn.read_response()
        except (ConnectionClosed, ConnectionResetError, socket.timeout):
            return  # closed (or silent): nothing smuggled
        pytest.fail(f"a second, smuggled request was answered: {second!r}")


@pytest.mark.parametrize(
    "first",
    [
        b"GET /echo/a HTTP/1.1\r\n\r\n",  # no Host: 400 and close
        b"GET /echo/a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",  # two: 400 and close
        b"POST /echo/a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",  # 400 and close
    ],
)
def test_requests_pipelined_behind_a_closing_answer_are_never_served(gatehouse, first):
    """An answer that says Connection: close ends the connection: a request the client sent
    behind it is neither forwarded to FastAPI nor answered, and the connection closes."""
    marker = f"/echo/never-{time.monotonic_ns()}"
    second = f"GET {marker} HTTP/1.1\r\nHost: h\r\n\r\n".encode()
    with RawConnection(gatehouse.port, timeout=5) as conn:
        conn.send(first + second)
        answer = conn.read_response()
        assert answer.status == 400, answer
        assert (answer.get("connection") or "").lower() == "close"
        started = time.monotonic()
        try:
            extra = conn.read_response()
            pytest.fail(f"the pipelined request was answered: {extra!r}")
        except (ConnectionClosed, ConnectionResetError):
            pass
        assert time.monotonic() - started < 4.5, "closed after the linger, not left open"
    time.sleep(0.3)
    assert marker not in gatehouse.stdout(), "the pipelined request reached the request log"


def pipelined_gets(prefix: str, count: int) -> bytes:
    return b"".join(f"GET /echo/{prefix}-{i} HTTP/1.1\r\nHost: h\r\n\r\n".encode() for i in range(count))


def assert_echo_answers_in_order(conn: RawConnection, prefix: str, count: int) -> None:
    for i in range(count):
        answer = conn.read_response()
        assert answer.status == 200, answer
        assert json.loads(answer.body)["raw_path"] == f"/echo/{prefix}-{i}"


def test_pipelined_requests_are_all_answered_when_the_client_half_closes(gatehouse):
    """A client that sends its requests and then shuts its side (printf ... | nc -N) still
    gets every answer."""
    with RawConnection(gatehouse.port, timeout=10) as conn:
        conn.send(pipelined_gets("hc", 3))
        conn.sock.shutdown(socket.SHUT_WR)
        assert_echo_answers_in_order(conn, "hc", 3)


def test_requests_before_a_malformed_one_are_answered_first(gatehouse):
    """Two good requests pipelined before a malformed one are answered in order, then the
    malformed one gets its 400 (HummingbirdCore's own, empty: the parse error arrives while a
    request is in progress, so it is not gatehouse's JSON one)."""
    with RawConnection(gatehouse.port, timeout=10) as conn:
        conn.send(pipelined_gets("m", 2) + b"GARBAGE\r\n\r\n")
        assert_echo_answers_in_order(conn, "m", 2)
        assert conn.read_response().status == 400


def test_pipelined_requests_are_answered_in_order(gatehouse):
    with RawConnection(gatehouse.port, timeout=10) as conn:
        conn.send(pipelined_gets("turn", 5))
        assert_echo_answers_in_order(conn, "turn", 5)


# ---------------------------------------------------------------------------------------
# header read timeout (slowloris)


def wait_for_close(conn: RawConnection, limit: float, drip: bytes | None) -> tuple[bool, float, bytes]:
    """Drips `drip` every 0.25 s until the server closes; returns (closed, elapsed, bytes read)."""
    started = time.monotonic()
    data = b""
    conn.sock.settimeout(0.25)
    while time.monotonic() - started < limit:
        if drip is not None:
            try:
                conn.sock.sendall(drip)
            except (BrokenPipeError, ConnectionResetError):
                return True, time.monotonic() - started, data
        try:
            chunk = conn.sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return True, time.monotonic() - started, data
        if not chunk:
            return True, time.monotonic() - started, data
        data += chunk
    return False, time.monotonic() - started, data


def test_client_dripping_headers_is_disconnected_after_header_read_timeout(limits_gatehouse):
    with RawConnection(limits_gatehouse.port) as conn:
        conn.send(b"GET /echo/slowloris HTTP/1.1\r\nHost: h\r\n")
        closed, elapsed, data = wait_for_close(conn, limit=5, drip=b"X-Drip: a\r\n")
    assert closed, f"still connected after {elapsed:.1f}s of dripping headers"
    assert elapsed < 1.0 + 1.5, f"disconnected only after {elapsed:.2f}s"
    assert b" 200 " not in data.split(b"\r\n", 1)[0], data[:200]


def test_silent_connection_is_closed_after_header_read_timeout(limits_gatehouse):
    with RawConnection(limits_gatehouse.port) as conn:
        closed, elapsed, _ = wait_for_close(conn, limit=5, drip=None)
    assert closed, "a connection that never sent anything is still open after 5 s"
    assert elapsed < 1.0 + 1.5, f"closed only after {elapsed:.2f}s"


def test_headers_sent_in_pieces_within_the_timeout_are_served(limits_gatehouse):
    with RawConnection(limits_gatehouse.port) as conn:
        conn.send(b"GET /echo/pieces HTTP/1.1\r\n")
        time.sleep(0.3)
        conn.send(b"Host: h\r\n")
        time.sleep(0.3)
        conn.send(b"\r\n")
        response = conn.read_response()
    assert response.status == 200
    assert response.json()["raw_path"] == "/echo/pieces"


def test_slow_request_body_is_not_cut_by_header_read_timeout(limits_gatehouse):
    body = b"0123456789" * 10
    with RawConnection(limits_gatehouse.port, timeout=20) as conn:
        conn.send(b"POST /echo/slowbody HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 10):  # 10 pieces over 2.5 s
            conn.send(body[i : i + 10])
            time.sleep(0.25)
        response = conn.read_response()
    assert response.status == 200, response
    assert response.json()["body_len"] == len(body)


def test_slow_upstream_is_not_cut_by_header_read_timeout(limits_gatehouse):
    response = httpx.get(f"{limits_gatehouse.url}/slow?seconds=2", timeout=30)
    assert response.status_code == 200


def test_gatehouse_answers_head_with_fields_but_no_body(dead_upstream_gatehouse):
    """RFC 9110 §9.3.2: gatehouse's own answer to HEAD (here its 502) carries the GET answer's
    fields, Content-Length included, and no content; on a kept-alive connection the next answer
    must start right after the head (a body would be read as the next status line)."""
    with RawConnection(dead_upstream_gatehouse.port, timeout=10) as conn:
        conn.send(b"HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n")
        head = conn.read_response(head_request=True)
        conn.send(b"GET /y HTTP/1.1\r\nHost: h\r\n\r\n")
        following = conn.read_response()
    assert head.status == 502
    assert int(head.get("content-length")) > 0 and head.body == b""
    assert_json_error(following, 502)
