"""ocirun.config.validate: one failing and one passing case per rule, fixtures, robustness."""
import copy
import json
import os

import pytest

from ocirun.config.validate import CAPS, PROPAGATIONS, validate, validate_process
from ocirun.errors import ConfigError
from support import SHARED

FIXTURES = os.path.join(SHARED, "fixtures")
DEL = object()
NS5 = ("pid", "network", "ipc", "uts", "mount")


def base():
    return {
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs"},
        "process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "linux": {"namespaces": [{"type": t} for t in NS5]},
    }


def userns(spec):
    spec["linux"]["namespaces"].append({"type": "user"})
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    return spec


def without_ns(kind):
    def f(spec):
        spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"]
                                       if n["type"] != kind]
    return f


def ns_path(kind, path):
    def f(spec):
        for n in spec["linux"]["namespaces"]:
            if n["type"] == kind:
                n["path"] = path
                return
        spec["linux"]["namespaces"].append({"type": kind, "path": path})
    return f


def add_ns(kind):
    def f(spec):
        spec["linux"]["namespaces"].append({"type": kind})
    return f


def put(path, value):
    """Mutation: set (or delete, value=DEL) the key at a dotted path; [i] indexes lists."""
    def f(spec):
        node = spec
        keys = path.replace("[", ".[").split(".")
        for k in keys[:-1]:
            if k.startswith("["):
                node = node[int(k[1:-1])]
            else:
                node = node.setdefault(k, {})
        last = keys[-1]
        if last.startswith("["):
            node[int(last[1:-1])] = value
        elif value is DEL:
            node.pop(last, None)
        else:
            node[last] = value
    return f


def seq(*fs):
    def f(spec):
        for g in fs:
            g(spec)
    return f


def build(mutation):
    spec = base()
    mutation(spec)
    return spec


def mapping(c, h, s):
    return {"containerID": c, "hostID": h, "size": s}


def hook(**kw):
    h = {"path": "/usr/bin/hook"}
    h.update(kw)
    return h


