"""The Plan: every decision about a container made in the runtime before fork, as
plain data built once, so the container init only executes it (and imports nothing).
The fds the init is handed and what it learns while it runs travel apart, in
linux/init.py's Context. What only some configs have (process.scheduler, .ioPriority,
.execCPUAffinity, linux.personality, .memoryPolicy, .netDevices, .intelRdt, idmapped
mounts) is planned by plan_extra.py, imported only then: a plain `run` does not read
its code."""
from ocirun import fs
from ocirun.errors import ConfigError
from ocirun.tables import mask
from ocirun.tables import DEFAULT_DEVICES
from ocirun.tables import MS_BIND, PROPAGATION, parse_options
from ocirun.tables import NAMESPACES
from ocirun.tables import RLIMITS


class Plan:
    __slots__ = (
        "rootfs", "readonly", "root_propagation", "no_pivot",
        "ns_new", "ns_join", "userns_new", "uid_map", "gid_map", "time_offsets",
        "mounts", "devices", "dev_from_host", "dev_symlinks", "masked", "readonly_paths",
        "sysctl", "hostname", "domainname",
        "args", "env", "path_env", "cwd", "uid", "gid", "gids", "umask",
        "cap_bounding", "cap_effective", "cap_permitted", "cap_inheritable", "cap_ambient",
        "last_cap", "rlimits", "nnp", "oom_score_adj", "terminal", "console_size",
        "preserve_fds", "preserved", "mount_ns", "cgroupns", "hooks", "apparmor", "selinux",
        "mount_label",
        "keep_groups", "scheduler", "ioprio", "cpus_initial", "cpus_final", "personality",
        "mempolicy", "net_devices", "intel_rdt", "idmaps",
    )

# podman --group-add keep-groups (crun's annotation): the process keeps the caller's
# supplementary groups (no setgroups) unless the value is "0".
KEEP_GROUPS = "run.oci.keep_original_groups"


def apparmor_enabled():
    try:
        return fs.read_bytes("/sys/module/apparmor/parameters/enabled")[:1] == b"Y"
    except OSError:
        return False


def _apparmor(profile):
    """The AppArmor profile to switch to at execve, or None. On a host without
    AppArmor a requested profile cannot apply: refused, as runc does (a container that
    asked to be confined does not run unconfined)."""
    if not profile:
        return None
    if apparmor_enabled():
        return profile
    raise ConfigError("process.apparmorProfile",
                      f"`{profile}` cannot apply: AppArmor is not enabled on this host")


def selinux_enabled():
    return fs.exists("/sys/fs/selinux/enforce")


def _selinux(label, field):
    """An SELinux label to apply, or None. On a host without SELinux it cannot apply:
    refused, as runc does."""
    if not label:
        return None
    if selinux_enabled():
        return label
    raise ConfigError(field, f"`{label}` cannot apply: SELinux is not enabled on this host")


def _maps(entries):
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in entries or ())


def _ambient(names, raisable, top):
    """The ambient set the kernel will let the process raise: a capability that is not
    both permitted and inheritable cannot be ambient, and runc and crun warn and go on
    (`runc spec`'s own default config asks for such ones), so do we."""
    wanted = mask(names, top)
    if wanted & ~raisable:
        from ocirun import log
        from ocirun.tables import CAPS
        left = [CAPS[i] for i in range(top + 1) if (wanted & ~raisable) >> i & 1]
        log.warning(f"process.capabilities.ambient: {', '.join(left)} not raised: not both "
                    f"permitted and inheritable")
    return wanted & raisable


def build(spec, bundle, last_cap, no_pivot=False, preserve_fds=(0, ()), extra_env=()):
    """Turn a validated config into a Plan. `bundle` is the absolute bundle path,
    `last_cap` the highest capability of this kernel (kernel.last_cap());
    `preserve_fds`: (N of --preserve-fds, the fds of 3..3+N-1 open at the start);
    `extra_env` is added to process.env (socket activation's LISTEN_FDS, LISTEN_PID)."""
    p = Plan()
    root = spec["root"]
    rootfs = root["path"]
    p.rootfs = rootfs if rootfs.startswith("/") else f"{bundle}/{rootfs}"
    try:
        p.rootfs = fs.realpath(p.rootfs)
    except OSError:
        raise ConfigError("root.path", f"rootfs `{p.rootfs}` does not exist") from None
    if not fs.isdir(p.rootfs):
        raise ConfigError("root.path", f"rootfs `{p.rootfs}` is not a directory")
    p.readonly = bool(root.get("readonly"))
    p.no_pivot = no_pivot
    linux = spec.get("linux") or {}

    p.ns_new = 0
    p.ns_join = []
    p.userns_new = False
    for i, ns in enumerate(linux.get("namespaces") or ()):
        flag, procname = NAMESPACES[ns["type"]]
        path = ns.get("path")
        if path:
            p.ns_join.append((ns["type"], path, flag))
        else:
            p.ns_new |= flag
            if ns["type"] == "user":
                p.userns_new = True
    types = {ns["type"] for ns in linux.get("namespaces") or ()}
    p.mount_ns = "mount" in types
    p.cgroupns = "cgroup" in types
    p.uid_map = _maps(linux.get("uidMappings"))
    p.gid_map = _maps(linux.get("gidMappings"))
    p.time_offsets = "".join(f"{k} {v.get('secs', 0)} {v.get('nanosecs', 0)}\n"
                             for k, v in (linux.get("timeOffsets") or {}).items())

    prop = linux.get("rootfsPropagation")
    p.root_propagation = PROPAGATION.get(prop, 0) if prop else 0

    p.mounts = [_mount(m, bundle) for m in spec.get("mounts") or ()]
    dev_bound = any(m["destination"] == "/dev" and mo.bind for m, mo in p.mounts)
    devices = list(linux.get("devices") or ())
    if not dev_bound:
        have = {d["path"] for d in devices}
        devices += [{"path": path, "type": "c", "major": ma, "minor": mi, "fileMode": 0o666}
                    for path, ma, mi in DEFAULT_DEVICES if path not in have]
    p.devices = devices
    # mknod is not allowed in a user namespace: bind the host's nodes instead.
    p.dev_from_host = p.userns_new or any(j[0] == "user" for j in p.ns_join)
    p.dev_symlinks = not dev_bound
    p.masked = linux.get("maskedPaths") or ()
    p.readonly_paths = linux.get("readonlyPaths") or ()
    p.sysctl = linux.get("sysctl") or {}
    p.mount_label = _selinux(linux.get("mountLabel"), "linux.mountLabel")
    p.hostname = spec.get("hostname")
    p.domainname = spec.get("domainname")

    _fill_process(p, spec.get("process") or {}, preserve_fds, last_cap, extra_env)
    p.hooks = spec.get("hooks") or {}
    _fill_linux_extras(p, linux)
    p.idmaps = {}
    for m, _ in p.mounts:
        if "uidMappings" in m or not IDMAP_OPTIONS.isdisjoint(m.get("options") or ()):
            from ocirun.config import plan_extra
            p.idmaps = plan_extra.idmaps(p.mounts, linux)
            break
    p.keep_groups = (spec.get("annotations") or {}).get(KEEP_GROUPS, "0") != "0"
    return p


