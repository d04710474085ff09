"""batonctl and the control socket: real batonctl against a real batond.

Every test is named ctl_* (run them alone with `run.py -k ctl_`).  Commands
go through bin/batonctl; a few checks speak baton/1 on a raw socket to act
as clients batonctl never is (garbage, silence, half a request).
"""
import json
import os
import pwd
import grp
import re
import resource
import select
import signal
import socket
import subprocess
import threading
import time

from harness import (skip, Batond, Load, TestDir, bin_path, http_get, pid_alive,  # noqa: F401
                     read_response, test, wait_until, web_config)

AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]

WORKER_RX = re.compile(r"^(\S+):(\d+) +(STARTING|RUNNING|DRAINING|STOPPING|BACKOFF|FATAL|EXITED|STOPPED)"
                       r" +pid (\d+|-) +gen (\d+|-) +conns (\d+) +uptime (\d+:\d\d:\d\d|-)(?:  last: (.*))?$")
LISTENER_RX = re.compile(r"^listener (\S+) +(\S+) +program (\S+) +accepted (\d+)(  paused)?$")
WORKER_KEYS = {"slot", "pid", "state", "generation", "conns", "handed", "uptime_s"}
LISTENER_KEYS = {"name", "address", "program", "accepted", "paused"}


# ---------------------------------------------------------------- helpers

def ctl(b, *args, sock=None, json_out=False, prefix=(), timeout=60):
    """bin/batonctl -s SOCK [--json] ARGS...; a CompletedProcess (text)."""
    cmd = [*prefix, bin_path("batonctl"), "-s", sock or b.control]
    if json_out:
        cmd.append("--json")
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout)


def status_json(b, *names, prefix=()):
    """(exit code, parsed document) of `batonctl --json status NAMES`."""
    r = ctl(b, "status", *names, json_out=True, prefix=prefix)
    assert r.returncode in (0, 3), (r.returncode, r.stdout, r.stderr)
    return r.returncode, json.loads(r.stdout)


def workers_of(doc, program):
    progs = [p for p in doc["programs"] if p["name"] == program]
    assert len(progs) == 1, (program, doc)
    return progs[0]["workers"]


def running_pids(b, program="web"):
    """{slot: pid} of the RUNNING workers, from batonctl --json status."""
    _, doc = status_json(b, program)
    return {w["slot"]: w["pid"] for w in workers_of(doc, program)
            if w["state"] == "RUNNING" and w["pid"] is not None}


def parse_status_text(out):
    """Worker lines, then listener lines; every line must be one of them."""
    workers, listeners = [], []
    for line in out.splitlines():
        m = WORKER_RX.match(line)
        if m:
            assert not listeners, ("worker line after a listener line", out)
            workers.append(dict(program=m[1], slot=int(m[2]), state=m[3],
                                pid=None if m[4] == "-" else int(m[4]),
                                gen=None if m[5] == "-" else int(m[5]), conns=int(m[6]),
                                uptime=m[7], last=m[8]))
            continue
        m = LISTENER_RX.match(line)
        assert m, ("unexpected status line", line, out)
        listeners.append(dict(name=m[1], address=m[2], program=m[3], accepted=int(m[4]),
                              paused=bool(m[5])))
    return workers, listeners


class LineReader:
    """Lines from a pipe, each read with a deadline (no hang if none comes)."""

    def __init__(self, f):
        self.fd = f.fileno()
        self.buf = b""
        self.eof = False

    def readline(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf and not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if select.select([self.fd], [], [], left)[0]:
                chunk = os.read(self.fd, 4096)
                self.eof = not chunk
                self.buf += chunk
        if b"\n" not in self.buf:
            return None
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def until(self, pattern, timeout):
        """Read lines until one matches; returns every line read."""
        deadline = time.monotonic() + timeout
        lines = []
        while True:
            line = self.readline(max(0.0, deadline - time.monotonic()))
            assert line is not None, (f"no line /{pattern}/ in time", lines)
            lines.append(line)
            if re.search(pattern, line):
                return lines


def ctl_connect(path, timeout=10):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def read_until_eof(s, timeout=10):
    """Everything the server sends until it closes.  A reset after the
    answer (we left bytes it never read) counts as the close."""
    s.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def first_line(s, timeout=10):
    """The first response line (without '\\n'), or what came before EOF."""
    s.settimeout(timeout)
    data = b""
    while b"\n" not in data:
        try:
            chunk = s.recv(4096)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0].decode("ascii", "replace")


def raw(path, payload, timeout=10):
    """One raw baton/1 exchange: send payload, return every response line."""
    s = ctl_connect(path, timeout)
    try:
        s.sendall(payload)
        return read_until_eof(s, timeout).decode().split("\n")
    finally:
        s.close()


def raw_json(path, command):
    """`baton/1 json COMMAND` on a raw socket: (code, document)."""
    lines = [ln for ln in raw(path, f"baton/1 json {command}\n".encode()) if ln]
    assert lines and lines[-1].startswith("= "), lines
    assert all(ln.startswith("| ") for ln in lines[:-1]), lines
    return int(lines[-1].split()[1]), json.loads("\n".join(ln[2:] for ln in lines[:-1]))


SAMPLE_RX = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RX = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text format 0.0.4: (helps, types, [(name, labels, value)]).
    Asserts the shape of every line on the way."""
    helps, types, samples = {}, {}, []
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, h = line[7:].partition(" ")
            assert name not in helps and h, ("HELP repeated or empty", line)
            helps[name] = h
        elif line.startswith("# TYPE "):
            name, _, t = line[7:].partition(" ")
            assert name not in types, ("TYPE repeated", line)
            assert t in ("counter", "gauge", "histogram", "summary", "untyped"), line
            types[name] = t
        elif line.startswith("#"):
            continue
        else:
            m = SAMPLE_RX.match(line)
            assert m, ("not 'name{labels} value'", line)
            name, labels = m[1], m[2] or ""
            pairs = LABEL_RX.findall(labels)
            assert ",".join(f'{k}="{v}"' for k, v in pairs) == labels, ("bad labels", line)
            value = float(m[3])  # 1, 0.5, +Inf: all must parse
            family = name
            if name not in types:
                for suffix in ("_bucket", "_sum", "_count"):
                    if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
                        family = name[:-len(suffix)]
            assert family in types and family in helps, ("sample before its # HELP/# TYPE", line)
            samples.append((name, dict(pairs), value))
    return helps, types, samples


def metric(samples, name, **labels):
    found = [v for n, lab, v in samples if n == name and lab == labels]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def metrics(b):
    r = ctl(b, "metrics")
    assert r.returncode == 0, (r.returncode, r.stderr)
    return parse_metrics(r.stdout)


# ---------------------------------------------------------------- read-only commands

@test
def ctl_status_pid_version_help(td):
    b = Batond(td, web_config(workers=2, extra_listeners="""
