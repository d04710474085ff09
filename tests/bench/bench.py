#!/usr/bin/env python3
"""baton-http directly (BENCH_WORKERS processes on one SO_REUSEPORT port,
--listen) against the same workers behind batond, under wrk with a new
connection per request (-H 'Connection: close') and with keep-alive.

Throughput and latency: req/s, p50 and p99 (wrk --latency), errors, and
the ratios batond / direct against their goals (req/s >= 0.92 with new
connections, >= 0.99 with keep-alive; p50 and p99 <= 1.15).

CPU: utime + stime from /proc/PID/stat, read before and after each wrk
run, of batond, of its workers (its children) and of the direct workers,
per connection with new connections (batond's divisor is its own
accepted counter from `batonctl metrics`, the workers' the requests wrk
completed) and per request with keep-alive.  Ratios: batond alone /
direct workers (goal <= 0.25, stretch 0.15) and batond + its workers /
direct workers (goal <= 1.00); and the new connections per second one
core could accept at batond's cost per connection.

Figures are printed against their goals, never asserted.

Sessions: where the kernel groups tasks by session for scheduling
(kernel.sched_autogroup_enabled = 1, tasks outside a cpu cgroup), each
session is a group with an equal share of the CPUs, and on two cores
shared with wrk how the processes are grouped moves the figures by up to
a third.  batond and the direct workers run in the bench's session, with
wrk, as they always have here; batond's workers each lead a session of
their own (batond's setsid: no controlling terminal).  Then
(BENCH_LAYOUTS=0 skips it) the direct workers are measured again all in
one session of their own (a prefork server's layout) and each in one of
their own (the layout of batond's workers), with batond's ratios against
each: the baseline's layout is a choice, and this shows what it weighs.

Then (BENCH_UPGRADE=0 skips it) the same load through batond while
`batonctl upgrade web` runs once a second, against the steady figures.

Then (BENCH_SCHED=0 skips it) the new-connection load through a batond
with `batch_scheduling = no`, against the default (yes): req/s, latency
and CPU per connection of batond and of its workers.

Then (BENCH_DEFER=0 skips it) the new-connection load with
TCP_DEFER_ACCEPT on both sides: the direct workers' socket
(`--defer-accept 1`) and batond's listener (`tcp_defer_accept = 1s`);
a client is then accepted only once its request is in, so every worker
reads it at once.  Ratios against the goals, and the runs without it.

Then (BENCH_HELD=0 skips it) batond's memory: resident set size at idle
and while workers hold BENCH_HELD open keep-alive connections, against
the targets (8 MiB idle, 16 MiB at 10,000 connections).

Exits 1 if an upgrade failed; a failure of the bench itself (a process
that does not start, batond not stopping cleanly) raises.

Environment: BATON_BIN (binaries), BENCH_SECONDS (per wrk run, default
5), BENCH_CONNS (wrk connections, default 50), BENCH_WORKERS (default 2),
BENCH_UPGRADE (default 1), BENCH_SCHED (default 1), BENCH_LAYOUTS (default 1),
BENCH_DEFER (default 1),
BENCH_HELD (default 10000).
"""
import os
import re
import resource
import shlex
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
UPGRADE = os.environ.get("BENCH_UPGRADE", "1") != "0"
SCHED = os.environ.get("BENCH_SCHED", "1") != "0"
LAYOUT_ALL = os.environ.get("BENCH_LAYOUTS", "1") != "0"
DEFER = os.environ.get("BENCH_DEFER", "1") != "0"
HELD = int(os.environ.get("BENCH_HELD", "10000"))
MIB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")

NEW, KEEP = "new connection per request", "keep-alive"
MODES = {NEW: True, KEEP: False}  # mode: send 'Connection: close'
# Goals for the ratios batond / direct: (">=" or "<=", bound).
REQS_GOAL = {NEW: (">=", 0.92), KEEP: (">=", 0.99)}
LATENCY_GOAL = ("<=", 1.15)
CPU_GOAL, CPU_STRETCH = ("<=", 0.25), 0.15
CPU_TOTAL_GOAL = ("<=", 1.00)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --- wrk ---------------------------------------------------------------

