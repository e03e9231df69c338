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


# What a hostile image aims at on the host: the device nodes bound into containers (user
# namespaces, masked files) and the sysctls an escape writes first. Checked around every
# test, so that the one that changed them fails; a changed sysctl is put back at once.
_HOST_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
                 "/dev/tty")
_HOST_SYSCTLS = ("kernel/core_pattern", "kernel/hostname", "kernel/domainname",
                 "kernel/modprobe")


def _devices_now():
    out = {}
    for p in _HOST_DEVICES:
        try:
            st = os.stat(p)
        except OSError:
            continue
        out[p] = (st.st_uid, st.st_gid, oct(st.st_mode))
    return out


def _sysctls_now():
    out = {}
    for name in _HOST_SYSCTLS:
        try:
            with open(f"/proc/sys/{name}") as f:
                out[name] = f.read()
        except OSError:
            pass
    return out


@pytest.fixture(autouse=True)
def host_unchanged():
    devices, sysctls = _devices_now(), _sysctls_now()
    yield
    changed = {k: (v, w) for k, v in sysctls.items() if (w := _sysctls_now().get(k)) != v}
    for name, (was, _) in changed.items():
        with open(f"/proc/sys/{name}", "w") as f:
            f.write(was)
    assert not changed, f"host sysctls changed (put back): {changed}"
    assert _devices_now() == devices, \
        f"the host's device nodes changed (uid, gid, mode): {devices} -> {_devices_now()}"


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
