"""The start-up path is the product: each verb's imports are pinned, so a new import
on the hot path fails here until it is justified and the list updated."""
import os
import subprocess

import pytest

from layout import unified
from support import DEV_LAUNCHER as OCIRUN  # the modules of the checkout, by import

# Never on the hot paths (ARCHITECTURE.md): each costs milliseconds.
FORBIDDEN = {"re", "json", "argparse", "dataclasses", "enum", "typing", "logging",
             "subprocess", "socket", "signal", "tempfile", "threading", "ctypes",
             "resource", "datetime", "pathlib", "shutil", "traceback",
             # ~1.0 ms: os builds _collections_abc's ABCs (ocirun/fs.py says more)
             "os", "posixpath", "_collections_abc",
             # .py wrappers of C modules: a file lookup each (_struct, _stat instead)
             "struct", "stat"}

COMMON = {"ocirun", "ocirun.cli", "ocirun.cli.main", "ocirun.cli.opts", "ocirun.errors",
          "ocirun.log", "ocirun.fs"}
STATE = {"ocirun.state", "ocirun.config", "ocirun.config.load", "ocirun.lifecycle",
         "ocirun.lifecycle.state", "ocirun.cli.create"}
CREATE = STATE - {"ocirun.lifecycle.state"} | {
    "ocirun.kernel", "ocirun._sys", "ocirun.timings", "ocirun.tables", "ocirun.config.plan",
    "ocirun.config.validate", "ocirun.config.nulls", "ocirun.linux", "ocirun.linux.sync", "ocirun.linux.init",
    "ocirun.linux.paths", "ocirun.linux.procfs", "ocirun.linux.rootfs",
    "ocirun.linux.trampoline", "ocirun.lifecycle.create", "ocirun.lifecycle.birth",
    "ocirun.lifecycle.steps"}
SECCOMP = {"ocirun.seccomp", "ocirun.seccomp.cache", "ocirun.seccomp.consts",
           "ocirun.seccomp.tables"}

# cgroupfs (the default manager) on the layout in use
CGROUPS = {"ocirun.cgroups", "ocirun.cgroups.common",
           "ocirun.cgroups.v2" if unified() else "ocirun.cgroups.v1", "ocirun.cgroups.convert"}
# (v2: the device rules are an eBPF program)
CGROUPS_CREATE = CGROUPS | {"ocirun.cgroups.validate"} | (
    {"ocirun.cgroups.devices_bpf"} if unified() else set())

# a container with a cgroup: status reads its freezer file through the package alone
# (cgroups.paused), without opening a manager
FREEZER = {"ocirun.cgroups"}

PINNED = {
    "state": COMMON | STATE | FREEZER | {"ocirun.cli.state"},
    "list": COMMON | STATE - {"ocirun.cli.create"} | FREEZER | {"ocirun.cli.list_"},
    "kill": COMMON | STATE - {"ocirun.cli.create"} | FREEZER | {
        "ocirun.cli.kill", "ocirun.lifecycle.signals", "ocirun.lifecycle.kill",
        "ocirun.lifecycle.process"},
    # delete removes the cgroup: it opens the manager
    "delete": COMMON | STATE | CGROUPS | {"ocirun.cli.delete", "ocirun.lifecycle.delete",
                                          "ocirun.lifecycle.process"},
    "start": COMMON | STATE | FREEZER | {"ocirun.cli.start", "ocirun.lifecycle.start"},
    "create": COMMON | CREATE | SECCOMP | CGROUPS_CREATE,
    "run": COMMON | CREATE | SECCOMP | CGROUPS_CREATE | {
        "ocirun.cli.run", "ocirun.lifecycle.run", "ocirun.lifecycle.delete",
        "ocirun.lifecycle.process", "ocirun.lifecycle.state"},
}


def imported(args, bundle, env=None):
    """Modules imported by one real command (python -X importtime on the launcher)."""
    with open(f"{bundle.path}/imports.err", "w+") as err:
        r = subprocess.run(["/usr/bin/python3", "-IS", "-X", "importtime", OCIRUN,
                            "--root", bundle.root, *args], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=err, timeout=60, cwd=bundle.path)
        err.seek(0)
        text = err.read()
    mods = set()
    for line in text.splitlines():
        if line.startswith("import time:") and "|" in line and "imported package" not in line:
            mods.add(line.rsplit("|", 1)[1].strip())
    return r.returncode, mods, text


@pytest.fixture
def seccomp_bundle(bundle):
    import json
    from support import SHARED
    with open(os.path.join(SHARED, "fixtures", "bench-config.json")) as f:
        cfg = json.load(f)
    from layout import adapt_resources
    adapt_resources(cfg["linux"].get("resources"))
    bundle.config = cfg
    bundle.write()
    return bundle


def _check(verb, mods):
    assert not mods & FORBIDDEN, f"{verb} imports {sorted(mods & FORBIDDEN)}"
    ours = {m for m in mods if m.startswith("ocirun")}
    pinned = PINNED[verb]
    if not any(n.startswith("_sys") and n.endswith(".so") for n in os.listdir(f"{os.path.dirname(OCIRUN)}/../ocirun")):
        pinned = pinned - {"ocirun._sys"}
    assert ours == pinned, f"{verb}: new {sorted(ours - pinned)}, gone {sorted(pinned - ours)}"


def test_verb_imports(seccomp_bundle):
    b = seccomp_bundle
    b.ocirun("run", "-b", b.path, b.new_id())  # warm the seccomp cache
    rc, mods, text = imported(["run", "-b", b.path, b.new_id()], b)
    assert rc == 0, text[-2000:]
    _check("run", mods)
    cid = b.new_id()
    b.config["process"]["args"] = ["sleep", "30"]
    b.write()
    rc, mods, text = imported(["create", "-b", b.path, cid], b)
    assert rc == 0, text[-2000:]
    _check("create", mods)
    for verb, args in (("state", [cid]), ("list", []), ("start", [cid]), ("kill", [cid, "KILL"])):
        rc, mods, text = imported([verb, *args], b)
        assert rc == 0, (verb, text[-2000:])
        _check(verb, mods)
    import time
    time.sleep(0.2)
    rc, mods, text = imported(["delete", cid], b)
    assert rc == 0, text[-2000:]
    _check("delete", mods)
