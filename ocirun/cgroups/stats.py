"""The statistics of a container's cgroup (`ocirun events --stats`), shaped like runc's
`events --stats` "data" (types/events.go): the managers' stats() call in here, so that
the code of these readers stays out of every `run` (import cost).
"""
import posix

from ocirun.cgroups import common
from ocirun.cgroups.common import read_file, read_uint

UINT64_MAX = (1 << 64) - 1


def mem_entry(limit, usage, max_usage, failcnt):
    d = {"limit": limit}
    if usage:
        d["usage"] = usage
    if max_usage:
        d["max"] = max_usage
    d["failcnt"] = failcnt
    return d


def put_nonzero(d, key, value):
    """Go's omitempty/omitzero: leave out zero numbers, empty lists and all-zero objects."""
    if isinstance(value, dict):
        if any(v for v in value.values()):
            d[key] = value
    elif value:
        d[key] = value


def cpu_stats(total, percpu, percpu_kernel, percpu_user, kernel, user, periods, throttled, throttled_time):
    usage = {}
    put_nonzero(usage, "total", total)
    put_nonzero(usage, "percpu", percpu)
    put_nonzero(usage, "percpu_kernel", percpu_kernel)
    put_nonzero(usage, "percpu_user", percpu_user)
    usage["kernel"] = kernel
    usage["user"] = user
    thr = {}
    put_nonzero(thr, "periods", periods)
    put_nonzero(thr, "throttledPeriods", throttled)
    put_nonzero(thr, "throttledTime", throttled_time)
    out = {}
    put_nonzero(out, "usage", usage)
    put_nonzero(out, "throttling", thr)
    return out


def blkio_entry(major, minor, op, value):
    e = {}
    put_nonzero(e, "major", major)
    put_nonzero(e, "minor", minor)
    put_nonzero(e, "op", op)
    put_nonzero(e, "value", value)
    return e


def empty_stats():
    return {"cpu": {}, "cpuset": {}, "memory": {}, "pids": {}, "blkio": {}, "hugetlb": {},
            "intel_rdt": {}, "network_interfaces": None}


def v1(m):
    out = empty_stats()
    d = m.dir("cpuacct")
    c = m.dir("cpu")
    if d or c:
        tick_ns = 10 ** 9 // posix.sysconf("SC_CLK_TCK")
        percpu = _ints(read_file(d, "cpuacct.usage_percpu")) if d else []
        acct = common.parse_flat(read_file(d, "cpuacct.stat")) if d else {}
        thr = common.parse_flat(read_file(c, "cpu.stat")) if c else {}
        out["cpu"] = cpu_stats(
            read_uint(d, "cpuacct.usage") if d else 0, percpu,
            _ints(read_file(d, "cpuacct.usage_percpu_sys")) if d else [],
            _ints(read_file(d, "cpuacct.usage_percpu_user")) if d else [],
            acct.get("system", 0) * tick_ns, acct.get("user", 0) * tick_ns,
            thr.get("nr_periods", 0), thr.get("nr_throttled", 0), thr.get("throttled_time", 0))
    d = m.dir("memory")
    if d:
        raw = common.parse_flat(read_file(d, "memory.stat"))
        mem = {}
        put_nonzero(mem, "cache", raw.get("cache", 0))
        for key, prefix in (("usage", "memory."), ("swap", "memory.memsw."),
                            ("kernel", "memory.kmem."), ("kernelTCP", "memory.kmem.tcp.")):
            put_nonzero(mem, key, mem_entry(
                read_uint(d, prefix + "limit_in_bytes"), read_uint(d, prefix + "usage_in_bytes"),
                read_uint(d, prefix + "max_usage_in_bytes"), read_uint(d, prefix + "failcnt")))
        put_nonzero(mem, "raw", raw)
        out["memory"] = mem
    d = m.dir("pids")
    if d:
        pids = {}
        put_nonzero(pids, "current", read_uint(d, "pids.current"))
        put_nonzero(pids, "limit", read_uint(d, "pids.max"))
        out["pids"] = pids
    d = m.dir("blkio")
    if d:
        blk = {}
        for key, names in (("ioServiceBytesRecursive", ("blkio.io_service_bytes_recursive",
                                                        "blkio.bfq.io_service_bytes_recursive",
                                                        "blkio.throttle.io_service_bytes_recursive")),
                           ("ioServicedRecursive", ("blkio.io_serviced_recursive",
                                                    "blkio.bfq.io_serviced_recursive",
                                                    "blkio.throttle.io_serviced_recursive"))):
            for name in names:
                text = read_file(d, name)
                if text is not None:
                    put_nonzero(blk, key, _blkio_entries(text))
                    break
        out["blkio"] = blk
    d = m.dir("hugetlb")
    if d:
        huge = {}
        for name in sorted(posix.listdir(d)):
            if name.startswith("hugetlb.") and name.endswith(".usage_in_bytes") and name.count(".") == 2:
                size = name.split(".")[1]
                h = {}
                put_nonzero(h, "usage", read_uint(d, name))
                put_nonzero(h, "max", read_uint(d, f"hugetlb.{size}.max_usage_in_bytes"))
                h["failcnt"] = read_uint(d, f"hugetlb.{size}.failcnt")
                huge[size] = h
        out["hugetlb"] = huge
    return out


