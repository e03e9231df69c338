"""`create` without copying the runtime: the init shares the runtime's memory, sets
itself up entirely, then execs the waiter (linux/trampoline.py, birth.py _prepare_waiter),
which waits for `start`, loads a noNewPrivileges filter and execs the entrypoint.
The container must get what it gets from a forked init that waits in Python."""
import json
import os
import subprocess
import sys
import time

import pytest

from ocirun import kernel
from ocirun.linux import trampoline
from support import OCIRUN, REPO, runtime_exe

pytestmark = pytest.mark.skipif(
    kernel.clone_vm is None or not trampoline.waiter_supported(),
    reason="the waiter needs kernel.clone_vm (the C extension, x86_64, glibc) and its x86_64 program")

# HUP INT QUIT USR1 USR2 ALRM TERM: bit n-1 for signal n
WAIT_SIGNALS_MASK = 0x6a07
PROBE = ("echo pid=$$; umask; env | sort; ulimit -a; cat /proc/self/cgroup; "
         "grep -E '^(Uid|Gid|Groups|Cap|NoNewPrivs|Seccomp|Sig(Blk|Ign|Cgt))' /proc/self/status; "
         "cut -d' ' -f5,6 /proc/self/mountinfo; ls -l /proc/self/fd/ | grep -c fifo")


def _status(pid):
    out = {"exe": os.readlink(f"/proc/{pid}/exe")}
    for line in open(f"/proc/{pid}/status"):
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def _wait_stopped(bundle, cid, timeout=5):
    deadline = time.time() + timeout
    while bundle.state(cid)["status"] != "stopped":
        assert time.time() < deadline, "the container did not stop"
        time.sleep(0.02)


def _create_start(bundle, script=PROBE):
    """create, look at the waiting init, start; -> (its /proc status while created,
    the container's output with its id taken out)."""
    bundle.config["process"]["args"] = ["sh", "-c", f"({script}) > /probe.out 2>&1"]
    cid, r = bundle.create()
    assert r.returncode == 0, r.stderr
    waiting = _status(bundle.state(cid)["pid"])
    r = bundle.ocirun("start", cid)
    assert r.returncode == 0, r.stderr
    _wait_stopped(bundle, cid)
    assert bundle.ocirun("delete", cid).returncode == 0
    with open(f"{bundle.rootfs}/probe.out") as f:
        return waiting, f.read().replace(cid, "ID")


