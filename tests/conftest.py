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


# The host's device nodes are bound into containers (user namespaces, masked files):
# a test after which one of them has another owner or mode changed the host. Checked
# around every test, so that the one that did it fails.
_HOST_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
                 "/dev/tty")


def _devices_now():
    out = {}
    for p in _HOST_DEVICES:
        try:
            st = os.stat(p)
        except OSError:
            continue
        out[p] = (st.st_uid, st.st_gid, oct(st.st_mode))
    return out


@pytest.fixture(autouse=True)
def host_devices_unchanged():
    before = _devices_now()
    yield
    after = _devices_now()
    assert after == before, f"the host's device nodes changed (uid, gid, mode): {before} -> {after}"


def pytest_terminal_summary(terminalreporter):
    """The rootless cases side by side (tests/integration/test_rootless.py)."""
    from rootless_support import RESULTS
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section("rootless: runc and ocirun, same user, same session")
    tr.write_line("| case | runc rootless | ocirun rootless |")
    tr.write_line("|---|---|---|")
    for case, got in RESULTS.items():
        cells = [got.get(rt, "-").replace("|", "/") for rt in ("runc", "ocirun")]
        tr.write_line(f"| {case} | {cells[0]} | {cells[1]} |")
