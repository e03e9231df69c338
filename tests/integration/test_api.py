"""The library API drives the same code as the CLI."""
import os

import pytest

from ocirun.api import Runtime
from ocirun.errors import OciError


def test_api_run_and_lifecycle(bundle, tmp_path):
    rt = Runtime(root=bundle.root)
    bundle.config["process"]["args"] = ["sh", "-c", "exit 9"]
    bundle.write()
    assert rt.run("api-run", bundle.path) == 9
    assert rt.list() == []
    bundle.config["process"]["args"] = ["sleep", "60"]
    bundle.write()
    devnull = os.open(os.devnull, os.O_RDWR)
    saved = [os.dup(0), os.dup(1), os.dup(2)]
    for fd in (0, 1, 2):  # the init keeps the stdio it was created with
        os.dup2(devnull, fd)
    try:
        c = rt.create("api-c", bundle.path)
    finally:
        for fd, s in zip((0, 1, 2), saved):
            os.dup2(s, fd)
            os.close(s)
        os.close(devnull)
    bundle.ids.append("api-c")
    assert c.status == "created"
    c.start()
    assert c.status == "running"
    assert c.exec(["sh", "-c", "exit 3"]) == 3
    c.kill("KILL")
    c.delete(force=True)
    with pytest.raises(OciError, match="does not exist"):
        rt.state("api-c")


def test_api_errors_are_one_line(bundle):
    rt = Runtime(root=bundle.root)
    bundle.config["process"]["args"] = ["nosuch"]
    bundle.write()
    with pytest.raises(OciError) as e:
        rt.run("api-bad", bundle.path)
    assert "executable file not found" in str(e.value) and "\n" not in str(e.value)
    assert rt.list() == []


FAILED_CREATES = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
from ocirun.api import Runtime
from ocirun.errors import OciError
bundle, root, cid = sys.argv[2], sys.argv[3], sys.argv[4]
first, second = Runtime(root=root + "/a"), Runtime(root=root + "/b")
c = first.create(cid, bundle)
before = sorted(os.listdir("/proc/self/fd"))
errors = []
for _ in range(3):
    try:  # the same id under another root: its cgroup exists, with a process in it
        second.create(cid, bundle)
    except OciError as e:
        errors.append("already exists" in str(e))
c.kill("KILL")
c.delete(force=True)
print(errors, sorted(os.listdir("/proc/self/fd")) == before, second.list())
"""


def test_failed_creates_leave_no_fd(bundle, tmp_path):
    """A create that fails after the exec fifo is open (here making its cgroup) closes
    the fifo and the init's channel too: a library process must not leak an fd per
    failed create."""
    import subprocess
    import sys
    from support import REPO
    bundle.config["process"]["args"] = ["sleep", "60"]
    bundle.write()
    cid = bundle.new_id()
    r = subprocess.run([sys.executable, "-c", FAILED_CREATES, REPO, bundle.path, str(tmp_path), cid],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[0] == "[True, True, True] True []", r.stdout
