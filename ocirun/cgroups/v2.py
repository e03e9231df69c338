"""cgroup v2 (unified): one directory; controllers enabled through the parents'
cgroup.subtree_control; devices through an eBPF program (devices_bpf.py)."""

from ocirun import log
from ocirun.cgroups import common, convert, frozen_v2
from ocirun.cgroups.common import (OciError, do_write, read_file, read_uint,
                                   step_write, write_checked)

UINT64_MAX = (1 << 64) - 1


def plan_v2(res, update=False, field="linux.resources"):
    steps = []
    mem = res.get("memory") or {}
    f = f"{field}.memory"
    limit, swap = mem.get("limit") or 0, mem.get("swap") or 0
    if mem.get("checkBeforeUpdate") and update and limit > 0:
        steps.append(("check_memory", limit))
    if limit:
        steps.append(step_write("memory", [("memory.max", convert.int_or_max(limit))], f"{f}.limit"))
    try:
        swap_max = convert.swap_v2(swap, limit)
    except ValueError as e:
        raise OciError(f"{f}.swap: {e}") from None
    if swap_max is not None:
        # without swap accounting (no memory.swap.max) an unlimited swap is what we have
        steps.append(step_write("memory", [("memory.swap.max", swap_max)], f"{f}.swap",
                                "warn" if swap_max == "max" else "required"))
    if mem.get("reservation"):
        steps.append(step_write("memory", [("memory.low", convert.int_or_max(mem["reservation"]))],
                                f"{f}.reservation"))
    # (kernel, kernelTCP, swappiness, disableOOMKiller: what v2 lacks is refused by
    # validate.py; -1 and false ask for what every v2 cgroup has)

    cpu = res.get("cpu") or {}
    f = f"{field}.cpu"
    if cpu.get("shares"):
        steps.append(step_write("cpu", [("cpu.weight", str(convert.shares_to_weight(cpu["shares"])))],
                                f"{f}.shares"))
    if cpu.get("quota") or cpu.get("period"):
        steps.append(("cpu_max", cpu.get("quota") or 0, cpu.get("period") or 0))
    if cpu.get("burst") is not None and (cpu["burst"] or update):
        steps.append(step_write("cpu", [("cpu.max.burst", str(cpu["burst"]))], f"{f}.burst"))
    if cpu.get("realtimeRuntime") or cpu.get("realtimePeriod"):
        raise OciError(f"{f}.realtimeRuntime: realtime scheduling limits do not exist on cgroup v2")
    if cpu.get("idle") is not None:
        steps.append(step_write("cpu", [("cpu.idle", str(cpu["idle"]))], f"{f}.idle"))
    if cpu.get("cpus"):
        steps.append(step_write("cpuset", [("cpuset.cpus", cpu["cpus"])], f"{f}.cpus"))
    if cpu.get("mems"):
        steps.append(step_write("cpuset", [("cpuset.mems", cpu["mems"])], f"{f}.mems"))

    lim = (res.get("pids") or {}).get("limit") or 0
    if lim:
        steps.append(step_write("pids", [("pids.max", str(lim) if lim > 0 else "max")], f"{field}.pids.limit"))

    if "blockIO" in res or "hugepageLimits" in res or "network" in res or "rdma" in res:
        from ocirun.cgroups import plan_extra  # (only then: import cost)
        steps += plan_extra.v2_steps(res, field)

    if res.get("devices") is not None:
        steps.append(("devices", res["devices"]))

    # verbatim v2 keys last, so they win over the converted values above
    for key, value in (res.get("unified") or {}).items():
        steps.append(step_write(key.split(".", 1)[0], [(key, value)], f"{field}.unified[{key!r}]"))
    return steps


def controllers_needed(steps):
    out = []
    for s in steps:
        ctrl = s[1] if s[0] == "w" else {"cpu_max": "cpu", "check_memory": "memory"}.get(s[0])
        if ctrl and ctrl != "cgroup" and ctrl not in out:
            out.append(ctrl)
    return out


