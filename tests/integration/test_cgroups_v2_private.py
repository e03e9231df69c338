"""The v2 manager on a real cgroup2 mount, in a private mount namespace.

A forked child unshares its mount namespace, detaches /sys/fs/cgroup and mounts cgroup2
there, which is what a pure-v2 host looks like (on a pure-v2 layout: a fresh mount of the
same). On this hybrid host the hierarchy is the host's unified one, in which no
controller is delegated, so only what the kernel offers
every cgroup is exercised for real: creation, cgroup.freeze, cgroup.kill, cpu.stat,
cgroup.max.*, and the BPF device program. Limits are covered by the temp-dir unit tests.
"""
import json
import os
import subprocess
import sys
import time
import traceback

import pytest

import ocirun.cgroups as cg
from ocirun.cgroups import common
from ocirun.errors import OciError
from layout import cgroup2_root


def in_pure_v2(fn, *args):
    """Run fn(*args) in a forked child that sees a pure cgroup v2 /sys/fs/cgroup; returns
    its JSON-able result or fails the test with the child's traceback."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            from ocirun import kernel
            kernel.unshare(kernel.CLONE_NEWNS)
            kernel.mount(None, "/", None, kernel.MS_REC | kernel.MS_PRIVATE)
            kernel.umount2("/sys/fs/cgroup", kernel.MNT_DETACH)
            kernel.mount("cgroup2", "/sys/fs/cgroup", "cgroup2", kernel.MS_NOSUID | kernel.MS_NODEV)
            out = {"ok": fn(*args)}
        except BaseException as e:  # the child's single error path: report, never unwind
            out = {"error": f"{type(e).__name__}: {e}", "tb": traceback.format_exc()}
        try:
            os.write(w, json.dumps(out).encode())
        except BaseException:
            code = 1
        os._exit(code)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    os.waitpid(pid, 0)
    out = json.loads(b"".join(chunks) or b'{"error": "child died without a report"}')
    if "error" in out:
        pytest.fail(f"in the v2 namespace: {out['error']}\n{out.get('tb', '')}")
    return out["ok"]


def spawn(code):
    return subprocess.Popen([sys.executable, "-I", "-S", "-c", "import sys; sys.stdin.readline()\n" + code],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def go(p):
    p.stdin.write("\n")
    p.stdin.flush()


@pytest.fixture
def v2name(cgname):
    if not os.path.isdir("/sys/fs/cgroup/unified") and cg.detect() != "unified":
        pytest.skip("no cgroup2 hierarchy on this host")
    return cgname


def _lifecycle(name):
    res = {"detect": cg.detect()}
    m = cg.open_manager("cgroupfs", f"/{name}/c1", "c1")
    m.create()
    try:
        res["created"] = m.created
        p = spawn("import time, os\nn = 0\n"
                  "while True:\n    n += 1\n    os.write(1, b'%d\\n' % n)\n    time.sleep(0.01)\n")
        m.add(p.pid)
        go(p)
        res["pids"] = m.pids() == [p.pid]
        os.set_blocking(p.stdout.fileno(), False)
        time.sleep(0.2)
        m.freeze()
        res["state_frozen"] = m.state()
        res["events"] = common.read_file(m.leaf, "cgroup.events")
        time.sleep(0.1)
        os.read(p.stdout.fileno(), 1 << 20)
        time.sleep(0.4)
        try:
            res["progress_while_frozen"] = len(os.read(p.stdout.fileno(), 1 << 20))
        except BlockingIOError:
            res["progress_while_frozen"] = 0
        m2 = cg.from_dict(json.loads(json.dumps(m.to_dict())))
        m2.thaw()
        res["state_thawed"] = m.state()
        time.sleep(0.3)
        res["progress_after_thaw"] = len(os.read(p.stdout.fileno(), 1 << 20))
        res["cpu_usage"] = m.stats()["cpu"].get("usage", {}).get("total", 0)
        m.kill_all()  # cgroup.kill
        res["killed"] = p.wait(timeout=10)
        m.destroy()
        res["exists_after_destroy"] = os.path.exists(m.leaf)
        res["parent_after_destroy"] = os.path.exists(os.path.dirname(m.leaf))
    finally:
        if m.created:
            m.kill_all()
            m.destroy()
    return res


def test_v2_lifecycle(v2name):
    r = in_pure_v2(_lifecycle, v2name)
    assert r["detect"] == "unified"
    assert r["created"] == [f"/sys/fs/cgroup/{v2name}", f"/sys/fs/cgroup/{v2name}/c1"]
    assert r["pids"]
    assert r["state_frozen"] == "paused" and "frozen 1" in r["events"]
    assert r["progress_while_frozen"] == 0
    assert r["state_thawed"] == "running" and r["progress_after_thaw"] > 0
    assert r["cpu_usage"] > 0
    assert r["killed"] == -9
    assert not r["exists_after_destroy"] and not r["parent_after_destroy"]


PROBE = ("import os\n"
         "def t(path, flags):\n"
         "    try:\n        os.close(os.open(path, flags)); return 'ok'\n"
         "    except OSError as e:\n        return str(e.errno)\n"
         "print(t('/dev/null', os.O_RDONLY), t('/dev/null', os.O_WRONLY), t('/dev/zero', os.O_RDONLY))\n")


def _devices(name):
    rules = [{"allow": False, "access": "rwm"},
             {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"}]
    m = cg.open_manager("cgroupfs", f"/{name}/c1", "c1", resources={"devices": rules})
    m.create()
    out = {}
    try:
        m.apply({"devices": rules})
        p = spawn(PROBE)
        m.add(p.pid)
        go(p)
        out["restricted"] = p.communicate(timeout=30)[0].split()
        # update replaces the program in place
        m.update({"devices": [{"allow": True}]})
        p = spawn(PROBE)
        m.add(p.pid)
        go(p)
        out["after_update"] = p.communicate(timeout=30)[0].split()
    finally:
        m.kill_all()
        m.destroy()
    return out


def test_v2_device_program_enforced(v2name):
    r = in_pure_v2(_devices, v2name)
    assert r["restricted"] == ["ok", "1", "1"]  # EPERM for everything but reading /dev/null
    assert r["after_update"] == ["ok", "ok", "ok"]


def _controllers(name):
    m = cg.open_manager("cgroupfs", f"/{name}/c1", "c1")
    m.create()
    out = {}
    try:
        try:
            m.apply({"pids": {"limit": 10}})
            out["pids"] = "applied"
        except OciError as e:
            out["pids"] = str(e)
        m.apply({"unified": {"cgroup.max.descendants": "3"}})
        out["descendants"] = common.read_file(m.leaf, "cgroup.max.descendants").strip()
        try:
            m.apply({"unified": {"memory.high": "1M"}})
        except OciError as e:
            out["memory_high"] = str(e)
        out["stats_keys"] = sorted(m.stats())
    finally:
        m.destroy()
    return out


def test_v2_undelegated_controllers_and_unified_keys(v2name):
    r = in_pure_v2(_controllers, v2name)
    assert "pids controller is not enabled" in r["pids"], r
    assert r["descendants"] == "3"
    assert "memory controller is not enabled" in r["memory_high"]
    assert r["stats_keys"] == ["blkio", "cpu", "cpuset", "hugetlb", "intel_rdt", "memory",
                               "network_interfaces", "pids"]


def test_v2_nothing_visible_on_host_afterwards(v2name):
    in_pure_v2(_controllers, v2name)
    assert cgroup2_root() and not os.path.exists(f"{cgroup2_root()}/{v2name}")
