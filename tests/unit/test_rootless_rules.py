"""The pure parts of rootless (lifecycle/rootless.py, the locked flags of linux/rootfs.py,
the default --root): the real thing runs in tests/integration/test_rootless.py."""
import os

import pytest

from ocirun.errors import ConfigError, UsageError
from ocirun.kernel import (
    MOUNT_ATTR__ATIME, MOUNT_ATTR_NOATIME, MOUNT_ATTR_NODEV, MOUNT_ATTR_NODIRATIME,
    MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY, MOUNT_ATTR_STRICTATIME,
)
from ocirun.lifecycle import rootless
from ocirun.linux.rootfs import keep_locked

ST_RDONLY, ST_NOSUID, ST_NODEV, ST_NOEXEC = 1, 2, 4, 8
ST_NOATIME, ST_NODIRATIME, ST_RELATIME = 1024, 2048, 4096


def test_locked_flags_stay_set():
    # rw, suid, dev, exec asked of a ro,nosuid,nodev,noexec source
    clear = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC
    s, c = keep_locked(ST_RDONLY | ST_NOSUID | ST_NODEV | ST_NOEXEC | ST_RELATIME, 0, clear)
    assert s == clear and c == 0


def test_what_the_source_lacks_is_still_set():
    s, c = keep_locked(ST_NOSUID | ST_RELATIME, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV, 0)
    assert s == MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID and c == 0


@pytest.mark.parametrize("f_flag,mode", [
    (ST_NOATIME, MOUNT_ATTR_NOATIME), (ST_RELATIME, 0), (0, MOUNT_ATTR_STRICTATIME),
    (ST_RELATIME | ST_NODIRATIME, MOUNT_ATTR_NODIRATIME)])
def test_an_atime_change_becomes_the_source_mode(f_flag, mode):
    # strictatime asked: the atime field is locked, the source's own mode is kept
    s, c = keep_locked(f_flag, MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME)
    assert s == mode
    assert c == MOUNT_ATTR__ATIME | MOUNT_ATTR_NODIRATIME


def test_no_atime_change_no_atime_field():
    s, c = keep_locked(ST_NOATIME, MOUNT_ATTR_NOSUID, 0)
    assert s == MOUNT_ATTR_NOSUID and c == 0


@pytest.mark.parametrize("resources,field", [
    ({}, None),
    ({"devices": [{"allow": False, "access": "rwm"}]}, None),
    ({"memory": {}, "cpu": {}}, None),
    ({"memory": {"limit": 1 << 20}}, "linux.resources.memory.limit"),
    ({"pids": {"limit": 10}}, "linux.resources.pids.limit"),
    ({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}, "linux.resources.hugepageLimits"),
    ({"unified": {"memory.max": "1G"}}, "linux.resources.unified.memory.max"),
    ({"blockIO": {"weightDevice": []}, "cpu": {"shares": 2}}, "linux.resources.cpu.shares"),
])
def test_first_limit(resources, field):
    assert rootless.first_limit(resources) == field


def test_own_id_only():
    assert rootless._own_id_only([{"containerID": 0, "hostID": 1000, "size": 1}], 1000)
    assert not rootless._own_id_only([{"containerID": 0, "hostID": 1000, "size": 2}], 1000)
    assert not rootless._own_id_only([{"containerID": 0, "hostID": 1000, "size": 1},
                                      {"containerID": 1, "hostID": 100000, "size": 10}], 1000)


def test_subordinate_ranges(tmp_path, monkeypatch):
    import pwd
    name = pwd.getpwuid(os.geteuid()).pw_name
    text = f"other:100000:65536\n{name}:200000:65536\n{os.geteuid()}:300000:10\nbad line\n"
    real = rootless.fs.read_bytes
    monkeypatch.setattr(rootless.fs, "read_bytes",
                        lambda p: text.encode() if p == "/etc/subuid" else real(p))
    assert rootless.subordinate_ranges("uid") == [(200000, 65536), (300000, 10)]


def test_default_root(monkeypatch):
    monkeypatch.setattr(rootless.posix, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000/")
    assert rootless.default_root() == "/run/user/1000/ocirun"
    monkeypatch.setenv("XDG_RUNTIME_DIR", "relative")
    monkeypatch.setattr(rootless.posix, "stat", lambda p: (_ for _ in ()).throw(OSError(2, "x")))
    with pytest.raises(UsageError, match="XDG_RUNTIME_DIR"):
        rootless.default_root()


def test_delegated_path_needs_a_writable_parent(tmp_path, monkeypatch):
    """The container's cgroup goes below the parent of the runtime's own, where the
    caller may write; elsewhere: None (no cgroup)."""
    root = tmp_path / "cg"
    (root / "user" / "shell").mkdir(parents=True)
    (root / "user" / "cgroup.procs").write_text("")
    monkeypatch.setattr(rootless, "own_cgroup", lambda: "/user/shell")
    assert rootless.delegated_path(None, "c1", str(root)) == "/user/ocirun-c1"
    assert rootless.delegated_path("sub/x", "c1", str(root)) == "/user/sub/x"
    # an absolute path outside: its deepest existing directory is the root
    assert rootless.delegated_path("/elsewhere/x", "c1", str(root)) is None
    with pytest.raises(ConfigError):
        rootless.delegated_path("../x", "c1", str(root))
    if os.geteuid() != 0:  # root may write anywhere: the access checks say yes
        os.chmod(root / "user", 0o555)
        try:
            assert rootless.delegated_path(None, "c1", str(root)) is None
        finally:
            os.chmod(root / "user", 0o755)
