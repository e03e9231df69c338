"""drop_nulls (ocirun.config.nulls): null means absent for optional fields, one error
for required ones; its table of shapes is the runtime-spec schema's."""
import copy

import pytest

from ocirun.config import nulls as v
from ocirun.config import validate
from ocirun.errors import ConfigError
from spec_schema import ITEM, VALUE, Schema, field, property_paths, shape, subshape


def canonical(s):
    """A shape with its keys and children sorted, for comparison."""
    required, kids = s
    return (tuple(sorted(required)), tuple(sorted((k, kind, canonical(sub))
                                                  for k, kind, sub in kids)))


def test_config_shape_is_the_schemas():
    want = shape(schema=Schema())
    assert canonical(v.CONFIG) == canonical(want)


def test_named_shapes_are_parts_of_the_config():
    assert v.PROCESS is subshape(v.CONFIG, ["process"])
    assert v.RESOURCES is subshape(v.CONFIG, ["linux", "resources"])
    assert v.SECCOMP is subshape(v.CONFIG, ["linux", "seccomp"])


def skeleton(path, fill):
    """A document holding `path` (item 0 of arrays, key "k" of maps), every object on the
    way with its required keys set to `fill`."""
    required = {p for p, req, _, _ in PATHS if req}
    doc = {}
    node = doc
    for i, part in enumerate(path):
        here = path[:i + 1]
        last = i == len(path) - 1
        nxt = None if last else ([] if path[i + 1] == ITEM else {})
        key = 0 if part == ITEM else ("k" if part == VALUE else part)
        if isinstance(node, list):
            node.append(nxt)
        else:
            node[key] = nxt
        if not last:
            node = node[key]
            if isinstance(node, dict):
                for p in required:
                    if p[:-1] == here and p[-1] not in node:
                        node[p[-1]] = fill
    return doc


PATHS = property_paths(Schema())


@pytest.mark.parametrize("path,required", [(p, r) for p, r, _, _ in PATHS],
                         ids=[field(p) for p, _, _, _ in PATHS])
def test_every_schema_path(path, required):
    doc = skeleton(path, "x")
    absent = copy.deepcopy(doc)
    node = absent
    for part in path[:-1]:
        node = node[0] if part == ITEM else node["k" if part == VALUE else part]
    del node[path[-1]]
    if required:
        with pytest.raises(ConfigError) as e:
            v.drop_nulls(doc, v.CONFIG)
        assert str(e.value) == f"{field(path)}: must not be null"
    else:
        assert v.drop_nulls(doc, v.CONFIG) == absent


def test_field_prefix_and_map_keys():
    with pytest.raises(ConfigError) as e:
        v.drop_nulls({"args": ["sh"], "cwd": None}, v.PROCESS, "process.json")
    assert str(e.value) == "process.json.cwd: must not be null"
    with pytest.raises(ConfigError) as e:
        v.drop_nulls({"devices": [{"allow": True}, {"allow": None}]}, v.RESOURCES,
                     "linux.resources")
    assert str(e.value) == "linux.resources.devices[1].allow: must not be null"
    with pytest.raises(ConfigError) as e:
        v.drop_nulls({"defaultAction": "SCMP_ACT_ALLOW",
                      "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW",
                                    "args": [{"index": 0, "value": 1, "op": None}]}]},
                     v.SECCOMP, "linux.seccomp")
    assert str(e.value) == "linux.seccomp.syscalls[0].args[0].op: must not be null"


def test_items_map_values_and_open_objects_keep_their_nulls():
    doc = {"ociVersion": "1.0.0", "annotations": {"a": None}, "process": {
        "cwd": "/", "args": [None], "env": None},
        "linux": {"sysctl": {"k": None}, "maskedPaths": [None], "resources": {
            "unified": {"memory.max": None}, "rdma": {"mlx": None, "x": {"hcaHandles": None}}}},
        "windows": {"layerFolders": ["l"], "credentialSpec": {"a": None}},
        "org.example": {"a": None}}
    v.drop_nulls(doc, v.CONFIG)
    assert doc == {"ociVersion": "1.0.0", "annotations": {"a": None}, "process": {
        "cwd": "/", "args": [None]},
        "linux": {"sysctl": {"k": None}, "maskedPaths": [None], "resources": {
            "unified": {"memory.max": None}, "rdma": {"mlx": None, "x": {}}}},
        "windows": {"layerFolders": ["l"], "credentialSpec": {"a": None}},
        "org.example": {"a": None}}


@pytest.mark.parametrize("junk", [None, True, 0, -1, 1 << 70, 1.5, "", "x", [], [None], [1],
                                  [[]], {}, {"a": None}])
def test_wrong_types_are_left_to_the_validators(junk):
    """drop_nulls never fails on a wrong type at any level: the validators name it."""
    for path, _, _, _ in PATHS:
        doc = skeleton(path, 1)
        node = doc
        for part in path[:-1]:
            node = node[0] if part == ITEM else node["k" if part == VALUE else part]
        node[path[-1]] = junk
        try:
            v.drop_nulls(doc, v.CONFIG)
        except ConfigError as e:
            assert junk is None and str(e).endswith("must not be null")
    assert v.drop_nulls(junk, v.CONFIG) is junk


def test_validate_drops_in_place():
    spec = {"ociVersion": "1.0.0", "root": {"path": "rootfs", "readonly": None},
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0, "umask": None},
                        "capabilities": None},
            "hostname": None,
            "linux": {"namespaces": [{"type": "mount", "path": None}],
                      "resources": {"devices": None, "memory": {"limit": None}},
                      "maskedPaths": None, "seccomp": None}}
    validate.validate(spec, check_host=False)
    assert spec == {"ociVersion": "1.0.0", "root": {"path": "rootfs"},
                    "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
                    "linux": {"namespaces": [{"type": "mount"}],
                              "resources": {"memory": {}}}}


def test_validate_process_drops_nulls():
    proc = {"args": ["sh"], "cwd": "/", "env": None, "user": {"uid": 1, "gid": 1,
                                                               "additionalGids": None}}
    validate.validate_process(proc)
    assert proc == {"args": ["sh"], "cwd": "/", "user": {"uid": 1, "gid": 1}}
    with pytest.raises(ConfigError) as e:
        validate.validate_process({"args": ["sh"], "cwd": "/", "user": {"uid": None, "gid": 0}})
    assert str(e.value) == "process.user.uid: is required"  # ocirun's rule, not the schema's


def test_state_file_nulls_are_absent(tmp_path):
    """state.json (ocirun's own record) is read by the same rule: a null field keeps the
    default a missing one gets."""
    from ocirun.state import STATE_FILE, load
    d = tmp_path / "c1"
    d.mkdir()
    (d / STATE_FILE).write_text(
        '{"id": "c1", "pid": 0, "bundle": "/b", "annotations": null, "namespaces": null,'
        ' "cgroup": null, "config_hooks": null, "started": null}')
    st = load(str(tmp_path), "c1")
    assert (st.bundle, st.annotations, st.namespaces, st.cgroup) == ("/b", {}, [], None)