# (id, mutation, field, message fragment)
BAD = [
    # document
    ("ociVersion-missing", put("ociVersion", DEL), "ociVersion", "is required"),
    ("ociVersion-2", put("ociVersion", "2.0.0"), "ociVersion", "only runtime-spec 1.x"),
    ("ociVersion-int", put("ociVersion", 1), "ociVersion", "must be a string, not 1"),
    ("ociVersion-two-parts", put("ociVersion", "1.0"), "ociVersion", "form 1.x.y"),
    ("ociVersion-letters", put("ociVersion", "1.0.x"), "ociVersion", "form 1.x.y"),
    ("ociVersion-v", put("ociVersion", "v1.0.0"), "ociVersion", "form 1.x.y"),
    ("ociVersion-null", put("ociVersion", None), "ociVersion", "must not be null"),
    ("root-missing", put("root", DEL), "root", "is required"),
    ("root-not-object", put("root", "rootfs"), "root", "must be an object"),
    ("root.path-missing", put("root.path", DEL), "root.path", "is required"),
    ("root.path-empty", put("root.path", ""), "root.path", "must not be empty"),
    ("root.path-int", put("root.path", 5), "root.path", "must be a string"),
    ("root.path-nul", put("root.path", "root\0fs"), "root.path", "NUL"),
    ("root.readonly-str", put("root.readonly", "yes"), "root.readonly", "must be a boolean"),
    ("root.readonly-int", put("root.readonly", 1), "root.readonly", "must be a boolean"),
    ("linux-list", put("linux", []), "linux", "must be an object, not an array"),
    ("solaris-list", put("solaris", []), "solaris", "must be an object"),
    # process
    ("process-missing", put("process", DEL), "process", "is required"),
    ("process-null", put("process", None), "process", "is required"),  # null = absent
    ("args-missing", put("process.args", DEL), "process.args", "is required"),
    ("args-empty", put("process.args", []), "process.args", "must not be empty"),
    ("args-string", put("process.args", "sh"), "process.args", "must be an array"),
    ("args-int-item", put("process.args", ["sh", 1]), "process.args[1]", "must be a string"),
    ("args0-empty", put("process.args", [""]), "process.args[0]", "must not be empty"),
    ("args-nul", put("process.args", ["sh", "-c\0x"]), "process.args[1]", "NUL"),
    ("args-surrogate", put("process.args", ["sh", "\udc80"]), "process.args[1]", "UTF-8"),
    ("env-not-list", put("process.env", "A=1"), "process.env", "must be an array"),
    ("env-no-equals", put("process.env", ["A=1", "FOO"]), "process.env[1]", "KEY=VALUE"),
    ("env-empty-key", put("process.env", ["=x"]), "process.env[0]", "KEY=VALUE"),
    ("env-nul", put("process.env", ["A=b\0c"]), "process.env[0]", "NUL"),
    ("env-surrogate", put("process.env", ["A=\ud800"]), "process.env[0]", "UTF-8"),
    ("env-int", put("process.env", [1]), "process.env[0]", "must be a string"),
    ("cwd-missing", put("process.cwd", DEL), "process.cwd", "is required"),
    ("cwd-relative", put("process.cwd", "tmp"), "process.cwd", "absolute"),
    ("cwd-nul", put("process.cwd", "/tmp\0"), "process.cwd", "NUL"),
    ("terminal-str", put("process.terminal", "true"), "process.terminal", "boolean"),
    ("consoleSize-missing-width", put("process.consoleSize", {"height": 1}),
     "process.consoleSize.width", "is required"),
    ("consoleSize-negative", put("process.consoleSize", {"height": -1, "width": 80}),
     "process.consoleSize.height", "out of range"),
    ("consoleSize-bool", put("process.consoleSize", {"height": True, "width": 80}),
     "process.consoleSize.height", "must be an integer, not true"),
    ("user-not-object", put("process.user", 0), "process.user", "must be an object"),
    ("uid-missing", put("process.user.uid", DEL), "process.user.uid", "is required"),
    ("uid-true", put("process.user.uid", True), "process.user.uid",
     "must be an integer, not true"),
    ("gid-false", put("process.user.gid", False), "process.user.gid",
     "must be an integer, not false"),
    ("uid-negative", put("process.user.uid", -1), "process.user.uid", "out of range"),
    ("uid-minus-one", put("process.user.uid", 4294967295), "process.user.uid", "(uid_t)-1"),
    ("uid-2^32", put("process.user.uid", 1 << 32), "process.user.uid", "out of range"),
    ("uid-float", put("process.user.uid", 1.0), "process.user.uid", "must be an integer"),
    ("uid-string", put("process.user.uid", "1"), "process.user.uid", "must be an integer"),
    ("uid-huge", put("process.user.uid", 1 << 200), "process.user.uid", "201-bit integer"),
    ("umask-big", put("process.user.umask", 0o10000), "process.user.umask", "out of range"),
    ("umask-true", put("process.user.umask", True), "process.user.umask", "integer"),
    ("additionalGids-negative", put("process.user.additionalGids", [1, -1]),
     "process.user.additionalGids[1]", "out of range"),
    ("additionalGids-bool", put("process.user.additionalGids", [True]),
     "process.user.additionalGids[0]", "not true"),
    ("additionalGids-not-list", put("process.user.additionalGids", 5),
     "process.user.additionalGids", "must be an array"),
    ("cap-unknown", put("process.capabilities", {"bounding": ["CAP_CHOWN", "CAP_FOO"]}),
     "process.capabilities.bounding[1]", "unknown capability CAP_FOO"),
    ("cap-lowercase", put("process.capabilities", {"effective": ["cap_chown"]}),
     "process.capabilities.effective[0]", "unknown capability cap_chown"),
    ("cap-41", put("process.capabilities", {"ambient": ["CAP_41"]}),
     "process.capabilities.ambient[0]", "unknown capability"),
    ("cap-int", put("process.capabilities", {"permitted": [1]}),
     "process.capabilities.permitted[0]", "must be a string"),
    ("cap-set-not-list", put("process.capabilities", {"inheritable": "CAP_KILL"}),
     "process.capabilities.inheritable", "must be an array"),
    ("cap-set-list-item", put("process.capabilities", {"bounding": [["CAP_KILL"]]}),
     "process.capabilities.bounding[0]", "must be a string"),
    ("rlimit-unknown", put("process.rlimits", [{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}]),
     "process.rlimits[0].type", "unknown rlimit RLIMIT_FOO"),
    ("rlimit-type-list", put("process.rlimits", [{"type": [], "soft": 1, "hard": 1}]),
     "process.rlimits[0].type", "must be a string"),
    ("rlimit-soft-above-hard",
     put("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]),
     "process.rlimits[0].soft", "above the hard limit"),
    ("rlimit-duplicate", put("process.rlimits", [
        {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
        {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2}]),
     "process.rlimits[1].type", "duplicate RLIMIT_NOFILE"),
    ("rlimit-2^64", put("process.rlimits", [{"type": "RLIMIT_CORE", "soft": 0, "hard": 1 << 64}]),
     "process.rlimits[0].hard", "out of range"),
    ("rlimit-negative", put("process.rlimits", [{"type": "RLIMIT_CORE", "soft": -1, "hard": 0}]),
     "process.rlimits[0].soft", "out of range"),
    ("rlimit-bool", put("process.rlimits", [{"type": "RLIMIT_CORE", "soft": True, "hard": 1}]),
     "process.rlimits[0].soft", "not true"),
    ("rlimit-missing-soft", put("process.rlimits", [{"type": "RLIMIT_CORE", "hard": 1}]),
     "process.rlimits[0].soft", "is required"),
    ("rlimits-not-list", put("process.rlimits", {}), "process.rlimits", "must be an array"),
    ("noNewPrivileges-int", put("process.noNewPrivileges", 1), "process.noNewPrivileges",
     "boolean"),
    ("oomScoreAdj-low", put("process.oomScoreAdj", -1001), "process.oomScoreAdj", "out of range"),
    ("oomScoreAdj-high", put("process.oomScoreAdj", 1001), "process.oomScoreAdj", "out of range"),
    ("oomScoreAdj-bool", put("process.oomScoreAdj", True), "process.oomScoreAdj", "integer"),
    ("apparmorProfile-int", put("process.apparmorProfile", 5), "process.apparmorProfile",
     "must be a string"),
    ("selinuxLabel-nul", put("process.selinuxLabel", "a\0b"), "process.selinuxLabel", "NUL"),
    ("ioPriority-class", put("process.ioPriority", {"class": "IOPRIO_CLASS_NONE"}),
     "process.ioPriority.class", "is not one of"),
    ("ioPriority-class-missing", put("process.ioPriority", {"priority": 1}),
     "process.ioPriority.class", "is required"),
    ("ioPriority-priority", put("process.ioPriority", {"class": "IOPRIO_CLASS_BE", "priority": 8}),
     "process.ioPriority.priority", "out of range"),
    ("scheduler-policy", put("process.scheduler", {"policy": "SCHED_FAST"}),
     "process.scheduler.policy", "unknown scheduler policy"),
    ("scheduler-flag", put("process.scheduler", {"policy": "SCHED_RR", "flags": ["X"]}),
     "process.scheduler.flags[0]", "unknown scheduler flag"),
    ("execCPUAffinity", put("process.execCPUAffinity", {"initial": "0-3;rm"}),
     "process.execCPUAffinity.initial", "CPU list"),
    # hostname / domainname
    ("hostname-long", put("hostname", "a" * 65), "hostname", "longer than 64 bytes"),
    ("hostname-long-utf8", put("hostname", "\u00e9" * 33), "hostname", "longer than 64 bytes"),
    ("hostname-nul", put("hostname", "a\0b"), "hostname", "NUL"),
    ("hostname-int", put("hostname", 5), "hostname", "must be a string"),
    ("hostname-no-uts", seq(put("hostname", "box"), without_ns("uts")), "hostname",
     "needs a uts namespace"),
    ("domainname-no-uts", seq(put("domainname", "example.org"), without_ns("uts")),
     "domainname", "needs a uts namespace"),
    ("domainname-long", put("domainname", "d" * 65), "domainname", "longer than 64"),
    # mounts
    ("mounts-not-list", put("mounts", {}), "mounts", "must be an array"),
    ("mount-not-object", put("mounts", ["/proc"]), "mounts[0]", "must be an object"),
    ("mount-destination-missing", put("mounts", [{"type": "tmpfs", "source": "tmpfs"}]),
     "mounts[0].destination", "is required"),
    ("mount-destination-relative", put("mounts", [{"destination": "/a"}, {"destination": "proc"}]),
     "mounts[1].destination", "must be an absolute path"),
    ("mount-destination-nul", put("mounts", [{"destination": "/a\0b"}]),
     "mounts[0].destination", "NUL"),
    ("mount-destination-int", put("mounts", [{"destination": 5}]),
     "mounts[0].destination", "must be a string"),
    ("mount-destination-surrogate", put("mounts", [{"destination": "/\udcff"}]),
     "mounts[0].destination", "UTF-8"),
    ("mount-type-int", put("mounts", [{"destination": "/a", "type": 5}]),
     "mounts[0].type", "must be a string"),
    ("mount-source-nul", put("mounts", [{"destination": "/a", "source": "/x\0"}]),
     "mounts[0].source", "NUL"),
    ("mount-options-string", put("mounts", [{"destination": "/a", "options": "ro"}]),
     "mounts[0].options", "must be an array"),
    ("mount-options-nul", put("mounts", [{"destination": "/a", "options": ["ro", "x\0"]}]),
     "mounts[0].options[1]", "NUL"),
    ("mount-idmap-size0", put("mounts", [{"destination": "/a",
                                         "uidMappings": [mapping(0, 1000, 0)]}]),
     "mounts[0].uidMappings[0].size", "out of range 1.."),
    ("mount-idmap-overlap", put("mounts", [{"destination": "/a", "gidMappings": [
        mapping(0, 1000, 10), mapping(5, 5000, 10)]}]),
     "mounts[0].gidMappings[1]", "containerID range overlaps mounts[0].gidMappings[0]"),
    # namespaces
    ("ns-not-list", put("linux.namespaces", {"type": "pid"}), "linux.namespaces",
     "must be an array"),
    ("ns-unknown", put("linux.namespaces", [{"type": "net"}]), "linux.namespaces[0].type",
     "unknown namespace type 'net'"),
    ("ns-type-missing", put("linux.namespaces", [{"path": "/proc/1/ns/net"}]),
     "linux.namespaces[0].type", "is required"),
    ("ns-type-list", put("linux.namespaces", [{"type": ["pid"]}]),
     "linux.namespaces[0].type", "unknown namespace type an array"),
    ("ns-duplicate", put("linux.namespaces", [{"type": "pid"}, {"type": "ipc"}, {"type": "pid"}]),
     "linux.namespaces[2].type", "duplicate namespace type pid"),
    ("ns-path-relative", put("linux.namespaces", [{"type": "ipc", "path": "proc/1/ns/ipc"}]),
     "linux.namespaces[0].path", "absolute"),
    ("ns-path-int", put("linux.namespaces", [{"type": "ipc", "path": 1}]),
     "linux.namespaces[0].path", "must be a string"),
    ("ns-path-nul", put("linux.namespaces", [{"type": "ipc", "path": "/proc/1/ns/ipc\0"}]),
     "linux.namespaces[0].path", "NUL"),
    # user namespaces and mappings
    ("uidMappings-without-userns",
     put("linux.uidMappings", [mapping(0, 1000, 1)]), "linux.uidMappings",
     "needs a user namespace"),
    ("gidMappings-without-userns",
     put("linux.gidMappings", [mapping(0, 1000, 1)]), "linux.gidMappings",
     "needs a user namespace"),
    ("userns-without-uidMappings", seq(userns, put("linux.uidMappings", DEL)),
     "linux.uidMappings", "required for a new user namespace"),
    ("userns-without-gidMappings", seq(userns, put("linux.gidMappings", [])),
     "linux.gidMappings", "required for a new user namespace"),
    ("mapping-size-0", seq(userns, put("linux.uidMappings", [mapping(0, 1000, 0)])),
     "linux.uidMappings[0].size", "out of range 1.."),
    ("mapping-size-true", seq(userns, put("linux.uidMappings", [mapping(0, 1000, True)])),
     "linux.uidMappings[0].size", "must be an integer, not true"),
    ("mapping-size-2^32", seq(userns, put("linux.uidMappings", [mapping(0, 0, 1 << 32)])),
     "linux.uidMappings[0].size", "out of range"),
    ("mapping-container-end", seq(userns, put("linux.uidMappings",
                                              [mapping(4294967295, 0, 2)])),
     "linux.uidMappings[0].size", "containerID 4294967295 + size 2 exceeds 2^32"),
    ("mapping-host-end", seq(userns, put("linux.gidMappings", [mapping(0, 4294967200, 100)])),
     "linux.gidMappings[0].size", "hostID 4294967200 + size 100 exceeds 2^32"),
    ("mapping-hostID-negative", seq(userns, put("linux.uidMappings", [mapping(0, -1, 1)])),
     "linux.uidMappings[0].hostID", "out of range"),
    ("mapping-missing-hostID", seq(userns, put("linux.uidMappings",
                                               [{"containerID": 0, "size": 1}])),
     "linux.uidMappings[0].hostID", "is required"),
    ("mapping-overlap-container", seq(userns, put("linux.uidMappings", [
        mapping(0, 100000, 1000), mapping(999, 300000, 10)])),
     "linux.uidMappings[1]", "containerID range overlaps linux.uidMappings[0]"),
    ("mapping-overlap-host", seq(userns, put("linux.uidMappings", [
        mapping(5000, 100500, 10), mapping(0, 100000, 1000)])),
     "linux.uidMappings[1]", "hostID range overlaps linux.uidMappings[0]"),
    ("mapping-overlap-gid", seq(userns, put("linux.gidMappings", [
        mapping(0, 100000, 10), mapping(20, 200000, 10), mapping(25, 300000, 1)])),
     "linux.gidMappings[2]", "containerID range overlaps linux.gidMappings[1]"),
    ("mapping-too-many", seq(userns, put("linux.uidMappings", [
        mapping(i, 100000 + i, 1) for i in range(341)])),
     "linux.uidMappings", "more than the kernel's 340"),
    ("mapping-not-object", seq(userns, put("linux.uidMappings", [[0, 0, 1]])),
     "linux.uidMappings[0]", "must be an object"),
    ("uid-unmapped", seq(userns, put("process.user.uid", 70000)), "process.user.uid",
     "70000 is not mapped"),
    ("gid-unmapped", seq(userns, put("process.user.gid", 65536)), "process.user.gid",
     "65536 is not mapped"),
    ("additionalGid-unmapped", seq(userns, put("process.user.additionalGids", [1, 99999])),
     "process.user.additionalGids[1]", "99999 is not mapped"),
    # time namespace
    ("timeOffsets-no-timens", put("linux.timeOffsets", {"monotonic": {"secs": 1}}),
     "linux.timeOffsets", "needs a time namespace"),
    ("timeOffsets-joined-timens", seq(ns_path("time", "/proc/1/ns/time"),
                                      put("linux.timeOffsets", {"boottime": {"secs": 1}})),
     "linux.timeOffsets", "needs a new time namespace"),
    ("timeOffsets-clock", seq(add_ns("time"), put("linux.timeOffsets",
                                                         {"realtime": {"secs": 1}})),
     "linux.timeOffsets.realtime", "unknown clock"),
    ("timeOffsets-nanosecs", seq(add_ns("time"), put("linux.timeOffsets",
                                                     {"monotonic": {"nanosecs": 10 ** 9}})),
     "linux.timeOffsets.monotonic.nanosecs", "out of range"),
    ("timeOffsets-secs-str", seq(add_ns("time"), put("linux.timeOffsets",
                                                     {"monotonic": {"secs": "1"}})),
     "linux.timeOffsets.monotonic.secs", "must be an integer"),
    # sysctl
    ("sysctl-not-object", put("linux.sysctl", ["net.ipv4.ip_forward=1"]), "linux.sysctl",
     "must be an object"),
    ("sysctl-value-int", put("linux.sysctl", {"net.ipv4.ip_forward": 1}),
     'linux.sysctl["net.ipv4.ip_forward"]', "must be a string"),
    ("sysctl-value-nul", put("linux.sysctl", {"net.ipv4.ip_forward": "1\0"}),
     'linux.sysctl["net.ipv4.ip_forward"]', "NUL"),
    ("sysctl-net-no-netns", seq(put("linux.sysctl", {"net.ipv4.ip_forward": "1"}),
                                without_ns("network")),
     'linux.sysctl["net.ipv4.ip_forward"]', "needs a network namespace"),
    ("sysctl-net-slash-no-netns", seq(put("linux.sysctl", {"net/ipv4/ip_forward": "1"}),
                                      without_ns("network")),
     'linux.sysctl["net/ipv4/ip_forward"]', "needs a network namespace"),
    ("sysctl-hostname-no-uts", seq(put("linux.sysctl", {"kernel.hostname": "x"}),
                                   without_ns("uts")),
     'linux.sysctl["kernel.hostname"]', "needs a uts namespace"),
    ("sysctl-domainname-no-uts", seq(put("linux.sysctl", {"kernel.domainname": "x"}),
                                     without_ns("uts")),
     'linux.sysctl["kernel.domainname"]', "needs a uts namespace"),
    ("sysctl-shm-no-ipc", seq(put("linux.sysctl", {"kernel.shmmax": "1"}), without_ns("ipc")),
     'linux.sysctl["kernel.shmmax"]', "needs a ipc namespace"),
    ("sysctl-msg-no-ipc", seq(put("linux.sysctl", {"kernel.msgmax": "1"}), without_ns("ipc")),
     'linux.sysctl["kernel.msgmax"]', "ipc namespace"),
    ("sysctl-sem-no-ipc", seq(put("linux.sysctl", {"kernel.sem": "1 2 3 4"}),
                              without_ns("ipc")),
     'linux.sysctl["kernel.sem"]', "ipc namespace"),
    ("sysctl-mqueue-no-ipc", seq(put("linux.sysctl", {"fs.mqueue.msg_max": "10"}),
                                 without_ns("ipc")),
     'linux.sysctl["fs.mqueue.msg_max"]', "ipc namespace"),
    ("sysctl-core-pattern", put("linux.sysctl", {"kernel.core_pattern": "|/x"}),
     'linux.sysctl["kernel.core_pattern"]', "not namespaced"),
    ("sysctl-vm", put("linux.sysctl", {"vm.swappiness": "0"}),
     'linux.sysctl["vm.swappiness"]', "refusing to change the host's"),
    ("sysctl-traversal", put("linux.sysctl", {"net/../kernel/core_pattern": "x"}),
     'linux.sysctl["net/../kernel/core_pattern"]', "invalid sysctl name"),
    ("sysctl-empty-component", put("linux.sysctl", {"net..ipv4": "x"}),
     'linux.sysctl["net..ipv4"]', "invalid sysctl name"),
    ("sysctl-empty-key", put("linux.sysctl", {"": "x"}), 'linux.sysctl[""]',
     "invalid sysctl name"),
    # masked / readonly paths
    ("maskedPaths-no-mountns", seq(put("linux.maskedPaths", ["/proc/kcore"]),
                                   without_ns("mount")),
     "linux.maskedPaths", "needs a mount namespace"),
    ("readonlyPaths-no-mountns", seq(put("linux.readonlyPaths", ["/proc/sys"]),
                                     without_ns("mount")),
     "linux.readonlyPaths", "needs a mount namespace"),
    ("maskedPaths-relative", put("linux.maskedPaths", ["proc/kcore"]), "linux.maskedPaths[0]",
     "absolute"),
    ("readonlyPaths-nul", put("linux.readonlyPaths", ["/proc\0"]), "linux.readonlyPaths[0]",
     "NUL"),
    ("maskedPaths-not-list", put("linux.maskedPaths", "/proc/kcore"), "linux.maskedPaths",
     "must be an array"),
    # devices
    ("device-relative", put("linux.devices", [{"path": "dev/fuse", "type": "c", "major": 10,
                                               "minor": 229}]),
     "linux.devices[0].path", "absolute"),
    ("device-path-missing", put("linux.devices", [{"type": "c", "major": 1, "minor": 3}]),
     "linux.devices[0].path", "is required"),
    ("device-type", put("linux.devices", [{"path": "/dev/x", "type": "x", "major": 1,
                                           "minor": 1}]),
     "linux.devices[0].type", "is not one of c, b, u, p"),
    ("device-major-missing", put("linux.devices", [{"path": "/dev/x", "type": "c", "minor": 1}]),
     "linux.devices[0].major", "required for a type c device"),
    ("device-minor-negative", put("linux.devices", [{"path": "/dev/x", "type": "b", "major": 8,
                                                     "minor": -1}]),
     "linux.devices[0].minor", "out of range"),
    ("device-major-bool", put("linux.devices", [{"path": "/dev/x", "type": "c", "major": True,
                                                 "minor": 1}]),
     "linux.devices[0].major", "not true"),
    ("device-fileMode", put("linux.devices", [{"path": "/dev/x", "type": "p",
                                               "fileMode": 0o10000}]),
     "linux.devices[0].fileMode", "out of range"),
    ("device-uid", put("linux.devices", [{"path": "/dev/x", "type": "p", "uid": 4294967295}]),
     "linux.devices[0].uid", "(uid_t)-1"),
    ("device-gid-true", put("linux.devices", [{"path": "/dev/x", "type": "p", "gid": True}]),
     "linux.devices[0].gid", "not true"),
    # propagation, labels, delegated sections
    ("rootfsPropagation", put("linux.rootfsPropagation", "rshare"), "linux.rootfsPropagation",
     "is not one of"),
    ("rootfsPropagation-int", put("linux.rootfsPropagation", 1), "linux.rootfsPropagation",
     "is not one of"),
    ("mountLabel-int", put("linux.mountLabel", 1), "linux.mountLabel", "must be a string"),
    ("cgroupsPath-nul", put("linux.cgroupsPath", "/a\0"), "linux.cgroupsPath", "NUL"),
    ("seccomp-list", put("linux.seccomp", []), "linux.seccomp", "must be an object"),
    ("resources-str", put("linux.resources", "x"), "linux.resources", "must be an object"),
    # hooks
    ("hooks-list", put("hooks", []), "hooks", "must be an object"),
    ("hooks-prestart-object", put("hooks", {"prestart": {}}), "hooks.prestart",
     "must be an array"),
    ("hook-path-missing", put("hooks", {"poststop": [{"args": ["x"]}]}),
     "hooks.poststop[0].path", "is required"),
    ("hook-path-relative", put("hooks", {"createRuntime": [hook(path="bin/hook")]}),
     "hooks.createRuntime[0].path", "absolute"),
    ("hook-path-nul", put("hooks", {"createContainer": [hook(path="/bin/h\0")]}),
     "hooks.createContainer[0].path", "NUL"),
    ("hook-args", put("hooks", {"startContainer": [hook(args="hook")]}),
     "hooks.startContainer[0].args", "must be an array"),
    ("hook-args-nul", put("hooks", {"startContainer": [hook(args=["hook", "\0"])]}),
     "hooks.startContainer[0].args[1]", "NUL"),
    ("hook-args0-empty", put("hooks", {"prestart": [hook(args=["", "x"])]}),
     "hooks.prestart[0].args[0]", "must not be empty"),
    ("hook-env", put("hooks", {"poststart": [hook(env=["PATH"])]}),
     "hooks.poststart[0].env[0]", "KEY=VALUE"),
    ("hook-timeout-0", put("hooks", {"prestart": [hook(timeout=0)]}),
     "hooks.prestart[0].timeout", "out of range"),
    ("hook-timeout-true", put("hooks", {"prestart": [hook(timeout=True)]}),
     "hooks.prestart[0].timeout", "not true"),
    ("hook-timeout-float", put("hooks", {"prestart": [hook(timeout=1.5)]}),
     "hooks.prestart[0].timeout", "must be an integer, not 1.5"),
    # annotations
    ("annotations-list", put("annotations", []), "annotations", "must be an object"),
    ("annotations-value-int", put("annotations", {"a": 1}), 'annotations["a"]',
     "must be a string"),
    ("annotations-empty-key", put("annotations", {"": "x"}), 'annotations[""]',
     "invalid key"),
    ("annotations-surrogate", put("annotations", {"a": "\udc80"}), 'annotations["a"]',
     "UTF-8"),
]

GOOD = [
    ("ociVersion-dev", put("ociVersion", "1.0.2-dev")),
    ("ociVersion-1.0.0", put("ociVersion", "1.0.0")),
    ("ociVersion-rc", put("ociVersion", "1.1.0-rc.1")),
    ("ociVersion-build", put("ociVersion", "1.0.0+abc")),
    ("ociVersion-future-minor", put("ociVersion", "1.3.0")),
    ("unknown-top-level-key", put("org.example.extension", {"anything": [None]})),
    ("linux-null", put("linux", None)),  # null = absent, as runc and crun read it
    ("unknown-process-key", put("process.org.example", 5)),
    ("root.readonly", put("root.readonly", True)),
    ("root-absolute", put("root.path", "/var/lib/rootfs")),
    ("args-utf8", put("process.args", ["echo", "h\u00e9llo", "\u2603"])),
    ("env-empty-value", put("process.env", ["A=", "B=c=d", "PATH=/bin"])),
    ("terminal-console", seq(put("process.terminal", True),
                             put("process.consoleSize", {"height": 0, "width": 0}))),
    ("uid-max", seq(put("process.user.uid", 4294967294), put("process.user.gid", 4294967294))),
    ("umask-max", put("process.user.umask", 0o7777)),
    ("additionalGids", put("process.user.additionalGids", [0, 5, 4294967294])),
    ("username", put("process.user.username", "root")),
    ("no-user", put("process.user", DEL)),
    ("all-caps", put("process.capabilities", {s: list(CAPS) for s in (
        "bounding", "effective", "inheritable", "permitted", "ambient")})),
    ("cap-checkpoint-restore", put("process.capabilities",
                                   {"bounding": ["CAP_CHECKPOINT_RESTORE"]})),
    ("empty-caps", put("process.capabilities", {"bounding": []})),
    ("rlimits", put("process.rlimits", [
        {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": (1 << 64) - 1},
        {"type": "RLIMIT_RTTIME", "soft": 0, "hard": 0}])),
    ("noNewPrivileges", put("process.noNewPrivileges", True)),
    ("oomScoreAdj-low", put("process.oomScoreAdj", -1000)),
    ("oomScoreAdj-high", put("process.oomScoreAdj", 1000)),
    ("labels", seq(put("process.apparmorProfile", "docker-default"),
                   put("process.selinuxLabel", "system_u:system_r:container_t:s0"))),
    ("ioPriority", put("process.ioPriority", {"class": "IOPRIO_CLASS_BE", "priority": 4})),
    ("ioPriority-idle", put("process.ioPriority", {"class": "IOPRIO_CLASS_IDLE"})),
    ("scheduler", put("process.scheduler", {"policy": "SCHED_FIFO", "priority": 10,
                                            "flags": ["SCHED_FLAG_RESET_ON_FORK"]})),
    ("execCPUAffinity", put("process.execCPUAffinity", {"initial": "0-3,7", "final": "1"})),
    ("hostname-64", put("hostname", "a" * 64)),
    ("hostname-empty-no-uts", seq(put("hostname", ""), without_ns("uts"))),
    ("domainname", put("domainname", "example.org")),
    ("hostname-joined-uts", seq(put("hostname", "box"), ns_path("uts", "/proc/1/ns/uts"))),
    ("mounts", put("mounts", [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/data", "type": "bind", "source": "/srv/data",
         "options": ["rbind", "ro"], "uidMappings": [mapping(0, 1000, 1)],
         "gidMappings": [mapping(0, 1000, 1)]},
        {"destination": "/tmp"}])),
    ("mounts-empty-no-mountns", seq(put("mounts", []), without_ns("mount"))),
    ("mounts-no-mountns", seq(put("mounts", [{"destination": "/proc", "type": "proc"}]),
                              without_ns("mount"))),
    ("no-linux", seq(put("linux", DEL))),
    ("all-namespaces", put("linux.namespaces", [{"type": t} for t in (
        "pid", "network", "mount", "ipc", "uts", "cgroup", "time")])),
    ("ns-path-offline", ns_path("network", "/run/netns/does-not-exist")),
    ("userns", userns),
    ("userns-adjacent-ranges", seq(userns, put("linux.uidMappings", [
        mapping(1, 100001, 999), mapping(0, 100000, 1), mapping(1000, 200000, 1000)]))),
    ("userns-full-range", seq(userns, put("linux.uidMappings", [mapping(0, 0, 4294967295)]))),
    ("userns-end-of-range", seq(userns, put("linux.gidMappings", [
        mapping(0, 4294967295, 1), mapping(1, 4294967294, 1)]))),
    ("userns-340", seq(userns, put("linux.uidMappings", [
        mapping(i, 100000 + i, 1) for i in range(340)]))),
    ("userns-mapped-user", seq(userns, put("process.user", {
        "uid": 1000, "gid": 1000, "additionalGids": [0, 65535]}))),
    ("userns-joined", seq(ns_path("user", "/proc/1/ns/user"), put("process.user.uid", 5))),
    ("timeOffsets", seq(add_ns("time"),
                        put("linux.timeOffsets", {"monotonic": {"secs": -5, "nanosecs": 0},
                                                  "boottime": {"secs": 86400,
                                                               "nanosecs": 999999999}}))),
    ("sysctl-net", put("linux.sysctl", {"net.ipv4.ip_forward": "1",
                                        "net/ipv4/conf/all/rp_filter": "0"})),
    ("sysctl-net-joined-netns", seq(ns_path("network", "/run/netns/x"),
                                    put("linux.sysctl", {"net.core.somaxconn": "1024"}))),
    ("sysctl-uts-ipc", put("linux.sysctl", {
        "kernel.hostname": "h", "kernel.domainname": "d", "kernel.shmmax": "1",
        "kernel.shm_rmid_forced": "1", "kernel.msgmnb": "1", "kernel.sem": "1 2 3 4",
        "fs.mqueue.queues_max": "256"})),
    ("maskedPaths", seq(put("linux.maskedPaths", ["/proc/kcore"]),
                        put("linux.readonlyPaths", ["/proc/sys"]))),
    ("maskedPaths-empty-no-mountns", seq(put("linux.maskedPaths", []), without_ns("mount"))),
    ("devices", put("linux.devices", [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666,
         "uid": 0, "gid": 0},
        {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0},
        {"path": "/dev/kmsg", "type": "u", "major": 1, "minor": 11},
        {"path": "/dev/fifo", "type": "p"}])),
    ("mountLabel", put("linux.mountLabel", "system_u:object_r:container_file_t:s0")),
    ("seccomp-resources-shallow", seq(put("linux.seccomp", {"whatever": [1, None]}),
                                      put("linux.resources", {"pids": {"limit": "x"}}))),
    ("hooks", put("hooks", {k: [hook(args=["hook", k], env=["A=1"], timeout=5)] for k in (
        "prestart", "createRuntime", "createContainer", "startContainer", "poststart",
        "poststop")})),
    ("hooks-unknown-kind", put("hooks", {"org.example.later": "anything"})),
    ("annotations", put("annotations", {"io.example/a": "1", "b": "", "c": "\u00e9"})),
] + [("rootfsPropagation-" + (p or "empty"), put("linux.rootfsPropagation", p))
     for p in PROPAGATIONS]


@pytest.mark.parametrize("mutation,field,fragment",
                         [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad(mutation, field, fragment):
    spec = build(mutation)
    with pytest.raises(ConfigError) as exc:
        validate(spec, check_host=False)
    err = exc.value
    assert err.field == field, str(err)
    assert fragment in err.msg, str(err)
    assert str(err).startswith(field + ": ")
    assert "\n" not in str(err)
    str(err).encode()  # printable: no lone surrogates leak into the message


@pytest.mark.parametrize("mutation", [c[1] for c in GOOD], ids=[c[0] for c in GOOD])
def test_good(mutation):
    validate(build(mutation), check_host=False)


def test_base_is_valid_with_host_checks():
    validate(base())


def test_spec_not_an_object():
    with pytest.raises(ConfigError) as exc:
        validate([], check_host=False)
    assert str(exc.value) == "must be an object, not an array"


def test_does_not_modify_spec():
    spec = build(seq(userns, put("mounts", [{"destination": "/a"}])))
    before = copy.deepcopy(spec)
    validate(spec, check_host=False)
    assert spec == before


# --- fixtures -------------------------------------------------------------------------

def load_fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


@pytest.mark.parametrize("name", ["podman-generated-config.json", "bench-config.json",
                                  "bench-config-noseccomp.json"])
def test_fixture_validates(name):
    validate(load_fixture(name), check_host=False)


@pytest.mark.parametrize("name", ["bench-config.json", "bench-config-noseccomp.json"])
def test_fixture_validates_with_host_checks(name):
    validate(load_fixture(name))


def test_podman_fixture_names_the_missing_netns_on_this_host():
    # The fixture joins a netns created by podman on another machine.
    with pytest.raises(ConfigError) as exc:
        validate(load_fixture("podman-generated-config.json"))
    assert exc.value.field == "linux.namespaces[1].path"
    assert str(exc.value).endswith("does not exist")


# --- host checks: namespace paths -------------------------------------------------------

def with_ns(entries, **extra):
    spec = base()
    spec["linux"]["namespaces"] = entries
    spec["linux"].update(extra)
    return spec


def test_ns_path_of_matching_type():
    validate(with_ns([{"type": t, "path": f"/proc/self/ns/{p}"} for t, p in (
        ("ipc", "ipc"), ("pid", "pid"), ("cgroup", "cgroup"), ("mount", "mnt"),
        ("uts", "uts"), ("network", "net"))]), check_host=True)


def test_ns_path_of_other_type():
    spec = with_ns([{"type": "pid"}, {"type": "mount"},
                    {"type": "ipc", "path": "/proc/self/ns/net"}])
    with pytest.raises(ConfigError) as exc:
        validate(spec)
    assert str(exc.value) == \
        "linux.namespaces[2].path: /proc/self/ns/net is a network namespace, not ipc"


@pytest.mark.parametrize("kind,proc", [("user", "mnt"), ("time", "uts"), ("mount", "user"),
                                       ("uts", "time"), ("cgroup", "pid")])
def test_ns_path_type_mismatch_each_kind(kind, proc):
    spec = with_ns([{"type": "pid"}, {"type": kind, "path": f"/proc/self/ns/{proc}"}])
    with pytest.raises(ConfigError) as exc:
        validate(spec)
    assert exc.value.field == "linux.namespaces[1].path"
    assert str(exc.value).endswith(f"namespace, not {kind}")


def test_ns_path_regular_file(tmp_path):
    p = tmp_path / "ns"
    p.write_text("")
    with pytest.raises(ConfigError) as exc:
        validate(with_ns([{"type": "mount"}, {"type": "network", "path": str(p)}]))
    assert exc.value.field == "linux.namespaces[1].path"
    assert str(exc.value) == f"linux.namespaces[1].path: {p} is not a namespace"


def test_ns_path_fifo_does_not_block(tmp_path):
    p = tmp_path / "fifo"
    os.mkfifo(p)
    with pytest.raises(ConfigError) as exc:
        validate(with_ns([{"type": "mount"}, {"type": "network", "path": str(p)}]))
    assert str(exc.value).endswith("is not a namespace")


def test_ns_path_directory(tmp_path):
    with pytest.raises(ConfigError) as exc:
        validate(with_ns([{"type": "mount"}, {"type": "ipc", "path": str(tmp_path)}]))
    assert str(exc.value).endswith("is not a namespace")


def test_ns_path_missing():
    with pytest.raises(ConfigError) as exc:
        validate(with_ns([{"type": "mount"}, {"type": "ipc", "path": "/run/netns/nope-x"}]))
    assert str(exc.value) == "linux.namespaces[1].path: /run/netns/nope-x does not exist"


def test_ns_path_not_checked_offline():
    validate(with_ns([{"type": "mount"}, {"type": "ipc", "path": "/proc/self/ns/net"}]),
             check_host=False)


def test_net_sysctl_in_the_hosts_netns():
    spec = with_ns([{"type": "mount"}, {"type": "network", "path": "/proc/self/ns/net"}],
                   sysctl={"net.ipv4.ip_forward": "1"})
    with pytest.raises(ConfigError) as exc:
        validate(spec)
    assert exc.value.field == 'linux.sysctl["net.ipv4.ip_forward"]'
    assert "is the host's network namespace" in exc.value.msg


def test_hostname_in_the_hosts_uts_ns():
    spec = with_ns([{"type": "mount"}, {"type": "uts", "path": "/proc/self/ns/uts"}])
    spec["hostname"] = "box"
    with pytest.raises(ConfigError) as exc:
        validate(spec)
    assert exc.value.field == "hostname"
    assert "is the host's uts namespace" in exc.value.msg


def test_masked_paths_in_the_hosts_mount_ns():
    spec = with_ns([{"type": "mount", "path": "/proc/self/ns/mnt"}],
                   maskedPaths=["/proc/kcore"])
    with pytest.raises(ConfigError) as exc:
        validate(spec)
    assert exc.value.field == "linux.maskedPaths"


def test_net_sysctl_in_another_netns_with_host_checks(tmp_path):
    # A namespace that is not ocirun's own: the one of a child in a new netns, if allowed.
    import subprocess
    child = subprocess.Popen(["unshare", "--net", "sleep", "30"], stderr=subprocess.DEVNULL)
    try:
        path = f"/proc/{child.pid}/ns/net"
        for _ in range(100):
            try:
                if os.stat(path).st_ino != os.stat("/proc/self/ns/net").st_ino:
                    break
            except OSError:
                pass
            if child.poll() is not None:
                pytest.skip("unshare --net is not permitted here")
            import time
            time.sleep(0.01)
        else:
            pytest.skip("child did not enter a new netns")
        validate(with_ns([{"type": "mount"}, {"type": "network", "path": path}],
                         sysctl={"net.ipv4.ip_forward": "1"}))
    finally:
        child.kill()
        child.wait()


# --- validate_process (exec --process) --------------------------------------------------

def test_validate_process_ok():
    validate_process({"args": ["sh"], "cwd": "/", "user": {"uid": 1, "gid": 1},
                      "env": ["A=1"], "terminal": False})


def test_validate_process_field_prefix():
    with pytest.raises(ConfigError) as exc:
        validate_process({"args": ["sh"], "cwd": "/", "user": {"uid": True, "gid": 0}},
                         field="process.json")
    assert str(exc.value) == "process.json.user.uid: must be an integer, not true"


def test_validate_process_empty_args():
    with pytest.raises(ConfigError) as exc:
        validate_process({"args": [], "cwd": "/"})
    assert str(exc.value) == "process.args: must not be empty"


def test_validate_process_not_object():
    with pytest.raises(ConfigError) as exc:
        validate_process(["sh"])
    assert str(exc.value) == "process: must be an object, not an array"


# --- robustness: any junk at any known key is a ConfigError, never another exception -----

JUNK = [None, True, False, 0, -1, 1 << 70, 1.5, float("nan"), "", "x", "\0", "\udc80",
        [], [None], [1], ["x"], [{}], [[]], {}, {"a": None}, {"type": None}]

KNOWN_PATHS = [
    "ociVersion", "root", "root.path", "root.readonly", "process", "process.args",
    "process.args.[0]", "process.env", "process.cwd", "process.terminal",
    "process.consoleSize", "process.user", "process.user.uid", "process.user.additionalGids",
    "process.capabilities", "process.capabilities.bounding", "process.rlimits",
    "process.oomScoreAdj", "process.ioPriority", "process.scheduler",
    "process.execCPUAffinity", "hostname", "domainname", "mounts", "hooks",
    "hooks.prestart", "annotations", "linux", "linux.namespaces", "linux.namespaces.[0]",
    "linux.uidMappings", "linux.gidMappings", "linux.sysctl", "linux.timeOffsets",
    "linux.timeOffsets.monotonic", "linux.devices", "linux.maskedPaths",
    "linux.readonlyPaths", "linux.rootfsPropagation", "linux.mountLabel", "linux.seccomp",
    "linux.resources",
]


def test_junk_everywhere():
    failures = []
    for path in KNOWN_PATHS:
        for junk in JUNK:
            spec = base()
            spec["mounts"] = [{"destination": "/a"}]
            spec["hooks"] = {"prestart": [{"path": "/h"}]}
            spec["process"]["capabilities"] = {"bounding": []}
            spec["linux"]["timeOffsets"] = {"monotonic": {}}
            spec["linux"]["namespaces"].append({"type": "time"})
            node = spec
            keys = path.split(".")
            for k in keys[:-1]:
                node = node[int(k[1:-1])] if k.startswith("[") else node[k]
            last = keys[-1]
            if last.startswith("["):
                node[int(last[1:-1])] = junk
            else:
                node[last] = junk
            try:
                validate(spec, check_host=False)
            except ConfigError as e:
                if "\n" in str(e):
                    failures.append((path, junk, "multi-line: " + str(e)))
            except Exception as e:  # noqa: BLE001 - the point of the test
                failures.append((path, junk, repr(e)))
    assert not failures, failures[:5]


# --- cost: this module is on every create/run path ------------------------------------------

def test_import_pulls_in_nothing_heavy():
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (f"import sys; sys.path.insert(0, {root!r}); import os; before = set(sys.modules)\n"
            "import ocirun.config.validate\n"
            "print(' '.join(sorted(set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ocirun", "ocirun.config", "ocirun.config.nulls",
                                  "ocirun.config.validate", "ocirun.errors", "ocirun.tables"]
