"""cgroup v2 file logic against a temp directory laid out like a cgroup2 mount."""
import os

import pytest

import ocirun.cgroups as cg
from ocirun.cgroups.v2 import plan_v2
from ocirun.errors import OciError

LEAF_FILES = ["cgroup.procs", "cgroup.freeze", "cgroup.events", "cgroup.kill",
              "cgroup.subtree_control", "cgroup.controllers",
              "memory.max", "memory.swap.max", "memory.low", "memory.current", "memory.high",
              "cpu.weight", "cpu.max", "cpu.max.burst", "cpu.idle", "cpuset.cpus", "cpuset.mems",
              "pids.max", "io.weight", "io.max", "hugetlb.2MB.max", "rdma.max"]


@pytest.fixture
def v2root(tmp_path):
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma\n")
    (root / "cgroup.subtree_control").write_text("")
    (root / "cgroup.procs").write_text("")
    return root


def touch_leaf(m, extra=()):
    """What the kernel would show in a fresh cgroup once controllers are enabled."""
    for name in LEAF_FILES + list(extra):
        p = os.path.join(m.leaf, name)
        if not os.path.exists(p):
            with open(p, "w") as f:
                f.write({"cgroup.events": "populated 0\nfrozen 0\n", "cpu.max": "max 100000\n",
                         "cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma\n",
                         "memory.current": "4096\n"}.get(name, ""))
    for d in [m.root] + [x for x in m.created if x != m.leaf]:
        with open(os.path.join(d, "cgroup.subtree_control"), "a"):
            pass


def drop_files(m):
    """cgroupfs interface files vanish with their directory; a temp dir keeps them."""
    for d in m.created:
        for cur, _dirs, files in os.walk(d):
            for f in files:
                os.unlink(os.path.join(cur, f))


def destroy(m):
    drop_files(m)
    m.destroy()


def read(m, name):
    with open(os.path.join(m.leaf, name)) as f:
        return f.read()


def manager(v2root, path="/ocirun-test/c1"):
    return cg.open_manager("cgroupfs", path, "c1", root=str(v2root), mode="unified")


def test_detect_from_markers(tmp_path, v2root):
    nomounts = str(tmp_path / "none")
    assert cg.detect(str(v2root), mountinfo=nomounts) == "unified"
    hybrid = tmp_path / "h"
    (hybrid / "unified").mkdir(parents=True)
    (hybrid / "unified" / "cgroup.controllers").write_text("")
    assert cg.detect(str(hybrid), mountinfo=nomounts) == "hybrid"
    assert cg.detect(str(tmp_path / "empty"), mountinfo=nomounts) == "v1"


def test_detect_from_mountinfo(tmp_path):
    mi = tmp_path / "mountinfo"
    mi.write_text("31 23 0:28 / /x/cg rw,relatime - cgroup2 cgroup2 rw\n")
    assert cg.detect("/x/cg", mountinfo=str(mi)) == "unified"
    mi.write_text("31 23 0:28 / /x/cg rw - tmpfs tmpfs rw\n"
                  "32 31 0:29 / /x/cg/memory rw - cgroup cgroup rw,memory\n"
                  "41 31 0:38 / /x/cg/unified rw - cgroup2 cgroup2 rw\n")
    assert cg.detect("/x/cg", mountinfo=str(mi)) == "hybrid"
    mi.write_text("31 23 0:28 / /x/cg rw - tmpfs tmpfs rw\n"
                  "32 31 0:29 / /x/cg/memory rw - cgroup cgroup rw,memory\n")
    assert cg.detect("/x/cg", mountinfo=str(mi)) == "v1"


def test_plan_memory_cpu_pids():
    steps = plan_v2({"memory": {"limit": 100 << 20, "swap": 300 << 20, "reservation": 50 << 20},
                     "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 0,
                             "cpus": "0", "mems": "0", "idle": 1},
                     "pids": {"limit": -1}})
    writes = {s[2][0][0]: s[2][0][1] for s in steps if s[0] == "w"}
    assert writes["memory.max"] == str(100 << 20)
    assert writes["memory.swap.max"] == str(200 << 20)
    assert writes["memory.low"] == str(50 << 20)
    assert writes["cpu.weight"] == "39"
    assert writes["cpu.idle"] == "1"
    assert writes["pids.max"] == "max"
    assert ("cpu_max", 50000, 100000) in steps
    assert "cpu.max.burst" not in writes  # burst 0 on create is the default


def test_plan_unlimited_memory_lifts_swap():
    steps = plan_v2({"memory": {"limit": -1}})
    writes = {s[2][0][0]: s[2][0][1] for s in steps if s[0] == "w"}
    assert writes == {"memory.max": "max", "memory.swap.max": "max"}