def seconds(text):
    """wrk's '812.00us', '1.23ms', '1.02s' in seconds."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(2)]


def wrk(port, close):
    """One wrk run: dict of rps, p50, p99 (seconds), errors, requests."""
    args = ["wrk", "-t2", f"-c{CONNS}", f"-d{SECONDS}s", "--latency"]
    if close:
        args += ["-H", "Connection: close"]
    out = subprocess.run(args + [f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                         timeout=SECONDS + 60).stdout
    try:
        run = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
               "requests": int(re.search(r"(\d+) requests in", out).group(1)),
               "p50": seconds(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
               "p99": seconds(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))}
    except AttributeError:
        raise RuntimeError("cannot read wrk's output:\n" + out) from None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    run["errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    run["errors"] += int(m.group(1)) if m else 0
    return run


# --- CPU time from /proc -------------------------------------------------

def stat_fields(pid):
    """/proc/PID/stat's fields from the state on (field 3), or None if gone.
    The comm in parentheses may hold spaces and ')': split after the last ')'."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2:].split()


def cpu_ticks(pid):
    """utime + stime (fields 14 and 15) in clock ticks, or None if gone."""
    f = stat_fields(pid)
    return int(f[14 - 3]) + int(f[15 - 3]) if f else None


def children(pid):
    """PIDs whose parent is pid (ppid is field 4)."""
    kids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            f = stat_fields(name)
            if f and int(f[4 - 3]) == pid:
                kids.append(int(name))
    return kids


def cpu_snapshot(pids):
    return {p: t for p in pids if (t := cpu_ticks(p)) is not None}


def cpu_us(before, after):
    """CPU µs used between two snapshots, by the processes in both."""
    ticks = sum(after[p] - before[p] for p in before if p in after)
    return ticks * 1e6 / CLK_TCK


