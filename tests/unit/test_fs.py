"""ocirun.fs: the path helpers the start-up path uses instead of os.path must agree
with os.path on every input (the tests may import os; the runtime's hot path may not)."""
import os
import posixpath
import random

import pytest

from ocirun import fs

PATHS = ["", "/", "//", "///", "/a/b/../c", "a/../..", "../a", "./a/./b/", "/..", "/a/..",
         "a//b", "//a/b", "///a/../b", "a/b/../../..", ".", "..", "/a/b/c/../../d/./e"]


def test_normpath_matches_posixpath():
    rnd = random.Random(7)
    cases = PATHS + ["".join(rnd.choice(["a", "b", "/", ".", ".."]) for _ in range(rnd.randint(0, 9)))
                     for _ in range(5000)]
    assert [c for c in cases if fs.normpath(c) != posixpath.normpath(c)] == []


@pytest.mark.parametrize("p", ["/a/b", "/a/b/", "a", "/", "a/b/c", "", "//x", "x/"])
def test_dirname_basename(p):
    assert fs.dirname(p) == posixpath.dirname(p)
    assert fs.basename(p) == posixpath.basename(p)


@pytest.mark.parametrize("args", [("/a", "b"), ("/a/", "b"), ("a", "/b"), ("", "x"),
                                  ("/r", ".cache", "seccomp"), ("/x", ""), ("a", "b", "/c", "d")])
def test_join(args):
    assert fs.join(*args) == posixpath.join(*args)


def test_abspath(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for p in ("x/../y", ".", "/etc/../tmp", "a//b/"):
        assert fs.abspath(p) == os.path.abspath(p)


def test_file_tests(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    (tmp_path / "l").symlink_to("d")
    (tmp_path / "dangling").symlink_to("nowhere")
    for name in ("f", "d", "l", "dangling", "missing"):
        p = str(tmp_path / name)
        assert (fs.exists(p), fs.isdir(p), fs.islink(p)) == \
            (os.path.exists(p), os.path.isdir(p), os.path.islink(p)), name
    assert not fs.exists("bad\0path") and not fs.isdir("bad\0path")


def test_realpath(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "l").symlink_to("d")
    p = str(tmp_path / "l" / ".." / "l")
    assert fs.realpath(p) == os.path.realpath(p, strict=True)
    with pytest.raises(OSError):
        fs.realpath(str(tmp_path / "missing"))


def test_makedirs(tmp_path):
    d = str(tmp_path / "a" / "b" / "c")
    fs.makedirs(d, 0o711)
    fs.makedirs(d, 0o711)  # exists: fine
    assert os.path.isdir(d) and os.stat(d).st_mode & 0o777 == 0o711 & ~_umask()
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError):
        fs.makedirs(str(tmp_path / "file"))


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_subdirs_parents_first(tmp_path):
    for d in ("a/b", "a/c/d", "e"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "a" / "file").write_text("")
    got = fs.subdirs(str(tmp_path))
    assert got[0] == str(tmp_path)
    assert sorted(got) == sorted(str(tmp_path / d) for d in ("", "a", "a/b", "a/c", "a/c/d", "e"))
    assert got.index(str(tmp_path / "a")) < got.index(str(tmp_path / "a/c/d"))
    assert fs.subdirs(str(tmp_path / "missing")) == [str(tmp_path / "missing")]


def test_getenv_and_fsencode(monkeypatch):
    monkeypatch.setenv("OCIRUN_FS_TEST", "v\u00e9")
    assert fs.getenv("OCIRUN_FS_TEST") == "v\u00e9"
    assert fs.getenv("OCIRUN_FS_TEST_UNSET", "dflt") == "dflt"
    assert fs.fsencode("a\udcff") == os.fsencode("a\udcff")


def test_read_bytes(tmp_path):
    big = tmp_path / "big"
    data = os.urandom(200_000)  # more than one read
    big.write_bytes(data)
    assert fs.read_bytes(str(big)) == data
    (tmp_path / "empty").write_bytes(b"")
    assert fs.read_bytes(str(tmp_path / "empty")) == b""
    assert fs.read_bytes("/proc/self/cgroup") == open("/proc/self/cgroup", "rb").read()
    with pytest.raises(FileNotFoundError):
        fs.read_bytes(str(tmp_path / "missing"))
