"""The checks of config.json fields a plain container does not have, for validate.py.

validate.py runs on every `create`/`run`; these checks are imported from it only when a
config has one of their fields (hooks, uid/gid mappings, idmapped mounts, namespaces joined
by path, process.ioPriority, .scheduler, .execCPUAffinity, linux.personality,
.memoryPolicy, .netDevices, .intelRdt, .timeOffsets): a plain `run` does not read or
unmarshal their code. Same rules and messages as validate.py (whose helpers they use).
"""
import posix

from ocirun.config.validate import (
    U32, U64, _abspath, _bool, _env, _fail, _get, _int, _kstrlist, _list, _obj, _q, _show,
    _str, _want, IDMAP_OPTIONS,
)
from ocirun.tables import NAMESPACES as _NS
from ocirun.tables import (
    IOPRIO_CLASS, MPOL_FLAG, MPOL_MODE, MPOL_NEED_NODES, MPOL_NO_NODES, PERSONALITY_DOMAIN,
    SCHED_FLAG, SCHED_POLICY, parse_cpu_list,
)

# OCI namespace type -> CLONE_NEW* flag (what NS_GET_NSTYPE returns) and /proc/self/ns name.
NAMESPACES = {kind: flag for kind, (flag, _) in _NS.items()}
NS_PROC_NAME = {kind: name for kind, (_, name) in _NS.items()}
_NS_BY_FLAG = {flag: kind for kind, flag in NAMESPACES.items()}
NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3), linux/nsfs.h

IOPRIO_CLASSES = tuple(IOPRIO_CLASS)
SCHED_POLICIES = tuple(SCHED_POLICY)
SCHED_FLAGS = tuple(SCHED_FLAG)
HOOK_KINDS = (
    "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop",
)
I32_MIN, I32_MAX = -0x80000000, 0x7FFFFFFF
I64_MIN, I64_MAX = -0x8000000000000000, 0x7FFFFFFFFFFFFFFF
MAX_ID_MAPPINGS = 340        # kernel limit on uid_map/gid_map lines since Linux 4.15
HOOK_TIMEOUT_MAX = 0x7FFFFFFF


def _check_io_priority(v, field):
    _obj(v, field)
    cls = _get(v, "class", field)
    if type(cls) is not str or cls not in IOPRIO_CLASSES:
        _fail(f"{field}.class", f"{_show(cls)} is not one of {', '.join(IOPRIO_CLASSES)}")
    if "priority" in v:  # (optional in the schema: 0 then)
        _int(v["priority"], f"{field}.priority", 0, 7)


def _check_scheduler(v, field):
    _obj(v, field)
    policy = _get(v, "policy", field)
    if type(policy) is not str or policy not in SCHED_POLICIES:
        _fail(f"{field}.policy", f"unknown scheduler policy {_show(policy)}")
    if "nice" in v:
        _int(v["nice"], f"{field}.nice", -20, 19)
    if "priority" in v:
        _int(v["priority"], f"{field}.priority", I32_MIN, I32_MAX)
    if "flags" in v:
        for i, flag in enumerate(_list(v["flags"], f"{field}.flags")):
            if type(flag) is not str or flag not in SCHED_FLAGS:
                _fail(f"{field}.flags[{i}]", f"unknown scheduler flag {_show(flag)}")
    for key in ("runtime", "deadline", "period"):
        if key in v:
            _int(v[key], f"{field}.{key}", 0, U64)
    # what sched_setattr(2) would refuse, said before anything is made
    prio = v.get("priority", 0)
    if policy in ("SCHED_FIFO", "SCHED_RR"):
        if not 1 <= prio <= 99:
            _fail(f"{field}.priority", f"{policy} needs a priority of 1 to 99, not {prio}")
    elif prio:
        _fail(f"{field}.priority", f"{policy} takes no priority (0), not {prio}")
    if policy == "SCHED_DEADLINE":
        for key in ("runtime", "deadline", "period"):
            if not v.get(key):
                _fail(f"{field}.{key}", "is required (above 0) for SCHED_DEADLINE")
        if not v["runtime"] <= v["deadline"] <= v["period"]:
            _fail(field, "SCHED_DEADLINE needs runtime <= deadline <= period")
    elif any(v.get(k) for k in ("runtime", "deadline", "period")):
        _fail(field, f"runtime, deadline and period are for SCHED_DEADLINE, not {policy}")


def _cpu_list(v, field, what="a CPU list such as 0-3,7"):
    s = _str(v, field)
    try:
        return parse_cpu_list(s)
    except ValueError:
        _fail(field, f"{_q(s)} is not {what}")


def _check_cpu_affinity(v, field):
    _obj(v, field)
    for key in ("initial", "final"):
        if v.get(key):
            _cpu_list(v[key], f"{field}.{key}")


def _check_personality(v, field):
    _obj(v, field)
    domain = _get(v, "domain", field)
    if type(domain) is not str or domain not in PERSONALITY_DOMAIN:
        _fail(f"{field}.domain", f"{_show(domain)} is not one of {', '.join(PERSONALITY_DOMAIN)}")
    for i, flag in enumerate(_list(v.get("flags") or [], f"{field}.flags")):
        # (the runtime-spec defines no personality flag yet)
        _fail(f"{field}.flags[{i}]", f"unknown personality flag {_show(flag)}")