def _ints(text):
    return [int(x) for x in (text or "").split() if x.isdigit()]


def _blkio_entries(text):
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0]:
            continue  # "Total N"
        major, _, minor = parts[0].partition(":")
        try:
            out.append(blkio_entry(int(major), int(minor), parts[1], int(parts[2])))
        except ValueError:
            continue
    return out


def v2(m):
    d = m.leaf
    out = empty_stats()
    st = common.parse_flat(read_file(d, "cpu.stat"))
    out["cpu"] = cpu_stats(
        st.get("usage_usec", 0) * 1000, [], [], [], st.get("system_usec", 0) * 1000,
        st.get("user_usec", 0) * 1000, st.get("nr_periods", 0), st.get("nr_throttled", 0),
        st.get("throttled_usec", 0) * 1000)
    if common.exists(d, "memory.current"):
        raw = common.parse_flat(read_file(d, "memory.stat"))
        mem = {}
        put_nonzero(mem, "cache", raw.get("file", 0))
        usage = read_uint(d, "memory.current")
        limit = read_uint(d, "memory.max", UINT64_MAX)
        events = common.parse_flat(read_file(d, "memory.events"))
        put_nonzero(mem, "usage", mem_entry(
            limit, usage, read_uint(d, "memory.peak"), events.get("max", 0)))
        if common.exists(d, "memory.swap.current"):
            # reported as memory+swap, like the v1 memsw numbers callers expect
            swap = read_uint(d, "memory.swap.current")
            swap_max = read_uint(d, "memory.swap.max", UINT64_MAX)
            total_limit = UINT64_MAX if UINT64_MAX in (limit, swap_max) else limit + swap_max
            sev = common.parse_flat(read_file(d, "memory.swap.events"))
            put_nonzero(mem, "swap", mem_entry(total_limit, swap + usage, 0, sev.get("max", 0)))
        put_nonzero(mem, "raw", raw)
        out["memory"] = mem
    if common.exists(d, "pids.current"):
        pids = {}
        put_nonzero(pids, "current", read_uint(d, "pids.current"))
        put_nonzero(pids, "limit", read_uint(d, "pids.max"))
        out["pids"] = pids
    text = read_file(d, "io.stat")
    if text:
        nbytes, nios = [], []
        for line in text.splitlines():
            parts = line.split()
            if not parts or ":" not in parts[0]:
                continue
            major, _, minor = parts[0].partition(":")
            kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
            try:
                major, minor = int(major), int(minor)
                for op, b, n in (("Read", "rbytes", "rios"), ("Write", "wbytes", "wios")):
                    nbytes.append(blkio_entry(major, minor, op, int(kv.get(b, 0))))
                    nios.append(blkio_entry(major, minor, op, int(kv.get(n, 0))))
            except ValueError:
                continue
        blk = {}
        put_nonzero(blk, "ioServiceBytesRecursive", nbytes)
        put_nonzero(blk, "ioServicedRecursive", nios)
        out["blkio"] = blk
    huge = {}
    try:
        names = sorted(posix.listdir(d))
    except OSError:
        names = []
    for name in names:
        if name.startswith("hugetlb.") and name.endswith(".current") and name.count(".") == 2:
            size = name.split(".")[1]
            h = {}
            put_nonzero(h, "usage", read_uint(d, name))  # v2 keeps no peak
            h["failcnt"] = common.parse_flat(read_file(d, f"hugetlb.{size}.events")).get("max", 0)
            huge[size] = h
    out["hugetlb"] = huge
    return out
