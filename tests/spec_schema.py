"""The runtime-spec JSON schema (shared/data/oci-runtime-spec-schema) as the tests read it:
every property path of config.json with whether the schema requires it, and the shape
of the document (which objects have which required keys and object-valued children)
that ocirun.config.nulls.drop_nulls must follow.

Paths are tuples of keys; "[]" stands for any item of an array and "*" for any value
of a map (linux.netDevices, linux.resources.rdma)."""
import copy
import json
import os

from support import SHARED

SCHEMA_DIR = os.path.join(SHARED, "data", "oci-runtime-spec-schema")
ITEM = "[]"
VALUE = "*"


class Schema:
    def __init__(self, directory=SCHEMA_DIR):
        self.dir = directory
        self.files = {}

    def file(self, name):
        if name not in self.files:
            with open(os.path.join(self.dir, name)) as f:
                self.files[name] = json.load(f)
        return self.files[name]

    def resolve(self, node, here):
        """(node, file) with $ref, allOf and single-branch anyOf folded in: one dict
        holding type, properties, required, items, additionalProperties."""
        out = {}
        required = []
        props = {}
        for part, where in self._parts(node, here):
            for k, v in part.items():
                if k == "properties":
                    props.update({p: (s, where) for p, s in v.items()})
                elif k == "required":
                    required += v
                elif k not in ("$ref", "allOf", "anyOf", "description"):
                    out[k] = (v, where)
        return out, props, required

    def _parts(self, node, here):
        yield node, here
        if "$ref" in node:
            target, where = self.ref(node["$ref"], here)
            yield from self._parts(target, where)
        for key in ("allOf", "anyOf"):
            for sub in node.get(key, ()):
                yield from self._parts(sub, here)

    def ref(self, ref, here):
        name, _, pointer = ref.partition("#")
        name = name or here
        node = self.file(name)
        for part in pointer.strip("/").split("/"):
            if part:
                node = node[part]
        return node, name

    def root(self):
        return self.file("config-schema.json"), "config-schema.json"


def _children(schema, node, here):
    """(kind, child node, file) where a node holds objects below it: "item" for an
    array's items, "value" for a map's values, None otherwise."""
    out, props, required = schema.resolve(node, here)
    if "items" in out:
        items, where = out["items"]
        return "item", items, where
    if "additionalProperties" in out and isinstance(out["additionalProperties"][0], dict):
        value, where = out["additionalProperties"]
        return "value", value, where
    return None, None, None


def property_paths(schema=None):
    """[(path, required, node, file)] for every property of config.json, depth first."""
    schema = schema or Schema()
    found = []

    def walk(node, here, path, seen):
        out, props, required = schema.resolve(node, here)
        for name, (child, where) in props.items():
            p = path + (name,)
            found.append((p, name in required, child, where))
            walk(child, where, p, seen)
        kind, child, where = _children(schema, node, here)
        if kind is not None:
            walk(child, where, path + (ITEM if kind == "item" else VALUE,), seen)

    node, here = schema.root()
    walk(node, here, (), set())
    return found


def shape(node=None, here=None, schema=None):
    """The drop_nulls shape of a schema node: (required keys, ((key, kind, shape), ...))
    for an object with properties, kinds "o" (object), "a" (array of objects) and "m"
    (map of objects); None for anything that holds no object with properties."""
    schema = schema or Schema()
    if node is None:
        node, here = schema.root()
    out, props, required = schema.resolve(node, here)
    if not props:
        return None
    kids = []
    for name, (child, where) in props.items():
        sub = _holder(schema, child, where)
        if sub is not None:
            kids.append((name,) + sub)
    return (tuple(sorted(set(required))), tuple(sorted(kids)))


def _holder(schema, node, here):
    """(kind, shape) for a property whose value is, or holds, objects with properties."""
    s = shape(node, here, schema)
    if s is not None:
        return ("o", s)
    kind, child, where = _children(schema, node, here)
    if kind is None:
        return None
    s = shape(child, where, schema)
    if s is None:
        return None
    return ("a" if kind == "item" else "m", s)


def subshape(whole, path):
    """The shape at a path of property names below a shape (no [] or * in `path`)."""
    s = whole
    for key in path:
        for k, kind, sub in s[1]:
            if k == key:
                s = sub
                break
        else:
            raise KeyError(key)
    return s


# --- documents that hold a given path ------------------------------------------------------

BLOCK = sorted(os.listdir("/sys/dev/block"))[0] if os.path.isdir("/sys/dev/block") else "8:0"
MAJOR, MINOR = (int(x) for x in BLOCK.split(":"))
MAPPING = {"containerID": 0, "hostID": 100000, "size": 65536}

