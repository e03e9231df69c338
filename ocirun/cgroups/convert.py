"""Translations of the OCI (cgroup v1 shaped) resource values into cgroup v2 values.

linux.resources was designed around v1 files; on a v2 host the same numbers must land on
differently scaled knobs. The formulas are the ones other runtimes use, so a config moved
between runtimes gets the same kernel settings.
"""

MAX = "max"

# v1 cpu.shares accepts 2..262144 (kernel MIN_SHARES/MAX_SHARES); v2 cpu.weight 1..10000.
SHARES_MIN = 2
SHARES_MAX = 262144
WEIGHT_MIN = 1
WEIGHT_MAX = 10000
# v1 blkio.weight 10..1000; v2 io.weight 1..10000.
BLKIO_WEIGHT_MIN = 10
BLKIO_WEIGHT_MAX = 1000


def int_or_max(value):
    """-1 (the OCI spelling of "unlimited") -> "max"; other values verbatim."""
    return MAX if value == -1 else str(value)


def shares_to_weight(shares):
    """cpu.shares -> cpu.weight, linear from [2, 262144] onto [1, 10000]; 0 -> 0 (unset)."""
    if not shares:
        return 0
    shares = min(max(shares, SHARES_MIN), SHARES_MAX)
    return 1 + ((shares - SHARES_MIN) * (WEIGHT_MAX - 1)) // (SHARES_MAX - SHARES_MIN)


def blkio_weight_to_io_weight(weight):
    """blkio.weight -> io.weight, linear from [10, 1000] onto [1, 10000]; 0 -> 0 (unset)."""
    if not weight:
        return 0
    weight = min(max(weight, BLKIO_WEIGHT_MIN), BLKIO_WEIGHT_MAX)
    return 1 + ((weight - BLKIO_WEIGHT_MIN) * (WEIGHT_MAX - 1)) // (BLKIO_WEIGHT_MAX - BLKIO_WEIGHT_MIN)


def swap_v2(swap, limit):
    """The memory.swap.max value for OCI `swap` (a memory+swap total, as v1 memsw) and
    `limit`, or None when nothing should be written. Raises ValueError when the pair
    cannot be expressed.

    v2 limits swap on its own, so the swap part is total - limit. When the memory limit
    is lifted (-1) and swap is not given, swap is lifted too: that is what v1 memsw does,
    where memsw may never be below the memory limit."""
    limit = limit or 0
    swap = swap or 0
    if swap == 0:
        return MAX if limit == -1 else None
    if swap == -1:
        return MAX
    if limit == -1:
        # an unlimited memory limit leaves no room for a finite memory+swap total
        raise ValueError("memory.swap cannot be finite when memory.limit is -1 (unlimited)")
    if limit == 0:
        raise ValueError("memory.swap needs memory.limit on cgroup v2 (swap is memory+swap)")
    if swap < limit:
        raise ValueError(f"memory.swap ({swap}) must be >= memory.limit ({limit}): "
                         "swap is the memory+swap total")
    return str(swap - limit)


def cpu_max(quota, period):
    """cpu.max "QUOTA PERIOD" from cfs quota/period; None when neither is set.
    quota -1 or unset -> "max"; period unset -> keep the kernel's period (write only quota)."""
    quota = quota or 0
    period = period or 0
    if quota == 0 and period == 0:
        return None
    text = str(quota) if quota > 0 else MAX
    if period:
        text += " " + str(period)
    return text


def device_number(n):
    """Major/minor for device rules: None or -1 is the wildcard `*`."""
    return "*" if n is None or n == -1 else str(n)


def major_minor(entry):
    """"8:0" for a blockIO weightDevice / throttle entry (v1 and v2 files alike)."""
    return f"{entry['major']}:{entry['minor']}"


# The devices every container gets in addition to its config (runtime-spec config-linux.md
# "Default Devices"), for callers that build the final rule list: null, zero, full, random,
# urandom, tty, ptmx, and the container's own devpts ptys.
DEFAULT_ALLOWED = [
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "minor": -1, "access": "rwm"},
]
