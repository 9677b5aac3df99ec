"""What reaches FastAPI, and what reaches the client: methods, targets, headers, statuses."""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest

from conftest import RawConnection, header_values, raw_request

# ---------------------------------------------------------------------------------------
# methods and bodies


@pytest.mark.parametrize("method", ["GET", "DELETE", "OPTIONS", "PURGE"])
def test_methods_without_body_reach_upstream(client, method):
    response = client.request(method, "/echo/m")
    assert response.status_code == 200, response.text
    assert response.json()["method"] == method
    assert response.json()["body_len"] == 0


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "PURGE"])
def test_methods_with_body_reach_upstream_with_the_body(client, method):
    body = b"payload-" + bytes(range(256)) * 40
    response = client.request(method, "/echo/m", content=body)
    assert response.status_code == 200, response.text
    echo = response.json()
    assert echo["method"] == method
    assert echo["body_len"] == len(body)
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert header_values(echo, "content-length") == [str(len(body))]


def test_head_gets_the_get_headers_and_no_body(gatehouse):
    with RawConnection(gatehouse.port) as conn:
        conn.send(b"HEAD /download_len?size=12345 HTTP/1.1\r\nHost: h\r\n\r\n")
        head = conn.read_response(head_request=True)
        assert head.status == 200
        assert head.get("content-length") in ("12345", None)
        # no body bytes may follow: the next response on the connection must parse cleanly
        conn.send(b"GET /echo/after-head HTTP/1.1\r\nHost: h\r\n\r\n")
        after = conn.read_response()
        assert after.status == 200, after
        assert after.json()["raw_path"] == "/echo/after-head"


def test_chunked_request_body_is_forwarded(gatehouse):
    body = b"hello, chunked world"
    request = (
        b"POST /echo/chunked HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"7\r\nhello, \r\nd\r\nchunked world\r\n0\r\n\r\n"
    )
    response = raw_request(gatehouse.port, request)
    assert response.status == 200, response
    echo = response.json()
    assert echo["body_len"] == len(body)
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()


# ---------------------------------------------------------------------------------------
# request target, byte for byte

TARGETS = [
    "/echo/a%2Fb/c+d?x=1&x=2&y=%20&z=caf%C3%A9",
    "/echo/%7Euser/%2f%2F/semi;colon=1,comma?",
    "/echo//double//slashes/?a=&&b",
    "/echo/dot/./segments/../kept?q=a%26b%3Dc",
    "/echo/UPPER/%41%42?Z=%5B%5D&sort=-name",
    "/echo/" + "long" * 500 + "?" + "k=v&" * 300,
]


