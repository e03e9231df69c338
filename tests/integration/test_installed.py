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
    from layout import adapt_resources
    adapt_resources(bundle.config["linux"].get("resources"))
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


def test_the_other_verbs(seccomp_bundle, tmp_path):
    """exec, ps, pause, resume, update, events, features, spec and seccomp explain:
    modules the run path does not load, from the bundle too."""
    b = seccomp_bundle
    cid = b.detach(["sleep", "60"])
    r = b.ocirun("exec", cid, "hostname")
    assert r.returncode == 0 and r.stdout.strip() == b.config["hostname"], r.stderr
    r = b.ocirun("ps", cid)
    assert r.returncode == 0 and "sleep 60" in r.stdout, r.stderr
    assert b.ocirun("pause", cid).returncode == 0
    assert b.state(cid)["status"] == "paused"
    assert b.ocirun("resume", cid).returncode == 0
    assert b.state(cid)["status"] == "running"
    from layout import controllers
    if "pids" in controllers():
        r = b.ocirun("update", "--pids-limit", "50", cid)
    else:  # (a unified layout without a pids controller: a file every cgroup2 has)
        r = b.ocirun("update", "--resources=-", cid,
                     input='{"unified": {"cgroup.max.descendants": "50"}}')
    assert r.returncode == 0, r.stderr
    r = b.ocirun("events", "--stats", cid)
    assert r.returncode == 0 and json.loads(r.stdout)["type"] == "stats", r.stderr
    assert b.ocirun("delete", "-f", cid).returncode == 0
    r = b.ocirun("features")
    assert r.returncode == 0 and json.loads(r.stdout)["linux"]["seccomp"]["enabled"]
    r = b.ocirun("spec", "-b", str(tmp_path))
    assert r.returncode == 0 and json.load(open(tmp_path / "config.json"))["process"]
    r = b.ocirun("seccomp", "explain", f"{b.path}/config.json", "mount")
    assert r.returncode == 0 and r.stdout.startswith("mount ("), r.stderr
