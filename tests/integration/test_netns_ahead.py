"""The container's network namespace made ahead by a helper (_sys.c netns_ahead,
create.py NetnsAhead): the container gets a namespace of its own, as when its init
unshared it; one that a user namespace must own is still unshared by the init; and
a create that fails after the helper started leaves no fd and no process behind."""
import json
import os
import subprocess
import sys

import pytest

from ocirun import kernel
from support import REPO

pytestmark = pytest.mark.skipif(kernel.netns_ahead is None,
                                reason="kernel.netns_ahead needs the C extension on x86_64")

SCRIPT = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
from ocirun import kernel
from ocirun.api import Runtime
from ocirun.errors import OciError

bundle, root = sys.argv[2], sys.argv[3]
started = []
real = kernel.netns_ahead
def counting():
    started.append(1)
    return real()
kernel.netns_ahead = counting
cfg_path = bundle + "/config.json"
base = json.load(open(cfg_path))
base["linux"]["resources"].pop("pids", None)  # (cgroups are disabled: no limit can apply)
rt = Runtime(root=root, cgroup_manager="disabled")


def fds():
    return sorted(os.listdir("/proc/self/fd"))


def children():
    try:
        return os.waitpid(-1, os.WNOHANG | 0x40000000)  # __WALL: the helper has no exit signal
    except ChildProcessError:
        return None


