"""Rolling upgrades and config reload under load: no client may notice."""
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

from harness import skip, Batond, Load, bin_path, http_get, test, wait_until, web_config, wrk_while

UPGRADES = int(os.environ.get("BATON_TEST_UPGRADES", "20"))


def ctl(b, *args, timeout=120):
    r = subprocess.run([bin_path("batonctl"), "-s", b.control, *args], capture_output=True,
                       text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def status(b):
    code, out, err = ctl(b, "--json", "status")
    assert code in (0, 3), (code, err)
    return json.loads(out)


def program(st, name):
    return next(p for p in st["programs"] if p["name"] == name)


class EchoClients:
    """n long-lived echo connections, each checking every echo, until stopped."""

    def __init__(self, port, n=20, max_seconds=300):
        self.errors = []
        self.rounds = 0
        self.stop_flag = threading.Event()
        self.deadline = time.monotonic() + max_seconds
        self.lock = threading.Lock()
        self.socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]
        self.threads = [threading.Thread(target=self.run, args=(s,), daemon=True) for s in self.socks]
        for t in self.threads:
            t.start()

    def run(self, s):
        rnd = random.Random(s.fileno())
        while not self.stop_flag.is_set() and time.monotonic() < self.deadline:
            data = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 512)))
            try:
                s.sendall(data)
                got = b""
                while len(got) < len(data):
                    chunk = s.recv(len(data) - len(got))
                    if not chunk:
                        raise ConnectionError("closed by the server")
                    got += chunk
                if got != data:
                    raise AssertionError("echo mismatch")
                with self.lock:
                    self.rounds += 1
            except Exception as e:  # every failure is a finding
                with self.lock:
                    self.errors.append(repr(e))
                return
            time.sleep(0.02)

    def finish(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(30)
        for s in self.socks:
            s.close()
        return self.rounds, self.errors


def two_programs(web_extra="", echo_extra=""):
    return f"""
[baton]
log_level = info
[listener:web]
address = tcp:127.0.0.1:0
program = web
[listener:echo]
address = tcp:127.0.0.1:0
program = echo
[program:web]
command = @BIN@/baton-http
workers = 2
ready_timeout = 5s
drain_timeout = 60s
{web_extra}
[program:echo]
command = @BIN@/baton-echo
workers = 2
ready_timeout = 5s
drain_timeout = 600s
{echo_extra}
"""


@test
def upgrades_under_load_lose_nothing(td):
    b = Batond(td, two_programs(), wait_ready=4)
    load = Load(("127.0.0.1", b.port("web")), threads=4, max_requests=10**6, max_seconds=240)
    echo = EchoClients(b.port("echo"), 20)
    time.sleep(0.3)
    first_echo = {w["pid"] for w in program(status(b), "echo")["workers"]}
    for i in range(UPGRADES):
        for name in ("web", "echo"):
            code, out, err = ctl(b, "upgrade", name)
            assert code == 0, (i, name, out, err, b.tail())
            assert f"{name} upgraded to generation {i + 2}" in out, out
    time.sleep(0.3)
    st = status(b)  # while the echo connections are still open
    ok, errors = load.finish()
    rounds, echo_errors = echo.finish()
    assert not errors, (len(errors), errors[:5])
    assert not echo_errors, echo_errors[:5]
    assert ok > UPGRADES * 5 and rounds > 20, (ok, rounds)
    assert program(st, "web")["generation"] == UPGRADES + 1
    echo_workers = program(st, "echo")["workers"]
    # The long-lived connections stayed with the first generation, draining.
    draining = [w for w in echo_workers if w["state"] == "DRAINING"]
    assert {w["pid"] for w in draining} <= first_echo and sum(w["conns"] for w in draining) == 20, echo_workers
    assert sum(w["state"] == "RUNNING" and w["generation"] == UPGRADES + 1 for w in echo_workers) == 2
    print(f"    {UPGRADES} upgrades of both programs: {ok} requests, {rounds} echo rounds, 0 errors")
    assert b.stop() == 0


def wrk_available():
    return subprocess.run(["which", "wrk"], capture_output=True).returncode == 0


@test
def upgrades_under_wrk_keepalive_lose_nothing(td):
    assert wrk_available(), "wrk is needed (make test installs it)"
    b = Batond(td, two_programs(), wait_ready=4)
    done = 0

    def upgrade_all():
        nonlocal done
        while done < UPGRADES:
            code, out, err = ctl(b, "upgrade", "web")
            assert code == 0, (out, err)
            done += 1
            time.sleep(0.2)
    # wrk runs until every upgrade is done (300 s is only an upper bound)
    out = wrk_while(td, ["wrk", "-t2", "-c20", "-d300s", f"http://127.0.0.1:{b.port('web')}/"],
                    upgrade_all)
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    assert "Socket errors" not in out, out
    assert "Non-2xx" not in out, out
    assert reqs > 1000 and done >= 5, (reqs, done, out)
    print(f"    wrk keep-alive: {reqs} requests, 0 errors across {done} upgrades")
    assert b.stop() == 0


def ab_available():
    """True when ab (apache2-utils) is on PATH; otherwise the test is
    skipped, saying why (as root make deps-test installs it, so it fails)."""
    if shutil.which("ab"):
        return True
    assert os.geteuid() != 0, "ab is needed (make deps-test installs apache2-utils)"
    skip("ab is not installed (apt-get install apache2-utils)")


def ab_start(port, n, c, keepalive, seconds, timeout=10):
    """ab, c requests at a time, until n are done or `seconds` pass (-n after
    -t, or -t would set n); -r counts receive errors instead of stopping."""
    args = ["ab", "-q", "-r", "-s", str(timeout), "-t", str(seconds), "-n", str(n), "-c", str(c),
            *(["-k"] if keepalive else []), f"http://127.0.0.1:{port}/"]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def ab_result(proc, seconds):
    """What ab counted: complete, failed, non2xx and keepalive requests (-1
    when it printed no count), its exit code and output."""
    out, _ = proc.communicate(timeout=seconds + 60)

    def count(label, missing):
        m = re.search(r"^%s:\s+(\d+)" % label, out, re.M)
        return int(m.group(1)) if m else missing
    # ab prints "Non-2xx responses" only when there are some, "Keep-Alive
    # requests" only with -k.
    r = {"complete": count("Complete requests", -1), "failed": count("Failed requests", -1),
         "non2xx": count("Non-2xx responses", 0), "keepalive": count("Keep-Alive requests", 0),
         "code": proc.returncode, "out": out}
    assert r["code"] == 0, out
    return r


def run_ab(port, n, c, keepalive, seconds, timeout=10):
    return ab_result(ab_start(port, n, c, keepalive, seconds, timeout), seconds)


def ab_across_upgrades(td, keepalive):
    """ab (HTTP/1.0, with or without -k) while `batonctl upgrade web` runs
    again and again: every request answered 2xx."""
    b = Batond(td, web_config(workers=2), wait_ready=2)
    seconds = 10
    ab = ab_start(b.port("v4"), 200000, 4, keepalive, seconds)
    done = 0
    deadline = time.monotonic() + seconds - 2
    while done < UPGRADES and time.monotonic() < deadline and ab.poll() is None:
        code, out, err = ctl(b, "upgrade", "web")
        assert code == 0, (out, err)
        done += 1
        time.sleep(0.2)
    r = ab_result(ab, seconds)
    assert r["failed"] == 0 and r["non2xx"] == 0, r["out"]
    assert r["complete"] > 100 and done >= 3, (r["complete"], done, r["out"])
    if keepalive:
        assert r["keepalive"] > 0, r["out"]
    print(f"    ab{' -k' if keepalive else ''}: {r['complete']} requests ({r['keepalive']} kept alive), "
          f"0 failed, 0 non-2xx across {done} upgrades")
    assert b.stop() == 0


@test
def upgrades_under_ab_lose_nothing(td):
    if ab_available():
        ab_across_upgrades(td, keepalive=False)


@test
def upgrades_under_ab_keepalive_lose_nothing(td):
    if ab_available():
        ab_across_upgrades(td, keepalive=True)


@test
def upgrades_in_batches_with_slow_ready(td):
    b = Batond(td, web_config(workers=4, command="@BIN@/baton-http --ready-delay 500",
                              program_extra="upgrade_batch = 2\nready_timeout = 5s"), wait_ready=4)
    load = Load(("127.0.0.1", b.port("v4")), threads=4, max_requests=10**6, max_seconds=120)
    for i in range(UPGRADES):
        code, out, err = ctl(b, "upgrade", "web")
        assert code == 0, (out, err)
        assert "4 workers, 2 at a time" in err, err
        # batches: the first two start before either old one drains
        lines = [l for l in err.splitlines() if "started pid" in l or "draining pid" in l]
        assert [("started" in l) for l in lines[:3]] == [True, True, False], lines
    ok, errors = load.finish()
    assert not errors, (len(errors), errors[:5])
    st = program(status(b), "web")
    assert st["generation"] == UPGRADES + 1
    assert sorted(w["slot"] for w in st["workers"] if w["state"] == "RUNNING") == [0, 1, 2, 3]
    print(f"    {UPGRADES} upgrades, batch 2, ready after 500 ms: {ok} requests, 0 errors")
    assert b.stop() == 0


def switchable(td, flags):
    """A worker script whose behaviour a flag file decides: a new binary at
    the same path."""
    lines = "\n".join(f"[ -e {td.path}/{f} ] && exec {bin_path('baton-http')} {opt}" for f, opt in flags)
    return td.file("release.sh", f"#!/bin/sh\n{lines}\nexec {bin_path('baton-http')}\n", 0o755)


@test
def broken_release_rolls_back(td):
    script = switchable(td, [("fail", "--fail-start"), ("never", "--never-ready"),
                             ("second", "--fail-start")])
    b = Batond(td, web_config(workers=2, command=script, program_extra="ready_timeout = 1s"),
               wait_ready=2)
    load = Load(("127.0.0.1", b.port("v4")), threads=4, max_requests=10**6, max_seconds=120)
    code, _, _ = ctl(b, "upgrade", "web")
    assert code == 0
    gen = 2
    for flag, reason in (("fail", r"exit=1"), ("never", r"not ready within ready_timeout")):
        open(os.path.join(td.path, flag), "w").close()
        # the RUNNING ones (a drained worker of the last upgrade may linger)
        before = {w["pid"] for w in program(status(b), "web")["workers"] if w["state"] == "RUNNING"}
        code, out, err = ctl(b, "upgrade", "web")
        assert code == 1, (code, out, err)
        assert re.search(r"upgrade of web failed: web:0: new worker pid \d+ failed: .*" + reason, err), err
        assert f"generation {gen} serves at full count" in err, err
        st = program(status(b), "web")
        assert st["generation"] == gen, st
        workers = st["workers"]
        assert all(w["generation"] == gen for w in workers), workers  # none of the broken one left
        running = {w["pid"] for w in workers if w["state"] == "RUNNING"}
        assert running == before and len(running) == 2, (before, workers)
        os.unlink(os.path.join(td.path, flag))
    ok, errors = load.finish()
    assert not errors, (len(errors), errors[:5])
    code, out, _ = ctl(b, "metrics")
    assert 'baton_upgrades_total{program="web",result="failed"} 2' in out
    assert 'baton_upgrades_total{program="web",result="ok"} 1' in out
    print(f"    2 broken releases rolled back under load: {ok} requests, 0 errors")
    assert b.stop() == 0


@test
def failure_after_a_switched_batch_restores_old_generation(td):
    # slot 1 of the new release fails: slot 0 already switched must go back
    script = td.file("release.sh", f"""#!/bin/sh
[ -e {td.path}/bad ] && [ "$BATON_WORKER" = 1 ] && exec {bin_path('baton-http')} --fail-start
exec {bin_path('baton-http')}
""", 0o755)
    b = Batond(td, web_config(workers=2, command=script), wait_ready=2)
    load = Load(("127.0.0.1", b.port("v4")), threads=4, max_requests=10**6, max_seconds=120)
    open(os.path.join(td.path, "bad"), "w").close()
    code, out, err = ctl(b, "upgrade", "web")
    assert code == 1 and "web:1: new worker" in err and "back on generation 1" in err, err
    st = program(status(b), "web")
    assert st["generation"] == 1 and [w["generation"] for w in st["workers"]] == [1, 1], st
    ok, errors = load.finish()
    assert not errors, (len(errors), errors[:5])
    assert b.stop() == 0


@test
def upgrade_abort_and_concurrent_refusal(td):
    script = switchable(td, [("slow", "--ready-delay 3000")])
    b = Batond(td, web_config(workers=2, command=script, program_extra="ready_timeout = 10s"),
               wait_ready=2)
    open(os.path.join(td.path, "slow"), "w").close()
    up = subprocess.Popen([bin_path("batonctl"), "-s", b.control, "upgrade", "web"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    b.wait_log(r"upgrade started program=web", 10)
    code, out, err = ctl(b, "upgrade", "web")
    assert code == 1 and "busy: upgrade web is in progress" in err, (code, err)
    code, out, err = ctl(b, "restart", "web")
    assert code == 1 and "busy" in err, (code, err)
    code, out, err = ctl(b, "upgrade", "--abort", "web")
    assert code == 0 and "rolling back" in out, (code, out, err)
    out, err = up.communicate(timeout=30)
    assert up.returncode == 1 and "upgrade of web aborted" in err, err
    st = program(status(b), "web")
    assert st["generation"] == 1 and all(w["generation"] == 1 for w in st["workers"]), st
    code, _, err = ctl(b, "upgrade", "--abort", "web")
    assert code == 1 and "no upgrade of web is in progress" in err
    code, _, err = ctl(b, "upgrade", "--bogus", "web")
    assert code == 2, err
    code, _, err = ctl(b, "upgrade", "nope")
    assert code == 2 and "no such program" in err, err
    assert b.stop() == 0


@test
def sigusr2_upgrades_every_program(td):
    b = Batond(td, two_programs(), wait_ready=4)
    b.signal(signal.SIGUSR2)
    b.wait_log(r"control: upgrade web done", 20)
    b.wait_log(r"control: upgrade echo done", 20)
    st = status(b)
    assert program(st, "web")["generation"] == 2 and program(st, "echo")["generation"] == 2
    assert b.stop() == 0


@test
def reload_under_load(td):
    sock = os.path.join(td.path, "new.sock")
    cfg = two_programs()
    b = Batond(td, cfg, wait_ready=4)
    web_port = b.port("web")
    load = Load(("127.0.0.1", web_port), threads=4, max_seconds=120)
    echo_pids = [w["pid"] for w in program(status(b), "echo")["workers"]]
    # add a listener, remove a program (and its listener), change a command
    new = f"""
[baton]
control = {b.control}
log_level = info
[listener:web]
address = tcp:127.0.0.1:0
program = web
[listener:new]
address = unix:{sock}
program = web
[program:web]
command = {bin_path('baton-http')} --body reloaded
workers = 3
ready_timeout = 5s
drain_timeout = 60s
"""
    open(b.config, "w").write(new)
    code, out, err = ctl(b, "reload", "--dry-run")
    assert code == 0, err
    for want in ("listener new: open", "listener echo: close", "program echo: drain and stop",
                 "program web: scale 2 -> 3 workers, then upgrade to generation 2"):
        assert want in out, (want, out)
    assert not os.path.exists(sock)
    code, out, err = ctl(b, "reload")
    assert code == 0 and "reloaded" in out, (code, out, err)
    status_, _, body = http_get(sock, family=socket.AF_UNIX)
    assert status_ == 200 and body == b"reloaded", body
    wait_until(lambda: all(not os.path.exists(f"/proc/{p}") or
                           open(f"/proc/{p}/stat").read().split()[2] == "Z" for p in echo_pids),
               15, "echo workers gone")
    st = status(b)
    assert [p["name"] for p in st["programs"]] == ["web"], st
    web = program(st, "web")
    assert web["generation"] == 2 and len([w for w in web["workers"] if w["state"] == "RUNNING"]) == 3
    assert sorted(l["name"] for l in st["listeners"]) == ["new", "web"]
    ok, errors = load.finish()
    assert not errors, (len(errors), errors[:5])
    assert http_get(("127.0.0.1", web_port))[2] == b"reloaded"

    # an invalid file changes nothing and names file:line
    def running():  # a worker drained by the last upgrade may still be leaving
        return sorted(w["pid"] for w in program(status(b), "web")["workers"] if w["state"] == "RUNNING")
    pids = running()
    open(b.config, "w").write(new + "bogus_key = 1\n")
    code, out, err = ctl(b, "reload")
    assert code == 1, (code, out, err)
    line = len(new.splitlines()) + 1
    assert f"{b.config}:{line}: unknown key 'bogus_key' in [program:web]" in out, out
    assert "nothing changed" in err, err
    assert running() == pids
    # a listener that cannot bind aborts the reload untouched
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    open(b.config, "w").write(new + f"""
[listener:taken]
address = tcp:127.0.0.1:{blocker.getsockname()[1]}
program = web
""")
    code, out, err = ctl(b, "reload")
    blocker.close()
    assert code == 1 and "listener taken: bind" in err and "nothing changed" in err, err
    assert sorted(l["name"] for l in status(b)["listeners"]) == ["new", "web"]
    # SIGHUP reloads too
    open(b.config, "w").write(new.replace("workers = 3", "workers = 2"))
    b.signal(signal.SIGHUP)
    b.wait_log(r"control: scale web done", 15)
    assert len(running()) == 2
    print(f"    reload under load: {ok} requests, 0 errors")
    assert b.stop() == 0
    assert not os.path.exists(sock)
