"""Fixtures for tests on this machine's real cgroup hierarchies (root only).

Every cgroup a test makes is named ocirun-test-<random> directly under each hierarchy's
root (the one cgroup2 hierarchy on a unified layout, every v1 one and the cgroup2 one
otherwise); the finalizer kills the processes in it (ours: only test children are ever added)
and removes it, whatever the test did. No other cgroup is ever written to."""
import os
import secrets
import signal

import pytest

ROOT = "/sys/fs/cgroup"


def _bases():
    """The hierarchies a cgroup of ours may be in, on the layout in use."""
    from layout import unified
    if unified():
        return [ROOT]
    out = []
    try:
        names = os.listdir(ROOT)
    except OSError:
        return out
    for n in names:
        p = os.path.join(ROOT, n)
        # name=systemd too: a container runtime makes its cgroup there as well (runc
        # does), and only our own ocirun-test-* directory is ever removed from it
        if os.path.isdir(p) and not os.path.islink(p):
            out.append(p)
    return out


def _cleanup(name):
    from ocirun.cgroups import common
    for base in _bases():
        d = os.path.join(base, name)
        if not os.path.isdir(d):
            continue
        for cur, _dirs, _files in os.walk(d):
            if common.exists(cur, "freezer.state"):
                common.write_file(cur, "freezer.state", "THAWED")
            if common.exists(cur, "cgroup.freeze"):
                common.write_file(cur, "cgroup.freeze", "0")
        for pid in common.procs_recursive(d):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        common.remove_tree(d)


@pytest.fixture
def cgname():
    if os.geteuid() != 0:
        pytest.skip("needs root: cgroup integration tests write to /sys/fs/cgroup")
    name = "ocirun-test-" + secrets.token_hex(4)
    yield name
    _cleanup(name)
    leftovers = [b for b in _bases() if os.path.exists(os.path.join(b, name))]
    assert not leftovers, f"cgroups left behind: {leftovers}"
