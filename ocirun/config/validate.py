"""config.json validation: everything that can be refused before fork.

Every error is a ConfigError whose `field` is the JSON path of the offending value
(`process.user.uid`, `mounts[2].destination`, `linux.sysctl["net.ipv4.ip_forward"]`) and
whose message is one line naming the value. `validate()` first reads JSON null as runc and
crun do (drop_nulls, in place): an optional key that is null is removed, as if absent, at
every level; a required one is an error. After `validate()` returns, later stages may
index the document without re-checking types: every known key holds the type the
runtime-spec schema gives it (no null is left in a field: a null array item or map value
is refused as a wrong type), every string that reaches the kernel is free of NUL and
encodes as UTF-8, and every integer is a real int (JSON `true` decodes to Python's True,
which *is* an int) inside the range its syscall takes.

Unknown keys are accepted at every level: the spec allows extensions.

This module runs on every `create`/`run`: module level imports only os/sys and our errors,
checks are plain type()/range tests, and field paths are formatted only on failure where the
loop is hot. The checks of fields a plain container does not have (hooks, user namespace
mappings, idmapped mounts, namespaces joined by path, ioPriority, scheduler,
execCPUAffinity, personality, memoryPolicy, netDevices, intelRdt, timeOffsets) live in
validate_extra.py, imported only by a config that has one: their code is a third of this
module's, and every `run` would read and unmarshal it.
"""

from ocirun.config.nulls import CONFIG, PROCESS, drop_nulls
from ocirun.errors import ConfigError
from ocirun.tables import CAPS
from ocirun.tables import NAMESPACES as _NS
from ocirun.tables import RLIMITS
from ocirun.tables import UNSUPPORTED_OPTIONS

_CAPSET = frozenset(CAPS)
CAP_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")
PROPAGATIONS = (
    "", "shared", "slave", "private", "unbindable",
    "rshared", "rslave", "rprivate", "runbindable",
)
DEVICE_TYPES = ("c", "b", "u", "p")

ID_MAX = 0xFFFFFFFE          # (uid_t)-1 means "unchanged" to setresuid: never a real id
U32 = 0xFFFFFFFF
U64 = 0xFFFFFFFFFFFFFFFF
NGROUPS_MAX = 65536
HOST_NAME_MAX = 64           # __NEW_UTS_LEN


# --- failure reporting ------------------------------------------------------------------

def _fail(field, msg):
    raise ConfigError(field, msg)


def _q(s):
    """A string for a one-line message: as is when short and printable, else repr()."""
    if s and len(s) <= 200 and s.isprintable():
        return s
    if len(s) > 200:
        return repr(s[:200]) + "..."
    return repr(s)


