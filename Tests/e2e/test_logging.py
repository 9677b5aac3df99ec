"""The access log: one line per request on stdout, and no secrets in any output."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from conftest import raw_request

SECRET_TOKEN = "tok-9f8e7d6c5b4a-SECRET"
SECRET_COOKIE = "sess-1a2b3c4d5e6f-COOKIE"
SECRET_QUERY = "qval-0099887766-QUERY"


def flatten(obj, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}; lowercased keys."""
    out = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}{str(key).lower()}."))
    else:
        out[prefix.rstrip(".")] = obj
    return out


def field(entry: dict, *words: str):
    """The first value whose (flattened) key's last part contains one of `words`."""
    for key, value in entry.items():
        leaf = key.rsplit(".", 1)[-1]
        if any(word in leaf for word in words):
            return value
    return None


def json_lines(text: str) -> list[dict]:
    entries = []
    for line in text.splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            entries.append(flatten(parsed))
    return entries


def access_entries(gh, request_id: str) -> list[dict]:
    return [e for e in json_lines(gh.stdout()) if request_id in [str(v) for v in e.values()]]


def wait_for_access_entries(gh, request_id: str, timeout: float = 5) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        entries = access_entries(gh, request_id)
        if entries or time.monotonic() > deadline:
            return entries
        time.sleep(0.1)


@pytest.fixture(scope="module")
def json_gatehouse(gatehouse_factory, upstream):
    return gatehouse_factory(upstream.url, GATEHOUSE_LOG_FORMAT="json")


def test_access_log_line_is_json_on_stdout_with_the_request_facts(json_gatehouse):
    gh = json_gatehouse
    response = httpx.get(
        f"{gh.url}/download_len?size=12345&token={SECRET_QUERY}",
        headers={"X-Request-Id": "log-req-1"},
        timeout=10,
    )
    assert response.status_code == 200
    entries = wait_for_access_entries(gh, "log-req-1")
    assert len(entries) == 1, f"expected one stdout line for the request, got {entries}"
    entry = entries[0]
    assert field(entry, "method") == "GET", entry
    path = field(entry, "path", "target", "uri", "url")
    assert isinstance(path, str) and path.startswith("/download_len"), entry
    assert SECRET_QUERY not in json.dumps(entry), f"query value logged: {entry}"
    assert str(field(entry, "status")) == "200", entry
    size = field(entry, "bytes", "size")
    assert size is not None and int(size) >= 12345, entry
    assert field(entry, "duration", "latency", "elapsed", "took") is not None, entry


def test_every_request_gets_exactly_one_access_line_with_its_status(json_gatehouse):
    gh = json_gatehouse
    cases = {
        "log-a-404": ("GET", "/no/such", 404),
        "log-a-201": ("POST", "/status/201", 201),
        "log-a-500": ("GET", "/status/500", 500),
    }
    for request_id, (method, path, status) in cases.items():
        response = httpx.request(method, f"{gh.url}{path}", headers={"X-Request-Id": request_id}, timeout=10)
        assert response.status_code == status
    for request_id, (method, path, status) in cases.items():
        entries = wait_for_access_entries(gh, request_id)
        assert len(entries) == 1, (request_id, entries)
        assert field(entries[0], "method") == method
        assert str(field(entries[0], "path", "target", "uri", "url")).startswith(path), entries[0]
        assert str(field(entries[0], "status")) == str(status), entries[0]


def test_generated_request_id_is_the_one_logged(json_gatehouse):
    response = httpx.get(f"{json_gatehouse.url}/echo/generated-id", timeout=10)
    request_id = response.headers.get("x-request-id")
    assert request_id
    assert len(wait_for_access_entries(json_gatehouse, request_id)) == 1


def test_access_log_goes_to_stdout_not_stderr(json_gatehouse):
    httpx.get(f"{json_gatehouse.url}/echo/where", headers={"X-Request-Id": "log-where-1"}, timeout=10)
    assert wait_for_access_entries(json_gatehouse, "log-where-1")
    assert "log-where-1" not in json_gatehouse.stderr()


def test_text_format_access_log(gatehouse_factory, upstream):
    gh = gatehouse_factory(upstream.url, GATEHOUSE_LOG_FORMAT="text")
    httpx.get(f"{gh.url}/echo/text-format", headers={"X-Request-Id": "log-text-1"}, timeout=10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [line for line in gh.stdout().splitlines() if "log-text-1" in line]
        if lines:
            break
        time.sleep(0.1)
    assert len(lines) == 1, lines
    assert "GET" in lines[0] and "/echo/text-format" in lines[0] and "200" in lines[0], lines[0]
    with pytest.raises(ValueError):
        json.loads(lines[0])


# ---------------------------------------------------------------------------------------
# secrets


def send_requests_carrying_secrets(gh) -> None:
    auth = {"Authorization": f"Bearer {SECRET_TOKEN}", "Cookie": f"session={SECRET_COOKIE}"}
    with httpx.Client(base_url=gh.url, timeout=10, headers=auth) as c:
        assert c.get(f"/echo/secret?token={SECRET_QUERY}").status_code == 200
        assert c.post("/upload", content=b"data").status_code == 200
        assert c.get("/status/401").status_code == 401
        assert c.get("/status/500").status_code == 500
        assert c.get("/no/such/route").status_code == 404
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            with c.stream("GET", "/die?after=1000") as response:
                for _ in response.iter_raw():
                    pass
    secret_headers = f"Authorization: Bearer {SECRET_TOKEN}\r\nCookie: session={SECRET_COOKIE}\r\n".encode()
    # rejected requests: too large, and malformed
    big = b"GET /echo/big HTTP/1.1\r\nHost: h\r\n" + secret_headers + b"X-Big: " + b"a" * 40000 + b"\r\n\r\n"
    bad = (
        b"POST /echo/bad HTTP/1.1\r\nHost: h\r\n" + secret_headers
        + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    for request in (big, bad):
        try:
            raw_request(gh.port, request, timeout=5)
        except Exception:  # noqa: BLE001 - only the logs matter here
            pass


@pytest.mark.parametrize("level,fmt", [("info", "json"), ("trace", "text")])
def test_credentials_never_appear_in_any_output(gatehouse_factory, upstream, level, fmt):
    gh = gatehouse_factory(
        upstream.url, GATEHOUSE_LOG_LEVEL=level, GATEHOUSE_LOG_FORMAT=fmt, GATEHOUSE_SHUTDOWN_DELAY="100ms"
    )
    send_requests_carrying_secrets(gh)
    gh.terminate_and_wait(timeout=30)  # flushes everything
    output = gh.output()
    assert "/echo/secret" in output, "the requests were not logged at all"
    for secret in (SECRET_TOKEN, SECRET_COOKIE, SECRET_QUERY):
        leaking = [line for line in output.splitlines() if secret in line]
        assert not leaking, f"{secret!r} appears in gatehouse's output:\n" + "\n".join(leaking[:5])