def accepted_total(control):
    """batond's connections accepted, all programs (`batonctl metrics`)."""
    out = subprocess.run([bin_path("batonctl"), "-s", control, "metrics"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return sum(int(n) for n in re.findall(r"^baton_connections_accepted_total\{.*\} (\d+)$", out, re.M))


# --- load ----------------------------------------------------------------

def loaded(port, close, groups, accepted=None):
    """One wrk run, with the CPU used by each group of processes (name:
    function returning PIDs) and, given accepted(), the connections
    batond accepted meanwhile."""
    count = accepted() if accepted else None
    before = {g: cpu_snapshot(pids()) for g, pids in groups.items()}
    run = wrk(port, close)
    run["cpu"] = {g: cpu_us(before[g], cpu_snapshot(before[g])) for g in groups}
    if accepted:
        run["accepted"] = accepted() - count
    return run


def measure(port, groups=None, accepted=None):
    return {mode: loaded(port, close, groups or {}, accepted) for mode, close in MODES.items()}


# Where the direct workers run, for the scheduler (see "Sessions" above).
ONE, OWN, WRKS = "one session", "own sessions", "wrk's session"
LAYOUTS = {WRKS: "in the bench's session, with wrk (the baseline of the ratios above)",
           ONE: "all in one session of their own, as a prefork server's workers",
           OWN: "each in a session of its own, as batond's workers"}


def direct(layout=WRKS, args=(), modes=MODES):
    """The direct workers' figures, started in the given layout, with more
    baton-http args, under the given modes."""
    port = free_port()
    cmd = [bin_path("baton-http"), "--listen", f"tcp:127.0.0.1:{port}", *args]
    if layout == ONE:  # one shell leads their session and waits for them
        lead = subprocess.Popen(["sh", "-c", " & ".join([shlex.join(cmd)] * WORKERS) + " & wait"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        procs = [lead]
    else:
        procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=layout == OWN) for _ in range(WORKERS)]
    try:
        wait_until(lambda: _up(port), 10, "baton-http --listen")
        if layout == ONE:
            wait_until(lambda: len(children(procs[0].pid)) == WORKERS, 10, "the workers")
        pids = children(procs[0].pid) if layout == ONE else [p.pid for p in procs]
        return {mode: loaded(port, close, {"workers": lambda: pids}) for mode, close in modes.items()}
    finally:
        if layout == ONE:
            os.killpg(procs[0].pid, signal.SIGKILL)  # the group the shell leads: ours
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


def under_upgrades(b, port):
    """The load while upgrades run; (figures, upgrade exit codes)."""
    stop, codes = threading.Event(), []
    t = threading.Thread(target=upgrading, args=(b, stop, codes))
    t.start()
    try:
        return measure(port), codes
    finally:
        stop.set()
        t.join()


def web_batond(td, workers, cap=None, nofile=None, baton="", listener=""):
    """batond serving one listener 'web' with `workers` baton-http workers;
    cap: their capacity (and --capacity), nofile: the fd limit of all;
    baton, listener: more [baton] and [listener:web] keys."""
    prog = f"command = @BIN@/baton-http --capacity {cap}\ncapacity = {cap}" if cap else \
        "command = @BIN@/baton-http"
    return Batond(td, f"""
[baton]
log_level = warn
{baton}
[listener:web]
address = tcp:127.0.0.1:0
program = web
backlog = 4096
{listener}
[program:web]
{prog}
workers = {workers}
""", args=["-l", "info"], wait_ready=workers,
                  wrapper=["prlimit", f"--nofile={nofile}:{nofile}"] if nofile else ())


def through_batond():
    td = TestDir()
    try:
        b = web_batond(td, WORKERS)
        port = b.port("web")
        pid = b.proc.pid
        res = {"steady": measure(port, {"batond": lambda: [pid], "workers": lambda: children(pid)},
                                 lambda: accepted_total(b.control))}
        if UPGRADE:
            res["upgrading"], res["upgrades"] = under_upgrades(b, port)
        assert b.stop() == 0
        return res
    finally:
        td.cleanup()


def new_connections_through(**keys):
    """The new-connection load through a batond with more config keys
    (web_batond's baton= and listener=)."""
    td = TestDir()
    try:
        b = web_batond(td, WORKERS, **keys)
        pid = b.proc.pid
        run = loaded(b.port("web"), True, {"batond": lambda: [pid], "workers": lambda: children(pid)},
                     lambda: accepted_total(b.control))
        assert b.stop() == 0
        return run
    finally:
        td.cleanup()


def without_batch_scheduling():
    """The new-connection load through a batond with batch_scheduling = no."""
    return new_connections_through(baton="batch_scheduling = no")


def with_defer_accept():
    """New connections with TCP_DEFER_ACCEPT on both sides: the direct
    workers' socket (--defer-accept 1) and batond's listener
    (tcp_defer_accept = 1s)."""
    d = direct(WRKS, ("--defer-accept", "1"), {NEW: True})[NEW]
    return d, new_connections_through(listener="tcp_defer_accept = 1s")


# --- memory --------------------------------------------------------------

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
        b = web_batond(td, WORKERS, cap, need)
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


# --- output --------------------------------------------------------------

def table(rows):
    """Print rows (the first is the header) in aligned columns: text to
    the left, numbers to the right."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    numeric = [all(re.match(r"[\d.]", r[i]) or r[i] in ("", "-") for r in rows[1:])
               for i in range(len(widths))]
    for r in rows:
        cells = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric)]
        print("  ".join(cells).rstrip())


def latency(s):
    return f"{s * 1e6:.0f}us" if s < 1e-3 else f"{s * 1e3:.2f}ms" if s < 1 else f"{s:.2f}s"


def verdict(ratio, goal, stretch=None):
    """'met' / 'not met'; a stretch bound is for a '<=' goal."""
    op, bound = goal
    met = ratio >= bound if op == ">=" else ratio <= bound
    word = "met" if met else "not met"
    if stretch is not None and met:
        word += ", stretch " + ("met" if ratio <= stretch else "not met")
    return word


def goal_text(goal, stretch=None):
    text = f"{goal[0]} {goal[1]:.2f}"
    return text + (f" (stretch {stretch:.2f})" if stretch is not None else "")


def ratio_row(mode, what, d, b, goal=None, stretch=None):
    ratio = b / d if d else float("inf")
    return [mode, what, *cells_for(what, d, b), f"{ratio:.2f}",
            goal_text(goal, stretch) if goal is not None else "",
            verdict(ratio, goal, stretch) if goal is not None else ""]


def cells_for(what, d, b):
    if "latency" in what:
        return latency(d), latency(b)
    if "CPU" in what:
        return f"{d:.1f}", f"{b:.1f}"
    return f"{d:.0f}", f"{b:.0f}"


def print_throughput(d, b):
    print("\nthroughput and latency (ratio: batond / direct)")
    rows = [["mode", "figure", "direct", "batond", "ratio", "goal", ""]]
    for mode in MODES:
        dm, bm = d[mode], b[mode]
        rows.append(ratio_row(mode, "req/s", dm["rps"], bm["rps"], REQS_GOAL[mode]))
        rows.append(ratio_row(mode, "p50 latency", dm["p50"], bm["p50"], LATENCY_GOAL))
        rows.append(ratio_row(mode, "p99 latency", dm["p99"], bm["p99"], LATENCY_GOAL))
        rows.append([mode, "errors", str(dm["errors"]), str(bm["errors"]), "", "", ""])
    table(rows)


def cpu_per(run, group, mode):
    """CPU µs of a group per connection (NEW; batond's divisor its own
    accepted count) or per request (KEEP)."""
    n = run.get("accepted") if group == "batond" and mode == NEW else None
    return run["cpu"][group] / (n or run["requests"])


def print_cpu(d, b):
    print(f"\nCPU from /proc/PID/stat (utime + stime, {CLK_TCK} ticks/s): µs per connection with new "
          "connections,\nper request with keep-alive; direct: the direct workers; ratio: batond / direct")
    rows = [["mode", "figure", "direct", "batond", "ratio", "goal", ""]]
    for mode in MODES:
        unit = "conn" if mode == NEW else "req"
        direct_cpu = cpu_per(d[mode], "workers", mode)
        alone = cpu_per(b[mode], "batond", mode)
        workers = cpu_per(b[mode], "workers", mode)
        # The goal is per new connection: with keep-alive batond only
        # accepted wrk's few connections, under a clock tick.
        rows.append(ratio_row(mode, f"CPU µs/{unit}: batond alone", direct_cpu, alone,
                              *((CPU_GOAL, CPU_STRETCH) if mode == NEW else ())))
        rows.append(ratio_row(mode, f"CPU µs/{unit}: batond's workers", direct_cpu, workers))
        rows.append(ratio_row(mode, f"CPU µs/{unit}: batond + workers", direct_cpu, alone + workers,
                              CPU_TOTAL_GOAL))
    table(rows)
    run = b[NEW]
    alone = cpu_per(run, "batond", NEW)
    if not alone:
        print("batond: no CPU time measured (less than a clock tick)")
        return
    served = run.get("accepted") or run["requests"]
    divisor = "its accepted counter" if run.get("accepted") else "wrk's requests"
    print(f"batond: {run['cpu']['batond'] / 1e6:.2f} s CPU for {served} new connections "
          f"({divisor}), {alone:.1f} µs each: ≈ {1e6 / alone:,.0f} new connections/s per core")


def print_layouts(layouts, b):
    """The direct workers in each layout, and batond against each."""
    print("\ndirect workers by session layout (a session is a scheduling group where autogroup is on); "
          "ratio: batond / that layout")
    for name, text in LAYOUTS.items():
        print(f"  {name}: {text}")
    rows = [["mode", "figure", *[n for n in layouts], "batond", *[f"ratio {n}" for n in layouts]]]
    for mode in MODES:
        unit = "conn" if mode == NEW else "req"
        bm = b[mode]
        for what, key in (("req/s", "rps"), ("p50 latency", "p50"), ("p99 latency", "p99")):
            rows.append([mode, what, *[cells_for(what, 0, d[mode][key])[1] for d in layouts.values()],
                         cells_for(what, 0, bm[key])[1],
                         *[f"{bm[key] / d[mode][key]:.2f}" for d in layouts.values()]])
        total = cpu_per(bm, "batond", mode) + cpu_per(bm, "workers", mode)
        cpus = [cpu_per(d[mode], "workers", mode) for d in layouts.values()]
        rows.append([mode, f"CPU µs/{unit} (batond: + workers)", *[f"{c:.1f}" for c in cpus],
                     f"{total:.1f}", *[f"{total / c:.2f}" if c else "-" for c in cpus]])
    table(rows)


def print_upgrades(b):
    codes = b["upgrades"]
    print(f"\nupgrade under load: `batonctl upgrade web` once a second "
          f"({len(codes)} upgrades, {sum(c != 0 for c in codes)} failed; ratio: upgrading / steady)")
    rows = [["mode", "steady req/s", "upgrading", "ratio", "steady p99", "upgrading", "errors"]]
    for mode in MODES:
        s, u = b["steady"][mode], b["upgrading"][mode]
        rows.append([mode, f"{s['rps']:.0f}", f"{u['rps']:.0f}", f"{u['rps'] / s['rps']:.2f}",
                     latency(s["p99"]), latency(u["p99"]), str(u["errors"])])
    table(rows)


def print_sched(yes, no):
    print("\nbatch_scheduling, new connection per request: batond as SCHED_BATCH (yes, the default) "
          "against SCHED_OTHER (no);\nratio: yes / no")
    rows = [["figure", "no", "yes", "ratio"]]
    for what, key in (("req/s", "rps"), ("p50 latency", "p50"), ("p99 latency", "p99")):
        rows.append([what, *cells_for(what, no[key], yes[key]), f"{yes[key] / no[key]:.2f}"])
    for group in ("batond", "workers"):
        n, y = cpu_per(no, group, NEW), cpu_per(yes, group, NEW)
        rows.append([f"CPU µs/conn: {group}", f"{n:.1f}", f"{y:.1f}", f"{y / n:.2f}" if n else "-"])
    rows.append(["errors", str(no["errors"]), str(yes["errors"]), ""])
    table(rows)


def print_defer(d, b, d0, b0):
    """d, b: with TCP_DEFER_ACCEPT; d0, b0: the steady runs without."""
    print("\ntcp_defer_accept, new connection per request: direct workers with --defer-accept 1, batond "
          "with tcp_defer_accept = 1s;\nratio: batond / direct (both with it); 'without': the runs above")
    rows = [["figure", "direct", "batond", "ratio", "goal", "", "direct without", "batond without"]]
    for what, key, goal in (("req/s", "rps", REQS_GOAL[NEW]), ("p50 latency", "p50", LATENCY_GOAL),
                            ("p99 latency", "p99", LATENCY_GOAL)):
        rows.append(ratio_row("", what, d[key], b[key], goal)[1:] + list(cells_for(what, d0[key], b0[key])))
    dc = cpu_per(d, "workers", NEW)
    alone, workers = cpu_per(b, "batond", NEW), cpu_per(b, "workers", NEW)
    dc0 = cpu_per(d0, "workers", NEW)
    alone0, workers0 = cpu_per(b0, "batond", NEW), cpu_per(b0, "workers", NEW)
    rows.append(ratio_row("", "CPU µs/conn: batond alone", dc, alone, CPU_GOAL, CPU_STRETCH)[1:] +
                [f"{dc0:.1f}", f"{alone0:.1f}"])
    rows.append(ratio_row("", "CPU µs/conn: batond's workers", dc, workers)[1:] + ["", f"{workers0:.1f}"])
    rows.append(ratio_row("", "CPU µs/conn: batond + workers", dc, alone + workers, CPU_TOTAL_GOAL)[1:] +
                ["", f"{alone0 + workers0:.1f}"])
    rows.append(["errors", str(d["errors"]), str(b["errors"]), "", "", "", str(d0["errors"]), str(b0["errors"])])
    table(rows)


def print_memory(idle, held, peak):
    print(f"\nbatond memory (VmRSS): idle {idle / MIB:.1f} MiB (target < 8 MiB, "
          f"{idle / (8 * MIB):.2f} of it); {HELD} open connections held by the workers "
          f"{held / MIB:.1f} MiB, peak {peak / MIB:.1f} MiB (target < 16 MiB, "
          f"{peak / (16 * MIB):.2f} of it)")


def autogroup():
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as f:
            return "on" if f.read().strip() == "1" else "off"
    except OSError:
        return "absent"


def main():
    print(f"baton bench: wrk -t2 -c{CONNS} -d{SECONDS}s, {WORKERS} baton-http workers, "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, autogroup {autogroup()}")
    layouts = {WRKS: direct(WRKS)}
    if LAYOUT_ALL:
        layouts.update({name: direct(name) for name in (ONE, OWN)})
    d = layouts[WRKS]
    b = through_batond()
    print_throughput(d, b["steady"])
    print_cpu(d, b["steady"])
    if LAYOUT_ALL:
        print_layouts(layouts, b["steady"])
    if UPGRADE:
        print_upgrades(b)
    if SCHED:
        print_sched(b["steady"][NEW], without_batch_scheduling())
    if DEFER:
        print_defer(*with_defer_accept(), d[NEW], b["steady"][NEW])
    if HELD:
        print_memory(*memory())
    return 1 if any(b.get("upgrades", [])) else 0


if __name__ == "__main__":
    sys.exit(main())
