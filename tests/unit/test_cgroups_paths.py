import pytest

import ocirun.cgroups as cg
from ocirun.errors import ConfigError, OciError


@pytest.mark.parametrize("value,expected", [
    (None, "/ocirun/c1"), ("", "/ocirun/c1"), ("/a/b", "/a/b"), ("a/b", "/a/b"),
    ("//a/./b/", "/a/b"), ("/machine.slice/x", "/machine.slice/x"),
])
def test_clean_path(value, expected):
    assert cg.clean_path(value, "c1") == expected


@pytest.mark.parametrize("value", ["/a/../b", "..", "../x", "/", "", "a\0b", 5, "./."])
def test_clean_path_rejects(value):
    cid = "c1" if value != "" else "../x"
    with pytest.raises(ConfigError) as ei:
        cg.clean_path(value, cid)
    assert ei.value.field == "linux.cgroupsPath"


def test_open_manager_kinds(tmp_path):
    with pytest.raises(OciError, match="unknown cgroup manager"):
        cg.open_manager("cgmanager", "/x", "c1")
    # --cgroup-manager=disabled opens no manager (lifecycle/create.py): none is known here
    with pytest.raises(OciError, match="unknown cgroup manager"):
        cg.open_manager("disabled", "/x", "c1")


def test_systemd_unavailable(tmp_path):
    from ocirun.cgroups import systemd
    with pytest.raises(OciError, match="systemd cgroup manager: systemd is not running"):
        systemd.check_available(str(tmp_path / "nope"))


def test_systemd_form_is_a_relative_path_for_cgroupfs(tmp_path):
    """containerd sends `slice:prefix:name` in some CRI set-ups: runc's cgroupfs driver
    takes it as a path of one component, and so do we."""
    m = cg.open_manager("cgroupfs", "system.slice:ocirun:c1", "c1", root=str(tmp_path),
                        mode="unified")
    assert m.path == "/system.slice:ocirun:c1"


def test_open_manager_validates_before_anything_exists(tmp_path):
    (tmp_path / "memory").mkdir()
    with pytest.raises(ConfigError) as ei:
        cg.open_manager("cgroupfs", "/ocirun-test/x", "x", root=str(tmp_path), mode="v1",
                        resources={"memory": {"limit": "lots"}})
    assert ei.value.field == "linux.resources.memory.limit"
    assert not (tmp_path / "memory" / "ocirun-test").exists()


def test_from_dict_garbage():
    for d in (None, [], {}, {"version": 2}, {"version": 1, "kind": "cgroupfs", "mode": "v1"},
              {"version": 1, "kind": "cgroupfs", "mode": "unified", "root": 3, "path": "/a"}):
        with pytest.raises(OciError):
            cg.from_dict(d)


def test_import_is_cheap():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-I", "-S", "-c",
                          "import sys, os; sys.path.insert(0, %r); before = set(sys.modules);"
                          "import ocirun.cgroups; print(sorted(set(sys.modules) - before))"
                          % __file__.rsplit("/tests/", 1)[0]],
                         capture_output=True, text=True, check=True).stdout
    mods = eval(out)
    assert mods == ["ocirun", "ocirun.cgroups", "ocirun.fs"], mods
