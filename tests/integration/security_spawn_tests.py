"""What a worker inherits from batond, checked from inside real workers
(most of them running as nobody under a root batond): no controlling
terminal even when batond has one, its own session and process group, none
of the variables of batond's own session, LOGNAME/HOME/USER/SHELL of its
user, the program's umask, a directory entered as the worker's user, fds
0-2 always open, and no capability carried over from batond."""
import json
import os
import pwd
import re
import subprocess

from harness import skip, Batond, bin_path, http_get, test, wait_until, web_config

# A worker that writes what it inherited to DIR/PROGRAM.SLOT.PID.json,
# then reports READY and exits at the first message (DRAIN) or EOF.
PROBE = r'''
import errno, json, os, socket, struct, sys

def tty():
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
        return "opened"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

def fds():
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[fd] = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            pass  # the listing's own fd, closed by now
    return out

um = os.umask(0)
os.umask(um)
stat = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
caps = {k: int(v, 16) for k, _, v in (l.partition(":") for l in open("/proc/self/status"))
        if k in ("CapInh", "CapPrm", "CapEff", "CapAmb")}
report = dict(pid=os.getpid(), sid=os.getsid(0), pgid=os.getpgrp(), tty_nr=int(stat[4]), tty=tty(),
              umask=um, cwd=os.getcwd(), env=dict(os.environ), uid=os.getresuid(),
              gid=os.getresgid(), caps=caps, fds=fds())
name = os.path.join(sys.argv[1], "%s.%s.%d.json" % (os.environ["BATON_PROGRAM"],
                                                   os.environ["BATON_WORKER"], os.getpid()))
with open(name + ".tmp", "w") as f:
    json.dump(report, f)
os.rename(name + ".tmp", name)
s = socket.socket(fileno=3)
s.send(struct.pack("<HHIII", 100, 1, 16, 0, 0))
s.recv(4096)  # DRAIN (no connection comes its way), or batond gone: exit
'''

# Runs argv[2:] as the leader of a new session whose controlling terminal
# is the pty slave argv[1], as a shell started in a terminal would be.
CTTY = r'''
import fcntl, os, sys, termios
os.setsid()
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
os.close(fd)
os.execvp(sys.argv[2], sys.argv[2:])
'''

# Runs argv[3:] as user argv[1] ("root": stay root) with the capabilities
# argv[2] (numbers, comma separated) raised in its ambient set, so that
# they survive exec: the way systemd's AmbientCapabilities= starts a
# service.
CAPS = r'''
import ctypes, os, pwd, sys
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_KEEPCAPS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE = 8, 47, 2

class Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

class Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]

def check(rc, what):
    if rc != 0:
        sys.exit("caps.py: %s: %s" % (what, os.strerror(ctypes.get_errno())))

user, caps = sys.argv[1], [int(c) for c in sys.argv[2].split(",")]
hdr, data = Header(0x20080522, 0), (Data * 2)()
check(libc.capget(ctypes.byref(hdr), data), "capget")
for c in caps:
    data[c // 32].inheritable |= 1 << (c % 32)
check(libc.capset(ctypes.byref(hdr), data), "capset")
if user != "root":
    pw = pwd.getpwnam(user)
    check(libc.prctl(PR_SET_KEEPCAPS, ctypes.c_ulong(1), 0, 0, 0), "PR_SET_KEEPCAPS")
    os.setgroups([])
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
for c in caps:
    check(libc.prctl(PR_CAP_AMBIENT, ctypes.c_ulong(PR_CAP_AMBIENT_RAISE), ctypes.c_ulong(c), 0, 0),
          "PR_CAP_AMBIENT_RAISE %d" % c)
os.execvp(sys.argv[3], sys.argv[3:])
'''

CAP_SETGID, CAP_SETUID, CAP_NET_BIND_SERVICE = 6, 7, 10


def need_root():
    if os.geteuid() != 0:
        skip("needs root (batond as root, workers as nobody)")


