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

    if "blockIO" in res or "hugepageLimits" in res or "network" in res or "rdma" in res:
        from ocirun.cgroups import plan_extra  # (only then: import cost)
        steps += plan_extra.v1_steps(res, field)

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
        # (stats.py: only `events` reads them)
        from ocirun.cgroups import stats
        return stats.v1(self)
