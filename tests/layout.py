"""The cgroup layout the suite runs on, for tests that look at cgroups.

Three layouts exist: `v1`, `hybrid` (v1 controllers under /sys/fs/cgroup/<controller>
plus a cgroup2 hierarchy at /sys/fs/cgroup/unified) and `unified` (pure cgroup v2 at
/sys/fs/cgroup, the default of stock Debian 12, Fedora and Ubuntu). `scripts/test.sh`
runs the suite on the host's layout, then again inside a private mount namespace whose
/sys/fs/cgroup is a fresh cgroup2 mount (`scripts/test-cgroup2.sh`). On a hybrid host
that cgroup2 hierarchy has only the controllers the v1 hierarchies do not hold, so a
test that needs one of the others skips there, naming the controller and the layout."""
import functools
import os

import pytest

CG = "/sys/fs/cgroup"


@functools.lru_cache(maxsize=None)
def layout():
    """"v1", "hybrid" or "unified" (the mount table does not change during a run)."""
    from ocirun.cgroups import detect
    return detect()


def unified():
    return layout() == "unified"


def cgroup2_root():
    """Where the cgroup2 hierarchy is mounted (None on a pure v1 layout)."""
    if unified():
        return CG
    return f"{CG}/unified" if os.path.exists(f"{CG}/unified/cgroup.controllers") else None


def hierarchies():
    """The directory of every hierarchy a container's cgroup is made in: /sys/fs/cgroup
    alone on a unified layout; each v1 hierarchy and the cgroup2 one otherwise (named
    v1 hierarchies such as name=systemd included: a leak there is a leak too)."""
    if unified():
        return [CG]
    out = []
    for n in sorted(os.listdir(CG)):
        p = os.path.join(CG, n)
        if os.path.isdir(p) and not os.path.islink(p):
            out.append(p)
    return out


def leftovers(path):
    """The hierarchies still holding the cgroup `path` (e.g. "/ocirun/ID"), on the layout
    in use: [] when it is gone from all of them."""
    path = "/" + path.strip("/")
    return [h for h in hierarchies() if os.path.isdir(h + path)]


@functools.lru_cache(maxsize=None)
def controllers():
    """The controllers a container's cgroup can have on this layout: on unified, what
    the root of the cgroup2 hierarchy offers; otherwise the v1 hierarchies mounted here
    (plus what the cgroup2 one of a hybrid layout offers)."""
    if unified():
        with open(f"{CG}/cgroup.controllers") as f:
            return frozenset(f.read().split())
    have = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            mnt = left.split()[4]
            fstype, _, opts = right.split()[:3]
            if fstype == "cgroup" and mnt.startswith(CG + "/"):
                have.update(o for o in opts.split(",") if o in V1_CONTROLLERS)
    if os.path.exists(f"{CG}/unified/cgroup.controllers"):
        with open(f"{CG}/unified/cgroup.controllers") as f:
            have.update(f.read().split())
    return frozenset(have)


V1_CONTROLLERS = {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls",
                  "blkio", "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc"}


def need(*names, why=""):
    """Skip unless every controller of `names` is available on this layout."""
    __tracebackhide__ = True  # the skip is reported at the test's line
    missing = [n for n in names if n not in controllers()]
    if missing:
        which = f"the {', '.join(missing)} controller" + ("s" if len(missing) > 1 else "")
        pytest.skip(f"needs {which}{why}, not available on this {layout()} cgroup layout "
                    f"(available: {' '.join(sorted(controllers())) or 'none'})")


def need_v1(why):
    """Skip on a unified layout: `why` says what the test reads that only v1 has."""
    __tracebackhide__ = True
    if unified():
        pytest.skip(f"a cgroup v1 case ({why}); the unified layout has no v1 hierarchy")


def adapt_resources(resources):
    """The fixtures' linux.resources, without what this layout cannot honour: the
    bundle config's pids limit where no pids controller exists (the unified layout of a
    hybrid host). A runtime refuses a limit it cannot set, and rightly so; the tests of
    the limit itself call need("pids")."""
    if resources and "pids" in resources and "pids" not in controllers():
        del resources["pids"]
    return resources
