"""The systemd cgroup manager's pure parts (ocirun/cgroups/systemd.py): unit and slice
names as runc and crun derive them, the properties sent for linux.resources, device
rules as systemd's allow list, and org.systemd.property.* annotations."""
import pytest

from ocirun.cgroups import systemd as sd
from ocirun.errors import ConfigError

UINT64_MAX = (1 << 64) - 1


@pytest.mark.parametrize("name,path", [
    ("system.slice", "/system.slice"),
    ("-.slice", "/"),
    ("a-b.slice", "/a.slice/a-b.slice"),
    ("a-b-c.slice", "/a.slice/a-b.slice/a-b-c.slice"),
    ("machine.slice", "/machine.slice"),
])
def test_expand_slice(name, path):
    assert sd.expand_slice(name) == path


@pytest.mark.parametrize("name", ["system", ".slice", "a--b.slice", "-a.slice", "a-.slice",
                                  "a/b.slice"])
def test_expand_slice_refuses(name):
    with pytest.raises(ConfigError) as ei:
        sd.expand_slice(name)
    assert ei.value.field == "linux.cgroupsPath"


@pytest.mark.parametrize("path,slice_name,unit,cgroup", [
    ("system.slice:docker:1234", "system.slice", "docker-1234.scope", "/system.slice/docker-1234.scope"),
    (":ocirun:c1", "system.slice", "ocirun-c1.scope", "/system.slice/ocirun-c1.scope"),
    ("machine-x.slice:libpod:ab", "machine-x.slice", "libpod-ab.scope",
     "/machine.slice/machine-x.slice/libpod-ab.scope"),
    ("-.slice:p:n", "-.slice", "p-n.scope", "/p-n.scope"),
    ("system.slice::n", "system.slice", "-n.scope", "/system.slice/-n.scope"),
    (None, "system.slice", "ocirun-c1.scope", "/system.slice/ocirun-c1.scope"),
    ("", "system.slice", "ocirun-c1.scope", "/system.slice/ocirun-c1.scope"),
])
def test_unit_for(path, slice_name, unit, cgroup):
    assert sd.unit_for(path, "c1") == (slice_name, unit)
    assert sd.scope_path(slice_name, unit) == cgroup


@pytest.mark.parametrize("path,what", [
    ("/a/b", "slice:prefix:name"), ("a:b", "slice:prefix:name"), ("a:b:c:d", "slice:prefix:name"),
    ("system.slice:p:", "name part is empty"), ("system.slice:p:x.slice", "must not be a slice"),
    ("system:p:n", "not a slice name"), ("system.slice:p:n/m", "cannot be a systemd unit name"),
    ("system.slice:p:n m", "cannot be a systemd unit name"), ("a--b.slice:p:n", "empty component"),
    (7, "must be a string"), ("system.slice:p:" + "n" * 300, "longer than"),
])
def test_unit_for_refuses(path, what):
    with pytest.raises(ConfigError, match=what) as ei:
        sd.unit_for(path, "c1")
    assert ei.value.field.startswith("linux.cgroupsPath")


def test_container_id_that_cannot_name_a_unit():
    with pytest.raises(ConfigError, match="cannot be a systemd unit name"):
        sd.unit_for(None, "a+b")


def _props(res, mode="unified", version=252):
    props, files = sd.resource_properties(res, mode, version)
    return dict(props), files


def test_properties_v2():
    props, files = _props({"memory": {"limit": 1 << 28, "reservation": 1 << 20, "swap": 1 << 29},
                           "cpu": {"shares": 1024, "quota": 50000, "period": 100000,
                                   "cpus": "0-2,5", "mems": "0"},
                           "pids": {"limit": 10}, "blockIO": {"weight": 500}})
    assert props["MemoryMax"] == ("t", 1 << 28)
    assert props["MemoryLow"] == ("t", 1 << 20)
    assert props["MemorySwapMax"] == ("t", 1 << 28)  # swap is memory+swap in OCI
    assert props["CPUWeight"] == ("t", 39)  # 1 + (1024-2)*9999/262142
    assert props["CPUQuotaPerSecUSec"] == ("t", 500000)
    assert props["CPUQuotaPeriodUSec"] == ("t", 100000)
    assert props["AllowedCPUs"] == ("ay", bytes([0b00100111]))
    assert props["AllowedMemoryNodes"] == ("ay", b"\x01")
    assert props["TasksMax"] == ("t", 10)
    assert props["IOWeight"][0] == "t"
    assert files["cpu"]["quota"] == 50000


