"""batond under systemd and in containers: the notify protocol, checked on a real AF_UNIX
datagram socket set as NOTIFY_SOCKET, in order across start, reload,
a worker crash and stop; the unit file; orphans reaped as a subreaper."""
import os
import shutil
import re
import signal
import socket
import subprocess
import threading
import time

from harness import skip, Batond, Load, bin_path, http_get, test, wait_until, web_config


class NotifySocket:
    """What systemd would receive: each datagram, in order."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.msgs = []
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop_flag.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            with self.lock:
                self.msgs.append((time.monotonic(), data.decode()))

    def states(self):
        """Messages other than WATCHDOG=1, as {key: value} dicts."""
        with self.lock:
            msgs = [m for _, m in self.msgs if m != "WATCHDOG=1"]
        return [dict(line.split("=", 1) for line in m.split("\n")) for m in msgs]

    def count(self, text):
        with self.lock:
            return sum(m == text for _, m in self.msgs)

    def wait(self, key, n=1, timeout=10):
        wait_until(lambda: sum(key in s for s in self.states()) >= n, timeout,
                   f"{n} x {key} on NOTIFY_SOCKET (got {self.states()})")

    def close(self):
        self.stop_flag.set()
        self.thread.join(5)
        self.sock.close()


def with_env(env, fn):
    """Run fn with extra environment variables (batond inherits them)."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return fn()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@test
def sd_notify_ready_reload_status_watchdog_stopping(td):
    ns = NotifySocket(os.path.join(td.path, "notify.sock"))
    try:
        b = with_env({"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "300000"},
                     lambda: Batond(td, web_config(workers=2, program_extra="ready_timeout = 5s")))
        ns.wait("READY")
        # STATUS lines while starting, then READY once both workers are ready
        states = ns.states()
        k = next(k for k, s in enumerate(states) if "READY" in s)
        assert all(list(s) == ["STATUS"] for s in states[:k]), states
        assert states[k] == {"READY": "1", "STATUS": "web 2/2 running"}, states
        assert len(b.wait_log(r"worker ready program=web", 1, 2)) == 2
        # the workers do not inherit the notify socket or the watchdog
        for pid in b.ready_pids("web"):
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
            assert b"NOTIFY_SOCKET" not in env and b"WATCHDOG_" not in env, env
        # WATCHDOG=1 keeps coming (every WATCHDOG_USEC/2)
        wait_until(lambda: ns.count("WATCHDOG=1") >= 4, 10, "4 x WATCHDOG=1")

        # a reload: RELOADING=1 with the monotonic clock, then READY=1 with the new counts
        with open(b.config) as f:
            cfg = f.read()
        with open(b.config, "w") as f:
            f.write(cfg.replace("workers = 2", "workers = 3"))
        before_us = time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6
        r = subprocess.run([bin_path("batonctl"), "-s", b.control, "reload"],
                           capture_output=True, text=True, timeout=60)
        after_us = time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6
        assert r.returncode == 0, (r.stdout, r.stderr)
        ns.wait("READY", 2)
        states = ns.states()
        i = next(i for i, s in enumerate(states) if "RELOADING" in s)
        assert states[i]["RELOADING"] == "1"
        assert before_us <= int(states[i]["MONOTONIC_USEC"]) <= after_us, (states[i], before_us, after_us)
        j = next(j for j, s in enumerate(states) if j > i and "READY" in s)
        assert states[j]["STATUS"] == "web 3/3 running", states

        # a worker crash shows in STATUS, and so does its replacement
        victim = next(iter(b.ready_pids("web")))
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: any(s.get("STATUS") == "web 2/3 running" for s in ns.states()[j:]), 10,
                   "STATUS with a worker missing")
        wait_until(lambda: ns.states()[-1].get("STATUS") == "web 3/3 running", 10,
                   "STATUS back at full count")
        assert sum("READY" in s for s in ns.states()) == 2  # READY only at start and after reload

        assert b.stop() == 0
        # The datagram was sent before batond exited; the reader thread
        # may take a moment to append it.
        ns.wait("STOPPING", 1, timeout=5)
        last = ns.states()[-1]
        assert last.get("STOPPING") == "1", ns.states()
        print(f"    {len(ns.states())} state messages, {ns.count('WATCHDOG=1')} watchdog pings")
    finally:
        ns.close()


