"""batonctl top, and the Grafana dashboard in etc/grafana/baton.json.

Tests named top_* run batonctl top with its output captured (one frame, or
-n N), against a real batond or a scripted stand-in that answers exactly
what a test needs (latency buckets, an upgrade half done, a refresh that
fails); the terminal ones run it in a private tmux server (tmux -S, killed
by its socket).  grafana_dashboard_* checks the dashboard against the
metrics a running batond really exports.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

from harness import (skip, Batond, Load, ROOT, bin_path, http_get, test,  # noqa: F401
                     wait_until, web_config)


def top(sock, *args, timeout=30):
    return subprocess.run([bin_path("batonctl"), "-s", sock, "top", *args], capture_output=True,
                          text=True, timeout=timeout)


def frames(out):
    """The frames of batonctl top's text output (each starts with its header)."""
    return [f for f in re.split(r"\n(?=batonctl top: )", out) if f.strip()]


WORKER_ROW = re.compile(r"^  (\S+):(\d+) +(\d+|-) (\S+) +(\d+|-) +(\d+) +(\S+) +(\S+)$")


def workers_in(frame):
    """{(program, slot, pid): (state, gen, conns, handed/s)} of a frame."""
    rows = {}
    for line in frame.splitlines():
        m = WORKER_ROW.match(line)
        if m:
            rows[(m[1], int(m[2]), m[3])] = (m[4], m[5], int(m[6]), m[7])
    return rows


# ---------------------------------------------------------------- a stand-in for batond

class FakeBatond:
    """Answers baton/1 requests on a Unix socket: answer(command, n) gives
    the response bytes for the n-th status request's round (status and the
    metrics after it share n), or None to close without answering."""

    def __init__(self, path, answer):
        self.answer = answer
        self.rounds = 0
        self.requests = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        deadline = time.monotonic() + 60
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            with c:
                c.settimeout(5)
                data = b""
                while b"\n" not in data:
                    chunk = c.recv(1024)
                    if not chunk:
                        break
                    data += chunk
                words = data.decode().split()
                self.requests.append(words)
                if len(words) < 3:
                    continue
                if words[2] == "status":
                    self.rounds += 1
                reply = self.answer(words[2], self.rounds)
                if reply is not None:
                    c.sendall(reply)

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def lines(kind, text):
    return "".join(f"{kind} {ln}\n" for ln in text.splitlines()).encode()


def status_doc(handed):
    """web mid-upgrade from generation 2 to 3: slots 0 and 1 have a ready
    worker of 3 (slot 0's old one still draining), 2 and 3 are on 2, slot 4
    has no process (so status says 3)."""
    def w(slot, pid, state, gen):
        return {"slot": slot, "pid": pid, "state": state, "generation": gen, "conns": 2,
                "handed": handed.get(pid, 0), "uptime_s": 3725, "capacity": 64}
    workers = [w(0, 201, "RUNNING", 3), w(0, 101, "DRAINING", 2), w(1, 202, "RUNNING", 3),
               w(2, 103, "RUNNING", 2), w(3, 104, "STARTING", 3), w(3, 105, "RUNNING", 2),
               {"slot": 4, "pid": None, "state": "BACKOFF", "generation": None, "conns": 0,
                "handed": 0, "uptime_s": None, "last_exit": "exit=1 \"quoted\" \u00e9"}]
    return {"programs": [{"name": "web", "generation": 2, "slots": 5, "queued": 7, "accepted": 1000,
                          "acked": 990, "dropped": 4, "restarts": 1, "workers": workers}],
            "listeners": [{"name": "v4", "address": "tcp:127.0.0.1:0", "bound": "127.0.0.1:8080",
                           "program": "web", "accepted": 1000, "paused": True}]}


BOUNDS = ["0.0001", "0.00025", "0.0005", "0.001", "+Inf"]


