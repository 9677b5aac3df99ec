"""Long-lived streams: an SSE stream that outlives every timeout except the idle one keeps
flowing, and neither it nor a WebSocket tunnel is cut when the token that opened it expires.

Hours of traffic are simulated fast: many events in bursts, separated by silences just
under GATEHOUSE_UPSTREAM_IDLE_TIMEOUT, with every other timeout set far shorter than the
stream (upstream time-to-headers, header read / keep-alive idle)."""

from __future__ import annotations

import time

import httpx
import pytest
from websockets.sync.client import connect

from auth_support import bearer, start_auth_gatehouse
from tokens import better_auth_payload

BURSTS, BURST, GAP = 7, 600, 1.5  # 4200 events over ~9 s; silences of 1.5 s
TIMEOUTS = {
    "GATEHOUSE_UPSTREAM_IDLE_TIMEOUT": "2s",
    "GATEHOUSE_UPSTREAM_TIMEOUT": "1s",
    "GATEHOUSE_HEADER_READ_TIMEOUT": "1s",
}


def read_events(client: httpx.Client, path: str, headers: dict | None = None) -> tuple[list[int], bool, float]:
    """Reads an SSE stream to its end; returns the event ids, whether the end event came, and
    the longest silence seen."""
    ids: list[int] = []
    ended = False
    longest_gap = 0.0
    last = time.monotonic()
    with client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            now = time.monotonic()
            longest_gap = max(longest_gap, now - last)
            last = now
            if line.startswith("id: "):
                ids.append(int(line[4:]))
            elif line == "event: end":
                ended = True
    return ids, ended, longest_gap


def test_sse_stream_with_long_silences_arrives_whole(gatehouse_factory, upstream):
    gh = gatehouse_factory(upstream.url, **TIMEOUTS)
    with httpx.Client(base_url=gh.url, timeout=httpx.Timeout(10, read=5)) as client:
        ids, ended, longest_gap = read_events(client, f"/sse_pattern?bursts={BURSTS}&burst={BURST}&gap={GAP}")
    assert ids == list(range(BURSTS * BURST))
    assert ended
    assert longest_gap >= GAP * 0.8  # the silences really happened


def test_silence_longer_than_the_idle_timeout_ends_the_stream(gatehouse_factory, upstream):
    gh = gatehouse_factory(upstream.url, **TIMEOUTS)
    with httpx.Client(base_url=gh.url, timeout=httpx.Timeout(10, read=10)) as client:
        with pytest.raises(httpx.RemoteProtocolError):  # cut, not a clean end
            read_events(client, "/sse_pattern?bursts=2&burst=10&gap=3")


def test_token_expiring_mid_stream_cuts_neither_sse_nor_websocket(gatehouse_factory, upstream, key, jwks):
    gh = start_auth_gatehouse(gatehouse_factory, upstream.url, jwks, GATEHOUSE_CLOCK_SKEW="1s", **TIMEOUTS)
    token = key.token(better_auth_payload(jwks.origin, user_id="expiring-user", expires_in=3))
    # The client's pings keep the tunnel under the 2 s idle timeout (any traffic counts).
    with connect(
        gh.url.replace("http://", "ws://") + "/ws/echo", additional_headers=bearer(token), open_timeout=10, ping_interval=0.5
    ) as ws:
        ws.recv(timeout=10)  # handshake description
        with httpx.Client(base_url=gh.url, timeout=httpx.Timeout(10, read=5)) as client:
            ids, ended, _ = read_events(
                client, f"/sse_pattern?bursts={BURSTS}&burst={BURST}&gap={GAP}", headers=bearer(token)
            )
            assert ids == list(range(BURSTS * BURST)) and ended
            # The token has expired by now: a new request with it is refused ...
            late = client.get("/echo/late", headers=bearer(token))
            assert late.status_code == 401
            assert 'error_description="expired"' in late.headers["www-authenticate"]
        # ... while the tunnel opened with it still carries messages.
        ws.send("after expiry")
        assert ws.recv(timeout=5) == "after expiry"