@test
def sd_notify_bad_environment(td):
    ns = NotifySocket(os.path.join(td.path, "notify.sock"))
    try:
        # not for us: WATCHDOG_PID names another process
        b = with_env({"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"},
                     lambda: Batond(td, web_config(workers=1), wait_ready=1))
        ns.wait("READY")
        time.sleep(0.5)
        assert ns.count("WATCHDOG=1") == 0
        assert http_get(("127.0.0.1", b.port("v4")))[0] == 200
        assert b.stop() == 0
    finally:
        ns.close()
    for env, msg in (({"NOTIFY_SOCKET": "relative/notify.sock"}, "got 'relative/notify.sock'"),
                     ({"NOTIFY_SOCKET": "/x" * 100}, "NOTIFY_SOCKET: want an absolute path or @abstract name shorter than 108 bytes"),
                     ({"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "soon"}, "WATCHDOG_USEC: want a positive number, got 'soon'")):
        r = with_env(env, lambda: subprocess.run([bin_path("batond"), "-c", b.config],
                                                 capture_output=True, text=True, timeout=30))
        assert r.returncode == 1 and msg in r.stderr, (env, r.returncode, r.stderr)
    # an abstract socket name (@...) works too
    name = f"baton-test-{os.getpid()}-{time.monotonic_ns()}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    s.settimeout(10)
    try:
        b = with_env({"NOTIFY_SOCKET": "@" + name},
                     lambda: Batond(td, web_config(workers=1), wait_ready=1))
        got = []
        while not got or not got[-1].startswith("READY=1"):
            got.append(s.recv(4096).decode())
        assert got[-1] == "READY=1\nSTATUS=web 1/1 running", got
        assert b.stop() == 0
    finally:
        s.close()


@test
def systemd_unit_file_is_consistent(td):
    """etc/batond.service: Type=notify, a reload that waits for the result,
    and command lines batond and batonctl accept."""
    from harness import ROOT
    with open(os.path.join(ROOT, "etc", "batond.service")) as f:
        unit = f.read()
    keys = dict(re.findall(r"^(\w+)=(.*)$", unit, re.M))
    assert keys["Type"] == "notify" and keys["NotifyAccess"] == "main", keys
    assert keys["KillMode"] == "mixed" and keys["WatchdogSec"], keys
    start, check, reload = keys["ExecStart"].split(), keys["ExecStartPre"].split(), keys["ExecReload"].split()
    assert os.path.basename(start[0]) == "batond" and start[1:3] == ["-c", "/etc/baton/baton.ini"], start
    assert os.path.basename(check[0]) == "batond" and check[1] == "-t", check
    assert os.path.basename(reload[0]) == "batonctl" and reload[-1] == "reload", reload
    # the same flags, on the shipped default config
    cfg = os.path.join(ROOT, "etc", "baton.ini")
    r = subprocess.run([bin_path("batond"), *check[1:-1], cfg], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "ok" in r.stdout, (r.stdout, r.stderr)
    r = subprocess.run([bin_path("batonctl"), *reload[1:-2], cfg, "help", "reload"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "reload" in r.stdout, (r.stdout, r.stderr)


def ppid_of(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^PPid:\s+(\d+)", f.read(), re.M).group(1))


@test
def orphans_come_to_batond_and_are_reaped(td):
    """batond is a child subreaper: a process a worker leaves behind is
    reparented to batond (not init) and reaped when it exits (no zombie)."""
    pidfile = os.path.join(td.path, "orphan.pid")
    script = td.file("w.sh", f"""#!/bin/sh
( sleep 1 & echo $! > {pidfile}.tmp; mv {pidfile}.tmp {pidfile} )
exec {bin_path('baton-http')}
""", 0o755)
    b = Batond(td, web_config(command=script, workers=1), wait_ready=1)
    wait_until(lambda: os.path.exists(pidfile), 10, "the orphan's pid file")
    with open(pidfile) as f:
        orphan = int(f.read())
    try:
        assert ppid_of(orphan) == b.proc.pid, (orphan, ppid_of(orphan), b.proc.pid)
        wait_until(lambda: not os.path.exists(f"/proc/{orphan}"), 10, "the orphan reaped, no zombie")
    finally:
        if os.path.exists(f"/proc/{orphan}"):
            os.kill(orphan, signal.SIGKILL)
    assert http_get(("127.0.0.1", b.port("v4")))[0] == 200
    assert b.stop() == 0


@test
def log_file_reopened_on_sigusr1(td):
    """log_file: batond logs to the file; logrotate moves it and sends
    SIGUSR1; new lines go to a new file at the path.  Bad values fail
    clearly, and a reload may not move the log."""
    log = os.path.join(td.path, "logs", "batond.log")
    os.mkdir(os.path.dirname(log))
    cfg = web_config(workers=1).replace("[baton]\n", f"[baton]\nlog_file = {log}\n", 1)
    b = Batond(td, cfg, expect_fail=True)  # its stderr stays empty: wait on the file
    wait_until(lambda: os.path.exists(log) and "worker ready program=web" in open(log).read(), 10,
               "the log file")
    assert http_get(("127.0.0.1", int(re.search(r"bound=127\.0\.0\.1:(\d+)", open(log).read()).group(1))))[0] == 200
    os.rename(log, log + ".1")
    b.signal(signal.SIGUSR1)
    wait_until(lambda: os.path.exists(log), 10, "a new log file after SIGUSR1")
    wait_until(lambda: "SIGUSR1: log file reopened" in open(log).read(), 10, "the reopen line")
    assert "SIGUSR1" not in open(log + ".1").read()
    # a reload may not move the log
    with open(b.config) as f:
        text = f.read()
    with open(b.config, "w") as f:
        f.write(text.replace(log, log + ".other"))
    r = subprocess.run([bin_path("batonctl"), "-s", b.control, "reload"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1 and "moving the log" in r.stdout + r.stderr, (r.stdout, r.stderr)
    assert b.stop() == 0
    assert "stopped" in open(log).read() and b.log() == "", b.log()
    # a log file that cannot be opened: exit 1, the reason on stderr
    bad = cfg.replace(log, os.path.join(td.path, "missing", "batond.log"))
    path = td.file("bad.ini", bad.replace("@BIN@", os.path.dirname(bin_path("x"))))
    r = subprocess.run([bin_path("batond"), "-c", path], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "cannot open log file" in r.stderr and "No such file" in r.stderr, r.stderr


@test
def journal_priority_prefix_under_systemd(td):
    """With stderr being the journal ($JOURNAL_STREAM=dev:ino of stderr)
    each line starts with its syslog priority: <6>info, <4>warn, <3>error."""
    cfg = td.file("j.ini", web_config(workers=1, command="/bin/false").replace(
        "@BIN@", os.path.dirname(bin_path("x"))).replace("[baton]\n", f"[baton]\ncontrol = {td.path}/j.sock\n", 1))
    out = os.path.join(td.path, "journal.txt")
    with open(out, "w") as f:
        st = os.fstat(f.fileno())
        env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        p = subprocess.Popen([bin_path("batond"), "-c", cfg], stdout=f, stderr=f, env=env)
        try:
            wait_until(lambda: "FATAL" in open(out).read(), 20, "the slot to go FATAL")
        finally:
            p.terminate()
            p.wait(20)
    lines = open(out).read().splitlines()
    assert lines and all(re.match(r"<[3467]>(debug|info|warn|error): ", ln) for ln in lines), lines[:5]
    assert any(ln.startswith("<6>info: starting version=") for ln in lines), lines[:3]
    assert any(ln.startswith("<3>error: worker slot is FATAL") for ln in lines), lines
    assert any(ln.startswith("<4>warn: ") for ln in lines), lines


def activated(td, config, socks, names, extra_env=None, pid_ok=True):
    """Start batond the way systemd does for socket activation: the sockets
    as fds 3.., LISTEN_PID (its own pid), LISTEN_FDS, LISTEN_FDNAMES."""
    cfg = td.file("act.ini", config.replace("@BIN@", os.path.dirname(bin_path("x"))).replace(
        "@DIR@", td.path).replace("[baton]\n", f"[baton]\ncontrol = {td.path}/act-ctl.sock\n", 1))
    high = [os.dup(s.fileno()) for s in socks]
    high = [fcntl_dupfd(fd) for fd in high]

    def place():
        for i, fd in enumerate(high):
            os.dup2(fd, 3 + i)  # dup2 clears close-on-exec on the copy
    env = f"LISTEN_PID={'$$' if pid_ok else '1'} LISTEN_FDS={len(socks)}"
    if names is not None:
        env += f" LISTEN_FDNAMES={names}"
    for k, v in (extra_env or {}).items():
        env += f" {k}={v}"
    log = open(os.path.join(td.path, "act.log"), "a")
    p = subprocess.Popen(["sh", "-c", f'{env} exec "$0" -c "$1"', bin_path("batond"), cfg],
                         stdout=log, stderr=log, preexec_fn=place, pass_fds=tuple(range(3, 3 + len(socks))))
    log.close()
    for fd in high:
        os.close(fd)
    return p, os.path.join(td.path, "act.log")


def fcntl_dupfd(fd):
    import fcntl
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 50)
    os.close(fd)
    return new


@test
def socket_activation_adopts_systemd_sockets(td):
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(64)
    port = tcp.getsockname()[1]
    upath = os.path.join(td.path, "act.sock")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(upath)
    unix.listen(64)
    spare = socket.socket()
    spare.bind(("127.0.0.1", 0))
    spare.listen(1)
    config = """
[baton]
[listener:web]
address = systemd
program = web
[listener:local]
address = systemd:local-sock
program = web
[program:web]
command = @BIN@/baton-http
workers = 2
"""
    procs = []
    try:
        p, log = activated(td, config, [tcp, unix, spare], "web:local-sock:spare")
        procs.append(p)
        wait_until(lambda: len(re.findall(r"worker ready", open(log).read())) >= 2, 10, "workers ready")
        text = open(log).read()
        assert "socket activation: inherited fd=3 name=web" in text, text
        assert re.search(rf"listening listener=web address=systemd bound=127\.0\.0\.1:{port} ", text), text
        assert f"listening listener=local address=systemd:local-sock bound=unix:{upath}" in text, text
        assert "no listener uses fd=5 name=spare; closing it" in text, text
        assert http_get(("127.0.0.1", port))[0] == 200
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(upath)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert s.recv(64).startswith(b"HTTP/1.1 200")
        s.close()
        # workers inherit none of it
        pids = [int(x) for x in re.findall(r"worker ready program=web slot=\d+ pid=(\d+)", text)]
        for pid in pids:
            with open(f"/proc/{pid}/environ", "rb") as f:
                assert b"LISTEN_" not in f.read()
            theirs = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
            for sock in (tcp, unix, spare):
                assert f"socket:[{os.fstat(sock.fileno()).st_ino}]" not in theirs, theirs
        # batond stops; the sockets stay with systemd (here: us): a client
        # that connects meanwhile waits in the backlog and is served by the
        # next batond
        p.terminate()
        assert p.wait(20) == 0
        assert os.path.exists(upath)  # not ours to remove
        waiting = socket.create_connection(("127.0.0.1", port), timeout=20)
        waiting.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        p, log = activated(td, config, [tcp, unix], "web:local-sock")
        procs.append(p)
        assert waiting.recv(64).startswith(b"HTTP/1.1 200")
        waiting.close()
        # batond re-executes itself: the adopted sockets cross as they are,
        # and the new image is not told about socket activation again
        r = subprocess.run([bin_path("batonctl"), "-s", f"{td.path}/act-ctl.sock", "reexec"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "exec window" in r.stdout, (r, open(log).read()[-2000:])
        with open(f"/proc/{p.pid}/environ", "rb") as f:
            assert b"LISTEN_" not in f.read()
        assert http_get(("127.0.0.1", port))[0] == 200
        assert http_get(upath, family=socket.AF_UNIX)[0] == 200
        assert p.poll() is None
        p.terminate()
        assert p.wait(20) == 0

        # bad environments and configs: exit 1 and say why
        cases = [
            ([tcp, unix], "web", {}, True, "LISTEN_FDNAMES has fewer names than LISTEN_FDS=2"),
            ([tcp], "web:x", {}, True, "LISTEN_FDNAMES has more names than LISTEN_FDS=1"),
            ([tcp, unix], "web:other", {}, True, "no socket 'local-sock' among the 2 passed by systemd"),
            ([tcp, unix], "web:local-sock", {}, False, "no socket 'web' from systemd: batond was not socket-activated"),
            ([tcp], None, {"LISTEN_FDS": "x"}, True, "LISTEN_FDS: want a number of fds"),
            ([unix, tcp], "web:local-sock", {}, True, None),  # names, not positions, decide
        ]
        for socks, names, env, pid_ok, want in cases:
            open(os.path.join(td.path, "act.log"), "w").close()
            p, log = activated(td, config, socks, names, env, pid_ok)
            procs.append(p)
            if want is None:
                wait_until(lambda: "worker ready" in open(log).read(), 10, "ready")
                assert http_get(("127.0.0.1", port))[0] == 200
                p.terminate()
                assert p.wait(20) == 0
                continue
            assert p.wait(20) == 1, open(log).read()
            assert want in open(log).read(), (want, open(log).read())
        # a listener socket that is not listening
        open(os.path.join(td.path, "act.log"), "w").close()
        idle = socket.socket()
        p, log = activated(td, config.replace("address = systemd:local-sock", "address = tcp:127.0.0.1:0"),
                           [idle], "web")
        procs.append(p)
        assert p.wait(20) == 1 and "systemd socket 'web' (fd 3) is not listening" in open(log).read(), open(log).read()
        idle.close()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for s in (tcp, unix, spare):
            s.close()


@test
def socket_activation_config_errors(td):
    for value, msg in (("systemd:", "want systemd or systemd:NAME"),
                       ("systemd:a:b", "without ':'"),
                       ("systemd:a\tb", "printable ASCII")):
        cfg = td.file("bad.ini", f"[listener:web]\naddress = {value}\nprogram = web\n[program:web]\ncommand = /bin/true\n")
        r = subprocess.run([bin_path("batond"), "-t", "-c", cfg], capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and f"{cfg}:2: address: " in r.stderr and msg in r.stderr, (value, r.stderr)
    cfg = td.file("dup.ini", "[listener:a]\naddress = systemd:s\nprogram = web\n"
                             "[listener:b]\naddress = systemd:s\nprogram = web\n"
                             "[program:web]\ncommand = /bin/true\n")
    r = subprocess.run([bin_path("batond"), "-t", "-c", cfg], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "[listener:b] adopts the same systemd socket 's' as [listener:a]" in r.stderr, r.stderr


@test
def log_level_flag_survives_reload(td):
    """-l LEVEL wins over the file's log_level, also after a reload; without
    -l a reload applies the file's new level."""
    b = Batond(td, web_config(workers=1), args=["-l", "debug"], wait_ready=1)
    b.wait_log(r"debug: heartbeat program=web", 5)
    r = subprocess.run([bin_path("batonctl"), "-s", b.control, "reload", "--dry-run"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "log_level" not in r.stdout, r.stdout
    assert subprocess.run([bin_path("batonctl"), "-s", b.control, "reload"], capture_output=True,
                          timeout=30).returncode == 0
    n = len(re.findall("debug: heartbeat", b.log()))
    b.wait_log(r"debug: heartbeat program=web", 5, n + 2)  # still logging at debug
    assert b.stop() == 0
    # without -l: the file decides, and a reload changes it
    b = Batond(td, web_config(workers=1).replace("log_level = info", "log_level = debug"), wait_ready=1)
    b.wait_log(r"debug: heartbeat program=web", 5)
    with open(b.config) as f:
        text = f.read()
    with open(b.config, "w") as f:
        f.write(text.replace("log_level = debug", "log_level = info"))
    r = subprocess.run([bin_path("batonctl"), "-s", b.control, "reload"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0 and "log_level: debug -> info" in r.stderr + r.stdout, (r.stdout, r.stderr)
    n = len(re.findall("debug: heartbeat", b.log()))
    time.sleep(2.5)
    assert len(re.findall("debug: heartbeat", b.log())) == n
    assert b.stop() == 0


@test
def worker_output_captured_prefixed_and_rate_limited(td):
    """stdout/stderr: lines into batond's log as 'web:0 stderr: ...', into a
    per-program file (reopened on SIGUSR1), or inherited; a worker flooding
    its stderr cannot stall batond: lines over the rate are dropped and
    counted while a load runs with zero errors."""
    out = os.path.join(td.path, "web.out")
    script = td.file("chatty.sh", f"""#!/bin/sh
echo "hello from $BATON_WORKER on stdout"
printf 'bell\\007 and no newline' >&2
if [ "$BATON_WORKER" = 1 ]; then
    (while :; do echo "flood flood flood flood flood flood flood flood"; done) >&2 &
fi
exec {bin_path('baton-http')}
""", 0o755)
    b = Batond(td, web_config(workers=2, command=script,
                              program_extra=f"stdout = {out}\nstderr = log"), wait_ready=2)
    wait_until(lambda: os.path.exists(out) and open(out).read().count("hello from") == 2, 10,
               "stdout lines in the program's file")
    lines = open(out).read().splitlines()
    assert all(re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z web:[01] stdout: hello from [01] on stdout$", ln)
               for ln in lines), lines
    load = Load(("127.0.0.1", b.port("v4")), threads=4, max_requests=200000, max_seconds=30)
    b.wait_log(r"warn: web:1 stderr: \d+ lines dropped \(more than 1000 a second\)", 15, 2)
    r = subprocess.run([bin_path("batonctl"), "-s", b.control, "status"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stdout
    time.sleep(1)
    ok, errors = load.finish()
    assert not errors and ok > 100, (ok, errors[:5])
    assert "info: web:1 stderr: flood flood" in b.log()
    # logrotate: move the file, SIGUSR1, new lines go to a new file
    os.rename(out, out + ".1")
    b.signal(signal.SIGUSR1)
    r = subprocess.run([bin_path("batonctl"), "-s", b.control, "restart", "web:0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    wait_until(lambda: os.path.exists(out) and "hello from 0" in open(out).read(), 10, "a new file")
    assert b.stop() == 0
    # the partial last line and control characters: one clean log line
    assert re.search(r"info: web:0 stderr: bell\? and no newline\n", b.log()), b.tail()
    print(f"    {ok} requests, 0 errors while web:1 flooded its stderr; "
          f"{len(re.findall('lines dropped', b.log()))} drop summaries")


@test
def worker_output_bad_values_and_inherit(td):
    for value, msg in (("syslog", "want log, inherit or an absolute path, got 'syslog'"),
                       ("logs/web.out", "want log, inherit or an absolute path, got 'logs/web.out'")):
        text = web_config(workers=1, program_extra=f"stdout = {value}").replace(
            "@BIN@", os.path.dirname(bin_path("x")))
        line = text.splitlines().index(f"stdout = {value}") + 1
        cfg = td.file("bad.ini", text)
        r = subprocess.run([bin_path("batond"), "-t", "-c", cfg], capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and f"{cfg}:{line}: stdout: {msg}" in r.stderr, r.stderr
    # inherit: the worker writes straight to batond's stderr, unprefixed
    script = td.file("say.sh", f"""#!/bin/sh
echo "raw line from the worker" >&2
exec {bin_path('baton-http')}
""", 0o755)
    b = Batond(td, web_config(workers=1, command=script, program_extra="stderr = inherit"), wait_ready=1)
    b.wait_log(r"(?m)^raw line from the worker$", 10)
    assert "stderr: raw line" not in b.log()
    assert b.stop() == 0


@test
def batond_as_pid1_in_a_pid_namespace(td):
    """As PID 1 (a container without tini): it says so, serves, reaps every
    orphan, and SIGTERM drains and exits 0."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        skip("needs root and unshare(1) for a PID namespace")
    pidfile = os.path.join(td.path, "orphan.pid")
    script = td.file("w.sh", f"""#!/bin/sh
( sleep 0.5 & echo $! > {pidfile}.tmp; mv {pidfile}.tmp {pidfile} )
exec {bin_path('baton-http')}
""", 0o755)
    b = Batond(td, web_config(workers=2, command=script), wrapper=["unshare", "--pid", "--fork", "--kill-child"],
               wait_ready=2)
    # The pids in its log are the namespace's: never kill those from here.
    # Cleanup kills unshare, whose --kill-child ends batond, and with PID 1
    # gone the kernel ends everything else in the namespace.
    b.worker_pids = lambda: []
    assert "running as PID 1: reaping every orphan" in b.log(), b.tail()
    assert http_get(("127.0.0.1", b.port("v4")))[0] == 200
    # batond as seen from here: unshare's child
    inner = int(open(f"/proc/{b.proc.pid}/task/{b.proc.pid}/children").read().split()[0])
    assert re.search(r"^NSpid:\s+%d\s+1$" % inner, open(f"/proc/{inner}/status").read(), re.M)
    wait_until(lambda: os.path.exists(pidfile), 10, "an orphan")
    # its pid file holds the namespace's pid: find the sleeps among batond's descendants
    def zombies():
        out = []
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    st = open(f"/proc/{pid}/status").read()
                except OSError:
                    continue
                if re.search(r"^PPid:\s+%d$" % inner, st, re.M) and re.search(r"^State:\s+Z", st, re.M):
                    out.append(int(pid))
        return out
    time.sleep(1.5)  # the orphans (sleep 0.5) have exited by now
    assert zombies() == [], zombies()
    os.kill(inner, signal.SIGTERM)
    assert b.proc.wait(20) == 0, b.tail()
    assert "stopped" in b.log()
