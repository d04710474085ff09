#!/usr/bin/env python3
"""batond upgrading itself (`batonctl reexec`): the exec window and the
throughput while it re-executes every second, against steady state.

One batond with 2 programs and 8 workers (baton-http x4, baton-echo x4).
The exec window is what `batonctl reexec` reports: from the old image's
commit (signals blocked, final state written) to the new image ready to
accept, in ms; printed as min / median / max over BENCH_REEXECS runs
(default 20).  Under load, the accept gap as clients see it: from the old
image's last accept to the new image's first (batond logs it).  Then wrk, new connection per request and keep-alive, for
BENCH_SECONDS (default 5) in steady state and again while a reexec runs
every second, alternating between two builds: req/s, the ratio, and every
error.  Target: window under 50 ms, 0 errors.

Environment: BATON_BIN, BENCH_SECONDS, BENCH_REEXECS, BENCH_CONNS (wrk, 50).
"""
import os
import re
import statistics
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import Batond, TestDir, bin_path  # noqa: E402
from bench import wrk  # noqa: E402  (BENCH_SECONDS and BENCH_CONNS apply alike)

REEXECS = int(os.environ.get("BENCH_REEXECS", "20"))
NEXT = os.path.join(os.path.dirname(bin_path("batond")), "test", "batond-next")


def ctl(b, *args):
    return subprocess.run([bin_path("batonctl"), "-s", b.control, *args], capture_output=True,
                          text=True, timeout=60)


def reexec(b, i):
    r = ctl(b, "reexec", "--binary", NEXT if i % 2 == 0 else bin_path("batond"))
    m = re.search(r"exec window (\d+) ms", r.stdout)
    return (int(m.group(1)) if r.returncode == 0 and m else None), r


def main():
    td = TestDir()
    try:
        b = Batond(td, """
[baton]
log_level = warn
[listener:web]
address = tcp:127.0.0.1:0
program = web
backlog = 4096
[listener:echo]
address = tcp:127.0.0.1:0
program = echo
[program:web]
command = @BIN@/baton-http
workers = 4
[program:echo]
command = @BIN@/baton-echo
workers = 4
""", args=["-l", "info"], wait_ready=8)
        port = b.port("web")
        windows, failures = [], []
        for i in range(REEXECS):
            ms, r = reexec(b, i)
            if ms is None:
                failures.append(r.stderr.strip())
            else:
                windows.append(ms)
        print(f"reexec, 2 programs / 8 workers, {REEXECS} runs: exec window "
              f"min {min(windows)} ms, median {statistics.median(windows)} ms, max {max(windows)} ms "
              f"(target < 50 ms); failed: {len(failures)}")
        for f in failures[:3]:
            print("   ", f)
        for close, mode in ((True, "new connection per request"), (False, "keep-alive")):
            steady = wrk(port, close)
            stop, codes = threading.Event(), []

            def loop():
                i = 0
                while not stop.wait(1.0):
                    codes.append(reexec(b, i)[0] is not None)
                    i += 1
            t = threading.Thread(target=loop)
            t.start()
            try:
                during = wrk(port, close)
            finally:
                stop.set()
                t.join()
            print(f"{mode:28s} steady {steady['rps']:10.0f} req/s ({steady['errors']} errors)   "
                  f"reexec every second {during['rps']:10.0f} req/s ({during['errors']} errors, "
                  f"{sum(codes)}/{len(codes)} reexecs ok)   ratio {during['rps'] / steady['rps']:.2f}")
        # Each new image that accepts logs the gap since the old image's last
        # accept: the reexecs under new-connection load have one (keep-alive
        # wrk opens its connections once, so nothing is accepted after).
        gaps = sorted(float(g) for g in re.findall(r"accept_gap_ms=([\d.]+)", b.log()))
        if gaps:
            print(f"accept gap under load (last accept by the old image to the first by the new), "
                  f"{len(gaps)} of them: min {gaps[0]:.1f} ms, median {statistics.median(gaps):.1f} ms, "
                  f"max {gaps[-1]:.1f} ms (target < 50 ms)")
        assert b.stop() == 0
    finally:
        td.cleanup()


if __name__ == "__main__":
    main()