def _show(v):
    """A JSON-ish rendering of any value, short and on one line."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    t = type(v)
    if t is str:
        return repr(v) if len(v) <= 64 else repr(v[:64]) + "..."
    if t is int:
        return str(v) if v.bit_length() <= 128 else "a %d-bit integer" % v.bit_length()
    if t is float:
        return repr(v)
    if t is dict:
        return "an object"
    if t is list:
        return "an array"
    return f"a Python {t.__name__}"  # not from JSON: validate() called from code


def _want(v, what, field):
    raise ConfigError(field, f"must be {what}, not {_show(v)}")


# --- typed getters ----------------------------------------------------------------------

def _text_ok(s):
    """Encodable as strict UTF-8 (JSON \\ud800 escapes decode to lone surrogates)."""
    if s.isascii():
        return True
    try:
        s.encode()
    except UnicodeEncodeError:
        return False
    return True


def _bad_text(s, field):
    if "\0" in s:
        _fail(field, f"contains a NUL byte: {_q(s)}")
    _fail(field, f"is not valid UTF-8 (lone surrogate): {_q(s)}")


def _obj(v, field):
    if type(v) is not dict:
        _want(v, "an object", field)
    return v


def _list(v, field):
    if type(v) is not list:
        _want(v, "an array", field)
    return v


def _bool(v, field):
    if type(v) is not bool:
        _want(v, "a boolean", field)
    return v


def _str(v, field):
    """Any string (not passed to the kernel): UTF-8 encodable."""
    if type(v) is not str:
        _want(v, "a string", field)
    if not v.isascii() and not _text_ok(v):
        _bad_text(v, field)
    return v


def _kstr(v, field):
    """A string that reaches the kernel or execve: no NUL, UTF-8 encodable."""
    if type(v) is not str:
        _want(v, "a string", field)
    if "\0" in v or not _text_ok(v):
        _bad_text(v, field)
    return v


def _abspath(v, field):
    _kstr(v, field)
    if v[:1] != "/":
        _fail(field, f"{_q(v)} must be an absolute path")
    return v


def _int(v, field, lo, hi):
    if type(v) is not int:
        _want(v, "an integer", field)
    if v < lo or v > hi:
        _fail(field, f"{_show(v)} is out of range {lo}..{hi}")
    return v


def _id(v, field):
    if type(v) is not int:
        _want(v, "an integer", field)
    if v < 0 or v > ID_MAX:
        if v == U32:
            _fail(field, f"{v} is (uid_t)-1, not a valid id")
        _fail(field, f"{_show(v)} is out of range 0..{ID_MAX}")
    return v


def _kstrlist(v, field):
    if type(v) is not list:
        _want(v, "an array", field)
    for i, s in enumerate(v):
        if type(s) is not str or "\0" in s or not _text_ok(s):
            _kstr(s, f"{field}[{i}]")
    return v


def _env(v, field):
    _kstrlist(v, field)
    for i, s in enumerate(v):
        if s.find("=") < 1:
            _fail(f"{field}[{i}]", f"{_q(s)} is not of the form KEY=VALUE")
    return v


def _str_map(v, field):
    if type(v) is not dict:
        _want(v, "an object", field)
    for k, s in v.items():
        if type(k) is not str or not k or not _text_ok(k):
            _fail(_key(field, k), "invalid key")
        if type(s) is not str or not _text_ok(s):
            _str(s, _key(field, k))
    return v


def _get(d, key, field):
    """d[key], which is required and must not be null."""
    v = d.get(key)
    if v is None:
        f = f"{field}.{key}" if field else key
        _fail(f, "must not be null" if key in d else "is required")
    return v


def _key(field, k):
    """The path of a map entry: linux.sysctl["net.ipv4.ip_forward"]."""
    if type(k) is str and '"' not in k and k.isprintable():
        return f'{field}["{k}"]'
    return f"{field}[{k!r}]"


# --- process ----------------------------------------------------------------------------

def validate_process(process, field="process"):
    """Check a process object (`exec --process FILE`, or one given to the library);
    its null optional keys are removed first (drop_nulls)."""
    drop_nulls(process, PROCESS, field)
    _check_process(process, field)


def _check_process(process, field):
    p = _obj(process, field)
    args = _kstrlist(_get(p, "args", field), f"{field}.args")
    if not args:
        _fail(f"{field}.args", "must not be empty")
    if not args[0]:
        _fail(f"{field}.args[0]", "must not be empty")
    _abspath(_get(p, "cwd", field), f"{field}.cwd")
    for key, value in p.items():
        check = _PROCESS_KEYS.get(key)
        if check is not None:
            check(value, f"{field}.{key}")
        elif key in _PROCESS_EXTRA:
            from ocirun.config import validate_extra
            validate_extra.PROCESS_KEYS[key](value, f"{field}.{key}")


def _check_console_size(v, field):
    _obj(v, field)
    _int(_get(v, "height", field), f"{field}.height", 0, 0xFFFF)
    _int(_get(v, "width", field), f"{field}.width", 0, 0xFFFF)


def _check_user(v, field):
    _obj(v, field)
    _id(_get(v, "uid", field), f"{field}.uid")
    _id(_get(v, "gid", field), f"{field}.gid")
    if "umask" in v:
        _int(v["umask"], f"{field}.umask", 0, 0o7777)
    if "additionalGids" in v:
        gids = _list(v["additionalGids"], f"{field}.additionalGids")
        if len(gids) > NGROUPS_MAX:
            _fail(f"{field}.additionalGids", f"{len(gids)} groups, more than {NGROUPS_MAX}")
        for i, g in enumerate(gids):
            if type(g) is not int or g < 0 or g > ID_MAX:
                _id(g, f"{field}.additionalGids[{i}]")
    if "username" in v:
        _str(v["username"], f"{field}.username")


def _check_capabilities(v, field):
    _obj(v, field)
    for name in CAP_SETS:
        caps = v.get(name)
        if caps is None and name not in v:
            continue
        _list(caps, f"{field}.{name}")
        for i, c in enumerate(caps):
            if type(c) is not str:
                _want(c, "a string", f"{field}.{name}[{i}]")
            if c not in _CAPSET:
                _fail(f"{field}.{name}[{i}]", f"unknown capability {_q(c)}")


def _check_rlimits(v, field):
    _list(v, field)
    seen = set()
    for i, r in enumerate(v):
        f = f"{field}[{i}]"
        _obj(r, f)
        kind = _get(r, "type", f)
        if type(kind) is not str:
            _want(kind, "a string", f + ".type")
        if kind not in RLIMITS:
            _fail(f + ".type", f"unknown rlimit {_q(kind)}")
        if kind in seen:
            _fail(f + ".type", f"duplicate {kind}")
        seen.add(kind)
        soft = _int(_get(r, "soft", f), f + ".soft", 0, U64)
        hard = _int(_get(r, "hard", f), f + ".hard", 0, U64)
        if soft > hard:
            _fail(f + ".soft", f"{kind} soft limit {soft} is above the hard limit {hard}")


_PROCESS_KEYS = {
    "env": _env,
    "terminal": _bool,
    "consoleSize": _check_console_size,
    "user": _check_user,
    "capabilities": _check_capabilities,
    "rlimits": _check_rlimits,
    "noNewPrivileges": _bool,
    "oomScoreAdj": lambda v, f: _int(v, f, -1000, 1000),
    "apparmorProfile": _kstr,
    "selinuxLabel": _kstr,
    "commandLine": _str,
}
# checked by validate_extra.py (imported only then)
_PROCESS_EXTRA = frozenset(("ioPriority", "scheduler", "execCPUAffinity"))


# --- mounts and hooks -------------------------------------------------------------------

def _check_mounts(v, field):
    _list(v, field)
    for i, m in enumerate(v):
        f = f"{field}[{i}]"
        if type(m) is not dict:
            _want(m, "an object", f)
        dest = m.get("destination")
        if type(dest) is not str or dest[:1] != "/" or "\0" in dest or not _text_ok(dest):
            if dest is None and "destination" not in m:
                _fail(f + ".destination", "is required")
            # Spec 1.0 allowed relative destinations; runc and crun refuse them, so do we.
            _abspath(dest, f + ".destination")
        for key, value in m.items():
            if key == "type" or key == "source":
                if type(value) is not str or "\0" in value or not _text_ok(value):
                    _kstr(value, f"{f}.{key}")
            elif key == "options":
                _kstrlist(value, f + ".options")
            elif key == "uidMappings" or key == "gidMappings":
                from ocirun.config import validate_extra
                validate_extra.check_idmap(value, f"{f}.{key}")


# --- linux ------------------------------------------------------------------------------

def _need_ns(ns, kind, field, what, check_host, fresh=False):
    """Refuse `what` unless the container has its own `kind` namespace: without one the
    write would land in the host's (docs/security.md class H)."""
    if kind not in ns:
        _fail(field, f"{what} needs a {kind} namespace in linux.namespaces"
                     f" (it would change the host's)")
    path = ns[kind]
    if path is None:
        return
    if fresh:
        _fail(field, f"{what} needs a new {kind} namespace, not one joined by path")
    from ocirun.config import validate_extra
    if check_host and validate_extra.is_host_ns(path, kind):
        _fail(field, f"{what}: {_q(path)} is the host's {kind} namespace")


