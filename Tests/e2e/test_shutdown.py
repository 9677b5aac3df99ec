"""SIGTERM: readiness drops at once, traffic is served through the delay, in-flight
requests finish, then the process exits 0."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from conftest import run_gatehouse_command

DELAY = 1.0
TIMEOUT = 5.0


@pytest.fixture
def fresh(gatehouse_factory, upstream):
    return gatehouse_factory(upstream.url, GATEHOUSE_SHUTDOWN_DELAY="1s", GATEHOUSE_SHUTDOWN_TIMEOUT="5s")


class Background:
    """Runs one request in a thread; `.response` or `.error` afterwards."""

    def __init__(self, url: str):
        self.response: httpx.Response | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self.thread.start()

    def _run(self, url: str) -> None:
        try:
            self.response = httpx.get(url, timeout=30)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)


def test_readyz_turns_503_with_reasons_right_after_sigterm(gatehouse_factory, upstream):
    gh = gatehouse_factory(upstream.url, GATEHOUSE_SHUTDOWN_DELAY="3s", GATEHOUSE_SHUTDOWN_TIMEOUT="5s")
    assert run_gatehouse_command(["healthcheck"], gh.env, timeout=5).returncode == 0
    sent_term = time.monotonic()
    gh.proc.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    response = httpx.get(f"{gh.admin_url}/readyz", timeout=5)
    assert response.status_code == 503, f"/readyz answered {response.status_code} 0.1 s after SIGTERM"
    body = response.json()
    assert isinstance(body.get("reasons"), list) and body["reasons"], body
    # the Docker healthcheck subcommand agrees, while traffic is still served
    assert run_gatehouse_command(["healthcheck"], gh.env, timeout=5).returncode == 1
    assert httpx.get(f"{gh.url}/echo/still-served", timeout=5).status_code == 200
    assert time.monotonic() - sent_term < 3, "the checks above did not fit in the delay"
    assert gh.proc.wait(timeout=3 + TIMEOUT + 5) == 0


def test_traffic_is_served_during_the_delay_and_refused_after(fresh):
    fresh.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    during = httpx.get(f"{fresh.url}/echo/during-delay", timeout=5)
    assert during.status_code == 200
    # a brand-new connection, still within the delay
    assert httpx.get(f"{fresh.url}/echo/during-delay-2", timeout=5).status_code == 200

    time.sleep(DELAY + 0.7)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{fresh.url}/echo/after-delay", timeout=3)
    assert fresh.proc.wait(timeout=TIMEOUT + 5) == 0


def test_in_flight_request_completes_and_process_exits_0(fresh):
    slow = Background(f"{fresh.url}/slow?seconds=3")
    time.sleep(0.5)  # the request is in flight
    sent_term = time.monotonic()
    fresh.proc.send_signal(signal.SIGTERM)
    slow.join(timeout=15)
    assert slow.error is None, f"in-flight request failed during shutdown: {slow.error!r}"
    assert slow.response is not None and slow.response.status_code == 200, slow.response
    assert slow.response.json() == {"slept": 3.0}
    code = fresh.proc.wait(timeout=TIMEOUT + 5)
    assert code == 0
    assert time.monotonic() - sent_term < DELAY + TIMEOUT + 2


def test_idle_process_exits_promptly_after_the_delay(fresh):
    sent_term = time.monotonic()
    fresh.proc.send_signal(signal.SIGTERM)
    assert fresh.proc.wait(timeout=DELAY + TIMEOUT + 5) == 0
    elapsed = time.monotonic() - sent_term
    assert elapsed >= DELAY - 0.1, f"exited after {elapsed:.2f}s, before the shutdown delay ended"
    assert elapsed < DELAY + 3, f"an idle gatehouse took {elapsed:.2f}s to exit"


def test_request_longer_than_shutdown_timeout_does_not_block_exit(fresh):
    stuck = Background(f"{fresh.url}/slow?seconds=30")
    time.sleep(0.5)
    sent_term = time.monotonic()
    fresh.proc.send_signal(signal.SIGTERM)
    fresh.proc.wait(timeout=DELAY + TIMEOUT + 5)
    elapsed = time.monotonic() - sent_term
    assert elapsed < DELAY + TIMEOUT + 2, f"exit took {elapsed:.2f}s"
    stuck.join(timeout=5)
    assert stuck.response is None or stuck.response.status_code != 200


def test_idle_connections_on_other_workers_do_not_end_the_drain_early(gatehouse_factory, upstream):
    """Four workers, idle keep-alive connections spread over them, one slow request in
    flight: the drain must wait for the slow request, however the idle ones close. (A worker
    that closed its last idle connection once reported itself drained twice, and the process
    stopped with the slow request cut.)"""
    gh = gatehouse_factory(upstream.url, GATEHOUSE_SHUTDOWN_DELAY="1s", GATEHOUSE_SHUTDOWN_TIMEOUT="8s",
                           GATEHOUSE_WORKERS="4")
    idle = [httpx.Client(timeout=5) for _ in range(16)]
    for client in idle:
        assert client.get(f"{gh.url}/echo/warm").status_code == 200
    slow = Background(f"{gh.url}/slow?seconds=4")
    time.sleep(0.5)
    gh.proc.send_signal(signal.SIGTERM)
    slow.join(timeout=20)
    for client in idle:
        client.close()
    assert slow.error is None, f"in-flight request cut by the drain: {slow.error!r}"
    assert slow.response is not None and slow.response.status_code == 200
    assert slow.response.json() == {"slept": 4.0}
    assert gh.proc.wait(timeout=10) == 0
