"""Resource limits, pause/resume, update, ps, events, kill --all and delete --force on real
containers and this machine's cgroups. Every container gets its own cgroup under /ocirun/<id>
(or a path of its own below a parent the test names uniquely); nothing else is written.

Every test runs on the layout in use (tests/layout.py): the v1 files on a v1 or hybrid
one, the v2 files on a unified one; a test of a limit skips where its controller is not
available (the unified layout of a hybrid host has none of memory, cpu, pids)."""
import json
import os
import subprocess
import time
import uuid

import pytest

from layout import CG, adapt_resources, cgroup2_root, controllers, leftovers, need, unified
from support import OCIRUN, SHARED

MiB = 1 << 20


def cgdir(ctrl, cid, parent="/ocirun"):
    """The container's cgroup directory for controller `ctrl` (one for all on v2)."""
    return f"{CG}{parent}/{cid}" if unified() else f"{CG}/{ctrl}{parent}/{cid}"


def cg(ctrl, cid, name=None):
    d = cgdir(ctrl, cid)
    if name is None:
        return d
    with open(f"{d}/{name}") as f:
        return f.read().strip()


def memory_limit(cid):
    """memory.limit_in_bytes (v1) or memory.max (v2), as bytes; -1: no limit."""
    if unified():
        v = cg("memory", cid, "memory.max")
        return -1 if v == "max" else int(v)
    v = int(cg("memory", cid, "memory.limit_in_bytes"))
    return -1 if v >= 1 << 62 else v


def memory_reservation(cid):
    if unified():
        return int(cg("memory", cid, "memory.low"))
    return int(cg("memory", cid, "memory.soft_limit_in_bytes"))


def cpu_shares(cid):
    """cpu.shares (v1), or cpu.weight (v2) with the shares it stands for (the
    conversion ocirun and runc use, unit-tested in test_cgroups_convert.py)."""
    if unified():
        return ("weight", cg("cpu", cid, "cpu.weight"))
    return ("shares", cg("cpu", cid, "cpu.shares"))


def shares(n):
    if unified():
        from ocirun.cgroups.convert import shares_to_weight
        return ("weight", str(shares_to_weight(n)))
    return ("shares", str(n))


def cpu_quota(cid):
    """(quota, period) as strings: cpu.cfs_quota_us/cfs_period_us or cpu.max."""
    if unified():
        quota, period = cg("cpu", cid, "cpu.max").split()
        return ("-1" if quota == "max" else quota), period
    return cg("cpu", cid, "cpu.cfs_quota_us"), cg("cpu", cid, "cpu.cfs_period_us")


def frozen(cid):
    if unified():
        return "frozen 1" in cg("freezer", cid, "cgroup.events").splitlines()
    return cg("freezer", cid, "freezer.state") == "FROZEN"


def wait_for(pred, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def one_line_error(r, *needles):
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def read_rootfs(bundle, name):
    try:
        with open(f"{bundle.rootfs}/{name}") as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


# -- limits from config.json -----------------------------------------------------------------

def test_memory_limit_oom_kills(bundle):
    need("memory")
    bundle.config["linux"]["resources"]["memory"] = {"limit": 32 * MiB}
    # the shell keeps the whole 100 MB string of the command substitution in memory
    r = bundle.run(["sh", "-c", 'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo survived'])
    assert r.returncode == 137, (r.returncode, r.stdout, r.stderr)
    assert "survived" not in r.stdout
    # `run` says why in one line, not a bare 137
    said = [l for l in r.stderr.splitlines() if "OOM killer" in l]
    assert len(said) == 1 and "linux.resources.memory.limit" in said[0], r.stderr
    assert leftovers(f"/ocirun/{bundle.ids[-1]}") == []


def test_sigkill_without_oom_says_nothing(bundle):
    """A container killed by SIGKILL that the OOM killer did not touch: 137, no OOM line."""
    need("memory")
    bundle.config["linux"]["resources"]["memory"] = {"limit": 32 * MiB}
    # no pid namespace: a namespace's init is immune to its own SIGKILL
    linux = bundle.config["linux"]
    linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "pid"]
    r = bundle.run(["sh", "-c", "kill -9 $$"])
    assert r.returncode == 137, (r.returncode, r.stderr)
    assert "OOM" not in r.stderr, r.stderr


def test_memory_limit_is_written(bundle):
    need("memory")
    bundle.config["linux"]["resources"]["memory"] = {"limit": 32 * MiB}
    cid = bundle.detach(["sleep", "60"])
    assert memory_limit(cid) == 32 * MiB