def setup(td):
    """The probe, readable by nobody, and a directory nobody writes its
    reports to; returns the probe's command line."""
    nb = pwd.getpwnam("nobody")
    os.chmod(td.path, 0o755)
    out = os.path.join(td.path, "reports")
    os.mkdir(out, 0o755)
    os.chown(out, nb.pw_uid, nb.pw_gid)
    probe = td.file("probe.py", PROBE)
    return f"python3 {probe} {out}"


def reports(td, b, program, n):
    """The reports of program's n ready workers, by pid."""
    out = os.path.join(td.path, "reports")
    wait_until(lambda: len(b.ready_pids(program)) >= n, 15, f"{n} ready workers of {program}")
    got = {}
    for pid in b.ready_pids(program):
        name = [f for f in os.listdir(out) if f.startswith(program + ".") and f.endswith(f".{pid}.json")]
        assert len(name) == 1, (program, pid, os.listdir(out))
        with open(os.path.join(out, name[0])) as f:
            got[pid] = json.load(f)
    return got


def web(command, workers=1, extra=""):
    """web_config for the probe (which sends no heartbeat)."""
    return web_config(command=command, workers=workers, program_extra="heartbeat_timeout = 0\n" + extra.strip())


def program(name, command, extra=""):
    return f"""
[program:{name}]
command = {command}
workers = 1
ready_timeout = 10s
stop_timeout = 2s
backoff = 50ms
heartbeat_timeout = 0
{extra}
"""


def proc_stat(pid):
    """/proc/PID/stat fields after the command: state is [0], session [3],
    tty_nr [4]."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        return re.search(rf"^{key}:\s*(.*)$", f.read(), re.M).group(1)


def ctl(b, *args):
    return subprocess.run([bin_path("batonctl"), "-s", b.control, *args], capture_output=True,
                          text=True, timeout=60)


@test
def security_spawn_worker_has_no_controlling_terminal(td):
    """batond runs with a pseudo-terminal as its controlling terminal (as
    when an operator starts it from a shell): every worker, as nobody or
    as root, leads a session of its own (sid == pgid == pid) and has no
    controlling terminal, so it cannot open /dev/tty and push keystrokes
    into the operator's shell with TIOCSTI."""
    need_root()
    cmd = setup(td)
    try:
        master, slave = os.openpty()
    except OSError as e:
        skip(f"no pseudo-terminal: {e}")
    try:
        slave_path = os.ttyname(slave)
        os.close(slave)
        wrap = td.file("ctty.py", CTTY)
        b = Batond(td, web(cmd, 2, "user = nobody") +
                   program("rootw", cmd), wrapper=("python3", wrap, slave_path))
        pid = b.proc.pid
        st = proc_stat(pid)
        assert int(st[4]) != 0 and int(st[3]) == pid, ("batond must have the tty", st)
        got = {**reports(td, b, "web", 2), **reports(td, b, "rootw", 1)}
        for wpid, r in got.items():
            seen = {k: r[k] for k in ("pid", "sid", "pgid", "tty_nr", "tty")}
            assert r["pid"] == wpid and r["sid"] == wpid and r["pgid"] == wpid, seen
            assert r["tty_nr"] == 0 and r["tty"] == "ENXIO", seen
        assert b.stop() == 0
    finally:
        os.close(master)


