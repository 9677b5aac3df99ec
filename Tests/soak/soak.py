"""`make soak`: the issue's mixed workload against a real gatehouse, a real uvicorn upstream and
a rotating issuer (which also answers Better Auth's get-session: gatehouse runs with
GATEHOUSE_SESSIONS=both), for SOAK_SECONDS; then the pass table, a report (Markdown + JSON) and a
PNG.

    GATEHOUSE_BIN=.build/release/gatehouse .venv/bin/python Tests/soak/soak.py

Variables:
    SOAK_SECONDS      load duration (default 600)
    SOAK_RATE         requests started per second (default 40)
    SOAK_SSE_SECONDS  SSE stream length range, "min-max" (default 30-120)
    ROTATE_SECONDS    issuer key rotation period (default 60)
    SOAK_WARMUP       seconds before the RSS baseline (default: the longest SSE stream, at least
                      30 s, at most a third of the run)
    SOAK_TOKEN_CACHE_SIZE  gatehouse's GATEHOUSE_TOKEN_CACHE_SIZE (default: what the distinct
                      tokens fill during the warm-up, so the full cache is in the RSS baseline)
    SOAK_SESSIONS     Better Auth sessions in the driver's pool at any time (default 12)
    SOAK_SESSION_SECONDS  their lifetimes, "min-max" (default 60-180; each is used until 35 s
                      before it expires, then replaced by a new one)
    SOAK_SESSION_CACHE_SIZE  gatehouse's GATEHOUSE_SESSION_CACHE_SIZE (default: see below)
    SOAK_RSS_GROWTH_PERCENT  the RSS growth bound after warm-up (default 5; `make test`'s short run: 10)
    SOAK_STRICT_FDS   0: upstream sockets left in CLOSE-WAIT after the load are reported, not a
                      failure (default 1: they fail the run; gatehouse's idle sweep closes them)
    SOAK_COMMIT       the commit to name in the report (default: the repository's HEAD)
    SOAK_REPORT_DIR   where report directories go (default Tests/soak/reports)
    GATEHOUSE_BIN     the binary (default .build/release/gatehouse)

Exit status 0 when every criterion passes, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import time
from dataclasses import asdict

import httpx

import harness as h

SHUTDOWN_DELAY, SHUTDOWN_TIMEOUT = 1.0, 10.0
SESSION_CACHE_TTL = 30.0  # GATEHOUSE_SESSION_CACHE_TTL, gatehouse's default, set explicitly
SESSION_MARGIN = 35.0  # a session is used until this long before its expiresAt


def median_rss(samples: list[h.Sample], start: float, end: float) -> float | None:
    values = [s.rss_kib for s in samples if start <= s.t <= end]
    return statistics.median(values) if values else None


async def main() -> int:
    h.raise_fd_limit()
    seconds = h.env_float("SOAK_SECONDS", 600)
    rate = h.env_float("SOAK_RATE", 40)
    sse_range = h.env_range("SOAK_SSE_SECONDS", (30.0, 120.0))
    rotate = h.env_float("ROTATE_SECONDS", 60)
    warmup = h.env_float("SOAK_WARMUP", min(max(sse_range[1], 30.0), seconds / 3))
    window = min(30.0, seconds / 6)
    strict_fds = os.environ.get("SOAK_STRICT_FDS", "1") == "1"
    # The issue's bound is 5 % over a long run; `make test`'s 60-second run has a 20-second
    # warm-up, too short for the allocator's pools to settle, and allows 10 %.
    rss_limit = float(os.environ.get("SOAK_RSS_GROWTH_PERCENT", "5")) / 100
    binary = h.gatehouse_binary()
    out = h.report_dir("soak")
    commit = h.git_commit()
    print(f"soak: {seconds:.0f} s at {rate:.0f} req/s, SSE {sse_range[0]:.0f}-{sse_range[1]:.0f} s, "
          f"rotation every {rotate:.0f} s, binary {binary}, commit {commit}; report in {out}", flush=True)

    issuer = h.start_issuer(out, rotate)
    upstream = h.start_upstream(out)
    # The verified-token cache is an LRU that grows until full; sized so that the distinct tokens
    # (25 % of the requests) fill it during the warm-up, so it is not mistaken for a leak.
    cache_size = int(os.environ.get("SOAK_TOKEN_CACHE_SIZE") or max(100, min(10000, int(rate * 0.25 * warmup * 0.8))))
    # The session cache (LRU, keyed by kind + credential: a session used as cookie and as bearer
    # is two entries; a made-up cookie is one negative entry for 60 s) likewise: sized to fill
    # during the warm-up, but never so small that an entry still fresh (younger than the TTL)
    # could be evicted, which would add lookups the bound below does not allow. Entries touched
    # within one TTL: 2 per live session, 2 per session that replaces one (at most one per
    # session per shortest usable life), and the made-up cookies (2 % of the requests); twice
    # that is the floor. In short runs the floor is larger than the warm-up fills: then the
    # cache is still filling after the warm-up, by at most (size − credentials seen during the
    # warm-up) entries of about a KiB, reported below.
    pool_size = int(h.env_float("SOAK_SESSIONS", 12))
    lifetimes = h.env_range("SOAK_SESSION_SECONDS", (60.0, 180.0))
    usable = (max(1.0, lifetimes[0] - SESSION_MARGIN), max(1.0, lifetimes[1] - SESSION_MARGIN))
    made_up_rate = rate * 0.02
    floor = 2 * (2 * pool_size * (1 + SESSION_CACHE_TTL / usable[0]) + made_up_rate * SESSION_CACHE_TTL)
    fill = 0.8 * (2 * pool_size * (1 + warmup / ((usable[0] + usable[1]) / 2)) + made_up_rate * warmup)
    session_cache_size = int(os.environ.get("SOAK_SESSION_CACHE_SIZE") or max(64, min(10000, int(max(floor, fill)))))
    config = dict(
        GATEHOUSE_JWKS_TTL="30s",
        GATEHOUSE_TOKEN_CACHE_SIZE=str(cache_size),
        GATEHOUSE_SESSIONS="both",
        GATEHOUSE_SESSION_CACHE_TTL=f"{SESSION_CACHE_TTL:g}s",
        # The issuer is Python on the same two cores as everything else: 5 s instead of the
        # default 2 s, so a stall of the machine is not reported as Better Auth being down.
        GATEHOUSE_SESSION_TIMEOUT="5s",
        GATEHOUSE_SESSION_CACHE_SIZE=str(session_cache_size),
        GATEHOUSE_SHUTDOWN_DELAY=f"{SHUTDOWN_DELAY:.0f}s",
        GATEHOUSE_SHUTDOWN_TIMEOUT=f"{SHUTDOWN_TIMEOUT:.0f}s",
    )
    gh = h.start_gatehouse(binary, out, upstream.url, issuer.origin, **config)
    control = httpx.AsyncClient(timeout=10)
    recorder = h.Recorder()
    rng = random.Random(int(os.environ.get("SOAK_SEED", "1603")))
    ring = h.KeyRing(issuer.control_url, follow=True)
    await ring.refresh(control)
    minter = h.Minter(ring, issuer.origin, rng)
    pool = h.SessionPool(issuer.control_url, random.Random(rng.random()), size=pool_size, lifetime=lifetimes,
                         margin=SESSION_MARGIN)
    await pool.refresh(control)
    ctx = h.Context.create(gh.url, minter, recorder, sse_seconds=sse_range, sessions=pool)
    sampler = h.Sampler(gh.pid, recorder)

    # Baseline: gatehouse idle after start-up.
    await asyncio.sleep(1)
    base = h.proc_sample(gh.pid)
    assert base is not None
    print(f"baseline: RSS {base.rss_kib / 1024:.1f} MiB, {base.fds} fds, {base.threads} threads", flush=True)

    sampler_task = asyncio.create_task(sampler.run())
    ring_task = asyncio.create_task(ring.follow_loop(control))
    pool_task = asyncio.create_task(pool.maintain_loop(control))
    load = h.Load(ctx, h.soak_mix(), rate, seed=rng.randrange(1 << 30))
    progress_task = asyncio.create_task(progress(sampler, recorder, seconds))
    load_started = time.monotonic() - recorder.t0
    await load.run(seconds)
    load_ended = time.monotonic() - recorder.t0
    print(f"load stopped at t={load_ended:.0f} s; waiting for {len(load.tasks)} requests in flight", flush=True)
    stragglers = await load.drain(timeout=sse_range[1] + 60)
    drained = time.monotonic() - recorder.t0
    ring_task.cancel()
    pool_task.cancel()
    progress_task.cancel()
    await ctx.aclose()

    # After the load: fds and threads back to the baseline. Idle keep-alive connections close
    # at the header-read timeout (10 s); uvicorn closes idle upstream connections after 5 s.
    # Watched for at least 15 s and until back (at most 45 s). Upstream sockets in CLOSE-WAIT
    # (uvicorn closed them, libcurl's pool would hold them until the next transfer) are counted
    # apart too: gatehouse's idle sweep must close them (UpstreamMulti).
    observe_until, give_up = time.monotonic() + 15, time.monotonic() + 45
    settled_at = None
    close_wait = 0
    while time.monotonic() < give_up:
        await asyncio.sleep(1)
        now_sample = h.proc_sample(gh.pid)
        close_wait = h.close_wait_sockets(gh.pid, upstream.port)
        if now_sample and now_sample.fds - (0 if strict_fds else close_wait) <= base.fds and now_sample.threads <= base.threads:
            settled_at = settled_at or time.monotonic() - recorder.t0
            if time.monotonic() >= observe_until:
                break
        else:
            settled_at = None
    after = h.proc_sample(gh.pid)
    close_wait = h.close_wait_sockets(gh.pid, upstream.port)
    # A few more requests, twice 1.2 s apart, each on a fresh connection so that every worker
    # (SO_REUSEPORT spreads connections by address) gets some: libcurl prunes dead pooled
    # connections (at most once a second) when a transfer starts, so whatever sat in CLOSE-WAIT
    # must be gone after them. Allowed: one fresh pooled upstream connection per worker and round.
    token, _sub = minter.valid("EdDSA", repeated=True)
    for _ in range(2):
        for _ in range(8):
            async with httpx.AsyncClient(timeout=30) as fresh:
                await fresh.get(f"{gh.url}/echo/after-load", headers=h.bearer(token))
        await asyncio.sleep(1.2)
    after_more = h.proc_sample(gh.pid)
    sampler_task.cancel()
    ready_status, ready_body = await h.readyz(control, gh)
    issuer_state = (await control.get(f"{issuer.control_url}/state")).json()
    fetch_metrics = await h.jwks_fetch_metrics(control, gh)
    session_metrics = await h.session_metrics(control, gh)
    await control.aclose()
    code, exit_seconds = await h.stop_gatehouse(gh, SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT + 10)
    upstream.kill()
    issuer.kill()

    # ---- criteria
    results = recorder.results
    summary = h.summarize_classes(results)
    count = lambda outcome: sum(1 for r in results if r.outcome == outcome)  # noqa: E731
    unexpected, mismatches, hung, transport, cut = (count(h.UNEXPECTED), count(h.MISMATCH), count(h.HUNG),
                                                    count(h.TRANSPORT), count(h.CUT))
    samples = sampler.samples
    rss_base = median_rss(samples, load_started + warmup, load_started + warmup + window)
    rss_end = median_rss(samples, load_ended - window, load_ended)
    rss_growth = (rss_end - rss_base) / rss_base if rss_base and rss_end else None
    peak = max(samples, key=lambda s: s.rss_kib)
    leaks = h.scan_for_tokens([out], minter.signatures, pool.secrets)
    rotations = len(issuer_state["rotations"]) - 1
    # Better Auth sessions: what the issuer was asked, against gatehouse's documented cache.
    by_session = issuer_state["lookups_by_session"]
    outcomes = issuer_state["lookup_outcomes"]
    bound_total, bound_per = pool.lookup_bound(SESSION_CACHE_TTL)
    asked = {key: by_session.get(key[0], {}).get(key[1], 0) for key in pool.uses}
    over = sorted((asked[key] - bound_per[key] for key in pool.uses if asked[key] > bound_per[key]), reverse=True)
    never_asked = sum(1 for key in pool.uses if asked[key] == 0)
    floor_per = pool.lookup_floor(SESSION_CACHE_TTL)
    under = sum(1 for key in pool.uses if asked[key] < floor_per.get(key, 1))
    floor_total = sum(floor_per.values())
    found_lookups = sum(sum(per.values()) for per in by_session.values())
    session_requests = sum(int(use[2]) for use in pool.uses.values())
    sessions_used = len({sid for sid, _ in pool.uses})
    null_lookups, expired_lookups = outcomes.get("null", 0), outcomes.get("expired", 0)
    faulty_lookups = sum(v for k, v in outcomes.items() if k not in ("session", "null", "expired"))
    sm = session_metrics
    gh_found, gh_not_found = sm.get("lookups_found", 0), sm.get("lookups_not_found", 0)
    gh_other = sum(v for k, v in sm.items() if k.startswith("lookups_") and k not in ("lookups_found", "lookups_not_found"))
    warm_end = recorder.t0 + load_started + warmup
    credentials_at_warmup = sum(1 for start, _, _ in pool.uses.values() if start <= warm_end) + sum(
        1 for r in results if r.cls == "refuse_made_up_session" and r.start <= warm_end)
    credentials_total = len(pool.uses) + pool.made_up
    coarse = len(pool.uses) * (int(seconds // SESSION_CACHE_TTL) + 1)
    rows: list[tuple[str, str, str, bool | None]] = [
        ("unexpected statuses", "0", str(unexpected), unexpected == 0),
        ("checksum / echo / sequence mismatches", "0", str(mismatches), mismatches == 0),
        ("hung requests (past their deadline)", "0", str(hung), hung == 0),
        ("transport errors and cut streams", "0", f"{transport} + {cut}", transport + cut == 0),
        (f"RSS growth after warm-up (median of {window:.0f} s at t={load_started + warmup:.0f} s vs the last {window:.0f} s of load)",
         f"< {rss_limit * 100:.0f} %", f"{rss_base / 1024:.1f} → {rss_end / 1024:.1f} MiB ({rss_growth * 100:+.1f} %)" if rss_growth is not None else "no samples",
         rss_growth is not None and rss_growth < rss_limit),
        ("fds back to baseline after the load" + ("" if strict_fds else " (upstream CLOSE-WAIT sockets not counted)"), f"≤ {base.fds} within 45 s",
         f"{after.fds - (0 if strict_fds else close_wait) if after else '?'}" + (f" (from t={settled_at:.0f} s, {settled_at - drained:.0f} s after the last request)" if settled_at else ""),
         after is not None and after.fds - (0 if strict_fds else close_wait) <= base.fds),
        ("idle upstream sockets left in CLOSE-WAIT after the load (libcurl's pool; gatehouse's idle sweep)", "0", str(close_wait),
         close_wait == 0 if strict_fds else (True if close_wait == 0 else "known")),
        ("fds after 2 × 8 more requests (dead pooled connections pruned)", f"≤ {base.fds + 2 * base.threads}",
         str(after_more.fds if after_more else "?"), after_more is not None and after_more.fds <= base.fds + 2 * base.threads),
        ("threads back to baseline after the load", f"≤ {base.threads}", str(after.threads if after else "?"),
         after is not None and after.threads <= base.threads),
        ("requests still running after the drain wait", "0", str(stragglers), stragglers == 0),
        ("/readyz at the end", "200", str(ready_status), ready_status == 200),
        ("SIGTERM at the end: exit code", "0", f"{code} after {exit_seconds:.1f} s", code == 0),
        ("minted tokens or session credentials found in logs/report", "0", str(len(leaks)), not leaks),
        (f"get-session lookups of live sessions (issuer), per credential (session × cookie/bearer) ≤ ⌊(last use − first use) / "
         f"{SESSION_CACHE_TTL:g} s⌋ + 1 (GATEHOUSE_SESSION_CACHE_TTL; a lookup per request would be ~{session_requests}), each ≥ 1",
         f"≤ {bound_total} in total (coarser: credentials × (run / TTL + 1) = {coarse}), none over its own bound",
         f"{found_lookups} for {len(pool.uses)} credentials of {sessions_used} sessions ({pool.created} created, {pool.retired} retired) "
         f"and {session_requests} session requests; over their bound: {len(over)}" + (f" (by {over[:5]})" if over else "")
         + f"; never asked: {never_asked}",
         not over and found_lookups <= bound_total and never_asked == 0),
        ("get-session lookups of live sessions, per credential, at least what an expiring cache needs (a use starting more than "
         f"{SESSION_CACHE_TTL:g} s after the end of the use that last needed a lookup needs another)",
         f"≥ {floor_total} in total, none under its own floor", f"{found_lookups}; under their floor: {under}",
         under == 0 and found_lookups >= floor_total),
        ("made-up session cookies (each value sent once): exactly one lookup each, answered null",
         "null answers = made-up cookies sent; no expired or faulty answer", f"{null_lookups} null answers for {pool.made_up} made-up cookies; "
         f"expired {expired_lookups}, faulty {faulty_lookups}", null_lookups == pool.made_up and expired_lookups == 0 and faulty_lookups == 0),
        ("gatehouse's session lookup metrics agree with the issuer", "found = sessions answered, not_found = nulls answered, others 0",
         f"found {gh_found:g} / {found_lookups}, not_found {gh_not_found:g} / {null_lookups}, others {gh_other:g}",
         gh_found == found_lookups and gh_not_found == null_lookups and gh_other == 0),
        ("session cache (gatehouse metrics)", "reported", f"hits {sm.get('cache_hits', 0):g}, misses {sm.get('cache_misses', 0):g}; "
         f"GATEHOUSE_SESSION_CACHE_SIZE {session_cache_size}: {credentials_at_warmup} credentials seen by the end of the warm-up, "
         f"{credentials_total} in all", None),
    ]
    server = h.access_log_latencies(gh.log_path)
    for name, s in summary.items():
        rows.append((f"p99 {name}", "reported", f"client {h.ms(s['p99_s'])} (p50 {h.ms(s['p50_s'])}, n={s['count']}); "
                     f"gatehouse {h.ms(h.percentile(server.get(name, []), 99))}", None))
    rows.append(("p99 WebSocket message round trip", "reported", h.ms(h.percentile(recorder.ws_rtts, 99)), None))
    passed = all(ok is True for *_, ok in rows if ok is not None and ok != "known")

    total = len(results)
    mix = {name: s["count"] for name, s in summary.items()}
    info = {
        "kind": "soak",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": commit,
        "binary": str(binary),
        "passed": passed,
        "seconds": seconds,
        "rate": rate,
        "sse_seconds": sse_range,
        "rotate_seconds": rotate,
        "warmup_seconds": warmup,
        "gatehouse_env": config,
        "requests": total,
        "mix": mix,
        "shed": dict(recorder.shed),
        "tokens_minted": minter.minted,
        "rotations": rotations,
        "issuer_fetches": issuer_state["fetches"],
        "gatehouse_jwks_fetch_metrics": fetch_metrics,
        "sessions": {
            "pool_size": pool_size, "lifetimes_s": lifetimes, "margin_s": SESSION_MARGIN, "created": pool.created,
            "retired": pool.retired, "used": sessions_used, "credentials": len(pool.uses), "requests": session_requests,
            "made_up_cookies": pool.made_up, "cache_ttl_s": SESSION_CACHE_TTL, "cache_size": session_cache_size,
            "credentials_at_warmup_end": credentials_at_warmup, "credentials_total": credentials_total,
            "issuer_lookups_by_mode": issuer_state["lookups"], "issuer_lookup_outcomes": outcomes,
            "live_session_lookups": found_lookups, "lookup_bound": bound_total, "coarse_bound": coarse,
            "credentials_over_bound": len(over), "gatehouse_session_metrics": session_metrics,
        },
        "baseline": asdict(base),
        "after": asdict(after) if after else None,
        "upstream_close_wait_after": close_wait,
        "after_two_more_requests": asdict(after_more) if after_more else None,
        "rss_peak_kib": peak.rss_kib,
        "rss_base_kib": rss_base,
        "rss_end_kib": rss_end,
        "criteria": [{"criterion": n, "target": t, "measured": m, "pass": ok} for n, t, m, ok in rows],
        "classes": summary,
        "gatehouse_p99_s": {name: h.percentile(v, 99) for name, v in server.items()},
        "samples": [asdict(s) for s in samples],
    }
    h.write_json(out / "report.json", info)
    marks = [(load_started + warmup, "warm-up ends"), (load_ended, "load stops")]
    marks += [(t - recorder.t0, f"gen {g}") for t, g in ring.switches if t - recorder.t0 > 1]
    h.plot(samples, out / "soak.png", f"gatehouse soak {seconds:.0f} s at {rate:.0f} req/s (commit {commit})", marks)
    table = h.criteria_table(rows)
    classes = h.class_table(summary, server)
    markdown = f"""# gatehouse soak — {'PASS' if passed else 'FAIL'}