def attempt(cid, change):
    cfg = json.loads(json.dumps(base))
    change(cfg)
    json.dump(cfg, open(cfg_path, "w"))
    out = os.open(bundle + "/out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    saved = os.dup(1)
    os.dup2(out, 1)
    try:
        return str(rt.run(cid, bundle))
    except OciError as e:
        return str(e)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(out)


def args(*a):
    return lambda c: c["process"].update(args=list(a))


report = {"own": os.readlink("/proc/self/ns/net")}
report["probe"] = attempt("probe", args("sh", "-c", "readlink /proc/self/ns/net; cat /proc/net/dev"))
report["probe_out"] = open(bundle + "/out").read()
report["started"] = len(started)
fds0 = fds()
bad_profile = lambda c: c["linux"].update(seccomp={"defaultAction": "SCMP_ACT_NOPE"})
bad_cwd = lambda c: c["process"].update(cwd="/etc/passwd")  # a file
bad_config = lambda c: c["process"].update(args=[])
errors = []
os.makedirs(root, exist_ok=True)
for i in range(5):
    errors.append(attempt(f"v{i}", bad_config))        # fails validation: no helper
    errors.append(attempt(f"p{i}", bad_profile))       # fails validation too
    os.mkdir(f"{root}/x{i}")                           # fails before the init exists,
    errors.append(attempt(f"x{i}", args("true")))      # after the helper started
    os.rmdir(f"{root}/x{i}")
    errors.append(attempt(f"c{i}", bad_cwd))           # the init fails
    errors.append(attempt(f"ok{i}", args("true")))
report.update(errors=sorted(set(errors)), started_all=len(started), fds_same=fds() == fds0,
              children=children())
print(json.dumps(report))
"""


def _library(bundle):
    bundle.write()
    r = subprocess.run([sys.executable, "-c", SCRIPT, REPO, bundle.path, bundle.root],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


def test_container_gets_a_network_namespace_of_its_own(bundle):
    r = _library(bundle)
    assert r["started"] == 1, "the helper was not used"
    assert r["probe"] == "0"
    ns, *dev = r["probe_out"].splitlines()
    assert ns.startswith("net:[") and ns != r["own"]
    assert [line.split(":")[0].strip() for line in dev[2:]] == ["lo"]


def test_failures_after_the_helper_started_leave_no_fd_or_process(bundle):
    r = _library(bundle)
    # the probe and the 15 attempts past validation each started a helper; a config
    # that validation refuses starts none (nothing is made before it is valid)
    assert r["started_all"] == 16
    assert r["errors"] == [
        "0",
        "container `x0` already exists", "container `x1` already exists",
        "container `x2` already exists", "container `x3` already exists",
        "container `x4` already exists",
        "linux.seccomp.defaultAction: unknown action `SCMP_ACT_NOPE`",
        "process.args: must not be empty",
        "process.cwd `/etc/passwd`: ENOTDIR (Not a directory)",
    ]
    assert r["fds_same"]
    assert r["children"] is None, "a helper or an init was left unreaped"


def test_two_containers_never_share_one(bundle):
    a = bundle.detach(["sleep", "30"])
    b = bundle.detach(["sleep", "30"])
    try:
        na = os.readlink(f"/proc/{bundle.state(a)['pid']}/ns/net")
        nb = os.readlink(f"/proc/{bundle.state(b)['pid']}/ns/net")
        assert len({na, nb, os.readlink("/proc/self/ns/net")}) == 3
    finally:
        for cid in (a, b):
            bundle.ocirun("delete", "-f", cid)


def test_a_new_user_namespace_owns_its_network_namespace(bundle):
    """Then the init unshares it after its user namespace (the helper would make one
    owned by ours): container root may configure it, which needs CAP_NET_ADMIN in
    the user namespace that owns it."""
    caps = bundle.config["process"]["capabilities"]
    for kind in ("bounding", "effective", "permitted"):
        caps[kind] = caps.get(kind, []) + ["CAP_NET_ADMIN"]
    bundle.use_user_namespace(100000, own_bundle=True)
    r = bundle.run(["sh", "-c", "ip link set lo up && cat /sys/class/net/lo/operstate"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() in ("unknown", "up")


def test_clone_vm_waits_for_no_helper():
    """The helper runs in our memory: clone_vm must not start while it may."""
    if kernel.clone_vm is None:
        pytest.skip("kernel.clone_vm needs the C extension on x86_64 with glibc")
    probe = ("import errno, os, sys; sys.path.insert(0, %r); from ocirun import _sys\n"
             "_sys.netns_ahead()\n"
             "try:\n    _sys.netns_ahead()\nexcept OSError as e:\n    assert e.errno == errno.EBUSY\n"
             "else:\n    raise SystemExit('a second netns_ahead ran')\n"
             "try:\n    _sys.clone_vm(lambda: 0, -1, 2)\nexcept OSError as e:\n"
             "    assert e.errno == errno.EBUSY\nelse:\n    raise SystemExit('clone_vm ran')\n"
             "fd = _sys.netns_take()\n"
             "assert os.readlink(f'/proc/self/fd/{fd}') != os.readlink('/proc/self/ns/net')\n"
             "try:\n    _sys.netns_take()\nexcept OSError as e:\n    assert e.errno == errno.ECHILD\n"
             "else:\n    raise SystemExit('a second netns_take')\n"
             "pid = _sys.clone_vm(lambda: 0, -1, 2)\n"
             "assert os.waitpid(pid, 0)[1] == 0\nprint('ok')\n" % REPO)
    _probe(probe)


def test_preserve_fds_counts_only_the_callers_fds(bundle):
    """The helper opens its fd into our table while the runtime prepares: it must never
    pass for fd 3 of --preserve-fds when the caller's fd 3 is closed (a closed one is
    skipped, as crun does; ours are close-on-exec and never made inheritable). A long
    preparation (a seccomp profile, thousands of env entries) gives the helper time to
    finish first."""
    from support import OCIRUN, SHARED
    with open(f"{SHARED}/fixtures/seccomp-podman-default.json") as f:
        bundle.config["linux"]["seccomp"] = json.load(f)
    bundle.config["process"]["env"] = ["PATH=/bin"] + [f"V{i}=x" for i in range(20000)]
    bundle.config["process"]["args"] = ["sh", "-c", "ls /proc/$$/fd | tr '\\n' ' '"]
    bundle.write()
    for i in range(5):
        r = subprocess.run([OCIRUN, "--root", bundle.root, "run", "--preserve-fds", "1",
                            "-b", bundle.path, f"pf{i}"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert r.stdout.split() == ["0", "1", "2"], r.stdout
    # with fd 3 open it is the caller's file the container gets, and no memfd
    bundle.config["process"]["args"] = ["sh", "-c", "readlink /proc/self/fd/3; "
                                        "ls -l /proc/self/fd/ | grep -c memfd; true"]
    bundle.write()
    r = subprocess.run(["sh", "-c", 'exec "$0" --root "$1" run --preserve-fds 1 -b "$2" pfok '
                        '3>"$2/passed"', OCIRUN, bundle.root, bundle.path],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    target, memfds = r.stdout.split()
    assert target.endswith("/passed") and memfds == "0", r.stdout


def test_fork_while_a_helper_is_pending_leaves_the_child_free():
    """A child forked while our helper runs has a copy of its pid but no such child:
    it must be able to start its own, and clone_vm must not refuse it."""
    probe = ("import errno, os, sys; sys.path.insert(0, %r); from ocirun import _sys\n"
             "_sys.netns_ahead()\n"
             "pid = os.fork()\n"
             "if pid == 0:\n"
             "    _sys.netns_ahead(); fd = _sys.netns_take()\n"
             "    assert os.readlink(f'/proc/self/fd/{fd}').startswith('net:')\n"
             "    try:\n"
             "        _sys.netns_take()\n"
             "    except OSError as e:\n"
             "        assert e.errno == errno.ECHILD, e\n"
             "    else:\n"
             "        raise SystemExit('a second take')\n"
             "    os._exit(0)\n"
             "assert os.waitpid(pid, 0)[1] == 0\n"
             "fd = _sys.netns_take()\n"
             "assert os.readlink(f'/proc/self/fd/{fd}').startswith('net:')\n"
             "print('ok')\n" % REPO)
    _probe(probe)


def _probe(code):
    """Run `code` in a fresh interpreter (no thread of pytest's): it prints ok."""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "ok\n", r.stderr
