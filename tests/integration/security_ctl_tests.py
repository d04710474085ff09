"""Unix socket files and the control socket against hostile local users.

Run alone with `run.py -k security_ctl`.  A real batond as root; the
attacker is `nobody`, who owns the directory a socket is in (as an app
user owns its systemd RuntimeDirectory) or is a read-only control user.
"""
import grp
import json
import os
import pwd
import re
import select
import socket
import stat
import subprocess
import sys
import threading
import time

from harness import BIN, Batond, bin_path, http_get, skip, test, wait_until, web_config

AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
# another uid may not reach an interpreter under root's home (pyenv)
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
BUSY = "= 1 batond is busy: too many control clients, try again"


def skip_unless_root():
    if os.geteuid() != 0:
        print("    skipped: needs root (batond as root, other users as nobody)")
        return True
    return False


def ctl(b, *args, sock=None):
    """bin/batonctl -s SOCK ARGS... as root; a CompletedProcess (text)."""
    return subprocess.run([bin_path("batonctl"), "-s", sock or b.control, *args],
                          capture_output=True, text=True, timeout=60)


def as_nobody(cmd):
    r = subprocess.run([*AS_NOBODY, "sh", "-c", cmd], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, (cmd, r.returncode, r.stderr)


def nobody_dir(td, name="app"):
    """A directory nobody may write, as an app user's runtime directory."""
    os.chmod(td.path, 0o755)
    d = os.path.join(td.path, name)
    os.mkdir(d, 0o755)
    os.chown(d, pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid)
    return d


def root_file(td):
    """A root-only file the attacker would like opened up."""
    p = td.file("secret", "root only\n", 0o600)
    os.chown(p, 0, 0)
    return p


def assert_untouched(path):
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode), oct(st.st_mode)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o600, 0, 0), \
        (oct(st.st_mode & 0o7777), st.st_uid, st.st_gid)
    assert open(path).read() == "root only\n"


def rewrite(b, old, new):
    text = open(b.config).read()
    assert old in text, (old, text)
    with open(b.config, "w") as f:
        f.write(text.replace(old, new, 1))


def metric(b, name):
    r = ctl(b, "metrics")
    assert r.returncode == 0, (r.returncode, r.stderr)
    m = re.search(r"^%s (\S+)$" % re.escape(name), r.stdout, re.M)
    assert m, (name, r.stdout)
    return float(m.group(1))


# ---------------------------------------------------------------- socket files

@test
def security_ctl_listener_symlink_swap_refused(td):
    if skip_unless_root():
        return
    app = nobody_dir(td)
    sock = os.path.join(app, "app.sock")
    target = root_file(td)
    b = Batond(td, web_config(f"""
[listener:app]
address = unix:{sock}
program = web
mode = 0660
""", workers=1), wait_ready=1)
    b.wait_log(r"listening listener=app ")
    st = os.lstat(sock)
    assert stat.S_ISSOCK(st.st_mode) and st.st_mode & 0o7777 == 0o660 and st.st_uid == 0
    assert http_get(sock)[0] == 200

    # nobody, who may write the directory, puts a symlink to a root-only
    # file where the socket was; the operator then opens the socket up
    as_nobody(f"rm -f {sock} && ln -s {target} {sock}")
    rewrite(b, "mode = 0660\n", "mode = 0666\nowner = nobody:nogroup\n")
    r = ctl(b, "reload")
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    line = (f'not changing socket file listener=app path={sock} '
            f'reason="is a symlink, not the socket batond bound"')
    assert_untouched(target)
    b.wait_log(re.escape(line), 10)
    assert http_get(("127.0.0.1", b.port("v4")))[0] == 200
    assert ctl(b, "status").returncode == 0
    # batond still counts the old settings as the socket's: the next
    # reload tries again, and refuses again
    r = ctl(b, "reload")
    assert r.returncode == 0 and "listener app: update" in r.stderr, (r.returncode, r.stdout, r.stderr)
    b.wait_log(re.escape(line), 10, count=2)
    assert_untouched(target)

    assert b.stop() == 0
    assert os.path.islink(sock) and os.readlink(sock) == target  # not batond's to remove
    assert_untouched(target)