{info['date']}, commit {commit}, `{binary}`; {seconds:.0f} s at {rate:.0f} req/s started ({total} requests),
SSE {sse_range[0]:.0f}-{sse_range[1]:.0f} s, key rotation every {rotate:.0f} s ({rotations} rotations,
{sum(issuer_state['fetches'].values())} JWKS fetches), {minter.minted} tokens minted; Better Auth sessions:
{pool.created} created ({pool_size} live at a time, lifetimes {lifetimes[0]:.0f}-{lifetimes[1]:.0f} s), {session_requests} session
requests, {sum(issuer_state['lookups'].values())} get-session lookups ({found_lookups} of live sessions, bound {bound_total};
{null_lookups} for {pool.made_up} made-up cookies); gatehouse session cache hits {sm.get('cache_hits', 0):g}, misses {sm.get('cache_misses', 0):g}.
gatehouse settings beyond the defaults: {', '.join(f'{k}={v}' for k, v in config.items())}.

Baseline (idle): RSS {base.rss_kib / 1024:.1f} MiB, {base.fds} fds, {base.threads} threads. Peak RSS
{peak.rss_kib / 1024:.1f} MiB at t={peak.t:.0f} s. Shed arrivals (transfer back-pressure): {dict(recorder.shed) or 0}.

