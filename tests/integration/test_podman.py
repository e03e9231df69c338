"""podman (through conmon) driving ocirun: `podman --runtime ocirun ...`.

One private podman for the session (storage, tmp dir, events log and containers.conf in a
temp dir; see tests/engine_support.py). Skipped with the reason if podman is not
installed; failing (set-up errors) if it is but cannot run a container here with runc."""
import os
import secrets

import pytest

from engine_support import IMAGE, RUNC, RUNTIME, Podman, probe_or_fail, require_binary
from engine_support import conmon_sockets, remove_orphan_sockets, run_in_pty, write_argv_logger
from layout import need

LOOP = "trap 'exit 0' TERM; while :; do sleep 0.1; done"


@pytest.fixture(scope="session")
def podman(tmp_path_factory, rootfs_template):
    require_binary("podman")
    if not os.path.exists(RUNC):
        pytest.skip("runc is not installed: cannot check that podman works here")
    p = Podman(str(tmp_path_factory.mktemp("podman")))
    try:
        r = p.import_image(rootfs_template)
        probe_or_fail("podman import", r)
        # the same container with runc (default seccomp profile and all): must work
        probe_or_fail("podman run", p("run", "--rm", *p.run_args(seccomp=True), IMAGE, "true",
                                      runtime=RUNC))
        yield p
    finally:
        p.teardown()


@pytest.fixture
def name(podman):
    n = "t" + secrets.token_hex(6)
    yield n
    podman("rm", "-f", "-t", "0", n, runtime="ocirun")


def _state(podman, n):
    r = podman("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", n)
    assert r.returncode == 0, r.stderr
    status, code = r.stdout.split()
    return status, int(code)


def test_run_echo(podman):
    r = podman("run", "--rm", *podman.run_args(), IMAGE, "echo", "hi")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi\n"


def test_exit_code_passes_through(podman):
    r = podman("run", "--rm", *podman.run_args(), IMAGE, "sh", "-c", "echo out; exit 3")
    assert r.returncode == 3, r.stderr
    assert r.stdout == "out\n"


def test_runtime_argv_and_json_log(podman, tmp_path):
    """podman calls the runtime by its base name `ocirun`: listed in
    runtime_supports_json, so every create gets --log-format=json --log FILE."""
    log = str(tmp_path / "argv.log")
    wrapper = write_argv_logger(str(tmp_path / "bin"), RUNTIME, log)
    r = podman("run", "--rm", *podman.run_args(), IMAGE, "true", runtime=wrapper)
    assert r.returncode == 0, r.stderr
    calls = [line.split() for line in open(log).read().splitlines()]
    creates = [c for c in calls if "create" in c]
    assert len(creates) == 1, calls
    c = creates[0]
    assert c[0] == "--log-format=json" and c[1] == "--log" and c[3] == "create", c
    assert "--bundle" in c and "--pid-file" in c
    verbs = [next(w for w in c if w in ("create", "start", "delete", "state", "kill"))
             for c in calls]
    assert verbs[:2] == ["create", "start"] and "delete" in verbs, calls


def test_detach_exec_stop_rm(podman, name):
    r = podman("run", "-d", "--name", name, *podman.run_args(), IMAGE, "sh", "-c", LOOP)
    assert r.returncode == 0, r.stderr
    assert _state(podman, name)[0] == "running"
    r = podman("exec", name, "echo", "inexec")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "inexec\n"
    r = podman("exec", name, "sh", "-c", "exit 4")
    assert r.returncode == 4, r.stderr
    r = podman("stop", "-t", "10", name)
    assert r.returncode == 0, r.stderr
    assert _state(podman, name) == ("exited", 0)
    r = podman("rm", name)
    assert r.returncode == 0, r.stderr
    assert podman("container", "exists", name).returncode == 1


def test_run_interactive_tty(podman):
    before = conmon_sockets()
    try:
        rc, out = run_in_pty(podman.argv("run", "--rm", "-it", *podman.run_args(), IMAGE,
                                         "sh", "-c", "tty; echo tty-ok; exit 5"),
                             env=podman.env, timeout=30)
    finally:
        remove_orphan_sockets(conmon_sockets() - before)
    assert rc == 5, out
    assert "/dev/pts/0" in out and "tty-ok" in out, out


def test_missing_executable_is_127(podman):
    r = podman("run", "--rm", *podman.run_args(), IMAGE, "nosuch-command")
    assert r.returncode == 127, r.stderr
    assert "executable file not found" in r.stderr, r.stderr


def test_failed_create_cleans_up_quietly(podman):
    """After a failed create podman runs `delete --force ID` for a container the runtime
    never recorded; like runc, that must succeed, or podman reports an error."""
    r = podman("run", "--rm", *podman.run_args(), IMAGE, "nosuch-command")
    assert r.returncode == 127, r.stderr
    assert "after creation failed" not in r.stderr, r.stderr