# What an object or array item of the schema holds when a test has to create it: the
# required keys with values ocirun accepts (and paths the probe can see). Anything not
# named here is created empty; make() checks that a created object has its required keys.
SAMPLES = {
    "mounts.[]": {"destination": "/mnt", "type": "tmpfs", "source": "tmpfs"},
    "mounts.[].uidMappings.[]": MAPPING,
    "mounts.[].gidMappings.[]": MAPPING,
    "process.consoleSize": {"height": 24, "width": 80},
    "process.ioPriority": {"class": "IOPRIO_CLASS_BE"},
    "process.scheduler": {"policy": "SCHED_OTHER"},
    "process.rlimits.[]": {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
    "linux.devices.[]": {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
    "linux.uidMappings.[]": MAPPING,
    "linux.gidMappings.[]": MAPPING,
    "linux.namespaces.[]": {"type": "pid"},
    "linux.resources.devices.[]": {"allow": True, "type": "c", "major": 1, "minor": 3},
    "linux.resources.pids": {"limit": 100},
    "linux.resources.hugepageLimits.[]": {"pageSize": "2MB", "limit": 0},
    "linux.resources.network.priorities.[]": {"name": "lo", "priority": 1},
    "linux.seccomp": {"defaultAction": "SCMP_ACT_ALLOW"},
    "linux.seccomp.syscalls.[]": {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
    "linux.seccomp.syscalls.[].args.[]": {"index": 0, "value": 0, "op": "SCMP_CMP_NE"},
    "windows": {"layerFolders": ["C:\\layers"]},
    "windows.devices.[]": {"id": "x", "idType": "class"},
    "vm": {"kernel": {"path": "/vmlinuz"}},
    "vm.kernel": {"path": "/vmlinuz"},
    "vm.hypervisor": {"path": "/hv"},
    "vm.image": {"path": "/img", "format": "raw"},
    "vm.hwConfig.iomems.[]": {"firstMFN": 0, "nrMFNs": 1},
    "zos.namespaces.[]": {"type": "pid"},
}
for _kind in ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop"):
    SAMPLES[f"hooks.{_kind}.[]"] = {"path": "/bin/true"}
for _name in ("throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice",
              "throttleWriteIOPSDevice", "weightDevice"):
    SAMPLES[f"linux.resources.blockIO.{_name}.[]"] = {"major": MAJOR, "minor": MINOR}


def dotted(path):
    return ".".join(path)


def field(path):
    """The path as ocirun's messages spell it: item 0 of an array, key "k" of a map."""
    out = ""
    for part in path:
        if part == ITEM:
            out += "[0]"
        elif part == VALUE:
            out += '["k"]'
        else:
            out = f"{out}.{part}" if out else part
    return out


def make(doc, path, check=True):
    """The container of the last key of `path` in `doc`, created (with SAMPLES) along the
    way; item 0 of arrays, key "k" of maps. Returns (container, last key). `check`: every
    object on the way must hold the keys the schema requires."""
    node = doc
    for i, part in enumerate(path[:-1]):
        nxt = path[i + 1]
        want = [] if nxt == ITEM else {}
        sample_key = dotted(path[:i + 1])
        if part == ITEM:
            if not node:
                node.append(copy.deepcopy(SAMPLES.get(sample_key, want)))
            node = node[0]
        elif part == VALUE:
            node = node.setdefault("k", copy.deepcopy(SAMPLES.get(sample_key, want)))
        else:
            if not isinstance(node.get(part), (dict, list)):
                node[part] = copy.deepcopy(SAMPLES.get(sample_key, want))
            node = node[part]
        required = {p[-1] for p in REQUIRED_BY_SCHEMA if p[:-1] == path[:i + 1]}
        if check and isinstance(node, dict) and not required <= set(node):
            raise AssertionError(f"SAMPLES has no {sample_key} with {sorted(required)}")
    return node, path[-1]


def context(doc, path):
    """What else a path needs to run on this host: a time namespace for time offsets."""
    if path[:2] == ("linux", "timeOffsets"):
        doc["linux"]["namespaces"].append({"type": "time"})


def variants(path, base):
    """(config without the key, config with the key null)."""
    absent, null = copy.deepcopy(base), copy.deepcopy(base)
    node, key = make(absent, path)
    node.pop(key, None)
    context(absent, path)
    node, key = make(null, path)
    node[key] = None
    context(null, path)
    return absent, null


PATHS = property_paths(Schema())
REQUIRED_BY_SCHEMA = {p for p, req, _, _ in PATHS if req}