class V2Manager(common.Manager):
    __slots__ = ()

    def __init__(self, root, path, container_id, mode="unified"):
        super().__init__(root, path, container_id, "unified")

    @classmethod
    def from_dict(cls, d):
        from ocirun.cgroups import clean_path

        root, path = d["root"], d["path"]
        if not isinstance(root, str) or not root.startswith("/") or clean_path(path, None) != path:
            raise ValueError("bad root or path")
        m = cls(root, path, d.get("container_id"))
        m.created = common.check_created(d.get("created", []), set(common.dirs_of(m.root, path)))
        return m

    @property
    def leaf(self):
        return self.root + self.path

    def _bases(self):
        return [self.root]

    def _leaf_dirs(self):
        return [self.leaf]

    def _procs_dir(self):
        return self.leaf

    def fork_targets(self):
        return self.leaf, []

    def _enable_controllers(self, wanted):
        """Make `wanted` controllers available in the leaf: each ancestor must list them in
        cgroup.subtree_control. Only what is missing is written, so on a host where the
        parents are already set up (systemd does this) no foreign cgroup is touched."""
        chain = [self.root] + common.dirs_of(self.root, self.path)[:-1]
        for d in chain:
            have = set((read_file(d, "cgroup.subtree_control") or "").split())
            avail = set((read_file(d, "cgroup.controllers") or "").split())
            missing = [c for c in wanted if c in avail and c not in have]
            if not missing:
                continue
            try:
                write_checked(d, "cgroup.subtree_control", " ".join("+" + c for c in missing))
            except OciError as e:
                # the limit write that needed it reports the failure with its field name
                log.warning(f"enable controllers: {e}")

    def _set(self, res, update):
        steps = plan_v2(res, update)
        self._enable_controllers(controllers_needed(steps))
        d = self.leaf
        for step in steps:
            kind = step[0]
            if kind == "warn":
                log.warning(step[1])
            elif kind == "check_memory":
                usage = read_uint(d, "memory.current")
                if step[1] < usage:
                    raise OciError(f"linux.resources.memory.limit: {step[1]} is below the current "
                                   f"usage {usage} (checkBeforeUpdate)")
            elif kind == "cpu_max":
                self._set_cpu_max(step[1], step[2])
            elif kind == "devices":
                from ocirun.cgroups import devices_bpf
                devices_bpf.apply(d, step[1])
            else:
                _, ctrl, cands, policy, label = step
                do_write(d, ctrl, cands, policy, label)

    def _set_cpu_max(self, quota, period):
        """cpu.max holds quota and period together; a value left out keeps its current one
        (an update of only the period must not lift the quota)."""
        d = self.leaf
        cur = (read_file(d, "cpu.max") or "").split()
        if not quota and len(cur) == 2:
            quota = -1 if cur[0] == "max" else int(cur[0])
        text = convert.cpu_max(quota, period)
        if text:
            do_write(d, "cpu", [("cpu.max", text)], "required", "linux.resources.cpu.quota")

    # -- freezer ---------------------------------------------------------------------------

    def freeze(self):
        import time

        d = self.leaf
        if not common.exists(d, "cgroup.freeze"):
            raise OciError(f"freeze {d}: cgroup.freeze does not exist (kernel older than 5.2?)")
        write_checked(d, "cgroup.freeze", "1")
        deadline = time.monotonic() + common.FREEZE_TIMEOUT
        delay = 0.001
        while not frozen_v2(d):
            if time.monotonic() >= deadline:
                write_checked(d, "cgroup.freeze", "0")
                raise OciError(f"freeze {d}: the cgroup did not freeze within {common.FREEZE_TIMEOUT:g}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def thaw(self):
        write_checked(self.leaf, "cgroup.freeze", "0")

    def state(self):
        return "paused" if frozen_v2(self.leaf) else "running"

    def _cgroup_kill(self):
        if common.exists(self.leaf, "cgroup.kill"):
            write_checked(self.leaf, "cgroup.kill", "1")
            return True
        return False

    def oom_kills(self):
        return common.parse_flat(read_file(self.leaf, "memory.events")).get("oom_kill", 0)

    # -- stats -----------------------------------------------------------------------------

    def stats(self):
        # (stats.py: only `events` reads them)
        from ocirun.cgroups import stats
        return stats.v2(self)
