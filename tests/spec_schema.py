"""The runtime-spec JSON schema (shared/data/oci-runtime-spec-schema) as the tests read it:
every property path of config.json with whether the schema requires it, and the shape
of the document (which objects have which required keys and object-valued children)
that ocirun.config.load.drop_nulls must follow.

Paths are tuples of keys; "[]" stands for any item of an array and "*" for any value
of a map (linux.netDevices, linux.resources.rdma)."""
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
