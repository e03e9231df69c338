"""The installed command (install.sh: the launcher, boot.code and the bundle) runs
containers as the development launcher does. Every .py and .pyc file of the installed
package is removed first: what runs comes from boot.code and the bundle alone."""
import json
import os
import subprocess
import time

import pytest

from support import REPO, SHARED


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("prefix")
    r = subprocess.run(["./install.sh", "--no-demo"], cwd=REPO, capture_output=True, text=True,
                       env=dict(os.environ, PREFIX=str(prefix)), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    removed = 0
    for cur, dirs, files in os.walk(f"{prefix}/lib/ocirun"):
        for fn in files:
            if fn.endswith((".py", ".pyc")):
                os.unlink(os.path.join(cur, fn))
                removed += 1
    assert removed > 40
    return f"{prefix}/bin/ocirun"


@pytest.fixture
def seccomp_bundle(bundle, installed):
    with open(os.path.join(SHARED, "fixtures", "bench-config.json")) as f:
        bundle.config = json.load(f)
    bundle.command = installed
    return bundle


def test_run_with_the_podman_profile(seccomp_bundle):
    b = seccomp_bundle
    for _ in range(2):  # compiled, then from the seccomp cache
        r = b.run(["sh", "-c", "echo hello from $(hostname); grep ^Seccomp: /proc/self/status"])
        assert r.returncode == 0, r.stderr
        lines = r.stdout.split("\n")
        assert lines[0].startswith("hello from ") and lines[1].split() == ["Seccomp:", "2"]


def test_lifecycle(seccomp_bundle):
    b = seccomp_bundle
    b.config["process"]["args"] = ["sleep", "60"]
    cid, r = b.create()
    assert r.returncode == 0, r.stderr
    assert b.state(cid)["status"] == "created"
    assert b.ocirun("start", cid).returncode == 0
    assert b.state(cid)["status"] == "running"
    assert b.ocirun("kill", cid, "KILL").returncode == 0
    deadline = time.time() + 5
    while b.state(cid)["status"] != "stopped" and time.time() < deadline:
        time.sleep(0.02)
    assert b.state(cid)["status"] == "stopped"
    assert b.ocirun("delete", cid).returncode == 0
    r = b.ocirun("state", cid)
    assert r.returncode == 1 and "does not exist" in r.stderr


def test_bad_input_is_one_line(seccomp_bundle):
    b = seccomp_bundle
    b.config["process"]["args"] = []
    r = b.run()
    assert r.returncode != 0
    assert len(r.stderr.strip().splitlines()) == 1 and "process.args" in r.stderr, r.stderr
