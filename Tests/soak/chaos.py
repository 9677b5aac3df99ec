"""`make chaos`: the soak workload at a lower rate while faults are injected one after another;
every fault's expected outcome is asserted, and background requests are judged too: an answer
other than the expected one counts as a failure unless it falls inside a fault window that
allows it (502 or a cut while the upstream is down; a refused connection or a cut during the
drain; 503 "Authentication service unavailable" for a session request while get-session fails).
A 200 with a wrong or short body, or a request past its deadline, is never allowed.

The mix includes Better Auth sessions (cookie and bearer, from a renewing pool, and made-up
cookies; gatehouse runs with GATEHOUSE_SESSIONS=both and GATEHOUSE_SESSION_CACHE_TTL=15s). The
issuer serves get-session on the JWKS listener, so its 500 and garbage faults and its outage hit
sessions too ("many" is JWKS-only): there a session gatehouse has cached still gets 200, one it
has not gets 503 with Retry-After, never 401, and a made-up cookie never 200.

    GATEHOUSE_BIN=.build/release/gatehouse .venv/bin/python Tests/soak/chaos.py
    CHAOS_QUICK=1 ...   the subset for `make test` (about 2.5 minutes)
    (the full run: about 6.5 minutes)

Faults, in order (quick-mode differences in brackets):
 1. quiet: latency probe, no fault (the reference for the slowloris phase is re-measured next to it)
 2. kid flood: tokens with unknown kids at ~40/s for 30 s [12 s]
 3. issuer answers 500, then garbage, then a well-formed JWKS of 101 unrelated keys, 15 s each [5 s]
 4. issuer stopped (connection refused) for 90 s [25 s], a key rotation inside it
 5. uvicorn killed with SIGKILL, restarted 2 s later
 6. upstream answers 10 s late for 20 s [12 s]
 7. 2000 idle connections and 200 slowloris clients for 30 s [500 and 50, 8 s], kept up by
    reconnecting
 8. a 1 GiB upload abandoned after 512 MiB [128 MiB after 64 MiB]
 9. everything at once for 60 s [left out]: issuer stopped, unknown kids at 20/s, 1000 idle and
    100 slowloris connections, uvicorn SIGKILL (restarted 2 s later), a 256 MiB upload abandoned
    at 128 MiB; then recovery within 3 s
10. SIGTERM during load, with tagged in-flight requests

Latency comparison (1 against 7): no background upload or download runs during the quiet runs
and the flood's probe, and the flood's clients run at nice 19 (they stand for other machines).

Variables: CHAOS_QUICK, CHAOS_RATE (background requests/s, default 15 [10]), SOAK_REPORT_DIR,
GATEHOUSE_BIN. Exit status 0 when every assertion holds.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import signal
import socket
import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable

import httpx

import harness as h
import payload

QUICK = os.environ.get("CHAOS_QUICK") == "1"


@dataclass
class Settings:
    rate: float = h.env_float("CHAOS_RATE", 10 if QUICK else 15)
    sse_seconds: tuple[float, float] = (5.0, 15.0) if QUICK else (10.0, 30.0)
    quiet_seconds: float = 8 if QUICK else 20
    flood_seconds: float = 12 if QUICK else 30
    issuer_fault_seconds: float = 5 if QUICK else 15
    outage_seconds: float = 25 if QUICK else 90
    late_seconds: float = 12 if QUICK else 20
    idle_connections: int = 500 if QUICK else 2000
    slowloris_clients: int = 50 if QUICK else 200
    flood_open_seconds: float = 8 if QUICK else 30
    abandon_total: int = (128 if QUICK else 1024) << 20
    abandon_after: int = (64 if QUICK else 512) << 20
    # everything at once (the full run only: the quick pass must fit in 3 minutes)
    bad_day_seconds: float = 0 if QUICK else 60
    # gatehouse
    jwks_ttl: float = 15
    cooldown: float = 5
    fetch_timeout: float = 2
    header_timeout: float = 10
    shutdown_delay: float = 2
    shutdown_timeout: float = 10 if QUICK else 15
    upstream_timeout: float = 30
    session_ttl: float = 15  # shorter than the outage, so a cached session is seen to expire inside it

    def gatehouse_env(self) -> dict:
        return dict(
            GATEHOUSE_JWKS_TTL=f"{self.jwks_ttl:g}s",
            GATEHOUSE_JWKS_REFETCH_COOLDOWN=f"{self.cooldown:g}s",
            GATEHOUSE_JWKS_FETCH_TIMEOUT=f"{self.fetch_timeout:g}s",
            GATEHOUSE_HEADER_READ_TIMEOUT=f"{self.header_timeout:g}s",
            GATEHOUSE_SHUTDOWN_DELAY=f"{self.shutdown_delay:g}s",
            GATEHOUSE_SHUTDOWN_TIMEOUT=f"{self.shutdown_timeout:g}s",
            GATEHOUSE_UPSTREAM_TIMEOUT=f"{self.upstream_timeout:g}s",
            GATEHOUSE_SESSIONS="both",
            GATEHOUSE_SESSION_CACHE_TTL=f"{self.session_ttl:g}s",
        )


@dataclass
class Window:
    """A fault's time span, and which non-OK background outcomes it excuses."""

    name: str
    start: float
    end: float
    allows: Callable[[h.Result], bool]


def session_unavailable(r: h.Result) -> bool:
    """A session request (valid or made-up) answered 503 'Authentication service unavailable'
    with Retry-After: what gatehouse owes an uncached session while get-session fails."""
    return r.cls in h.SESSION_CLASSES and h.session_unavailable(r)


@dataclass
class Row:
    fault: str
    expected: str
    observed: str
    ok: bool