[listener:e]
address = tcp:127.0.0.1:0
program = echo
""") + """
[program:echo]
command = @BIN@/baton-echo
workers = 1
""", wait_ready=3)
    web = {slot: pid for pid, slot in b.ready_pids("web").items()}
    echo = {slot: pid for pid, slot in b.ready_pids("echo").items()}
    p4, pe = b.port("v4"), b.port("e")

    r = ctl(b, "status")
    assert r.returncode == 0 and r.stderr == "", (r.returncode, r.stderr)
    workers, listeners = parse_status_text(r.stdout)
    assert [(w["program"], w["slot"]) for w in workers] == [("web", 0), ("web", 1), ("echo", 0)], r.stdout
    for w in workers:
        want = (web if w["program"] == "web" else echo)[w["slot"]]
        assert (w["state"], w["pid"], w["gen"], w["conns"]) == ("RUNNING", want, 1, 0), (w, r.stdout)
    assert [(x["name"], x["address"], x["program"], x["accepted"], x["paused"]) for x in listeners] == \
        [("v4", f"127.0.0.1:{p4}", "web", 0, False), ("e", f"127.0.0.1:{pe}", "echo", 0, False)], r.stdout

    for _ in range(5):
        assert http_get(("127.0.0.1", p4))[0] == 200
    code, doc = status_json(b)
    assert code == 0
    assert set(doc) >= {"programs", "listeners"}, doc
    assert [p["name"] for p in doc["programs"]] == ["web", "echo"], doc
    for p in doc["programs"]:
        assert p["generation"] == 1, p
        for w in p["workers"]:
            assert set(w) >= WORKER_KEYS, w
            assert w["state"] == "RUNNING" and w["generation"] == 1 and w["uptime_s"] >= 0, w
            assert w["pid"] == (web if p["name"] == "web" else echo)[w["slot"]], (w, web, echo)
    assert sum(w["handed"] for w in workers_of(doc, "web")) == 5, doc
    assert sum(w["handed"] for w in workers_of(doc, "echo")) == 0, doc
    ls = {x["name"]: x for x in doc["listeners"]}
    for x in ls.values():
        assert set(x) >= LISTENER_KEYS and x["paused"] is False, x
    assert (ls["v4"]["program"], ls["v4"]["accepted"], ls["v4"]["address"]) == ("web", 5, "tcp:127.0.0.1:0"), ls
    assert (ls["e"]["program"], ls["e"]["accepted"]) == ("echo", 0), ls

    # NAME and NAME:SLOT filter workers, and listeners by program
    for names, want_w, want_l in ((["web:1"], [("web", 1)], ["v4"]),
                                  (["echo"], [("echo", 0)], ["e"]),
                                  (["web"], [("web", 0), ("web", 1)], ["v4"]),
                                  (["web:0", "echo:0"], [("web", 0), ("echo", 0)], ["v4", "e"]),
                                  (["all"], [("web", 0), ("web", 1), ("echo", 0)], ["v4", "e"])):
        r = ctl(b, "status", *names)
        assert r.returncode == 0, (names, r.returncode, r.stderr)
        workers, listeners = parse_status_text(r.stdout)
        assert [(w["program"], w["slot"]) for w in workers] == want_w, (names, r.stdout)
        assert [x["name"] for x in listeners] == want_l, (names, r.stdout)
    code, doc = status_json(b, "web:1")
    assert [p["name"] for p in doc["programs"]] == ["web"], doc
    assert [(w["slot"], w["pid"]) for w in workers_of(doc, "web")] == [(1, web[1])], doc
    assert [x["name"] for x in doc["listeners"]] == ["v4"], doc

    # -c CONFIG: batond's own file, and one that spells the path with %(here)s
    other = td.file("client.ini", "[baton]\ncontrol = %(here)s/ctl.sock\n")
    for cfg in (b.config, other):
        r = subprocess.run([bin_path("batonctl"), "-c", cfg, "--json", "status", "web"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, (cfg, r.returncode, r.stderr)
        assert {w["slot"]: w["pid"] for w in workers_of(json.loads(r.stdout), "web")} == web, r.stdout

    # pid: batond's own, or the workers'
    r = ctl(b, "pid")
    assert r.returncode == 0 and r.stdout == f"{b.proc.pid}\n", (r.returncode, r.stdout, r.stderr)
    r = ctl(b, "pid", "web")
    assert r.returncode == 0 and sorted(map(int, r.stdout.split())) == sorted(web.values()), r
    r = ctl(b, "pid", "web:1")
    assert r.returncode == 0 and r.stdout == f"{web[1]}\n", r
    r = ctl(b, "pid", json_out=True)
    assert r.returncode == 0 and json.loads(r.stdout) == {"pid": b.proc.pid}, r
    r = ctl(b, "pid", "all", json_out=True)
    assert r.returncode == 0, r
    got = sorted((d["program"], d["slot"], d["pid"], d["state"]) for d in json.loads(r.stdout))
    want = sorted([("web", s, p, "RUNNING") for s, p in web.items()] + [("echo", 0, echo[0], "RUNNING")])
    assert got == want, (got, want)

    # version, in both formats, agrees with batond -V
    dv = subprocess.run([bin_path("batond"), "-V"], capture_output=True, text=True, timeout=10).stdout.split()[1]
    r = ctl(b, "version")
    assert r.returncode == 0 and re.fullmatch(r"batond (\S+) \(control baton/1, worker protocol (\d+)\)\n",
                                              r.stdout), r
    assert r.stdout.split()[1] == dv, (r.stdout, dv)
    r = ctl(b, "version", json_out=True)
    v = json.loads(r.stdout)
    assert r.returncode == 0 and v["version"] == dv and v["control"] == "baton/1", v
    assert isinstance(v["worker_protocol"], int), v

    # help: every command; help COMMAND: its usage
    r = ctl(b, "help")
    assert r.returncode == 0, r
    for usage in ("status [NAME...]", "start NAME", "stop NAME", "restart NAME", "scale NAME N",
                  "drain NAME", "signal NAME SIG", "pid [NAME]", "metrics", "version", "shutdown",
                  "reexec [--binary PATH]", "help [COMMAND]"):
        assert re.search(r"^  " + re.escape(usage) + " ", r.stdout, re.M), (usage, r.stdout)
    r = ctl(b, "help", "scale")
    assert r.returncode == 0 and r.stdout.splitlines()[0] == "usage: batonctl scale NAME N", r.stdout
    # batond answers help itself too
    lines = raw(b.control, b"baton/1 text help scale\n")
    assert lines[:3] == ["| usage: batonctl scale NAME N", "| add workers or drain the extra ones to reach N",
                         "= 0"], lines
    assert b.stop() == 0


@test
def ctl_metrics_prometheus(td):
    b = Batond(td, web_config(workers=2), wait_ready=2)
    port = b.port("v4")
    n = 25
    for _ in range(n):
        assert http_get(("127.0.0.1", port))[0] == 200
    # the worker acks before it answers, but batond reads the ack on its own time
    wait_until(lambda: metric(metrics(b)[2], "baton_connections_acked_total", program="web") == n,
               10, "acked == %d" % n)
    helps, types, samples = metrics(b)
    assert set(helps) == set(types), (set(helps) ^ set(types))
    for fam, t in types.items():
        names = {fam} if t != "histogram" else {fam + "_bucket", fam + "_sum", fam + "_count"}
        assert any(s[0] in names for s in samples), ("family without samples", fam)
        if t == "counter":
            assert fam.endswith("_total"), ("counter not named *_total", fam)
    assert metric(samples, "baton_listener_connections_accepted_total", listener="v4", program="web") == n
    assert metric(samples, "baton_listener_paused", listener="v4") == 0
    assert metric(samples, "baton_listener_pauses_total", listener="v4") == 0  # credit never ran out
    for name, want in (("accepted", n), ("handed", n), ("acked", n), ("redispatched", 0), ("dropped", 0),
                       ("lost", 0)):
        assert metric(samples, f"baton_connections_{name}_total", program="web") == want, name
    assert metric(samples, "baton_queue_depth", program="web") == 0
    assert metric(samples, "baton_program_generation", program="web") == 1
    for state, want in (("RUNNING", 2), ("STARTING", 0), ("DRAINING", 0), ("STOPPING", 0), ("FATAL", 0),
                        ("STOPPED", 0)):
        assert metric(samples, "baton_workers", program="web", state=state) == want, state
    # the histogram: cumulative buckets in order, +Inf last and equal to _count
    assert types["baton_handoff_latency_seconds"] == "histogram"
    buckets = [(lab["le"], v) for name, lab, v in samples
               if name == "baton_handoff_latency_seconds_bucket" and lab.get("program") == "web"]
    assert len(buckets) >= 2 and buckets[-1][0] == "+Inf", buckets
    les = [float(le) for le, _ in buckets]
    assert les == sorted(les) and len(set(les)) == len(les), les
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), ("buckets not cumulative", buckets)
    count = metric(samples, "baton_handoff_latency_seconds_count", program="web")
    assert counts[-1] == count == n, (buckets, count)
    assert metric(samples, "baton_handoff_latency_seconds_sum", program="web") > 0
    version = json.loads(ctl(b, "version", json_out=True).stdout)["version"]
    assert metric(samples, "baton_build_info", version=version) == 1
    # the control socket's own: the metrics client is the one connected now
    assert metric(samples, "baton_control_clients") == 1
    assert metric(samples, "baton_control_requests_total") >= 2
    assert metric(samples, "baton_control_refused_total", reason="bad_request") == 0
    # more traffic moves the counters by exactly that much
    for _ in range(5):
        assert http_get(("127.0.0.1", port))[0] == 200
    wait_until(lambda: metric(metrics(b)[2], "baton_connections_acked_total", program="web") == n + 5, 10)
    samples = metrics(b)[2]
    assert metric(samples, "baton_listener_connections_accepted_total", listener="v4", program="web") == n + 5
    assert metric(samples, "baton_handoff_latency_seconds_count", program="web") == n + 5
    assert b.stop() == 0


# ---------------------------------------------------------------- operations

@test
def ctl_stop_is_graceful_streams_progress_then_start(td):
    b = Batond(td, web_config(workers=2, program_extra="drain_timeout = 20s"), wait_ready=2)
    port = b.port("v4")
    slots = {slot: pid for pid, slot in b.ready_pids("web").items()}
    # a kept-alive connection pins one worker while it drains
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, _ = read_response(conn)
    assert status == 200
    holder = int(headers["x-baton-pid"])
    hslot = {p: s for s, p in slots.items()}[holder]
    oslot = 1 - hslot

    p = subprocess.Popen([bin_path("batonctl"), "-s", b.control, "stop", "web"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        err = LineReader(p.stderr)
        lines = err.until(r"^web:%d stopped$" % oslot, 15)
        # progress arrives while the operation runs, before the answer
        assert "web:0 draining" in lines and "web:1 draining" in lines, lines
        assert lines.index("web:%d draining" % oslot) < len(lines) - 1, lines
        assert p.poll() is None, "stop answered while a worker still holds a connection"
        assert not pid_alive(slots[oslot]) and pid_alive(holder)
        # the draining worker still serves its client, then closes it
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = read_response(conn)
        assert status == 200 and headers.get("connection", "").lower() == "close", headers
        assert conn.recv(1) == b""
        out, rest = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        conn.close()
    assert p.returncode == 0, (p.returncode, rest)
    assert out == b"stopped\n", out
    tail = (err.buf + rest).decode().splitlines()
    assert tail == ["web:%d stopped" % hslot], tail
    # stop waited until the workers exited
    assert not pid_alive(holder) and not pid_alive(slots[oslot])

    r = ctl(b, "status")
    assert r.returncode == 3 and "not every worker is RUNNING" in r.stderr, (r.returncode, r.stderr)
    workers, _ = parse_status_text(r.stdout)
    assert [(w["slot"], w["state"], w["pid"]) for w in workers] == [(0, "STOPPED", None), (1, "STOPPED", None)], \
        r.stdout
    code, doc = status_json(b)
    assert code == 3 and [(w["state"], w["pid"]) for w in workers_of(doc, "web")] == [("STOPPED", None)] * 2, doc
    r = ctl(b, "pid", "web")
    assert r.returncode == 1 and "no worker process" in r.stderr, (r.returncode, r.stderr)
    # stopping what is stopped is done at once
    r = ctl(b, "stop", "web")
    assert r.returncode == 0 and r.stdout == "stopped\n", (r.returncode, r.stdout, r.stderr)

    r = ctl(b, "start", "web")
    assert r.returncode == 0 and r.stdout == "all started\n", (r.returncode, r.stdout, r.stderr)
    for slot in (0, 1):
        assert "web:%d starting" % slot in r.stderr.splitlines(), r.stderr
        assert re.search(r"^web:%d running pid \d+$" % slot, r.stderr, re.M), r.stderr
    new = running_pids(b)
    assert sorted(new) == [0, 1] and not set(new.values()) & set(slots.values()), (new, slots)
    status, headers, _ = http_get(("127.0.0.1", port))
    assert status == 200 and int(headers["x-baton-pid"]) in new.values()
    assert ctl(b, "status").returncode == 0
    assert b.stop() == 0


@test
def ctl_restart_is_rolling_under_load(td):
    # a new worker takes a moment to be ready: the overlap is visible
    b = Batond(td, web_config(workers=2, command="@BIN@/baton-http --ready-delay 300"), wait_ready=2)
    port = b.port("v4")
    old = running_pids(b)
    assert sorted(old) == [0, 1], old
    samples, stop = [], threading.Event()

    def sample():  # every status seen during the restart, bounded
        deadline = time.monotonic() + 30
        while not stop.is_set() and len(samples) < 2000 and time.monotonic() < deadline:
            code, doc = raw_json(b.control, "status web")
            samples.append([(w["slot"], w["state"], w["pid"]) for w in workers_of(doc, "web")])
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    load = Load(("127.0.0.1", port), threads=4, max_requests=20000, max_seconds=25)
    try:
        wait_until(lambda: load.ok >= 50, 10, "load running")
        sampler.start()
        wait_until(lambda: len(samples) >= 1, 10, "a status sample")
        r = ctl(b, "restart", "web")
        n_restart = len(samples)
        at = load.ok
        wait_until(lambda: load.ok >= at + 50 and len(samples) > n_restart, 15, "load after restart")
    finally:
        stop.set()
        ok, errors = load.finish()
        sampler.join(30)
    assert r.returncode == 0 and r.stdout == "restarted\n", (r.returncode, r.stdout, r.stderr)
    assert not errors, (len(errors), errors[:5])
    # one slot at a time: each new worker is ready before the old one drains,
    # and the second slot begins only once the first is done
    steps = r.stderr.splitlines()
    new = {}
    want = []
    for slot in (0, 1):
        m = [re.fullmatch(r"web:%d started pid (\d+) to replace pid %d" % (slot, old[slot]), s) for s in steps]
        m = [x for x in m if x]
        assert len(m) == 1, (slot, steps)
        new[slot] = int(m[0][1])
        want += ["web:%d started pid %d to replace pid %d" % (slot, new[slot], old[slot]),
                 "web:%d pid %d ready, draining pid %d" % (slot, new[slot], old[slot])]
    assert steps == want, (steps, want)
    assert running_pids(b) == new, (running_pids(b), new)
    assert not set(new.values()) & set(old.values())
    wait_until(lambda: not any(pid_alive(p) for p in old.values()), 15, "old workers exit")
    # never a slot without a RUNNING worker while it happened
    assert len(samples) > n_restart, len(samples)
    for s in samples:
        for slot in (0, 1):
            assert any(sl == slot and st == "RUNNING" for sl, st, _ in s), ("slot down", slot, s)
    # and the new worker started next to the old one, not after it
    overlap = [s for s in samples if any(st == "STARTING" and pid in new.values() for _, st, pid in s)]
    assert overlap, samples
    assert ok >= 100, ok
    print(f"    {ok} requests, 0 errors, {len(samples)} status samples; {old} -> {new}")
    assert b.stop() == 0


@test
def ctl_scale_up_keeps_pids_and_down_under_load(td):
    b = Batond(td, web_config(workers=2), wait_ready=2)
    port = b.port("v4")
    before = running_pids(b)
    r = ctl(b, "scale", "web", "4")
    assert r.returncode == 0 and r.stdout == "web scaled to 4\n", (r.returncode, r.stdout, r.stderr)
    assert "web: 2 -> 4 workers" in r.stderr.splitlines(), r.stderr
    for slot in (2, 3):
        assert re.search(r"^web:%d running pid \d+$" % slot, r.stderr, re.M), r.stderr
    code, doc = status_json(b)
    ws = workers_of(doc, "web")
    assert code == 0 and doc["programs"][0]["slots"] == 4, doc
    assert [(w["slot"], w["state"]) for w in ws] == [(s, "RUNNING") for s in range(4)], ws
    four = {w["slot"]: w["pid"] for w in ws}
    assert {s: four[s] for s in (0, 1)} == before, (four, before)
    assert len(set(four.values())) == 4, four

    load = Load(("127.0.0.1", port), threads=4, max_requests=20000, max_seconds=25)
    try:
        wait_until(lambda: load.ok >= 100, 10, "load running")
        assert len(load.pids) >= 2, load.pids
        r = ctl(b, "scale", "web", "1")
        at = load.ok
        wait_until(lambda: load.ok >= at + 50, 10, "load after scaling down")
    finally:
        ok, errors = load.finish()
    assert r.returncode == 0 and r.stdout == "web scaled to 1\n", (r.returncode, r.stdout, r.stderr)
    assert not errors, (len(errors), errors[:5])
    for slot in (1, 2, 3):
        assert "web:%d removed" % slot in r.stderr.splitlines(), r.stderr
        assert not pid_alive(four[slot]), (slot, four[slot])  # scale waited for them
    code, doc = status_json(b)
    assert code == 0 and doc["programs"][0]["slots"] == 1, doc
    assert [(w["slot"], w["state"], w["pid"]) for w in workers_of(doc, "web")] == [(0, "RUNNING", before[0])], doc
    workers, _ = parse_status_text(ctl(b, "status").stdout)
    assert [(w["slot"], w["pid"]) for w in workers] == [(0, before[0])], workers
    r = ctl(b, "status", "web:1")
    assert r.returncode == 2 and "no such worker 'web:1'" in r.stderr, (r.returncode, r.stderr)
    status, headers, _ = http_get(("127.0.0.1", port))
    assert status == 200 and int(headers["x-baton-pid"]) == before[0]
    print(f"    {ok} requests, 0 errors")
    assert b.stop() == 0


USR1_WORKER = """
import os, signal, socket, struct, sys
out = sys.argv[1] + "." + os.environ["BATON_WORKER"]
def on_usr1(sig, frame):
    with open(out, "a") as f:
        f.write("USR1 %d\\n" % os.getpid())
