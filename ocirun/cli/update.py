from ocirun.cli.create import one_id
from ocirun.cli.opts import parse
from ocirun.errors import UsageError

HELP = """\
usage: ocirun update [options] CONTAINER_ID

Change the resources of a running container. Settings left out keep their values.

options:
  -r, --resources FILE      a linux.resources JSON object from FILE (`-`: stdin); the
                            other options are then ignored
  --blkio-weight N          block IO weight (10-1000)
  --cpu-period N            CFS period in microseconds
  --cpu-quota N             CFS quota in microseconds per period (-1: none)
  --cpu-burst N             CFS burst in microseconds
  --cpu-share N             CPU shares (relative weight)
  --cpu-rt-period N         realtime period in microseconds
  --cpu-rt-runtime N        realtime runtime in microseconds
  --cpuset-cpus LIST        CPUs allowed (0-3, 0,1)
  --cpuset-mems LIST        memory nodes allowed (0-3, 0,1)
  --cpu-idle N              SCHED_IDLE for the cgroup (0 or 1)
  --memory SIZE             memory limit (e.g. 512m, 1g; -1: unlimited)
  --memory-reservation SIZE memory soft limit
  --memory-swap SIZE        memory plus swap limit
  --kernel-memory SIZE      kernel memory limit (only -1: the kernel ignores limits)
  --kernel-memory-tcp SIZE  kernel TCP buffer limit
  --pids-limit N            maximum number of tasks (-1: unlimited)
"""

UINT16_MAX = (1 << 16) - 1
UINT64_MAX = (1 << 64) - 1
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1

# flag -> (linux.resources section, key, kind); kinds: u16, u64, i64, str, size
FLAGS = {
    "--blkio-weight": ("blockIO", "weight", "u16"),
    "--cpu-period": ("cpu", "period", "u64"),
    "--cpu-quota": ("cpu", "quota", "i64"),
    "--cpu-burst": ("cpu", "burst", "u64"),
    "--cpu-share": ("cpu", "shares", "u64"),
    "--cpu-rt-period": ("cpu", "realtimePeriod", "u64"),
    "--cpu-rt-runtime": ("cpu", "realtimeRuntime", "i64"),
    "--cpuset-cpus": ("cpu", "cpus", "str"),
    "--cpuset-mems": ("cpu", "mems", "str"),
    "--cpu-idle": ("cpu", "idle", "i64"),
    "--memory": ("memory", "limit", "size"),
    "--memory-reservation": ("memory", "reservation", "size"),
    "--memory-swap": ("memory", "swap", "size"),
    "--kernel-memory": ("memory", "kernel", "size"),
    "--kernel-memory-tcp": ("memory", "kernelTCP", "size"),
    "--pids-limit": ("pids", "limit", "i64"),
}

OPTIONS = {"-r": ("resources", "str"), "--resources": ("resources", "str")}
OPTIONS.update({flag: (flag, "str") for flag in FLAGS})


def flag_value(flag, kind, text):
    if kind == "str":
        return text
    if kind == "size":
        if text.strip() == "-1":
            return -1
        from ocirun.cli.units import ram_in_bytes
        return ram_in_bytes(text, flag)
    lo, hi = {"u16": (0, UINT16_MAX), "u64": (0, UINT64_MAX), "i64": (INT64_MIN, INT64_MAX)}[kind]
    try:
        v = int(text, 10)
    except ValueError:
        raise UsageError(f"{flag}: `{text}` is not an integer") from None
    if not lo <= v <= hi:
        raise UsageError(f"{flag}: {v} is out of range [{lo}, {hi}]")
    return v


def resources_from_flags(o):
    res = {}
    for flag, (section, key, kind) in FLAGS.items():
        text = getattr(o, flag)
        if text is not None:
            res.setdefault(section, {})[key] = flag_value(flag, kind, text)
    return res


def read_resources(source):
    from ocirun.config.load import parse_config, read_file
    if source == "-":
        import os
        chunks = []
        while True:
            b = os.read(0, 65536)
            if not b:
                break
            chunks.append(b)
        data, label = b"".join(chunks), "resources (stdin)"
    else:
        label = f"resources file `{source}`"
        data = read_file(source, label)
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise UsageError(f"{label}: not valid UTF-8") from None
    return parse_config(text, label)


def main(g, args):
    o, pos = parse(args, OPTIONS)
    cid = one_id(pos, "update")
    if o.resources is not None:
        if any(getattr(o, flag) is not None for flag in FLAGS):
            from ocirun import log
            log.warning("update: --resources is given, so the other resource flags are ignored")
        resources = read_resources(o.resources)
    else:
        resources = resources_from_flags(o)
        if not resources:
            raise UsageError("update needs --resources or at least one resource flag "
                             "(see `ocirun update --help`)")
    from ocirun.lifecycle.cgroup_ops import update
    update(g.root, cid, resources)
    return 0
