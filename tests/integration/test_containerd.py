"""containerd's runc v2 shim driving ocirun: `ctr run --runc-binary ocirun ...`.

One private containerd for the session (root, state, sockets under a temp dir, CRI off),
a random namespace, and a busybox image imported from an OCI archive built here with tar
and JSON. Skipped with the reason if containerd is not installed; failing (set-up errors)
if it is but cannot run a container here with runc."""
import os
import secrets
import time

import pytest

from engine_support import IMAGE, RUNC, RUNTIME, Containerd, make_oci_archive, probe_or_fail
from engine_support import require_binary, run_in_pty, write_argv_logger


@pytest.fixture(scope="session")
def containerd(tmp_path_factory, rootfs_template):
    for b in ("containerd", "ctr", "containerd-shim-runc-v2"):
        require_binary(b)
    if not os.path.exists(RUNC):
        pytest.skip("runc is not installed: cannot check that containerd works here")
    base = str(tmp_path_factory.mktemp("containerd"))
    c = Containerd(base)
    try:
        err = c.start()
        if err:
            pytest.fail(err)
        archive = make_oci_archive(rootfs_template, os.path.join(base, "bb.tar"))
        probe_or_fail("ctr images import", c.ctr("images", "import", archive, timeout=120))
        os.unlink(archive)
        probe = "probe-" + secrets.token_hex(4)
        r = c.run(RUNC, "--rm", IMAGE, probe, "true")
        c.remove(probe, runtime=RUNC)
        probe_or_fail("ctr run", r)
        yield c
    finally:
        c.teardown()


@pytest.fixture
def cid(containerd):
    i = "t" + secrets.token_hex(6)
    yield i
    containerd.remove(i)


def _task_status(containerd, cid):
    r = containerd.ctr("task", "ls")
    for line in r.stdout.splitlines()[1:]:
        f = line.split()
        if f and f[0] == cid:
            return f[2]
    return None


def _wait_status(containerd, cid, want, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = _task_status(containerd, cid)
        if st == want:
            return st
        time.sleep(0.05)
    return _task_status(containerd, cid)


def test_run_echo(containerd, cid):
    r = containerd.run(RUNTIME, "--rm", IMAGE, cid, "echo", "hi")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi\n"


def test_exit_code_passes_through(containerd, cid):
    r = containerd.run(RUNTIME, "--rm", IMAGE, cid, "sh", "-c", "echo out; exit 3")
    assert r.returncode == 3, r.stderr
    assert r.stdout == "out\n"


def test_runtime_argv(containerd, cid, tmp_path):
    """The shim's calls: global --root/--log/--log-format json, then the verb."""
    log = str(tmp_path / "argv.log")
    wrapper = write_argv_logger(str(tmp_path / "bin"), RUNTIME, log)
    r = containerd.run(wrapper, "--rm", IMAGE, cid, "true")
    assert r.returncode == 0, r.stderr
    calls = [line.split() for line in open(log).read().splitlines()]
    root = os.path.join(containerd.runc_root, containerd.ns)
    for c in calls:
        assert c[:2] == ["--root", root] and c[2] == "--log" and c[4:6] == ["--log-format", "json"], c
    assert [c[6] for c in calls][:2] == ["create", "start"], calls
    assert "delete" in [c[6] for c in calls], calls
    create = calls[0]
    assert create[7] == "--bundle" and create[9] == "--pid-file" and create[-1] == cid, create


def test_missing_executable_error_reaches_ctr(containerd, cid):
    """The shim reads the error from the runtime's --log JSON lines."""
    r = containerd.run(RUNTIME, "--rm", IMAGE, cid, "nosuch-command")
    assert r.returncode != 0
    assert "executable file not found" in r.stderr, r.stderr


def test_detach_exec_kill_delete(containerd, cid):
    r = containerd.run(RUNTIME, "-d", IMAGE, cid, "sleep", "1000")
    assert r.returncode == 0, r.stderr
    assert _task_status(containerd, cid) == "RUNNING"
    r = containerd.ctr("task", "exec", "--fifo-dir", containerd.fifo_dir, "--exec-id", "e1",
                       cid, "sh", "-c", "echo inexec; exit 4")
    assert r.returncode == 4, r.stderr
    assert r.stdout == "inexec\n"
    r = containerd.ctr("task", "kill", "-s", "SIGKILL", cid)
    assert r.returncode == 0, r.stderr
    assert _wait_status(containerd, cid, "STOPPED") == "STOPPED"
    r = containerd.ctr("task", "delete", cid)
    assert r.returncode == 0, r.stderr
    assert "exit code 137" in r.stderr, r.stderr
    r = containerd.ctr("container", "delete", cid)
    assert r.returncode == 0, r.stderr


def test_task_ps(containerd, cid):
    r = containerd.run(RUNTIME, "-d", IMAGE, cid, "sleep", "1000")
    assert r.returncode == 0, r.stderr
    r = containerd.ctr("task", "ls")
    pid = next(line.split()[1] for line in r.stdout.splitlines()[1:] if line.split()[0] == cid)
    r = containerd.ctr("task", "ps", cid)
    assert r.returncode == 0, r.stderr
    assert pid in [line.split()[0] for line in r.stdout.splitlines()[1:]], r.stdout


def test_pause_resume(containerd, cid):
    r = containerd.run(RUNTIME, "-d", IMAGE, cid, "sleep", "1000")
    assert r.returncode == 0, r.stderr
    r = containerd.ctr("task", "pause", cid)
    assert r.returncode == 0, r.stderr
    assert _task_status(containerd, cid) == "PAUSED"
    r = containerd.ctr("task", "resume", cid)
    assert r.returncode == 0, r.stderr
    assert _task_status(containerd, cid) == "RUNNING"


def test_run_tty(containerd, cid):
    rc, out = run_in_pty(containerd.run_argv(RUNTIME, "--rm", "--tty", IMAGE, cid,
                                             "sh", "-c", "tty; echo tty-ok; exit 6"),
                         timeout=15)
    assert rc == 6, f"exit {rc} (None: timed out), output: {out!r}"
    assert "/dev/pts/0" in out and "tty-ok" in out, out