def test_the_created_init_is_the_waiter(bundle):
    waiting, out = _create_start(bundle)
    assert waiting["exe"].startswith("/memfd:ocirun-exec")
    assert int(waiting["SigCgt"], 16) == WAIT_SIGNALS_MASK
    assert int(waiting["SigBlk"], 16) == 0
    # its privileges are the process's already
    for key in ("Uid", "Gid", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs"):
        assert f"{key}:\t{waiting[key]}" in out, key
    assert out.splitlines()[-1] == "0"  # the exec fifo did not reach the container


def test_the_container_gets_what_a_forked_init_gives(bundle):
    via_waiter = _create_start(bundle)
    bundle.config["process"]["oomScoreAdj"] = 0  # (the init then forks: create.py _can_share_memory)
    bundle.write()
    via_fork = _create_start(bundle)
    assert os.path.realpath(via_fork[0]["exe"]) == runtime_exe()
    assert via_waiter[1] == via_fork[1]


@pytest.mark.parametrize("nnp", [True, False])
def test_seccomp_with_and_without_no_new_privileges(bundle, nnp):
    """With noNewPrivileges the waiter loads the filter after `start`, right before the
    execve; without, the init loads it before dropping capabilities, as before."""
    bundle.config["process"]["noNewPrivileges"] = nnp
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    waiting, out = _create_start(bundle, "mkdir /made && echo made; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status")
    assert waiting["Seccomp"] == ("0" if nnp else "2")
    assert waiting["NoNewPrivs"] == ("1" if nnp else "0")
    assert "made" not in out.split() and "Operation not permitted" in out
    assert "Seccomp:\t2" in out and f"NoNewPrivs:\t{int(nnp)}" in out


@pytest.mark.parametrize("sig", ["TERM", "HUP", "KILL"])
def test_kill_while_created(bundle, sig):
    bundle.config["process"]["args"] = ["sleep", "60"]
    cid, r = bundle.create()
    assert r.returncode == 0, r.stderr
    assert _status(bundle.state(cid)["pid"])["exe"].startswith("/memfd:ocirun-exec")
    assert bundle.ocirun("kill", cid, sig).returncode == 0
    _wait_stopped(bundle, cid)
    assert bundle.ocirun("start", cid).returncode != 0
    assert bundle.ocirun("delete", cid).returncode == 0


def test_preserved_fds_pass_through_the_waiter(bundle, tmp_path):
    secret = tmp_path / "passed"
    secret.write_text("through the waiter\n")
    bundle.config["process"]["args"] = ["sh", "-c", "cat <&3 > /probe.out; ls /proc/self/fd >> /probe.out"]
    bundle.write()
    cid = bundle.new_id()
    # fd 3 opened by a shell in the child (ours may be the test runner's); stderr a
    # file, not a pipe: the created init keeps it until the container exits
    with open(tmp_path / "create.err", "w+") as err:
        r = subprocess.run(["sh", "-c", 'exec 3<"$1"; shift; exec "$@"', "sh", str(secret),
                            OCIRUN, "--root", bundle.root, "create", "--preserve-fds", "1",
                            "-b", bundle.path, cid], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=err, timeout=60)
        err.seek(0)
        assert r.returncode == 0, err.read()
    assert bundle.ocirun("start", cid).returncode == 0
    _wait_stopped(bundle, cid)
    out = open(f"{bundle.rootfs}/probe.out").read().split()
    assert out[:3] == ["through", "the", "waiter"]
    assert out[3:] == ["0", "1", "2", "3"] or out[3:] == ["0", "1", "2", "3", "4"], out  # (+ ls's own)


LIBRARY = r"""
import os, sys, threading
sys.path.insert(0, sys.argv[1])
from ocirun.api import Runtime
from ocirun.errors import OciError
bundle, root, threaded = sys.argv[2], sys.argv[3], sys.argv[4] == "threaded"
if threaded:  # clone_vm refuses a process that has had a second thread: the init forks
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
rt = Runtime(root=root)
before = sorted(os.listdir("/proc/self/fd"))
made = failed = 0
for i in range(12):
    cfg = bundle + ("/bad.json" if i % 3 == 2 else "/config.json")
    try:
        c = rt.create(f"lib{os.getpid()}x{i}", bundle, config=cfg)
    except OciError:
        failed += 1
        continue
    waiter = os.readlink(f"/proc/{c.pid}/exe").startswith("/memfd:ocirun-exec")
    assert waiter != threaded, i
    c.kill("KILL")
    c.delete(force=True)
    made += 1
print(made, failed, sorted(os.listdir("/proc/self/fd")) == before)
"""


@pytest.mark.parametrize("threaded", [False, True])
def test_library_creates_leave_no_fd(bundle, threaded):
    """The waiter's memfd is closed after each create, failed ones included (an init
    that fails in its set-up, before the waiter), and when clone_vm is refused and the
    init forks instead."""
    bundle.config["process"]["args"] = ["sleep", "60"]
    bundle.write()
    bad = json.loads(json.dumps(bundle.config))
    bad["process"]["args"] = ["/no/such/program"]
    with open(f"{bundle.path}/bad.json", "w") as f:
        json.dump(bad, f)
    r = subprocess.run([sys.executable, "-c", LIBRARY, REPO, bundle.path, bundle.root,
                        "threaded" if threaded else "plain"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["8", "4", "True"], r.stdout + r.stderr


def test_a_process_of_another_user_forks(bundle):
    """After its setresuid the init could be signalled by any host process of that uid
    (SIGSTOP would hold the runtime in clone_vm): a non-root process forks."""
    bundle.config["process"]["user"] = {"uid": 4243, "gid": 4243}
    bundle.config["process"]["args"] = ["sleep", "60"]
    cid, r = bundle.create()
    assert r.returncode == 0, r.stderr
    pid = bundle.state(cid)["pid"]
    assert os.path.realpath(_status(pid)["exe"]) == runtime_exe()
    assert _status(pid)["Uid"].split()[0] == "0"  # root until `start`, as before
    assert bundle.ocirun("delete", "-f", cid).returncode == 0


def test_a_failed_execve_of_the_waiter_fails_create(bundle):
    """The waiter's execve comes after READY: its failure must still fail `create`
    (here a profile without noNewPrivileges, loaded before it, refuses the execveat of
    the waiter's argv, not the call create's check of the profile tries)."""
    bundle.config["process"]["noNewPrivileges"] = False
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["execveat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                      "args": [{"index": 2, "value": 0, "op": "SCMP_CMP_NE"}]}]}
    cid, r = bundle.create()
    assert r.returncode != 0
    assert "Operation not permitted" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert bundle.ocirun("state", cid).returncode != 0  # nothing left behind


def test_poststart_runs_after_the_entrypoint_execve(bundle, tmp_path):
    """`start` runs poststart hooks once the process is the user's program, not while it
    is still the waiter (held stopped here until `start` has written its byte)."""
    import signal
    out = tmp_path / "exe"
    hook = tmp_path / "hook.py"
    hook.write_text("import json, os, sys\n"
                    f"with open({str(out)!r}, 'a') as f:\n"
                    "    f.write(os.readlink('/proc/%d/exe' % json.load(sys.stdin)['pid']) + '\\n')\n")
    bundle.config["hooks"] = {"poststart": [{"path": sys.executable, "args": ["python3", str(hook)]}]}
    bundle.config["process"]["args"] = ["sleep", "60"]
    cid, r = bundle.create()
    assert r.returncode == 0, r.stderr
    pid = bundle.state(cid)["pid"]
    assert _status(pid)["exe"].startswith("/memfd:ocirun-exec")
    os.kill(pid, signal.SIGSTOP)
    start = subprocess.Popen([OCIRUN, "--root", bundle.root, "start", cid],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        assert not out.exists(), out.read_text()  # not before the execve
        os.kill(pid, signal.SIGCONT)
        assert start.wait(10) == 0
    finally:
        os.kill(pid, signal.SIGCONT)
        start.wait(10)
        bundle.ocirun("delete", "-f", cid)
    assert out.read_text().split() == ["/bin/busybox"]


@pytest.mark.parametrize("refused", [
    {"names": ["prctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
     "args": [{"index": 0, "value": 4, "op": "SCMP_CMP_EQ"}]},   # PR_SET_DUMPABLE
    {"names": ["rt_sigaction"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
], ids=["dumpable", "sigaction"])
def test_a_waiter_that_cannot_protect_itself_exits(bundle, refused):
    """Without noNewPrivileges the filter is in force in the waiter: where it refuses
    the waiter's non-dumpable flag or its handlers, the waiter exits (127) instead of
    waiting unprotected, and the entrypoint never runs."""
    bundle.config["process"]["noNewPrivileges"] = False
    bundle.config["process"]["args"] = ["sh", "-c", "echo ran > /ran"]
    bundle.config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [refused]}
    cid, r = bundle.create()
    assert r.returncode == 0, r.stderr
    _wait_stopped(bundle, cid)
    assert bundle.ocirun("start", cid).returncode != 0
    assert bundle.ocirun("delete", cid).returncode == 0
    assert not os.path.exists(f"{bundle.rootfs}/ran")


PENDING = r"""
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from ocirun.kernel import KERNEL
from ocirun.linux import trampoline
r, w = os.pipe()
os.set_inheritable(r, True)
fd = trampoline.prepare(KERNEL, trampoline.waiter(r))
pid = os.fork()
if pid == 0:
    # as clone_vm's C side leaves it for the waiter: every signal blocked, and a TERM
    # sent before the waiter had its handlers pending
    signal.pthread_sigmask(signal.SIG_SETMASK, range(1, signal.NSIG))
    os.kill(os.getpid(), signal.SIGTERM)
    os.execve(fd, [b"ocirun-exec", b"/bin/true", b"true"], {})
os.close(r)
signal.signal(signal.SIGALRM, lambda *a: os.kill(pid, signal.SIGKILL))
signal.alarm(5)
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_a_signal_pending_before_the_waiters_handlers_is_delivered():
    """The waiter starts with every signal blocked and unblocks them once its handlers
    are in place: a TERM sent in between is delivered then (as pid 1 of its namespace,
    with no handler yet, it would have been ignored)."""
    r = subprocess.run([sys.executable, "-c", PENDING, REPO], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["143"], r.stdout


KEEP_MASK = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
from ocirun import kernel
from ocirun.linux import trampoline
keep = sys.argv[2] == "keep"
r, w = os.pipe()
req = trampoline.request(None, "/bin/grep", ["grep", "SigBlk", "/proc/self/status"], [], w,
                         keep_mask=keep)
pid = kernel.clone_vm(lambda: req, -1, w)
os.waitpid(pid, 0)
"""


@pytest.mark.parametrize("keep", [True, False])
def test_clone_vm_keeps_signals_blocked_for_the_waiter_only(keep):
    """_sys.c vm_exec: an exec request marked keep_mask (the waiter's) execs with every
    signal still blocked; any other with none blocked."""
    r = subprocess.run([sys.executable, "-c", KEEP_MASK, REPO, "keep" if keep else "empty"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    name, mask = r.stdout.split()
    assert name == "SigBlk:" and (int(mask, 16) != 0) == keep, r.stdout
