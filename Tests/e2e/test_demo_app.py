"""The demo app from deploy/example (what `make demo` runs), behind the real gatehouse."""

from __future__ import annotations

import json
import signal
import time

import httpx
import pytest

from conftest import REPO, start_upstream


@pytest.fixture(scope="module")
def demo(tmp_path_factory, gatehouse_factory):
    app = start_upstream(tmp_path_factory.mktemp("demo"), app="app:app", cwd=REPO / "deploy" / "example")
    try:
        yield gatehouse_factory(app.url)
    finally:
        app.stop(signal.SIGTERM, timeout=3)


def test_hello_sees_the_forwarded_client_and_request_id(demo):
    response = httpx.get(f"{demo.url}/", headers={"X-Request-Id": "demo-1"}, timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["client"] == "127.0.0.1"
    assert body["request_id"] == "demo-1"
    assert "Hello" in body["message"]


def test_me_without_a_user_is_401(demo):
    """/me uses gatehouse-fastapi's CurrentUser: no verified user (this gatehouse runs with
    GATEHOUSE_AUTH=off, so it forwards none) is FastAPI's own 401 with gatehouse's challenge,
    where the app used to answer nulls."""
    response = httpx.get(f"{demo.url}/me", timeout=10)
    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated"}
    assert response.headers["www-authenticate"] == 'Bearer realm="gatehouse"'


def test_items_round_trip(demo):
    listed = httpx.get(f"{demo.url}/items", timeout=10)
    assert listed.status_code == 200 and [i["name"] for i in listed.json()] == ["apple", "bread"]
    created = httpx.post(f"{demo.url}/items", json={"name": "cheese", "price": 7.5}, timeout=10)
    assert created.status_code == 200 and created.json() == {"name": "cheese", "price": 7.5}
    invalid = httpx.post(f"{demo.url}/items", json={"price": "free"}, timeout=10)
    assert invalid.status_code == 422 and "detail" in invalid.json()


def test_events_stream_one_per_second(demo):
    arrivals = []
    started = time.monotonic()
    with httpx.stream("GET", f"{demo.url}/events", timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data:"):
                arrivals.append((json.loads(line[5:])["tick"], time.monotonic() - started))
    assert [tick for tick, _ in arrivals] == [1, 2, 3, 4, 5]
    gaps = [b - a for (_, a), (_, b) in zip(arrivals, arrivals[1:], strict=False)]
    assert all(0.7 < gap < 1.3 for gap in gaps), f"events were not streamed one by one: {arrivals}"