def test_pids_limit_makes_forks_fail(bundle):
    need("pids")
    bundle.config["linux"]["resources"]["pids"] = {"limit": 10}
    r = bundle.run(["sh", "-c", "i=0; while [ $i -lt 20 ]; do sleep 5 & i=$((i+1)); done; "
                                "echo spawned; kill $(jobs -p) 2>/dev/null; exit 0"])
    out = r.stdout + r.stderr
    assert "can't fork" in out or "Resource temporarily unavailable" in out, out


def test_cpu_shares_and_quota_land_in_cpu_files(bundle):
    need("cpu", "pids")
    bundle.config["linux"]["resources"]["cpu"] = {"shares": 512, "quota": 50000, "period": 100000}
    cid = bundle.detach(["sleep", "60"])
    assert cpu_shares(cid) == shares(512)
    assert cpu_quota(cid) == ("50000", "100000")
    assert int(cg("pids", cid, "pids.max")) == 2048  # the fixture's pids.limit


# -- pause / resume --------------------------------------------------------------------------

COUNTER = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.01; done"]


def test_pause_resume(bundle):
    cid = bundle.detach(COUNTER)
    assert wait_for(lambda: read_rootfs(bundle, "tmp/count") not in ("", "0"))
    r = bundle.ocirun("pause", cid)
    assert r.returncode == 0, r.stderr
    assert bundle.state(cid)["status"] == "paused"
    assert frozen(cid)
    frozen_at = read_rootfs(bundle, "tmp/count")
    time.sleep(0.3)
    assert read_rootfs(bundle, "tmp/count") == frozen_at  # no progress while frozen
    r = bundle.ocirun("pause", cid)
    one_line_error(r, "already paused")
    r = bundle.ocirun("resume", cid)
    assert r.returncode == 0, r.stderr
    assert bundle.state(cid)["status"] == "running"
    assert wait_for(lambda: read_rootfs(bundle, "tmp/count") != frozen_at)
    one_line_error(bundle.ocirun("resume", cid), "not paused")


def test_delete_force_paused(bundle):
    cid = bundle.detach(["sleep", "60"])
    pid = bundle.state(cid)["pid"]
    assert bundle.ocirun("pause", cid).returncode == 0
    r = bundle.ocirun("delete", cid)
    assert r.returncode == 1 and "not stopped" in r.stderr
    r = bundle.ocirun("delete", "--force", cid)
    assert r.returncode == 0, r.stderr
    assert leftovers(f"/ocirun/{cid}") == []
    assert wait_for(lambda: not os.path.exists(f"/proc/{pid}/exe") or not os.readlink(f"/proc/{pid}/exe"))


@pytest.mark.parametrize("all_flag", [(), ("--all",)])
def test_sigkill_of_paused_container_takes_effect(bundle, all_flag):
    cid = bundle.detach(["sleep", "60"])
    assert bundle.ocirun("pause", cid).returncode == 0
    r = bundle.ocirun("kill", *all_flag, cid, "KILL")
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: bundle.state(cid)["status"] == "stopped")


def test_other_signals_wait_for_resume(bundle):
    cid = bundle.detach(["sh", "-c", "trap 'exit 3' USR1; while :; do sleep 0.05; done"])
    assert bundle.ocirun("pause", cid).returncode == 0
    assert bundle.ocirun("kill", cid, "USR1").returncode == 0
    time.sleep(0.2)
    assert bundle.state(cid)["status"] == "paused"
    assert bundle.ocirun("resume", cid).returncode == 0
    assert wait_for(lambda: bundle.state(cid)["status"] == "stopped")


def test_pause_and_resume_of_stopped_container(bundle):
    cid = bundle.detach(["true"])
    assert wait_for(lambda: bundle.state(cid)["status"] == "stopped")
    one_line_error(bundle.ocirun("pause", cid), "container not running")
    one_line_error(bundle.ocirun("resume", cid), "container not running")
    one_line_error(bundle.ocirun("pause", "nosuch" + cid), "does not exist")


def test_pause_without_cgroup(bundle):
    cid = bundle.new_id()
    bundle.config["process"]["args"] = ["sleep", "60"]
    bundle.config["linux"]["resources"].pop("pids", None)  # (a limit needs a cgroup)
    bundle.write()
    with open(f"{bundle.path}/err", "w+") as err:
        r = subprocess.run([OCIRUN, "--root", bundle.root, "--cgroup-manager", "disabled", "run", "-d",
                            "-b", bundle.path, cid], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=err, timeout=60)
    assert r.returncode == 0
    assert leftovers(f"/ocirun/{cid}") == []
    one_line_error(bundle.ocirun("pause", cid), "no cgroup", "disabled")
    one_line_error(bundle.ocirun("update", "--memory", "64m", cid), "no cgroup")
    assert bundle.state(cid)["status"] == "running"
    # ps still works: the container has a pid namespace of its own
    r = bundle.ocirun("ps", "--format", "json", cid)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [bundle.state(cid)["pid"]]


