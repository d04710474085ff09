"""Files batond (root) writes in a directory a worker (nobody) can write:
output files and log_file planted as symlinks, FIFOs or the worker's own
files are refused, at start and on SIGUSR1, and nothing reaches the
target; control characters never reach a log line; a NUL byte in the
configuration is an error.  Each attack is made for real, by a worker or
a shell running as nobody, against a root-only file of the test's own."""
import os
import pwd
import re
import signal
import stat
import subprocess

from harness import skip, Batond, bin_path, http_get, test, wait_until, web_config


def need_root():
    if os.geteuid() != 0:
        skip("needs root (batond as root, workers as nobody)")


def nobody_dir(td, name="out"):
    """A directory the worker's user owns, under a test dir it can reach."""
    nb = pwd.getpwnam("nobody")
    os.chmod(td.path, 0o755)
    d = os.path.join(td.path, name)
    os.mkdir(d, 0o755)
    os.chown(d, nb.pw_uid, nb.pw_gid)
    return d


def root_target(td):
    """A root-only file standing in for /etc/ld.so.preload; its state."""
    path = td.file("target", "root's own\n", 0o600)
    return path, snapshot(path)


def snapshot(path):
    st = os.lstat(path)
    with open(path, "rb") as f:
        return (f.read(), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_nlink)


