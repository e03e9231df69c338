"""--systemd-cgroup / --cgroup-manager=systemd: the container's cgroup is a transient scope
unit that systemd makes, over D-Bus (cgroups/dbus.py), as runc and crun do.

cgroupsPath "slice:prefix:name" names the unit `prefix-name.scope` in `slice` (an empty
slice is system.slice); no cgroupsPath gives `ocirun-<id>.scope` in system.slice. systemd
places a unit of slice `a-b.slice` at /a.slice/a-b.slice/ (`-.slice` is the root), so the
scope's cgroup is /sys/fs/cgroup[/hierarchy]/a.slice/a-b.slice/prefix-name.scope.

Order, as runc's: the init is born in the runtime's cgroup (no clone3 into a cgroup that
does not exist yet), then StartTransientUnit with its pid in PIDs, Delegate=yes,
DefaultDependencies=no, accounting on, and the resource properties systemd knows
(resource_properties below); then the wait for the job's JobRemoved signal; then every
resource goes to the scope's cgroup files as with cgroupfs (the same values for what
systemd set, and what it does not know: hugetlb, rdma, swap on v1, cpuset on v1, the v2
device program...). On a hybrid host systemd makes the scope in the hierarchies it
manages; the others (freezer, cpuset, ...) get a directory of the same path made here,
as runc does. `update` sends the properties again (SetUnitProperties) and writes the
files; `delete` stops the unit (StopUnit, waiting for the job) and removes what remains.

Devices: on v2 the device program is ours (cgroups/devices_bpf.py) and systemd is told
nothing (its own program, DevicePolicy=strict, would be a second filter); on v1 the rules
are also given to systemd as DevicePolicy=strict plus DeviceAllow=, so that systemd,
when it re-applies the unit's settings (a SetUnitProperties, a daemon-reload), writes
the same list instead of its default "devices.allow a".

The bus: $DBUS_SYSTEM_BUS_ADDRESS, else the system bus, else (as root, when no bus
answers) systemd's private socket /run/systemd/private.
"""
import posix

from ocirun import fs, log, timings
from ocirun.cgroups import common
from ocirun.cgroups.v1 import V1Manager
from ocirun.cgroups.v2 import V2Manager
from ocirun.errors import ConfigError, OciError

RUN_DIR = "/run/systemd/system"
FIELD = "linux.cgroupsPath"
DEFAULT_SLICE = "system.slice"
UNIT_NAME_MAX = 255
_UNIT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.\\@")
UINT64_MAX = (1 << 64) - 1
JOB_TIMEOUT = 30.0
# v1 hierarchies systemd makes a delegated scope's cgroup in (the others are made here)
SYSTEMD_V1 = frozenset(("cpu", "cpuacct", "blkio", "memory", "devices", "pids"))
PROPERTY_PREFIX = "org.systemd.property."

SD = "org.freedesktop.systemd1"
SD_PATH = "/org/freedesktop/systemd1"
SD_MANAGER = "org.freedesktop.systemd1.Manager"


def check_available(run_dir=RUN_DIR):
    """sd_booted(3): systemd is this host's init."""
    if not fs.isdir(run_dir):
        raise OciError(f"systemd cgroup manager: systemd is not running on this host "
                       f"({run_dir} does not exist); use --cgroup-manager=cgroupfs")


# -- names ----------------------------------------------------------------------------------

def expand_slice(slice_name, field=FIELD):
    """"a-b.slice" -> "/a.slice/a-b.slice"; "-.slice" -> "/" (the root slice)."""
    if not slice_name.endswith(".slice") or len(slice_name) <= len(".slice") or "/" in slice_name:
        raise ConfigError(field, f"`{slice_name}` is not a slice name (NAME.slice)")
    base = slice_name[:-len(".slice")]
    if base == "-":
        return "/"
    path, prefix = "", ""
    for comp in base.split("-"):
        if not comp:
            raise ConfigError(field, f"`{slice_name}`: empty component in the slice name "
                                     "(`a--b.slice`, `-a.slice` and `a-.slice` are invalid)")
        path += "/" + prefix + comp + ".slice"
        prefix += comp + "-"
    return path