def _check_memory_policy(v, field):
    _obj(v, field)
    mode = _get(v, "mode", field)
    if type(mode) is not str or mode not in MPOL_MODE:
        _fail(f"{field}.mode", f"{_show(mode)} is not one of {', '.join(MPOL_MODE)}")
    flags = []
    for i, flag in enumerate(_list(v.get("flags") or [], f"{field}.flags")):
        if type(flag) is not str or flag not in MPOL_FLAG:
            _fail(f"{field}.flags[{i}]", f"unknown memory policy flag {_show(flag)}")
        flags.append(flag)
    if "MPOL_F_STATIC_NODES" in flags and "MPOL_F_RELATIVE_NODES" in flags:
        _fail(f"{field}.flags", "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other")
    nodes = _cpu_list(v["nodes"], f"{field}.nodes", "a node list such as 0-3,7") \
        if v.get("nodes") else set()
    if mode in MPOL_NO_NODES and nodes:
        _fail(f"{field}.nodes", f"{mode} takes no nodes")
    if mode in MPOL_NEED_NODES and not nodes:
        _fail(f"{field}.nodes", f"{mode} needs at least one node")


IFNAMSIZ = 16


def _ifname(v, field, template=False):
    s = _str(v, field)
    if not s or len(s.encode()) >= IFNAMSIZ or s in (".", "..") or "/" in s or ":" in s \
            or any(c.isspace() for c in s) or (not template and "%" in s):
        _fail(field, f"{_q(s)} is not a network interface name")
    return s


def _check_net_devices(v, field):
    _obj(v, field)
    names = set()
    for name, dev in v.items():
        f = f"{field}.{name}"
        _ifname(name, f)
        _obj(dev, f)
        new = _ifname(dev["name"], f + ".name", template=True) if dev.get("name") else name
        if new in names and "%d" not in new:
            _fail(f + ".name", f"{_q(new)} is the name of another device too")
        names.add(new)


def _check_intel_rdt(v, field):
    _obj(v, field)
    clos = v.get("closID")
    if clos is not None and (type(clos) is not str or not clos or "/" in clos
                             or clos in (".", "..")):
        _fail(f"{field}.closID", f"{_show(clos)} is not a resctrl group name")
    for key in ("l3CacheSchema", "memBwSchema"):
        if key in v:
            _str(v[key], f"{field}.{key}")
    if "schemata" in v:
        _kstrlist(v["schemata"], f"{field}.schemata")
    if "enableMonitoring" in v:
        _bool(v["enableMonitoring"], f"{field}.enableMonitoring")


def check_idmap(v, field):
    """uidMappings/gidMappings: sane ranges that neither side overlaps (user_namespaces(7))."""
    _list(v, field)
    if len(v) > MAX_ID_MAPPINGS:
        _fail(field, f"{len(v)} entries, more than the kernel's {MAX_ID_MAPPINGS}")
    ranges = []
    for i, m in enumerate(v):
        f = f"{field}[{i}]"
        _obj(m, f)
        cid = _int(_get(m, "containerID", f), f + ".containerID", 0, U32)
        hid = _int(_get(m, "hostID", f), f + ".hostID", 0, U32)
        size = _get(m, "size", f)
        if type(size) is not int:
            _want(size, "an integer", f + ".size")
        if size <= 0 or size > U32:
            _fail(f + ".size", f"{_show(size)} is out of range 1..{U32}")
        if cid + size > 1 << 32:
            _fail(f + ".size", f"containerID {cid} + size {size} exceeds 2^32")
        if hid + size > 1 << 32:
            _fail(f + ".size", f"hostID {hid} + size {size} exceeds 2^32")
        ranges.append((cid, hid, size, i))
    for side, name in ((0, "containerID"), (1, "hostID")):
        prev = None
        for r in sorted(ranges, key=lambda r: r[side]):
            if prev is not None and prev[side] + prev[2] > r[side]:
                a, b = sorted((prev[3], r[3]))
                _fail(f"{field}[{b}]", f"{name} range overlaps {field}[{a}]")
            prev = r
    return v


def _mapped(i, maps):
    for m in maps:
        if m["containerID"] <= i < m["containerID"] + m["size"]:
            return True
    return False


def check_hooks(v, field):
    _obj(v, field)
    for kind in HOOK_KINDS:
        if kind not in v:
            continue
        hooks = _list(v[kind], f"{field}.{kind}")
        for i, h in enumerate(hooks):
            f = f"{field}.{kind}[{i}]"
            _obj(h, f)
            _abspath(_get(h, "path", f), f + ".path")
            if "args" in h:
                args = _kstrlist(h["args"], f + ".args")
                if args and not args[0]:  # Python's exec functions refuse an empty argv[0]
                    _fail(f + ".args[0]", "must not be empty")
            if "env" in h:
                _env(h["env"], f + ".env")
            if "timeout" in h:
                _int(h["timeout"], f + ".timeout", 1, HOOK_TIMEOUT_MAX)


