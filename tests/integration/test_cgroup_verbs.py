"""Resource limits, pause/resume, update, ps, events, kill --all and delete --force on real
containers and this machine's cgroups. Every container gets its own cgroup under /ocirun/<id>
(or a path of its own below a parent the test names uniquely); nothing else is written."""
import json
import os
import subprocess
import time
import uuid

import pytest

from support import OCIRUN, SHARED

CG = "/sys/fs/cgroup"
MiB = 1 << 20


@pytest.fixture(autouse=True)
def _v1_host():
    from ocirun.cgroups import detect
    if detect() == "unified":
        pytest.skip("these tests read cgroup v1 files")


def cg(ctrl, cid, name=None):
    d = f"{CG}/{ctrl}/ocirun/{cid}"
    if name is None:
        return d
    with open(f"{d}/{name}") as f:
        return f.read().strip()


def leftovers(path):
    """Hierarchies (v1 controllers and the unified one) still holding `path`."""
    return [h for h in sorted(os.listdir(CG)) if os.path.isdir(f"{CG}/{h}{path}")]


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
    bundle.config["linux"]["resources"]["memory"] = {"limit": 32 * MiB}
    # the shell keeps the whole 100 MB string of the command substitution in memory
    r = bundle.run(["sh", "-c", 'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo survived'])
    assert r.returncode == 137, (r.returncode, r.stdout, r.stderr)
    assert "survived" not in r.stdout
    assert leftovers(f"/ocirun/{bundle.ids[-1]}") == []


def test_memory_limit_is_written(bundle):
    bundle.config["linux"]["resources"]["memory"] = {"limit": 32 * MiB}
    cid = bundle.detach(["sleep", "60"])
    assert int(cg("memory", cid, "memory.limit_in_bytes")) == 32 * MiB


def test_pids_limit_makes_forks_fail(bundle):
    bundle.config["linux"]["resources"]["pids"] = {"limit": 10}
    r = bundle.run(["sh", "-c", "i=0; while [ $i -lt 20 ]; do sleep 5 & i=$((i+1)); done; "
                                "echo spawned; kill $(jobs -p) 2>/dev/null; exit 0"])
    out = r.stdout + r.stderr
    assert "can't fork" in out or "Resource temporarily unavailable" in out, out


def test_cpu_shares_and_quota_land_in_cpu_files(bundle):
    bundle.config["linux"]["resources"]["cpu"] = {"shares": 512, "quota": 50000, "period": 100000}
    cid = bundle.detach(["sleep", "60"])
    assert cg("cpu", cid, "cpu.shares") == "512"
    assert cg("cpu", cid, "cpu.cfs_quota_us") == "50000"
    assert cg("cpu", cid, "cpu.cfs_period_us") == "100000"
    assert int(cg("pids", cid, "pids.max")) == 2048  # the fixture's pids.limit


# -- pause / resume --------------------------------------------------------------------------

COUNTER = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.01; done"]


def test_pause_resume(bundle):
    cid = bundle.detach(COUNTER)
    assert wait_for(lambda: read_rootfs(bundle, "tmp/count") not in ("", "0"))
    r = bundle.ocirun("pause", cid)
    assert r.returncode == 0, r.stderr
    assert bundle.state(cid)["status"] == "paused"
    assert cg("freezer", cid, "freezer.state") == "FROZEN"
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
    bundle.config["linux"]["resources"].pop("pids")  # (a limit needs a cgroup)
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
    bundle.config["linux"]["resources"]["memory"] = {"limit": 32 * MiB}
    cid = bundle.detach(["sleep", "60"])
    r = bundle.ocirun("update", "--memory", "64m", "--cpu-share", "256", "--pids-limit", "50",
                      "--cpu-quota", "20000", "--cpu-period", "100000", cid)
    assert r.returncode == 0, r.stderr
    assert int(cg("memory", cid, "memory.limit_in_bytes")) == 64 * MiB
    assert cg("cpu", cid, "cpu.shares") == "256"
    assert cg("cpu", cid, "cpu.cfs_quota_us") == "20000"
    assert cg("pids", cid, "pids.max") == "50"
    r = bundle.ocirun("update", "--memory-reservation", "16M", "--pids-limit", "-1", cid)
    assert r.returncode == 0, r.stderr
    assert int(cg("memory", cid, "memory.soft_limit_in_bytes")) == 16 * MiB
    assert cg("pids", cid, "pids.max") == "max"
    assert int(cg("memory", cid, "memory.limit_in_bytes")) == 64 * MiB  # untouched


def test_update_resources_from_stdin_and_file(bundle):
    cid = bundle.detach(["sleep", "60"])
    doc = {"memory": {"limit": 48 * MiB}, "cpu": {"shares": 300}, "pids": {"limit": 30}}
    r = bundle.ocirun("update", "--resources=-", cid, input=json.dumps(doc))
    assert r.returncode == 0, r.stderr
    assert int(cg("memory", cid, "memory.limit_in_bytes")) == 48 * MiB
    assert cg("cpu", cid, "cpu.shares") == "300"
    assert cg("pids", cid, "pids.max") == "30"
    path = f"{bundle.path}/res.json"
    with open(path, "w") as f:
        json.dump({"pids": {"limit": 40}}, f)
    r = bundle.ocirun("update", "-r", path, cid)
    assert r.returncode == 0, r.stderr
    assert cg("pids", cid, "pids.max") == "40"
    assert cg("cpu", cid, "cpu.shares") == "300"


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
    bundle.config["linux"]["resources"]["memory"] = {"limit": 32 * MiB}
    cid = bundle.detach(["sleep", "60"])
    r = bundle.ocirun("update", *args, cid, input=stdin)
    one_line_error(r, *needles)
    assert int(cg("memory", cid, "memory.limit_in_bytes")) == 32 * MiB
    assert cg("cpu", cid, "cpu.shares") == "1024"


def test_update_stopped_container_changes_nothing(bundle):
    bundle.config["linux"]["resources"]["memory"] = {"limit": 32 * MiB}
    cid = bundle.detach(["true"])
    assert wait_for(lambda: bundle.state(cid)["status"] == "stopped")
    one_line_error(bundle.ocirun("update", "--memory", "64m", cid), "container not running")
    if os.path.isdir(cg("memory", cid)):
        assert int(cg("memory", cid, "memory.limit_in_bytes")) == 32 * MiB
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
    for ctrl in ("memory", "cpu", "pids", "freezer", "devices", "unified"):
        assert os.path.isdir(cg(ctrl, cid)), ctrl
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
    assert os.path.isdir(f"{CG}/memory{parent}/libpod-{cid2}")
    assert int(open(f"{CG}/pids{parent}/libpod-{cid2}/pids.max").read()) == 2048
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