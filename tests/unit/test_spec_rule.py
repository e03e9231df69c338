"""The rule: every field of the runtime-spec config that applies on Linux is applied, or
refused at create with one line naming it; nothing is accepted and dropped.

The schema (runtime-spec config-schema.json and the files it refers to) is walked into
the paths of its leaves: `properties` add `.name`, `items` add `[]`, `patternProperties`
and `additionalProperties` add `.*`; the other platforms' top-level keys (windows,
solaris, vm, zos, freebsd) are left out. An array of plain values is one leaf
(`process.args`). Every leaf must be in RULE, as one of:

  applied     the named test reads its effect back from a real container or the kernel;
  refused     create refuses it with one line naming it: SAMPLES holds a config that
              sets it, which validate() refuses here, and the integration test
              tests/integration/test_spec_rule_kernel.py::test_refused creates it;
  needs-host  applied where the host has the facility it names; this host kind lacks
              it, and the named test shows create refusing it with one line naming it;
  host-only   nothing to apply on Linux (the note says why).

A new field in the schema fails test_every_schema_path_is_classified until it is
classified here; a named test that does not exist fails test_named_tests_exist.
"""
import ast
import copy
import json
import os

import pytest

from ocirun.config.validate import validate
from ocirun.cgroups import validate_resources
from ocirun.errors import ConfigError
from support import REPO, SHARED

SCHEMA_DIR = os.path.join(SHARED, "data", "oci-runtime-spec-schema")
OTHER_PLATFORMS = ("windows", "solaris", "vm", "zos", "freebsd")


# --- the schema walker --------------------------------------------------------------------

def _load(name, cache={}):
    if name not in cache:
        with open(os.path.join(SCHEMA_DIR, name)) as f:
            cache[name] = json.load(f)
    return cache[name]


def _resolve(node, doc):
    """Follow $ref (`file.json#/a/b` or `#/a/b`) until a schema of substance."""
    while "$ref" in node:
        name, _, frag = node["$ref"].partition("#")
        doc = name or doc
        node = _load(doc)
        for part in frag.strip("/").split("/"):
            if part:
                node = node[part]
    return node, doc


def _children(node, doc):
    """[(suffix, schema, file)] of a schema: its properties, the items of an array of
    objects, the values of a map; allOf/anyOf/oneOf contribute theirs."""
    node, doc = _resolve(node, doc)
    out = []
    for key in ("allOf", "anyOf", "oneOf"):
        for alt in node.get(key, ()):
            out += _children(alt, doc)
    for name, sub in node.get("properties", {}).items():
        out.append(("." + name, sub, doc))
    items = node.get("items")
    if isinstance(items, dict) and _children(items, doc):
        out.append(("[]", items, doc))
    for sub in node.get("patternProperties", {}).values():
        out.append((".*", sub, doc))
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        out.append((".*", extra, doc))
    return out


def schema_paths():
    """The leaf paths of config-schema.json that apply on Linux."""
    found = set()

    def walk(node, doc, path):
        kids = _children(node, doc)
        if not kids:
            found.add(path)
        for suffix, sub, sub_doc in kids:
            if not path and suffix[1:] in OTHER_PLATFORMS:
                continue
            walk(sub, sub_doc, (path + suffix).lstrip("."))

    walk(_load("config-schema.json"), "config-schema.json", "")
    return found


# --- the table ------------------------------------------------------------------------------

RUN = "tests/integration/test_run.py::"
EXEC = "tests/integration/test_exec.py::"
COMPAT = "tests/integration/test_compat.py::"
LIFE = "tests/integration/test_lifecycle.py::"
SEC = "tests/integration/test_security.py::"
FIELDS = "tests/integration/test_spec_fields.py::"
RULEK = "tests/integration/test_spec_rule_kernel.py::"
VERBS = "tests/integration/test_cgroup_verbs.py::"
V1 = "tests/integration/test_cgroups_v1_host.py::"
V2 = "tests/integration/test_cgroups_v2_private.py::"
SCC = "tests/integration/test_seccomp_container.py::"
SCK = "tests/integration/test_seccomp_kernel.py::"

A, R, N, H = "applied", "refused", "needs-host", "host-only"

