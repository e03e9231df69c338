"""The rule of tests/unit/test_spec_rule.py on real containers: each refused field is
refused by create with one line naming it and nothing left behind, and the fields no
other test read back are read back here, from the container or the kernel."""
import ctypes
import errno
import importlib.util
import json
import os
import signal
import subprocess
import time
import uuid

import pytest

from support import REPO, SHARED

CG = "/sys/fs/cgroup"
MiB = 1 << 20


def _rule_table():
    spec = importlib.util.spec_from_file_location(
        "spec_rule_table", os.path.join(REPO, "tests", "unit", "test_spec_rule.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


RULE = _rule_table()


def _refused(bundle, field):
    """create refuses with one line naming `field`, and leaves no state."""
    cid, r = bundle.create()
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not os.path.exists(f"{bundle.root}/{cid}")
    return lines[0]


def _no_cgroup_left(cid):
    return [h for h in sorted(os.listdir(CG)) if os.path.isdir(f"{CG}/{h}/ocirun/{cid}")]


def _v1_host():
    from ocirun.cgroups import detect
    if detect() == "unified":
        pytest.skip("reads cgroup v1 files; this host is cgroup v2")


def _cg(ctrl, cid, name):
    with open(f"{CG}/{ctrl}/ocirun/{cid}/{name}") as f:
        return f.read().strip()


# --- refused: every path the table says create refuses ------------------------------------

@pytest.mark.parametrize("path", sorted(RULE.SAMPLES))
def test_refused(bundle, path):
    fragment, field = RULE.SAMPLES[path]
    bundle.config = RULE.merged(bundle.config, fragment)
    _refused(bundle, field)
    assert _no_cgroup_left(bundle.ids[-1]) == []


# --- needs-host: refused here, where the host lacks the facility ---------------------------

def _missing_controller(bundle, ctrl, resources, field):
    _v1_host()
    if os.path.isdir(f"{CG}/{ctrl}"):
        pytest.skip(f"the {ctrl} controller is mounted here: the limit applies")
    bundle.config["linux"]["resources"].update(resources)
    line = _refused(bundle, field)
    assert ctrl in line
    assert _no_cgroup_left(bundle.ids[-1]) == []


def test_hugepage_limits_without_hugetlb(bundle):
    _missing_controller(bundle, "hugetlb", {"hugepageLimits": [{"pageSize": "2MB", "limit": 2 * MiB}]},
                        "linux.resources.hugepageLimits[0]")


def test_rdma_without_the_rdma_controller(bundle):
    _missing_controller(bundle, "rdma", {"rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 100}}},
                        "linux.resources.rdma['mlx5_1']")


@pytest.mark.parametrize("network,ctrl,field", [
    ({"classID": 0x100001}, "net_cls", "linux.resources.network.classID"),
    ({"priorities": [{"name": "eth0", "priority": 5}]}, "net_prio",
     "linux.resources.network.priorities[0]"),
])
def test_network_without_net_cls_or_net_prio(bundle, network, ctrl, field):
    _missing_controller(bundle, ctrl, {"network": network}, field)


def _block_device():
    """major:minor of a whole disk of this host."""
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith(("loop", "ram")):
            with open(f"/sys/block/{name}/dev") as f:
                return [int(x) for x in f.read().split(":")]
    pytest.skip("no block device on this host")


@pytest.mark.parametrize("key", ["weight", "weightDevice"])
def test_block_io_weight_without_a_weight_file(bundle, key):
    """Weights need the BFQ scheduler (blkio.bfq.weight) or CFQ's blkio.weight: where the
    kernel offers neither, create refuses the field."""
    _v1_host()
    for name in os.listdir("/sys/block"):
        try:
            with open(f"/sys/block/{name}/queue/scheduler") as f:
                if "bfq" in f.read():
                    pytest.skip("the BFQ scheduler is available here: weights apply")
        except FileNotFoundError:
            pass  # (a device without an I/O scheduler)
    major, minor = _block_device()
    bio = {"weight": 300} if key == "weight" else \
        {"weightDevice": [{"major": major, "minor": minor, "weight": 300}]}
    bundle.config["linux"]["resources"]["blockIO"] = bio
    field = "linux.resources.blockIO.weight" if key == "weight" else \
        "linux.resources.blockIO.weightDevice[0].weight"
    _refused(bundle, field)
    assert _no_cgroup_left(bundle.ids[-1]) == []


# --- the document and the process ----------------------------------------------------------

def test_annotations_reach_the_state(bundle):
    bundle.config["annotations"] = {"org.example.rule": "value-1", "other": ""}
    cid, r = bundle.create()
    assert r.returncode == 0, r.stderr
    ann = bundle.state(cid)["annotations"]
    assert ann["org.example.rule"] == "value-1" and ann["other"] == ""


def test_oom_score_adj(bundle):
    bundle.config["process"]["oomScoreAdj"] = 123
    r = bundle.run(["cat", "/proc/self/oom_score_adj"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "123"


class SchedAttr(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("policy", ctypes.c_uint32),
                ("flags", ctypes.c_uint64), ("nice", ctypes.c_int32),
                ("priority", ctypes.c_uint32), ("runtime", ctypes.c_uint64),
                ("deadline", ctypes.c_uint64), ("period", ctypes.c_uint64),
                ("util_min", ctypes.c_uint32), ("util_max", ctypes.c_uint32)]


SYS_sched_getattr = 315  # x86_64


def test_scheduler_deadline(bundle):
    """SCHED_DEADLINE with runtime, deadline and period, read back with sched_getattr(2)
    from the host (a deadline task cannot fork, so the process itself is `sleep`)."""
    if os.uname().machine != "x86_64":
        pytest.skip("the sched_getattr number here is x86_64's")
    bundle.config["process"]["scheduler"] = {
        "policy": "SCHED_DEADLINE", "runtime": 1_000_000, "deadline": 10_000_000,
        "period": 20_000_000}
    cid = bundle.detach(["sleep", "30"])
    pid = bundle.state(cid)["pid"]
    attr = SchedAttr()
    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.syscall(SYS_sched_getattr, pid, ctypes.byref(attr), ctypes.sizeof(attr), 0)
    assert rc == 0, os.strerror(ctypes.get_errno())
    assert (attr.policy, attr.runtime, attr.deadline, attr.period) == \
        (6, 1_000_000, 10_000_000, 20_000_000)  # 6: SCHED_DEADLINE
    bundle.ocirun("delete", "-f", cid)


# --- hooks: path, args, env and timeout of each of the six kinds ---------------------------

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
         "poststop")


@pytest.mark.parametrize("kind", KINDS)
def test_hooks_get_path_args_and_env(bundle, tmp_path, kind):
    """Where the hook runs in the container's mount namespace the host path is not
    there, and it writes into the container's root instead."""
    log = tmp_path / "hooks.log"
    line = f'echo "$HOOK_VAR $1 $#" >> {log} 2>/dev/null || echo "$HOOK_VAR $1 $#" >> /hooks.log'
    bundle.config["hooks"] = {kind: [{"path": "/bin/sh", "args": ["sh", "-c", line, "sh", kind],
                                      "env": [f"HOOK_VAR=v-{kind}", "PATH=/bin"]}]}
    r = bundle.run(["true"])
    assert r.returncode == 0, r.stderr
    text = log.read_text() if log.exists() else open(f"{bundle.rootfs}/hooks.log").read()
    assert text.split() == [f"v-{kind}", kind, "1"]


@pytest.mark.parametrize("kind", KINDS)
def test_hook_timeouts(bundle, kind):
    bundle.config["hooks"] = {kind: [{"path": "/bin/sleep", "args": ["sleep", "20"],
                                      "timeout": 1}]}
    t = time.monotonic()
    r = bundle.run(["true"])
    assert time.monotonic() - t < 10, r.stderr
    assert "timed out after 1 s" in r.stderr, r.stderr
    if kind in ("poststart", "poststop"):
        assert r.returncode == 0, r.stderr  # runtime.md: a warning for these two
    else:
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr


# --- namespaces and ids ----------------------------------------------------------------------

def test_gid_mappings(bundle):
    bundle.use_user_namespace(100000, own_bundle=True)
    bundle.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 1000},
                                             {"containerID": 1000, "hostID": 300000, "size": 5}]
    r = bundle.run(["cat", "/proc/self/gid_map"])
    assert r.returncode == 0, r.stderr
    assert [line.split() for line in r.stdout.splitlines()] == [
        ["0", "200000", "1000"], ["1000", "300000", "5"]]


def test_time_offsets(bundle):
    bundle.config["linux"]["namespaces"].append({"type": "time"})
    bundle.config["linux"]["timeOffsets"] = {"monotonic": {"secs": 86400, "nanosecs": 5},
                                             "boottime": {"secs": 7200, "nanosecs": 9}}
    r = bundle.run(["cat", "/proc/self/timens_offsets"])
    assert r.returncode == 0, r.stderr
    assert sorted(line.split() for line in r.stdout.splitlines()) == [
        ["boottime", "7200", "9"], ["monotonic", "86400", "5"]]


# --- seccomp ----------------------------------------------------------------------------------

def _podman_profile():
    with open(os.path.join(SHARED, "fixtures", "seccomp-podman-default.json")) as f:
        return json.load(f)


@pytest.mark.parametrize("ret,text", [(38, "Function not implemented"),
                                      (1, "Operation not permitted")])
def test_seccomp_default_errno_ret(bundle, ret, text):
    """podman's profile without mkdir and mkdirat: the default action answers them,
    with defaultErrnoRet."""
    prof = _podman_profile()
    assert prof["defaultAction"] == "SCMP_ACT_ERRNO"
    prof["defaultErrnoRet"] = ret
    for rule in prof["syscalls"]:
        rule["names"] = [n for n in rule["names"] if n not in ("mkdir", "mkdirat")] or ["getpid"]
    bundle.config["linux"]["seccomp"] = prof
    r = bundle.run(["mkdir", "/tmp/d"])
    assert r.returncode == 1 and text in r.stderr, r.stderr
    assert not os.path.exists(f"{bundle.rootfs}/tmp/d")


def test_seccomp_syscall_args(bundle):
    """kill(2) refused when (arg1 & 0xff) == SIGUSR1: index, op, value (the mask) and
    valueTwo (the datum) all count (SCMP_CMP_MASKED_EQ)."""
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
                      "args": [{"index": 1, "op": "SCMP_CMP_MASKED_EQ", "value": 0xff,
                                "valueTwo": signal.SIGUSR1}]}]}
    r = bundle.run(["sh", "-c", "kill -0 $$ && echo zero-ok; kill -USR1 $$ || echo usr1-refused"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["zero-ok", "usr1-refused"], (r.stdout, r.stderr)
    assert "Function not implemented" in r.stderr


def test_seccomp_architectures(tmp_path):
    """A syscall of an ABI the filter does not list is killed; listed, it passes the
    filter (and this kernel, without x32 support, answers ENOSYS)."""
    from ocirun.seccomp import load, prepare
    if os.uname().machine != "x86_64":
        pytest.skip("uses the x32 ABI of x86_64")
    libc = ctypes.CDLL(None, use_errno=True)
    out = {}
    for archs in (["SCMP_ARCH_X86_64"], ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"]):
        p = prepare({"defaultAction": "SCMP_ACT_ALLOW", "architectures": archs,
                     "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO"}]}, None)
        pid = os.fork()
        if pid == 0:
            code = 100
            try:
                load(p, None)
                rc = libc.syscall(0x40000000 | 39)  # getpid, x32 numbering
                code = 10 if rc >= 0 else 50 + ctypes.get_errno()
            finally:
                os._exit(code)
        _, st = os.waitpid(pid, 0)
        out[len(archs)] = ("signal", os.WTERMSIG(st)) if os.WIFSIGNALED(st) else \
            ("exit", os.WEXITSTATUS(st))
    assert out[1] == ("signal", signal.SIGSYS)
    assert out[2] in (("exit", 10), ("exit", 50 + errno.ENOSYS))


def _seccomp_log_lines():
    r = subprocess.run(["dmesg"], capture_output=True, text=True)
    return [line for line in r.stdout.splitlines()
            if "type=1326" in line and 'comm="mkdir"' in line and "code=0x50000" in line]


@pytest.mark.parametrize("flags,logged", [(["SECCOMP_FILTER_FLAG_LOG"], True), ([], False)])
def test_seccomp_log_flag(bundle, flags, logged):
    """SECCOMP_FILTER_FLAG_LOG: the kernel logs the ERRNO the filter returns (an audit
    record of type 1326, SECCOMP_RET_ERRNO = code 0x50000); without it, it does not."""
    if subprocess.run(["dmesg"], capture_output=True).returncode != 0:
        pytest.skip("the kernel log cannot be read here")
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "flags": flags,
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    before = len(_seccomp_log_lines())
    r = bundle.run(["mkdir", "/tmp/logged"])
    assert r.returncode == 1, r.stderr
    deadline = time.monotonic() + 2
    while logged and len(_seccomp_log_lines()) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (len(_seccomp_log_lines()) > before) == logged


# --- cgroups (v1 here) -------------------------------------------------------------------------

def test_memory_settings(bundle):
    _v1_host()
    bundle.config["linux"]["resources"]["memory"] = {
        "limit": 256 * MiB, "reservation": 32 * MiB, "swappiness": 7,
        "disableOOMKiller": True, "kernelTCP": 16 * MiB}
    cid = bundle.detach(["sleep", "30"])
    assert int(_cg("memory", cid, "memory.soft_limit_in_bytes")) == 32 * MiB
    assert _cg("memory", cid, "memory.swappiness") == "7"
    assert "oom_kill_disable 1" in _cg("memory", cid, "memory.oom_control").splitlines()
    assert int(_cg("memory", cid, "memory.kmem.tcp.limit_in_bytes")) == 16 * MiB
    bundle.ocirun("delete", "-f", cid)


def test_check_before_update(bundle):
    """update with checkBeforeUpdate refuses a limit below the current usage itself (the
    kernel would otherwise try to reclaim, and say only EBUSY)."""
    _v1_host()
    bundle.config["linux"]["resources"]["memory"] = {"limit": 256 * MiB}
    cid = bundle.detach(["sleep", "30"])
    doc = {"memory": {"limit": 4096, "checkBeforeUpdate": True}}
    r = bundle.ocirun("update", "--resources=-", cid, input=json.dumps(doc))
    assert r.returncode == 1
    assert "linux.resources.memory.limit" in r.stderr and "(checkBeforeUpdate)" in r.stderr
    assert int(_cg("memory", cid, "memory.limit_in_bytes")) == 256 * MiB
    bundle.ocirun("delete", "-f", cid)


def test_cpu_settings(bundle):
    _v1_host()
    bundle.config["linux"]["resources"]["cpu"] = {"mems": "0", "idle": 1, "burst": 1000,
                                                  "quota": 50000, "period": 100000}
    cid = bundle.detach(["sleep", "30"])
    assert _cg("cpuset", cid, "cpuset.mems") == "0"
    assert _cg("cpu", cid, "cpu.idle") == "1"
    assert _cg("cpu", cid, "cpu.cfs_burst_us") == "1000"
    bundle.ocirun("delete", "-f", cid)
    # a node this host lacks reaches the kernel (EINVAL), which is what says it was written
    with open("/sys/devices/system/node/online") as f:
        online = f.read().strip()
    bundle.config["linux"]["resources"]["cpu"] = {"mems": "63"}
    if online in ("0-63", "63"):
        pytest.skip("node 63 exists here")
    _refused(bundle, "linux.resources.cpu.mems")


def test_cpu_realtime(bundle):
    """A cgroup right under the cpu hierarchy's root (whose real-time budget it can
    take from), given a budget of its own."""
    _v1_host()
    if not os.path.exists(f"{CG}/cpu/cpu.rt_runtime_us"):
        pytest.skip("no real-time group scheduling here")
    path = "/ocirun-test-" + uuid.uuid4().hex[:8]
    bundle.config["linux"]["cgroupsPath"] = path
    bundle.config["linux"]["resources"]["cpu"] = {"realtimeRuntime": 10000,
                                                  "realtimePeriod": 500000}
    cid = bundle.detach(["sleep", "30"])
    try:
        with open(f"{CG}/cpu{path}/cpu.rt_runtime_us") as f:
            assert f.read().strip() == "10000"
        with open(f"{CG}/cpu{path}/cpu.rt_period_us") as f:
            assert f.read().strip() == "500000"
    finally:
        bundle.ocirun("delete", "-f", cid)
    assert not os.path.exists(f"{CG}/cpu{path}")


def test_block_io_throttle(bundle):
    _v1_host()
    major, minor = _block_device()
    dev = {"major": major, "minor": minor}
    bundle.config["linux"]["resources"]["blockIO"] = {
        "throttleReadBpsDevice": [dict(dev, rate=1048576)],
        "throttleWriteBpsDevice": [dict(dev, rate=2097152)],
        "throttleReadIOPSDevice": [dict(dev, rate=100)],
        "throttleWriteIOPSDevice": [dict(dev, rate=200)]}
    cid = bundle.detach(["sleep", "30"])
    mm = f"{major}:{minor}"
    for name, rate in (("read_bps_device", 1048576), ("write_bps_device", 2097152),
                       ("read_iops_device", 100), ("write_iops_device", 200)):
        assert _cg("blkio", cid, f"blkio.throttle.{name}") == f"{mm} {rate}", name
    bundle.ocirun("delete", "-f", cid)