def _check_unit_name(name, field):
    if len(name) > UNIT_NAME_MAX:
        raise ConfigError(field, f"unit name `{name[:60]}...` is longer than {UNIT_NAME_MAX} "
                                 "characters")
    bad = sorted(set(name) - _UNIT_CHARS)
    if bad:
        raise ConfigError(field, f"`{name}` cannot be a systemd unit name (character "
                                 f"{bad[0]!r}; allowed: letters, digits and :-_.\\@)")


def unit_for(cgroups_path, container_id):
    """(slice, unit) for a container's cgroupsPath; ConfigError naming the field."""
    if cgroups_path is None or cgroups_path == "":
        unit = f"ocirun-{container_id}.scope"
        _check_unit_name(unit, FIELD + " (absent: the unit is named after the container id)")
        return DEFAULT_SLICE, unit
    if not isinstance(cgroups_path, str):
        raise ConfigError(FIELD, "must be a string")
    parts = cgroups_path.split(":")
    if len(parts) != 3:
        raise ConfigError(FIELD, f"`{cgroups_path}`: the systemd cgroup manager expects "
                                 "\"slice:prefix:name\" (e.g. \"system.slice:ocirun:c1\")")
    slice_name, prefix, name = parts
    slice_name = slice_name or DEFAULT_SLICE
    if not name:
        raise ConfigError(FIELD, f"`{cgroups_path}`: the name part is empty")
    if name.endswith(".slice"):
        raise ConfigError(FIELD, f"`{cgroups_path}`: the name must not be a slice (ocirun "
                                 "makes a scope for the container)")
    unit = f"{prefix}-{name}.scope"
    _check_unit_name(slice_name, FIELD)
    _check_unit_name(unit, FIELD)
    expand_slice(slice_name)
    return slice_name, unit


def scope_path(slice_name, unit):
    base = expand_slice(slice_name)
    return (base.rstrip("/") or "") + "/" + unit


# -- properties -----------------------------------------------------------------------------

