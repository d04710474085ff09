"""batch_scheduling: batond runs as SCHED_BATCH and its workers as
SCHED_OTHER; a reload switches it, a reexec keeps it (and what the workers
must get back), and a policy the operator chose is left alone.

The policy of a process is field 41 of /proc/PID/stat (sched(7)).
"""
import os
import re
import signal
import subprocess

from harness import Batond, bin_path, http_get, test, wait_until, web_config
from upgrade_tests import ctl

SCHED_OTHER, SCHED_BATCH, SCHED_IDLE = 0, 3, 5
NEXT = os.path.join(os.path.dirname(bin_path("batond")), "test", "batond-next")


def policy(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(") ", 1)[1].split()[38])  # field 41


def ready_pids(b):
    return sorted(b.ready_pids("web"))


def replace_a_worker(b):
    """Kill one worker; the pid of the one batond starts in its place."""
    before = set(b.ready_pids("web"))
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in b.ready_pids("web") and
               len(set(b.ready_pids("web")) - before) == 1, 15, "a replacement worker")
    return (set(b.ready_pids("web")) - before).pop()


def set_key(b, value):
    """Rewrite batch_scheduling in batond's config file (None: no such line)."""
    with open(b.config) as f:
        text = re.sub(r"^batch_scheduling = .*\n", "", f.read(), flags=re.M)
    if value is not None:
        text = text.replace("[baton]\n", f"[baton]\nbatch_scheduling = {value}\n", 1)
    with open(b.config, "w") as f:
        f.write(text)


def served(b):
    status, _, body = http_get(("127.0.0.1", b.port("v4")))
    return status == 200 and body.startswith(b"hello")


@test
def batch_scheduling_default_reload_and_bad_values(td):
    """By default batond is SCHED_BATCH and every worker, first or restarted,
    SCHED_OTHER.  A reload switches batond to SCHED_OTHER and back and says
    so; a bad value is refused with file:line and changes nothing."""
    b = Batond(td, web_config(), wait_ready=2)
    assert policy(b.proc.pid) == SCHED_BATCH
    b.wait_log(r"batch_scheduling: batond runs as SCHED_BATCH, its workers as SCHED_OTHER")
    assert [policy(p) for p in ready_pids(b)] == [SCHED_OTHER] * 2
    assert policy(replace_a_worker(b)) == SCHED_OTHER
    assert served(b)

    set_key(b, "no")
    code, out, err = ctl(b, "reload", "--dry-run")
    assert code == 0 and "batch_scheduling: yes -> no" in out + err, (out, err)
    assert policy(b.proc.pid) == SCHED_BATCH  # a dry run changes nothing
    code, out, err = ctl(b, "reload")
    assert code == 0 and "batch_scheduling: yes -> no" in out + err, (out, err)
    assert policy(b.proc.pid) == SCHED_OTHER
    b.wait_log(r"batch_scheduling: off, batond runs as SCHED_OTHER")
    assert policy(replace_a_worker(b)) == SCHED_OTHER

    for bad in ("sometimes", "", "1 2"):
        set_key(b, bad)
        code, out, err = ctl(b, "reload")
        line = [x.rstrip() for x in open(b.config)].index(f"batch_scheduling = {bad}".rstrip()) + 1
        assert code == 1 and f"{b.config}:{line}:" in out + err and "nothing changed" in out + err, \
            (bad, out, err)
        assert policy(b.proc.pid) == SCHED_OTHER
        r = subprocess.run([bin_path("batond"), "-t", "-c", b.config], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 1 and f"{b.config}:{line}:" in r.stderr, r.stderr

    set_key(b, None)  # the default again
    code, out, err = ctl(b, "reload")
    assert code == 0 and "batch_scheduling: no -> yes" in out + err, (out, err)
    assert policy(b.proc.pid) == SCHED_BATCH
    code, out, err = ctl(b, "scale", "web", "3")
    assert code == 0, (out, err)
    b.wait_ready(3)
    assert [policy(p) for p in ready_pids(b)] == [SCHED_OTHER] * 3
    assert served(b)
    assert b.stop() == 0


@test
def batch_scheduling_keeps_a_policy_the_operator_chose(td):
    """Started under chrt, batond keeps the operator's policy and so do its
    workers (they inherit it, as without baton): SCHED_IDLE and SCHED_BATCH."""
    for flag, want, name in (("--idle", SCHED_IDLE, "SCHED_IDLE"), ("--batch", SCHED_BATCH, "SCHED_BATCH")):
        b = Batond(td, web_config(), wrapper=["chrt", flag, "0"], wait_ready=2)
        assert policy(b.proc.pid) == want, flag
        b.wait_log(rf"batch_scheduling: batond started with {name}; keeping it \(and its workers\)")
        assert [policy(p) for p in ready_pids(b)] == [want] * 2, flag
        assert policy(replace_a_worker(b)) == want, flag
        assert served(b)
        assert b.stop() == 0
        os.rename(b.logpath, f"{b.logpath}.{name}")


@test
def batch_scheduling_crosses_a_reexec(td):
    """After a reexec batond is still SCHED_BATCH and a worker it starts is
    SCHED_OTHER (the new image knows the policy the first one started with);
    switched off by a reload, a reexec leaves it off."""
    b = Batond(td, web_config(), wait_ready=2)
    assert policy(b.proc.pid) == SCHED_BATCH
    code, out, err = ctl(b, "reexec", "--binary", NEXT)
    assert code == 0, (out, err)
    assert policy(b.proc.pid) == SCHED_BATCH
    assert policy(replace_a_worker(b)) == SCHED_OTHER
    code, out, err = ctl(b, "reload", "--dry-run")
    assert code == 0 and "nothing to change" in out + err, (out, err)

    set_key(b, "no")
    code, out, err = ctl(b, "reload")
    assert code == 0 and "batch_scheduling: yes -> no" in out + err, (out, err)
    code, out, err = ctl(b, "reexec", "--binary", NEXT)
    assert code == 0, (out, err)
    assert policy(b.proc.pid) == SCHED_OTHER
    assert policy(replace_a_worker(b)) == SCHED_OTHER
    assert served(b)
    assert b.stop() == 0