def _check_namespaces(v, field, check_host):
    """Returns {type: path or None}."""
    _list(v, field)
    ns = {}
    for i, n in enumerate(v):
        f = f"{field}[{i}]"
        _obj(n, f)
        kind = _get(n, "type", f)
        if type(kind) is not str or kind not in _NS:
            _fail(f + ".type", f"unknown namespace type {_show(kind)}")
        if kind in ns:
            _fail(f + ".type", f"duplicate namespace type {kind}")
        path = None
        if "path" in n:
            path = _abspath(n["path"], f + ".path")
            if check_host:
                from ocirun.config import validate_extra
                validate_extra.check_ns_path(path, kind, f + ".path")
        ns[kind] = path
    return ns


def _check_sysctl(v, field, ns, check_host):
    _obj(v, field)
    for key, value in v.items():
        f = _key(field, key)
        _kstr(key, f)
        _kstr(value, f)
        # sysctl(8) accepts "/" as the separator too; normalise before classifying.
        name = key.replace("/", ".") if "/" in key else key
        if not name or "" in name.split("."):
            _fail(f, f"invalid sysctl name {_q(key)}")
        if name.startswith("net."):
            _need_ns(ns, "network", f, f"sysctl {name}", check_host)
        elif name == "kernel.hostname" or name == "kernel.domainname":
            _need_ns(ns, "uts", f, f"sysctl {name}", check_host)
        elif name.startswith(("kernel.msg", "kernel.sem", "kernel.shm", "fs.mqueue.")):
            _need_ns(ns, "ipc", f, f"sysctl {name}", check_host)
        else:
            _fail(f, f"sysctl {_q(name)} is not namespaced; refusing to change the host's")