def test_plan_unified_last_and_wins():
    steps = plan_v2({"cpu": {"shares": 1024}, "unified": {"cpu.weight": "77"}})
    w = [s[2][0] for s in steps if s[0] == "w"]
    assert w == [("cpu.weight", "39"), ("cpu.weight", "77")]


def test_plan_io():
    steps = plan_v2({"blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 10}],
                                 "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}],
                                 "throttleReadBpsDevice": [{"major": 8, "minor": 16, "rate": 0}]}})
    cands = [s[2] for s in steps if s[0] == "w"]
    assert cands[0] == [("io.bfq.weight", "500"), ("io.weight", "default 4950")]
    assert cands[1] == [("io.bfq.weight", "8:0 10"), ("io.weight", "8:0 1")]
    assert cands[2] == [("io.max", "8:16 rbps=max")]
    assert cands[3] == [("io.max", "8:16 wiops=100")]


def test_create_records_and_destroy_removes_only_created(v2root):
    (v2root / "ocirun-test").mkdir()
    m = manager(v2root)
    m.create()
    assert m.created == [str(v2root / "ocirun-test" / "c1")]
    touch_leaf(m)
    destroy(m)
    assert not (v2root / "ocirun-test" / "c1").exists()
    assert (v2root / "ocirun-test").exists()  # not ours: stays


def test_destroy_removes_created_parents_and_sub_cgroups(v2root):
    m = manager(v2root, "/ocirun-test/deep/c1")
    m.create()
    assert len(m.created) == 3
    os.makedirs(os.path.join(m.leaf, "nested", "more"))  # made by the container
    destroy(m)
    assert not (v2root / "ocirun-test").exists()


def test_shared_parent_survives_other_container(v2root):
    a = manager(v2root, "/ocirun-test/a")
    a.create()
    b = manager(v2root, "/ocirun-test/b")
    b.create()
    assert b.created == [str(v2root / "ocirun-test" / "b")]
    destroy(a)  # parent still holds b: left in place, no error
    assert (v2root / "ocirun-test" / "b").exists()
    destroy(b)
    assert (v2root / "ocirun-test").exists()  # b did not create it; a's turn has passed


def test_apply_writes_files(v2root):
    m = manager(v2root)
    m.create()
    touch_leaf(m)
    m.apply({"memory": {"limit": 1 << 30, "swap": 2 << 30}, "cpu": {"quota": 20000},
             "pids": {"limit": 42}, "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 21}],
             "rdma": {"mlx5_1": {"hcaHandles": 2}},
             "unified": {"memory.high": "900M"}})
    assert read(m, "memory.max") == str(1 << 30)
    assert read(m, "memory.swap.max") == str(1 << 30)
    assert read(m, "cpu.max") == "20000 100000" or read(m, "cpu.max") == "20000"
    assert read(m, "pids.max") == "42"
    assert read(m, "hugetlb.2MB.max") == str(4 << 21)
    assert read(m, "rdma.max") == "mlx5_1 hca_handle=2"
    assert read(m, "memory.high") == "900M"
    # controllers were asked for in the parents
    assert "+memory" in (v2root / "cgroup.subtree_control").read_text()
    destroy(m)


def test_update_period_keeps_quota(v2root):
    m = manager(v2root)
    m.create()
    touch_leaf(m)
    with open(os.path.join(m.leaf, "cpu.max"), "w") as f:
        f.write("30000 100000\n")
    m.update({"cpu": {"period": 200000}})
    assert read(m, "cpu.max") == "30000 200000"
    destroy(m)


def test_check_before_update(v2root):
    m = manager(v2root)
    m.create()
    touch_leaf(m)
    with pytest.raises(OciError, match="checkBeforeUpdate"):
        m.update({"memory": {"limit": 1024, "checkBeforeUpdate": True}})
    m.update({"memory": {"limit": 8192, "checkBeforeUpdate": True}})
    assert read(m, "memory.max") == "8192"
    destroy(m)


def test_missing_controller_file_is_an_error(v2root):
    m = manager(v2root)
    m.create()
    touch_leaf(m)
    os.unlink(os.path.join(m.leaf, "pids.max"))
    with pytest.raises(OciError, match="pids.max does not exist"):
        m.apply({"pids": {"limit": 5}})
    with open(os.path.join(m.leaf, "cgroup.controllers"), "w") as f:
        f.write("memory\n")
    with pytest.raises(OciError, match="pids controller is not enabled"):
        m.apply({"pids": {"limit": 5}})
    destroy(m)


