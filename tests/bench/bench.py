#!/usr/bin/env python3
"""Throughput of baton-http directly (--listen, SO_REUSEPORT) and through
batond, with a new connection per request and with keep-alive, measured
with wrk in one run.  Prints the figures and the ratios.

Then batond's memory: resident set size at idle and while workers hold
BENCH_HELD (default 10000) open keep-alive connections, against the
targets (8 MiB idle, 16 MiB at 10,000 connections).

Environment: BATON_BIN (binaries), BENCH_SECONDS (per run, default 5),
BENCH_CONNS (wrk connections, default 50), BENCH_WORKERS (default 2),
BENCH_HELD (default 10000).
"""
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import Batond, TestDir, bin_path, http_get, wait_until  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
CONNS = int(os.environ.get("BENCH_CONNS", "50"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
HELD = int(os.environ.get("BENCH_HELD", "10000"))
MIB = 1024 * 1024


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wrk(port, close):
    args = ["wrk", "-t2", f"-c{CONNS}", f"-d{SECONDS}s", "--latency"]
    if close:
        args += ["-H", "Connection: close"]
    out = subprocess.run(args + [f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                         timeout=SECONDS + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(m.group(1)) if m else 0
    return rps, errors


def measure(port):
    return {"new connection per request": wrk(port, True), "keep-alive": wrk(port, False)}


def direct():
    port = free_port()
    procs = [subprocess.Popen([bin_path("baton-http"), "--listen", f"tcp:127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(WORKERS)]
    try:
        wait_until(lambda: _up(port), 10, "baton-http --listen")
        return measure(port)
    finally:
        for p in procs:
            p.send_signal(signal.SIGKILL)
            p.wait()


def _up(port):
    try:
        return http_get(("127.0.0.1", port), timeout=1)[0] == 200
    except OSError:
        return False


def upgrading(b, stop, count):
    """Run `batonctl upgrade web` once a second until stop is set."""
    while not stop.wait(1.0):
        r = subprocess.run([bin_path("batonctl"), "-s", b.control, "upgrade", "web"],
                           capture_output=True, text=True, timeout=60)
        count.append(r.returncode)


def through_batond():
    td = TestDir()
    try:
        b = Batond(td, f"""
[baton]
log_level = warn
[listener:web]
address = tcp:127.0.0.1:0
program = web
backlog = 4096
[program:web]
command = @BIN@/baton-http
workers = {WORKERS}
""", args=["-l", "info"], wait_ready=WORKERS)
        port = b.port("web")
        res = measure(port)
        stop, codes = threading.Event(), []
        t = threading.Thread(target=upgrading, args=(b, stop, codes))
        t.start()
        try:
            res["upgrading"] = measure(port)
        finally:
            stop.set()
            t.join()
        res["upgrades"] = codes
        assert b.stop() == 0
        return res
    finally:
        td.cleanup()


def rss(pid):
    """(VmRSS, VmHWM) of a process, in bytes."""
    with open(f"/proc/{pid}/status") as f:
        text = f.read()
    return tuple(int(re.search(rf"^{k}:\s+(\d+) kB", text, re.M).group(1)) * 1024
                 for k in ("VmRSS", "VmHWM"))


def memory():
    """batond's RSS at idle and with HELD connections held by the workers."""
    need = HELD + 512
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(hard, need)))
    td = TestDir()
    conns = []
    try:
        cap = HELD // WORKERS + 1024
        b = Batond(td, f"""
[baton]
log_level = warn
[listener:web]
address = tcp:127.0.0.1:0
program = web
backlog = 4096
[program:web]
command = @BIN@/baton-http --capacity {cap}
capacity = {cap}
workers = {WORKERS}
""", args=["-l", "info"], wait_ready=WORKERS, wrapper=["prlimit", f"--nofile={need}:{need}"])
        port = b.port("web")
        for _ in range(100):
            assert http_get(("127.0.0.1", port))[0] == 200
        time.sleep(0.5)
        idle = rss(b.proc.pid)[0]
        deadline, answered = time.monotonic() + 120, 0
        for i in range(HELD):
            assert time.monotonic() < deadline, f"only {i} connections in 120 s"
            c = socket.create_connection(("127.0.0.1", port), timeout=30)
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            conns.append(c)
            if len(conns) % 500 == 0 or i == HELD - 1:  # read the answers: handed and acked
                for c2 in conns[answered:]:
                    assert c2.recv(4096).startswith(b"HTTP/1.1 200"), "no answer"
                answered = len(conns)
        held, peak = rss(b.proc.pid)
        for c in conns:
            c.close()
        conns = []
        assert b.stop() == 0
        return idle, held, peak
    finally:
        for c in conns:
            c.close()
        td.cleanup()


def main():
    print(f"baton bench: wrk -t2 -c{CONNS} -d{SECONDS}s, {WORKERS} baton-http workers, "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    d = direct()
    b = through_batond()
    print(f"{'mode':<28} {'direct req/s':>14} {'batond req/s':>14} {'ratio':>7} {'errors d/b':>11}")
    for mode in d:
        (dr, de), (br, be) = d[mode], b[mode]
        print(f"{mode:<28} {dr:>14.0f} {br:>14.0f} {br / dr:>7.2f} {de:>5}/{be:<5}")
    codes = b["upgrades"]
    print(f"\nupgrade under load: `batonctl upgrade web` once a second "
          f"({len(codes)} upgrades, {sum(c != 0 for c in codes)} failed)")
    print(f"{'mode':<28} {'steady req/s':>14} {'upgrading':>14} {'ratio':>7} {'errors':>11}")
    for mode in d:
        (sr, _), (ur, ue) = b[mode], b["upgrading"][mode]
        print(f"{mode:<28} {sr:>14.0f} {ur:>14.0f} {ur / sr:>7.2f} {ue:>11}")
    idle, held, peak = memory()
    print(f"\nbatond memory (VmRSS): idle {idle / MIB:.1f} MiB (target < 8 MiB, "
          f"{idle / (8 * MIB):.2f} of it); {HELD} open connections held by the workers "
          f"{held / MIB:.1f} MiB, peak {peak / MIB:.1f} MiB (target < 16 MiB, "
          f"{peak / (16 * MIB):.2f} of it)")
    return 1 if any(codes) else 0


if __name__ == "__main__":
    sys.exit(main())