def test_not_executable_is_126(podman):
    r = podman("run", "--rm", *podman.run_args(), IMAGE, "/etc/passwd")
    assert r.returncode == 126, f"exit {r.returncode}, stderr {r.stderr!r}"
    assert "permission denied" in r.stderr, r.stderr


def test_kill_from_outside_is_137(podman, name):
    r = podman("run", "-d", "--name", name, *podman.run_args(), IMAGE, "sleep", "1000")
    assert r.returncode == 0, r.stderr
    r = podman("kill", "-s", "KILL", name)
    assert r.returncode == 0, r.stderr
    r = podman("wait", name)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "137"
    assert _state(podman, name) == ("exited", 137)


def test_killed_by_signal_in_foreground_is_137(podman):
    # pid 1 of a pid namespace ignores SIGKILL from inside: use the host's pid namespace
    r = podman("run", "--rm", "--pid", "host", *podman.run_args(), IMAGE,
               "sh", "-c", "kill -9 $$")
    assert r.returncode == 137, r.stderr


def test_pause_unpause(podman, name):
    r = podman("run", "-d", "--name", name, *podman.run_args(), IMAGE, "sleep", "1000")
    assert r.returncode == 0, r.stderr
    r = podman("pause", name)
    assert r.returncode == 0, r.stderr
    assert _state(podman, name)[0] == "paused"
    r = podman("unpause", name)
    assert r.returncode == 0, r.stderr
    assert _state(podman, name)[0] == "running"
    r = podman("rm", "-f", "-t", "0", name)
    assert r.returncode == 0, r.stderr


def test_default_seccomp_profile(podman):
    """podman's own default: its seccomp profile goes into config.json, and the
    container's process runs under it (a filter, mode 2)."""
    r = podman("run", "--rm", *podman.run_args(seccomp=True), IMAGE, "sh", "-c",
               "echo hi; grep ^Seccomp: /proc/self/status")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[0] == "hi" and r.stdout.split()[1:] == ["Seccomp:", "2"], r.stdout


def _memory_limit(pid):
    """The memory limit of `pid`'s cgroup, read on the host (v1 or v2)."""
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [l.strip().split(":", 2) for l in f]
    for _, ctrls, path in lines:
        if "memory" in ctrls.split(","):
            with open(f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes") as f:
                return int(f.read())
    path = next(p for _, c, p in lines if c == "")
    with open(f"/sys/fs/cgroup{path}/memory.max") as f:
        return int(f.read())


def test_update_memory(podman, name):
    need("memory")
    r = podman("run", "-d", "--name", name, "--memory", "128m", *podman.run_args(), IMAGE,
               "sleep", "1000")
    assert r.returncode == 0, r.stderr
    pid = int(podman("inspect", "-f", "{{.State.Pid}}", name).stdout)
    assert _memory_limit(pid) == 128 << 20
    r = podman("update", "--memory", "64m", name)
    assert r.returncode == 0, r.stderr
    assert _memory_limit(pid) == 64 << 20
    r = podman("rm", "-f", "-t", "0", name)
    assert r.returncode == 0, r.stderr


@pytest.fixture
def shared_dir(tmp_path):
    import subprocess
    d = tmp_path / "shared"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(d)], check=True)
    subprocess.run(["mount", "--make-shared", str(d)], check=True)
    (d / "in").mkdir()
    yield d
    subprocess.run(["umount", "-R", "-l", str(d)])


def test_rshared_volume_mount_reaches_the_host(podman, shared_dir):
    """`--volume DIR:/vol:rshared` (Kubernetes' Bidirectional): a mount the container
    makes under it shows on the host."""
    r = podman("run", "--rm", "--cap-add", "SYS_ADMIN", "-v", f"{shared_dir}:/vol:rshared",
               *podman.run_args(), IMAGE, "sh", "-c",
               "mount -t tmpfs -o size=1m inner /vol/in && touch /vol/in/made-inside && "
               "grep -c ' /vol/in ' /proc/self/mountinfo")
    assert r.returncode == 0, r.stderr
    with open("/proc/self/mountinfo") as f:
        assert f" {shared_dir}/in " in f.read(), "the container's mount did not reach the host"
    assert (shared_dir / "in" / "made-inside").exists()


def test_group_add_keep_groups(podman):
    """`--group-add keep-groups` (crun's run.oci.keep_original_groups): the container's
    process keeps the supplementary groups podman (and so the runtime) runs with."""
    import subprocess
    r = subprocess.run(podman.argv("run", "--rm", "--group-add", "keep-groups", "--user",
                                   "1000:1000", *podman.run_args(), IMAGE, "grep", "Groups",
                                   "/proc/self/status", runtime="ocirun"),
                       env=podman.env, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL, preexec_fn=lambda: os.setgroups([4242]))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[1:] == ["4242"], r.stdout