def test_pause_created_container(bundle):
    bundle.config["process"]["args"] = ["sleep", "60"]
    cid, r = bundle.create()
    assert r.returncode == 0, r.stderr
    assert bundle.ocirun("pause", cid).returncode == 0
    assert bundle.state(cid)["status"] == "paused"
    one_line_error(bundle.ocirun("start", cid), "paused")
    assert bundle.ocirun("resume", cid).returncode == 0
    assert bundle.state(cid)["status"] == "created"
    assert bundle.ocirun("start", cid).returncode == 0
    assert bundle.state(cid)["status"] == "running"


# -- update ----------------------------------------------------------------------------------

def test_update_flags(bundle):
    need("memory", "cpu", "pids")
    bundle.config["linux"]["resources"]["memory"] = {"limit": 32 * MiB}
    cid = bundle.detach(["sleep", "60"])
    r = bundle.ocirun("update", "--memory", "64m", "--cpu-share", "256", "--pids-limit", "50",
                      "--cpu-quota", "20000", "--cpu-period", "100000", cid)
    assert r.returncode == 0, r.stderr
    assert memory_limit(cid) == 64 * MiB
    assert cpu_shares(cid) == shares(256)
    assert cpu_quota(cid) == ("20000", "100000")
    assert cg("pids", cid, "pids.max") == "50"
    r = bundle.ocirun("update", "--memory-reservation", "16M", "--pids-limit", "-1", cid)
    assert r.returncode == 0, r.stderr
    assert memory_reservation(cid) == 16 * MiB
    assert cg("pids", cid, "pids.max") == "max"
    assert memory_limit(cid) == 64 * MiB  # untouched


def test_update_resources_from_stdin_and_file(bundle):
    need("memory", "cpu", "pids")
    cid = bundle.detach(["sleep", "60"])
    doc = {"memory": {"limit": 48 * MiB}, "cpu": {"shares": 300}, "pids": {"limit": 30}}
    r = bundle.ocirun("update", "--resources=-", cid, input=json.dumps(doc))
    assert r.returncode == 0, r.stderr
    assert memory_limit(cid) == 48 * MiB
    assert cpu_shares(cid) == shares(300)
    assert cg("pids", cid, "pids.max") == "30"
    path = f"{bundle.path}/res.json"
    with open(path, "w") as f:
        json.dump({"pids": {"limit": 40}}, f)
    r = bundle.ocirun("update", "-r", path, cid)
    assert r.returncode == 0, r.stderr
    assert cg("pids", cid, "pids.max") == "40"
    assert cpu_shares(cid) == shares(300)


@pytest.mark.parametrize("args,stdin,needles", [
    (["--resources", "-"], '{"memory": {"limit": "64m"}}', ["memory.limit", "integer"]),
    (["--resources", "-"], '{"cpu": {"shares": true}}', ["cpu.shares"]),
    (["--resources", "-"], '{"pids": {"limit": 1.5}}', ["pids.limit"]),
    (["--resources", "-"], '{"cpu": {"cpus": "3-1"}}', ["cpu.cpus"]),
    (["--resources", "-"], '{"memory": ', ["invalid JSON"]),
    (["--resources", "-"], '[1]', ["object"]),
    (["--cpu-share", "lots"], None, ["--cpu-share", "lots"]),
    (["--memory", "12q"], None, ["--memory", "12q"]),
    (["--blkio-weight", "70000"], None, ["--blkio-weight", "range"]),
])
def test_update_bad_input(bundle, args, stdin, needles):
    need("memory", "cpu")
    bundle.config["linux"]["resources"]["memory"] = {"limit": 32 * MiB}
    cid = bundle.detach(["sleep", "60"])
    before = cpu_shares(cid)
    r = bundle.ocirun("update", *args, cid, input=stdin)
    one_line_error(r, *needles)
    assert memory_limit(cid) == 32 * MiB
    assert cpu_shares(cid) == before


def test_update_stopped_container_changes_nothing(bundle):
    need("memory")
    bundle.config["linux"]["resources"]["memory"] = {"limit": 32 * MiB}
    cid = bundle.detach(["true"])
    assert wait_for(lambda: bundle.state(cid)["status"] == "stopped")
    one_line_error(bundle.ocirun("update", "--memory", "64m", cid), "container not running")
    if os.path.isdir(cg("memory", cid)):
        assert memory_limit(cid) == 32 * MiB
    one_line_error(bundle.ocirun("update", "--memory", "64m", "nosuch" + cid), "does not exist")