def test_properties_unlimited_and_rounding():
    props, files = _props({"memory": {"limit": -1}, "pids": {"limit": -1},
                           "cpu": {"quota": 12345, "period": 100000}})
    assert props["MemoryMax"] == ("t", UINT64_MAX)
    assert props["TasksMax"] == ("t", UINT64_MAX)
    # systemd keeps a percentage: rounded up to 10ms per second, and the file gets the
    # quota that matches it, so both agree
    assert props["CPUQuotaPerSecUSec"] == ("t", 130000)
    assert files["cpu"]["quota"] == 13000


def test_properties_v1():
    props, _ = _props({"memory": {"limit": 1 << 28}, "cpu": {"shares": 512, "cpus": "0"},
                       "blockIO": {"weight": 300},
                       "devices": [{"allow": False, "access": "rwm"},
                                   {"allow": True, "type": "c", "major": 1, "minor": 3,
                                    "access": "rwm"}]}, mode="hybrid")
    assert props["MemoryLimit"] == ("t", 1 << 28)
    assert props["CPUShares"] == ("t", 512)
    assert props["BlockIOWeight"] == ("t", 300)
    assert "AllowedCPUs" not in props  # systemd has no cpuset on v1: the file only
    assert props["DevicePolicy"] == ("s", "strict")


def test_properties_v2_leave_devices_to_our_program():
    props, _ = _props({"devices": [{"allow": False, "access": "rwm"}]})
    assert "DevicePolicy" not in props and "DeviceAllow" not in props


def test_old_systemd_gets_no_new_properties():
    props, _ = _props({"cpu": {"period": 100000, "cpus": "0", "idle": 1}}, version=241)
    assert not {"CPUQuotaPeriodUSec", "AllowedCPUs", "CPUWeight"} & set(props)


def test_unified_keys():
    props, _ = _props({"unified": {"memory.high": "1000", "memory.max": "max",
                                   "pids.max": "0", "cpu.max": "20000 100000",
                                   "io.max": "8:0 rbps=1"}})
    assert props["MemoryHigh"] == ("t", 1000)
    assert props["MemoryMax"] == ("t", UINT64_MAX)
    assert props["TasksMax"] == ("t", 1)  # systemd refuses 0
    assert props["CPUQuotaPerSecUSec"] == ("t", 200000)
    with pytest.raises(ConfigError, match=r"unified\['memory.high'\]"):
        _props({"unified": {"memory.high": "lots"}})


def _allow(rules):
    props = sd.device_properties(rules)
    policy = [v for k, v in props if k == "DevicePolicy"][0][1]
    allow = [v for k, v in props if k == "DeviceAllow"][-1][1]
    return policy, allow


def test_devices_allow_list():
    policy, allow = _allow([
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "c", "major": 136, "minor": -1, "access": "rw"},
        {"allow": True, "type": "b", "major": None, "minor": None, "access": "r"},
        {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
        {"allow": False, "type": "c", "major": 10, "minor": 200, "access": "w"},
    ])
    assert policy == "strict"
    assert allow == [("/dev/char/1:3", "rwm"), ("char-136", "rw"), ("block-*", "r"),
                     ("/dev/char/10:200", "rm")]


def test_devices_allow_all():
    assert _allow([{"allow": True, "access": "rwm"}]) == ("auto", [])
    assert _allow([]) == ("auto", [])


def test_devices_deny_list_is_deny_all_for_systemd():
    policy, allow = _allow([{"allow": True, "access": "rwm"},
                            {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "rwm"}])
    assert (policy, allow) == ("strict", [])


def test_annotations():
    props = dict(sd.annotation_properties({
        "org.systemd.property.TimeoutStopSec": "uint64 5",
        "org.systemd.property.CollectMode": "'inactive-or-failed'",
        "org.systemd.property.CPUAccounting": "true",
        "org.systemd.property.After": "['a.service', 'b.service']",
        "org.systemd.property.Nice": "-5",
        "other": "x"}))
    assert props == {"TimeoutStopUSec": ("t", 5000000),
                     "CollectMode": ("s", "inactive-or-failed"),
                     "CPUAccounting": ("b", True),
                     "After": ("as", ["a.service", "b.service"]),
                     "Nice": ("i", -5)}


@pytest.mark.parametrize("key,value,what", [
    ("org.systemd.property.X", "true", "at least 3 latin letters"),
    ("org.systemd.property.Foo1", "true", "at least 3 latin letters"),
    ("org.systemd.property.Foo", "{1}", "not a value"),
    ("org.systemd.property.Foo", "uint64 -1", "out of range"),
    ("org.systemd.property.FooSec", "'x'", "number of seconds"),
])
def test_annotations_refused(key, value, what):
    with pytest.raises(ConfigError, match=what) as ei:
        sd.annotation_properties({key: value})
    assert ei.value.field == f"annotations[{key!r}]"