signal.signal(signal.SIGUSR1, on_usr1)
s = socket.socket(fileno=3)
s.send(struct.pack("<HHIII", 100, 1, 16, 0, 0))  # READY
while True:
    m = s.recv(4096)
    if not m or struct.unpack_from("<H", m)[0] == 2:  # EOF or DRAIN: nothing open, exit
        break
"""


@test
def ctl_signal_and_drain(td):
    script = td.file("usr1.py", USR1_WORKER)
    out = os.path.join(td.path, "usr1")
    b = Batond(td, web_config(workers=2) + f"""
[program:py]
command = python3 {script} {out}
workers = 2
""", wait_ready=4)
    py = running_pids(b, "py")
    assert sorted(py) == [0, 1], py

    def lines(slot):
        try:
            with open(f"{out}.{slot}") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    r = ctl(b, "signal", "py", "USR1")
    assert r.returncode == 0 and r.stdout == "sent SIGUSR1 to 2 workers\n", (r.returncode, r.stdout, r.stderr)
    for slot in (0, 1):
        assert "py:%d pid %d: SIGUSR1" % (slot, py[slot]) in r.stderr.splitlines(), r.stderr
        wait_until(lambda: lines(slot) == ["USR1 %d" % py[slot]], 10, "py:%d got USR1" % slot)
    r = ctl(b, "signal", "py:1", "10")  # by number: SIGUSR1 on Linux
    assert r.returncode == 0 and r.stdout == "sent SIGUSR1 to 1 worker\n", (r.returncode, r.stdout, r.stderr)
    wait_until(lambda: len(lines(1)) == 2, 10, "py:1 got a second USR1")
    assert running_pids(b, "py") == py  # handled, nobody died

    # SIGKILL one web worker: the slot gets a new one, the other is untouched
    web = running_pids(b)
    r = ctl(b, "signal", "web:0", "KILL")
    assert r.returncode == 0 and r.stdout == "sent SIGKILL to 1 worker\n", (r.returncode, r.stdout, r.stderr)
    wait_until(lambda: not pid_alive(web[0]), 10, "killed worker gone")
    wait_until(lambda: running_pids(b).get(0, web[0]) != web[0], 10, "web:0 restarted")
    after = running_pids(b)
    assert after[1] == web[1] and after[0] != web[0], (web, after)
    assert lines(0) == ["USR1 %d" % py[0]], lines(0)  # py:0 never got the numbered signal

    # drain answers at once; the worker finishes and stays down
    r = ctl(b, "drain", "web:1")
    assert r.returncode == 0 and r.stdout == "draining 1 worker; they stay down until started\n", \
        (r.returncode, r.stdout, r.stderr)
    wait_until(lambda: not pid_alive(after[1]), 10, "drained worker exits")
    code, doc = status_json(b, "web")
    assert code == 3, doc
    assert [(w["slot"], w["state"]) for w in workers_of(doc, "web")] == [(0, "RUNNING"), (1, "STOPPED")], doc
    for _ in range(5):
        status, headers, _ = http_get(("127.0.0.1", b.port("v4")))
        assert status == 200 and int(headers["x-baton-pid"]) == after[0], headers
    r = ctl(b, "signal", "web:1", "HUP")
    assert r.returncode == 1 and "no worker process for web:1" in r.stderr, (r.returncode, r.stderr)
    r = ctl(b, "drain", "py")
    assert r.returncode == 0 and r.stdout.startswith("draining 2 workers"), (r.returncode, r.stdout)
    wait_until(lambda: not any(pid_alive(p) for p in py.values()), 10, "py workers drained")
    r = ctl(b, "start", "all")
    assert r.returncode == 0 and r.stdout == "all started\n", (r.returncode, r.stdout, r.stderr)
    assert ctl(b, "status").returncode == 0
    assert "control: signal web:0 KILL uid=0 workers=1" in b.log(), b.tail()
    assert b.stop() == 0


@test
def ctl_shutdown_ends_batond(td):
    b = Batond(td, web_config(workers=2), wait_ready=2)
    port = b.port("v4")
    workers = set(b.ready_pids("web"))
    # a stop that is still waiting when the shutdown comes is told so
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(conn)[0] == 200
    p = subprocess.Popen([bin_path("batonctl"), "-s", b.control, "stop", "web"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        LineReader(p.stderr).until(r"^web:\d stopped$", 15)
        r = ctl(b, "shutdown")
        assert r.returncode == 0 and r.stdout == "shutting down: draining workers\n", (r.returncode, r.stderr)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 1 and b"batond is shutting down" in err, (p.returncode, err)
    # while it drains: read-only commands answer, the others are refused
    r = ctl(b, "status")
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    r = ctl(b, "scale", "web", "3")
    assert r.returncode == 1 and "shutting down" in r.stderr, (r.returncode, r.stderr)
    conn.close()
    assert b.proc.wait(20) == 0, b.tail()
    assert not os.path.exists(b.control)
    for pid in workers:
        assert not pid_alive(pid), pid
    assert re.search(r"control: shutdown uid=0 pid=\d+", b.log()), b.tail()
    r = ctl(b, "status")
    assert r.returncode == 4 and "cannot reach" in r.stderr, (r.returncode, r.stderr)


# ---------------------------------------------------------------- exit codes

@test
def ctl_exit_codes_usage_not_running_unreachable(td):
    b = Batond(td, web_config(workers=2), wait_ready=2)
    pids = running_pids(b)
    for args, words in ((["bogus"], "unknown command 'bogus'"),
                        (["status", "nope"], "no such program 'nope'"),
                        (["status", "web:9"], "no such worker 'web:9'"),
                        (["status", "web:x"], "bad worker 'web:x'"),
                        (["status", "web", "web:-1"], "bad worker 'web:-1'"),
                        (["start", "nope"], "no such program 'nope'"),
                        (["stop", "web:2"], "no such worker 'web:2'"),
                        (["restart", "nope:0"], "no such program 'nope'"),
                        (["drain", "web:5"], "no such worker"),
                        (["pid", "nope"], "no such program"),
                        (["scale", "web", "x"], "want a number of workers"),
                        (["scale", "web", "-1"], "want a number of workers"),
                        (["scale", "web", "1025"], "want a number of workers"),
                        (["scale", "web:1", "2"], "scale takes a program name"),
                        (["scale", "nope", "2"], "no such program"),
                        (["scale", "web"], "usage: batonctl scale NAME N"),
                        (["stop"], "usage: batonctl stop NAME"),
                        (["stop", "web", "web"], "usage: batonctl stop NAME"),
                        (["signal", "web"], "usage: batonctl signal NAME SIG"),
                        (["signal", "web", "FOO"], "unknown signal 'FOO'"),
                        (["signal", "nope", "HUP"], "no such program"),
                        (["version", "x"], "usage: batonctl version"),
                        (["help", "nope"], "unknown command 'nope'")):
        r = ctl(b, *args)
        assert r.returncode == 2, (args, r.returncode, r.stdout, r.stderr)
        assert words in r.stderr and r.stdout == "", (args, r.stdout, r.stderr)
    for argv, words in ((["-s", b.control, "-c", b.config, "status"], "-s and -c"),
                        (["-s", b.control], "usage:"),
                        (["--bogus", "-s", b.control, "status"], "unknown option"),
                        (["-s", b.control, "--timeout", "soon", "status"], "--timeout"),
                        (["-s"], "needs an argument")):
        r = subprocess.run([bin_path("batonctl"), *argv], capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and words in r.stderr, (argv, r.returncode, r.stderr)
    # none of that touched anything
    assert running_pids(b) == pids

    # 3: status while a worker is not RUNNING; only the listed ones count
    r = ctl(b, "stop", "web:0")
    assert r.returncode == 0 and r.stdout == "stopped\n", (r.returncode, r.stdout, r.stderr)
    assert not pid_alive(pids[0])
    r = ctl(b, "status")
    assert r.returncode == 3 and "not every worker is RUNNING" in r.stderr, (r.returncode, r.stderr)
    workers, _ = parse_status_text(r.stdout)
    assert [(w["slot"], w["state"], w["pid"]) for w in workers] == [(0, "STOPPED", None), (1, "RUNNING", pids[1])], \
        r.stdout
    assert ctl(b, "status", "web:0").returncode == 3
    assert ctl(b, "status", "web:1").returncode == 0
    code, doc = status_json(b)
    assert code == 3 and [(w["slot"], w["state"], w["pid"]) for w in workers_of(doc, "web")] == \
        [(0, "STOPPED", None), (1, "RUNNING", pids[1])], doc
    r = ctl(b, "start", "web:0")
    assert r.returncode == 0 and r.stdout == "started\n", (r.returncode, r.stdout, r.stderr)
    assert ctl(b, "status").returncode == 0

    # 4: nothing to reach
    missing = os.path.join(td.path, "none.sock")
    r = ctl(b, "status", sock=missing)
    assert r.returncode == 4 and "cannot reach batond" in r.stderr, (r.returncode, r.stderr)
    dead = os.path.join(td.path, "dead.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(dead)  # a socket file nobody listens on
    s.close()
    r = ctl(b, "status", sock=dead)
    assert r.returncode == 4 and "cannot reach batond" in r.stderr, (r.returncode, r.stderr)
    r = subprocess.run([bin_path("batonctl"), "-c", td.file("other.ini", f"[baton]\ncontrol = {dead}\n"),
                        "status"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 4 and dead in r.stderr, (r.returncode, r.stderr)
    assert b.stop() == 0


@test
def ctl_failed_operations_exit_1(td):
    flag = os.path.join(td.path, "broken")
    script = td.file("web.sh", f"""#!/bin/sh