def metrics_text(cum):
    out = ["# HELP baton_build_info batond version.", "# TYPE baton_build_info gauge",
           'baton_build_info{version="0.1.0"} 1',
           "# HELP baton_handoff_latency_seconds From accept to the worker's acknowledgement.",
           "# TYPE baton_handoff_latency_seconds histogram"]
    out += [f'baton_handoff_latency_seconds_bucket{{program="web",le="{le}"}} {n}'
            for le, n in zip(BOUNDS, cum)]
    out += [f'baton_handoff_latency_seconds_bucket{{program="webx",le="{le}"}} 999' for le in BOUNDS]
    out += ['baton_handoff_latency_seconds_sum{program="web"} 0.01',
            f'baton_handoff_latency_seconds_count{{program="web"}} {cum[-1]}']
    return "\n".join(out) + "\n"


@test
def top_reads_status_and_metrics_quantiles_upgrade_and_failures(td):
    """Against a stand-in with known answers: upgrade progress from the
    workers' generations, p50/p99 interpolated within the buckets of two
    scrapes' difference ("-" when nothing was handed over), rates "-" until
    there is a scrape before, and a failed refresh shown, then recovered."""
    # cumulative bucket counts per round: 2-1 = (0, 10, 20, 20, 20) -> p50 250us,
    # p99 0.00025 + 0.00025 * 9.8 / 10 = 495us; 3-2 = nothing; round 4 is not
    # answered; 5-3 = 10 in +Inf only -> the highest finite bound, 1ms
    cums = {1: (0, 5, 5, 5, 5), 2: (0, 15, 25, 25, 25), 3: (0, 15, 25, 25, 25), 5: (0, 15, 25, 25, 35)}
    handed = {1: {201: 10, 202: 10, 103: 10}, 2: {201: 30, 202: 10, 103: 10}}

    def answer(cmd, n):
        if n == 4:
            return None  # closes without a word
        if cmd == "status":
            return lines("|", json.dumps(status_doc(handed.get(n, handed[2])), indent=1)) + \
                b"= 3 not every worker is RUNNING\n"
        if cmd == "metrics":
            return lines("|", metrics_text(cums[n])) + b"= 0\n"
        return b"= 2 unknown command\n"

    sock = os.path.join(td.path, "fake.sock")
    fake = FakeBatond(sock, answer)
    try:
        r = top(sock, "-n", "5", "-i", "200ms")
    finally:
        fake.close()
    assert r.returncode == 0 and r.stderr == "", (r.returncode, r.stderr)
    assert [w[:3] for w in fake.requests] == [["baton/1", "json", "status"], ["baton/1", "text", "metrics"]] * 3 + \
        [["baton/1", "json", "status"]] + [["baton/1", "json", "status"], ["baton/1", "text", "metrics"]], \
        fake.requests
    fs = frames(r.stdout)
    assert len(fs) == 5, r.stdout
    for f in fs:
        assert f.startswith(f"batonctl top: batond at {sock}, ") and "every 0.2s\n" in f, f
        assert "q quits" not in f, f  # no keys without a terminal
        assert "web: upgrading 2/5 on generation 3\n" in f, f
        assert re.search(r"^web: generation 2, 5 slots, 4 running, queued 7, accepted/s \S+, dropped 4, "
                         r"handoff p50 \S+ p99 \S+$", f, re.M), f
        assert re.search(r"^  v4 +127\.0\.0\.1:8080 +web +\S+ yes$", f, re.M), f
        rows = workers_in(f)
        assert set(rows) == {("web", 0, "201"), ("web", 0, "101"), ("web", 1, "202"), ("web", 2, "103"),
                             ("web", 3, "104"), ("web", 3, "105"), ("web", 4, "-")}, f
        assert rows[("web", 0, "101")][:3] == ("DRAINING", "2", 2), f
        assert rows[("web", 4, "-")] == ("BACKOFF", "-", 0, "-"), f
        assert "  web:0                 201 RUNNING      3       2" in f and " 1:02:05\n" in f, f

    def latency(f):
        return re.search(r"handoff p50 (\S+) p99 (\S+)$", f, re.M).groups()

    def handed_s(f, pid):
        return workers_in(f)[next(k for k in workers_in(f) if k[2] == pid)][3]

    assert latency(fs[0]) == ("-", "-") and handed_s(fs[0], "201") == "-", fs[0]
    assert "accepted/s -," in fs[0] and "!!" not in fs[0], fs[0]
    assert latency(fs[1]) == ("250us", "495us"), fs[1]
    assert handed_s(fs[1], "201") not in ("-", "0") and handed_s(fs[1], "202") == "0", fs[1]
    assert "accepted/s 0," in fs[1], fs[1]
    assert latency(fs[2]) == ("-", "-"), fs[2]
    # round 4 failed: said so, the data of round 3 kept; round 5 recovered
    assert "!! batond closed the connection before answering; trying again" in fs[3], fs[3]
    assert latency(fs[3]) == ("-", "-") and set(workers_in(fs[3])) == set(workers_in(fs[2])), fs[3]
    assert "!!" not in fs[4] and latency(fs[4]) == ("1.00ms", "1.00ms"), fs[4]