@pytest.mark.parametrize("target", TARGETS, ids=range(len(TARGETS)))
def test_path_and_query_arrive_byte_for_byte(gatehouse, target):
    response = raw_request(gatehouse.port, f"GET {target} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    assert response.status == 200, response
    path, _, query = target.partition("?")
    echo = response.json()
    assert echo["raw_path"] == path
    assert echo["query_string"] == query


@pytest.mark.parametrize("prefix", ["/echo/prefix", "/echo/prefix/"], ids=["plain", "trailing-slash"])
def test_path_prefix_of_upstream_is_prepended(gatehouse_factory, tcp_upstream, prefix):
    # A path prefix needs an http:// upstream (a unix: one is a socket path and nothing else).
    gh = gatehouse_factory(f"{tcp_upstream.url}{prefix}")
    response = raw_request(gh.port, b"GET /a%2Fb/c?x=1&y=%20 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert response.status == 200, response
    assert response.json()["raw_path"] == "/echo/prefix/a%2Fb/c"
    assert response.json()["query_string"] == "x=1&y=%20"
    root = raw_request(gh.port, b"GET /?q=1 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert root.status == 200, root
    assert root.json()["raw_path"] in ("/echo/prefix", "/echo/prefix/")
    assert root.json()["query_string"] == "q=1"


# ---------------------------------------------------------------------------------------
# Host, X-Forwarded-*, X-Request-Id


def test_host_header_reaches_upstream_unchanged(gatehouse):
    response = raw_request(gatehouse.port, b"GET /echo/host HTTP/1.1\r\nHost: api.example.test:8443\r\n\r\n")
    echo = response.json()
    assert header_values(echo, "host") == ["api.example.test:8443"]
    assert header_values(echo, "x-forwarded-host") == ["api.example.test:8443"]


def test_forwarded_headers_are_set_for_a_direct_client(client):
    echo = client.get("/echo/xff", headers={"Host": "shop.example.test"}).json()
    assert header_values(echo, "x-forwarded-for") == ["127.0.0.1"]
    assert header_values(echo, "x-forwarded-proto") == ["http"]
    assert header_values(echo, "x-forwarded-host") == ["shop.example.test"]


def test_untrusted_client_cannot_spoof_forwarded_headers(gatehouse):
    request = (
        b"GET /echo/spoof HTTP/1.1\r\nHost: real.example.test\r\n"
        b"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7, 8.8.8.8\r\n"
        b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example.test\r\n\r\n"
    )
    echo = raw_request(gatehouse.port, request).json()
    assert header_values(echo, "x-forwarded-for") == ["127.0.0.1"]
    assert header_values(echo, "x-forwarded-proto") == ["http"]
    assert header_values(echo, "x-forwarded-host") == ["real.example.test"]


def test_trusted_proxy_chain_is_kept_and_extended(gatehouse_factory, upstream):
    gh = gatehouse_factory(upstream.url, GATEHOUSE_TRUSTED_PROXIES="127.0.0.0/8")
    echo = httpx.get(f"{gh.url}/echo/trusted", headers={"X-Forwarded-For": "203.0.113.7"}, timeout=10).json()
    assert header_values(echo, "x-forwarded-for") == ["203.0.113.7, 127.0.0.1"]
    plain = httpx.get(f"{gh.url}/echo/trusted", timeout=10).json()
    assert header_values(plain, "x-forwarded-for") == ["127.0.0.1"]


def test_trusted_proxies_list_that_excludes_the_peer_overwrites(gatehouse_factory, upstream):
    gh = gatehouse_factory(upstream.url, GATEHOUSE_TRUSTED_PROXIES="10.0.0.0/8,192.168.0.0/16")
    echo = httpx.get(f"{gh.url}/echo/untrusted", headers={"X-Forwarded-For": "203.0.113.7"}, timeout=10).json()
    assert header_values(echo, "x-forwarded-for") == ["127.0.0.1"]


def test_client_request_id_is_passed_through_and_returned(client):
    response = client.get("/echo/rid", headers={"X-Request-Id": "req-abc-123"})
    assert header_values(response.json(), "x-request-id") == ["req-abc-123"]
    assert response.headers.get_list("x-request-id") == ["req-abc-123"]


def test_request_id_is_generated_when_missing_and_returned(client):
    first = client.get("/echo/rid")
    second = client.get("/echo/rid")
    upstream_ids = [header_values(r.json(), "x-request-id") for r in (first, second)]
    assert all(len(ids) == 1 and ids[0] for ids in upstream_ids), upstream_ids
    assert first.headers.get("x-request-id") == upstream_ids[0][0]
    assert second.headers.get("x-request-id") == upstream_ids[1][0]
    assert upstream_ids[0] != upstream_ids[1], "two requests got the same generated id"


def test_request_id_is_returned_on_upstream_errors_too(client):
    response = client.get("/status/500", headers={"X-Request-Id": "err-req-1"})
    assert response.status_code == 500
    assert response.headers.get("x-request-id") == "err-req-1"


def test_end_to_end_headers_reach_upstream_in_order_with_repeats(gatehouse):
    request = (
        b"GET /echo/h HTTP/1.1\r\nHost: h\r\nX-Repeat: one\r\nAccept: application/json\r\n"
        b"X-Repeat: two\r\nAuthorization: Bearer abc.def.ghi\r\nX-Empty-Ok: x\r\n\r\n"
    )
    echo = raw_request(gatehouse.port, request).json()
    assert header_values(echo, "x-repeat") == ["one", "two"]
    assert header_values(echo, "authorization") == ["Bearer abc.def.ghi"]
    assert header_values(echo, "accept") == ["application/json"]


# ---------------------------------------------------------------------------------------
# hop-by-hop fields, both directions

REQUEST_HOP_NAMES = ["keep-alive", "proxy-connection", "te", "upgrade", "trailer", "proxy-authorization", "x-secret-hop"]


def test_hop_by_hop_request_headers_do_not_reach_upstream(gatehouse):
    request = (
        b"GET /echo/hop HTTP/1.1\r\nHost: h\r\n"
        b"Connection: keep-alive, X-Secret-Hop\r\n"
        b"X-Secret-Hop: 1\r\n"
        b"Keep-Alive: timeout=5\r\n"
        b"Proxy-Connection: keep-alive\r\n"
        b"TE: trailers\r\n"
        b"Upgrade: foo\r\n"
        b"Trailer: X-T\r\n"
        b"Proxy-Authorization: Basic dXNlcjpwYXNz\r\n"
        b"X-Normal: yes\r\n\r\n"
    )
    response = raw_request(gatehouse.port, request)
    assert response.status == 200, response
    echo = response.json()
    leaked = {name: header_values(echo, name) for name in REQUEST_HOP_NAMES if header_values(echo, name)}
    assert not leaked, f"hop-by-hop request headers reached upstream: {leaked}"
    assert not [v for v in header_values(echo, "connection") if "x-secret-hop" in v.lower()]
    assert not header_values(echo, "transfer-encoding")  # no body was sent
    assert header_values(echo, "x-normal") == ["yes"]


def test_hop_by_hop_response_headers_do_not_reach_client(gatehouse):
    response = raw_request(gatehouse.port, b"GET /hop HTTP/1.1\r\nHost: h\r\n\r\n")
    assert response.status == 200, response
    names = {k.lower() for k, _ in response.headers}
    leaked = names & {"x-secret-hop", "keep-alive", "proxy-authenticate", "trailer", "upgrade", "proxy-connection"}
    assert not leaked, f"hop-by-hop response headers reached the client: {response.headers}"
    assert not [v for v in response.get_all("connection") if "x-secret-hop" in v.lower()]
    assert response.get("x-normal") == "yes"
    assert response.body == b"hop"


def test_set_cookie_and_repeated_headers_keep_count_and_order(client):
    response = client.get("/cookies")
    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert response.headers.get_list("x-multi") in (["one", "two"], ["one, two"])
    assert response.text == "cookies"


# ---------------------------------------------------------------------------------------
# status codes

STATUSES = [
    200, 201, 202, 203, 206, 301, 302, 307, 308,
    400, 401, 403, 404, 405, 409, 410, 418, 422, 429, 500, 501, 502, 503, 504,
]


@pytest.mark.parametrize("code", STATUSES)
def test_status_code_passes_through_with_body(client, code):
    response = client.get(f"/status/{code}")
    assert response.status_code == code
    assert response.json() == {"status": code}


def test_redirects_are_passed_not_followed(client):
    response = client.get("/status/302")
    assert response.status_code == 302
    assert response.headers.get("location") == "/echo/redirected"


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses_have_no_body_and_keep_the_connection_usable(gatehouse, code):
    with RawConnection(gatehouse.port) as conn:
        conn.send(f"GET /status/{code} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        first = conn.read_response()
        assert first.status == code
        assert first.get("transfer-encoding") is None, first
        assert first.get("content-length") in (None, "0"), first
        conn.send(b"GET /echo/next HTTP/1.1\r\nHost: h\r\n\r\n")
        second = conn.read_response()
        assert second.status == 200, f"connection corrupted after {code}: {second}"
        assert second.json()["raw_path"] == "/echo/next"


def test_head_of_a_status_endpoint(gatehouse):
    with RawConnection(gatehouse.port) as conn:
        conn.send(b"HEAD /status/404 HTTP/1.1\r\nHost: h\r\n\r\n")
        assert conn.read_response(head_request=True).status == 404
        conn.send(b"GET /status/201 HTTP/1.1\r\nHost: h\r\n\r\n")
        again = conn.read_response()
        assert again.status == 201 and again.json() == {"status": 201}


def test_keep_alive_connection_serves_many_requests(gatehouse):
    with RawConnection(gatehouse.port) as conn:
        for i in range(20):
            conn.send(f"GET /echo/ka/{i} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
            response = conn.read_response()
            assert response.status == 200
            assert response.json()["raw_path"] == f"/echo/ka/{i}"


def test_pipelined_requests_are_answered_in_order(gatehouse):
    with RawConnection(gatehouse.port) as conn:
        conn.send(b"".join(f"GET /echo/pipe/{i} HTTP/1.1\r\nHost: h\r\n\r\n".encode() for i in range(5)))
        paths = [conn.read_response().json()["raw_path"] for _ in range(5)]
    assert paths == [f"/echo/pipe/{i}" for i in range(5)]


def test_upstream_json_content_type_and_fastapi_404_pass_through(client):
    response = client.get("/no/such/route")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": "Not Found"}


def test_a_request_to_an_idle_proxy_is_forwarded_at_once(gatehouse):
    """gatehouse's curl thread sleeps in curl_multi_poll (1 s timeout) when no transfer is
    active, and is woken only when it is asleep. A lost wake-up would not fail a request: it
    would hold each one until that poll timed out, about 0.7 s here. Each request below
    arrives 0.3 s after the previous one finished, when the thread is asleep again."""
    with httpx.Client(base_url=f"http://127.0.0.1:{gatehouse.port}", timeout=10) as fresh:
        for _ in range(3):
            time.sleep(0.3)
            started = time.monotonic()
            response = fresh.get("/echo/idle")
            elapsed = time.monotonic() - started
            assert response.status_code == 200, response.text
            assert elapsed < 0.4, f"request took {elapsed:.3f} s: the curl thread was not woken"
