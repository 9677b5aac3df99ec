#!/usr/bin/env python3
"""gatehouse's memory targets, measured on this machine (run by `make bench`, last):

    idle RSS                      <= 15 MiB    gatehouse with GATEHOUSE_AUTH=off, after one
                                               warm-up request and 1 s to settle
    10 000 idle keep-alive conns  <= +100 MiB  over that idle RSS; every connection has been
                                               through one complete request and sits idle
    1 GiB upload, 1 GiB download  <= 32 MiB    peak RSS during the transfer minus the RSS
                                               just before it ("flat")

    .venv/bin/python bench/memory.py            # the full run
    .venv/bin/python bench/memory.py --quick    # 64 MiB transfers, 1 000 connections

The upstream is the e2e app (Tests/e2e/upstream_app.py: /echo, /upload, /download) under
uvicorn on a free 127.0.0.1 port; gatehouse (GATEHOUSE_BIN, default
.build/release/gatehouse) runs in front of it, proxy only. RSS is VmRSS from
/proc/<pid>/status, sampled every 50 ms during a transfer; where the kernel lets us reset
the peak (`echo 5 > /proc/<pid>/clear_refs`), the kernel's own peak (VmHWM) is read as well
and the larger of the two is reported. Thread counts are /proc/<pid>/status Threads.

The connections step raises RLIMIT_NOFILE to its hard limit before gatehouse is started (so
gatehouse inherits it), sets GATEHOUSE_HEADER_READ_TIMEOUT=120s (the keep-alive idle time)
and GATEHOUSE_MAX_CONNECTIONS=20000; with a hard limit or an ephemeral port range too small
for the count it prints why and skips that line.

The table is printed and written to bench/results/<UTC timestamp>-memory.txt. Exit status:
0 when everything was measured (whether or not the targets are met), 1 when something broke
(a transfer with a wrong length or digest, a refused connection, gatehouse died), 2 on bad
arguments or a missing binary.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import hashlib
import os
import platform
import random
import resource
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import httpx

REPO = Path(__file__).resolve().parents[1]
E2E = REPO / "Tests" / "e2e"
RESULTS = REPO / "bench" / "results"

MIB = 1 << 20
GIB = 1 << 30
CHUNK = 256 * 1024

IDLE_TARGET_MIB = 15.0
CONN_TARGET_MIB_PER_10K = 100.0  # 10 KiB per connection; --quick and --connections scale it
FLAT_TARGET_MIB = 32.0
KEEPALIVE_IDLE = "120s"

sys.path.insert(0, str(E2E))
from upstream_app import payload_sha256  # noqa: E402  (the bytes /download sends)


class BenchError(Exception):
    """Something broke: the run cannot be trusted (exit 1)."""


# ---------------------------------------------------------------------------------------
# processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when this script dies, so nothing outlives it."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, limit: int = 3000) -> str:
        try:
            data = self.log.read_bytes()
        except FileNotFoundError:
            return ""
        return data[-limit:].decode("utf-8", "replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)


def wait_for(url: str, proc: Proc, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not proc.alive():
            raise BenchError(f"{proc.name} exited with {proc.popen.returncode} before answering\n{proc.tail()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"{url} did not answer 200 within {timeout:.0f} s\n{proc.tail()}")
        time.sleep(0.05)


def start_upstream(tmp: Path) -> tuple[Proc, int]:
    port = free_port()
    try:
        import httptools  # noqa: F401
        http = ["--http", "httptools"]  # the faster parser: the upstream is only a source and sink here
    except ImportError:
        http = ["--http", "h11"]
    log = tmp / "upstream.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(E2E), "upstream_app:app",
             "--host", "127.0.0.1", "--port", str(port), *http,
             "--log-level", "warning", "--timeout-graceful-shutdown", "1"],
            cwd=E2E, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
    proc = Proc("upstream (uvicorn)", popen, log)
    wait_for(f"http://127.0.0.1:{port}/openapi.json", proc)
    return proc, port


def start_gatehouse(binary: Path, upstream_port: int, tmp: Path) -> tuple[Proc, int, int]:
    port = free_port()
    admin = free_port()
    while admin == port:
        admin = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_") and k != "BETTER_AUTH_URL"}
    env.update(
        GATEHOUSE_AUTH="off",
        GATEHOUSE_UPSTREAM=f"http://127.0.0.1:{upstream_port}",
        GATEHOUSE_LISTEN=f"127.0.0.1:{port}",
        GATEHOUSE_ADMIN_LISTEN=f"127.0.0.1:{admin}",
        GATEHOUSE_LOG_LEVEL="warning",
        GATEHOUSE_MAX_CONNECTIONS="20000",
        GATEHOUSE_HEADER_READ_TIMEOUT=KEEPALIVE_IDLE,
    )
    log = tmp / "gatehouse.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [str(binary), "serve"], env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
        )
    proc = Proc("gatehouse", popen, log)
    wait_for(f"http://127.0.0.1:{admin}/readyz", proc)
    return proc, port, admin


# ---------------------------------------------------------------------------------------
# /proc


def status_field(pid: int, name: str) -> int:
    """A numeric field of /proc/<pid>/status (kB for the Vm* ones)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError) as exc:
        raise BenchError(f"process {pid} is gone") from exc
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise BenchError(f"no {name} in /proc/{pid}/status")