@test
def security_spawn_worker_environment(td):
    """batond started with the variables of a login session and of a
    systemd service: a worker (as nobody or as root) sees none of them
    unless its program's environment sets them, sees LOGNAME, USER, HOME
    and SHELL of its user (the program's environment still wins), and the
    journal stream only when it writes to batond's own stderr."""
    need_root()
    cmd = setup(td)
    nb = pwd.getpwnam("nobody")
    session = {"XDG_RUNTIME_DIR": "/run/user/0", "XDG_SESSION_ID": "7", "INVOCATION_ID": "0f1e2d3c",
               "JOURNAL_STREAM": "8:424242", "CREDENTIALS_DIRECTORY": "/run/credentials/batond.service",
               "MAINPID": "1", "MANAGERPID": "1", "SYSTEMD_EXEC_PID": "1",
               "SSH_AUTH_SOCK": "/tmp/ssh-test/agent.1"}
    login = {"LOGNAME": "root", "USER": "root", "HOME": "/root", "SHELL": "/bin/bash"}
    env = {**session, **login, "KEEP_ME": "yes"}
    b = Batond(td, web(cmd, 1, "user = nobody") +
               program("own", cmd, "user = nobody\n"
                       "environment = XDG_RUNTIME_DIR=/run/user/65534,HOME=/srv/own,INVOCATION_ID=mine") +
               program("plain", cmd) + program("inh", cmd, "stderr = inherit"),
               wrapper=("env", *[f"{k}={v}" for k, v in env.items()]))
    with open(f"/proc/{b.proc.pid}/environ") as f:  # the premise: batond has them all
        mine = dict(v.split("=", 1) for v in f.read().split("\0") if "=" in v)
    assert all(mine.get(k) == v for k, v in env.items()), mine
    nobody = {"LOGNAME": "nobody", "USER": "nobody", "HOME": nb.pw_dir, "SHELL": nb.pw_shell}
    cases = {"web": ({}, nobody),
             "own": ({"XDG_RUNTIME_DIR": "/run/user/65534", "INVOCATION_ID": "mine"},
                     {**nobody, "HOME": "/srv/own"}),
             "plain": ({}, login),
             "inh": ({"JOURNAL_STREAM": "8:424242"}, login)}
    for name, (kept, user) in cases.items():
        (r,) = reports(td, b, name, 1).values()
        e = r["env"]
        for k in session:
            assert e.get(k) == kept.get(k), (name, k, e.get(k))
        for k, v in user.items():
            assert e.get(k) == v, (name, k, e.get(k))
        assert e["KEEP_ME"] == "yes" and e["BATON_PROGRAM"] == name, (name, e)
    assert b.stop() == 0


@test
def security_spawn_worker_umask(td):
    """batond runs with umask 002; a worker gets its program's umask, not
    batond's: 022 by default, 077 when set."""
    need_root()
    cmd = setup(td)
    b = Batond(td, web(cmd) +
               program("tight", cmd, "umask = 0077\nuser = nobody"),
               wrapper=("sh", "-c", 'umask 002 && exec "$@"', "sh"))
    (r,) = reports(td, b, "web", 1).values()
    # Read once batond is up: it sets umask 0777 for a moment to create
    # its control socket.
    assert proc_status(b.proc.pid, "Umask") == "0002"
    assert r["umask"] == 0o022, oct(r["umask"])
    (r,) = reports(td, b, "tight", 1).values()
    assert r["umask"] == 0o077 and r["uid"] == [pwd.getpwnam("nobody").pw_uid] * 3, r
    assert b.stop() == 0


@test
def security_spawn_directory_entered_as_worker_user(td):
    """directory = a directory only root may enter, with user = nobody: the
    worker cannot start (batond logs why, the slot backs off and goes
    FATAL, batond keeps answering); once the directory is 0755 it starts
    there."""
    need_root()
    cmd = setup(td)
    private = os.path.join(td.path, "private")
    os.mkdir(private, 0o700)
    b = Batond(td, web(cmd, 1, f"""
user = nobody
directory = {private}
start_retries = 2
"""))
    b.wait_log(r"web:0 stderr: baton: worker web:0: chdir %s: Permission denied" % re.escape(private), 15)
    b.wait_log(r"worker slot is FATAL after 3 failed starts program=web slot=0", 15)
    assert not os.listdir(os.path.join(td.path, "reports"))
    r = ctl(b, "status", "web")
    assert r.returncode == 3 and "FATAL" in r.stdout, (r.returncode, r.stdout, r.stderr)
    os.chmod(private, 0o755)
    r = ctl(b, "start", "web")
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    (rep,) = reports(td, b, "web", 1).values()
    assert rep["cwd"] == private and rep["uid"] == [pwd.getpwnam("nobody").pw_uid] * 3, rep
    assert ctl(b, "status").returncode == 0
    assert b.stop() == 0


