"""What the host has, for the fields that name host resources (CPUs, NUMA nodes,
network devices, resctrl): checked while the Plan is built, so that a config naming
something the host lacks is refused before anything is made."""
from ocirun import fs
from ocirun.errors import ConfigError
from ocirun.tables import parse_cpu_list

CPUS = "/sys/devices/system/cpu/online"
NODES = "/sys/devices/system/node/online"
NET = "/sys/class/net"
RESCTRL = "/sys/fs/resctrl"


def _online(path, default):
    try:
        return parse_cpu_list(fs.read_bytes(path).decode().strip())
    except (OSError, ValueError):
        return default


def cpus(field, text):
    """The CPU set of `text` (already checked to parse), all online here."""
    want = parse_cpu_list(text)
    missing = want - _online(CPUS, want)
    if missing:
        raise ConfigError(field, f"CPU {min(missing)} is not online on this host "
                                 f"(online: {fs.read_bytes(CPUS).decode().strip()})")
    return frozenset(want)


def nodes(field, text):
    """The NUMA node set of `text`, all online here (a host without NUMA has node 0)."""
    want = parse_cpu_list(text)
    missing = want - _online(NODES, {0})
    if missing:
        raise ConfigError(field, f"NUMA node {min(missing)} is not online on this host")
    return frozenset(want)


def net_device(field, name):
    if not fs.exists(f"{NET}/{name}"):
        raise ConfigError(field, f"no network device `{name}` on this host (or it is in use "
                                 "in another network namespace)")


def resctrl(field):
    """The resctrl mount, or one line naming the field: never ignored."""
    if not fs.exists(f"{RESCTRL}/info"):
        raise ConfigError(field, f"Intel RDT needs the resctrl filesystem mounted at "
                                 f"{RESCTRL}, which this host has not")
    return RESCTRL