def check_ns_path(path, kind, field):
    """The file at `path` must be a namespace of `kind` (a bind-mounted nsfs inode or
    /proc/PID/ns/*): joining a namespace of another type would silently share the host's."""
    import fcntl

    try:
        st = posix.stat(path)
    except FileNotFoundError:
        _fail(field, f"{_q(path)} does not exist")
    except OSError as e:
        _fail(field, f"{_q(path)}: {posix.strerror(e.errno)}")
    # nsfs inodes are regular files; anything else (FIFO, device) is refused before open().
    if st.st_mode & 0o170000 != 0o100000:
        _fail(field, f"{_q(path)} is not a namespace")
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC | posix.O_NONBLOCK | posix.O_NOCTTY)
    except OSError as e:
        _fail(field, f"{_q(path)}: {posix.strerror(e.errno)}")
    try:
        flag = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        flag = None
    finally:
        posix.close(fd)
    if flag is None:
        _fail(field, f"{_q(path)} is not a namespace")
    if flag != NAMESPACES[kind]:
        other = _NS_BY_FLAG.get(flag, hex(flag))
        _fail(field, f"{_q(path)} is a {other} namespace, not {kind}")


def is_host_ns(path, kind):
    """True when `path` is the namespace ocirun itself runs in ("host" = current)."""
    try:
        a = posix.stat(path)
        b = posix.stat("/proc/self/ns/" + NS_PROC_NAME[kind])
    except OSError:
        return False
    return a.st_ino == b.st_ino and a.st_dev == b.st_dev


def check_time_offsets(v, field):
    _obj(v, field)
    for clock, off in v.items():
        f = f"{field}.{clock}"
        if clock != "monotonic" and clock != "boottime":
            _fail(f, f"unknown clock {_q(clock)} (monotonic or boottime)")
        _obj(off, f)
        if "secs" in off:
            _int(off["secs"], f + ".secs", I64_MIN, I64_MAX)
        if "nanosecs" in off:
            _int(off["nanosecs"], f + ".nanosecs", 0, 999999999)


def check_idmapped_mounts(spec, ns):
    """mounts[i] with idmap/ridmap or its own uid/gid mappings (config.md "Mounts"): a
    bind mount, both mappings or none, and with none the container's user namespace
    (whose maps it then takes)."""
    linux = spec.get("linux") or {}
    for i, m in enumerate(spec.get("mounts") or ()):
        f = f"mounts[{i}]"
        opts = [o for o in m.get("options") or () if o in IDMAP_OPTIONS]
        has_maps = "uidMappings" in m or "gidMappings" in m
        if not opts and not has_maps:
            continue
        if len(opts) > 1:
            _fail(f + ".options", "idmap and ridmap exclude each other")
        if ("uidMappings" in m) != ("gidMappings" in m):
            _fail(f, "uidMappings and gidMappings go together")
        if m.get("type") != "bind" and not any(o in ("bind", "rbind") for o in m.get("options") or ()):
            _fail(f + ".options", "an idmapped mount must be a bind mount")
        if not has_maps and not ("user" in ns and linux.get("uidMappings")):
            _fail(f + ".options", f"{opts[0]} needs uidMappings/gidMappings on the mount, or a "
                                  "user namespace with mappings")


def check_user_mappings(linux, ns, user):
    """linux.uidMappings/gidMappings against the user namespace, and process.user's ids
    against them (docs/security.md class I)."""
    uid_maps = linux.get("uidMappings")
    gid_maps = linux.get("gidMappings")
    if "uidMappings" in linux:
        check_idmap(uid_maps, "linux.uidMappings")
    if "gidMappings" in linux:
        check_idmap(gid_maps, "linux.gidMappings")
    if "user" in ns:
        if ns["user"] is None:
            if not uid_maps:
                _fail("linux.uidMappings", "is required for a new user namespace")
            if not gid_maps:
                _fail("linux.gidMappings", "is required for a new user namespace")
    else:
        if uid_maps:
            _fail("linux.uidMappings", "needs a user namespace in linux.namespaces")
        if gid_maps:
            _fail("linux.gidMappings", "needs a user namespace in linux.namespaces")
    if user:
        if uid_maps and not _mapped(user["uid"], uid_maps):
            _fail("process.user.uid", f"{user['uid']} is not mapped by linux.uidMappings")
        if gid_maps:
            if not _mapped(user["gid"], gid_maps):
                _fail("process.user.gid", f"{user['gid']} is not mapped by linux.gidMappings")
            for i, g in enumerate(user.get("additionalGids", ())):
                if not _mapped(g, gid_maps):
                    _fail(f"process.user.additionalGids[{i}]",
                          f"{g} is not mapped by linux.gidMappings")


PROCESS_KEYS = {
    "ioPriority": _check_io_priority,
    "scheduler": _check_scheduler,
    "execCPUAffinity": _check_cpu_affinity,
}
LINUX_KEYS = {
    "personality": _check_personality,
    "memoryPolicy": _check_memory_policy,
    "netDevices": _check_net_devices,
    "intelRdt": _check_intel_rdt,
}