@test
def top_not_a_terminal_prints_one_frame(td):
    """stdout not a terminal: one frame with the program, every worker's
    pid, state and generation, and the listener; exit 0.  Then -n with a
    load running: rates and latency; then bad arguments and no batond."""
    b = Batond(td, web_config(workers=2), wait_ready=2)
    port = b.port("v4")
    pids = b.ready_pids("web")
    r = top(b.control)
    assert r.returncode == 0 and r.stderr == "", (r.returncode, r.stderr)
    fs = frames(r.stdout)
    assert len(fs) == 1, r.stdout
    assert re.search(r"^web: generation 1, 2 slots, 2 running, queued 0, accepted/s -, dropped 0, "
                     r"handoff p50 - p99 -$", fs[0], re.M), fs[0]
    rows = workers_in(fs[0])
    assert {(k[1], int(k[2])): v[:2] for k, v in rows.items()} == \
        {(slot, pid): ("RUNNING", "1") for pid, slot in pids.items()}, fs[0]
    assert re.search(r"^  v4 +127\.0\.0\.1:%d +web +- no$" % port, fs[0], re.M), fs[0]
    print(f"    one frame:\n{fs[0]}")

    # NAME limits it as for status; unknown NAME: exit 2 as status would
    r = top(b.control, "web:1")
    assert r.returncode == 0 and len(workers_in(r.stdout)) == 1, r.stdout
    r = top(b.control, "nope")
    assert r.returncode == 2 and "no such program 'nope'" in r.stderr and r.stdout == "", r

    load = Load(("127.0.0.1", port), threads=2, max_seconds=20)
    try:
        wait_until(lambda: load.ok > 20, 10, "load running")
        r = top(b.control, "-n", "2", "--interval", "1")
    finally:
        ok, errors = load.finish()
    assert r.returncode == 0 and not errors, (r.returncode, r.stderr, errors[:3])
    fs = frames(r.stdout)
    assert len(fs) == 2, r.stdout
    m = re.search(r"accepted/s (\S+), dropped 0, handoff p50 (\S+) p99 (\S+)$", fs[1], re.M)
    assert m and float(m[1]) > 0 and m[2] != "-" and m[3] != "-", fs[1]
    assert all(v[3] != "-" for v in workers_in(fs[1]).values()), fs[1]
    assert sum(float(v[3]) for v in workers_in(fs[1]).values()) > 0, fs[1]

    for args, code, words in ((["-n", "0"], 2, "-n wants a number of frames"),
                              (["-n", "x"], 2, "-n wants a number of frames"),
                              (["-i", "50ms"], 2, "-i wants 100ms to 1h"),
                              (["-i"], 2, "needs an argument"),
                              (["--bogus"], 2, "unknown option --bogus"),
                              (["-x"], 2, "unknown option -x")):
        r = top(b.control, *args)
        assert r.returncode == code and words in r.stderr and r.stdout == "", (args, r)
    r = subprocess.run([bin_path("batonctl"), "-s", b.control, "--json", "top"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "not JSON" in r.stderr, r
    r = subprocess.run([bin_path("batonctl"), "help", "top"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "--iterations" in r.stdout and "--interval" in r.stdout, r
    r = top(os.path.join(td.path, "none.sock"))
    assert r.returncode == 4 and "cannot reach batond" in r.stderr and r.stdout == "", r


@test
def top_keeps_trying_when_batond_goes_away(td):
    """batond killed while top runs: the next frames say it cannot be
    reached, with the last data below, and top still exits 0 at -n."""
    b = Batond(td, web_config(workers=1), wait_ready=1)
    # unbuffered: readline() must not read ahead of what communicate() gets
    p = subprocess.Popen([bin_path("batonctl"), "-s", b.control, "top", "-n", "3", "-i", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    try:
        first = p.stdout.readline().decode()
        assert first.startswith("batonctl top: "), first
        b.proc.kill()
        b.proc.wait()
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0 and err == b"", (p.returncode, err)
    fs = frames(first + out.decode())
    assert len(fs) == 3, out
    for f in fs[1:]:
        assert f"!! cannot reach batond at {b.control}: Connection refused (is it running?)" in f, f
        assert workers_in(f) == workers_in(fs[0]), f


# ---------------------------------------------------------------- in a terminal

class Tmux:
    """A private tmux server (its own socket in the test dir), one pane
    running sh with a known prompt; kill() stops only that server."""

    def __init__(self, td, width=120, height=30):
        if not shutil.which("tmux"):
            skip("tmux is not installed (apt-get install tmux)")
        self.sock = os.path.join(td.path, "tmux.sock")
        self.run("-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height),
                 "env -i PATH=/usr/bin:/bin HOME=/ TERM=xterm PS1='PROMPT$ ' sh")
        wait_until(lambda: "PROMPT$" in self.screen(), 10, "the shell's prompt")

    def run(self, *args):
        r = subprocess.run(["tmux", "-S", self.sock, *args], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, (args, r.stderr)
        return r.stdout

    def keys(self, *keys):
        self.run("send-keys", "-t", "t", *keys)

    def screen(self):
        return self.run("capture-pane", "-p", "-t", "t")

    def flags(self):
        """(alternate screen on, cursor shown) as the terminal has them."""
        a, c = self.run("display", "-p", "-t", "t", "#{alternate_on} #{cursor_flag}").split()
        return a == "1", c == "1"

    def stty(self):
        """The pane's terminal modes, read from outside."""
        tty = self.run("display", "-p", "-t", "t", "#{pane_tty}").strip()
        r = subprocess.run(["stty", "-a", "-F", tty], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        return set(r.stdout.replace(";", " ").split())

    def kill(self):
        subprocess.run(["tmux", "-S", self.sock, "kill-server"], capture_output=True, timeout=10)


def start_top(t, b, pidfile, *args):
    """batonctl top in the pane, its pid written first; waits for a frame."""
    t.keys(f"clear; sh -c 'echo $$ > {pidfile}; exec {bin_path('batonctl')} -s {b.control} top "
           + " ".join(args) + "'", "Enter")
    wait_until(lambda: t.screen().startswith("batonctl top: ") and "  WORKER" in t.screen() and
               t.flags()[0], 10, "top's first frame")
    with open(pidfile) as f:
        return int(f.read())


def assert_restored(t, pid, rc):
    """top has exited with rc and the terminal is as the shell left it."""
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 10, "top to exit")
    t.keys("echo rc=$?", "Enter")
    wait_until(lambda: f"rc={rc}" in t.screen(), 10, f"rc={rc} at the prompt: {t.screen()}")
    assert "PROMPT$" in t.screen(), t.screen()
    assert t.flags() == (False, True), t.flags()  # main screen, cursor shown
    modes = t.stty()
    assert {"icanon", "echo"} <= modes and not {"-icanon", "-echo"} & modes, modes


@test
def top_in_a_terminal_updates_and_q_restores(td):
    """In a terminal: frames redraw in place in the alternate screen with
    the cursor hidden and the terminal in cbreak mode; handed/s goes above
    0 while a load runs; q quits, and the shell gets its terminal back."""
    b = Batond(td, web_config(workers=2), wait_ready=2)
    t = Tmux(td)
    load = None
    try:
        pid = start_top(t, b, os.path.join(td.path, "top.pid"))
        assert t.flags() == (True, False), t.flags()
        modes = t.stty()
        assert {"-icanon", "-echo"} <= modes, modes
        first = t.screen()
        assert first.startswith(f"batonctl top: batond at {b.control}, ") and "q quits" in first, first
        assert sum(1 for ln in first.splitlines() if ln.startswith("batonctl top:")) == 1, first

        load = Load(("127.0.0.1", b.port("v4")), threads=2, max_seconds=30)

        def busy():
            rows = workers_in(t.screen())
            return len(rows) == 2 and all(v[3] != "-" for v in rows.values()) and \
                sum(float(v[3]) for v in rows.values()) > 0
        wait_until(busy, 15, "handed/s above 0")
        screen = t.screen()
        print("    a frame in tmux, under load:\n" + "\n".join(
            "    | " + ln for ln in screen.rstrip("\n").splitlines()))
        assert re.search(r"accepted/s [1-9]", screen) and "handoff p50 -" not in screen, screen
        assert screen.startswith("batonctl top: "), screen  # redrawn in place, never scrolled
        ok, errors = load.finish()
        load = None
        assert not errors, errors[:3]

        t.keys("x")  # another key does nothing
        time.sleep(0.3)
        assert os.path.exists(f"/proc/{pid}") and t.flags()[0]
        t.keys("q")
        assert_restored(t, pid, 0)
    finally:
        if load:
            load.finish()
        t.kill()


@test
def top_in_a_terminal_fits_its_width(td):
    """A narrow window: every line cut to its width, none wrapped; a short
    one: the last row says there is more."""
    b = Batond(td, web_config(workers=4), wait_ready=4)
    t = Tmux(td, width=40, height=8)
    try:
        pid = start_top(t, b, os.path.join(td.path, "top.pid"))
        rows = t.screen().split("\n")[:8]
        want = f"batonctl top: batond at {b.control}"[:40]
        assert rows[0] == want, rows
        assert rows[2].startswith("web: generation 1, 4 slots,") and len(rows[2]) == 40, rows
        assert rows[3].startswith("  WORKER") and rows[4].startswith("  web:0 "), rows
        assert rows[7].startswith("... ") and all(len(r) <= 40 for r in rows), rows
        t.keys("q")
        assert_restored(t, pid, 0)
    finally:
        t.kill()


@test
def top_in_a_terminal_sigint_sigterm_restore(td):
    """^C (SIGINT from the terminal) and SIGTERM end top as signals do, and
    the terminal is given back either way."""
    b = Batond(td, web_config(workers=1), wait_ready=1)
    t = Tmux(td)
    try:
        for how, rc in (("C-c", 130), (signal.SIGTERM, 143)):
            pid = start_top(t, b, os.path.join(td.path, f"top-{rc}.pid"))
            assert t.flags() == (True, False) and "-icanon" in t.stty()
            if how == "C-c":
                t.keys("C-c")
            else:
                os.kill(pid, how)
            assert_restored(t, pid, rc)
    finally:
        t.kill()


# ---------------------------------------------------------------- the Grafana dashboard

METRIC_RX = re.compile(r"\bbaton_[a-z0-9_]+\b")
SELECTOR_RX = re.compile(r"\b(baton_[a-z0-9_]+)\{([^}]*)\}")
BY_RX = re.compile(r"\bby \(([^)]*)\)")


def panels_of(dash):
    for p in dash["panels"]:
        yield p
        yield from p.get("panels", [])  # a collapsed row's


@test
def grafana_dashboard_uses_only_real_metrics(td):
    """etc/grafana/baton.json is a valid dashboard (schemaVersion, the
    DS_PROMETHEUS input, the program variable); every panel has a title
    and the Prometheus datasource; every metric any query names is in
    `batonctl metrics` of a running batond, with the labels the query
    selects or groups by."""
    with open(os.path.join(ROOT, "etc", "grafana", "baton.json")) as f:
        dash = json.load(f)
    ds = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    assert 36 <= dash["schemaVersion"] <= 39, dash["schemaVersion"]
    assert dash["title"] and dash["uid"], dash.get("uid")
    assert [i["name"] for i in dash["__inputs"]] == ["DS_PROMETHEUS"], dash["__inputs"]
    assert dash["__inputs"][0]["type"] == "datasource" and dash["__inputs"][0]["pluginId"] == "prometheus"
    var = {v["name"]: v for v in dash["templating"]["list"]}["program"]
    assert var["type"] == "query" and var["datasource"] == ds, var
    assert var["definition"] == "label_values(baton_connections_accepted_total, program)", var
    assert var["query"]["query"] == var["definition"], var

    # a batond that has served something, so every family has samples
    b = Batond(td, web_config(workers=2), wait_ready=2)
    for _ in range(20):
        assert http_get(("127.0.0.1", b.port("v4")))[0] == 200
    r = subprocess.run([bin_path("batonctl"), "-s", b.control, "metrics"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    labels = {}  # metric -> the label names of its samples
    for line in r.stdout.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$", line)
        if m:
            labels.setdefault(m[1], set()).update(re.findall(r'(\w+)="', m[2] or ""))
    exprs = [var["definition"]]
    ids, seen = set(), set()
    for p in panels_of(dash):
        assert p.get("title"), p
        assert p["id"] not in ids and set(p["gridPos"]) >= {"x", "y", "w", "h"}, p
        ids.add(p["id"])
        if p["type"] == "row":
            continue
        assert p.get("datasource") == ds, (p["title"], p.get("datasource"))
        assert p["targets"], p["title"]
        for target in p["targets"]:
            assert target.get("datasource") == ds and target["expr"] and target["refId"], (p["title"], target)
            exprs.append(target["expr"])
    for expr in exprs:
        names = set(METRIC_RX.findall(expr))
        assert names, expr
        for name in names:
            assert name in labels, f"{name} (in {expr}) is not in batonctl metrics"
            seen.add(name)
        for name, sel in SELECTOR_RX.findall(expr):
            for label in re.findall(r"(\w+)\s*=~?", sel):
                assert label in labels[name], f"{name} has no label {label} (in {expr})"
        for group in BY_RX.findall(expr):
            for label in (x.strip() for x in group.split(",")):
                assert all(label in labels[n] for n in names), f"by ({label}) in {expr}"
    # what the dashboard is for: one of each
    for name in ("baton_connections_accepted_total", "baton_connections_acked_total",
                 "baton_connections_redispatched_total", "baton_connections_dropped_total",
                 "baton_connections_lost_total", "baton_queue_depth", "baton_workers",
                 "baton_handoff_latency_seconds_bucket", "baton_upgrades_total", "baton_control_clients"):
        assert name in seen, f"no panel shows {name}"
    for q in ("0.5", "0.99"):
        assert any(f"histogram_quantile({q}, sum by (le, program) "
                   f"(rate(baton_handoff_latency_seconds_bucket" in e for e in exprs), q
    print(f"    {len(ids)} panels, {len(exprs)} queries, {len(seen)} metrics, all exported")
