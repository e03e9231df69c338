"""Shared fixtures: a busybox bundle and a private --root per test."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from support import OCIRUN, REPO, SHARED, Bundle, make_rootfs, need_root  # noqa: E402


def pytest_report_header(config):
    return [f"ocirun: {OCIRUN}", f"shared: {SHARED}", f"uid: {os.getuid()}"]


@pytest.fixture(scope="session")
def rootfs_template(tmp_path_factory):
    need_root()
    path = str(tmp_path_factory.mktemp("tmpl") / "rootfs")
    make_rootfs(path)
    return path


@pytest.fixture
def bundle(tmp_path, rootfs_template):
    b = Bundle(str(tmp_path / "bundle"), str(tmp_path / "state"), rootfs_template)
    yield b
    b.cleanup()
    leftover = os.listdir(b.root) if os.path.isdir(b.root) else []
    leftover = [n for n in leftover if not n.startswith(".")]
    assert not leftover, f"state left behind: {leftover}"
    # the containers' default cgroups, in every hierarchy of the layout in use
    from layout import leftovers
    cgroups = {cid: leftovers(f"/ocirun/{cid}") for cid in b.ids}
    cgroups = {cid: h for cid, h in cgroups.items() if h}
    assert not cgroups, f"cgroups left behind: {cgroups}"