RULE = {
    # --- the document
    "ociVersion": (H, "checked (1.x only); the version the bundle was written for"),
    "annotations.*": (A, RULEK + "test_annotations_reach_the_state"),
    "hostname": (A, RUN + "test_hostname"),
    "domainname": (A, RUN + "test_domainname"),
    "root.path": (A, RUN + "test_no_pivot"),
    "root.readonly": (A, RUN + "test_readonly_root"),

    # --- mounts
    "mounts[].destination": (A, RUN + "test_mounts_seen_inside"),
    "mounts[].type": (A, RUN + "test_mounts_seen_inside"),
    "mounts[].options": (A, RUN + "test_mounts_seen_inside"),
    "mounts[].source": (A, COMPAT + "test_rshared_volume_propagates_both_ways"),
    "mounts[].uidMappings[].containerID": (A, FIELDS + "test_idmapped_mount_with_its_own_mappings"),
    "mounts[].uidMappings[].hostID": (A, FIELDS + "test_idmapped_mount_with_its_own_mappings"),
    "mounts[].uidMappings[].size": (A, FIELDS + "test_ridmap_maps_the_mounts_below_too"),
    "mounts[].gidMappings[].containerID": (A, FIELDS + "test_idmapped_mount_with_its_own_mappings"),
    "mounts[].gidMappings[].hostID": (A, FIELDS + "test_idmapped_mount_with_its_own_mappings"),
    "mounts[].gidMappings[].size": (A, FIELDS + "test_ridmap_maps_the_mounts_below_too"),

    # --- process
    "process.args": (A, RUN + "test_run_prints_and_passes_exit_code"),
    "process.commandLine": (H, "Windows only (config.md: the command line on Windows)"),
    "process.cwd": (A, RUN + "test_cwd"),
    "process.env": (A, RUN + "test_env"),
    "process.terminal": (A, EXEC + "test_create_with_console_socket"),
    "process.consoleSize.height": (A, EXEC + "test_create_with_console_socket"),
    "process.consoleSize.width": (A, EXEC + "test_create_with_console_socket"),
    "process.user.uid": (A, RUN + "test_user_and_groups"),
    "process.user.gid": (A, RUN + "test_user_and_groups"),
    "process.user.additionalGids": (A, RUN + "test_user_and_groups"),
    "process.user.umask": (A, RUN + "test_user_and_groups"),
    "process.user.username": (H, "Windows only (config.md \"Windows User\")"),
    "process.capabilities.bounding": (A, RUN + "test_capabilities_and_no_new_privs"),
    "process.capabilities.effective": (A, RUN + "test_capabilities_and_no_new_privs"),
    "process.capabilities.permitted": (A, RUN + "test_capabilities_and_no_new_privs"),
    "process.capabilities.inheritable": (A, COMPAT + "test_ambient_caps_that_are_inheritable_are_raised"),
    "process.capabilities.ambient": (A, COMPAT + "test_ambient_caps_that_are_inheritable_are_raised"),
    "process.noNewPrivileges": (A, RUN + "test_capabilities_and_no_new_privs"),
    "process.rlimits[].type": (A, RUN + "test_rlimits"),
    "process.rlimits[].soft": (A, RUN + "test_rlimits"),
    "process.rlimits[].hard": (A, RUN + "test_rlimits"),
    "process.oomScoreAdj": (A, RULEK + "test_oom_score_adj"),
    "process.apparmorProfile": (N, RUN + "test_apparmor_profile_without_apparmor_is_refused"),
    "process.selinuxLabel": (N, FIELDS + "test_labels_without_selinux_are_refused"),
    "process.ioPriority.class": (A, FIELDS + "test_io_priority"),
    "process.ioPriority.priority": (A, FIELDS + "test_io_priority"),
    "process.scheduler.policy": (A, FIELDS + "test_scheduler_batch_and_nice"),
    "process.scheduler.nice": (A, FIELDS + "test_scheduler_batch_and_nice"),
    "process.scheduler.priority": (A, FIELDS + "test_scheduler_fifo_priority"),
    "process.scheduler.flags": (A, FIELDS + "test_scheduler_reset_on_fork_is_a_flag"),
    "process.scheduler.runtime": (A, RULEK + "test_scheduler_deadline"),
    "process.scheduler.deadline": (A, RULEK + "test_scheduler_deadline"),
    "process.scheduler.period": (A, RULEK + "test_scheduler_deadline"),
    "process.execCPUAffinity.initial": (A, FIELDS + "test_exec_cpu_affinity_initial_and_final"),
    "process.execCPUAffinity.final": (A, FIELDS + "test_exec_cpu_affinity_initial_and_final"),

    # --- hooks (one runner for the six kinds; each kind read back on its own)
    **{f"hooks.{kind}[].{key}": (A, RULEK + test)
       for kind in ("prestart", "createRuntime", "createContainer", "startContainer",
                    "poststart", "poststop")
       for key, test in (("path", "test_hooks_get_path_args_and_env"),
                         ("args", "test_hooks_get_path_args_and_env"),
                         ("env", "test_hooks_get_path_args_and_env"),
                         ("timeout", "test_hook_timeouts"))},

    # --- linux: namespaces, ids, the filesystem
    "linux.namespaces[].type": (A, RUN + "test_init_is_pid_1_in_new_namespaces"),
    "linux.namespaces[].path": (A, RUN + "test_join_network_namespace_by_path"),
    "linux.uidMappings[].containerID": (A, RUN + "test_user_namespace"),
    "linux.uidMappings[].hostID": (A, RUN + "test_user_namespace"),
    "linux.uidMappings[].size": (A, RUN + "test_user_namespace"),
    "linux.gidMappings[].containerID": (A, RULEK + "test_gid_mappings"),
    "linux.gidMappings[].hostID": (A, RULEK + "test_gid_mappings"),
    "linux.gidMappings[].size": (A, RULEK + "test_gid_mappings"),
    "linux.timeOffsets.monotonic.secs": (A, RULEK + "test_time_offsets"),
    "linux.timeOffsets.monotonic.nanosecs": (A, RULEK + "test_time_offsets"),
    "linux.timeOffsets.boottime.secs": (A, RULEK + "test_time_offsets"),
    "linux.timeOffsets.boottime.nanosecs": (A, RULEK + "test_time_offsets"),
    "linux.devices[].path": (A, RUN + "test_linux_devices"),
    "linux.devices[].type": (A, RUN + "test_linux_devices"),
    "linux.devices[].major": (A, RUN + "test_linux_devices"),
    "linux.devices[].minor": (A, RUN + "test_linux_devices"),
    "linux.devices[].fileMode": (A, RUN + "test_linux_devices"),
    "linux.devices[].uid": (A, RUN + "test_linux_devices"),
    "linux.devices[].gid": (A, RUN + "test_linux_devices"),
    "linux.maskedPaths": (A, RUN + "test_masked_and_readonly_paths"),
    "linux.readonlyPaths": (A, RUN + "test_masked_and_readonly_paths"),
    "linux.rootfsPropagation": (A, RUN + "test_rootfs_propagation"),
    "linux.mountLabel": (N, FIELDS + "test_labels_without_selinux_are_refused"),
    "linux.sysctl.*": (A, RUN + "test_sysctl_in_network_namespace"),

    # --- linux: process attributes
    "linux.personality.domain": (A, FIELDS + "test_personality_linux32"),
    "linux.personality.flags": (R, "the runtime-spec defines no personality flag yet"),
    "linux.memoryPolicy.mode": (A, FIELDS + "test_memory_policy"),
    "linux.memoryPolicy.nodes": (A, FIELDS + "test_memory_policy"),
    "linux.memoryPolicy.flags": (A, FIELDS + "test_features_claims_are_taken"),
    "linux.netDevices.*.name": (A, FIELDS + "test_net_device_moved_renamed_up_with_its_address"),
    "linux.intelRdt.closID": (N, FIELDS + "test_intel_rdt_without_resctrl_is_refused"),
    "linux.intelRdt.schemata": (N, FIELDS + "test_intel_rdt_without_resctrl_is_refused"),
    "linux.intelRdt.l3CacheSchema": (N, FIELDS + "test_intel_rdt_without_resctrl_is_refused"),
    "linux.intelRdt.memBwSchema": (N, FIELDS + "test_intel_rdt_without_resctrl_is_refused"),
    "linux.intelRdt.enableMonitoring": (N, FIELDS + "test_intel_rdt_without_resctrl_is_refused"),

    # --- linux: seccomp
    "linux.seccomp.defaultAction": (A, SCC + "test_podman_profile_with_cache"),
    "linux.seccomp.defaultErrnoRet": (A, RULEK + "test_seccomp_default_errno_ret"),
    "linux.seccomp.architectures": (A, RULEK + "test_seccomp_architectures"),
    "linux.seccomp.flags": (A, RULEK + "test_seccomp_log_flag"),
    "linux.seccomp.listenerPath": (A, SCK + "test_notify_sends_fd_and_state"),
    "linux.seccomp.listenerMetadata": (A, SCK + "test_notify_sends_fd_and_state"),
    "linux.seccomp.syscalls[].names": (A, SCC + "test_errno_38_gives_enosys"),
    "linux.seccomp.syscalls[].action": (A, SCC + "test_kill_ends_with_sigsys"),
    "linux.seccomp.syscalls[].errnoRet": (A, SCC + "test_errno_38_gives_enosys"),
    "linux.seccomp.syscalls[].args[].index": (A, RULEK + "test_seccomp_syscall_args"),
    "linux.seccomp.syscalls[].args[].op": (A, RULEK + "test_seccomp_syscall_args"),
    "linux.seccomp.syscalls[].args[].value": (A, RULEK + "test_seccomp_syscall_args"),
    "linux.seccomp.syscalls[].args[].valueTwo": (A, RULEK + "test_seccomp_syscall_args"),

    # --- linux: cgroups (this host kind: cgroup v1 controllers, hybrid)
    "linux.cgroupsPath": (A, VERBS + "test_absolute_cgroups_path_cleans_parents"),
    "linux.resources.devices[].allow": (A, V1 + "test_devices_rules_enforced"),
    "linux.resources.devices[].type": (A, V1 + "test_devices_rules_enforced"),
    "linux.resources.devices[].major": (A, V1 + "test_devices_rules_enforced"),
    "linux.resources.devices[].minor": (A, V1 + "test_devices_rules_enforced"),
    "linux.resources.devices[].access": (A, V1 + "test_devices_rules_enforced"),
    "linux.resources.memory.limit": (A, VERBS + "test_memory_limit_is_written"),
    "linux.resources.memory.swap": (A, V1 + "test_memory_update_grow_and_shrink"),
    "linux.resources.memory.reservation": (A, RULEK + "test_memory_settings"),
    "linux.resources.memory.swappiness": (A, RULEK + "test_memory_settings"),
    "linux.resources.memory.disableOOMKiller": (A, RULEK + "test_memory_settings"),
    "linux.resources.memory.kernelTCP": (A, RULEK + "test_memory_settings"),
    "linux.resources.memory.checkBeforeUpdate": (A, RULEK + "test_check_before_update"),
    "linux.resources.memory.kernel": (R, "the kernel ignores kernel-memory limits (a write to "
                                         "memory.kmem.limit_in_bytes has no effect; none on v2); "
                                         "-1 and 0 (no limit) are taken"),
    "linux.resources.memory.useHierarchy": (R, "false: the kernel is always hierarchical (a "
                                               "write of 0 is EINVAL since Linux 5.11); true "
                                               "is what every cgroup gets, and is taken"),
    "linux.resources.cpu.shares": (A, VERBS + "test_cpu_shares_and_quota_land_in_cpu_files"),
    "linux.resources.cpu.quota": (A, VERBS + "test_cpu_shares_and_quota_land_in_cpu_files"),
    "linux.resources.cpu.period": (A, VERBS + "test_cpu_shares_and_quota_land_in_cpu_files"),
    "linux.resources.cpu.cpus": (A, V1 + "test_cpu_settings_and_stats"),
    "linux.resources.cpu.mems": (A, RULEK + "test_cpu_settings"),
    "linux.resources.cpu.idle": (A, RULEK + "test_cpu_settings"),
    "linux.resources.cpu.burst": (A, RULEK + "test_cpu_settings"),
    "linux.resources.cpu.realtimeRuntime": (A, RULEK + "test_cpu_realtime"),
    "linux.resources.cpu.realtimePeriod": (A, RULEK + "test_cpu_realtime"),
    "linux.resources.pids.limit": (A, VERBS + "test_pids_limit_makes_forks_fail"),
    "linux.resources.blockIO.weight": (N, RULEK + "test_block_io_weight_without_a_weight_file"),
    "linux.resources.blockIO.weightDevice[].weight": (N, RULEK + "test_block_io_weight_without_a_weight_file"),
    "linux.resources.blockIO.weightDevice[].major": (N, RULEK + "test_block_io_weight_without_a_weight_file"),
    "linux.resources.blockIO.weightDevice[].minor": (N, RULEK + "test_block_io_weight_without_a_weight_file"),
    "linux.resources.blockIO.leafWeight": (R, "leaf weights were CFQ's, gone since Linux 5.0 "
                                              "(ocirun needs 5.12); 0 (unset) is taken"),
    "linux.resources.blockIO.weightDevice[].leafWeight": (R, "as blockIO.leafWeight"),
    **{f"linux.resources.blockIO.{name}[].{key}": (A, RULEK + "test_block_io_throttle")
       for name in ("throttleReadBpsDevice", "throttleWriteBpsDevice",
                    "throttleReadIOPSDevice", "throttleWriteIOPSDevice")
       for key in ("major", "minor", "rate")},
    "linux.resources.hugepageLimits[].pageSize": (N, RULEK + "test_hugepage_limits_without_hugetlb"),
    "linux.resources.hugepageLimits[].limit": (N, RULEK + "test_hugepage_limits_without_hugetlb"),
    "linux.resources.network.classID": (N, RULEK + "test_network_without_net_cls_or_net_prio"),
    "linux.resources.network.priorities[].name": (N, RULEK + "test_network_without_net_cls_or_net_prio"),
    "linux.resources.network.priorities[].priority": (N, RULEK + "test_network_without_net_cls_or_net_prio"),
    "linux.resources.rdma.*.hcaHandles": (N, RULEK + "test_rdma_without_the_rdma_controller"),
    "linux.resources.rdma.*.hcaObjects": (N, RULEK + "test_rdma_without_the_rdma_controller"),
    "linux.resources.unified.*": (A, V2 + "test_v2_undelegated_controllers_and_unified_keys"),
}

