"""`run` without copying the runtime (kernel.clone_vm in _sys.c, create.py _clone_vm).

The init runs in the runtime's memory up to its execve while the runtime waits. So
both sides are checked: the container gets exactly what a forked init gives it, and
the runtime's process comes back intact (signal handlers, dumpable flag, gc, fds,
memory) through many runs and through the ways an init can fail. The library runs
in a fresh interpreter per test: clone_vm refuses a process that has ever had a
second thread, which pytest's may have."""
import json
import os
import subprocess
import sys

import pytest

from ocirun import kernel
from support import REPO

pytestmark = pytest.mark.skipif(kernel.clone_vm is None,
                                reason="kernel.clone_vm needs the C extension on x86_64 with glibc")

# What the container's process sees of itself: everything a different start path
# could get wrong (credentials, capabilities, seccomp, signal mask and dispositions,
# cgroups, mounts, limits, umask, environment, pid).
PROBE = ("echo pid=$$; umask; env | sort; ulimit -a; cat /proc/self/cgroup; "
         "grep -E '^(Uid|Gid|Groups|Cap|NoNewPrivs|Seccomp|Sig(Blk|Ign))' /proc/self/status; "
         "cut -d' ' -f5,6 /proc/self/mountinfo; stat -c '%n %F %a %u:%g %t:%T' /dev/* /dev/.*")

SCRIPT = r"""
import gc, json, os, signal, sys
sys.path.insert(0, sys.argv[1])
from ocirun import kernel
from ocirun.api import Runtime
from ocirun.errors import OciError

bundle, root, mode, runs = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
used = []
real = kernel.clone_vm
if mode == "fork":
    kernel.clone_vm = None
else:
    def counting(*args):
        pid = real(*args)
        used.append(pid)
        return pid
    kernel.clone_vm = counting


def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return line.split()[1]


def fds():
    return sorted(os.listdir("/proc/self/fd"))


def on_usr1(sig, frame):
    pass


signal.signal(signal.SIGUSR1, on_usr1)
rt = Runtime(root=root)
cfg_path = bundle + "/config.json"
cfg = json.load(open(cfg_path))


def run_with(args, cid, cwd="/", seccomp=None):
    cfg["process"]["args"] = args
    cfg["process"]["cwd"] = cwd
    cfg["linux"].pop("seccomp", None)
    if seccomp:
        cfg["linux"]["seccomp"] = seccomp
    json.dump(cfg, open(cfg_path, "w"))
    out = os.open(bundle + "/out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    saved = os.dup(1)
    os.dup2(out, 1)
    try:
        return rt.run(cid, bundle)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(out)


report = {}
report["code"] = run_with(["sh", "-c", sys.argv[6]], "probe")
report["probe"] = open(bundle + "/out").read()
fds0 = fds()
errors = []
rss = []
for i in range(runs):
    assert run_with(["true"], f"r{i}") == 0
    if i == runs // 4:
        rss.append(int(status("VmRSS")))
rss.append(int(status("VmRSS")))
# the init fails before its execve (cwd), at its execve (refused by seccomp for the
# argv it has, not for the call create's check tries), and the program it execs is not
# one (the memfd program's execve fails: exit 127); a profile refusing execveat
# outright is refused before anything starts
late_no_exec = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
    {"names": ["execveat"], "action": "SCMP_ACT_ERRNO",
     "args": [{"index": 2, "value": 0, "op": "SCMP_CMP_NE"}]}]}
no_exec = {"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [{"names": ["execve", "execveat"], "action": "SCMP_ACT_ERRNO"}]}
for cid, args, cwd, sc in (("e1", ["true"], "/etc/passwd", None),
                           ("e2", ["true"], "/", late_no_exec),
                           ("e3", ["/bad"], "/", None), ("e4", ["true"], "/", no_exec)):
    for _ in range(20):
        try:
            errors.append(f"exit {run_with(args, cid, cwd, sc)}")
        except OciError as e:
            errors.append(str(e))
gc.collect()
report.update(
    used=len(used), errors=sorted(set(errors)), rss_growth_kib=rss[1] - rss[0],
    fds_same=fds() == fds0, gc_enabled=gc.isenabled(),
    usr1=signal.getsignal(signal.SIGUSR1) is on_usr1,
    sigint=signal.getsignal(signal.SIGINT) is signal.default_int_handler,
    sigpipe=signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN,
    dumpable=kernel.prctl(3),
    left=[n for n in os.listdir(root) if n != ".cache"] if os.path.isdir(root) else [])
print(json.dumps(report))
"""


