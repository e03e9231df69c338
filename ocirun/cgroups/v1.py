"""cgroup v1 (and hybrid): one directory per mounted controller hierarchy.

In hybrid mode (v1 controllers plus cgroup2 at <root>/unified) the container also gets a
directory in the unified hierarchy: processes are tracked there too, which gives
`kill_all` the atomic cgroup.kill and lets v2-only tools find the container. Limits still
go to the v1 controllers, and linux.resources.unified is refused (validate.py).
"""
import posix

from ocirun import fs, log
from ocirun.cgroups import common, convert, frozen_v1
from ocirun.cgroups.common import (OciError, do_write, os_error, read_file, read_uint,
                                   step_write, write_checked)

# Controllers this module knows how to use; others mounted on the host are ignored.
CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
               "hugetlb", "net_cls", "net_prio", "rdma", "perf_event", "misc")
# memory.memsw/limit_in_bytes reads this for "unlimited" (LONG_MAX rounded to a page)
UNLIMITED = 9223372036854771712


def find_hierarchies(root, mountinfo):
    """{controller: mount directory} for the v1 hierarchies mounted directly under root
    (co-mounted controllers such as "cpu,cpuacct" share one directory). Falls back to the
    directory names when root holds no mounts (tests)."""
    from ocirun.cgroups import _mount_entries

    root = fs.normpath(root)
    out = {}
    for mnt, fstype, opts in _mount_entries(mountinfo):
        if fstype != "cgroup" or fs.dirname(mnt) != root:
            continue
        for opt in opts.split(","):
            if opt in CONTROLLERS:
                out[opt] = mnt
    if out:
        return out
    try:
        names = sorted(posix.listdir(root))
    except OSError:
        return out
    for name in names:
        p = fs.join(root, name)
        if fs.islink(p) or not fs.isdir(p):
            continue  # "cpu" -> "cpu,cpuacct" symlinks: the real directory is listed too
        for ctrl in name.split(","):
            if ctrl in CONTROLLERS:
                out[ctrl] = p
    return out


# -- linux.resources -> v1 files -----------------------------------------------------------

def device_rule(rule):
    """"c 1:3 rwm" for a devices.allow/deny line. Type "a" is written alone: the kernel
    treats it as "every device" and ignores numbers and access."""
    t = rule.get("type") or "a"
    if t == "a":
        return "a"
    access = rule.get("access") or "rwm"
    return f"{t} {convert.device_number(rule.get('major'))}:{convert.device_number(rule.get('minor'))} {access}"