def rss_kib(pid: int) -> int:
    return status_field(pid, "VmRSS")


def threads(pid: int) -> int:
    return status_field(pid, "Threads")


def reset_peak(pid: int) -> bool:
    """Resets VmHWM to the current RSS (Linux >= 4.0; needs ptrace rights over pid)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Sampler:
    """Samples VmRSS and Threads of pid every `interval` seconds in a thread, keeping the peaks."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid, self.interval = pid, interval
        self.peak_rss = self.peak_threads = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        try:
            rss, thr = rss_kib(self.pid), threads(self.pid)
        except BenchError:
            return
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_threads = max(self.peak_threads, thr)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "Sampler":
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def mib(kib: float) -> float:
    return kib / 1024


def count_text(n: int) -> str:
    """10000 -> "10 000"."""
    return f"{n:,}".replace(",", " ")


# ---------------------------------------------------------------------------------------
# measurements


@dataclass
class Row:
    measurement: str
    value: str
    target: str
    result: str  # met / NOT MET / skipped / info / error


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def request(url: str) -> None:
    r = httpx.get(url, timeout=10)
    if r.status_code != 200:
        raise BenchError(f"GET {url} answered {r.status_code}: {r.text[:200]}")


class _Conn:
    __slots__ = ("sock", "phase", "out", "buf")

    def __init__(self, sock: socket.socket, out: bytes):
        self.sock, self.phase, self.out, self.buf = sock, "connect", out, b""