class Chaos:
    def __init__(self, s: Settings) -> None:
        self.s = s
        self.rows: list[Row] = []
        self.windows: list[Window] = []
        self.marks: list[tuple[float, str]] = []
        self.out = h.report_dir("chaos-quick" if QUICK else "chaos")
        self.binary = h.gatehouse_binary()
        self.rng = random.Random(int(os.environ.get("SOAK_SEED", "2711")))
        self.recorder = h.Recorder()
        self.ready_log: list[tuple[float, int, str | None]] = []
        self.upstreams: list[h.UpstreamProc] = []
        self.pause_late: list[float] = []  # when transfers were still running after a 60-s wait

    # -- helpers --------------------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() - self.recorder.t0

    def check(self, fault: str, expected: str, observed: str, ok: bool) -> bool:
        self.rows.append(Row(fault, expected, observed, bool(ok)))
        print(f"  [{'PASS' if ok else 'FAIL'}] {fault}: expected {expected}; observed {observed}", flush=True)
        return bool(ok)

    def phase(self, name: str) -> None:
        self.marks.append((self.now(), name))
        print(f"t={self.now():6.1f} s  {name}", flush=True)

    def wall_to_rel(self, wall: float) -> float:
        return wall - self.wall0 + self.mono0 - self.recorder.t0

    async def issuer_state(self) -> dict:
        return (await self.control.get(f"{self.issuer.control_url}/state")).json()

    async def issuer_post(self, path: str) -> None:
        response = await self.control.post(f"{self.issuer.control_url}{path}")
        response.raise_for_status()

    async def fetches_between(self, start_rel: float, end_rel: float, mode: str | None = None) -> list[float]:
        state = await self.issuer_state()
        return [self.wall_to_rel(t) for t, m, _ in state["fetch_log"]
                if start_rel <= self.wall_to_rel(t) <= end_rel and (mode is None or m == mode)]

    async def get(self, path: str, token: str | None, client: httpx.AsyncClient | None = None) -> tuple[int | str, str]:
        """(status or exception name, detail) of one GET through gatehouse."""
        try:
            response = await (client or self.ctx.short).get(path, headers=h.bearer(token), timeout=30)
        except httpx.HTTPError as exc:
            return type(exc).__name__, ""
        try:
            detail = response.json().get("detail", "") if response.status_code != 200 else ""
        except ValueError:
            detail = ""
        return response.status_code, detail

    async def session_get(self, via: str, value: str) -> tuple[int | str, str, str | None, bool]:
        """(status or exception name, detail, X-User-Id FastAPI saw when X-Auth-Method was
        session, Retry-After sent) of one GET with a session cookie or bearer value."""
        headers = h.session_cookie(value) if via == "cookie" else h.bearer(value)
        try:
            response = await self.ctx.short.get("/echo/chaos-session", headers=headers, timeout=30)
        except httpx.HTTPError as exc:
            return type(exc).__name__, "", None, False
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code == 200:
            return 200, "", body.get("user") if body.get("method") == "session" else None, False
        return response.status_code, body.get("detail", "") if isinstance(body, dict) else "", None, "retry-after" in response.headers

    async def trigger_fetch(self, mode: str | None = None, wait: float = 8.0) -> bool:
        """Sends unknown-kid tokens until the issuer records a fetch (on-demand fetches are
        allowed once per cooldown); True when one came within `wait` seconds."""
        since = self.now()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            await self.get("/echo/trigger", self.minter.unknown_kid())
            if await self.fetches_between(since, self.now() + 1, mode):
                return True
            await asyncio.sleep(0.5)
        return False

    async def probe(self, seconds: float, name: str = "probe", rate: float = 20) -> dict:
        """Sequential GETs from a separate process; `name` is the path's class (/echo/<name>),
        so gatehouse's access log gives its own latency for each probe run apart."""
        token, _ = self.minter.valid("EdDSA", repeated=True)
        env = dict(os.environ, SOAK_PROBE_TOKEN=token)
        proc = await asyncio.create_subprocess_exec(
            h.PY, str(h.HERE / "clients.py"), "probe", "--url", f"{self.gh.url}/echo/{name}", "--rate", str(rate),
            "--seconds", str(seconds), env=env, stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        return json.loads(out)

    async def poll_ready(self) -> None:
        while True:
            try:
                status, body = await h.readyz(self.control, self.gh)
                self.ready_log.append((self.now(), status, (body.get("jwks") or {}).get("last_error")))
            except httpx.HTTPError as exc:
                self.ready_log.append((self.now(), 0, type(exc).__name__))
            await asyncio.sleep(0.5)

    def ready_between(self, start: float, end: float) -> list[tuple[float, int, str | None]]:
        return [entry for entry in self.ready_log if start <= entry[0] <= end]

    async def distinct_all_algorithms(self, generation: int | None = None) -> list[int | str]:
        """One fresh token per algorithm (a signature check each, not the token cache)."""
        statuses = []
        for alg in h.ALGORITHMS:
            token, _ = self.minter.valid(alg, repeated=False, generation=generation)
            statuses.append((await self.get(f"/echo/distinct/{alg}", token))[0])
        return statuses

    # -- the run --------------------------------------------------------------------------

    async def run(self) -> int:
        s = self.s
        h.raise_fd_limit()
        commit = h.git_commit()
        print(f"chaos{' (quick)' if QUICK else ''}: background {s.rate:g} req/s, binary {self.binary}, commit {commit}; "
              f"report in {self.out}", flush=True)
        self.issuer = h.start_issuer(self.out, 0)
        self.upstream = h.start_upstream(self.out)
        self.upstreams.append(self.upstream)
        self.gh = h.start_gatehouse(self.binary, self.out, self.upstream.url, self.issuer.origin, **s.gatehouse_env())
        self.wall0, self.mono0 = time.time(), time.monotonic()
        self.control = httpx.AsyncClient(timeout=10)
        self.ring = h.KeyRing(self.issuer.control_url, follow=False)
        await self.ring.refresh(self.control)
        self.minter = h.Minter(self.ring, self.issuer.origin, self.rng)
        self.sessions = h.SessionPool(self.issuer.control_url, random.Random(self.rng.random()))
        await self.sessions.refresh(self.control)
        self.ctx = h.Context.create(self.gh.url, self.minter, self.recorder, sse_seconds=s.sse_seconds,
                                    sessions=self.sessions)
        self.sampler = h.Sampler(self.gh.pid, self.recorder)
        tasks = [asyncio.create_task(self.sampler.run()), asyncio.create_task(self.poll_ready()),
                 asyncio.create_task(self.sessions.maintain_loop(self.control))]
        self.load = h.Load(self.ctx, h.soak_mix(), s.rate, seed=self.rng.randrange(1 << 30))
        load_task = asyncio.create_task(self.load.run(24 * 3600))
        exit_code: int | None = None
        try:
            await asyncio.sleep(3)
            await self.quiet()
            await self.kid_flood()
            await self.issuer_faults()
            await self.issuer_outage()
            await self.upstream_kill()
            await self.upstream_late()
            await self.slowloris()
            await self.abandoned_upload()
            await self.bad_day()
            exit_code = await self.sigterm(load_task)
        except Exception as exc:  # noqa: BLE001 - reported as a failed row, then the report is written
            import traceback

            traceback.print_exc()
            self.check("chaos run", "all phases complete", f"aborted: {type(exc).__name__}: {exc}", False)
        finally:
            self.load.stopped.set()
            pending = await self.load.drain(timeout=s.sse_seconds[1] + 40)
            for task in tasks:
                task.cancel()
            await self.ctx.aclose()
            self.gh.kill()
            for up in self.upstreams:
                up.kill()
            self.issuer.kill()
        return self.finish(commit, exit_code, pending)

    # -- phases ---------------------------------------------------------------------------

    async def quiet(self) -> None:
        await self.transfers_paused()
        self.phase("quiet")
        try:
            self.quiet_probe = await self.probe(self.s.quiet_seconds, "probe-quiet")
        finally:
            self.ctx.paused_kinds.discard("transfer")
        q = self.quiet_probe
        self.check("quiet run (no fault)", "every probe 200", f"{q['statuses']}, {q['errors']} errors, p99 {h.ms(q['p99'])}",
                   q["errors"] == 0 and set(q["statuses"]) == {"200"})

    async def kid_flood(self) -> None:
        s = self.s
        self.phase("kid flood")
        # A long max-age first, so no background refresh falls inside the flood: every fetch
        # counted there is one an unknown kid caused.
        await self.issuer_post("/max-age?s=3600")
        await self.trigger_fetch("normal")
        await asyncio.sleep(s.cooldown + 0.5)
        start = self.now()
        statuses: dict[str, int] = {}
        sem = asyncio.Semaphore(40)

        async def one() -> None:
            async with sem:
                status, detail = await self.get("/echo/flood", self.minter.unknown_kid(self.rng.choice(h.ALGORITHMS)))
                key = f"{status} {detail}".strip()
                statuses[key] = statuses.get(key, 0) + 1

        flood_tasks = []
        while self.now() - start < s.flood_seconds:
            flood_tasks.append(asyncio.create_task(one()))
            await asyncio.sleep(1 / 40)
        await asyncio.gather(*flood_tasks)
        end = self.now()
        fetches = await self.fetches_between(start, end)
        window = end - start
        allowed = math.floor(window / s.cooldown) + 1
        self.check("kid flood: JWKS fetches", f"1 ≤ fetches ≤ ⌊{window:.1f} s / {s.cooldown:g} s⌋ + 1 = {allowed}",
                   f"{len(fetches)} fetches for {sum(statuses.values())} unknown-kid requests", 1 <= len(fetches) <= allowed)
        # Times are when the issuer received each fetch: one delayed on a busy machine makes the
        # next gap look shorter than gatehouse's, hence 1 s of slack (a cooldown ignored gives
        # gaps near 0, and the count above).
        gaps = [b - a for a, b in zip(fetches, fetches[1:])]
        self.check("kid flood: spacing of fetches", f"≥ cooldown {s.cooldown:g} s (−1 s)",
                   f"min gap {min(gaps):.2f} s" if gaps else "one fetch", all(g >= s.cooldown - 1 for g in gaps))
        self.check("kid flood: answers", "all 401 'Invalid token: unknown key'", json.dumps(statuses),
                   set(statuses) == {"401 Invalid token: unknown key"})
        await self.issuer_post("/max-age?s=-1")
        await asyncio.sleep(s.cooldown + 0.5)
        await self.trigger_fetch("normal")  # back to GATEHOUSE_JWKS_TTL

    async def issuer_faults(self) -> None:
        s = self.s
        for mode, label in (("500", "issuer answers 500"), ("garbage", "issuer answers garbage"),
                            ("many", "issuer serves a JWKS of 101 keys")):
            self.phase(label)
            before = await h.jwks_fetch_metrics(self.control, self.gh)
            fresh = (await self.sessions.create(self.control, 1, ttl=3600))[0]
            start = self.now()
            await self.issuer_post(f"/mode?m={mode}")
            await asyncio.sleep(s.cooldown + 0.2)
            fetched = await self.trigger_fetch(mode, wait=s.cooldown + 3)
            await asyncio.sleep(max(0.0, s.issuer_fault_seconds - (self.now() - start)))
            statuses = await self.distinct_all_algorithms()
            # A session gatehouse has never seen, as cookie and bearer, and a made-up cookie.
            session_answers = [await self.session_get("cookie", fresh.value), await self.session_get("bearer", fresh.value),
                               await self.session_get("cookie", self.sessions.made_up_value())]
            status, body = await h.readyz(self.control, self.gh)
            after = await h.jwks_fetch_metrics(self.control, self.gh)
            end = self.now()
            await self.issuer_post("/mode?m=normal")
            if mode in ("500", "garbage"):  # get-session fails too ("many" is JWKS-only)
                self.windows.append(Window(f"get-session {mode}", start - 0.1, self.now() + 3, session_unavailable))
            errors = after.get("error", 0) - before.get("error", 0)
            ready = self.ready_between(start, end)
            self.check(f"{label}: gatehouse fetched during the fault", "≥ 1 fetch answered by the fault, counted as error",
                       f"fetches seen by the issuer: {'yes' if fetched else 'none'}; error fetches +{errors:g}",
                       fetched and errors >= 1)
            self.check(f"{label}: cached keys keep verifying", "5 distinct tokens (one per algorithm) → 200; /readyz 200 with last_error set",
                       f"{statuses}; /readyz {status}, last_error {'set' if (body.get('jwks') or {}).get('last_error') else 'null'}; "
                       f"/readyz non-200 during the fault: {sum(1 for _, st, _ in ready if st != 200)}",
                       statuses == [200] * 5 and status == 200 and bool((body.get("jwks") or {}).get("last_error"))
                       and all(st == 200 for _, st, _ in ready))
            observed = str([(a[0], a[1]) for a in session_answers])
            if mode in ("500", "garbage"):
                self.check(f"{label}: sessions gatehouse has not cached", "503 'Authentication service unavailable' with Retry-After "
                           "for a new session (cookie, bearer) and a made-up cookie; never 401 or 200", observed,
                           all(a[0] == 503 and a[1] == h.SESSION_UNAVAILABLE and a[3] for a in session_answers))
            else:
                self.check(f"{label}: sessions unaffected (the fault is the JWKS's only)", "a new session 200 as its user "
                           "(cookie, bearer); a made-up cookie 401 'Invalid token: session not found'", observed,
                           all(a[0] == 200 and a[2] == fresh.user_id for a in session_answers[:2])
                           and session_answers[2][:2] == (401, h.REFUSALS["refuse_made_up_session"]))
        await asyncio.sleep(s.cooldown + 0.2)
        recovered = await self.trigger_fetch("normal")
        self.check("issuer back to normal", "next fetch succeeds", "fetched" if recovered else "no fetch", recovered)

    async def issuer_outage(self) -> None:
        s = self.s
        self.phase("issuer stopped")
        before = await h.jwks_fetch_metrics(self.control, self.gh)
        # Two sessions of their own: one cached just before the outage (cookie and bearer), one
        # never seen before it.
        cached, fresh = await self.sessions.create(self.control, 2, ttl=3600)
        primed: dict[str, tuple[float, float, tuple]] = {}
        for via in ("cookie", "bearer"):
            t = self.now()
            answer = await self.session_get(via, cached.value)
            primed[via] = (t, self.now(), answer)
        session_checks: list[tuple[str, float, float, tuple]] = []
        uncached_answers: list[tuple] = []
        start = self.now()
        await self.issuer_post("/mode?m=stopped")
        # Better Auth restarting during a key rotation: the new keys exist, nobody can fetch them.
        await self.issuer_post("/rotate")
        await self.ring.refresh(self.control)
        old_gen = self.ring.current
        new_gen = max(self.ring.published)
        checks: list[list] = []
        new_kid_answers: list[tuple[int | str, str]] = []
        while self.now() - start < s.outage_seconds:
            checks.append(await self.distinct_all_algorithms(old_gen))
            for via in ("cookie", "bearer"):
                t = self.now()
                answer = await self.session_get(via, cached.value)
                session_checks.append((via, t, self.now(), answer))
            if not new_kid_answers and self.now() - start > s.outage_seconds / 2:
                token, _ = self.minter.valid("EdDSA", repeated=False, generation=new_gen)
                new_kid_answers.append(await self.get("/echo/new-kid-during-outage", token))
                uncached_answers += [await self.session_get("cookie", fresh.value), await self.session_get("bearer", fresh.value),
                                     await self.session_get("cookie", self.sessions.made_up_value())]
            await asyncio.sleep(2)
        after = await h.jwks_fetch_metrics(self.control, self.gh)
        end = self.now()
        ready = self.ready_between(start, end)
        errors = after.get("error", 0) - before.get("error", 0)
        self.check("issuer stopped: a refresh fell inside the outage", "failed fetches ≥ 1 (JWKS TTL "
                   f"{s.jwks_ttl:g} s < outage {s.outage_seconds:g} s)", f"error fetches +{errors:g}", errors >= 1)
        flat = [x for c in checks for x in c]
        self.check("issuer stopped: cached keys keep verifying", "distinct tokens of all 5 algorithms → 200 every 2 s; /readyz 200",
                   f"{flat.count(200)}/{len(flat)} → 200; /readyz non-200: {sum(1 for _, st, _ in ready if st != 200)}",
                   flat and all(x == 200 for x in flat) and all(st == 200 for _, st, _ in ready))
        self.check("issuer stopped: token of the key rotated in during the outage", "401 'Invalid token: unknown key'",
                   str(new_kid_answers), new_kid_answers == [(401, "Invalid token: unknown key")])
        await self.issuer_post("/mode?m=normal")
        back = self.now()
        self.windows.append(Window("issuer stopped (get-session)", start - 0.1, back + 3, session_unavailable))
        after_back = await self.session_get("cookie", fresh.value)
        self.check_cached_session(cached, fresh, primed, session_checks, uncached_answers, after_back)
        token, _ = self.minter.valid("EdDSA", repeated=True, generation=new_gen)
        picked_up = None
        while self.now() - back < s.cooldown + s.fetch_timeout + 5:
            if (await self.get("/echo/new-kid-after-outage", token))[0] == 200:
                picked_up = self.now() - back
                break
            await asyncio.sleep(0.2)
        limit = s.cooldown + s.fetch_timeout + 1
        self.check("issuer back: the new kid is fetched on first sight", f"200 within cooldown + fetch timeout + 1 s = {limit:g} s",
                   f"after {picked_up:.1f} s" if picked_up is not None else "never", picked_up is not None and picked_up <= limit)
        self.ring.use(new_gen)

    def check_cached_session(self, cached: h.PooledSession, fresh: h.PooledSession, primed: dict,
                             session_checks: list, uncached_answers: list, after_back: tuple) -> None:
        """The outage's session rows. A session's cache entry lives GATEHOUSE_SESSION_CACHE_TTL
        from the end of its lookup, which lies inside the priming request (start t0, end t1):
        a request that ended before t0 + TTL was answered from the cache (200, the same
        user); one that started after t1 + TTL needed a lookup, which fails (503, with
        Retry-After); in between, either (0.5 s of slack on each side)."""
        ttl = self.s.session_ttl
        unavailable = lambda a: a[0] == 503 and a[1] == h.SESSION_UNAVAILABLE and a[3]  # noqa: E731
        served = lambda a: a[0] == 200 and a[2] == cached.user_id  # noqa: E731
        wrong: list[str] = []
        in_ttl = after_ttl = 0
        for via, t0, t1, answer in session_checks:
            p0, p1, _ = primed[via]
            if t1 < p0 + ttl - 0.5:
                in_ttl += 1
                ok = served(answer)
            elif t0 > p1 + ttl + 0.5:
                after_ttl += 1
                ok = unavailable(answer)
            else:
                ok = served(answer) or unavailable(answer)
            if not ok:
                wrong.append(f"{via} at +{t0 - p0:.1f} s: {answer[0]} {answer[1]}".strip())
        primed_ok = all(served(answer) for _, _, answer in primed.values())
        self.check("issuer stopped: a session cached just before the outage (cookie and bearer)",
                   f"200 as its user until its cache TTL ({ttl:g} s) ends, then 503 '{h.SESSION_UNAVAILABLE}' with Retry-After; never 401",
                   f"primed {'200' if primed_ok else [a[0] for _, _, a in primed.values()]}; {in_ttl} requests within the TTL, "
                   f"{after_ttl} after it, {len(session_checks) - in_ttl - after_ttl} at its edge; wrong: {wrong[:4] or 'none'}",
                   primed_ok and not wrong and in_ttl >= 2 and after_ttl >= 2)
        self.check("issuer stopped: an uncached session (cookie, bearer) and a made-up cookie",
                   f"503 '{h.SESSION_UNAVAILABLE}' with Retry-After (never 401, never 200); the session 200 once the issuer is back",
                   f"{[(a[0], a[1]) for a in uncached_answers]}; after: {after_back[0]}",
                   len(uncached_answers) == 3 and all(unavailable(a) for a in uncached_answers)
                   and after_back[0] == 200 and after_back[2] == fresh.user_id)

    async def kill_upstream(self, window: str) -> tuple[float, float, float]:
        """SIGKILL to uvicorn, restarted on the same port 2 s later; (killed, restarted, ready).
        Background requests from the kill to 1 s after it answers again may see 502/504, a cut
        stream or a transport error."""
        killed = self.now()
        self.upstream.popen.send_signal(signal.SIGKILL)
        self.upstream.popen.wait()
        await asyncio.sleep(2)
        restarted = self.now()
        self.upstream = await asyncio.to_thread(h.start_upstream, self.out, self.upstream.port, self.upstream.http)
        self.upstreams.append(self.upstream)
        ready = self.now()
        # Never excused: a transport error that is a timeout (httpx gives up reading after 60 s,
        # before a transfer's deadline): that is a wedged exchange, not the 2-s outage.
        self.windows.append(Window(window, killed - 0.05, ready + 1.0, lambda r: (
            (r.outcome == h.CUT or (r.outcome == h.TRANSPORT and not r.detail.endswith("Timeout")))
            or (r.outcome == h.UNEXPECTED and r.status in (502, 504)))))
        return killed, restarted, ready

    async def upstream_kill(self) -> None:
        self.phase("upstream killed")
        probes: list[tuple[float, float, int | str]] = []
        stop = asyncio.Event()
        token, _ = self.minter.valid("ES256", repeated=True)

        async def prober() -> None:
            async with httpx.AsyncClient(base_url=self.gh.url, timeout=10) as client:
                while not stop.is_set():
                    t = self.now()
                    status, _ = await self.get("/echo/upstream-probe", token, client)
                    probes.append((t, self.now(), status))
                    await asyncio.sleep(0.1)

        task = asyncio.create_task(prober())
        await asyncio.sleep(1)
        killed, restarted, ready = await self.kill_upstream("upstream down")
        await asyncio.sleep(3)
        stop.set()
        await task
        down = [p for p in probes if killed + 0.2 <= p[0] and p[1] <= restarted]
        self.check("upstream down: answers", "502 for every probe sent while it is down",
                   f"{len(down)} probes: {sorted(set(map(str, (p[2] for p in down))))}",
                   bool(down) and all(p[2] == 502 for p in down))
        first_ok = next((p[1] for p in probes if p[0] >= ready - 0.5 and p[2] == 200), None)
        late = [p for p in probes if p[0] >= ready + 1.0]
        self.check("upstream back: recovery", "first 200 ≤ 1 s after uvicorn answers again, every later probe 200",
                   (f"first 200 {first_ok - ready:+.2f} s after ready" if first_ok else "no 200")
                   + f"; later probes: {sorted(set(map(str, (p[2] for p in late))))}",
                   first_ok is not None and first_ok - ready <= 1.0 and bool(late) and all(p[2] == 200 for p in late))

    async def upstream_late(self) -> None:
        s = self.s
        self.phase("upstream 10 s late")
        await self.control.post(f"{self.upstream.url}/_control/delay?seconds=10")
        start = self.now()

        async def slow_one(alg: str) -> tuple[int | str, float]:
            token, _ = self.minter.valid(alg, repeated=False)
            t = time.monotonic()
            status, _ = await self.get(f"/echo/late/{alg}", token)
            return status, time.monotonic() - t

        slow_tasks = [asyncio.create_task(slow_one(alg)) for alg in h.ALGORITHMS]
        refusals: list[tuple[int | str, float]] = []
        health: list[float] = []
        own = httpx.AsyncClient(base_url=self.gh.url, timeout=30)
        while self.now() - start < s.late_seconds:
            t = time.monotonic()
            status, _ = await self.get("/echo/late-refusal", None, own)
            refusals.append((status, time.monotonic() - t))
            t = time.monotonic()
            await self.control.get(f"{self.gh.admin_url}/healthz")
            health.append(time.monotonic() - t)
            await asyncio.sleep(0.5)
        slow = await asyncio.gather(*slow_tasks)
        await own.aclose()
        await self.control.post(f"{self.upstream.url}/_control/delay?seconds=0")
        self.check("upstream 10 s late: slow requests", "200 after 10-15 s (upstream timeout 30 s)",
                   ", ".join(f"{st} in {d:.1f} s" for st, d in slow), all(st == 200 and 10 <= d <= 15 for st, d in slow))
        p99 = h.percentile([d for _, d in refusals], 99)
        self.check("upstream 10 s late: gatehouse stays responsive", "401s (no token) and admin /healthz p99 < 1 s meanwhile",
                   f"{len(refusals)} refusals {sorted(set(str(st) for st, _ in refusals))}, p99 {h.ms(p99)}; "
                   f"/healthz p99 {h.ms(h.percentile(health, 99))}",
                   all(st == 401 for st, _ in refusals) and p99 is not None and p99 < 1 and max(health) < 1)

    async def start_flood(self, idle: int, slowloris: int, open_seconds: float, niced: bool) -> asyncio.subprocess.Process:
        """The idle/slowloris clients (clients.py flood). `niced`: at the lowest CPU priority, for
        a latency comparison: they stand for clients on other machines, and on this small
        shared one their own CPU use (thousands of sockets in a Python loop) would otherwise be
        charged to gatehouse as probe latency."""
        return await asyncio.create_subprocess_exec(
            *(["nice", "-n", "19"] if niced else []), h.PY, str(h.HERE / "clients.py"), "flood", "--port", str(self.gh.port), "--idle", str(idle),
            "--slowloris", str(slowloris), "--open-seconds", str(open_seconds),
            "--grace", str(self.s.header_timeout + 4), stdout=asyncio.subprocess.PIPE)

    def check_flood(self, prefix: str, result: dict, idle: int, slowloris: int) -> None:
        s = self.s
        for kind, expected_count in (("idle", idle), ("slowloris", slowloris)):
            r = result[kind]
            self.check(f"{prefix}{kind} connections cut at the header timeout",
                       f"all {expected_count}+ cut after {s.header_timeout:g} s (−0.5/+3 s), none answered 200, none refused",
                       f"{r['opened']} opened, {r['cuts']} cut after {r['cut_min'] or 0:.1f}–{r['cut_max'] or 0:.1f} s "
                       f"(p50 {r['cut_p50'] or 0:.1f}), never cut {r['never_cut']}, answered {r['answered']} "
                       f"{r.get('answers', '')}, connect errors {r['connect_errors']}",
                       r["opened"] >= expected_count and r["never_cut"] == 0 and r["cuts"] == r["opened"]
                       and r["connect_errors"] == 0
                       and s.header_timeout - 0.5 <= (r["cut_min"] or 0) and (r["cut_max"] or 99) <= s.header_timeout + 3
                       and not any(" 200 " in a + " " for a in r.get("answers", [])))

    async def transfers_paused(self) -> None:
        """Stops starting background uploads and downloads and waits (≤ 120 s) for those in
        flight: on this machine one 64 MiB transfer, hashed by Python at both ends, moves a
        20 req/s probe's p99 more than anything gatehouse does."""
        self.ctx.paused_kinds.add("transfer")
        deadline = time.monotonic() + 60
        while (self.recorder.in_flight["transfer"] > 0 or self.ctx.transfer_waiting > 0) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        if self.recorder.in_flight["transfer"] > 0 or self.ctx.transfer_waiting > 0:
            self.pause_late.append(self.now())

    async def slowloris(self) -> None:
        s = self.s
        await asyncio.sleep(5)  # the requests the late upstream held finish first
        # The latency comparison (both quiet runs vs the flood) runs without background transfers.
        await self.transfers_paused()
        try:
            self.phase("quiet reference")
            probe_seconds = s.flood_open_seconds + s.header_timeout - 3
            reference = await self.probe(min(probe_seconds, s.quiet_seconds), "probe-reference")
            self.phase(f"{s.idle_connections} idle + {s.slowloris_clients} slowloris")
            before = h.proc_sample(self.gh.pid)
            flood = await self.start_flood(s.idle_connections, s.slowloris_clients, s.flood_open_seconds, niced=True)
            await asyncio.sleep(3)
            during_fds = h.proc_sample(self.gh.pid)
            attack = await self.probe(probe_seconds, "probe-flood")
        finally:
            self.ctx.paused_kinds.discard("transfer")
        out, _ = await flood.communicate()
        result = json.loads(out)
        self.flood_result = result
        end = self.now()
        peak_fds = max((x.fds for x in self.sampler.samples if x.t >= end - probe_seconds - 10), default=0)
        self.check_flood("", result, s.idle_connections, s.slowloris_clients)
        # The reference: the lower p99 of the two quiet runs (the first phase, and the one just
        # before the flood), so a noisy reference cannot make the comparison lenient.
        quiet_p99 = min(x for x in (reference["p99"], self.quiet_probe["p99"]) if x is not None)
        attack_p99 = attack["p99"]
        # gatehouse's own view of the same probes (head read to answer written), reported beside
        # the client's: it shows whether time went inside gatehouse or in the shared machine.
        server = h.access_log_latencies(self.gh.log_path)
        own = ", ".join(f"{label} {h.ms(h.percentile(server.get(name, []), 99))}" for label, name in
                        (("quiet", "probe-quiet"), ("reference", "probe-reference"), ("flood", "probe-flood")))
        self.check("normal load during the flood", "probe all 200, p99 ≤ 3 × the lower p99 of the two quiet runs",
                   f"{attack['statuses']}, {attack['errors']} errors; p99 {h.ms(attack_p99)} vs quiet {h.ms(quiet_p99)} "
                   f"({(attack_p99 or 0) / (quiet_p99 or 1):.1f}×; quiet runs {h.ms(self.quiet_probe['p99'])} and "
                   f"{h.ms(reference['p99'])}); gatehouse's own p99: {own}; "
                   f"background transfers {'still running after the 60-s pause at t=' + str([round(t) for t in self.pause_late]) if self.pause_late else 'paused'}; "
                   f"gatehouse fds {before.fds if before else '?'} → {during_fds.fds if during_fds else '?'} (peak {peak_fds})",
                   attack["errors"] == 0 and set(attack["statuses"]) == {"200"} and quiet_p99 is not None
                   and attack_p99 is not None and attack_p99 <= 3 * quiet_p99)

    async def abandon_upload(self, upload_id: str, token: str, total: int, after: int) -> tuple[int, str, str | None]:
        """Announces `total` bytes, sends `after`, then closes the connection; (bytes sent, any
        status line gatehouse sent before the cut, FastAPI's view of the upload)."""

        def send() -> tuple[int, str]:
            block = payload.chunk(7, 0, 1 << 20)
            sock = socket.create_connection(("127.0.0.1", self.gh.port), timeout=30)
            head = (f"POST /upload?id={upload_id} HTTP/1.1\r\nHost: gatehouse\r\nAuthorization: Bearer {token}\r\n"
                    f"Content-Length: {total}\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
            sock.sendall(head)
            sent = 0
            early = ""
            sock.settimeout(30)  # a gatehouse that stops reading fails the run instead of hanging it
            while sent < after:
                sock.sendall(block)
                sent += len(block)
            sock.setblocking(False)
            try:
                early = sock.recv(200).decode("latin-1").split("\r\n", 1)[0]
            except BlockingIOError:
                pass
            sock.close()
            return sent, early

        sent, early = await asyncio.to_thread(send)
        state = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            state = (await self.control.get(f"{self.upstream.url}/_control/uploads/{upload_id}")).json()["state"]
            if state and state != "receiving":
                break
            await asyncio.sleep(0.2)
        return sent, early, state

    async def abandoned_upload(self) -> None:
        s = self.s
        self.phase("abandoned upload")
        await asyncio.sleep(1)
        before = h.proc_sample(self.gh.pid)
        upload_id = f"abandon-{self.rng.randrange(1 << 30)}"
        token, _ = self.minter.valid("EdDSA", repeated=True)
        peak = [before.rss_kib if before else 0]
        done = asyncio.Event()

        async def watch() -> None:
            while not done.is_set():
                sample = h.proc_sample(self.gh.pid)
                if sample:
                    peak[0] = max(peak[0], sample.rss_kib)
                await asyncio.sleep(0.1)

        watcher = asyncio.create_task(watch())
        t = time.monotonic()
        sent, early, state = await self.abandon_upload(upload_id, token, s.abandon_total, s.abandon_after)
        took = time.monotonic() - t
        await asyncio.sleep(3)
        done.set()
        await watcher
        after = h.proc_sample(self.gh.pid)
        growth = (peak[0] - (before.rss_kib if before else 0)) / 1024
        self.check(f"upload of {s.abandon_total >> 20} MiB abandoned after {s.abandon_after >> 20} MiB",
                   "FastAPI sees a disconnect, never a complete upload; gatehouse RSS peak ≤ +32 MiB; no answer before the cut",
                   f"sent {sent >> 20} MiB in {took:.1f} s; FastAPI: {state!r}; RSS peak +{growth:.1f} MiB; "
                   f"early answer: {early or 'none'}; fds {before.fds if before else '?'} → {after.fds if after else '?'}",
                   bool(state) and state.startswith("disconnected") and growth <= 32 and not early)

    async def bad_day(self) -> None:
        """Everything at once (the full run only): for `bad_day_seconds` the issuer is stopped
        while unknown kids flood in, idle and slowloris connections pile up, uvicorn is killed
        and restarted, and an upload is abandoned halfway, all under the background load.
        Asserted: what each fault owes on its own (as in its phase), the background judged
        under the union of the windows, and a full recovery once the faults end."""
        s = self.s
        if s.bad_day_seconds <= 0:
            return
        await asyncio.sleep(2)
        self.phase("everything at once")
        label = "everything at once: "
        before = h.proc_sample(self.gh.pid)
        metrics_before = await h.jwks_fetch_metrics(self.control, self.gh)
        uncached = (await self.sessions.create(self.control, 1, ttl=3600))[0]
        idle, slowloris = s.idle_connections // 2, s.slowloris_clients // 2
        stop = asyncio.Event()
        kid_answers: dict[str, int] = {}
        key_checks: list[tuple[float, float, list[int | str]]] = []

        async def pause(seconds: float) -> None:
            try:
                await asyncio.wait_for(stop.wait(), seconds)
            except (asyncio.TimeoutError, TimeoutError):
                pass

        async def kid_flood() -> None:
            while not stop.is_set():
                status, detail = await self.get("/echo/bad-day-flood", self.minter.unknown_kid(self.rng.choice(h.ALGORITHMS)))
                key = f"{status} {detail}".strip()
                kid_answers[key] = kid_answers.get(key, 0) + 1
                await pause(1 / 20)

        async def cached_keys() -> None:
            while not stop.is_set():
                t0 = self.now()
                statuses = await self.distinct_all_algorithms()
                key_checks.append((t0, self.now(), statuses))
                await pause(3)

        start = self.now()
        # The get-session window is open from the start: if this phase fails half-way, the
        # background is still judged by what the issuer's state allowed.
        session_window = Window("everything at once: issuer stopped (get-session)", start - 0.1, 1e9, session_unavailable)
        self.windows.append(session_window)
        flood = None
        side: list[asyncio.Task] = []
        try:
            await self.issuer_post("/mode?m=stopped")
            # Not niced, unlike the slowloris phase: nothing compares latencies here, and its own
            # measure of when each connection was cut must not lag.
            flood = await self.start_flood(idle, slowloris, s.bad_day_seconds - s.header_timeout - 8, niced=False)
            side = [asyncio.create_task(kid_flood()), asyncio.create_task(cached_keys())]
            await asyncio.sleep(10)
            killed, restarted, ready = await self.kill_upstream("everything at once: upstream down")
            await asyncio.sleep(3)
            token, _ = self.minter.valid("EdDSA", repeated=True)
            upload_id = f"bad-day-abandon-{self.rng.randrange(1 << 30)}"
            sent, early, upload_state = await self.abandon_upload(upload_id, token, 256 << 20, 128 << 20)
            uncached_answer = await self.session_get("cookie", uncached.value)
            await asyncio.sleep(max(0.0, s.bad_day_seconds - (self.now() - start)))
        finally:
            await self.issuer_post("/mode?m=normal")
            back = self.now()
            session_window.end = back + 3
            # Recovery is timed from here, while the other faults' clients wind down.
            recovered_at = None
            while self.now() - back < 15:
                keys = await self.distinct_all_algorithms()
                session = await self.session_get("bearer", uncached.value)
                if keys == [200] * 5 and session[0] == 200 and session[2] == uncached.user_id:
                    recovered_at = self.now() - back
                    break
                await asyncio.sleep(0.5)
            stop.set()
            await asyncio.gather(*side)
            out = (await flood.communicate())[0] if flood is not None else b"{}"
        flood_result = json.loads(out)

        # each fault's own outcome
        self.check_flood(label, flood_result, idle, slowloris)
        self.check(label + "unknown kids while the issuer is down", "all 401 'Invalid token: unknown key'",
                   json.dumps(kid_answers), set(kid_answers) == {"401 Invalid token: unknown key"})
        down = (killed - 0.05, ready + 1.0)
        wrong = [(round(t0, 1), st) for t0, t1, st in key_checks
                 if not all(x == 200 or (x in (502, 504) and t0 <= down[1] and t1 >= down[0]) for x in st)]
        self.check(label + "cached keys keep verifying", "distinct tokens of all 5 algorithms every 3 s → 200 (502/504 only while uvicorn is down)",
                   f"{len(key_checks)} rounds; wrong: {wrong[:3] or 'none'}", bool(key_checks) and not wrong)
        self.check(label + "abandoned upload", "FastAPI sees a disconnect after 128 MiB of 256 MiB; no answer before the cut",
                   f"sent {sent >> 20} MiB; FastAPI: {upload_state!r}; early answer: {early or 'none'}",
                   bool(upload_state) and upload_state.startswith("disconnected") and not early)
        self.check(label + "a session never seen before, while get-session is down", "503 'Authentication service unavailable' with Retry-After",
                   str(uncached_answer[:2]) + (" with Retry-After" if uncached_answer[3] else " without Retry-After"),
                   uncached_answer[0] == 503 and uncached_answer[1] == h.SESSION_UNAVAILABLE and uncached_answer[3])

        # recovery: every fault over, everything answers as on a quiet day
        self.check(label + "recovery", "fresh tokens of all 5 algorithms and the new session 200 within 3 s of the last fault",
                   f"after {recovered_at:.1f} s" if recovered_at is not None else "not within 15 s",
                   recovered_at is not None and recovered_at <= 3)
        after_probe = await self.probe(5, "probe-after-bad-day")
        await asyncio.sleep(2)
        after = h.proc_sample(self.gh.pid)
        status, _ = await h.readyz(self.control, self.gh)
        metrics_after = await h.jwks_fetch_metrics(self.control, self.gh)
        peak = max((x.rss_kib for x in self.sampler.samples if x.t >= start), default=0)
        self.check(label + "afterwards", "probe all 200; /readyz 200; fds ≤ before + 100; RSS ≤ before + 32 MiB",
                   f"probe {after_probe['statuses']} ({after_probe['errors']} errors); /readyz {status}; "
                   f"fds {before.fds if before else '?'} → {after.fds if after else '?'}; RSS {before.rss_kib / 1024 if before else 0:.1f} → "
                   f"{after.rss_kib / 1024 if after else 0:.1f} MiB (peak {peak / 1024:.1f}); failed JWKS fetches "
                   f"+{metrics_after.get('error', 0) - metrics_before.get('error', 0):g}",
                   after_probe["errors"] == 0 and set(after_probe["statuses"]) == {"200"} and status == 200
                   and before is not None and after is not None and after.fds <= before.fds + 100
                   and after.rss_kib <= before.rss_kib + 32 * 1024)

    async def sigterm(self, load_task: asyncio.Task) -> int | None:
        s = self.s
        self.phase("SIGTERM during load")

        class FixedDownload(h.Download):
            name = "drain_download"
            kind = "drain"  # no transfer slot to wait for: in flight at once
            size = 16 << 20

        slow_seconds = s.shutdown_delay + 4  # still running after the delay, when the listener closes
        tagged: list[asyncio.Task] = [self.load.spawn(h.SlowGet(slow_seconds), ("drain-tagged",)) for _ in range(4)]
        tagged += [self.load.spawn(FixedDownload(), ("drain-tagged",)) for _ in range(2)]
        await asyncio.sleep(0.5)
        sent = self.now()
        self.gh.popen.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)
        try:
            status, _ = await h.readyz(self.control, self.gh)
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        # From the end of the delay on, new connections are refused and idle ones closed.
        self.windows.append(Window("drain", sent + s.shutdown_delay - 0.3, 1e9,
                                   lambda r: r.outcome in (h.CUT, h.TRANSPORT)))
        await asyncio.sleep(s.shutdown_delay + 1)
        self.load.stopped.set()
        await load_task
        code, took = await h.stop_gatehouse(self.gh, s.shutdown_delay + s.shutdown_timeout + 8)
        results = await asyncio.gather(*tagged)
        self.check("SIGTERM: /readyz right after", "503", str(status), status == 503)
        self.check("SIGTERM: in-flight requests finish", f"4 × /slow {slow_seconds:g} s and 2 downloads of 16 MiB (checksummed) → complete",
                   ", ".join(f"{r.cls} {r.outcome}" for r in results), all(r.outcome == h.OK for r in results))
        limit = s.shutdown_delay + s.shutdown_timeout + 2
        self.check("SIGTERM: gatehouse exits 0", f"exit 0 within delay + timeout + 2 s = {limit:g} s",
                   f"exit {code} after {took:.1f} s", code == 0 and took <= limit)
        return code

    # -- the verdict ----------------------------------------------------------------------

    def judge(self, r: h.Result) -> str:
        if r.outcome == h.OK:
            return h.OK
        for w in self.windows:
            if r.start <= w.end and r.end >= w.start - 0.0 and w.allows(r):
                return f"tolerated ({w.name}): {r.outcome}"
        return f"FAIL {r.outcome}"

    def finish(self, commit: str, exit_code: int | None, pending: int) -> int:
        results = [r for r in self.recorder.results]
        for r in results:  # relative times, as the windows
            r.start -= self.recorder.t0
            r.end -= self.recorder.t0
        verdicts = [self.judge(r) for r in results]
        failures = [(r, v) for r, v in zip(results, verdicts) if v.startswith("FAIL")]
        mismatches = sum(1 for r in results if r.outcome == h.MISMATCH)
        hung = sum(1 for r in results if r.outcome == h.HUNG)
        tolerated = sum(1 for v in verdicts if v.startswith("tolerated"))
        self.check("background load: unexpected answers outside the fault windows", "0",
                   f"{len(failures)} of {len(results)} ({tolerated} tolerated inside fault windows)", not failures)
        self.check("no 200 with a truncated or wrong body", "0 mismatches", str(mismatches), mismatches == 0)
        self.check("no hung request", "0 past their deadline", f"{hung}; still running at the end: {pending}",
                   hung == 0 and pending == 0)
        leaks = h.scan_for_tokens([self.out], self.minter.signatures, self.sessions.secrets)
        self.check("minted tokens or session credentials found in logs/report", "0", str(len(leaks)), not leaks)
        passed = all(r.ok for r in self.rows)
        summary = h.summarize_classes(results, self.judge)
        fault_table = "\n".join(["| fault / check | expected | observed | result |", "|---|---|---|---|"] + [
            f"| {r.fault} | {r.expected} | {r.observed} | {'PASS' if r.ok else '**FAIL**'} |" for r in self.rows])
        examples = [f"- t={r.start:.1f}s {r.cls}: {v} {r.status or ''} {r.detail}" for r, v in failures[:20]]
        h.plot(self.sampler.samples, self.out / "chaos.png",
               f"gatehouse chaos{' (quick)' if QUICK else ''} (commit {commit})", self.marks)
        info = {
            "kind": "chaos-quick" if QUICK else "chaos",
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "commit": commit,
            "binary": str(self.binary),
            "passed": passed,
            "settings": asdict(self.s),
            "duration_s": self.now(),
            "rows": [asdict(r) for r in self.rows],
            "phases": self.marks,
            "windows": [(w.name, w.start, w.end) for w in self.windows],
            "classes": summary,
            "failures": examples,
            "flood": getattr(self, "flood_result", None),
            "samples": [asdict(x) for x in self.sampler.samples],
        }
        h.write_json(self.out / "report.json", info)
        markdown = f"""# gatehouse chaos{' (quick)' if QUICK else ''} — {'PASS' if passed else 'FAIL'}

{info['date']}, commit {commit}, `{self.binary}`; {self.now():.0f} s, background {self.s.rate:g} req/s
({len(results)} requests). gatehouse settings beyond the defaults:
{', '.join(f'{k}={v}' for k, v in self.s.gatehouse_env().items())}.

{fault_table}

## Background requests (verdict per class)

{h.class_table(summary, h.access_log_latencies(self.gh.log_path))}

{chr(10).join(examples) if examples else 'No unexpected background answer.'}

![RSS, fds, req/s and p99 over time, phases marked](chaos.png)
"""
        (self.out / "report.md").write_text(markdown)
        print()
        print(fault_table)
        print()
        print(h.class_table(summary))
        for line in examples:
            print(line)
        print(f"\nchaos{' (quick)' if QUICK else ''} {'PASSED' if passed else 'FAILED'} in {self.now():.0f} s; "
              f"report: {self.out}/report.md", flush=True)
        return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(Chaos(Settings()).run()))
