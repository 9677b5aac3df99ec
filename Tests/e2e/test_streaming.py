"""Large bodies stream through in bounded memory; server-sent events are not buffered."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import httpx
import pytest

from upstream_app import payload_chunks, payload_sha256

MiB = 1024 * 1024
SIZE = 100 * MiB
RSS_LIMIT_KIB = 64 * 1024


class RssSampler:
    """Samples gatehouse's VmRSS every 20 ms in a thread; `growth_kib` = max - baseline."""

    def __init__(self, gatehouse):
        self.gatehouse = gatehouse
        self.baseline = gatehouse.rss_kib()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.gatehouse.rss_kib())
            except (FileNotFoundError, ProcessLookupError):
                return
            time.sleep(0.02)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.gatehouse.rss_kib())

    @property
    def growth_kib(self) -> int:
        return self.peak - self.baseline

    def describe(self) -> str:
        return f"RSS {self.baseline} KiB -> peak {self.peak} KiB (+{self.growth_kib / 1024:.1f} MiB)"


@pytest.fixture
def warm(gatehouse_factory, upstream):
    """A fresh gatehouse per big transfer, so each measures its own growth; one small
    transfer each way first, so lazily-allocated pools are in the baseline."""
    gh = gatehouse_factory(upstream.url)
    httpx.post(f"{gh.url}/upload", content=b"x" * MiB, timeout=30).raise_for_status()
    httpx.get(f"{gh.url}/download?size={MiB}", timeout=30).raise_for_status()
    yield gh
    gh.stop()


def generated_upload(size: int):
    for chunk in payload_chunks(size, chunk_size=256 * 1024):
        yield chunk


@pytest.mark.timeout(120)
def test_100mib_streamed_upload_arrives_intact_in_bounded_memory(warm):
    gatehouse = warm
    with RssSampler(gatehouse) as rss:
        # The upstream waits 2 s before reading: a proxy that does not apply backpressure
        # buffers the upload meanwhile.
        response = httpx.post(
            f"{gatehouse.url}/upload?delay=2", content=generated_upload(SIZE), timeout=60
        )
    assert response.status_code == 200, response.text
    assert response.json() == {"len": SIZE, "sha256": payload_sha256(SIZE)}
    assert rss.growth_kib < RSS_LIMIT_KIB, rss.describe()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("reader", ["slow", "fast"])
@pytest.mark.parametrize("endpoint", ["download", "download_len"])
def test_100mib_download_arrives_intact_in_bounded_memory(warm, endpoint, reader):
    gatehouse = warm
    digest = hashlib.sha256()
    length = 0
    with RssSampler(gatehouse) as rss:
        with httpx.stream("GET", f"{gatehouse.url}/{endpoint}?size={SIZE}", timeout=60) as response:
            assert response.status_code == 200
            if endpoint == "download_len":
                assert response.headers.get("content-length") in (str(SIZE), None)
            chunks = response.iter_raw(64 * 1024)
            if reader == "slow":
                # Read 1 MiB, then stall 2 s: the upstream can send everything meanwhile;
                # a proxy without backpressure would buffer it.
                for chunk in chunks:
                    digest.update(chunk)
                    length += len(chunk)
                    if length >= MiB:
                        break
                time.sleep(2)
            for chunk in chunks:
                digest.update(chunk)
                length += len(chunk)
    assert length == SIZE
    assert digest.hexdigest() == payload_sha256(SIZE)
    assert rss.growth_kib < RSS_LIMIT_KIB, rss.describe()


@pytest.mark.timeout(60)
def test_upload_with_content_length_arrives_intact(client):
    size = 10 * MiB
    response = client.put(
        "/upload", content=generated_upload(size), headers={"Content-Length": str(size)}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"len": size, "sha256": payload_sha256(size)}


def test_echoed_binary_body_is_byte_exact(client):
    body = bytes(range(256)) * 4096 + b"\r\n0\r\n\r\n"  # 1 MiB of every byte value, and framing-like bytes
    echo = client.post("/echo/binary", content=body).json()
    assert echo["body_len"] == len(body)
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_empty_download(client):
    response = client.get("/download?size=0")
    assert response.status_code == 200
    assert response.content == b""


# ---------------------------------------------------------------------------------------
# server-sent events


def test_sse_events_arrive_within_100ms_of_being_sent(gatehouse):
    delays = []
    with httpx.stream("GET", f"{gatehouse.url}/sse?count=8&interval=0.25", timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[len("data:"):])
                delays.append((event["i"], time.time() - event["t"]))
    assert [i for i, _ in delays] == list(range(8))
    late = [(i, round(d * 1000)) for i, d in delays if d > 0.1]
    assert not late, f"events delivered late (index, ms): {late}; all: {[(i, round(d * 1000)) for i, d in delays]}"


def test_sse_first_event_is_not_held_back_until_the_stream_ends(gatehouse):
    started = time.monotonic()
    with httpx.stream("GET", f"{gatehouse.url}/sse?count=3&interval=2", timeout=30) as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                first_after = time.monotonic() - started
                break
    assert first_after < 1.0, f"first event arrived after {first_after:.2f}s"