[ -e {flag} ] && exec {bin_path('baton-http')} --fail-start
exec {bin_path('baton-http')}
""", 0o755)
    b = Batond(td, web_config(command=script, workers=1) + """
[program:bad]
command = @BIN@/baton-http --fail-start
workers = 1
start_retries = 1
backoff = 50ms
""", wait_ready=1)
    b.wait_log(r"FATAL after 2 failed starts program=bad slot=0", 15)
    r = ctl(b, "status", "bad")
    assert r.returncode == 3, (r.returncode, r.stderr)
    workers, _ = parse_status_text(r.stdout)
    assert [(w["slot"], w["state"], w["pid"]) for w in workers] == [(0, "FATAL", None)], r.stdout
    code, doc = status_json(b, "bad")
    assert [w["state"] for w in workers_of(doc, "bad")] == ["FATAL"], doc

    # start of a program that cannot start: FATAL again, exit 1 with the reason
    r = ctl(b, "start", "bad")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == "", r.stdout
    err = r.stderr.splitlines()
    assert err[0] == "bad:0 starting", err
    assert "bad:0 failed to start (exit=1), retrying" in err, err
    assert err[-1] == "batonctl: bad:0 is FATAL: exit=1", err
    b.wait_log(r"FATAL after 2 failed starts program=bad slot=0", 5, count=2)
    code, doc = status_json(b, "bad")
    assert code == 3 and [w["state"] for w in workers_of(doc, "bad")] == ["FATAL"], doc
    r = ctl(b, "pid", "bad")
    assert r.returncode == 1 and "no worker process for bad" in r.stderr, (r.returncode, r.stderr)

    # restart whose new worker cannot start: the old one keeps serving
    old = running_pids(b)[0]
    with open(flag, "w"):
        pass
    r = ctl(b, "restart", "web")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    m = re.search(r"^batonctl: web:0: new worker pid (\d+) failed \((.*)\); pid %d keeps serving$" % old,
                  r.stderr, re.M)
    assert m, r.stderr
    assert int(m[1]) != old and not pid_alive(int(m[1]))
    assert pid_alive(old)
    code, doc = status_json(b, "web")
    assert code == 0 and [(w["slot"], w["state"], w["pid"]) for w in workers_of(doc, "web")] == \
        [(0, "RUNNING", old)], doc
    for _ in range(5):
        status, headers, _ = http_get(("127.0.0.1", b.port("v4")))
        assert status == 200 and int(headers["x-baton-pid"]) == old, headers
    assert running_pids(b) == {0: old}  # nothing tried again behind our back
    os.unlink(flag)
    r = ctl(b, "restart", "web")
    assert r.returncode == 0 and r.stdout == "restarted\n", (r.returncode, r.stdout, r.stderr)
    assert running_pids(b)[0] != old
    assert b.stop() == 0


def pin_connection(port, pid, tries=100):
    """A kept-alive connection that worker pid answered (it cannot exit
    while it is open)."""
    for _ in range(tries):
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = read_response(c)
        assert status == 200
        if int(headers["x-baton-pid"]) == pid:
            return c
        c.close()
    raise AssertionError(f"no connection landed on pid {pid} in {tries} tries")


def answer_of(p, timeout, what, seen=()):
    """(code, stdout, stderr) of a running batonctl; fails if it never
    answers.  seen: stderr lines already read."""
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError(f"{what}: batonctl never got an answer (waited {timeout} s after the pool "
                             f"settled); its progress: {[*seen, *err.decode().splitlines()]}") from None
    return p.returncode, out.decode(), err.decode()


@test
def ctl_restart_when_old_worker_dies_meanwhile(td):
    """restart, the new worker fails to start, and the old one was killed
    meanwhile: the slot must not be left without a worker."""
    flag, release = os.path.join(td.path, "broken"), os.path.join(td.path, "release")
    waiting = os.path.join(td.path, "waiting")
    script = td.file("web.sh", f"""#!/bin/sh
