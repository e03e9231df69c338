import pytest

from ocirun.cgroups import validate_resources
from ocirun.errors import ConfigError

GOOD = {
    "memory": {"limit": 1 << 30, "reservation": 1 << 29, "swap": 2 << 30, "kernel": -1,
               "kernelTCP": -1, "disableOOMKiller": False,
               "useHierarchy": True, "checkBeforeUpdate": True},
    "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 1000,
            "realtimeRuntime": 0, "realtimePeriod": 0, "cpus": "0-1,3", "mems": "0", "idle": 0},
    "pids": {"limit": 100},
    "blockIO": {"weight": 500, "leafWeight": 0,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 100}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
    "hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}],
    "devices": [{"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                {"allow": True, "type": "c", "major": 136, "minor": -1}],
    "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
}


# what only cgroup v1 has
GOOD_V1 = dict(GOOD, memory=dict(GOOD["memory"], kernelTCP=1 << 20, swappiness=60,
                                 disableOOMKiller=True),
               network={"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]})


def test_good_config_passes_everywhere():
    for mode in ("v1", "hybrid", "unified", None):
        validate_resources(GOOD, mode)
    for mode in ("v1", "hybrid", None):
        validate_resources(GOOD_V1, mode)
    validate_resources({}, "v1")
    validate_resources(None, "v1")


@pytest.mark.parametrize("res,field", [
    ({"memory": {"kernel": 1 << 20}}, "linux.resources.memory.kernel"),
    ({"memory": {"useHierarchy": False}}, "linux.resources.memory.useHierarchy"),
    ({"blockIO": {"leafWeight": 300}}, "linux.resources.blockIO.leafWeight"),
    ({"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 100, "leafWeight": 50}]}},
     "linux.resources.blockIO.weightDevice[0].leafWeight"),
])
@pytest.mark.parametrize("mode", ["v1", "hybrid", "unified"])
def test_what_no_kernel_here_does_is_refused(res, field, mode):
    with pytest.raises(ConfigError) as ei:
        validate_resources(res, mode)
    assert ei.value.field == field


@pytest.mark.parametrize("res,field", [
    ({"memory": {"kernelTCP": 1 << 20}}, "linux.resources.memory.kernelTCP"),
    ({"memory": {"swappiness": 0}}, "linux.resources.memory.swappiness"),
    ({"memory": {"disableOOMKiller": True}}, "linux.resources.memory.disableOOMKiller"),
    ({"network": {"classID": 0}}, "linux.resources.network.classID"),
    ({"network": {"priorities": [{"name": "eth0", "priority": 5}]}},
     "linux.resources.network.priorities"),
])
def test_what_only_v1_has_is_refused_on_v2(res, field):
    with pytest.raises(ConfigError) as ei:
        validate_resources(res, "unified")
    assert ei.value.field == field
    validate_resources(res, "hybrid")


@pytest.mark.parametrize("res,field", [
    ({"memory": {"limit": True}}, "linux.resources.memory.limit"),
    ({"memory": {"limit": "1g"}}, "linux.resources.memory.limit"),
    ({"memory": {"limit": 1.5}}, "linux.resources.memory.limit"),
    ({"memory": {"limit": -2}}, "linux.resources.memory.limit"),
    ({"memory": {"swappiness": 101}}, "linux.resources.memory.swappiness"),
    ({"memory": {"disableOOMKiller": 1}}, "linux.resources.memory.disableOOMKiller"),
    ({"memory": {"limit": 200, "swap": 100}}, "linux.resources.memory.swap"),
    ({"memory": []}, "linux.resources.memory"),
    ({"cpu": {"shares": 1}}, "linux.resources.cpu.shares"),
    ({"cpu": {"shares": 262145}}, "linux.resources.cpu.shares"),
    ({"cpu": {"quota": 10}}, "linux.resources.cpu.quota"),
    ({"cpu": {"period": 10}}, "linux.resources.cpu.period"),
    ({"cpu": {"period": 2000000}}, "linux.resources.cpu.period"),
    ({"cpu": {"cpus": "0-x"}}, "linux.resources.cpu.cpus"),
    ({"cpu": {"cpus": "3-1"}}, "linux.resources.cpu.cpus"),
    ({"cpu": {"mems": 0}}, "linux.resources.cpu.mems"),
    ({"cpu": {"idle": 2}}, "linux.resources.cpu.idle"),
    ({"pids": {"limit": False}}, "linux.resources.pids.limit"),
    ({"pids": {"limit": "10"}}, "linux.resources.pids.limit"),
    ({"blockIO": {"weight": 5}}, "linux.resources.blockIO.weight"),
    ({"blockIO": {"weight": 1001}}, "linux.resources.blockIO.weight"),
    ({"blockIO": {"weightDevice": [{"major": 8, "weight": 100}]}},
     "linux.resources.blockIO.weightDevice[0].minor"),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": -1}]}},
     "linux.resources.blockIO.throttleReadBpsDevice[0].rate"),
    ({"hugepageLimits": [{"pageSize": "2MB/../../x", "limit": 1}]},
     "linux.resources.hugepageLimits[0].pageSize"),
    ({"hugepageLimits": [{"pageSize": "2mb", "limit": 1}]},
     "linux.resources.hugepageLimits[0].pageSize"),
    ({"hugepageLimits": [{"pageSize": "2MB"}]}, "linux.resources.hugepageLimits[0].limit"),
    ({"network": {"classID": -1}}, "linux.resources.network.classID"),
    ({"network": {"priorities": [{"name": "eth0 1", "priority": 1}]}},
     "linux.resources.network.priorities[0].name"),
    ({"devices": [{"allow": True, "type": "x"}]}, "linux.resources.devices[0].type"),
    ({"devices": [{"allow": True, "type": "c", "access": "rwx"}]}, "linux.resources.devices[0].access"),
    ({"devices": [{"allow": True, "type": "c", "access": "rr"}]}, "linux.resources.devices[0].access"),
    ({"devices": [{"allow": True, "type": "c", "access": ""}]}, "linux.resources.devices[0].access"),
    ({"devices": [{"type": "c"}]}, "linux.resources.devices[0].allow"),
    ({"devices": [{"allow": "yes"}]}, "linux.resources.devices[0].allow"),
    ({"devices": [{"allow": True, "major": True}]}, "linux.resources.devices[0].major"),
    ({"devices": [{"allow": True, "major": 1 << 32}]}, "linux.resources.devices[0].major"),
    ({"devices": {"allow": True}}, "linux.resources.devices"),
    ({"devices": ["c 1:3 rwm"]}, "linux.resources.devices[0]"),
    ({"rdma": {"mlx 5": {"hcaHandles": 1}}}, "linux.resources.rdma['mlx 5']"),
    ({"rdma": {"mlx5": {"hcaHandles": -1}}}, "linux.resources.rdma['mlx5'].hcaHandles"),
])
def test_bad_values_name_their_field(res, field):
    with pytest.raises(ConfigError) as ei:
        validate_resources(res, "v1")
    assert ei.value.field == field, str(ei.value)
    assert "\n" not in str(ei.value)


def test_resources_must_be_object():
    with pytest.raises(ConfigError) as ei:
        validate_resources([1], "v1")
    assert ei.value.field == "linux.resources"


def test_unified_rejected_on_v1_and_hybrid():
    for mode in ("v1", "hybrid"):
        with pytest.raises(ConfigError) as ei:
            validate_resources({"unified": {"memory.high": "100M"}}, mode)
        assert ei.value.field == "linux.resources.unified"
    validate_resources({"unified": {"memory.high": "100M"}}, "unified")


@pytest.mark.parametrize("key", ["../../etc/passwd", "memory/high", ".hidden", "nodot",
                                 "cgroup.procs", "cgroup.kill", "a b.c", ""])
def test_unified_keys_must_be_plain_interface_files(key):
    with pytest.raises(ConfigError):
        validate_resources({"unified": {key: "1"}}, "unified")


def test_unified_values_must_be_strings():
    with pytest.raises(ConfigError):
        validate_resources({"unified": {"memory.high": 100}}, "unified")


def test_v2_specific_rules():
    with pytest.raises(ConfigError) as ei:
        validate_resources({"cpu": {"realtimeRuntime": 950000}}, "unified")
    assert ei.value.field == "linux.resources.cpu.realtimeRuntime"
    validate_resources({"cpu": {"realtimeRuntime": 950000}}, "v1")
    with pytest.raises(ConfigError) as ei:
        validate_resources({"memory": {"swap": 1 << 30}}, "unified")
    assert ei.value.field == "linux.resources.memory.swap"


def test_unknown_keys_are_ignored():
    validate_resources({"memory": {"futureKnob": 1}, "futureController": {}}, "v1")