@test
def security_spawn_batond_std_fds_always_open(td):
    """batond started with stdin closed has /dev/null on fd 0 and serves;
    started with fds 0, 1 and 2 all closed (logging to a file) it has
    /dev/null on each, so neither a socket nor its log lands there, and a
    worker with stdout = inherit gets /dev/null, not one of batond's
    sockets."""
    need_root()
    cmd = setup(td)
    b = Batond(td, web_config(workers=1), wrapper=("sh", "-c", 'exec "$@" 0<&-', "sh"), wait_ready=1)
    assert os.readlink(f"/proc/{b.proc.pid}/fd/0") == "/dev/null"
    assert http_get(("127.0.0.1", b.port("v4")))[0] == 200
    assert ctl(b, "status").returncode == 0
    assert b.stop() == 0

    own_log = os.path.join(td.path, "own.log")
    cfg = web_config(workers=1).replace("[baton]\n", f"[baton]\nlog_file = {own_log}\n")
    b = Batond(td, cfg + program("inh", cmd, "stdout = inherit"),
               wrapper=("sh", "-c", 'exec "$@" 0<&- 1>&- 2>&-', "sh"), expect_fail=True)
    wait_until(lambda: os.path.exists(own_log) and
               len(re.findall(r"worker ready program=", open(own_log).read())) >= 2, 15,
               "two ready workers in " + own_log)
    for fd in (0, 1, 2):
        assert os.readlink(f"/proc/{b.proc.pid}/fd/{fd}") == "/dev/null", fd
    b.logpath = own_log  # what the harness reads as its log
    (r,) = reports(td, b, "inh", 1).values()
    assert r["fds"]["1"] == "/dev/null" and r["fds"]["0"] == "/dev/null", r["fds"]
    assert http_get(("127.0.0.1", b.port("v4")))[0] == 200
    assert b.stop() == 0


def caps_of(pid):
    return {k: int(proc_status(pid, k), 16) for k in ("CapInh", "CapPrm", "CapEff", "CapAmb")}


@test
def security_spawn_worker_gets_no_capabilities(td):
    """A worker as nobody starts with no capability at all (CapInh,
    CapPrm, CapEff and CapAmb are 0) whatever batond holds: batond as
    root with CAP_NET_BIND_SERVICE raised in its ambient set, and batond
    as daemon (not root) holding CAP_SETUID and CAP_SETGID as ambient
    capabilities, which a worker would otherwise keep across its setuid
    and exec (and use to become root again)."""
    need_root()
    cmd = setup(td)
    wrap = td.file("caps.py", CAPS)
    nb = pwd.getpwnam("nobody")
    b = Batond(td, web(cmd, 1, "user = nobody"),
               wrapper=("python3", wrap, "root", str(CAP_NET_BIND_SERVICE)))
    assert caps_of(b.proc.pid)["CapAmb"] == 1 << CAP_NET_BIND_SERVICE, caps_of(b.proc.pid)
    (r,) = reports(td, b, "web", 1).values()
    assert r["uid"] == [nb.pw_uid] * 3, r
    assert all(v == 0 for v in r["caps"].values()), r["caps"]
    assert b.stop() == 0

    daemon = pwd.getpwnam("daemon")
    os.chown(td.path, daemon.pw_uid, daemon.pw_gid)  # its control socket goes there
    caps = (1 << CAP_SETUID) | (1 << CAP_SETGID)
    b = Batond(td, web(cmd, 1, "user = nobody"),
               wrapper=("python3", wrap, "daemon", f"{CAP_SETUID},{CAP_SETGID}"))
    held = caps_of(b.proc.pid)
    assert proc_status(b.proc.pid, "Uid").split() == [str(daemon.pw_uid)] * 4, "batond runs as daemon"
    assert held["CapAmb"] == caps and held["CapEff"] == caps, held
    (r,) = reports(td, b, "web", 1).values()
    assert r["uid"] == [nb.pw_uid] * 3 and r["gid"] == [nb.pw_gid] * 3, r
    assert all(v == 0 for v in r["caps"].values()), r["caps"]
    assert b.stop() == 0