def _response_complete(buf: bytes) -> bool:
    """Whether `buf` holds one whole HTTP/1.1 response, which must be a keep-alive 200."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    lines = buf[:end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or parts[1] != "200":
        raise BenchError(f"idle-connection request answered {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    if "close" in headers.get("connection", ""):
        raise BenchError("gatehouse answered Connection: close to a keep-alive request")
    body = buf[end + 4:]
    if "content-length" in headers:
        return len(body) >= int(headers["content-length"])
    if "chunked" in headers.get("transfer-encoding", ""):
        return body.endswith(b"0\r\n\r\n")
    raise BenchError("response without Content-Length or chunked framing on a keep-alive connection")


def open_idle_connections(port: int, count: int, window: int = 256, timeout: float = 90) -> list[socket.socket]:
    """`count` connections to 127.0.0.1:port, each having sent one keep-alive GET /echo and read
    its whole response; at most `window` in progress at a time (non-blocking, one selector)."""
    req = f"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: gatehouse-memory-bench\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    idle: list[socket.socket] = []
    in_progress = 0
    started = 0
    deadline = time.monotonic() + timeout
    try:
        while len(idle) < count:
            while started < count and in_progress < window:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                err = s.connect_ex(("127.0.0.1", port))
                if err not in (0, errno.EINPROGRESS):
                    s.close()
                    raise BenchError(f"connection {started + 1}: connect failed: {os.strerror(err)}")
                sel.register(s, selectors.EVENT_WRITE, _Conn(s, req))
                started += 1
                in_progress += 1
            if time.monotonic() > deadline:
                raise BenchError(f"only {len(idle)} of {count} connections completed a request within {timeout:.0f} s")
            for key, _ in sel.select(timeout=1.0):
                c: _Conn = key.data
                if c.phase == "connect":
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise BenchError(f"connect failed after {len(idle)} idle connections: {os.strerror(err)}")
                    c.phase = "send"
                if c.phase == "send":
                    n = c.sock.send(c.out)
                    c.out = c.out[n:]
                    if not c.out:
                        c.phase = "read"
                        sel.modify(c.sock, selectors.EVENT_READ, c)
                    continue
                data = c.sock.recv(65536)
                if not data:
                    raise BenchError(f"gatehouse closed a connection before answering (after {len(idle)} idle ones)")
                c.buf += data
                if _response_complete(c.buf):
                    sel.unregister(c.sock)
                    idle.append(c.sock)
                    in_progress -= 1
        return idle
    except BaseException:
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        for s in idle:
            s.close()
        raise
    finally:
        sel.close()


def closed_by_peer(socks: list[socket.socket]) -> int:
    """How many of these idle connections gatehouse has closed (readable = EOF or stray bytes)."""
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    closed = len(sel.select(timeout=0))
    sel.close()
    return closed


def measure_connections(gh: Proc, port: int, count: int, idle_kib: int, rows: list[Row], log) -> None:
    target = CONN_TARGET_MIB_PER_10K * count / 10_000
    name = f"{count_text(count)} idle keep-alive connections: RSS over idle"
    target_text = f"<= +{target:.0f} MiB" + ("" if count == 10_000 else " (10 KiB/conn)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = count + 256
    lo, hi = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    why = None
    if soft < need:
        why = f"RLIMIT_NOFILE is {soft} (hard {hard}), {need} needed; raise the hard limit (ulimit -Hn, as root)"
    elif hi - lo + 1 < count + 1000:
        why = f"ephemeral port range {lo}-{hi} has {hi - lo + 1} ports, {count + 1000} needed"
    if why:
        log(f"skipping the connections measurement: {why}")
        rows.append(Row(name, "—", target_text, f"skipped: {why}"))
        return
    t0 = time.monotonic()
    socks = open_idle_connections(port, count)
    opened_in = time.monotonic() - t0
    try:
        time.sleep(1.0)
        if not gh.alive():
            raise BenchError(f"gatehouse died while holding {count} connections\n{gh.tail()}")
        rss = rss_kib(gh.popen.pid)
        thr = threads(gh.popen.pid)
        gone = closed_by_peer(socks)
        delta = rss - idle_kib
        log(f"{count} connections opened in {opened_in:.1f} s; RSS {mib(rss):.1f} MiB, threads {thr}, closed by gatehouse {gone}")
        if gone:
            raise BenchError(f"{gone} of {count} idle connections were closed by gatehouse before the measurement")
        rows.append(Row(name, f"+{mib(delta):.1f} MiB ({mib(rss):.1f} MiB, {delta / count:.1f} KiB/conn)",
                        target_text, verdict(mib(delta) <= target)))
        rows.append(Row(f"threads with {count_text(count)} connections", str(thr), "—", "info"))
    finally:
        for s in socks:
            s.close()
    time.sleep(1.0)
    if gh.alive():
        rows.append(Row("RSS 1 s after closing them", f"{mib(rss_kib(gh.popen.pid)):.1f} MiB", "—", "info"))


def upload_chunks(size: int, digest) -> Iterator[bytes]:
    """`size` generated bytes in CHUNK pieces (a fixed random block, each chunk stamped with its
    index so no two are alike), hashed into `digest` as they are handed out."""
    block = random.Random(20261202).randbytes(CHUNK)
    sent, index = 0, 0
    while sent < size:
        n = min(CHUNK, size - sent)
        chunk = (struct.pack("<Q", index) + block[8:])[:n]
        digest.update(chunk)
        yield chunk
        sent += n
        index += 1


def measure_transfer(kind: str, gh: Proc, port: int, size: int, rows: list[Row], log) -> None:
    pid = gh.popen.pid
    url = f"http://127.0.0.1:{port}"
    label = f"{size // GIB} GiB" if size % GIB == 0 else f"{size // MIB} MiB"
    expected = payload_sha256(size) if kind == "download" else None  # before the clock starts
    got = hashlib.sha256()
    received = 0
    hwm_ok = reset_peak(pid)
    before = rss_kib(pid)
    t0 = time.monotonic()
    with httpx.Client(base_url=url, timeout=httpx.Timeout(120.0)) as client, Sampler(pid) as sampler:
        if kind == "upload":
            r = client.post(
                "/upload", content=upload_chunks(size, got),
                headers={"content-type": "application/octet-stream", "content-length": str(size)},
            )
            if r.status_code != 200:
                raise BenchError(f"upload answered {r.status_code}: {r.text[:300]}")
            answer = r.json()
            if answer.get("len") != size or answer.get("sha256") != got.hexdigest():
                raise BenchError(f"upload arrived damaged: sent {size} bytes sha256 {got.hexdigest()}, "
                                 f"upstream got {answer.get('len')} bytes sha256 {answer.get('sha256')}")
        else:
            with client.stream("GET", "/download", params={"size": size}) as r:
                if r.status_code != 200:
                    r.read()
                    raise BenchError(f"download answered {r.status_code}: {r.text[:300]}")
                for chunk in r.iter_raw():
                    got.update(chunk)
                    received += len(chunk)
            if received != size or got.hexdigest() != expected:
                raise BenchError(f"download arrived damaged: {received} of {size} bytes, sha256 "
                                 f"{got.hexdigest()} (expected {expected})")
    elapsed = time.monotonic() - t0
    if not gh.alive():
        raise BenchError(f"gatehouse died during the {kind}\n{gh.tail()}")
    peak = sampler.peak_rss
    source = f"{sampler.samples} samples"
    if hwm_ok:
        hwm = status_field(pid, "VmHWM")
        if hwm > peak:
            peak, source = hwm, f"VmHWM; sampled peak {mib(sampler.peak_rss):.1f} MiB"
        else:
            source += ", VmHWM agrees"
    growth = peak - before
    log(f"{kind} {label}: {size / MIB / elapsed:.0f} MiB/s, RSS before {mib(before):.1f} MiB, peak {mib(peak):.1f} MiB "
        f"({source}), threads peak {sampler.peak_threads}")
    rows.append(Row(f"{label} {kind}: peak RSS - RSS before",
                    f"+{mib(growth):.1f} MiB ({mib(before):.1f} -> {mib(peak):.1f} MiB, {size / MIB / elapsed:.0f} MiB/s)",
                    f"<= {FLAT_TARGET_MIB:.0f} MiB", verdict(mib(growth) <= FLAT_TARGET_MIB)))
    rows.append(Row(f"threads during the {kind} (peak)", str(sampler.peak_threads), "—", "info"))


# ---------------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    head = Row("measurement", "value", "target", "result")
    widths = [max(len(getattr(r, f)) for r in [head, *rows]) for f in ("measurement", "value", "target")]
    out = []
    for i, r in enumerate([head, *rows]):
        out.append(f"{r.measurement:<{widths[0]}}  {r.value:<{widths[1]}}  {r.target:<{widths[2]}}  {r.result}")
        if i == 0:
            out.append("  ".join("-" * w for w in widths) + "  " + "-" * 7)
    return "\n".join(out)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="64 MiB transfers and 1 000 connections")
    parser.add_argument("--connections", type=int, help="idle keep-alive connections (default 10 000)")
    parser.add_argument("--transfer-mib", type=int, help="size of each transfer in MiB (default 1024)")
    args = parser.parse_args()
    count = args.connections or (1_000 if args.quick else 10_000)
    size = (args.transfer_mib or (64 if args.quick else 1024)) * MIB
    if count < 1 or size < 1:
        parser.error("sizes must be positive")

    binary = Path(os.environ.get("GATEHOUSE_BIN", REPO / ".build" / "release" / "gatehouse"))
    if not binary.is_absolute():
        binary = (Path.cwd() / binary).resolve()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        print(f"memory.py: gatehouse binary not found at {binary}; build it (swift build -c release) "
              "or set GATEHOUSE_BIN", file=sys.stderr)
        return 2

    # Before gatehouse starts, so that it inherits the raised limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, count + 1024)
    if soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            print(f"memory.py: could not raise RLIMIT_NOFILE to {wanted}: {exc}", file=sys.stderr)

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    lines: list[str] = []

    def log(msg: str) -> None:
        print(f"memory: {msg}", flush=True)
        lines.append(msg)

    rows: list[Row] = []
    failure: str | None = None
    procs: list[Proc] = []
    with tempfile.TemporaryDirectory(prefix="gatehouse-memory-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            up, up_port = start_upstream(tmp)
            procs.append(up)
            gh, port, admin = start_gatehouse(binary, up_port, tmp)
            procs.append(gh)
            pid = gh.popen.pid
            log(f"gatehouse {binary} (pid {pid}) on 127.0.0.1:{port}, upstream uvicorn on 127.0.0.1:{up_port}; "
                f"RLIMIT_NOFILE {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}")

            # idle
            request(f"http://127.0.0.1:{port}/echo")
            time.sleep(1.0)
            idle = rss_kib(pid)
            rows.append(Row("idle RSS (auth off, after 1 request)", f"{mib(idle):.1f} MiB",
                            f"<= {IDLE_TARGET_MIB:.0f} MiB", verdict(mib(idle) <= IDLE_TARGET_MIB)))
            rows.append(Row("threads at idle", str(threads(pid)), "—", "info"))

            measure_connections(gh, port, count, idle, rows, log)
            measure_transfer("upload", gh, port, size, rows, log)
            measure_transfer("download", gh, port, size, rows, log)
            if not gh.alive():
                raise BenchError(f"gatehouse exited with {gh.popen.returncode}\n{gh.tail()}")
        except BenchError as exc:
            failure = str(exc)
        except (OSError, httpx.HTTPError) as exc:
            failure = f"{type(exc).__name__}: {exc}"
        finally:
            if failure and procs and procs[-1].name == "gatehouse" and not procs[-1].alive():
                code = procs[-1].popen.returncode
                if "died" not in failure and "exited with" not in failure:
                    failure += f"\ngatehouse died (exit status {code})\n{procs[-1].tail()}"
            for p in reversed(procs):
                p.stop()

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    header = (f"gatehouse memory, {stamp}, commit {git_commit()}, {binary}\n"
              f"{os.cpu_count()} CPUs, load average {load} at the end, Linux {platform.release()}; "
              f"{'--quick, ' if args.quick else ''}{count} connections, {size // MIB} MiB transfers")
    report = header + "\n\n" + table(rows) + "\n"
    if failure:
        report += f"\nFAILED: {failure}\n"
    report += "\n" + "\n".join(lines) + "\n"
    print()
    print(header + "\n\n" + table(rows))
    if failure:
        print(f"\nFAILED: {failure}", file=sys.stderr)
    try:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"{stamp}-memory.txt"
        out.write_text(report)
        print(f"\nwritten to {out.relative_to(REPO)}")
    except OSError as exc:
        print(f"memory.py: could not write the results file: {exc}", file=sys.stderr)
    return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main())
