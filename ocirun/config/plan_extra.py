"""The parts of a Plan (plan.py) that only some configs have: process.scheduler,
.ioPriority and .execCPUAffinity, linux.personality, .memoryPolicy, .netDevices and
.intelRdt, idmapped mounts. plan.py runs on every `create`/`run` and imports this module
only when a config has one of them: a plain `run` does not read or unmarshal its code."""
from ocirun.config.plan import _maps
from ocirun.tables import (
    IOPRIO_CLASS, IOPRIO_CLASS_SHIFT, MPOL_FLAG, MPOL_MODE, PERSONALITY_DOMAIN, SCHED_FLAG,
    SCHED_POLICY,
)


def fill_process(p, proc):
    """p.scheduler, p.ioprio, p.cpus_initial, p.cpus_final from the process."""
    p.scheduler = _scheduler(proc.get("scheduler"))
    io = proc.get("ioPriority")
    p.ioprio = (IOPRIO_CLASS[io["class"]] << IOPRIO_CLASS_SHIFT | io.get("priority", 0)
                if io else None)
    p.cpus_initial = p.cpus_final = None
    aff = proc.get("execCPUAffinity")
    if aff:
        from ocirun.config import host
        p.cpus_initial = host.cpus("process.execCPUAffinity.initial", aff["initial"]) \
            if aff.get("initial") else None
        p.cpus_final = host.cpus("process.execCPUAffinity.final", aff["final"]) \
            if aff.get("final") else None


def _scheduler(s):
    """process.scheduler as sched_setattr(2) wants it: (policy, flags, nice, priority,
    runtime, deadline, period), or None."""
    if not s:
        return None
    flags = 0
    for f in s.get("flags") or ():
        flags |= SCHED_FLAG[f]
    return (SCHED_POLICY[s["policy"]], flags, s.get("nice", 0), s.get("priority", 0),
            s.get("runtime", 0), s.get("deadline", 0), s.get("period", 0))


def fill_linux(p, linux):
    """personality, memoryPolicy, netDevices, intelRdt: each applied (linux/init.py,
    lifecycle/create.py), or refused here when the host lacks what it names (config/host.py,
    imported only by a config that uses them)."""
    pers = linux.get("personality")
    p.personality = PERSONALITY_DOMAIN[pers["domain"]] if pers else None
    mp = linux.get("memoryPolicy")
    p.mempolicy = None
    if mp:
        flags = 0
        for f in mp.get("flags") or ():
            flags |= MPOL_FLAG[f]
        from ocirun.config import host
        nodes = host.nodes("linux.memoryPolicy.nodes", mp["nodes"]) if mp.get("nodes") else ()
        p.mempolicy = (MPOL_MODE[mp["mode"]] | flags, tuple(sorted(nodes)))
    p.net_devices = []
    for name, dev in (linux.get("netDevices") or {}).items():
        from ocirun.config import host
        host.net_device(f"linux.netDevices.{name}", name)
        p.net_devices.append((name, (dev or {}).get("name") or name))
    p.intel_rdt = None
    if linux.get("intelRdt") is not None:
        rdt = linux["intelRdt"]
        from ocirun.config import host
        base = host.resctrl("linux.intelRdt")
        lines = list(rdt.get("schemata") or ())
        lines += [rdt[k] for k in ("l3CacheSchema", "memBwSchema") if rdt.get(k)]
        p.intel_rdt = (base, rdt.get("closID"), tuple(lines), bool(rdt.get("enableMonitoring")))


def idmaps(mounts, linux):
    """For each idmapped bind mount (mounts[i] with idmap/ridmap or mappings of its own):
    {i: (uid_map text, gid_map text, recursive)}; without mappings of its own a mount
    takes the container's user namespace maps (validate.py checked there are some)."""
    out = {}
    for i, (m, mo) in enumerate(mounts):
        opts = set(m.get("options") or ())
        if not ("idmap" in opts or "ridmap" in opts or "uidMappings" in m):
            continue
        uid_map = _maps(m.get("uidMappings") or linux.get("uidMappings"))
        gid_map = _maps(m.get("gidMappings") or linux.get("gidMappings"))
        out[i] = (uid_map, gid_map, "ridmap" in opts)
    return out
