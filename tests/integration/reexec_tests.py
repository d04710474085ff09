"""`batonctl reexec`: batond replaces its own binary under load, keeping its
pid, its workers and every socket; and stays the old batond, unchanged,
whenever anything goes wrong."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

from harness import NOACK_WORKER, Batond, Load, bin_path, http_get, test, wait_until, web_config
from upgrade_tests import EchoClients, ctl, program, status, wrk_available

REEXECS = int(os.environ.get("BATON_TEST_REEXECS", "20"))
NEXT = os.path.join(os.path.dirname(bin_path("batond")), "test", "batond-next")
STATE99 = os.path.join(os.path.dirname(bin_path("batond")), "test", "batond-state99")


def config(td):
    return f"""
[baton]
log_level = info
http = tcp:127.0.0.1:0
[listener:web]
address = tcp:127.0.0.1:0
program = web
[listener:sock]
address = unix:{td.path}/web.sock
program = web
[listener:echo]
address = tcp:127.0.0.1:0
program = echo
[program:web]
command = @BIN@/baton-http
workers = 2
ready_timeout = 5s
[program:echo]
command = @BIN@/baton-echo
workers = 2
ready_timeout = 5s
"""


def metrics(b):
    code, out, err = ctl(b, "metrics")
    assert code == 0, err
    samples = {}
    for line in out.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def worker_pids(b):
    return sorted(w["pid"] for p in status(b)["programs"] for w in p["workers"])


def fds(pid):
    """What batond's fds point at (numbers left out: a failed reexec must
    leave exactly what there was)."""
    d = f"/proc/{pid}/fd"
    out = []
    for n in os.listdir(d):
        try:
            out.append(os.readlink(os.path.join(d, n)))
        except FileNotFoundError:
            pass
    return sorted(out)


class UnixClients:
    """A loop of requests over the Unix socket listener, bounded in time."""

    def __init__(self, path, max_seconds=120):
        self.path, self.ok, self.errors = path, 0, []
        self.stop_flag = threading.Event()
        self.deadline = time.monotonic() + max_seconds
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop_flag.is_set() and time.monotonic() < self.deadline:
            try:
                code = http_get(self.path, family=socket.AF_UNIX, timeout=10)[0]
                if code == 200:
                    self.ok += 1
                else:
                    self.errors.append(f"status {code}")
            except Exception as e:  # every failure is a finding
                self.errors.append(repr(e))

    def finish(self):
        self.stop_flag.set()
        self.thread.join(30)
        return self.ok, self.errors


def wrk(td, port, seconds, close):
    """wrk for at most `seconds`; wrk_result() stops it with SIGINT."""
    args = ["wrk", "-t1", "-c10", f"-d{seconds}s"] + (["-H", "Connection: close"] if close else [])
    return td.spawn(args + [f"http://127.0.0.1:{port}/"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wrk_result(p):
    """Stops wrk with SIGINT (it prints its figures then); it must still
    have been running, or the load did not cover what ran meanwhile."""
    running = p.poll() is None
    if running:
        p.send_signal(signal.SIGINT)
    out = p.communicate(timeout=120)[0]
    assert running, f"wrk ended before the test was done with it: {out}"
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return reqs, errors, int(m.group(1)) if m else 0, out


@test
def reexec_alternating_builds_under_load_lose_nothing(td):
    assert wrk_available(), "wrk is needed (make test installs it)"
    assert os.path.exists(NEXT), f"{NEXT} is built by make test"
    b = Batond(td, config(td), wait_ready=4)
    pid = b.proc.pid
    sock = os.path.join(td.path, "web.sock")
    inode = os.stat(sock).st_ino
    pids = worker_pids(b)
    seconds = 300  # an upper bound: stopped after the last reexec
    w_close, w_keep = wrk(td, b.port("web"), seconds, True), wrk(td, b.port("web"), seconds, False)
    echo = EchoClients(b.port("echo"), 10)
    unix = UnixClients(sock)
    time.sleep(1)
    last = metrics(b)
    versions = []
    for i in range(REEXECS):
        binary, version = (NEXT, "0.1.0+next") if i % 2 == 0 else (bin_path("batond"), "0.1.0")
        code, out, err = ctl(b, "reexec", "--binary", binary)
        assert code == 0, (i, out, err, b.tail())
        assert re.search(r"reexec: batond \S+ -> %s, pid %d, exec window \d+ ms" % (re.escape(version), pid),
                         out), out
        versions.append(version)
        code, out, _ = ctl(b, "version")
        assert code == 0 and f"batond {version} " in out, out
        assert b.proc.poll() is None and ctl(b, "pid")[1].strip() == str(pid)
        assert worker_pids(b) == pids, (i, worker_pids(b), pids)
        assert os.stat(sock).st_ino == inode
        now = metrics(b)
        for k, v in last.items():
            if k.endswith("_total") and k in now:
                assert now[k] >= v, (i, k, v, now[k])
        last = now
        time.sleep(0.2)
    results = [wrk_result(w_close), wrk_result(w_keep)]
    rounds, echo_errors = echo.finish()
    unix_ok, unix_errors = unix.finish()
    for reqs, errors, non2xx, out in results:
        assert errors == 0 and non2xx == 0 and reqs > 0, out
    assert not echo_errors and rounds > 0, echo_errors[:5]
    assert not unix_errors and unix_ok > 0, unix_errors[:5]
    time.sleep(0.3)
    m = metrics(b)
    for prog in ("web", "echo"):
        acc = m[f'baton_connections_accepted_total{{program="{prog}"}}']
        acked = m[f'baton_connections_acked_total{{program="{prog}"}}']
        dropped = m[f'baton_connections_dropped_total{{program="{prog}"}}']
        assert dropped == 0 and acc == acked, (prog, acc, acked, dropped)
    assert len(re.findall(r"reexec: done ", b.log())) == REEXECS
    # Under load each new image logs its first accept, with the gap since
    # the old image's last one (the exec window as clients see it).
    gaps = [float(g) for g in re.findall(r"reexec: first accept by the new image listener=\S+ "
                                         r"accept_gap_ms=([\d.]+)", b.log())]
    assert len(gaps) == REEXECS and all(g > 0 for g in gaps), gaps
    print(f"    {REEXECS} reexecs between two builds: wrk {results[0][0]} new-connection + "
          f"{results[1][0]} keep-alive requests, {unix_ok} unix requests, {rounds} echo rounds, 0 errors; "
          f"accept gap median {sorted(gaps)[len(gaps) // 2]:.1f} ms, max {max(gaps):.1f} ms")
    assert b.stop() == 0


def refused(td, b, args, want, want_code=1):
    """A reexec that must fail, leaving batond exactly as it was."""
    pid, pids, before = b.proc.pid, worker_pids(b), fds(b.proc.pid)
    code, out, err = ctl(b, "reexec", *args)
    assert code == want_code and re.search(want, err), (code, out, err, b.tail())
    assert b.proc.poll() is None and ctl(b, "pid")[1].strip() == str(pid)
    assert worker_pids(b) == pids
    wait_until(lambda: fds(pid) == before, 5, "batond's fds as before")
    assert http_get(("127.0.0.1", b.port("v4")))[0] == 200
    return err


@test
def reexec_refuses_a_bad_binary_and_changes_nothing(td):
    # No load here: connections in flight would come and go in the fd list.
    b = Batond(td, web_config(), wait_ready=2)
    # A FIFO nobody writes to: opening it must not block batond (it did,
    # for good: any client of the control socket could stall it).
    fifo = os.path.join(td.path, "fifo")
    os.mkfifo(fifo, 0o755)
    refused(td, b, ["--binary", fifo], r"fifo: not a regular file")
    refused(td, b, ["--binary", "/dev/null"], r"not a regular file")
    refused(td, b, ["--binary", os.path.join(td.path, "missing")], r"missing: No such file")
    refused(td, b, ["--binary", "relative/batond"], r"absolute path", 2)
    plain = os.path.join(td.path, "batond-plain")
    shutil.copy(bin_path("batond"), plain)
    os.chmod(plain, 0o644)
    refused(td, b, ["--binary", plain], r"not executable")
    os.chmod(plain, 0o775)
    refused(td, b, ["--binary", plain], r"writable by group or others")
    junk = td.file("junk", "this is not a program\n" * 10, 0o755)
    refused(td, b, ["--binary", junk], r"failed its check.*(Exec format error|exit=127)")
    refused(td, b, ["--binary", "/bin/false"], r"failed its check of the state \(exit=1\)")
    refused(td, b, ["--binary", STATE99],
            r"state version 1: this batond reads version 99 only")
    assert b.stop() == 0


@test
def reexec_refuses_a_check_that_crashes_or_hangs(td):
    """The new binary's check of the state runs as a child while batond
    serves: one killed by a signal is refused with the signal named, one
    that never finishes is killed after 10 s and refused; nothing changes."""
    b = Batond(td, web_config(), wait_ready=2)

    def program(name, body):
        src = td.file(name + ".c", "#include <signal.h>\n#include <unistd.h>\n"
                      "int main(void) { %s return 0; }\n" % body)
        out = os.path.join(td.path, name)
        subprocess.run(["cc", "-o", out, src], check=True)
        os.chmod(out, 0o755)
        return out
    refused(td, b, ["--binary", program("crashes", "raise(SIGSEGV);")],
            r"failed its check of the state \(signal=Segmentation fault\)")
    hang = program("hangs", "for (;;) pause();")
    err = refused(td, b, ["--binary", hang], r"did not finish checking the state within 10 s")
    assert "batond 0.1.0 serves on" in err, err

    def hung_children():
        found = []
        for d in os.listdir("/proc"):
            try:
                with open(f"/proc/{d}/stat") as f:
                    st = f.read()
            except OSError:
                continue
            rest = st[st.rindex(")") + 2:].split()
            if int(rest[1]) == b.proc.pid and os.path.basename(os.readlink(f"/proc/{d}/exe")) == "hangs":
                found.append(int(d))
        return found
    wait_until(lambda: not hung_children(), 5, "the hung check killed and reaped")
    # A script cannot be executed from an open fd: refused before it runs.
    script = td.file("script", "#!/bin/sh\nexec %s \"$@\"\n" % bin_path("batond"), 0o755)
    refused(td, b, ["--binary", script], r"a script, not a batond binary")
    assert b.stop() == 0


@test
def reexec_new_image_crashing_while_restoring_rolls_back(td):
    """A test-only switch makes the new image abort() while restoring: the
    crash handler executes the old binary again with the same state."""
    os.environ["BATON_TEST_RESTORE_ABORT"] = "1"
    try:
        b = Batond(td, web_config(), wait_ready=2)
    finally:
        del os.environ["BATON_TEST_RESTORE_ABORT"]
    # fds counted with no client in flight: under load batond briefly
    # holds each accepted connection until its worker acknowledges it.
    pid, pids, nfds = b.proc.pid, worker_pids(b), len(fds(b.proc.pid))
    load = Load(("127.0.0.1", b.port("v4")), threads=2, max_requests=10**6, max_seconds=120)
    code, out, err = ctl(b, "reexec", "--binary", NEXT)
    assert code == 1 and "crashed while restoring" in err and "batond 0.1.0 serves on" in err, (out, err)
    assert ctl(b, "version")[1].startswith("batond 0.1.0 "), "the old build serves"
    assert b.proc.poll() is None and ctl(b, "pid")[1].strip() == str(pid)
    assert worker_pids(b) == pids
    ok, errors = load.finish()
    assert not errors and ok > 0, errors[:5]
    # The rolled-back image has its own libevent signal pipe (a new pipe
    # inode), so the count is compared, not the inodes.
    wait_until(lambda: len(fds(pid)) == nfds, 5, "batond's fd count as before (%d)" % nfds)
    assert b.stop() == 0


@test
def reexec_one_at_a_time_and_never_during_an_upgrade(td):
    os.environ["BATON_TEST_CHECK_DELAY_MS"] = "1500"
    try:
        b = Batond(td, web_config(program_extra="ready_timeout = 10s"), wait_ready=2)
    finally:
        del os.environ["BATON_TEST_CHECK_DELAY_MS"]
    first = subprocess.Popen([bin_path("batonctl"), "-s", b.control, "reexec"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    b.wait_log(r"reexec: checking binary=", 10)
    code, out, err = ctl(b, "reexec")
    assert code == 1 and "busy: reexec" in err, (code, err)
    code, out, err = ctl(b, "upgrade", "web")
    assert code == 1 and "busy: reexec" in err, (code, err)
    out, err = first.communicate(timeout=30)
    assert first.returncode == 0 and "exec window" in out, (out, err)
    # Now the other way round: an upgrade in progress refuses a reexec.
    script = td.file("slow.sh", f"#!/bin/sh\nexec {bin_path('baton-http')} --ready-delay 3000\n", 0o755)
    with open(b.config) as f:
        text = f.read()
    with open(b.config, "w") as f:
        f.write(text.replace(f"command = {bin_path('baton-http')}", f"command = {script}"))
    up = subprocess.Popen([bin_path("batonctl"), "-s", b.control, "reload"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    b.wait_log(r"upgrade started program=web", 10)
    code, out, err = ctl(b, "reexec")
    assert code == 1 and re.search(r"busy: (upgrade|reload)", err), (code, err)
    up.communicate(timeout=60)
    assert up.returncode == 0
    assert b.stop() == 0


@test
def reexec_worker_dying_in_the_exec_window_is_reaped_and_restarted(td):
    os.environ["BATON_TEST_RESTORE_DELAY_MS"] = "800"
    try:
        b = Batond(td, web_config(), wait_ready=2)
    finally:
        del os.environ["BATON_TEST_RESTORE_DELAY_MS"]
    victim = worker_pids(b)[0]
    rx = subprocess.Popen([bin_path("batonctl"), "-s", b.control, "reexec", "--binary", NEXT],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    b.wait_log(r"reexec: executing binary=", 10)
    time.sleep(0.2)  # the new image sleeps in its restore: kill a worker now
    os.kill(victim, 9)
    out, err = rx.communicate(timeout=30)
    assert rx.returncode == 0 and "-> 0.1.0+next" in out, (out, err, b.tail())
    b.wait_log(r"worker exited program=web slot=\d+ pid=%d" % victim, 10)
    wait_until(lambda: len(status(b)["programs"][0]["workers"]) == 2 and
               all(w["state"] == "RUNNING" for w in status(b)["programs"][0]["workers"]),
               10, "the slot restarted")
    assert victim not in worker_pids(b)
    assert http_get(("127.0.0.1", b.port("v4")))[0] == 200
    assert b.stop() == 0


@test
def reexec_tells_systemd_reloading_then_ready_and_keeps_the_watchdog(td):
    from systemd_tests import NotifySocket, with_env
    ns = NotifySocket(os.path.join(td.path, "notify.sock"))
    try:
        b = with_env({"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "300000"},
                     lambda: Batond(td, web_config(), wait_ready=2))
        ns.wait("READY")
        before = len(ns.states())
        code, out, err = ctl(b, "reexec", "--binary", NEXT)
        assert code == 0, (out, err)
        wait_until(lambda: any("READY" in s for s in ns.states()[before:]), 10, "READY=1 again")
        after = ns.states()[before:]
        keys = [k for s in after for k in s if k in ("RELOADING", "READY")]
        assert keys[:2] == ["RELOADING", "READY"], after
        assert "MONOTONIC_USEC" in next(s for s in after if "RELOADING" in s), after
        dogs = ns.count("WATCHDOG=1")
        wait_until(lambda: ns.count("WATCHDOG=1") >= dogs + 2, 5, "the watchdog after the exec")
        assert b.stop() == 0
    finally:
        ns.close()


def fnv(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def state(body, version=1, checksum=None, length=None):
    body = body.encode() if isinstance(body, str) else body
    n = len(body) if length is None else length
    s = fnv(body) if checksum is None else checksum
    return f"baton-state {version} {n} {s:016x}\n".encode() + body


MINIMAL = """+batond
version 0.1.0
+baton
cfg.control /run/x.sock
+log
path 
fd -1
level info
+engine
next_id 1
+control
fd 5
path /run/x.sock
dev 1
ino 1
mode 384
+reexec
old_version 0.1.0
binary /usr/sbin/batond
commit_us 1
old_exe -1
"""


LISTENER = """+listener
name web
cfg.address tcp:127.0.0.1:0
cfg.program web
fd 7
bound 127.0.0.1:1
"""


def check_state(td, data, name="state"):
    path = td.file(name, "")
    with open(path, "wb") as f:
        f.write(data)
    with open(path, "rb") as f:
        r = subprocess.run([bin_path("batond"), "--check-state", str(f.fileno())],
                           pass_fds=[f.fileno()], stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=10)
    return r.returncode, r.stdout + r.stderr


@test
def check_state_and_restore_state_flags_refuse_hostile_input(td):
    """The flags the new image is started with: a bad fd, a file that is
    no state, a state this build cannot take, and one it can."""
    r = subprocess.run([bin_path("batond"), "--check-state", "x"], capture_output=True, text=True)
    assert r.returncode == 2 and "wants an fd number" in r.stderr, r
    r = subprocess.run([bin_path("batond"), "--check-state", "9"], capture_output=True, text=True)
    assert r.returncode == 1 and "state fd 9: Bad file descriptor" in r.stderr, r
    ok = state(MINIMAL)
    assert check_state(td, ok) == (0, "state ok: version 1, 6 records\n")
    listener = MINIMAL + LISTENER + "base_uid 1000\nbase_gid 1000\ntcp_base.nodelay 0\n"
    assert check_state(td, state(listener)) == (0, "state ok: version 1, 7 records\n")
    # an optional record this build does not know is skipped; a required one fails
    assert check_state(td, state(MINIMAL + "?future\nx 1\n"))[0] == 0
    for data, want in (
            (b"", "not a baton state"),
            (b"GIF89a" + b"\0" * 64, "not a baton state"),
            (state(MINIMAL, version=2), "state version 2: this batond reads version 1 only"),
            (state(MINIMAL, checksum=1), "state checksum mismatch"),
            (state(MINIMAL, length=5), "truncated or padded"),
            (state(MINIMAL + "+future\nx 1\n"), "state record 'future' is required"),
            (state(MINIMAL.replace("+engine\nnext_id 1\n", "")), "0 'engine' records, want 1"),
            (state(MINIMAL + "+program\nname web\ncfg.workers many\n"), "cfg.workers: 'many' is not a whole number"),
            (state(MINIMAL + "+program\nname web\ncfg.command a%00b\n"), "NUL byte"),
            (state(MINIMAL + "x%zz 1\n"), "bad field"),
            (state(MINIMAL + "bad %zz\n"), "bad value of bad"),
            (state("name before\n" + MINIMAL), "a field before any record"),
            # what the new image restores is read here too, not only at restore
            (state(MINIMAL + LISTENER + "base_uid -2\n"), "listener: base_uid: bad value '-2'"),
            (state(MINIMAL + LISTENER + "base_gid 4294967295\n"), "listener: base_gid: bad value"),
            (state(MINIMAL + LISTENER.replace("fd 7", "fd x")), "listener: fd: bad value 'x'"),
            (state(MINIMAL.replace("version 0.1.0\n", "version 0.1.0\nsched_base 4294967296\n", 1)),
             "batond: bad sched_base 4294967296"),
            (state(MINIMAL.replace("level info", "level loud")), "log: bad level 'loud'"),
            (state(MINIMAL.replace("mode 384\n", "mode 384\nbase_gid -5\n")),
             "control: base_gid: bad value '-5'"),
            (state(MINIMAL.replace("mode 384\n", "mode 99999\n")), "control: bad mode 99999"),
            (state(MINIMAL.replace("mode 384\n", "mode 384\nrefused_log.lines -1\n")),
             "control: refused_log.lines: bad value '-1'"),
            (state(MINIMAL.replace("fd 5\n", "fd -3\n")), "control: fd: bad value '-3'")):
        code, out = check_state(td, data)
        assert code == 1 and want in out, (data[:80], code, out)
    # --restore-state with no state: a clear error, nothing started
    path = td.file("junk", "junk\n")
    with open(path, "rb") as f:
        r = subprocess.run([bin_path("batond"), "-c", "/nonexistent", "--restore-state",
                            str(f.fileno())], pass_fds=[f.fileno()], capture_output=True,
                           text=True, timeout=10)
    assert r.returncode == 1 and "reexec: cannot restore the state: not a baton state" in r.stderr, r
    r = subprocess.run([bin_path("batond"), "--restore-state", "-1"], capture_output=True, text=True)
    assert r.returncode == 2 and "wants an fd number" in r.stderr, r


def echo_once(s, data=b"ping"):
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = s.recv(len(data) - len(got))
        assert chunk, "closed"
        got += chunk
    return got


@test
def reexec_keeps_queued_connections_and_draining_workers(td):
    """What is in flight crosses too: clients waiting while no worker has
    credit (batond stops accepting; the kernel's backlog holds them) are
    served after the exec, and a worker draining after an upgrade keeps its
    connections across two more."""
    b = Batond(td, """
[baton]
log_level = info
[listener:echo]
address = tcp:127.0.0.1:0
program = echo
[program:echo]
command = @BIN@/baton-echo
workers = 1
capacity = 2
ready_timeout = 5s
drain_timeout = 600s
queue_timeout = 60s
""", wait_ready=1)
    port = b.port("echo")
    held = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(2)]
    for s in held:
        assert echo_once(s) == b"ping"
    queued = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(2)]
    for s in queued:
        s.sendall(b"queued")
    time.sleep(0.3)
    st = status(b)
    assert program(st, "echo")["workers"][0]["conns"] == 2
    assert next(l for l in st["listeners"] if l["name"] == "echo")["paused"], st
    pauses = metrics(b)['baton_listener_pauses_total{listener="echo"}']
    assert pauses >= 1
    code, out, err = ctl(b, "reexec", "--binary", NEXT)
    assert code == 0, (out, err, b.tail())
    assert metrics(b)['baton_listener_pauses_total{listener="echo"}'] >= pauses  # no reset
    # the old worker drains (it keeps the two held connections); the new
    # one takes the queue
    old = worker_pids(b)
    code, out, err = ctl(b, "upgrade", "echo")
    assert code == 0, (out, err)
    for s in queued:
        assert s.recv(6) == b"queued"
    st = program(status(b), "echo")
    draining = [w for w in st["workers"] if w["state"] == "DRAINING"]
    assert [w["pid"] for w in draining] == old and draining[0]["conns"] == 2, st
    code, out, err = ctl(b, "reexec")
    assert code == 0, (out, err, b.tail())
    st = program(status(b), "echo")
    assert [w["pid"] for w in st["workers"] if w["state"] == "DRAINING"] == old, st
    for s in held:
        assert echo_once(s, b"still here") == b"still here"
        s.close()
    b.wait_log(r"worker exited program=echo slot=0 pid=%d" % old[0], 20)
    for s in queued:
        s.close()
    m = metrics(b)
    assert m['baton_connections_dropped_total{program="echo"}'] == 0
    assert m['baton_connections_accepted_total{program="echo"}'] == 4
    assert b.stop() == 0


@test
def reexec_keeps_slot_states_backoff_and_stopped(td):
    """A slot restarting with backoff goes on counting its failures in the
    new image (and ends FATAL as it would have); a slot stopped by the
    operator stays stopped; the generation and the config in force cross,
    not an edited config file."""
    b = Batond(td, web_config(workers=2) + """
[program:bad]
command = /bin/false
workers = 1
backoff = 300ms
backoff_max = 300ms
start_retries = 6
""", wait_ready=2)
    assert ctl(b, "upgrade", "web")[0] == 0
    assert ctl(b, "stop", "web:1")[0] == 0
    b.wait_log(r"worker failed to start, retrying program=bad slot=0 failures=2", 10)
    with open(b.config) as f:
        text = f.read()
    with open(b.config, "w") as f:
        f.write(text.replace("workers = 2", "workers = 4"))  # not applied by a reexec
    code, out, err = ctl(b, "reexec", "--binary", NEXT)
    assert code == 0, (out, err)
    st = status(b)
    web = program(st, "web")
    assert web["generation"] == 2 and web["slots"] == 2, web
    assert [w["state"] for w in web["workers"]] == ["RUNNING", "STOPPED"], web
    code, out, _ = ctl(b, "status", "web:1")
    assert "STOPPED" in out, out
    b.wait_log(r"slot FATAL|FATAL", 15)
    code, out, _ = ctl(b, "status", "bad")
    assert "FATAL" in out, out
    fails = [int(n) for n in re.findall(r"retrying program=bad slot=0 failures=(\d+)", b.log())]
    assert fails == list(range(1, len(fails) + 1)) and fails[-1] == 6, fails
    assert b.stop() == 0


@test
def reexec_carries_unacknowledged_connections_and_their_deadline(td):
    """Connections handed to a worker that never acknowledges them cross
    the exec as batond's (it keeps their fds): the ACK deadline armed by
    the old image fires in the new one, the worker is failed, and the
    other worker serves every one of those clients."""
    script = td.file("noack.py", NOACK_WORKER)
    wrapper = td.file("worker.sh", "#!/bin/sh\n"
                      f'[ "$BATON_WORKER" = 0 ] && exec python3 {script}\n'
                      f"exec {bin_path('baton-http')}\n", mode=0o755)
    b = Batond(td, web_config(command=wrapper, workers=2,
                              program_extra="ack_timeout = 3s\nheartbeat_timeout = 30s\n"
                                            "capacity = 4\nstart_window = 0"), wait_ready=2)
    load = Load(("127.0.0.1", b.port("v4")), threads=6, max_requests=12, max_seconds=60)
    prog = 'program="web"'
    wait_until(lambda: metrics(b)[f"baton_connections_acked_total{{{prog}}}"] <
               metrics(b)[f"baton_connections_handed_total{{{prog}}}"], 10,
               "connections handed and not acknowledged")
    code, out, err = ctl(b, "reexec", "--binary", NEXT)
    assert code == 0, (out, err, b.tail())
    wait_until(lambda: load.ok + len(load.errors) >= 12, 60, "12 requests answered")
    ok, errors = load.finish()
    assert not errors and ok == 12, (ok, errors[:5])
    log = b.log()
    after = log[log.index("reexec: done"):]
    assert re.search(r'worker failed, killing it program=web slot=0 pid=\d+ reason="no ACK within '
                     r'ack_timeout \(3000 ms\)', after), b.tail()
    m = metrics(b)
    assert m[f"baton_connections_redispatched_total{{{prog}}}"] >= 1, m
    assert m[f"baton_connections_dropped_total{{{prog}}}"] == 0, m
    assert b.stop() == 0


@test
def reexec_keeps_every_setting_in_force(td):
    """Every kind of key crosses as it was: after a reexec, a reload of the
    unchanged file finds nothing to change, and the log file, an output
    file and the TCP options on accepted sockets are still what they were."""
    b = Batond(td, f"""
[baton]
log_level = debug
log_file = {td.path}/batond.file.log
http = tcp:127.0.0.1:0
control_mode = 0660
control_group = nogroup
batch_scheduling = no
[listener:v4]
address = tcp:127.0.0.1:0
program = web
backlog = 77
tcp_keepalive = yes
tcp_keepidle = 45s
tcp_user_timeout = 20s
tcp_defer_accept = 5s
[listener:local]
address = unix:{td.path}/w.sock
program = web
mode = 0640
owner = nobody:nogroup
[program:web]
command = @BIN@/baton-http --body "hello, reexec"
workers = 2
environment = A=1,B="x,y",C=%(here)s
umask = 0027
ready_timeout = 4s
drain_timeout = 7s
stop_signal = INT
restart = on-failure
backoff = 250ms
capacity = 99
stdout = {td.path}/web.out
upgrade_batch = 2
ack_timeout = 8s
""", expect_fail=True)  # its log goes to log_file: waited for below
    wait_until(lambda: os.path.exists(f"{td.path}/batond.file.log") and
               len(re.findall("worker ready", open(f"{td.path}/batond.file.log").read())) >= 2,
               10, "2 workers ready")
    code, out, err = ctl(b, "reload", "--dry-run")
    assert code == 0 and "0 changes" in out, (out, err)
    code, out, err = ctl(b, "reexec", "--binary", NEXT)
    assert code == 0, (out, err)
    code, out, err = ctl(b, "reload", "--dry-run")
    assert code == 0 and "nothing to change" in out and "0 changes" in out, (out, err)
    code, out, err = ctl(b, "reload")
    assert code == 0, (out, err)
    with open(f"{td.path}/batond.file.log") as f:
        log = f.read()
    assert "reexec: done old_version=0.1.0 version=0.1.0+next" in log
    port = int(re.search(r"listening listener=v4 address=\S+ bound=127\.0\.0\.1:(\d+)", log).group(1))
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"hello, reexec" in s.recv(4096)
    s.close()
    st = os.stat(f"{td.path}/w.sock")
    assert oct(st.st_mode & 0o777) == "0o640", oct(st.st_mode)
    pids = [w["pid"] for w in program(status(b), "web")["workers"]]
    for pid in pids:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
        assert b"B=x,y" in env and f"C={td.path}".encode() in env, env
    assert b.stop() == 0
