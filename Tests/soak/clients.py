"""Helper processes for the chaos run, kept out of the driver's event loop so that neither
thousands of sockets nor the driver's own work distort what is measured.

    python clients.py probe --url URL --rate 20 --seconds 15
        Sequential GETs (keep-alive) at `rate`/s for `seconds`, with the token in the
        environment variable SOAK_PROBE_TOKEN (never on the command line, never printed).
        Prints one JSON object: count, statuses, p50/p99/max latency.

    python clients.py flood --port P --idle 2000 --slowloris 200 --open-seconds 30 --grace 14
        `idle` connections that send nothing and `slowloris` connections that send a request
        line and then one header line a second, never finishing the head. While
        `open-seconds` last, each one is reopened when the server cuts it; then the open ones
        get `grace` seconds to be cut. Prints one JSON object: for each kind, connections
        opened, seconds from open to the server's cut (min/p50/max), connections never cut,
        answers that were not a bare close (any bytes starting with an HTTP status line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import sys
import time

import httpx


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def probe(url: str, rate: float, seconds: float) -> dict:
    token = os.environ.get("SOAK_PROBE_TOKEN")
    headers = {"authorization": f"Bearer {token}"} if token else {}
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors = 0
    with httpx.Client(timeout=30) as client:
        start = time.monotonic()
        i = 0
        while True:
            due = start + i / rate
            if due - start >= seconds:
                break
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            i += 1
            t = time.monotonic()
            try:
                response = client.get(url, headers=headers)
                latencies.append(time.monotonic() - t)
                statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
            except httpx.HTTPError:
                errors += 1
    return {
        "count": len(latencies), "errors": errors, "statuses": statuses,
        "p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "max": max(latencies) if latencies else None,
    }


async def flood(port: int, idle: int, slowloris: int, open_seconds: float, grace: float) -> dict:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop = asyncio.get_running_loop()
    stop_opening = loop.time() + open_seconds
    hard_end = stop_opening + grace
    stats = {kind: {"opened": 0, "cut_after": [], "never_cut": 0, "answered": 0, "connect_errors": 0}
             for kind in ("idle", "slowloris")}

    async def one(kind: str, index: int) -> None:
        # Stagger the first connections over ~2 s: a burst of thousands would only test the
        # listen backlog.
        await asyncio.sleep(2.0 * index / max(1, idle + slowloris))
        s = stats[kind]
        while loop.time() < stop_opening:
            # Timed from before connect(): gatehouse's timer cannot start earlier, so a cut
            # measured before the header timeout is an early cut, whatever this loop's lag (with
            # thousands of sockets it notices a connection, and a cut, late).
            opened = loop.time()
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
            except (OSError, asyncio.TimeoutError):
                s["connect_errors"] += 1
                await asyncio.sleep(0.5)
                continue
            s["opened"] += 1
            cut = False
            data = b""
            try:
                if kind == "slowloris":
                    writer.write(b"GET /echo/slowloris HTTP/1.1\r\nHost: gatehouse\r\n")
                n = 0
                while loop.time() < hard_end:
                    try:
                        chunk = await asyncio.wait_for(reader.read(4096), 1.0)
                    except asyncio.TimeoutError:
                        if kind == "slowloris":
                            n += 1
                            writer.write(b"X-Drip-%d: a\r\n" % n)
                            await writer.drain()
                        continue
                    if not chunk:
                        cut = True
                        break
                    data += chunk
            except (ConnectionResetError, BrokenPipeError, OSError):
                cut = True
            finally:
                writer.close()
            if cut:
                s["cut_after"].append(loop.time() - opened)
            else:
                s["never_cut"] += 1
            if data.startswith(b"HTTP/"):
                s["answered"] += 1
                s.setdefault("answers", []).append(data.split(b"\r\n", 1)[0].decode("latin-1"))
            if not cut:
                return

    tasks = [asyncio.create_task(one("idle", i)) for i in range(idle)]
    tasks += [asyncio.create_task(one("slowloris", idle + i)) for i in range(slowloris)]
    await asyncio.gather(*tasks)
    out = {}
    for kind, s in stats.items():
        cuts = s.pop("cut_after")
        out[kind] = dict(s, cuts=len(cuts), cut_min=min(cuts) if cuts else None, cut_p50=percentile(cuts, 50),
                         cut_max=max(cuts) if cuts else None)
        if "answers" in out[kind]:
            out[kind]["answers"] = sorted(set(out[kind]["answers"]))[:5]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--url", required=True)
    p.add_argument("--rate", type=float, default=20)
    p.add_argument("--seconds", type=float, default=15)
    f = sub.add_parser("flood")
    f.add_argument("--port", type=int, required=True)
    f.add_argument("--idle", type=int, default=2000)
    f.add_argument("--slowloris", type=int, default=200)
    f.add_argument("--open-seconds", type=float, default=30)
    f.add_argument("--grace", type=float, default=14)
    args = parser.parse_args()
    if args.cmd == "probe":
        result = probe(args.url, args.rate, args.seconds)
    else:
        result = asyncio.run(flood(args.port, args.idle, args.slowloris, args.open_seconds, args.grace))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