def test_freeze_thaw_state_files(v2root, monkeypatch):
    m = manager(v2root)
    m.create()
    touch_leaf(m)
    with open(os.path.join(m.leaf, "cgroup.events"), "w") as f:
        f.write("populated 1\nfrozen 1\n")  # the kernel would flip this after cgroup.freeze
    m.freeze()
    assert read(m, "cgroup.freeze") == "1"
    assert m.state() == "paused"
    m.thaw()
    assert read(m, "cgroup.freeze") == "0"
    destroy(m)


def test_freeze_times_out_and_thaws(v2root, monkeypatch):
    from ocirun.cgroups import common
    monkeypatch.setattr(common, "FREEZE_TIMEOUT", 0.05)
    m = manager(v2root)
    m.create()
    touch_leaf(m)
    with pytest.raises(OciError, match="did not freeze"):
        m.freeze()
    assert read(m, "cgroup.freeze") == "0"
    destroy(m)


def test_kill_all_uses_cgroup_kill(v2root):
    m = manager(v2root)
    m.create()
    touch_leaf(m)
    m.kill_all()
    assert read(m, "cgroup.kill") == "1"
    destroy(m)


def test_pids_recursive(v2root):
    m = manager(v2root)
    m.create()
    touch_leaf(m)
    with open(os.path.join(m.leaf, "cgroup.procs"), "w") as f:
        f.write("10\n11\n")
    os.mkdir(os.path.join(m.leaf, "sub"))
    with open(os.path.join(m.leaf, "sub", "cgroup.procs"), "w") as f:
        f.write("12\n")
    assert sorted(m.pids()) == [10, 11, 12]
    with pytest.raises(OciError, match="has processes"):
        manager(v2root).create()  # an existing populated cgroup is not adopted
    with open(os.path.join(m.leaf, "cgroup.procs"), "w") as f:
        f.write("")
    with open(os.path.join(m.leaf, "sub", "cgroup.procs"), "w") as f:
        f.write("")
    destroy(m)


def test_stats_shape(v2root):
    m = manager(v2root)
    m.create()
    touch_leaf(m)
    files = {"cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\n"
                         "nr_throttled 1\nthrottled_usec 20\n",
             "memory.stat": "anon 4096\nfile 8192\n", "memory.current": "12288\n",
             "memory.max": "max\n", "memory.events": "low 0\nhigh 0\nmax 3\noom 0\n",
             "pids.current": "2\n", "pids.max": "max\n",
             "io.stat": "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n"}
    for k, v in files.items():
        with open(os.path.join(m.leaf, k), "w") as f:
            f.write(v)
    s = m.stats()
    assert s["cpu"]["usage"] == {"total": 1500000, "kernel": 500000, "user": 1000000}
    assert s["cpu"]["throttling"] == {"periods": 4, "throttledPeriods": 1, "throttledTime": 20000}
    assert s["memory"]["cache"] == 8192
    assert s["memory"]["usage"] == {"limit": (1 << 64) - 1, "usage": 12288, "failcnt": 3}
    assert s["memory"]["raw"] == {"anon": 4096, "file": 8192}
    assert s["pids"] == {"current": 2}
    assert s["blkio"]["ioServiceBytesRecursive"] == [
        {"major": 8, "op": "Read", "value": 100}, {"major": 8, "op": "Write", "value": 200}]
    assert s["hugetlb"] == {}
    destroy(m)


def test_to_dict_round_trip(v2root):
    import json
    m = manager(v2root)
    m.create()
    d = json.loads(json.dumps(m.to_dict()))
    assert d["mode"] == "unified" and d["path"] == "/ocirun-test/c1"
    m2 = cg.from_dict(d)
    assert m2.leaf == m.leaf and m2.created == m.created
    destroy(m2)
    assert not os.path.exists(m.leaf)


def test_from_dict_refuses_foreign_created(v2root):
    m = manager(v2root)
    d = m.to_dict()
    d["created"] = [str(v2root)]  # a corrupted state file must not make destroy remove root
    with pytest.raises(OciError, match="corrupt"):
        cg.from_dict(d)
    d["created"] = []
    d["path"] = "/a/../.."
    with pytest.raises(Exception):
        cg.from_dict(d)


def test_paused_reads_cgroup_events(v2root):
    import json
    import ocirun.cgroups as cg
    m = manager(v2root)
    m.create()
    touch_leaf(m)
    d = json.loads(json.dumps(m.to_dict()))
    for text, frozen in (("populated 1\nfrozen 1\n", True), ("populated 1\nfrozen 0\n", False),
                         ("", False)):
        with open(os.path.join(m.leaf, "cgroup.events"), "w") as f:
            f.write(text)
        assert cg.paused(d) is frozen
        assert (cg.from_dict(d).state() == "paused") is frozen
    destroy(m)