# linux.* fields planned by plan_extra.py (imported only when a config has one)
_LINUX_EXTRA = ("personality", "memoryPolicy", "netDevices", "intelRdt")
IDMAP_OPTIONS = frozenset(("idmap", "ridmap"))


def _fill_linux_extras(p, linux):
    """personality, memoryPolicy, netDevices, intelRdt (plan_extra.fill_linux)."""
    p.personality = p.mempolicy = p.intel_rdt = None
    p.net_devices = []
    for key in _LINUX_EXTRA:
        if linux.get(key) is not None:
            from ocirun.config import plan_extra
            plan_extra.fill_linux(p, linux)
            return


def build_process(proc, last_cap, preserve_fds=(0, ()), spec=None):
    """The Plan of an `exec`: the process (the container exists already; its config
    still says whether the process keeps the caller's groups, and its personality and
    memory policy apply to every process of it, as crun does)."""
    spec = spec or {}
    linux = spec.get("linux") or {}
    p = Plan()
    _fill_process(p, proc, preserve_fds, last_cap)
    p.hooks = {}
    p.keep_groups = (spec.get("annotations") or {}).get(KEEP_GROUPS, "0") != "0"
    _fill_linux_extras(p, {k: linux[k] for k in ("personality", "memoryPolicy") if k in linux})
    p.idmaps = {}
    return p


def _mount(m, bundle):
    """(mounts[i], its options); a relative bind source names a path in the bundle,
    as runc reads it (the init resolves bind sources from no particular directory)."""
    mo = parse_options(m.get("options"))
    if m.get("type") == "bind":
        mo.flags |= MS_BIND
    src = m.get("source")
    if mo.bind and src and not src.startswith("/"):
        m = dict(m)
        m["source"] = f"{bundle}/{src}"
    return m, mo


def _fill_process(p, proc, preserve_fds, top, extra_env=()):
    """The process part of a Plan (shared by create and exec)."""
    p.args = proc.get("args") or []
    p.env = list(proc.get("env") or ()) + list(extra_env)
    p.path_env = next((e[5:] for e in p.env if e.startswith("PATH=")),
                      "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    p.cwd = proc.get("cwd") or "/"
    user = proc.get("user") or {}
    p.uid = user.get("uid", 0)
    p.gid = user.get("gid", 0)
    p.gids = user.get("additionalGids") or []
    p.umask = user.get("umask")
    p.last_cap = top
    caps = proc.get("capabilities") or {}
    p.cap_bounding = mask(caps.get("bounding"), top)
    p.cap_effective = mask(caps.get("effective"), top)
    p.cap_permitted = mask(caps.get("permitted"), top)
    p.cap_inheritable = mask(caps.get("inheritable"), top)
    p.cap_ambient = _ambient(caps.get("ambient"), p.cap_permitted & p.cap_inheritable, top)
    p.rlimits = [(r["type"], RLIMITS[r["type"]], r["soft"], r["hard"])
                 for r in proc.get("rlimits") or ()]
    p.nnp = bool(proc.get("noNewPrivileges"))
    p.oom_score_adj = proc.get("oomScoreAdj")
    p.terminal = bool(proc.get("terminal"))
    size = proc.get("consoleSize")
    p.console_size = (size.get("height", 0), size.get("width", 0)) if size else None
    p.preserve_fds, p.preserved = preserve_fds
    p.scheduler = p.ioprio = p.cpus_initial = p.cpus_final = None
    if "scheduler" in proc or "ioPriority" in proc or "execCPUAffinity" in proc:
        from ocirun.config import plan_extra
        plan_extra.fill_process(p, proc)
    p.apparmor = _apparmor(proc.get("apparmorProfile"))
    p.selinux = _selinux(proc.get("selinuxLabel"), "process.selinuxLabel")
