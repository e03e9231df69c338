"""Checks of linux.resources before any cgroup exists (runtime-spec config-linux.md).

Every error names the JSON path of the offending value, e.g.
`linux.resources.memory.limit: must be an integer, got true`. Python's bool is an int,
so every integer check rejects bools explicitly. Unknown keys are ignored (the spec grows).
The checks of blockIO, hugepageLimits, network, rdma and unified live in
validate_extra.py, imported only when resources have one: a plain `run` (pids, devices,
memory, cpu) does not read or unmarshal their code.
"""
from ocirun.errors import ConfigError

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1
UINT32_MAX = (1 << 32) - 1
UINT16_MAX = (1 << 16) - 1

def _show(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def _int(obj, key, field, lo, hi):
    """obj[key] if present: an int in [lo, hi]; returns it or None."""
    if key not in obj:
        return None
    v = obj[key]
    f = f"{field}.{key}"
    if type(v) is not int:
        raise ConfigError(f, f"must be an integer, got {_show(v)}")
    if v < lo or v > hi:
        raise ConfigError(f, f"{v} is out of range [{lo}, {hi}]")
    return v


def _bool(obj, key, field):
    if key in obj and type(obj[key]) is not bool:
        raise ConfigError(f"{field}.{key}", f"must be a boolean, got {_show(obj[key])}")
    return obj.get(key)


def _str(obj, key, field):
    if key not in obj:
        return None
    v = obj[key]
    if not isinstance(v, str):
        raise ConfigError(f"{field}.{key}", f"must be a string, got {_show(v)}")
    if "\0" in v:
        raise ConfigError(f"{field}.{key}", "must not contain NUL bytes")
    return v


def _obj(parent, key, field):
    if key not in parent or parent[key] is None:
        return None
    v = parent[key]
    if not isinstance(v, dict):
        raise ConfigError(f"{field}.{key}", f"must be an object, got {_show(v)}")
    return v


def _list(parent, key, field):
    if key not in parent or parent[key] is None:
        return None
    v = parent[key]
    if not isinstance(v, list):
        raise ConfigError(f"{field}.{key}", f"must be an array, got {_show(v)}")
    return v


def _items(lst, field):
    for i, item in enumerate(lst):
        f = f"{field}[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f, f"must be an object, got {_show(item)}")
        yield f, item


def _limit(obj, key, field):
    """A byte limit: -1 (unlimited), 0 (unset) or positive."""
    return _int(obj, key, field, -1, INT64_MAX)


def check_cpu_list(text, field):
    """cpuset syntax: "0-3,5,7-8" (or empty)."""
    if text == "":
        return
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        if not lo.isdigit() or not lo.isascii() or (sep and (not hi.isdigit() or not hi.isascii())):
            raise ConfigError(field, f"{text!r} is not a list like \"0-3,5\"")
        if sep and int(hi) < int(lo):
            raise ConfigError(field, f"{text!r}: range {part} is reversed")


def _device_major_minor(item, f):
    for key in ("major", "minor"):
        _int(item, key, f, -1, UINT32_MAX)


def validate_memory(mem, field, mode):
    limit = _limit(mem, "limit", field)
    _limit(mem, "reservation", field)
    swap = _limit(mem, "swap", field)
    kernel = _limit(mem, "kernel", field)
    kernel_tcp = _limit(mem, "kernelTCP", field)
    swappiness = _int(mem, "swappiness", field, 0, 100)
    for key in ("disableOOMKiller", "useHierarchy", "checkBeforeUpdate"):
        _bool(mem, key, field)
    # What no kernel ocirun runs on can do is refused, not accepted and dropped; what
    # asks for the kernel's own behaviour (no limit, hierarchical) is taken.
    if kernel and kernel > 0:
        raise ConfigError(f"{field}.kernel", "kernel memory limits are not supported: the "
                                             "kernel ignores them (use -1 or leave it out)")
    if mem.get("useHierarchy") is False:
        raise ConfigError(f"{field}.useHierarchy", "false is not supported: memory "
                                                   "accounting is always hierarchical")
    if mode == "unified":
        # cgroup v2 has no such knobs (crun refuses them there too)
        if kernel_tcp and kernel_tcp > 0:
            raise ConfigError(f"{field}.kernelTCP", "does not exist on cgroup v2")
        if swappiness is not None:
            raise ConfigError(f"{field}.swappiness", "does not exist on cgroup v2")
        if mem.get("disableOOMKiller"):
            raise ConfigError(f"{field}.disableOOMKiller", "the OOM killer cannot be "
                                                           "disabled on cgroup v2")
    if limit and swap and swap != -1:
        if limit == -1:
            raise ConfigError(f"{field}.swap", "cannot be finite when memory.limit is -1 (unlimited)")
        if swap < limit:
            raise ConfigError(f"{field}.swap", f"{swap} is below memory.limit {limit}; "
                                               "swap is the memory+swap total")
    if mode == "unified" and swap and swap != -1 and not limit:
        raise ConfigError(f"{field}.swap", "needs memory.limit on cgroup v2 (swap is memory+swap)")


def validate_cpu(cpu, field, mode):
    shares = _int(cpu, "shares", field, 0, 262144)
    if shares == 1:
        raise ConfigError(f"{field}.shares", "must be 0 (unset) or in [2, 262144]")
    quota = _int(cpu, "quota", field, -1, INT64_MAX)
    if quota is not None and 0 < quota < 1000:
        raise ConfigError(f"{field}.quota", f"{quota} is below the kernel minimum of 1000 (1ms)")
    period = _int(cpu, "period", field, 0, 1000000)
    if period is not None and 0 < period < 1000:
        raise ConfigError(f"{field}.period", f"{period} is out of range [1000, 1000000]")
    _int(cpu, "burst", field, 0, UINT64_MAX)
    rt_runtime = _int(cpu, "realtimeRuntime", field, -1, INT64_MAX)
    rt_period = _int(cpu, "realtimePeriod", field, 0, UINT64_MAX)
    if mode == "unified" and (rt_runtime or rt_period):
        raise ConfigError(f"{field}.realtimeRuntime", "realtime scheduling limits do not exist on cgroup v2")
    for key in ("cpus", "mems"):
        v = _str(cpu, key, field)
        if v is not None:
            check_cpu_list(v, f"{field}.{key}")
    _int(cpu, "idle", field, 0, 1)


def validate_devices(lst, field):
    for f, item in _items(lst, field):
        if "allow" not in item:
            raise ConfigError(f"{f}.allow", "is required")
        _bool(item, "allow", f)
        t = item.get("type", "a")
        if t is None:
            t = "a"
        if t not in ("a", "b", "c"):
            raise ConfigError(f"{f}.type", f"{_show(t)} is not one of \"a\", \"b\", \"c\"")
        _device_major_minor(item, f)
        access = item.get("access", "rwm")
        if access is None:
            access = "rwm"
        if not isinstance(access, str) or not access or any(c not in "rwm" for c in access) \
                or len(set(access)) != len(access):
            raise ConfigError(f"{f}.access", f"{_show(access)} is not a subset of \"rwm\"")


def validate_resources(res, mode=None, field="linux.resources"):
    if res is None:
        return
    if not isinstance(res, dict):
        raise ConfigError(field, f"must be an object, got {_show(res)}")
    mem = _obj(res, "memory", field)
    if mem is not None:
        validate_memory(mem, f"{field}.memory", mode)
    cpu = _obj(res, "cpu", field)
    if cpu is not None:
        validate_cpu(cpu, f"{field}.cpu", mode)
    pids = _obj(res, "pids", field)
    if pids is not None:
        _int(pids, "limit", f"{field}.pids", INT64_MIN, INT64_MAX)
    if "blockIO" in res or "hugepageLimits" in res or "network" in res:
        from ocirun.cgroups import validate_extra
        validate_extra.validate_io_and_network(res, field, mode)
    devs = _list(res, "devices", field)
    if devs is not None:
        validate_devices(devs, f"{field}.devices")
    if "rdma" in res or "unified" in res:
        from ocirun.cgroups import validate_extra
        validate_extra.validate_rdma_and_unified(res, field, mode)