{table}

## Request classes

Latency figure (client side, measured by the driver, which shares the machine): GETs and
refusals to the full body; uploads/downloads the whole exchange; SSE the first event; WebSocket
the handshake. gatehouse's own p99 comes from its access log: `duration_ms` (request head to the
end of the answer), for SSE and WebSockets `upstream_ms` (to FastAPI's response head).

{classes}

![RSS, fds, req/s and p99 over time](soak.png)
"""
    (out / "report.md").write_text(markdown)
    print()
    print(table)
    print()
    print(classes)
    for name, s in summary.items():
        for example in s["examples"]:
            print(f"  {name}: {example}")
    print(f"\nsoak {'PASSED' if passed else 'FAILED'}; report: {out}/report.md", flush=True)
    return 0 if passed else 1


async def progress(sampler: h.Sampler, recorder: h.Recorder, seconds: float) -> None:
    every = 60 if seconds > 120 else 15
    while True:
        await asyncio.sleep(every)
        if not sampler.samples:
            continue
        s = sampler.samples[-1]
        bad = sum(1 for r in recorder.results if r.outcome != h.OK)
        print(f"  t={s.t:5.0f} s  done={len(recorder.results):6d}  not ok={bad}  RSS {s.rss_kib / 1024:6.1f} MiB  "
              f"fds {s.fds:4d}  threads {s.threads}  req/s {s.req_per_s:5.1f}  p99 {h.ms(s.p99_short)}  "
              f"sse {s.sse_open} ws {s.ws_open} transfers {s.transfers}", flush=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