def _bitmask(cpus):
    """"0-2,4" -> the bytes AllowedCPUs= takes (bit n of byte n//8)."""
    bits = 0
    for part in cpus.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        for n in range(int(lo), int(hi or lo) + 1):
            bits |= 1 << n
    return bits.to_bytes((bits.bit_length() + 7) // 8 or 1, "little")


def _quota_per_sec(quota, period):
    """CPUQuotaPerSecUSec for a cfs quota and period, rounded up to 10ms as systemd
    keeps a percentage (runc's formula); -> (property value, the quota that matches it,
    for the cgroup file)."""
    if quota < 0:
        return UINT64_MAX, quota
    period = period or 100000
    per_sec = quota * 1000000 // period
    if per_sec % 10000:
        per_sec = (per_sec // 10000 + 1) * 10000
        quota = per_sec * period // 1000000
    return per_sec, quota


def resource_properties(res, mode, version):
    """linux.resources -> ([(property, (signature, value))], resources for the files).
    The second is `res` with the CPU quota rounded as systemd will have it, so that the
    file and the unit agree."""
    from ocirun.cgroups import convert

    props = []
    res = dict(res or {})
    mem = res.get("memory") or {}
    cpu = dict(res.get("cpu") or {})
    pids = res.get("pids") or {}
    bio = res.get("blockIO") or {}
    v2 = mode == "unified"

    limit = mem.get("limit") or 0
    if limit:
        props.append(("MemoryMax" if v2 else "MemoryLimit",
                      ("t", UINT64_MAX if limit == -1 else limit)))
    if v2:
        if mem.get("reservation"):
            r = mem["reservation"]
            props.append(("MemoryLow", ("t", UINT64_MAX if r == -1 else r)))
        swap = convert.swap_v2(mem.get("swap") or 0, limit) if (mem.get("swap") or limit == -1) else None
        if swap is not None:
            props.append(("MemorySwapMax", ("t", UINT64_MAX if swap == "max" else int(swap))))
    idle = cpu.get("idle") == 1 and v2 and version >= 252
    if idle:
        props.append(("CPUWeight", ("t", 0)))  # systemd writes cpu.idle 1 for weight 0
    elif cpu.get("shares"):
        if v2:
            props.append(("CPUWeight", ("t", convert.shares_to_weight(cpu["shares"]))))
        else:
            props.append(("CPUShares", ("t", cpu["shares"])))
    if cpu.get("quota"):
        per_sec, quota = _quota_per_sec(cpu["quota"], cpu.get("period") or 0)
        props.append(("CPUQuotaPerSecUSec", ("t", per_sec)))
        if quota != cpu["quota"]:
            cpu["quota"] = quota
            res["cpu"] = cpu
    if cpu.get("period") and version >= 242:
        props.append(("CPUQuotaPeriodUSec", ("t", cpu["period"])))
    if v2 and version >= 244:
        if cpu.get("cpus"):
            props.append(("AllowedCPUs", ("ay", _bitmask(cpu["cpus"]))))
        if cpu.get("mems"):
            props.append(("AllowedMemoryNodes", ("ay", _bitmask(cpu["mems"]))))
    lim = pids.get("limit") or 0
    if lim:
        props.append(("TasksMax", ("t", UINT64_MAX if lim < 0 else lim)))
    if bio.get("weight"):
        if v2:
            props.append(("IOWeight", ("t", convert.blkio_weight_to_io_weight(bio["weight"]))))
        else:
            props.append(("BlockIOWeight", ("t", bio["weight"])))
    if v2:
        weights = [(f"/dev/block/{convert.major_minor(d)}",
                    convert.blkio_weight_to_io_weight(d["weight"]))
                   for d in bio.get("weightDevice") or () if d.get("weight")]
        if weights:
            props.append(("IODeviceWeight", ("a(st)", weights)))
        for key, prop in (("throttleReadBpsDevice", "IOReadBandwidthMax"),
                          ("throttleWriteBpsDevice", "IOWriteBandwidthMax"),
                          ("throttleReadIOPSDevice", "IOReadIOPSMax"),
                          ("throttleWriteIOPSDevice", "IOWriteIOPSMax")):
            entries = [(f"/dev/block/{convert.major_minor(t)}", t["rate"] or UINT64_MAX)
                       for t in bio.get(key) or ()]
            if entries:
                props.append((prop, ("a(st)", entries)))
        props += _unified_properties(res.get("unified") or {}, version)
    elif res.get("devices") is not None:
        props += device_properties(res["devices"])
    return props, res


def _unified_properties(unified, version):
    """The linux.resources.unified keys systemd has a property for (the rest only go to
    the files); values are as the kernel reads them ("max" or a number)."""
    props = []

    def num(key):
        v = unified[key].strip()
        if v == "max":
            return UINT64_MAX
        try:
            return int(v)
        except ValueError:
            raise ConfigError(f"linux.resources.unified[{key!r}]",
                              f"`{v}` is not a number or \"max\"") from None

    for key, prop in (("memory.max", "MemoryMax"), ("memory.high", "MemoryHigh"),
                      ("memory.low", "MemoryLow"), ("memory.min", "MemoryMin"),
                      ("memory.swap.max", "MemorySwapMax"), ("pids.max", "TasksMax"),
                      ("cpu.weight", "CPUWeight")):
        if key in unified:
            v = num(key)
            props.append((prop, ("t", max(v, 1) if prop == "TasksMax" else v)))
    if "cpu.max" in unified:
        parts = unified["cpu.max"].split()
        if not parts or len(parts) > 2 or not all(p == "max" or p.isdigit() for p in parts[:1]) \
                or not all(p.isdigit() for p in parts[1:]):
            raise ConfigError("linux.resources.unified['cpu.max']",
                              f"`{unified['cpu.max']}` is not \"QUOTA [PERIOD]\"")
        period = int(parts[1]) if len(parts) == 2 else 0
        quota = -1 if parts[0] == "max" else int(parts[0])
        props.append(("CPUQuotaPerSecUSec", ("t", _quota_per_sec(quota, period)[0])))
        if period and version >= 242:
            props.append(("CPUQuotaPeriodUSec", ("t", period)))
    if version >= 244:
        for key, prop in (("cpuset.cpus", "AllowedCPUs"), ("cpuset.mems", "AllowedMemoryNodes")):
            if unified.get(key, "").strip():
                props.append((prop, ("ay", _bitmask(unified[key]))))
    return props


def device_properties(rules):
    """DevicePolicy= and DeviceAllow= for a device rule list (v1 semantics: in order,
    the last match decides). systemd keeps only an allow list over "deny the rest";
    a list that ends up allowing everything is DevicePolicy=auto with no entries."""
    default_allow = True  # a v1 cgroup starts from its parent's allow-all
    allowed = []  # [(type, major, minor, access)] exceptions to a deny-all default
    denied = False  # a deny exception over an allow-all default
    for r in rules:
        t = r.get("type") or "a"
        major = r.get("major")
        minor = r.get("minor")
        major = -1 if major is None else major
        minor = -1 if minor is None else minor
        access = set(r.get("access") or "rwm")
        if t == "a":
            default_allow = bool(r.get("allow"))
            allowed = []
            denied = False
            continue
        if r.get("allow"):
            if not default_allow:
                allowed.append((t, major, minor, access))
            continue
        if default_allow:
            denied = True
            continue
        kept = []
        for (at, amaj, amin, aacc) in allowed:
            covers = at == t and major in (-1, amaj) and minor in (-1, amin)
            if covers:
                aacc = aacc - access
                if not aacc:
                    continue
            kept.append((at, amaj, amin, aacc))
        allowed = kept
    if default_allow and not denied:
        return [("DevicePolicy", ("s", "auto")), ("DeviceAllow", ("a(ss)", []))]
    if default_allow:
        log.warning("linux.resources.devices: systemd keeps only allow lists; the unit is "
                    "given deny-all and the rules are written to the devices cgroup")
        allowed = []
    entries = []
    for t, major, minor, access in allowed:
        kind = "char" if t == "c" else "block"
        if major == -1 and minor != -1:
            log.warning(f"linux.resources.devices: systemd cannot express `{t} *:{minor}`; "
                        "it is written to the devices cgroup only")
            continue
        if major == -1:
            path = f"{kind}-*"
        elif minor == -1:
            path = f"{kind}-{major}"
        else:
            path = f"/dev/{kind}/{major}:{minor}"
        entries.append((path, "".join(c for c in "rwm" if c in access)))
    # an empty DeviceAllow= first clears what an earlier update gave the unit
    return [("DeviceAllow", ("a(ss)", [])), ("DevicePolicy", ("s", "strict")),
            ("DeviceAllow", ("a(ss)", entries))]


def annotation_properties(annotations):
    """org.systemd.property.NAME annotations (as runc and crun read them): the value in
    GVariant text form ("true", "'text'", "uint64 5", "int32 5", "['a', 'b']", a bare
    integer is int32); NAMESec becomes NAMEUSec in microseconds. ConfigError names the
    annotation."""
    props = []
    for key, value in (annotations or {}).items():
        if not isinstance(key, str) or not key.startswith(PROPERTY_PREFIX):
            continue
        field = f"annotations[{key!r}]"
        name = key[len(PROPERTY_PREFIX):]
        if len(name) < 3 or not name.isascii() or not name.isalpha():
            raise ConfigError(field, "a systemd property name is at least 3 latin letters")
        if not isinstance(value, str):
            raise ConfigError(field, "must be a string")
        sig, v = _parse_gvariant(value.strip(), field)
        if name.endswith("Sec") and not name.endswith("USec") and name[-4].islower():
            if sig not in ("t", "x", "u", "i"):
                raise ConfigError(field, f"{name} takes a number of seconds")
            name, sig, v = name[:-3] + "USec", "t", v * 1000000
        props.append((name, (sig, v)))
    return props


def _parse_gvariant(text, field):
    if text in ("true", "false"):
        return "b", text == "true"
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return "s", text[1:-1]
    if text.startswith("[") and text.endswith("]"):
        items = []
        for part in text[1:-1].split(","):
            part = part.strip()
            if not part:
                continue
            if len(part) < 2 or part[0] != part[-1] or part[0] not in "'\"":
                raise ConfigError(field, f"`{text}`: only arrays of strings are supported")
            items.append(part[1:-1])
        return "as", items
    for prefix, sig, lo, hi in (("uint64 ", "t", 0, UINT64_MAX), ("int64 ", "x", -(1 << 63), (1 << 63) - 1),
                                ("uint32 ", "u", 0, (1 << 32) - 1), ("int32 ", "i", -(1 << 31), (1 << 31) - 1),
                                ("", "i", -(1 << 31), (1 << 31) - 1)):
        if text.startswith(prefix):
            num = text[len(prefix):].strip()
            try:
                v = int(num)
            except ValueError:
                break
            if not lo <= v <= hi:
                raise ConfigError(field, f"`{text}` is out of range")
            return sig, v
    raise ConfigError(field, f"`{text}` is not a value ocirun can pass to systemd "
                             "(true, false, 'text', uint64 N, int64 N, uint32 N, int32 N, "
                             "['a', 'b'])")


# -- the bus --------------------------------------------------------------------------------

def connect():
    """A connection to systemd: $DBUS_SYSTEM_BUS_ADDRESS as given, or the system bus,
    falling back (root) to systemd's private socket."""
    from ocirun.cgroups import dbus

    address = fs.getenv("DBUS_SYSTEM_BUS_ADDRESS")
    candidates = [(address, True)] if address else [(dbus.SYSTEM_BUS, True)]
    if not address and posix.geteuid() == 0:
        candidates.append((dbus.SYSTEMD_PRIVATE, False))
    errors = []
    for addr, bus in candidates:
        try:
            return dbus.Connection.open(addr, bus=bus)
        except OSError as e:
            errors.append(f"{addr}: {e.strerror or e}")
    raise OciError("systemd cgroup manager: cannot connect to systemd over D-Bus ("
                   + "; ".join(errors) + ")")


class _Systemd:
    """The D-Bus side of a manager: one connection, opened on first use."""

    __slots__ = ("conn", "_version")

    def __init__(self):
        self.conn = None
        self._version = None

    def bus(self):
        if self.conn is None:
            self.conn = connect()
            self.conn.add_match(f"type='signal',sender='{SD}',path='{SD_PATH}',"
                                f"interface='{SD_MANAGER}',member='JobRemoved'")
        return self.conn

    def call(self, member, sig="", args=()):
        return self.bus().call(SD, SD_PATH, SD_MANAGER, member, sig, args)

    def version(self):
        if self._version is None:
            try:
                v = self.bus().call(SD, SD_PATH, "org.freedesktop.DBus.Properties", "Get", "ss",
                                    (SD_MANAGER, "Version"))[0]
                digits = ""
                for ch in str(v).lstrip("v"):
                    if not ch.isdigit():
                        break
                    digits += ch
                self._version = int(digits or 0)
            except OciError:
                self._version = 0
        return self._version

    def wait_job(self, job, unit, what):
        """Wait for the JobRemoved signal of `job`; OciError unless its result is "done"."""
        import time
        sock = self.bus().sock
        deadline = time.monotonic() + JOB_TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise OciError(f"systemd did not finish {what} unit `{unit}` within "
                               f"{JOB_TIMEOUT:g}s")
            sock.settimeout(left)
            try:
                m = self.conn.next_signal("JobRemoved")
            except TimeoutError:
                continue
            _id, path, _unit, result = m.body
            if path == job:
                if result != "done":
                    raise OciError(f"systemd failed {what} unit `{unit}` (job result `{result}`)")
                return

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _is(e, *names):
    return getattr(e, "name", None) in names


# -- the managers ---------------------------------------------------------------------------
# Two classes (v2, and v1/hybrid) over the cgroupfs managers: the files are theirs; what
# is about the unit is written once below and shared.

def _start_unit(self, pid):
    """StartTransientUnit with `pid`, wait for the job, then the resources' files."""
    sd = self.sd
    version = sd.version()
    props, files = resource_properties(self.resources or {}, self.mode, version)
    v2 = self.mode == "unified"
    all_props = [
        ("Description", ("s", f"ocirun container {self.container_id}")),
        ("Slice", ("s", self.slice)),
        ("Delegate", ("b", True)),
        ("PIDs", ("au", [pid])),
        ("DefaultDependencies", ("b", False)),
        ("MemoryAccounting", ("b", True)),
        ("CPUAccounting", ("b", True)),
        ("IOAccounting" if v2 else "BlockIOAccounting", ("b", True)),
        ("TasksAccounting", ("b", True)),
    ] + props + self.extra
    for attempt in (0, 1):
        try:
            job = sd.call("StartTransientUnit", "ssa(sv)a(sa(sv))",
                          (self.unit, "replace", all_props, []))[0]
            break
        except OciError as e:
            if _is(e, "org.freedesktop.systemd1.UnitExists") and attempt == 0:
                # a failed unit of that name that systemd keeps: reset it and retry once
                try:
                    sd.call("ResetFailedUnit", "s", (self.unit,))
                except OciError:
                    pass
                continue
            if _is(e, "org.freedesktop.systemd1.UnitExists"):
                raise OciError(f"{FIELD}: systemd unit `{self.unit}` already exists") from None
            raise OciError(f"systemd refused unit `{self.unit}`: {e}") from None
    self.started = True  # from here on, undo stops it
    sd.wait_job(job, self.unit, "starting")
    timings.mark("systemd scope started (StartTransientUnit, JobRemoved)")
    if not fs.isdir(self.root + self.path if v2 else self.unified_leaf()):
        raise OciError(f"systemd started unit `{self.unit}` but its cgroup is not at "
                       f"{self.path} under {self.root}")
    return files


def _stop_unit(self):
    """StopUnit, waiting for the job; a unit systemd no longer has is fine (an empty
    scope stops by itself). Then ResetFailedUnit, so that a failed one goes too."""
    sd = self.sd
    try:
        job = sd.call("StopUnit", "ss", (self.unit, "replace"))[0]
        sd.wait_job(job, self.unit, "stopping")
    except OciError as e:
        if not _is(e, "org.freedesktop.systemd1.NoSuchUnit"):
            raise OciError(f"stop systemd unit `{self.unit}`: {e}") from None
    try:
        sd.call("ResetFailedUnit", "s", (self.unit,))
    except OciError:
        pass


def _set_properties(self, props):
    try:
        self.sd.call("SetUnitProperties", "sba(sv)", (self.unit, True, props))
    except OciError as e:
        raise OciError(f"systemd refused the new properties of unit `{self.unit}`: {e}") from None


def _shared(cls):
    """The methods both managers have, written once."""

    def create(self):
        # Nothing to make before there is a pid: the unit is started by add(). The bus
        # is reached now, so that a host without one fails before the init exists.
        self.sd.bus()
        self.created = []
        return self

    def apply(self, resources):
        from ocirun.cgroups import validate
        validate.validate_resources(resources, self.mode)
        self.resources = resources

    def add(self, pid, sub=None):
        if self.started:
            return cls.__mro__[1].add(self, pid, sub)
        files = _start_unit(self, pid)
        self._join_others(pid)
        if files:
            self._set(files, False)

    def fork_targets(self):
        if not self.started:
            return None, []  # no cgroup before the unit: the init is born in ours
        return cls.__mro__[1].fork_targets(self)

    def update(self, resources):
        from ocirun.cgroups import validate
        validate.validate_resources(resources, self.mode)
        if not resources:
            return
        props, files = resource_properties(resources, self.mode, self.sd.version())
        if props:
            device = any(p[0] == "DeviceAllow" for p in props) and self.mode != "unified"
            thaw = False
            if device and self.state() != "paused":
                # systemd rewrites the v1 device list as deny-all then the allow list:
                # frozen, the processes cannot meet the gap (as runc does)
                try:
                    self.freeze()
                    thaw = True
                except OciError:
                    pass
            try:
                _set_properties(self, props)
            finally:
                if thaw:
                    self.thaw()
        self._set(files, True)

    def destroy(self):
        errors = []
        if not self.started:
            # the unit was never ours (not started, or another container's of the same
            # name): its directories are not ours to remove either
            self.created = []
            self.sd.close()
            return
        try:
            _stop_unit(self)
        except OciError as e:
            # systemd gone or unreachable: an empty scope is dropped by systemd itself
            log.warning(str(e))
        # what systemd did not remove: directories made here (v1 hierarchies systemd
        # does not manage) and sub-cgroups made in the delegated scope
        for d in self._leaf_dirs():
            try:
                common.remove_tree(d)
            except OSError as e:
                errors.append(OciError(f"remove cgroup {d}: {e.strerror}"))
        leaves = set(self._leaf_dirs())
        for d in reversed(self.created):
            if d not in leaves:
                try:
                    posix.rmdir(d)
                except OSError:
                    pass  # a slice directory others use
        self.created = []
        self.sd.close()
        if errors:
            raise errors[0]

    def to_dict(self):
        d = cls.__mro__[1].to_dict(self)
        d["kind"] = "systemd"
        d["unit"] = self.unit
        d["slice"] = self.slice
        return d

    for f in (create, apply, add, fork_targets, update, destroy, to_dict):
        f.__qualname__ = f"{cls.__name__}.{f.__name__}"
        setattr(cls, f.__name__, f)
    return cls


@_shared
class SystemdV2(V2Manager):
    __slots__ = ("unit", "slice", "started", "resources", "extra", "sd")
    kind = "systemd"

    def __init__(self, root, path, container_id, unit, slice_name, extra=()):
        super().__init__(root, path, container_id)
        self.unit, self.slice, self.extra = unit, slice_name, list(extra)
        self.started, self.resources, self.sd = False, None, _Systemd()

    def unified_leaf(self):
        return self.leaf

    def _join_others(self, pid):
        pass


@_shared
class SystemdV1(V1Manager):
    __slots__ = ("unit", "slice", "started", "resources", "extra", "sd")
    kind = "systemd"

    def __init__(self, root, path, container_id, unit, slice_name, mode, extra=(),
                 mountinfo="/proc/self/mountinfo", hier=None, unified=None):
        super().__init__(root, path, container_id, mode, mountinfo=mountinfo, hier=hier,
                         unified=unified)
        self.unit, self.slice, self.extra = unit, slice_name, list(extra)
        self.started, self.resources, self.sd = False, None, _Systemd()

    def unified_leaf(self):
        d = self.unified + self.path if self.unified else None
        return d if d and fs.isdir(self.unified) else self.dir("memory") or self.dir("pids")

    def _join_others(self, pid):
        """The hierarchies systemd did not put the process in (freezer, cpuset, ...):
        their directory of the same path, made here, as runc does."""
        made = []
        for base in self._bases():
            leaf = base + self.path
            if not fs.isdir(leaf):
                common.mkdir_chain(base, self.path, made)
        self.created.extend(made)
        if made:
            self._after_create(made)  # a new cpuset cgroup gets its parent's cpus/mems
        mine = _own_cgroups(pid)
        for base in self._bases():
            name = base.rsplit("/", 1)[1]
            if mine.get(name) == self.path:
                continue
            common.write_checked(base + self.path, "cgroup.procs", str(pid))


def _own_cgroups(pid):
    """{hierarchy directory name: path} of a process (v2 as "unified")."""
    out = {}
    try:
        text = fs.read_bytes(f"/proc/{pid}/cgroup").decode()
    except OSError:
        return out
    for line in text.splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in (ctrls.split(",") if ctrls else ["unified"]):
            out[c] = path
    return out


def open_manager(cgroups_path, container_id, root, mode, mountinfo, annotations=None):
    """A manager for the scope of cgroupsPath; ConfigError for a malformed path or
    annotation, OciError when systemd does not run here. Nothing is made yet."""
    check_available()
    slice_name, unit = unit_for(cgroups_path, container_id)
    extra = annotation_properties(annotations)
    path = scope_path(slice_name, unit)
    if mode == "unified":
        return SystemdV2(root, path, container_id, unit, slice_name, extra)
    return SystemdV1(root, path, container_id, unit, slice_name, mode, extra,
                     mountinfo=mountinfo)


def from_dict(d):
    """Reopen a manager saved by to_dict() (state.json "cgroup"); the unit name and the
    path must agree, so a damaged record cannot name another unit's cgroup."""
    unit, slice_name, path = d["unit"], d["slice"], d["path"]
    if not isinstance(unit, str) or not unit.endswith(".scope"):
        raise ValueError("bad unit")
    _check_unit_name(unit, "unit")
    if path != scope_path(slice_name, unit):
        raise ValueError("path does not match the unit")
    if d.get("mode") == "unified":
        m = SystemdV2.__new__(SystemdV2)
        base = V2Manager.from_dict(d)
        SystemdV2.__init__(m, base.root, path, d.get("container_id"), unit, slice_name)
    else:
        base = V1Manager.from_dict(d)
        m = SystemdV1(base.root, path, d.get("container_id"), unit, slice_name, base.mode,
                      hier=base.hier, unified=base.unified)
    m.created = base.created
    m.started = True
    return m
