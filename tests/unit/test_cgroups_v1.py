"""cgroup v1 file logic against a temp directory laid out like /sys/fs/cgroup."""
import os

import pytest

import ocirun.cgroups as cg
from ocirun.cgroups.v1 import UNLIMITED, device_rule, find_hierarchies, plan_v1, set_memory_v1
from ocirun.errors import OciError

FILES = {
    "memory": ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.soft_limit_in_bytes",
               "memory.swappiness", "memory.oom_control", "memory.usage_in_bytes",
               "memory.kmem.tcp.limit_in_bytes"],
    "cpu,cpuacct": ["cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.rt_period_us",
                    "cpu.rt_runtime_us", "cpuacct.usage", "cpu.stat", "cpuacct.stat"],
    "cpuset": ["cpuset.cpus", "cpuset.mems"],
    "pids": ["pids.max", "pids.current"],
    "freezer": ["freezer.state"],
    "devices": ["devices.allow", "devices.deny"],
    "blkio": ["blkio.bfq.weight", "blkio.throttle.read_bps_device"],
}


@pytest.fixture
def v1root(tmp_path):
    root = tmp_path / "cgroup"
    for h, files in FILES.items():
        (root / h).mkdir(parents=True)
        for f in files + ["cgroup.procs"]:
            (root / h / f).write_text("")
    (root / "cpu").symlink_to("cpu,cpuacct")
    (root / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (root / "cpuset" / "cpuset.mems").write_text("0\n")
    (root / "systemd").mkdir()
    return root


def open_v1(root, path="/ocirun-test/c1"):
    return cg.open_manager("cgroupfs", path, "c1", root=str(root), mode="v1",
                           mountinfo=str(root / "no-mountinfo"))


def populate(m):
    for h, files in FILES.items():
        d = os.path.join(m.root, h) + m.path
        for f in files + ["cgroup.procs"]:
            p = os.path.join(d, f)
            if not os.path.exists(p):
                open(p, "w").close()


def destroy(m):
    for d in m.created:
        for cur, _dirs, files in os.walk(d):
            for f in files:
                os.unlink(os.path.join(cur, f))
    m.destroy()


def read(m, ctrl, name):
    with open(os.path.join(m.dir(ctrl), name)) as f:
        return f.read()


def test_find_hierarchies_from_dirs(v1root):
    h = find_hierarchies(str(v1root), str(v1root / "none"))
    assert h["cpu"] == h["cpuacct"] == str(v1root / "cpu,cpuacct")
    assert h["memory"] == str(v1root / "memory")
    assert "systemd" not in h


def test_find_hierarchies_from_mountinfo(tmp_path):
    mi = tmp_path / "mi"
    mi.write_text("32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
                  "40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n"
                  "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
                  "36 1 0:32 / /elsewhere/memory rw - cgroup cgroup rw,memory\n")
    h = find_hierarchies("/sys/fs/cgroup", str(mi))
    assert h == {"cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
                 "memory": "/sys/fs/cgroup/memory"}


def test_create_copies_cpuset_and_records(v1root):
    m = open_v1(v1root)
    m.create()
    # one per distinct hierarchy, parents first; cpu and cpuacct share one
    assert len(m.created) == 2 * len(FILES)
    assert m.created.index(str(v1root / "memory" / "ocirun-test")) < \
        m.created.index(str(v1root / "memory" / "ocirun-test" / "c1"))
    destroy(m)
    assert not any((v1root / h / "ocirun-test").exists() for h in FILES)


def test_cpuset_initialised_from_parent(v1root, monkeypatch):
    # mkdir in a temp dir makes no files: have mkdir create the (empty) cpuset files the
    # kernel would show
    import posix
    real_mkdir = posix.mkdir

    def mkdir(p, mode=0o777):
        real_mkdir(p, mode)
        if "/cpuset/" in p:
            for f in ("cpuset.cpus", "cpuset.mems"):
                open(os.path.join(p, f), "w").close()
    monkeypatch.setattr(posix, "mkdir", mkdir)  # what the cgroup code calls
    m = open_v1(v1root)
    m.create()
    assert read(m, "cpuset", "cpuset.cpus") == "0-1"
    assert read(m, "cpuset", "cpuset.mems") == "0"
    destroy(m)


def test_plan_v1_values():
    steps = plan_v1({"cpu": {"shares": 512, "quota": -1, "period": 100000, "cpus": "1"},
                     "pids": {"limit": 0}, "blockIO": {"weight": 300},
                     "devices": [{"allow": False, "access": "rwm"},
                                 {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                                 {"allow": True, "type": "b", "major": 8, "access": "r"}]})
    w = [(s[1], s[2][0]) for s in steps if s[0] == "w"]
    assert w == [("cpu", ("cpu.shares", "512")), ("cpu", ("cpu.cfs_period_us", "100000")),
                 ("cpu", ("cpu.cfs_quota_us", "-1")), ("cpuset", ("cpuset.cpus", "1")),
                 ("blkio", ("blkio.weight", "300")),
                 ("devices", ("devices.deny", "a")),
                 ("devices", ("devices.allow", "c 1:3 rw")),
                 ("devices", ("devices.allow", "b 8:* r"))]


def test_device_rule_strings():
    assert device_rule({"allow": True}) == "a"
    assert device_rule({"allow": True, "type": "c", "major": -1, "minor": -1}) == "c *:* rwm"
    assert device_rule({"allow": True, "type": "c", "major": 136, "access": "rwm"}) == "c 136:* rwm"


def test_plan_update_devices_resets_first():
    steps = plan_v1({"devices": [{"allow": True, "type": "c", "major": 1, "minor": 3}]}, update=True)
    assert [s[2][0] for s in steps] == [("devices.allow", "a"), ("devices.allow", "c 1:3 rwm")]


def test_plan_unified_rejected():
    with pytest.raises(OciError, match="unified"):
        plan_v1({"unified": {"memory.high": "1"}})


def test_kernel_memory_without_a_limit_writes_nothing():
    # (a limit is refused by validate: the kernel ignores kmem.limit_in_bytes)
    assert plan_v1({"memory": {"kernel": -1}}) == []


def test_memory_order_growing_and_shrinking(tmp_path, monkeypatch):
    d = tmp_path / "m"
    d.mkdir()
    for f in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"):
        (d / f).write_text(str(UNLIMITED))
    order = []
    from ocirun.cgroups import v1
    real = v1.write_checked

    def record(dd, name, value):
        order.append((name, value))
        real(dd, name, value)
    monkeypatch.setattr(v1, "write_checked", record)
    set_memory_v1(str(d), 100, 200, False)  # shrinking from unlimited: limit first
    assert order == [("memory.limit_in_bytes", "100"), ("memory.memsw.limit_in_bytes", "200")]
    order.clear()
    set_memory_v1(str(d), 300, 600, False)  # growing memsw (200 -> 600): memsw first
    assert order == [("memory.memsw.limit_in_bytes", "600"), ("memory.limit_in_bytes", "300")]
    order.clear()
    set_memory_v1(str(d), -1, 0, False)  # lifting the limit lifts memsw too
    assert order == [("memory.memsw.limit_in_bytes", "-1"), ("memory.limit_in_bytes", "-1")]


def test_memory_swap_without_swap_accounting(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "memory.limit_in_bytes").write_text("0")
    with pytest.raises(OciError, match="swap accounting"):
        set_memory_v1(str(d), 100, 200, False)
    set_memory_v1(str(d), -1, 0, False)  # no memsw file: just the limit
    assert (d / "memory.limit_in_bytes").read_text() == "-1"


def test_check_before_update_v1(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "memory.limit_in_bytes").write_text("0")
    (d / "memory.usage_in_bytes").write_text("5000\n")
    with pytest.raises(OciError, match="checkBeforeUpdate"):
        set_memory_v1(str(d), 4096, 0, True)


def test_apply_and_missing_controller(v1root):
    m = open_v1(v1root)
    m.create()
    populate(m)
    m.apply({"memory": {"limit": 1 << 20, "swappiness": 0}, "pids": {"limit": 7},
             "cpu": {"shares": 100}, "blockIO": {"weight": 200,
                                                 "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 5}]}})
    assert read(m, "memory", "memory.limit_in_bytes") == str(1 << 20)
    assert read(m, "memory", "memory.swappiness") == "0"
    assert read(m, "pids", "pids.max") == "7"
    assert read(m, "cpu", "cpu.shares") == "100"
    assert read(m, "blkio", "blkio.bfq.weight") == "200"  # no CFQ blkio.weight: BFQ's file
    assert read(m, "blkio", "blkio.throttle.read_bps_device") == "8:0 5"
    with pytest.raises(OciError, match="hugetlb controller is not available"):
        m.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]})
    with pytest.raises(OciError, match="net_cls controller is not available"):
        m.apply({"network": {"classID": 5}})  # asked for, and not there: refused
    with pytest.raises(OciError, match="cpu.cfs_burst_us does not exist"):
        m.apply({"cpu": {"burst": 1000}})
    destroy(m)


def test_freezer_and_state(v1root):
    m = open_v1(v1root)
    m.create()
    populate(m)
    m.freeze()  # a plain file reads back what was written: FROZEN at once
    assert m.state() == "paused"
    m.thaw()
    assert m.state() == "running"
    destroy(m)


def test_round_trip_and_tamper(v1root):
    import json
    m = open_v1(v1root)
    m.create()
    d = json.loads(json.dumps(m.to_dict()))
    m2 = cg.from_dict(d)
    assert m2.created == m.created and m2.hier == m.hier
    bad = dict(d, hierarchies={"memory": "/etc"})
    with pytest.raises(OciError):
        cg.from_dict(bad)
    bad = dict(d, created=d["created"] + [str(v1root / "memory")])
    with pytest.raises(OciError):
        cg.from_dict(bad)
    destroy(m2)
    assert not (v1root / "memory" / "ocirun-test").exists()


def test_memory_limit_alone_keeps_a_swapless_container_swapless(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "memory.limit_in_bytes").write_text(str(100 << 20))
    (d / "memory.memsw.limit_in_bytes").write_text(str(100 << 20))
    set_memory_v1(str(d), 200 << 20, 0, False)  # memsw == limit: no swap, before and after
    assert (d / "memory.memsw.limit_in_bytes").read_text() == str(200 << 20)
    assert (d / "memory.limit_in_bytes").read_text() == str(200 << 20)
    (d / "memory.memsw.limit_in_bytes").write_text(str(500 << 20))
    set_memory_v1(str(d), 300 << 20, 0, False)  # some swap allowed: memsw is left alone
    assert (d / "memory.memsw.limit_in_bytes").read_text() == str(500 << 20)


def test_paused_reads_the_record_like_the_manager(v1root):
    """cgroups.paused (what `state` asks, without opening a manager) agrees with the
    manager's state() and refuses the records from_dict refuses."""
    import json
    m = open_v1(v1root)
    m.create()
    populate(m)
    d = json.loads(json.dumps(m.to_dict()))
    for freeze in (True, False):
        m.freeze() if freeze else m.thaw()
        assert cg.paused(d) is freeze
        assert (cg.from_dict(d).state() == "paused") is freeze
    no_freezer = dict(d, hierarchies={k: v for k, v in d["hierarchies"].items() if k != "freezer"})
    assert cg.paused(no_freezer) is False
    for bad in (dict(d, hierarchies={"freezer": "/etc"}), dict(d, path="/a/../../etc"),
                dict(d, path=3), dict(d, version=2), dict(d, root="relative"), "junk"):
        with pytest.raises(OciError):
            cg.paused(bad)
    # a record of no known manager (--cgroup-manager=disabled records none at all)
    with pytest.raises(OciError):
        cg.paused({"version": 1, "kind": "disabled", "container_id": "c1"})
    destroy(m)


def test_a_value_the_kernel_refuses_names_the_field(tmp_path):
    from ocirun.cgroups.common import do_write
    (tmp_path / "cpu.rt_runtime_us").mkdir()  # any write fails (EISDIR), as EINVAL would
    with pytest.raises(OciError) as ei:
        do_write(str(tmp_path), "cpu", [("cpu.rt_runtime_us", "1000")], "required",
                 "linux.resources.cpu.realtimeRuntime")
    assert str(ei.value).startswith("cannot set linux.resources.cpu.realtimeRuntime: write '1000'")


def test_device_rules_one_write_each_through_one_open_file(v1root, monkeypatch):
    import posix
    m = open_v1(v1root)
    m.create()
    populate(m)
    opened, writes = [], []
    real_open, real_write = posix.open, posix.write

    def spy_open(path, flags, mode=0o777, **kw):
        fd = real_open(path, flags, mode, **kw)
        opened.append(path)
        return fd

    def spy_write(fd, data):
        writes.append(bytes(data))
        return real_write(fd, data)
    monkeypatch.setattr(posix, "open", spy_open)
    monkeypatch.setattr(posix, "write", spy_write)
    rules = [{"allow": False, "access": "rwm"}] + [
        {"allow": True, "type": "c", "major": 1, "minor": n, "access": "rwm"} for n in (3, 5, 7)]
    m.apply({"devices": rules})
    monkeypatch.undo()
    allow = os.path.join(m.dir("devices"), "devices.allow")
    assert opened.count(allow) == 1
    assert writes == [b"a", b"c 1:3 rwm", b"c 1:5 rwm", b"c 1:7 rwm"]  # each its own write
    assert read(m, "devices", "devices.allow") == "c 1:3 rwmc 1:5 rwmc 1:7 rwm"
    destroy(m)


def test_a_device_rule_the_kernel_refuses_names_its_index(v1root, monkeypatch):
    import errno
    import posix
    m = open_v1(v1root)
    m.create()
    populate(m)
    real_write = posix.write

    def write(fd, data):
        if bytes(data) == b"c 1:5 rwm":
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)
    monkeypatch.setattr(posix, "write", write)
    rules = [{"allow": True, "type": "c", "major": 1, "minor": n, "access": "rwm"}
             for n in (3, 5, 7)]
    with pytest.raises(OciError) as ei:
        m.apply({"devices": rules})
    monkeypatch.undo()
    assert str(ei.value).startswith("cannot set linux.resources.devices[1]: write 'c 1:5 rwm'")
    assert "EINVAL" in str(ei.value)
    destroy(m)