@test
def security_ctl_control_socket_symlink_swap_refused(td):
    if skip_unless_root():
        return
    app = nobody_dir(td)
    path = os.path.join(app, "ctl.sock")
    moved = os.path.join(app, "moved.sock")
    target = root_file(td)
    b = Batond(td, web_config(workers=1).replace("[baton]\n", f"[baton]\ncontrol = {path}\n", 1),
               wait_ready=1)
    assert b.control == path
    st = os.lstat(path)
    assert stat.S_ISSOCK(st.st_mode) and st.st_mode & 0o7777 == 0o600 and st.st_uid == 0

    # nobody moves the socket aside (batond still answers there) and puts
    # a symlink to a root-only file in its place
    as_nobody(f"mv {path} {moved} && ln -s {target} {path}")
    rewrite(b, "[baton]\n", "[baton]\ncontrol_mode = 0666\ncontrol_group = nogroup\n")
    r = ctl(b, "reload", sock=moved)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert_untouched(target)
    b.wait_log(re.escape(f'not changing control socket file path={path} '
                         f'reason="is a symlink, not the socket batond bound"'), 10)
    st = os.lstat(moved)  # the real socket, unchanged too: it is not at the path
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o600, 0, 0), oct(st.st_mode)
    assert "control socket mode=0666" not in b.log()
    assert ctl(b, "status", sock=moved).returncode == 0
    assert http_get(("127.0.0.1", b.port("v4")))[0] == 200

    assert b.stop() == 0
    assert os.path.islink(path) and os.readlink(path) == target
    assert_untouched(target)


@test
def security_ctl_socket_modes_from_the_start(td):
    """Never more open than configured, not even between bind and chmod."""
    if skip_unless_root():
        return
    os.chmod(td.path, 0o755)
    sock = os.path.join(td.path, "app.sock")
    control = os.path.join(td.path, "ctl.sock")
    nobody = pwd.getpwnam("nobody").pw_uid
    nogroup = grp.getgrnam("nogroup").gr_gid
    seen = {sock: set(), control: set()}
    stop = threading.Event()

    def watch():  # every mode the files show while batond starts
        while not stop.is_set():
            for p in seen:
                try:
                    seen[p].add(os.lstat(p).st_mode & 0o7777)
                except FileNotFoundError:
                    pass

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        b = Batond(td, web_config(f"""
[listener:app]
address = unix:{sock}
program = web
mode = 0660
owner = nobody:nogroup
""", workers=1).replace("[baton]\n", f"[baton]\ncontrol = {control}\ncontrol_mode = 0660\n"
                        "control_group = nogroup\n", 1))
        b.wait_log(r"listening listener=app ")
        b.wait_log(r"control socket path=%s mode=0660 group=nogroup" % re.escape(control))
    finally:
        stop.set()
        watcher.join(10)
    st = os.lstat(sock)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o660, nobody, nogroup), \
        (oct(st.st_mode), st.st_uid, st.st_gid)
    st = os.lstat(control)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o660, 0, nogroup), \
        (oct(st.st_mode), st.st_uid, st.st_gid)
    for p, modes in seen.items():
        assert modes and modes <= {0, 0o660}, (p, sorted(map(oct, modes)))
    # batond's own umask is given back after each bind
    umask = os.umask(0o022)
    os.umask(umask)
    m = re.search(r"^Umask:\s+(\d+)$", open(f"/proc/{b.proc.pid}/status").read(), re.M)
    assert m and int(m.group(1), 8) == umask, (m and m.group(1), oct(umask))
    b.wait_ready(1)

    # a reload changes the sockets batond bound, as before
    rewrite(b, "mode = 0660\nowner = nobody:nogroup\n", "mode = 0640\nowner = root:root\n")
    rewrite(b, "control_mode = 0660\n", "control_mode = 0640\n")
    r = ctl(b, "reload")
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    b.wait_log(r"control socket mode=0640 path=%s" % re.escape(control), 10)
    st = os.lstat(sock)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o640, 0, 0), (oct(st.st_mode), st.st_uid)
    assert os.lstat(control).st_mode & 0o7777 == 0o640
    assert "not changing" not in b.log(), b.tail()
    assert http_get(sock)[0] == 200
    assert b.stop() == 0
    assert not os.path.exists(sock) and not os.path.exists(control)


