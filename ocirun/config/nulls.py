"""JSON null means absent (runc and crun read it so) in the runtime-spec documents:
drop_nulls() and the schema shapes it walks.

runc (Go's decoder) and crun read a JSON null as "not set" for every optional field of the
runtime-spec documents, and configs written by other tools contain such nulls. ocirun reads
them the same way, once, before anything else looks at the document: drop_nulls() removes
every null-valued key from the objects the runtime-spec schema describes, except the keys the
schema requires, whose null is one error naming the field. Array items and map values are
values, not fields: a null there stays, and the validators refuse it as a wrong type.

A shape is (required keys, children); a child is (key, kind, shape) for a key whose value is
an object ("o"), an array of objects ("a") or a map of objects ("m"). Objects the schema
leaves open (annotations, sysctl, unified, credentialSpec) are not walked. The table follows
shared/data/oci-runtime-spec-schema; tests/unit/test_drop_nulls.py derives it from the schema
and compares.
"""
from ocirun.errors import ConfigError

_IDMAP = (("containerID", "hostID", "size"), ())
_HOOKS = (("path",), ())
_DEVNUM = (("major", "minor"), ())
_OPEN = ((), ())

PROCESS = (("cwd",), (
    ("capabilities", "o", _OPEN),
    ("consoleSize", "o", (("height", "width"), ())),
    ("execCPUAffinity", "o", _OPEN),
    ("ioPriority", "o", (("class",), ())),
    ("rlimits", "a", (("hard", "soft", "type"), ())),
    ("scheduler", "o", (("policy",), ())),
    ("user", "o", _OPEN),
))
RESOURCES = ((), (
    ("blockIO", "o", ((), (
        ("throttleReadBpsDevice", "a", _DEVNUM),
        ("throttleReadIOPSDevice", "a", _DEVNUM),
        ("throttleWriteBpsDevice", "a", _DEVNUM),
        ("throttleWriteIOPSDevice", "a", _DEVNUM),
        ("weightDevice", "a", _DEVNUM),
    ))),
    ("cpu", "o", _OPEN),
    ("devices", "a", (("allow",), ())),
    ("hugepageLimits", "a", (("limit", "pageSize"), ())),
    ("memory", "o", _OPEN),
    ("network", "o", ((), (("priorities", "a", (("name", "priority"), ())),))),
    ("pids", "o", (("limit",), ())),
    ("rdma", "m", _OPEN),
))
SECCOMP = (("defaultAction",), (
    ("syscalls", "a", (("action", "names"), (
        ("args", "a", (("index", "op", "value"), ())),
    ))),
))
_LINUX = ((), (
    ("devices", "a", (("path", "type"), ())),
    ("gidMappings", "a", _IDMAP),
    ("intelRdt", "o", _OPEN),
    ("memoryPolicy", "o", _OPEN),
    ("namespaces", "a", (("type",), ())),
    ("netDevices", "m", _OPEN),
    ("personality", "o", _OPEN),
    ("resources", "o", RESOURCES),
    ("seccomp", "o", SECCOMP),
    ("timeOffsets", "o", ((), (("boottime", "o", _OPEN), ("monotonic", "o", _OPEN)))),
    ("uidMappings", "a", _IDMAP),
))
CONFIG = (("ociVersion",), (
    ("freebsd", "o", ((), (
        ("devices", "a", _OPEN),
        ("jail", "o", ((), (("allow", "o", _OPEN),))),
    ))),
    ("hooks", "o", ((), (
        ("createContainer", "a", _HOOKS), ("createRuntime", "a", _HOOKS),
        ("poststart", "a", _HOOKS), ("poststop", "a", _HOOKS),
        ("prestart", "a", _HOOKS), ("startContainer", "a", _HOOKS),
    ))),
    ("linux", "o", _LINUX),
    ("mounts", "a", (("destination",), (("gidMappings", "a", _IDMAP),
                                        ("uidMappings", "a", _IDMAP)))),
    ("process", "o", PROCESS),
    ("root", "o", (("path",), ())),
    ("solaris", "o", ((), (
        ("anet", "a", _OPEN), ("cappedCPU", "o", _OPEN), ("cappedMemory", "o", _OPEN),
    ))),
    ("vm", "o", (("kernel",), (
        ("hwConfig", "o", ((), (("iomems", "a", (("firstMFN", "nrMFNs"), ())),))),
        ("hypervisor", "o", (("path",), ())),
        ("image", "o", (("format", "path"), ())),
        ("kernel", "o", (("path",), ())),
    ))),
    ("windows", "o", (("layerFolders",), (
        ("devices", "a", (("id", "idType"), ())),
        ("hyperv", "o", _OPEN),
        ("network", "o", _OPEN),
        ("resources", "o", ((), (
            ("cpu", "o", ((), (("affinity", "o", _OPEN),))),
            ("memory", "o", _OPEN),
            ("storage", "o", _OPEN),
        ))),
    ))),
    ("zos", "o", ((), (("namespaces", "a", (("type",), ())),))),
))


class _NullRequired(Exception):
    """A required key holds null; args: the path from the object drop_nulls was given."""


def drop_nulls(doc, shape, field=""):
    """Remove, in place, every null-valued optional key of `doc` (a decoded document of the
    given shape: CONFIG, PROCESS, RESOURCES or SECCOMP) and of the objects below it; a
    required key that is null raises ConfigError naming it (`field` prefixes the path).
    Anything that is not of the type the schema gives is left for the validators."""
    if type(doc) is dict:
        try:
            _drop(doc, shape)
        except _NullRequired as e:
            path = field
            for part in e.args:
                if type(part) is int:
                    path += f"[{part}]"
                elif type(part) is tuple:  # a map's key
                    k = part[0]
                    path += (f'["{k}"]' if type(k) is str and '"' not in k and k.isprintable()
                             else f"[{k!r}]")
                else:
                    path = f"{path}.{part}" if path else part
            raise ConfigError(path, "must not be null") from None
    return doc


def _drop(d, shape):
    required, kids = shape
    if None in d.values():
        for k in [k for k, v in d.items() if v is None]:
            if k in required:
                raise _NullRequired(k)
            del d[k]
    for key, kind, sub in kids:
        v = d.get(key)
        if v is None:
            continue
        deep = sub[1]  # objects below: walk them; else only an object holding a null
        if kind == "o":
            if type(v) is dict and (deep or None in v.values()):
                try:
                    _drop(v, sub)
                except _NullRequired as e:
                    e.args = (key,) + e.args
                    raise
        elif kind == "a":
            if type(v) is list:
                i = 0
                for x in v:
                    if type(x) is dict and (deep or None in x.values()):
                        try:
                            _drop(x, sub)
                        except _NullRequired as e:
                            e.args = (key, i) + e.args
                            raise
                    i += 1
        elif type(v) is dict:
            for name, x in v.items():
                if type(x) is dict and (deep or None in x.values()):
                    try:
                        _drop(x, sub)
                    except _NullRequired as e:
                        e.args = (key, (name,)) + e.args
                        raise
