"""paths.mkdir_all's short way (only the last directory missing) and rootfs.components'
split without normalising, against what the full walk and fs.normpath give (the
recording kernel double, fake_kernel.py)."""
import errno
import itertools
import posix

import pytest

from fake_kernel import FakeKernel
from ocirun import fs
from ocirun.linux import paths
from ocirun.linux.rootfs import components

ROOT = "/bundle/rootfs"


def normalised(path):
    """components() as it was first written: every path through fs.normpath."""
    return tuple(fs.normpath("/" + path).strip("/").split("/")) if path.strip("/.") else ()


def test_components_as_normpath_gives_them():
    names = ["a", "b", ".", "..", "", "/", "//", "...", ".x", "x."]
    for n in range(1, 5):
        for t in itertools.product(names, repeat=n):
            for lead in ("", "/"):
                path = lead + "/".join(t)
                assert components(path) == normalised(path), path


def world():
    k = FakeKernel()
    k.add(f"{ROOT}/dev")
    return k, k.open(ROOT, posix.O_PATH | posix.O_DIRECTORY)


def mkdirs(k):
    return [c for c in k.calls if c[0] == "mkdir"]


def counting(k, name):
    """Count every call of k.`name`, failed ones too (the double logs successes)."""
    seen = []
    real = getattr(k, name)

    def call(*args, **kw):
        seen.append(args)
        return real(*args, **kw)
    setattr(k, name, call)
    return seen


def test_only_the_last_missing_is_one_mkdir_in_its_parent():
    k, root = world()
    opens, dups = counting(k, "openat2"), counting(k, "dup")
    fd = paths.mkdir_all(k, root, "/dev/pts")
    assert k.path(fd) == f"{ROOT}/dev/pts"
    assert k.nodes[f"{ROOT}/dev/pts"].kind == "dir"
    assert len(mkdirs(k)) == 1
    # the path (missing), its parent, the path made: no walk from the root
    assert [a[1] for a in opens] == ["dev/pts", "dev", "dev/pts"] and not dups


def test_missing_parents_are_walked_and_made():
    k, root = world()
    fd = paths.mkdir_all(k, root, "/a/b/c")
    assert k.path(fd) == f"{ROOT}/a/b/c"
    assert len(mkdirs(k)) == 3


def test_a_dangling_symlink_last_has_its_target_made_inside_the_rootfs():
    k, root = world()
    k.add(f"{ROOT}/dev/shm", "link", target="/run/shm")
    k.add(f"{ROOT}/run")
    fd = paths.mkdir_all(k, root, "/dev/shm")
    assert k.path(fd) == f"{ROOT}/run/shm"
    assert "/run/shm" not in k.nodes


def test_a_symlink_last_is_refused_without_symlinks():
    k, root = world()
    k.add(f"{ROOT}/dev/mqueue", "link", target="/tmp/q")
    with pytest.raises(OSError) as ei:
        paths.mkdir_all(k, root, "/dev/mqueue/x", resolve=paths.RESOLVE_ROOT
                        | paths.RESOLVE_NO_SYMLINKS)
    assert ei.value.errno == errno.ELOOP
    assert ei.value.filename == "/dev/mqueue"


def test_dotdot_is_refused_as_before():
    k, root = world()
    with pytest.raises(OSError) as ei:
        paths.mkdir_all(k, root, "/dev/../x")
    assert ei.value.errno == errno.EINVAL