def _check_devices(v, field):
    _list(v, field)
    for i, d in enumerate(v):
        f = f"{field}[{i}]"
        _obj(d, f)
        _abspath(_get(d, "path", f), f + ".path")
        kind = _get(d, "type", f)
        if type(kind) is not str or kind not in DEVICE_TYPES:
            _fail(f + ".type", f"{_show(kind)} is not one of c, b, u, p")
        for key in ("major", "minor"):
            if key in d:
                _int(d[key], f"{f}.{key}", 0, U32)
            elif kind != "p":
                _fail(f"{f}.{key}", f"is required for a type {kind} device")
        if "fileMode" in d:
            _int(d["fileMode"], f + ".fileMode", 0, 0o7777)
        if "uid" in d:
            _id(d["uid"], f + ".uid")
        if "gid" in d:
            _id(d["gid"], f + ".gid")


def _check_propagation(v, field):
    if type(v) is not str or v not in PROPAGATIONS:
        _fail(field, f"{_show(v)} is not one of {', '.join(PROPAGATIONS[1:])} (or empty)")


IDMAP_OPTIONS = frozenset(("idmap", "ridmap"))


def _check_idmapped_mounts(spec, ns):
    """mounts[i] with idmap/ridmap or its own uid/gid mappings: checked by
    validate_extra.py, imported only when a mount is one."""
    for m in spec.get("mounts") or ():
        if "uidMappings" in m or "gidMappings" in m or not IDMAP_OPTIONS.isdisjoint(
                m.get("options") or ()):
            from ocirun.config import validate_extra
            validate_extra.check_idmapped_mounts(spec, ns)
            return


def _check_mount_extensions(spec):
    """The options the runtime interprets itself (tables.EXTENSIONS) where they apply."""
    for i, m in enumerate(spec.get("mounts") or ()):
        for j, o in enumerate(m.get("options") or ()):
            f = f"mounts[{i}].options[{j}]"
            if o in UNSUPPORTED_OPTIONS:
                _fail(f, f"{o} is not supported")
            if o.startswith(("idmap=", "ridmap=")):
                _fail(f, f"{_q(o)}: a mapping in the option is not supported; give the "
                         f"mount uidMappings and gidMappings")
            if o in ("tmpcopyup", "notmpcopyup") and m.get("type") != "tmpfs":
                _fail(f, f"{o} applies to a tmpfs mount only")
            if o == "copy-symlink" and m.get("type") != "bind" and not any(
                    x in ("bind", "rbind") for x in m.get("options") or ()):
                _fail(f, "copy-symlink applies to a bind mount only")


# checked by validate_extra.py (imported only then)
_LINUX_EXTRA = frozenset(("personality", "memoryPolicy", "netDevices", "intelRdt"))