def as_nobody(cmd):
    """Run a shell command as nobody (the attacker), checked."""
    nb = pwd.getpwnam("nobody")
    r = subprocess.run(["/bin/sh", "-c", cmd], user=nb.pw_uid, group=nb.pw_gid, extra_groups=[],
                       cwd="/", capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (cmd, r.returncode, r.stderr)


def ctl(b, *args):
    return subprocess.run([bin_path("batonctl"), "-s", b.control, *args], capture_output=True,
                          text=True, timeout=60)


def serves(b, port):
    assert http_get(("127.0.0.1", port))[0] == 200
    r = ctl(b, "status")
    assert r.returncode == 0, (r.stdout, r.stderr)


@test
def output_file_planted_by_worker_is_refused(td):
    """A worker (nobody) owning its output directory replaces out.log with a
    symlink to a root-only file, a FIFO, or a file of its own, and exits:
    the respawn's lines go to batond's log, never into what was planted,
    batond does not block on the FIFO and serves on."""
    need_root()
    d = nobody_dir(td)
    out = os.path.join(d, "out.log")
    attack = os.path.join(d, "attack")
    target, before = root_target(td)
    script = td.file("w.sh", f"""#!/bin/sh
echo "hello from worker $BATON_WORKER pid $$ uid $(id -u)"
case "$(cat {attack} 2>/dev/null)" in
symlink) rm -f {attack} {out}; ln -s {target} {out}; exit 3 ;;
fifo) rm -f {attack} {out}; mkfifo -m 0666 {out}; exit 3 ;;
own) rm -f {attack} {out}; echo mine > {out}; chmod 0666 {out}; exit 3 ;;
esac
exec {bin_path('baton-http')}
""", 0o755)
    # start_window = 0: the workers the test kills are no failed starts
    b = Batond(td, web_config(workers=1, command=script,
                              program_extra=f"user = nobody\nstdout = {out}\nstart_window = 0"),
               wait_ready=1)
    port = b.port("v4")
    wait_until(lambda: os.path.exists(out) and "uid 65534" in open(out).read(), 10, "the first line")
    st = os.lstat(out)
    assert stat.S_ISREG(st.st_mode) and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o640, st
    rounds = (("symlink", "is a symlink"), ("fifo", "not a regular file"),
              ("own", "owned by uid 65534, not root or batond's user"))
    for n, (how, reason) in enumerate(rounds, 1):
        if n > 1:  # the operator cleans up what the last round planted
            os.unlink(out)
        with open(attack, "w") as f:
            f.write(how)
        pid = list(b.ready_pids("web"))[-1]
        os.kill(pid, signal.SIGKILL)  # the worker ends; its respawn plants and exits
        b.wait_log(r"refusing output file path=%s reason=\"%s\"; logging it instead"
                   % (re.escape(out), re.escape(reason)), 15)
        # the next one runs on, its lines in batond's log
        b.wait_log(r"info: web:0 stdout: hello from worker 0 pid \d+ uid 65534\n", 15, n)
        b.wait_ready(n + 1, 15)
        assert not os.path.exists(attack)
        assert snapshot(target) == before, (how, snapshot(target), before)
        serves(b, port)
    assert b.stop() == 0
    assert snapshot(target) == before
    assert open(out).read() == "mine\n"  # the worker's own file, untouched too


@test
def output_file_symlink_planted_before_sigusr1(td):
    """A worker renames its output file and plants a symlink to a root-only
    file, as if for logrotate; on SIGUSR1 the reopen is refused, the stream
    writes on to the old file, and batond serves on.  Once the symlink is
    gone, the next SIGUSR1 makes a new file of root's."""
    need_root()
    d = nobody_dir(td)
    out = os.path.join(d, "out.log")
    target, before = root_target(td)
    script = td.file("w.sh", f"""#!/bin/sh
( i=0; while [ $i -lt 600 ] && [ -d {d} ]; do i=$((i+1)); echo "tick $i"; sleep 0.1; done ) &
exec {bin_path('baton-http')}
""", 0o755)
    b = Batond(td, web_config(workers=1, command=script,
                              program_extra=f"user = nobody\nstdout = {out}"), wait_ready=1)
    port = b.port("v4")
    wait_until(lambda: os.path.exists(out) and "tick 3" in open(out).read(), 10, "ticks in the file")
    as_nobody(f"mv {out} {out}.old && ln -s {target} {out}")
    b.signal(signal.SIGUSR1)
    b.wait_log(r"error: SIGUSR1: worker output: refusing output file path=%s "
               r"reason=\"is a symlink\"; writing on to the old one" % re.escape(out), 10)
    ticks = open(out + ".old").read().count("tick")
    wait_until(lambda: open(out + ".old").read().count("tick") >= ticks + 3, 10,
               "ticks going on in the old file")
    assert snapshot(target) == before
    serves(b, port)
    # the operator removes the symlink: the next reopen makes a file of root's
    os.unlink(out)
    b.signal(signal.SIGUSR1)
    wait_until(lambda: os.path.exists(out) and "tick" in open(out).read(), 10, "ticks in a new file")
    st = os.lstat(out)
    assert stat.S_ISREG(st.st_mode) and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o640, st
    assert b.stop() == 0
    assert snapshot(target) == before


@test
def log_file_symlink_refused_at_start_and_on_sigusr1(td):
    """log_file in a directory nobody owns: a symlink (or a FIFO) there makes
    batond refuse to start, saying which file and why; one planted before
    SIGUSR1 makes the reopen fail and batond logs on to the old file."""
    need_root()
    d = nobody_dir(td, "logs")
    log = os.path.join(d, "batond.log")
    target, before = root_target(td)
    cfg = web_config(workers=1, program_extra="user = nobody").replace(
        "[baton]\n", f"[baton]\nlog_file = {log}\ncontrol = {td.path}/ctl.sock\n", 1)
    path = td.file("start.ini", cfg.replace("@BIN@", os.path.dirname(bin_path("x"))))
    for plant, reason in ((f"ln -s {target} {log}", "is a symlink"),
                          (f"mkfifo -m 0666 {log}", "not a regular file")):
        as_nobody(plant)
        r = subprocess.run([bin_path("batond"), "-c", path], capture_output=True, text=True,
                           timeout=30)
        want = f'batond: refusing log file path={log} reason="{reason}"'
        assert r.returncode == 1 and want in r.stderr, (plant, r.returncode, r.stderr)
        assert snapshot(target) == before
        os.unlink(log)
    assert not os.path.exists(f"{td.path}/ctl.sock")

    b = Batond(td, cfg, expect_fail=True)  # its stderr stays empty: read the file
    wait_until(lambda: os.path.exists(log) and "worker ready program=web" in open(log).read(), 10,
               "the log file")
    st = os.lstat(log)
    assert stat.S_ISREG(st.st_mode) and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o640, st
    port = int(re.search(r"bound=127\.0\.0\.1:(\d+)", open(log).read()).group(1))
    as_nobody(f"mv {log} {log}.old && ln -s {target} {log}")
    b.signal(signal.SIGUSR1)
    want = (f'error: SIGUSR1: refusing log file path={log} reason="is a symlink"; '
            f'logging on to the old file')
    wait_until(lambda: want in open(log + ".old").read(), 10, "the refusal in the old file")
    serves(b, port)
    r = ctl(b, "restart", "web")
    assert r.returncode == 0, (r.stdout, r.stderr)
    after = open(log + ".old").read().split(want, 1)[1]
    assert re.search(r"worker ready program=web slot=0 pid=\d+", after), after
    assert snapshot(target) == before
    assert b.stop() == 0
    assert "stopped" in open(log + ".old").read() and b.log() == "", b.log()
    assert snapshot(target) == before


def rescue(b):
    """batond let bytes that are not UTF-8 into its log (the bug this file
    tests): the harness cannot read that log to find the workers it must
    kill, so kill them here and leave a readable copy."""
    data = open(b.logpath, "rb").read()
    if b.proc.poll() is None:
        b.proc.kill()
        b.proc.wait()
    for pid in re.findall(rb"started worker program=\S+ slot=\d+ pid=(\d+)", data):
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    with open(b.logpath, "w") as f:
        f.write(data.decode("utf-8", "replace"))


@test
def worker_output_c1_and_escapes_replaced(td):
    """A worker prints ANSI escapes, C1 controls (raw and as UTF-8) and a
    byte that is not UTF-8: each becomes '?' in batond's log and in the
    output file, and UTF-8 text (the euro sign: e2 82 ac) stays."""
    need_root()
    d = nobody_dir(td)
    out = os.path.join(d, "err.log")
    line = r"c1 \302\233[31m raw \233[2J esc \033[0m euro \342\202\254 nel \302\205 bad \377 end"
    script = td.file("w.sh", f"""#!/bin/sh
printf '{line}\\n'
printf '{line}\\n' >&2
exec {bin_path('baton-http')}
""", 0o755)
    # expect_fail: read the log as bytes here, not as text in the harness
    b = Batond(td, web_config(workers=1, command=script,
                              program_extra=f"user = nobody\nstdout = log\nstderr = {out}"),
               expect_fail=True)
    clean = "c1 ?[31m raw ?[2J esc ?[0m euro \u20ac nel ? bad ? end".encode()
    try:
        wait_until(lambda: b"worker ready program=web" in open(b.logpath, "rb").read(), 10,
                   "the worker")
        wait_until(lambda: b"info: web:0 stdout: " + clean + b"\n" in open(b.logpath, "rb").read(),
                   10, "the clean line in batond's log")
        wait_until(lambda: os.path.exists(out) and b" web:0 stderr: " + clean + b"\n" in
                   open(out, "rb").read(), 10, "the clean line in the file")
        assert b.stop() == 0
        for path in (b.logpath, out):
            data = open(path, "rb").read()
            text = data.decode("utf-8")  # strict: nothing that is not UTF-8
            assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", text), (path, data)
    except BaseException:
        rescue(b)
        raise


@test
def config_nul_byte_is_an_error(td):
    """`command = /bin/sleep 100<NUL> --evil` used to pass batond -t with the
    value cut at the NUL: now it is an error with file:line, at -t, at
    start-up and on reload (which then changes nothing)."""
    text = web_config(workers=1, command="/bin/sleep 100\0 --evil").replace(
        "@BIN@", os.path.dirname(bin_path("x")))
    line = text.split("\n").index("command = /bin/sleep 100\0 --evil") + 1
    cfg = td.file("nul.ini", text)
    assert b"\0" in open(cfg, "rb").read()
    for args in (["-t", "-c", cfg], ["-c", cfg]):
        r = subprocess.run([bin_path("batond"), *args], capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and f"{cfg}:{line}: NUL byte in the file" in r.stderr, \
            (args, r.returncode, r.stdout, r.stderr)
        assert "ok (" not in r.stdout
    b = Batond(td, web_config(workers=1), wait_ready=1)
    pids = set(b.ready_pids("web"))
    good = open(b.config).read()
    bad = good.replace("workers = 1\n", "workers = 1\nenvironment = A=1\0B=2\n")
    line = bad.split("\n").index("environment = A=1\0B=2") + 1
    with open(b.config, "w") as f:
        f.write(bad)
    r = ctl(b, "reload")
    assert r.returncode == 1 and f"{b.config}:{line}: NUL byte in the file" in r.stdout + r.stderr, \
        (r.returncode, r.stdout, r.stderr)
    assert set(b.ready_pids("web")) == pids
    assert http_get(("127.0.0.1", b.port("v4")))[0] == 200
    assert b.stop() == 0