if [ -e {flag} ]; then
    touch {waiting}
    i=0
    while [ ! -e {release} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done
    exit 1
fi
exec {bin_path('baton-http')}
""", 0o755)
    b = Batond(td, web_config(command=script, workers=1, program_extra="ready_timeout = 30s"), wait_ready=1)
    old = running_pids(b)[0]
    with open(flag, "w"):
        pass
    p = subprocess.Popen([bin_path("batonctl"), "-s", b.control, "restart", "web"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines = LineReader(p.stderr).until(r"^web:0 started pid \d+ to replace pid %d$" % old, 10)
        new = int(lines[-1].split()[3])
        os.kill(old, signal.SIGKILL)  # a worker of ours: the old one crashes
        b.wait_log(r"worker exited program=web slot=0 pid=%d " % old, 10)
        wait_until(lambda: os.path.exists(waiting), 10, "the new worker to take the broken path")
        os.unlink(flag)
        with open(release, "w"):
            pass  # now the new one fails to start
        code, out, err = answer_of(p, 20, "restart web")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert code == 1, (code, out, err)
    assert "web:0: new worker pid %d failed" % new in err, err
    problems = []
    if "pid %d keeps serving" % old in err:
        problems.append(f"the answer says the killed pid {old} keeps serving: {err.strip()!r}")
    # the slot has lost both workers: it must be started again, as after any crash
    try:
        wait_until(lambda: 0 in running_pids(b), 10, "web:0 RUNNING again")
    except AssertionError as e:
        r = ctl(b, "status")
        problems.append(f"{e}; status exit {r.returncode}: {r.stdout.splitlines()[0]!r}")
    # and no slot is ever shown RUNNING without a process
    for w in workers_of(status_json(b)[1], "web"):
        if w["state"] == "RUNNING" and w["pid"] is None:
            problems.append(f"status shows a RUNNING slot with no pid: {w}")
    assert not problems, problems
    status, headers, _ = http_get(("127.0.0.1", b.port("v4")))
    assert status == 200 and int(headers["x-baton-pid"]) not in (old, new)
    assert ctl(b, "status").returncode == 0
    assert b.stop() == 0


@test
def ctl_stop_undone_by_start_still_answers(td):
    """stop web:0 waits for a draining worker; start web:0 from another client
    starts the slot again: the stop must still get an answer (it failed)."""
    b = Batond(td, web_config(workers=2, program_extra="drain_timeout = 30s"), wait_ready=2)
    port = b.port("v4")
    pids = running_pids(b)
    conn = pin_connection(port, pids[0])
    p = subprocess.Popen([bin_path("batonctl"), "-s", b.control, "stop", "web:0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        seen = LineReader(p.stderr).until(r"^web:0 draining$", 10)
        r = ctl(b, "start", "web:0")
        assert r.returncode == 0 and r.stdout == "started\n", (r.returncode, r.stdout, r.stderr)
        conn.close()
        wait_until(lambda: not pid_alive(pids[0]), 10, "the drained worker exits")
        code, out, err = answer_of(p, 10, "stop web:0 after start web:0", seen)
    finally:
        conn.close()
        if p.poll() is None:
            p.kill()
            p.wait()
    assert code == 1 and "web:0" in err, (code, out, err)
    assert 0 in running_pids(b)
    assert b.stop() == 0


@test
def ctl_scale_down_undone_by_scale_up_still_answers(td):
    """scale web 1 waits for web:1's draining worker; scale web 2 from another
    client keeps the slot: the first scale must still get an answer."""
    b = Batond(td, web_config(workers=2, program_extra="drain_timeout = 30s"), wait_ready=2)
    port = b.port("v4")
    pids = running_pids(b)
    conn = pin_connection(port, pids[1])
    p = subprocess.Popen([bin_path("batonctl"), "-s", b.control, "scale", "web", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        seen = LineReader(p.stderr).until(r"^web: 2 -> 1 workers$", 10)
        r = ctl(b, "scale", "web", "2")
        assert r.returncode == 0 and r.stdout == "web scaled to 2\n", (r.returncode, r.stdout, r.stderr)
        conn.close()
        wait_until(lambda: not pid_alive(pids[1]), 10, "the drained worker exits")
        code, out, err = answer_of(p, 10, "scale web 1 after scale web 2", seen)
    finally:
        conn.close()
        if p.poll() is None:
            p.kill()
            p.wait()
    assert code == 1 and "web" in err, (code, out, err)
    assert sorted(running_pids(b)) == [0, 1]
    assert b.stop() == 0


# ---------------------------------------------------------------- other users

@test
def ctl_other_uid_permissions(td):
    if os.geteuid() != 0:
        skip("needs root to run batonctl as another uid")
    nobody = pwd.getpwnam("nobody").pw_uid
    nogroup = grp.getgrnam("nogroup").gr_gid
    subs = []

    def start(extra):
        sub = TestDir()
        subs.append(sub)
        os.chmod(sub.path, 0o755)  # nobody must reach the socket file
        return Batond(sub, web_config(workers=1).replace("[baton]\n", "[baton]\n" + extra, 1), wait_ready=1)

    try:
        # (a) default mode 0600: the kernel refuses nobody's connect
        b = start("")
        assert os.stat(b.control).st_mode & 0o777 == 0o600
        r = ctl(b, "status", prefix=AS_NOBODY)
        assert r.returncode == 4 and "permission denied" in r.stderr, (r.returncode, r.stderr)
        assert ctl(b, "status").returncode == 0  # root may
        assert b.stop() == 0

        # (b) mode 0666: nobody connects, and batond itself refuses it
        b = start("control_mode = 0666\n")
        assert os.stat(b.control).st_mode & 0o777 == 0o666
        pid = b.worker_pids()[0]
        for args in (["status"], ["stop", "web"], ["version"]):
            r = ctl(b, *args, prefix=AS_NOBODY)
            assert r.returncode == 4 and "permission denied" in r.stderr, (args, r.returncode, r.stderr)
            assert r.stdout == "", r.stdout
        m = b.wait_log(r"control: permission denied uid=%d gid=%d pid=\d+" % (nobody, nogroup), 5, 3)
        assert len(m) == 3, m
        assert running_pids(b) == {0: pid} and pid_alive(pid)
        samples = metrics(b)[2]
        assert metric(samples, "baton_control_refused_total", reason="denied") == 3
        assert b.stop() == 0

        # (c) control_group: its members may read, not act
        b = start("control_mode = 0666\ncontrol_group = nogroup\n")
        assert os.stat(b.control).st_gid == nogroup
        pid = b.worker_pids()[0]
        group = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        r = ctl(b, "status", prefix=group)
        assert r.returncode in (0, 3), (r.returncode, r.stderr)
        workers, _ = parse_status_text(r.stdout)
        assert [(w["slot"], w["pid"]) for w in workers] == [(0, pid)], r.stdout
        for args in (["pid"], ["version"], ["metrics"], ["help"]):
            r = ctl(b, *args, prefix=group)
            assert r.returncode == 0, (args, r.returncode, r.stderr)
        for args in (["stop", "web"], ["start", "web"], ["restart", "web"], ["scale", "web", "3"],
                     ["drain", "web"], ["signal", "web", "KILL"], ["shutdown"],
                     ["reexec"], ["reexec", "--binary", "/tmp/evil"]):
            r = ctl(b, *args, prefix=group)
            assert r.returncode == 4 and "permission denied" in r.stderr, (args, r.returncode, r.stderr)
        b.wait_log(r"control: refused 'stop' to read-only client uid=%d" % nobody, 5)
        b.wait_log(r"control: refused 'shutdown' to read-only client uid=%d" % nobody, 5)
        b.wait_log(r"control: refused 'reexec' to read-only client uid=%d" % nobody, 5)
        assert b.proc.poll() is None and pid_alive(pid)
        assert running_pids(b) == {0: pid}
        assert b.stop() == 0
    finally:
        for sub in subs:
            sub.cleanup()


# ---------------------------------------------------------------- hostile clients

KINDS = ("garbage", "oversized", "silent", "half", "close", "version")


@test
def ctl_hostile_clients_flood(td):
    b = Batond(td, web_config(workers=2), wait_ready=2)
    port = b.port("v4")
    fddir = f"/proc/{b.proc.pid}/fd"
    baseline = len(os.listdir(fddir))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    batch = max(8, min(60, (soft - 100) // 4))  # our fds and batond's
    answers = {k: [] for k in KINDS}
    samples = []  # a few silent/half clients left open to see their timeout
    total = 0
    load = Load(("127.0.0.1", port), threads=4, max_requests=200000, max_seconds=40)
    try:
        wait_until(lambda: load.ok >= 50, 10, "load running")
        deadline = time.monotonic() + 20
        while total < 1000:
            assert time.monotonic() < deadline, f"flood too slow: {total} clients"
            socks = []
            for _ in range(min(batch, 1000 - total)):
                kind = KINDS[total % len(KINDS)]
                total += 1
                s = ctl_connect(b.control, timeout=10)
                try:
                    if kind == "garbage":
                        s.sendall(os.urandom(200).replace(b"\n", b"x") + b"\n")
                    elif kind == "oversized":
                        s.sendall(b"A" * 5000)
                    elif kind == "half":
                        s.sendall(b"baton/1 text sta")
                    elif kind == "version":
                        s.sendall(b"baton/2 text status\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # refused (busy) before we wrote: the answer is still there
                if kind == "close":
                    s.close()
                elif kind in ("silent", "half") and len([k for k, _ in samples if k == kind]) < 3:
                    samples.append((kind, s))
                else:
                    socks.append((kind, s))
            for kind, s in socks:
                if kind in ("garbage", "oversized", "version"):
                    answers[kind].append(first_line(s, 10))
            for _, s in socks:
                s.close()
        flood_done = load.ok
        # each sampled idle client is told off after ~5 s, then closed
        for kind, s in samples:
            line = first_line(s, 20)
            assert line == "= 2 no complete request within 5 s", (kind, line)
            assert read_until_eof(s, 10) == b"", kind
            s.close()
        wait_until(lambda: load.ok >= flood_done + 50, 10, "load after the flood")
    finally:
        ok, errors = load.finish()
        for _, s in samples:
            s.close()
    assert not errors, (len(errors), errors[:5])
    assert b.proc.poll() is None, b.tail()
    busy = "= 1 batond is busy: too many control clients, try again"
    want = {"garbage": "= 2 bad request: ", "oversized": "= 2 request longer than 1024 bytes",
            "version": "= 2 bad request: unsupported protocol 'baton/2'"}
    counted = {}
    for kind, prefix in want.items():
        for line in answers[kind]:
            assert line.startswith(prefix) or line == busy, (kind, line)
        counted[kind] = sum(1 for line in answers[kind] if line.startswith(prefix))
        assert counted[kind] >= 1, (kind, answers[kind][:5])

    r = ctl(b, "status")
    assert r.returncode == 0, (r.returncode, r.stderr)
    wait_until(lambda: len(os.listdir(fddir)) == baseline, 15,
               f"batond's fds back to {baseline} (now {len(os.listdir(fddir))})")
    # one at a time, each kind gets its exact answer
    assert raw(b.control, b"\x01\xff garbage\n")[0].startswith("= 2 bad request: byte 0x01 at offset 0"), "garbage"
    assert raw(b.control, b"A" * 5000)[0] == "= 2 request longer than 1024 bytes"
    assert raw(b.control, b"baton/2 text status\n")[0] == \
        "= 2 bad request: unsupported protocol 'baton/2', this batond speaks baton/1"
    assert raw(b.control, b"status\n")[0].startswith("= 2 bad request: missing protocol version")
    samples_m = metrics(b)[2]
    assert metric(samples_m, "baton_control_clients") == 1  # no client left behind
    bad = metric(samples_m, "baton_control_refused_total", reason="bad_request")
    assert bad >= sum(counted.values()) + 6 + 4, (bad, counted)
    assert ok >= 100, ok
    print(f"    1000 hostile clients ({counted} answered '= 2', "
          f"busy refusals {metric(samples_m, 'baton_control_refused_total', reason='busy'):.0f}); "
          f"{ok} requests, 0 errors; fds {baseline} -> {len(os.listdir(fddir))}")
    assert b.stop() == 0