def _check_linux(linux, spec, check_host):
    """Check spec["linux"] and the rules that tie it to the rest of the document."""
    field = "linux"
    _obj(linux, field)
    ns = {}
    if "namespaces" in linux:
        ns = _check_namespaces(linux["namespaces"], "linux.namespaces", check_host)

    for key, value in linux.items():
        f = f"{field}.{key}"
        if key in ("namespaces", "uidMappings", "gidMappings", "sysctl", "timeOffsets"):
            continue  # cross-checked below
        if key in ("maskedPaths", "readonlyPaths"):
            for i, p in enumerate(_kstrlist(value, f)):
                if p[:1] != "/":
                    _fail(f"{f}[{i}]", f"{_q(p)} must be an absolute path")
            if value:
                _need_ns(ns, "mount", f, key, check_host)
        elif key == "devices":
            _check_devices(value, f)
        elif key == "rootfsPropagation":
            _check_propagation(value, f)
        elif key in ("mountLabel", "cgroupsPath"):
            _kstr(value, f)
        elif key in ("seccomp", "resources"):
            _obj(value, f)  # deep checks belong to their own packages
        elif key in _LINUX_EXTRA:
            from ocirun.config import validate_extra
            validate_extra.LINUX_KEYS[key](value, f)

    # User namespaces (docs/security.md class I): without one and without mappings,
    # nothing to check.
    if "user" in ns or "uidMappings" in linux or "gidMappings" in linux:
        from ocirun.config import validate_extra
        validate_extra.check_user_mappings(linux, ns, spec["process"].get("user"))

    if linux.get("netDevices"):
        _need_ns(ns, "network", "linux.netDevices", "moving network devices", check_host,
                 fresh=True)
    if "timeOffsets" in linux:
        from ocirun.config import validate_extra
        validate_extra.check_time_offsets(linux["timeOffsets"], "linux.timeOffsets")
        # Offsets can only be written before the first process enters a new time namespace.
        _need_ns(ns, "time", "linux.timeOffsets", "timeOffsets", check_host, fresh=True)
    if "sysctl" in linux:
        _check_sysctl(linux["sysctl"], "linux.sysctl", ns, check_host)
    return ns


# --- the document -----------------------------------------------------------------------

def _check_version(v):
    if type(v) is not str:
        _want(v, "a string", "ociVersion")
    core = v
    for sep in ("-", "+"):
        cut = core.find(sep)
        if cut >= 0:
            core = core[:cut]
    parts = core.split(".")
    if (len(parts) != 3 or not core.isascii()
            or not all(p.isdigit() for p in parts)):
        _fail("ociVersion", f"{_q(v)} is not a version of the form 1.x.y")
    if parts[0] != "1":
        _fail("ociVersion", f"{_q(v)} is not supported (only runtime-spec 1.x)")


def _check_hostname(v, field):
    _kstr(v, field)
    if len(v.encode()) > HOST_NAME_MAX:
        _fail(field, f"{_q(v)} is longer than {HOST_NAME_MAX} bytes")


def validate(spec, *, check_host=True):
    """Raise ConfigError for the first problem in a decoded config.json, after removing
    its null optional keys in place (drop_nulls: later stages see the same document).

    check_host: also consult the host (namespace paths exist and have the declared type,
    joined namespaces are not ocirun's own). Off for `spec`-style offline checks and tests.
    """
    if type(spec) is not dict:
        _want(spec, "an object", "")
    drop_nulls(spec, CONFIG)
    _check_version(_get(spec, "ociVersion", ""))
    root = _obj(_get(spec, "root", ""), "root")
    path = _kstr(_get(root, "path", "root"), "root.path")
    if not path:
        _fail("root.path", "must not be empty")
    if "readonly" in root:
        _bool(root["readonly"], "root.readonly")
    _check_process(_get(spec, "process", ""), "process")
    for key in ("hostname", "domainname"):
        if key in spec:
            _check_hostname(spec[key], key)
    if "mounts" in spec:
        _check_mounts(spec["mounts"], "mounts")
    if "hooks" in spec:
        from ocirun.config import validate_extra
        validate_extra.check_hooks(spec["hooks"], "hooks")
    if "annotations" in spec:
        _str_map(spec["annotations"], "annotations")
    for key in ("solaris", "windows", "vm", "zos", "freebsd"):
        if key in spec:
            _obj(spec[key], key)

    ns = _check_linux(spec["linux"] if "linux" in spec else {}, spec, check_host)
    _check_idmapped_mounts(spec, ns)
    _check_mount_extensions(spec)
    for key in ("hostname", "domainname"):
        if spec.get(key):
            _need_ns(ns, "uts", key, f"setting the {key}", check_host)