# -- ps / events -----------------------------------------------------------------------------

def test_ps(bundle):
    cid = bundle.detach(["sh", "-c", "sleep 60 & sleep 61 & wait"])
    init = bundle.state(cid)["pid"]
    assert wait_for(lambda: len(json.loads(bundle.ocirun("ps", "--format", "json", cid).stdout)) == 3)
    r = bundle.ocirun("ps", "--format", "json", cid)
    assert r.returncode == 0, r.stderr
    pids = json.loads(r.stdout)
    assert init in pids and all(isinstance(p, int) for p in pids)
    r = bundle.ocirun("ps", cid)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "CMD"]
    assert any("sleep 61" in ln for ln in lines[1:]) and len(lines) == 4
    r = bundle.ocirun("ps", cid, "-o", "pid,comm")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["PID", "COMMAND"]
    assert sorted(int(ln.split()[0]) for ln in lines[1:]) == sorted(pids)


def test_events_stats(bundle):
    need("memory", "pids")
    bundle.config["linux"]["resources"]["memory"] = {"limit": 32 * MiB}
    cid = bundle.detach(["sleep", "60"])
    r = bundle.ocirun("events", "--stats", cid)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1
    ev = json.loads(lines[0])
    assert ev["type"] == "stats" and ev["id"] == cid
    mem = ev["data"]["memory"]["usage"]
    assert mem["usage"] > 0 and mem["limit"] == 32 * MiB
    assert ev["data"]["pids"]["current"] >= 1


def test_events_stream_ends_with_the_container(bundle):
    cid = bundle.detach(["sleep", "0.6"])
    t0 = time.time()
    r = bundle.ocirun("events", "--interval", "100ms", cid, timeout=20)
    assert r.returncode == 0, r.stderr
    assert time.time() - t0 < 5
    evs = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert len(evs) >= 2 and all(e["type"] == "stats" and e["id"] == cid for e in evs)
    one_line_error(bundle.ocirun("events", "--interval", "5", cid), "missing unit")


def test_events_reports_oom(bundle):
    need("memory")
    bundle.config["linux"]["resources"]["memory"] = {"limit": 32 * MiB}
    cid = bundle.detach(["sh", "-c", 'sleep 1; x=$(head -c 100000000 /dev/zero | tr "\\0" a); sleep 60'])
    r = bundle.ocirun("events", "--interval", "100ms", cid, timeout=30)
    assert r.returncode == 0, r.stderr
    types = [json.loads(ln)["type"] for ln in r.stdout.splitlines()]
    assert "oom" in types


# -- kill --all / delete --force -------------------------------------------------------------

def test_kill_all_reaches_every_process(bundle):
    # init (pid 1 of its namespace) ignores TERM without a handler; its children do not
    cid = bundle.detach(["sh", "-c", "sleep 60 & sleep 61 & while :; do sleep 0.05; done"])
    init = bundle.state(cid)["pid"]
    pids_of = lambda: json.loads(bundle.ocirun("ps", "--format", "json", cid).stdout)  # noqa: E731
    assert wait_for(lambda: len(pids_of()) >= 3)
    children = [p for p in pids_of() if p != init]
    r = bundle.ocirun("kill", "--all", cid, "TERM")
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: not any(p in pids_of() for p in children))
    assert bundle.state(cid)["status"] == "running"
    r = bundle.ocirun("kill", "--all", cid, "KILL")
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: bundle.state(cid)["status"] == "stopped")
    assert wait_for(lambda: pids_of() == [])


def test_delete_force_removes_cgroups(bundle):
    cid = bundle.detach(["sh", "-c", "sleep 60 & sleep 60 & wait"])
    for ctrl in ("memory", "cpu", "pids", "freezer", "devices"):
        if ctrl in controllers():
            assert os.path.isdir(cg(ctrl, cid)), ctrl
    assert os.path.isdir(f"{cgroup2_root()}/ocirun/{cid}")
    assert wait_for(lambda: len(json.loads(bundle.ocirun("ps", "--format", "json", cid).stdout)) == 3)
    pids = json.loads(bundle.ocirun("ps", "--format", "json", cid).stdout)
    r = bundle.ocirun("delete", "--force", cid)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(cg("memory", cid))
    assert leftovers(f"/ocirun/{cid}") == []
    assert not os.path.exists(f"{bundle.root}/{cid}")
    assert wait_for(lambda: not any(os.path.exists(f"/proc/{p}/exe") and os.readlink(f"/proc/{p}/exe")
                                    for p in pids))