# ---------------------------------------------------------------- client limits

HOLD = r"""
import json, os, socket, sys
path, n = sys.argv[1], int(sys.argv[2])
socks = []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    try:
        s.sendall(b"baton/1 text sta")  # half a request, then nothing
    except OSError:
        pass  # refused and closed before we wrote
    s.setblocking(False)  # with a timeout, recv would wait for it first
    socks.append(s)
print("connected", flush=True)
for cmd in sys.stdin:
    if cmd.strip() != "report":
        break
    held, answers = 0, []
    for s in socks:
        try:
            data = s.recv(4096, socket.MSG_PEEK)
        except BlockingIOError:
            held += 1
            continue
        answers.append(data.decode(errors="replace").strip())
    print(json.dumps({"held": held, "answers": answers}), flush=True)
"""


class Holder:
    """A client process as another uid holding n idle control connections."""

    def __init__(self, td, path, uid, gid, n):
        script = os.path.join(td.path, "hold.py")
        if not os.path.exists(script):
            td.file("hold.py", HOLD, 0o644)
        self.proc = subprocess.Popen([PYTHON, script, path, str(n)], user=uid, group=gid,
                                     extra_groups=[], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     bufsize=0)
        self.buf = b""
        assert self.line(10) == "connected"

    def line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            assert left > 0, "holder said nothing"
            if select.select([self.proc.stdout], [], [], left)[0]:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                assert chunk, "holder exited"
                self.buf += chunk
        text, self.buf = self.buf.split(b"\n", 1)
        return text.decode()

    def report(self, refused):
        """What it holds once at least `refused` answers came (batond logs
        a refusal just before it sends it)."""
        deadline = time.monotonic() + 3
        while True:
            self.proc.stdin.write(b"report\n")
            rep = json.loads(self.line(10))
            if len(rep["answers"]) >= refused or time.monotonic() > deadline:
                return rep
            time.sleep(0.02)

    def end(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


@test
def security_ctl_read_only_users_cannot_lock_out_root(td):
    if skip_unless_root():
        return
    os.chmod(td.path, 0o755)  # the holders reach the socket and their script
    nobody = pwd.getpwnam("nobody").pw_uid
    nogroup = grp.getgrnam("nogroup").gr_gid  # nobody's group: its members read only
    b = Batond(td, web_config(workers=1).replace(
        "[baton]\n", "[baton]\ncontrol_mode = 0660\ncontrol_group = nogroup\n", 1), wait_ready=1)
    holders = []
    try:
        t0 = time.monotonic()
        # nobody takes what it can: its share of 8, not the 12 it asks for
        holders.append(Holder(td, b.control, nobody, nogroup, 12))
        b.wait_log(r"control: too many clients, refused uid=%d pid=\d+ limit=uid max=8" % nobody, 5, 4)
        rep = holders[0].report(4)
        assert rep == {"held": 8, "answers": [BUSY] * 4}, rep
        r = ctl(b, "status")
        assert r.returncode == 0, (r.returncode, r.stderr)  # root gets in meanwhile
        # two more read-only uids (members by their group) fill the
        # read-only 24; a third gets nothing, root still gets in
        for uid in (60001, 60002):
            holders.append(Holder(td, b.control, uid, nogroup, 8))
        wait_until(lambda: metric(b, "baton_control_clients") == 25, 5,
                   "24 read-only clients held (and root's metrics)")
        holders.append(Holder(td, b.control, 60003, nogroup, 8))
        b.wait_log(r"control: too many clients, refused uid=60003 pid=\d+ limit=read_only max=24", 5, 8)
        reps = [h.report(n) for h, n in zip(holders[1:], (0, 0, 8))]
        assert reps == [{"held": 8, "answers": []}] * 2 + [{"held": 0, "answers": [BUSY] * 8}], reps
        r = ctl(b, "status")
        assert r.returncode == 0, (r.returncode, r.stderr)
        assert metric(b, "baton_control_refused_total{reason=\"busy\"}") == 12
        elapsed = time.monotonic() - t0
        assert elapsed < 5, f"took {elapsed:.1f} s: the first holder's 5 s ran out meanwhile"
        # and every idle one is cut 5 s after it connected
        wait_until(lambda: metric(b, "baton_control_clients") == 1, 15, "idle clients cut")
        print(f"    nobody held 8 of 12, two more uids 8 each, a third 0 of 8; root answered; {elapsed:.1f} s")
    finally:
        for h in holders:
            h.end()
    assert b.proc.poll() is None
    assert b.stop() == 0


@test
def security_ctl_trickling_client_cut_after_5s(td):
    """A request sent a byte at a time is still due 5 s after connecting."""
    b = Batond(td, web_config(workers=1), wait_ready=1)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(b.control)
        t0 = time.monotonic()
        s.sendall(b"baton/1 text sta")
        answer = b""
        while time.monotonic() - t0 < 9 and not answer:
            if select.select([s], [], [], 0.5)[0]:
                answer = s.recv(4096)
            else:
                s.sendall(b"t")
        elapsed = time.monotonic() - t0
    finally:
        s.close()
    assert answer == b"= 2 no complete request within 5 s\n", (answer, elapsed)
    assert 4.5 <= elapsed < 7, elapsed
    assert ctl(b, "status").returncode == 0
    assert b.stop() == 0


def connects_as_nobody(path):
    """Whether nobody (no groups) can connect to the Unix socket at path."""
    r = subprocess.run([*AS_NOBODY, PYTHON, "-c",
                        "import socket, sys; s = socket.socket(socket.AF_UNIX)\n"
                        "try: s.connect(sys.argv[1])\nexcept PermissionError: sys.exit(3)", path],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode in (0, 3), r.stderr
    return r.returncode == 0


@test
def security_ctl_owner_and_group_removed_by_reload_lose_their_access(td):
    """A reload that removes a Unix listener's `owner` or the control
    socket's `control_group` gives the files back the owner and group bind
    gave them: the user and group taken out of the config cannot connect
    any more (they kept both before).  Also after a reexec, which carries
    what bind gave."""
    from reexec_tests import NEXT
    if os.geteuid() != 0:
        skip("needs root: batond as root, the users it gives access to as nobody")
    os.chmod(td.path, 0o755)
    sock = os.path.join(td.path, "app.sock")
    listener = f"""
[listener:app]
address = unix:{sock}
program = web
mode = 0660
"""
    with_access = web_config(listener + "owner = nobody:nogroup\n", workers=1).replace(
        "[baton]\n", "[baton]\ncontrol_mode = 0660\ncontrol_group = nogroup\n", 1)
    without = web_config(listener, workers=1).replace("[baton]\n", "[baton]\ncontrol_mode = 0660\n", 1)
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    base = (os.geteuid(), os.getegid())  # what bind gives a file in td (no setgid bit)

    b = Batond(td, with_access, wait_ready=1)
    for reexec in (False, True):
        st, cst = os.lstat(sock), os.lstat(b.control)
        assert (st.st_uid, st.st_gid, cst.st_gid) == (nobody, nogroup, nogroup), (st, cst)
        assert connects_as_nobody(sock)
        if reexec:
            r = ctl(b, "reexec", "--binary", NEXT)
            assert r.returncode == 0, (r.stdout, r.stderr)
        with open(b.config, "w") as f:
            f.write(without.replace("@BIN@", BIN).replace(
                "[baton]\n", f"[baton]\ncontrol = {b.control}\n", 1))
        r = ctl(b, "reload")
        assert r.returncode == 0, (r.stdout, r.stderr)
        st, cst = os.lstat(sock), os.lstat(b.control)
        assert (st.st_uid, st.st_gid) == base and cst.st_gid == base[1], (st, cst, base)
        assert oct(st.st_mode & 0o777) == "0o660" and oct(cst.st_mode & 0o777) == "0o660"
        assert not connects_as_nobody(sock)
        assert not connects_as_nobody(b.control)
        # nobody's access back for the reexec round
        with open(b.config, "w") as f:
            f.write(with_access.replace("@BIN@", BIN).replace(
                "[baton]\n", f"[baton]\ncontrol = {b.control}\n", 1))
        r = ctl(b, "reload")
        assert r.returncode == 0, (r.stdout, r.stderr)
    status, _, body = http_get(sock)
    assert status == 200, body
    assert b.stop() == 0


FLOOD = r'''
import socket, sys
n, got = int(sys.argv[2]), 0
for _ in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    got += s.recv(200).startswith(b"= 4 permission denied")
    s.close()
print(got)
'''


@test
def security_ctl_refused_clients_cannot_flood_the_log(td):
    """Anyone who may connect to the control socket can be refused as
    often as they like: batond logs at most 20 refusals per 10 s, counts
    every one in its metrics, says how many it left out when the window
    ends (with no further refusal needed), and answers root throughout.  A
    reexec within the window neither opens a new one nor forgets what was
    left out.  What a window left out when batond stops is said then."""
    if os.geteuid() != 0:
        skip("needs root (batond as root, the flood as nobody)")
    os.chmod(td.path, 0o755)  # nobody reaches the socket and the script
    b = Batond(td, web_config(workers=1).replace("[baton]\n", "[baton]\ncontrol_mode = 0666\n", 1),
               wait_ready=1)
    script = td.file("flood.py", FLOOD, 0o644)
    line = r"control: permission denied uid=%d " % pwd.getpwnam("nobody").pw_uid
    summary = (r"control: (\d+) more refused clients not logged \(at most 20 lines per 10 s\) "
               r"refused_denied_total=(\d+) refused_busy_total=0")

    def flood(n):
        r = subprocess.run([*AS_NOBODY, PYTHON, script, b.control, str(n)], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0 and r.stdout.strip() == str(n), (r.returncode, r.stdout, r.stderr)

    flood(300)
    assert ctl(b, "status").returncode == 0  # root, meanwhile
    wait_until(lambda: metric(b, 'baton_control_refused_total{reason="denied"}') == 300, 5,
               "300 refusals counted")
    logged = len(re.findall(line, b.log()))
    assert logged == 20, (logged, b.tail())
    assert "more refused clients not logged" not in b.log()
    r = ctl(b, "reexec")
    assert r.returncode == 0, (r.stdout, r.stderr)
    flood(5)  # still the same window after the exec: counted, not logged
    assert len(re.findall(line, b.log())) == 20, b.tail()
    # The window ends (10 s after its first refusal): what it left out is
    # said then, by the image the reexec started, with no refusal to prompt it.
    m = b.wait_log(summary, 20)
    assert m[0].group(1) == "285" and m[0].group(2) == "305", m[0].group(0)
    # The next refusal opens a new window: logged, and nothing said twice.
    flood(1)
    b.wait_log(line, 5, 21)
    # 25 more in that window: 19 logged, 6 left out, said as batond stops.
    flood(25)
    wait_until(lambda: len(re.findall(line, b.log())) == 40, 5, "40 refusal lines")
    assert len(re.findall(summary, b.log())) == 1, b.tail()
    assert b.stop() == 0
    said = re.findall(summary, b.log())
    assert said == [("285", "305"), ("6", "331")], said
    print("    331 refusals across a reexec: 40 lines; 285 left out said at the window's end, "
          "6 as batond stopped")