def _library(bundle, mode, runs=10):
    bundle.write()
    with open(f"{bundle.path}/rootfs/bad", "w") as f:
        f.write("not a program\n")
    os.chmod(f"{bundle.path}/rootfs/bad", 0o755)
    r = subprocess.run([sys.executable, "-c", SCRIPT, REPO, bundle.path, bundle.root, mode,
                        str(runs), PROBE], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


def test_container_sees_the_same_as_with_fork(bundle):
    vm = _library(bundle, "vm", runs=1)
    fork = _library(bundle, "fork", runs=1)
    assert vm["used"] > 0, "clone_vm was not used"
    assert fork["used"] == 0
    assert vm["code"] == fork["code"] == 0
    assert "pid=1\n" in vm["probe"]
    assert vm["probe"] == fork["probe"]


def test_the_runtime_comes_back_intact(bundle):
    """Hundreds of runs and failed runs in one process: our handlers, the dumpable
    flag, gc, fds are ours again after each; memory does not grow per run."""
    r = _library(bundle, "vm", runs=300)
    assert r["used"] >= 300
    assert r["errors"] == [
        "exec `true`: Operation not permitted",
        "exit 127",
        "linux.seccomp: refuses execveat(2), which starts the container's process from a "
        "sealed copy of its exec program (CVE-2019-5736); without process.noNewPrivileges "
        "the filter must be loaded before that execveat: allow execveat",
        "process.cwd `/etc/passwd`: ENOTDIR (Not a directory)",
    ]
    assert r["usr1"] and r["sigint"] and r["sigpipe"]
    assert r["dumpable"] == 1
    assert r["gc_enabled"]
    assert r["fds_same"]
    assert r["left"] == []
    assert r["rss_growth_kib"] < 1024, r


def test_failures_read_the_same_as_with_fork(bundle):
    assert _library(bundle, "vm", runs=1)["errors"] == _library(bundle, "fork", runs=1)["errors"]


def test_cli_run_whose_execve_fails_reports_it_and_leaves_nothing(bundle):
    # (execveat refused for the init's argv, not for the call create's check tries)
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["execveat"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 2, "value": 0, "op": "SCMP_CMP_NE"}]}]}
    r = bundle.run(["true"])
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == ["ocirun: exec `true`: Operation not permitted"], r.stderr
    assert not os.path.isdir(bundle.root) or [
        n for n in os.listdir(bundle.root) if not n.startswith(".")] == []


def test_a_detached_init_that_exits_at_once_reads_stopped(bundle):
    """run -d of a program that exits before the runtime writes the state (likely:
    the runtime resumes only after the init's execve): its start time is still read
    from the unreaped zombie, so `state` says stopped, never `running` forever."""
    import time
    for _ in range(10):
        cid = bundle.detach(["true"])
        deadline = time.time() + 5
        while bundle.state(cid)["status"] != "stopped" and time.time() < deadline:
            time.sleep(0.02)
        assert bundle.state(cid)["status"] == "stopped"
        assert bundle.state(cid)["pid"] == 0
        assert bundle.ocirun("delete", cid).returncode == 0


CHILD_FAULT = r"""
import json, os, signal, subprocess, sys
sys.path.insert(0, sys.argv[1])
from ocirun import kernel
from ocirun.api import Runtime
from ocirun.errors import OciError
from ocirun.linux import init

bundle, root, what = sys.argv[2], sys.argv[3], sys.argv[4]
seen = []
# SIGWINCH: a signal the init does not reset before its execve (as pid 1 of its pid
# namespace it only receives signals it has a handler for)
signal.signal(signal.SIGWINCH, lambda sig, frame: seen.append(os.getpid()))
real_join = init.join_cgroups
# the killer: SIGKILL every child of ours but itself (from outside the init's pid
# namespace, whose init cannot be killed from inside)
KILLER = ("import os, sys, time\n"
          "time.sleep(0.3)\n"
          "for p in os.listdir('/proc'):\n"
          "    try:\n"
          "        st = open('/proc/%s/stat' % p).read().rpartition(')')[2].split()\n"
          "        if p.isdigit() and int(p) != os.getpid() and st[1] == sys.argv[1]:\n"
          "            os.kill(int(p), 9)\n"
          "    except (OSError, IndexError):\n"
          "        pass\n")


def fault(k, dirs):
    # runs in the container init, first thing: as if a signal came during its
    # set-up, or a SIGKILL while it waits in a blocking call
    real_join(k, dirs)
    if what == "signal":
        os.kill(os.getpid(), signal.SIGWINCH)
    else:
        r, w = os.pipe()
        os.read(r, 1)  # releases the GIL, and never returns


init.join_cgroups = fault
used = []
real = kernel.clone_vm
kernel.clone_vm = lambda *a: used.append(1) or real(*a)
rt = Runtime(root=root)
out = {"parent": os.getpid()}
if what == "kill":  # started before: the runtime is suspended while its init runs
    killer = subprocess.Popen([sys.executable, "-c", KILLER, str(os.getpid())])
try:
    out["code"] = rt.run("f1", bundle)
except OciError as e:
    out["error"] = str(e)
if what == "kill":
    killer.wait()
init.join_cgroups = real_join
import gc
gc.collect()
out["again"] = rt.run("f2", bundle)  # the runtime goes on as before
out["seen"] = seen
out["used"] = len(used)
print(json.dumps(out))
"""


def _child_fault(bundle, what):
    bundle.config["process"]["args"] = ["true"]
    bundle.write()
    r = subprocess.run([sys.executable, "-c", CHILD_FAULT, REPO, bundle.path, bundle.root, what],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (r.returncode, r.stderr)
    return json.loads(r.stdout.splitlines()[-1])


def test_a_signal_during_set_up_never_runs_our_handler_in_the_init(bundle):
    """The init runs its Python part with every signal blocked: a handler of the
    runtime's (here SIGWINCH's, which records the pid it runs in) must not run in the
    init's process; the signal waits for the execve and the runtime's interpreter
    handles the flag it left."""
    r = _child_fault(bundle, "signal")
    assert r["used"] >= 1
    assert r["code"] == 0 and r["again"] == 0
    assert r["seen"] and set(r["seen"]) == {r["parent"]}, r


def test_an_init_killed_in_a_blocking_call_leaves_the_runtime_working(bundle):
    """SIGKILL cannot be blocked: an init killed while it had released the GIL
    leaves the runtime to take it back, report one line, and run the next one."""
    r = _child_fault(bundle, "kill")
    assert r["used"] >= 1
    assert r.get("error") == "container init exited during setup", r
    assert r["again"] == 0