# -- bad linux.resources at create -----------------------------------------------------------

@pytest.mark.parametrize("edit,needle", [
    (lambda c: c["linux"]["resources"].update(memory={"limit": "x"}), "linux.resources.memory.limit"),
    (lambda c: c["linux"]["resources"]["devices"].append({"allow": True, "type": "q"}),
     "linux.resources.devices[1].type"),
    (lambda c: c["linux"].update(cgroupsPath="../../etc"), "linux.cgroupsPath"),
    (lambda c: c["linux"]["resources"].update(pids={"limit": "10"}), "linux.resources.pids.limit"),
    (lambda c: c["linux"]["resources"].update(cpu={"shares": -5}), "linux.resources.cpu.shares"),
])
def test_bad_resources_at_create_leave_nothing(bundle, edit, needle):
    edit(bundle.config)
    bundle.config["process"]["args"] = ["sleep", "60"]
    cid, r = bundle.create()
    one_line_error(r, needle)
    assert leftovers(f"/ocirun/{cid}") == []
    assert not os.path.exists(f"{bundle.root}/{cid}")


# -- podman-style absolute cgroupsPath -------------------------------------------------------

def test_absolute_cgroups_path_cleans_parents(bundle):
    # bench-config.json without its seccomp profile (seccomp is not part of this package)
    with open(os.path.join(SHARED, "fixtures", "bench-config-noseccomp.json")) as f:
        cfg = json.load(f)
    adapt_resources(cfg["linux"]["resources"])
    parent = "/ocirun-t" + uuid.uuid4().hex[:10]
    cid = bundle.new_id()
    cfg["linux"]["cgroupsPath"] = f"{parent}/libpod-{cid}"
    cfg["process"]["args"] = ["sh", "-c", "cat /proc/self/cgroup"]
    bundle.config = cfg
    bundle.write()
    r = bundle.ocirun("run", "-b", bundle.path, cid)
    assert r.returncode == 0, r.stderr
    assert f"memory:{parent}/libpod-{cid}" in r.stdout or f"{parent}/libpod-{cid}" in r.stdout
    assert leftovers(parent) == []
    assert not os.path.exists(f"{bundle.root}/{cid}")
    # detached and deleted with --force: the same cleanup
    cid2 = bundle.new_id()
    cfg["linux"]["cgroupsPath"] = f"{parent}/libpod-{cid2}"
    cfg["process"]["args"] = ["sleep", "60"]
    bundle.write()
    bundle.detach(["sleep", "60"], cid=cid2)
    assert os.path.isdir(cgdir("memory", f"libpod-{cid2}", parent))
    if "pids" in controllers():
        assert int(open(f"{cgdir('pids', 'libpod-' + cid2, parent)}/pids.max").read()) == 2048
    assert bundle.ocirun("delete", "--force", cid2).returncode == 0
    assert leftovers(parent) == []


def test_disabled_manager_refuses_limits(bundle):
    """--cgroup-manager=disabled: the container runs in the runtime's cgroup, so a limit
    cannot apply: refused with one line naming it (as crun does), nothing left; device
    rules of all of rwm still run (the runtime makes the nodes itself)."""
    bundle.config["linux"]["resources"] = {"memory": {"limit": 64 << 20}}
    bundle.config["process"]["args"] = ["true"]
    bundle.write()
    r = bundle.ocirun("--cgroup-manager", "disabled", "run", "-b", bundle.path, bundle.new_id())
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip() == ("ocirun: linux.resources.memory: cannot apply without cgroups "
                                "(the cgroup manager is disabled)")
    assert not os.path.isdir(bundle.root) or not [
        n for n in os.listdir(bundle.root) if not n.startswith(".")]
    bundle.config["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"},
                                                       {"allow": True, "access": "r"}]}
    bundle.write()
    r = bundle.ocirun("--cgroup-manager", "disabled", "run", "-b", bundle.path, bundle.new_id())
    assert r.returncode == 1 and "linux.resources.devices[1].access" in r.stderr, r.stderr
    bundle.config["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
    bundle.write()
    r = bundle.ocirun("--cgroup-manager", "disabled", "run", "-b", bundle.path, bundle.new_id())
    assert r.returncode == 0 and r.stderr == "", r.stderr
    bundle.config["linux"]["resources"] = {"memory": {"limit": "lots"}}
    bundle.write()
    r = bundle.ocirun("--cgroup-manager", "disabled", "run", "-b", bundle.path, bundle.new_id())
    assert r.returncode == 1 and r.stderr.startswith("ocirun: linux.resources.memory.limit"), r.stderr