def plan_v1(res, update=False, field="linux.resources"):
    steps = []
    mem = res.get("memory") or {}
    f = f"{field}.memory"
    limit, swap = mem.get("limit") or 0, mem.get("swap") or 0
    if limit or swap:
        steps.append(("memsw", limit, swap, bool(mem.get("checkBeforeUpdate")) and update))
    if mem.get("reservation"):
        steps.append(step_write("memory", [("memory.soft_limit_in_bytes", str(mem["reservation"]))],
                                f"{f}.reservation"))
    # (memory.kernel: a limit is refused by validate.py; -1 asks for what every cgroup has)
    if mem.get("kernelTCP"):
        steps.append(step_write("memory", [("memory.kmem.tcp.limit_in_bytes", str(mem["kernelTCP"]))],
                                f"{f}.kernelTCP"))
    if mem.get("swappiness") is not None:
        steps.append(step_write("memory", [("memory.swappiness", str(mem["swappiness"]))], f"{f}.swappiness"))
    oom = mem.get("disableOOMKiller")
    if oom or (update and oom is False):
        steps.append(step_write("memory", [("memory.oom_control", "1" if oom else "0")], f"{f}.disableOOMKiller"))

    cpu = res.get("cpu") or {}
    f = f"{field}.cpu"
    if cpu.get("shares"):
        steps.append(step_write("cpu", [("cpu.shares", str(cpu["shares"]))], f"{f}.shares"))
    if cpu.get("period"):
        steps.append(step_write("cpu", [("cpu.cfs_period_us", str(cpu["period"]))], f"{f}.period"))
    if cpu.get("quota"):
        steps.append(step_write("cpu", [("cpu.cfs_quota_us", str(cpu["quota"]))], f"{f}.quota"))
    if cpu.get("burst") is not None and (cpu["burst"] or update):
        steps.append(step_write("cpu", [("cpu.cfs_burst_us", str(cpu["burst"]))], f"{f}.burst"))
    # the realtime period first: a runtime is checked against the period in force
    if cpu.get("realtimePeriod"):
        steps.append(step_write("cpu", [("cpu.rt_period_us", str(cpu["realtimePeriod"]))], f"{f}.realtimePeriod"))
    if cpu.get("realtimeRuntime"):
        steps.append(step_write("cpu", [("cpu.rt_runtime_us", str(cpu["realtimeRuntime"]))], f"{f}.realtimeRuntime"))
    if cpu.get("idle") is not None:
        steps.append(step_write("cpu", [("cpu.idle", str(cpu["idle"]))], f"{f}.idle"))
    if cpu.get("cpus"):
        steps.append(step_write("cpuset", [("cpuset.cpus", cpu["cpus"])], f"{f}.cpus"))
    if cpu.get("mems"):
        steps.append(step_write("cpuset", [("cpuset.mems", cpu["mems"])], f"{f}.mems"))

    pids = res.get("pids") or {}
    lim = pids.get("limit") or 0
    if lim:
        # runc semantics: 0 leaves the limit alone, any negative value lifts it
        steps.append(step_write("pids", [("pids.max", str(lim) if lim > 0 else "max")], f"{field}.pids.limit"))

    bio = res.get("blockIO") or {}
    f = f"{field}.blockIO"
    if bio.get("weight"):
        w = str(bio["weight"])
        steps.append(step_write("blkio", [("blkio.weight", w), ("blkio.bfq.weight", w)], f"{f}.weight"))
    for i, wd in enumerate(bio.get("weightDevice") or ()):
        if wd.get("weight"):
            line = f"{convert.major_minor(wd)} {wd['weight']}"
            steps.append(step_write("blkio", [("blkio.weight_device", line), ("blkio.bfq.weight_device", line)],
                                    f"{f}.weightDevice[{i}].weight"))
    for key, name in (("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
                      ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
                      ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
                      ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device")):
        for i, t in enumerate(bio.get(key) or ()):
            steps.append(step_write("blkio", [(name, f"{convert.major_minor(t)} {t['rate']}")], f"{f}.{key}[{i}]"))

    for i, h in enumerate(res.get("hugepageLimits") or ()):
        steps.append(step_write("hugetlb", [(f"hugetlb.{h['pageSize']}.limit_in_bytes", str(h["limit"]))],
                                f"{field}.hugepageLimits[{i}]"))

    net = res.get("network") or {}
    if net.get("classID") is not None:
        steps.append(step_write("net_cls", [("net_cls.classid", str(net["classID"]))],
                                f"{field}.network.classID"))
    for i, p in enumerate(net.get("priorities") or ()):
        steps.append(step_write("net_prio", [("net_prio.ifpriomap", f"{p['name']} {p['priority']}")],
                                f"{field}.network.priorities[{i}]"))

    steps += common.rdma_steps(res, field)

    devs = res.get("devices")
    if devs is not None:
        if update:
            # back to the inherited (allow-all) state, then the new list, in order
            steps.append(step_write("devices", [("devices.allow", "a")], f"{field}.devices"))
        for i, rule in enumerate(devs):
            name = "devices.allow" if rule["allow"] else "devices.deny"
            steps.append(step_write("devices", [(name, device_rule(rule))], f"{field}.devices[{i}]"))

    if res.get("unified"):
        raise OciError(f"{field}.unified: cgroup v2 keys need a cgroup v2 host; this host uses cgroup v1")
    return steps


def _write_run(d, run):
    """Write steps that are each one line to the same file (the device rules: a line of
    devices.allow per device) through one open file, a write(2) per line as the kernel
    parses them: -> False where the file cannot be opened (do_write then says, step by
    step, what is missing)."""
    name = run[0][2][0][0]
    if d is None:
        return False
    try:
        fd = posix.open(fs.join(d, name), posix.O_WRONLY | posix.O_TRUNC | posix.O_CLOEXEC)
    except OSError:
        return False
    try:
        for step in run:
            value, label = step[2][0][1], step[4]
            try:
                posix.write(fd, value.encode())
            except OSError as e:
                raise OciError(f"cannot set {label}: "
                               f"{os_error(f'write {value.strip()!r} to {fs.join(d, name)}', e)}"
                               ) from None
    finally:
        posix.close(fd)
    return True


def set_memory_v1(d, limit, swap, check_usage):
    """memory.limit_in_bytes and memory.memsw.limit_in_bytes. The kernel keeps
    memsw >= limit at every moment, so when the total grows memsw goes first, and when it
    shrinks the limit goes first."""
    if d is None or not fs.isdir(d):
        raise OciError("cannot set linux.resources.memory: the memory controller is not available")
    has_memsw = common.exists(d, "memory.memsw.limit_in_bytes")
    if limit == -1 and not swap:
        swap = -1 if has_memsw else 0  # lifting the limit lifts memory+swap too
    if swap and not has_memsw:
        if swap != -1:
            raise OciError("cannot set linux.resources.memory.swap: memory.memsw.limit_in_bytes "
                           "does not exist (swap accounting is off in this kernel)")
        swap = 0
    if limit > 0 and not swap and has_memsw:
        # A container without swap (memsw == limit) keeps none when only its memory limit
        # changes; writing the limit alone above memsw would fail with EINVAL.
        cur_limit = read_uint(d, "memory.limit_in_bytes", UNLIMITED)
        if cur_limit < UNLIMITED and read_uint(d, "memory.memsw.limit_in_bytes", UNLIMITED) == cur_limit:
            swap = limit
    if check_usage and limit > 0:
        usage = read_uint(d, "memory.usage_in_bytes")
        if limit < usage:
            raise OciError(f"linux.resources.memory.limit: {limit} is below the current usage {usage} "
                           "(checkBeforeUpdate)")
    writes = []
    if limit:
        writes.append(("memory.limit_in_bytes", str(limit)))
    if swap:
        cur = read_uint(d, "memory.memsw.limit_in_bytes", UNLIMITED)
        new = UNLIMITED if swap == -1 else swap
        memsw = ("memory.memsw.limit_in_bytes", str(swap))
        if new >= cur:
            writes.insert(0, memsw)
        else:
            writes.append(memsw)
    for name, value in writes:
        write_checked(d, name, value)


# -- the manager ---------------------------------------------------------------------------

class V1Manager(common.Manager):
    __slots__ = ("hier", "unified")

    def __init__(self, root, path, container_id, mode="v1", mountinfo="/proc/self/mountinfo",
                 hier=None, unified=None):
        super().__init__(root, path, container_id, mode)
        self.hier = find_hierarchies(self.root, mountinfo) if hier is None else dict(hier)
        if unified is None and mode == "hybrid":
            unified = fs.join(self.root, "unified")
        self.unified = unified

    def to_dict(self):
        d = super().to_dict()
        d["hierarchies"] = dict(self.hier)
        d["unified"] = self.unified
        return d

    @classmethod
    def from_dict(cls, d):
        from ocirun.cgroups import clean_path

        root, path = d["root"], d["path"]
        if not isinstance(root, str) or not root.startswith("/") or clean_path(path, None) != path:
            raise ValueError("bad root or path")
        hier = d["hierarchies"]
        unified = d.get("unified")
        bases = set(hier.values()) | ({unified} if unified else set())
        for b in bases:
            if not isinstance(b, str) or fs.dirname(fs.normpath(b)) != fs.normpath(root):
                raise ValueError(f"hierarchy {b!r} is not under {root}")
        m = cls(root, path, d.get("container_id"), d["mode"], hier=hier, unified=unified)
        allowed = {x for b in bases for x in common.dirs_of(b, path)}
        m.created = common.check_created(d.get("created", []), allowed)
        return m

    def _bases(self):
        out = []
        for b in self.hier.values():
            if b not in out:
                out.append(b)
        if self.unified and fs.isdir(self.unified) and self.unified not in out:
            out.append(self.unified)
        return out

    def _leaf_dirs(self):
        return [b + self.path for b in self._bases()]

    def fork_targets(self):
        leaves = self._leaf_dirs()
        v2 = self.unified + self.path if self.unified else None
        if v2 not in leaves:
            v2 = None
        return v2, [d for d in leaves if d != v2]

    def dir(self, ctrl):
        b = self.hier.get(ctrl)
        return b + self.path if b else None

    def _procs_dir(self):
        for ctrl in ("freezer", "pids", "memory", "cpu", "devices"):
            if ctrl in self.hier:
                return self.dir(ctrl)
        if self.unified:
            return self.unified + self.path
        return None

    def _after_create(self, made):
        # A new cpuset cgroup starts with empty cpus/mems and refuses tasks (ENOSPC) until
        # both are set; copy them down from the parent, level by level. (The alternative,
        # cgroup.clone_children on the parent, would mean writing to a cgroup not ours.)
        # Every level of the path, not only the ones this call made: a container
        # created at the same moment may have made the shared parent and not yet
        # seeded it (seen as ENOSPC with parallel creates). Only empty values are
        # written, and an empty cpuset is unusable by anyone.
        base = self.hier.get("cpuset")
        if not base:
            return
        # (each level's value, read or written, is the next level's parent value: read
        # once; a file that reads as empty exists, no stat needed)
        d = base
        above = {}
        for part in self.path.strip("/").split("/"):
            parent, d = d, f"{d}/{part}"
            for name in ("cpuset.cpus", "cpuset.mems"):
                raw = read_file(d, name)
                cur = (raw or "").strip()
                if not cur and raw is not None:
                    up = above.get(name)
                    if up is None:
                        up = (read_file(parent, name) or "").strip()
                    write_checked(d, name, up or "\n")
                    cur = up
                above[name] = cur

    def _set(self, res, update):
        steps = plan_v1(res, update)
        i = 0
        while i < len(steps):
            step = steps[i]
            i += 1
            if step[0] == "warn":
                log.warning(step[1])
            elif step[0] == "memsw":
                set_memory_v1(self.dir("memory"), step[1], step[2], step[3])
            else:
                _, ctrl, cands, policy, label = step
                run = [step]
                while (len(cands) == 1 and i < len(steps) and steps[i][0] == "w"
                       and steps[i][1] == ctrl and len(steps[i][2]) == 1
                       and steps[i][2][0][0] == cands[0][0]):
                    run.append(steps[i])
                    i += 1
                if len(run) == 1 or not _write_run(self.dir(ctrl), run):
                    for _, ctrl, cands, policy, label in run:
                        do_write(self.dir(ctrl), ctrl, cands, policy, label)

    # -- freezer ---------------------------------------------------------------------------

    def _freezer(self):
        d = self.dir("freezer")
        if d is None:
            raise OciError("the freezer cgroup controller is not mounted")
        return d

    def freeze(self):
        import time

        d = self._freezer()
        deadline = time.monotonic() + common.FREEZE_TIMEOUT
        delay = 0.001
        while True:
            write_checked(d, "freezer.state", "FROZEN")
            # FREEZING while tasks are still on their way to the refrigerator
            if frozen_v1(d):
                return
            if time.monotonic() >= deadline:
                write_checked(d, "freezer.state", "THAWED")
                raise OciError(f"freeze {d}: the cgroup did not freeze within "
                               f"{common.FREEZE_TIMEOUT:g}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def thaw(self):
        write_checked(self._freezer(), "freezer.state", "THAWED")

    def state(self):
        d = self.dir("freezer")
        if d is None:
            return "running"
        return "paused" if frozen_v1(d) else "running"

    def _cgroup_kill(self):
        if self.unified:
            d = self.unified + self.path
            if common.exists(d, "cgroup.kill"):
                write_checked(d, "cgroup.kill", "1")
                return True
        return False

    def oom_kills(self):
        d = self.dir("memory")
        # "oom_kill N" in memory.oom_control since Linux 4.13
        return common.parse_flat(read_file(d, "memory.oom_control")).get("oom_kill", 0) if d else 0

    # -- stats -----------------------------------------------------------------------------

    def stats(self):
        out = common.empty_stats()
        d = self.dir("cpuacct")
        c = self.dir("cpu")
        if d or c:
            tick_ns = 10 ** 9 // posix.sysconf("SC_CLK_TCK")
            percpu = _ints(read_file(d, "cpuacct.usage_percpu")) if d else []
            acct = common.parse_flat(read_file(d, "cpuacct.stat")) if d else {}
            thr = common.parse_flat(read_file(c, "cpu.stat")) if c else {}
            out["cpu"] = common.cpu_stats(
                read_uint(d, "cpuacct.usage") if d else 0, percpu,
                _ints(read_file(d, "cpuacct.usage_percpu_sys")) if d else [],
                _ints(read_file(d, "cpuacct.usage_percpu_user")) if d else [],
                acct.get("system", 0) * tick_ns, acct.get("user", 0) * tick_ns,
                thr.get("nr_periods", 0), thr.get("nr_throttled", 0), thr.get("throttled_time", 0))
        d = self.dir("memory")
        if d:
            raw = common.parse_flat(read_file(d, "memory.stat"))
            mem = {}
            common.put_nonzero(mem, "cache", raw.get("cache", 0))
            for key, prefix in (("usage", "memory."), ("swap", "memory.memsw."),
                                ("kernel", "memory.kmem."), ("kernelTCP", "memory.kmem.tcp.")):
                common.put_nonzero(mem, key, common.mem_entry(
                    read_uint(d, prefix + "limit_in_bytes"), read_uint(d, prefix + "usage_in_bytes"),
                    read_uint(d, prefix + "max_usage_in_bytes"), read_uint(d, prefix + "failcnt")))
            common.put_nonzero(mem, "raw", raw)
            out["memory"] = mem
        d = self.dir("pids")
        if d:
            pids = {}
            common.put_nonzero(pids, "current", read_uint(d, "pids.current"))
            common.put_nonzero(pids, "limit", read_uint(d, "pids.max"))
            out["pids"] = pids
        d = self.dir("blkio")
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
                        common.put_nonzero(blk, key, _blkio_entries(text))
                        break
            out["blkio"] = blk
        d = self.dir("hugetlb")
        if d:
            huge = {}
            for name in sorted(posix.listdir(d)):
                if name.startswith("hugetlb.") and name.endswith(".usage_in_bytes") and name.count(".") == 2:
                    size = name.split(".")[1]
                    h = {}
                    common.put_nonzero(h, "usage", read_uint(d, name))
                    common.put_nonzero(h, "max", read_uint(d, f"hugetlb.{size}.max_usage_in_bytes"))
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
            out.append(common.blkio_entry(int(major), int(minor), parts[1], int(parts[2])))
        except ValueError:
            continue
    return out
