"""Upstream connections that FastAPI closes after every answer: each request needs a new
socket, and a new socket often gets the number of one just closed."""

from __future__ import annotations

import concurrent.futures

import httpx


def test_answers_on_connections_the_upstream_closes_each_time(gatehouse_factory, upstream):
    # One worker, so every upstream socket comes from one process's descriptor table and the
    # numbers are reused at once; a short upstream timeout, so a request whose new socket was
    # never watched shows as a 504 within seconds instead of hanging for a minute.
    gh = gatehouse_factory(upstream.url, GATEHOUSE_WORKERS="1", GATEHOUSE_UPSTREAM_TIMEOUT="5s")

    def client(index: int) -> list[tuple[int, str]]:
        seen = []
        with httpx.Client(timeout=15) as http:
            for round_ in range(60):
                path = f"/closing/{index}-{round_}" if round_ % 2 == 0 else f"/echo/{index}-{round_}"
                response = http.get(f"{gh.url}{path}")
                seen.append((response.status_code, path))
                if path.startswith("/closing"):
                    assert response.text == f"closing {index}-{round_}"
        return seen

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = [status for future in [pool.submit(client, i) for i in range(8)] for status in future.result()]
    failed = [(status, path) for status, path in results if status != 200]
    assert not failed, f"{len(failed)} of {len(results)} requests failed, first: {failed[:5]}"