# For each refused path: a config fragment that sets it (merged into a valid config) and
# the field its one line names.
SAMPLES = {
    "linux.personality.flags": (
        {"linux": {"personality": {"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]}}},
        "linux.personality.flags[0]"),
    "linux.resources.memory.kernel": (
        {"linux": {"resources": {"memory": {"kernel": 64 << 20}}}},
        "linux.resources.memory.kernel"),
    "linux.resources.memory.useHierarchy": (
        {"linux": {"resources": {"memory": {"useHierarchy": False}}}},
        "linux.resources.memory.useHierarchy"),
    "linux.resources.blockIO.leafWeight": (
        {"linux": {"resources": {"blockIO": {"leafWeight": 300}}}},
        "linux.resources.blockIO.leafWeight"),
    "linux.resources.blockIO.weightDevice[].leafWeight": (
        {"linux": {"resources": {"blockIO": {"weightDevice": [
            {"major": 254, "minor": 0, "leafWeight": 300}]}}}},
        "linux.resources.blockIO.weightDevice[0].leafWeight"),
}

KINDS = (A, R, N, H)


def base_config():
    return {
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs"},
        "process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]},
    }


def merged(base, fragment):
    out = copy.deepcopy(base)
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def refusal(spec, mode):
    """The ConfigError that the checks create makes before anything exists raise for
    `spec` on a host of cgroup `mode`, or None."""
    try:
        validate(spec, check_host=False)
        validate_resources(spec.get("linux", {}).get("resources"), mode)
    except ConfigError as e:
        return e
    return None


# --- the checks ---------------------------------------------------------------------------

def test_the_walker_finds_the_linux_fields():
    paths = schema_paths()
    for p in ("linux.resources.blockIO.weightDevice[].leafWeight", "process.scheduler.flags",
              "mounts[].uidMappings[].hostID", "linux.netDevices.*.name", "annotations.*",
              "linux.resources.rdma.*.hcaHandles", "process.args"):
        assert p in paths, p
    assert not any(p.split(".")[0].split("[")[0] in OTHER_PLATFORMS for p in paths)
    assert len(paths) > 150


def test_every_schema_path_is_classified():
    paths = schema_paths()
    missing = sorted(paths - set(RULE))
    assert not missing, "fields of the runtime-spec schema with no entry in RULE " \
                        "(apply each, or refuse it with one line naming it): " + ", ".join(missing)
    stale = sorted(set(RULE) - paths)
    assert not stale, "RULE names paths the schema does not have: " + ", ".join(stale)


def _functions(path):
    with open(os.path.join(REPO, path)) as f:
        tree = ast.parse(f.read(), path)
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def test_named_tests_exist():
    cache = {}
    for path, (kind, ref) in sorted(RULE.items()):
        assert kind in KINDS, (path, kind)
        assert ref, path
        if kind in (A, N):
            file, sep, func = ref.partition("::")
            assert sep and func.startswith("test_"), (path, ref)
            assert os.path.exists(os.path.join(REPO, file)), (path, ref)
            if file not in cache:
                cache[file] = _functions(file)
            assert func in cache[file], f"{path}: {ref} does not exist"


def test_refused_paths_have_a_sample():
    refused = {p for p, (kind, _) in RULE.items() if kind == R}
    assert refused == set(SAMPLES)


@pytest.mark.parametrize("path", sorted(SAMPLES))
@pytest.mark.parametrize("mode", ["v1", "hybrid", "unified"])
def test_refused_paths_are_refused(path, mode):
    fragment, field = SAMPLES[path]
    assert refusal(base_config(), mode) is None  # the base is taken
    err = refusal(merged(base_config(), fragment), mode)
    assert err is not None, f"{path} is accepted: apply it, or refuse it"
    assert str(err).startswith(field + ":") and "\n" not in str(err), str(err)


@pytest.mark.parametrize("resources", [
    {"memory": {"kernel": -1}},
    {"memory": {"kernel": 0}},
    {"memory": {"useHierarchy": True}},
    {"blockIO": {"leafWeight": 0, "weight": 500}},
    {"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 10, "leafWeight": 0}]}},
])
def test_what_the_kernel_does_anyway_is_taken(resources):
    for mode in ("v1", "hybrid", "unified"):
        assert refusal(merged(base_config(), {"linux": {"resources": resources}}), mode) is None


@pytest.mark.parametrize("resources,field", [
    ({"memory": {"kernelTCP": 1 << 20}}, "linux.resources.memory.kernelTCP"),
    ({"memory": {"swappiness": 10}}, "linux.resources.memory.swappiness"),
    ({"memory": {"disableOOMKiller": True}}, "linux.resources.memory.disableOOMKiller"),
    ({"network": {"classID": 1}}, "linux.resources.network"),
    ({"network": {"priorities": [{"name": "eth0", "priority": 1}]}}, "linux.resources.network"),
    ({"cpu": {"realtimeRuntime": 1000}}, "linux.resources.cpu.realtimeRuntime"),
])
def test_v1_only_fields_are_refused_on_v2(resources, field):
    """Applied on cgroup v1 (read back in test_spec_rule_kernel.py); cgroup v2 has no
    such knob, so a v2 host refuses them before anything is made."""
    spec = merged(base_config(), {"linux": {"resources": resources}})
    err = refusal(spec, "unified")
    assert err is not None and str(err).startswith(field), err
    assert refusal(spec, "v1") is None and refusal(spec, "hybrid") is None


@pytest.mark.parametrize("resources", [
    {"memory": {"kernelTCP": -1, "disableOOMKiller": False}},
    {"memory": {"kernelTCP": 0}},
    {"network": {"priorities": []}},
])
def test_v1_only_fields_that_ask_for_nothing_are_taken_on_v2(resources):
    spec = merged(base_config(), {"linux": {"resources": resources}})
    assert refusal(spec, "unified") is None
