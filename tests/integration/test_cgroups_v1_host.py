"""The manager on this machine's real hierarchies: limits are enforced. Written for the
v1 (hybrid) manager; the tests that do not read v1 files run on a unified layout too."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import ocirun.cgroups as cg
from ocirun.cgroups import common
from ocirun.errors import ConfigError, OciError
from layout import leftovers, need, need_v1

V1_WHY = "it reads v1 files; test_cgroups_v2_private.py and test_cgroup_verbs.py cover v2"


def spawn(code):
    """A python child that waits for a line on stdin (sent once it is in the cgroup)."""
    return subprocess.Popen([sys.executable, "-I", "-S", "-c", "import sys; sys.stdin.readline()\n" + code],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def go(p):
    p.stdin.write("\n")
    p.stdin.flush()


def open_m(name, sub="c1", resources=None):
    return cg.open_manager("cgroupfs", f"/{name}/{sub}", sub, resources=resources)


@pytest.fixture
def proc_cleanup():
    procs = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def test_detect_host():
    need_v1("what this host is")
    assert cg.detect() in ("v1", "hybrid")


def test_memory_limit_oom_kills(cgname, proc_cleanup):
    need_v1(V1_WHY)
    res = {"memory": {"limit": 48 << 20, "swap": 48 << 20}}
    m = open_m(cgname, resources=res)
    m.create()
    p = spawn("b = bytearray(256 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint('survived')")
    proc_cleanup.append(p)
    m.add(p.pid)
    m.apply(res)
    assert common.read_file(m.dir("memory"), "memory.limit_in_bytes").strip() == str(48 << 20)
    go(p)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL, (p.returncode, out)
    assert "survived" not in out
    mem = m.stats()["memory"]
    peak = max(mem["usage"].get("max", 0), mem["swap"].get("max", 0))
    assert (47 << 20) <= peak <= 48 << 20, mem  # it reached the limit and no further
    oom = common.parse_flat(common.read_file(m.dir("memory"), "memory.oom_control"))
    assert oom["oom_kill"] >= 1
    m.destroy()


def test_pids_limit_fork_fails(cgname, proc_cleanup):
    need("pids")
    res = {"pids": {"limit": 5}}
    m = open_m(cgname, resources=res)
    m.create()
    p = spawn("import os, time\npids = []; err = None\n"
              "for i in range(10):\n"
              "    try:\n        pid = os.fork()\n"
              "    except OSError as e:\n        err = e.errno; break\n"
              "    if pid == 0:\n        time.sleep(30); os._exit(0)\n"
              "    pids.append(pid)\n"
              "print(len(pids), err, flush=True)\n"
              "for q in pids: os.kill(q, 9); os.waitpid(q, 0)\n")
    proc_cleanup.append(p)
    m.add(p.pid)
    m.apply(res)
    go(p)
    out, _ = p.communicate(timeout=30)
    assert out.split() == ["4", "11"], out  # the child + 4 forks = 5; the 5th fork: EAGAIN
    m.destroy()


def _counter_child():
    return spawn("import time, os\nn = 0\n"
                 "while True:\n    n += 1\n    os.write(1, b'%d\\n' % n)\n    time.sleep(0.01)\n")


def _proc_state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_freezer_freezes_and_thaws(cgname, proc_cleanup):
    need_v1("v1 frozen tasks sleep uninterruptibly; test_cgroups_v2_private.py freezes on v2")
    m = open_m(cgname)
    m.create()
    p = _counter_child()
    proc_cleanup.append(p)
    m.add(p.pid)
    go(p)
    os.set_blocking(p.stdout.fileno(), False)
    time.sleep(0.2)
    m.freeze()
    assert m.state() == "paused"
    time.sleep(0.1)
    before = os.read(p.stdout.fileno(), 1 << 20)  # drain what was written before the freeze
    assert before
    assert _proc_state(p.pid) == "D"  # v1 frozen tasks sleep uninterruptibly
    time.sleep(0.4)
    try:
        during = os.read(p.stdout.fileno(), 1 << 20)
    except BlockingIOError:
        during = b""
    assert during == b"", "a frozen process made progress"
    # a second manager opened from the persisted dict (a later `ocirun resume`)
    m2 = cg.from_dict(json.loads(json.dumps(m.to_dict())))
    assert m2.state() == "paused"
    m2.thaw()
    assert m.state() == "running"
    time.sleep(0.3)
    after = os.read(p.stdout.fileno(), 1 << 20)
    assert after, "the thawed process did not resume"
    m.kill_all()
    p.wait(timeout=10)
    m.destroy()


def test_kill_all_reaches_every_process(cgname, proc_cleanup):
    m = open_m(cgname)
    m.create()
    p = spawn("import os, time\n"
              "for i in range(3):\n"
              "    if os.fork() == 0:\n"
              "        if os.fork() == 0:\n            time.sleep(100)\n"
              "        time.sleep(100)\n"
              "print('ready', flush=True)\ntime.sleep(100)\n")
    proc_cleanup.append(p)
    m.add(p.pid)
    go(p)
    assert p.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 5
    while len(m.pids()) < 7 and time.monotonic() < deadline:
        time.sleep(0.01)
    pids = m.pids()
    assert len(pids) == 7 and p.pid in pids
    m.kill_all()
    p.wait(timeout=10)
    deadline = time.monotonic() + 5
    while m.pids() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert m.pids() == []
    m.destroy()  # grandchildren were reparented and reaped by init; the cgroup is empty


def test_kill_all_other_signal_uses_freezer(cgname, proc_cleanup):
    m = open_m(cgname)
    m.create()
    p = spawn("import signal, time\n"
              "import os\nsignal.signal(signal.SIGUSR1, lambda *a: (os.write(1, b'usr1\\n'), os._exit(3)))\n"
              "print('ready', flush=True)\ntime.sleep(100)\n")
    proc_cleanup.append(p)
    m.add(p.pid)
    go(p)
    assert p.stdout.readline().strip() == "ready"
    m.kill_all(signal.SIGUSR1)
    assert p.stdout.readline().strip() == "usr1"
    assert p.wait(timeout=10) == 3
    assert m.state() == "running"  # thawed again
    m.destroy()


def test_destroy_removes_only_what_create_made(cgname):
    # the parent exists before (another container's, or the operator's): it must survive
    pre = cg.open_manager("cgroupfs", f"/{cgname}", "p")
    pre.create()
    m = open_m(cgname)
    m.create()
    assert all(d.endswith(f"/{cgname}/c1") for d in m.created)
    m.destroy()
    for base in m._bases():
        assert os.path.isdir(os.path.join(base, cgname))
        assert not os.path.exists(os.path.join(base, cgname, "c1"))
    pre.destroy()
    assert not pre.exists()


def test_destroy_with_exiting_processes(cgname):
    m = open_m(cgname, "a/b")
    m.create()
    bases = m._bases()
    assert len(m.created) == 3 * len(bases)
    p = subprocess.Popen(["sleep", "100"])
    m.add(p.pid)
    m.kill_all()
    m.destroy()  # retries rmdir while the killed task leaves its cgroups
    p.wait()
    assert not m.exists()
    for base in bases:
        assert not os.path.exists(os.path.join(base, cgname))


def test_existing_populated_cgroup_is_refused(cgname, proc_cleanup):
    m = open_m(cgname)
    m.create()
    p = subprocess.Popen(["sleep", "100"])
    proc_cleanup.append(p)
    m.add(p.pid)
    with pytest.raises(OciError, match="has processes"):
        open_m(cgname).create()
    assert m.exists()  # the refused manager removed nothing
    m.kill_all()
    p.wait()
    m.destroy()


def test_devices_rules_enforced(cgname, proc_cleanup):
    need_v1(V1_WHY)
    res = {"devices": [{"allow": False, "access": "rwm"},
                       {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"}]}
    m = open_m(cgname, resources=res)
    m.create()
    p = spawn("import os\n"
              "def t(path, flags):\n"
              "    try:\n        os.close(os.open(path, flags)); return 'ok'\n"
              "    except OSError as e:\n        return str(e.errno)\n"
              "print(t('/dev/null', os.O_RDONLY), t('/dev/null', os.O_WRONLY), t('/dev/zero', os.O_RDONLY))\n")
    proc_cleanup.append(p)
    m.add(p.pid)
    m.apply(res)
    go(p)
    out, _ = p.communicate(timeout=30)
    assert out.split() == ["ok", "1", "1"], out  # EPERM for what the list does not allow
    listed = common.read_file(m.dir("devices"), "devices.list").split()
    assert "c" in listed and "1:3" in listed
    m.destroy()


def test_cpu_settings_and_stats(cgname, proc_cleanup):
    need_v1(V1_WHY)
    res = {"cpu": {"shares": 256, "quota": 20000, "period": 100000, "cpus": "0", "mems": "0"},
           "pids": {"limit": 100}}
    m = open_m(cgname, resources=res)
    m.create()
    p = spawn("import time\nt = time.time()\nwhile time.time() - t < 0.5: pass\nprint('done', flush=True)\n"
              "time.sleep(100)\n")
    proc_cleanup.append(p)
    m.add(p.pid)
    m.apply(res)
    assert common.read_file(m.dir("cpu"), "cpu.cfs_quota_us").strip() == "20000"
    assert common.read_file(m.dir("cpuset"), "cpuset.cpus").strip() == "0"
    go(p)
    assert p.stdout.readline().strip() == "done"
    s = m.stats()
    assert s["cpu"]["usage"]["total"] > 50_000_000  # >= 50ms of the 0.5s busy loop
    assert s["cpu"]["throttling"]["throttledPeriods"] > 0  # 20% quota throttled it
    assert s["pids"] == {"current": 1, "limit": 100}
    json.dumps(s)
    # update: raise the quota, lift the pids limit
    m.update({"cpu": {"quota": -1}, "pids": {"limit": -1}})
    assert common.read_file(m.dir("cpu"), "cpu.cfs_quota_us").strip() == "-1"
    assert common.read_file(m.dir("pids"), "pids.max").strip() == "max"
    m.kill_all()
    p.wait()
    m.destroy()


def test_memory_update_grow_and_shrink(cgname):
    need_v1(V1_WHY)
    m = open_m(cgname)
    m.create()
    m.apply({"memory": {"limit": 64 << 20, "swap": 64 << 20}})
    m.update({"memory": {"limit": 256 << 20, "swap": 512 << 20}})  # memsw must go first
    d = m.dir("memory")
    assert common.read_uint(d, "memory.limit_in_bytes") == 256 << 20
    assert common.read_uint(d, "memory.memsw.limit_in_bytes") == 512 << 20
    m.update({"memory": {"limit": 32 << 20, "swap": 32 << 20}})  # limit must go first
    assert common.read_uint(d, "memory.memsw.limit_in_bytes") == 32 << 20
    m.update({"memory": {"limit": -1}})
    assert common.read_uint(d, "memory.limit_in_bytes") > 1 << 60
    m.destroy()


def test_bad_resources_leave_nothing(cgname):
    with pytest.raises(ConfigError):
        open_m(cgname, resources={"devices": [{"allow": True, "type": "z"}]})
    assert leftovers(cgname) == []
