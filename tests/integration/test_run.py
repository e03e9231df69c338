"""Real containers: what the process inside sees."""
import os
import time

import pytest


def test_run_prints_and_passes_exit_code(bundle):
    r = bundle.run(["sh", "-c", "echo hello; exit 7"])
    assert r.stdout == "hello\n"
    assert r.returncode == 7, r.stderr


def test_signal_death_is_128_plus_n(bundle):
    # pid 1 of a pid namespace ignores SIGKILL sent from inside: share the host's.
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"]
                                            if n["type"] != "pid"]
    r = bundle.run(["sh", "-c", "kill -9 $$"])
    assert r.returncode == 137, r.stderr


def test_init_is_pid_1_in_new_namespaces(bundle):
    r = bundle.run(["sh", "-c", "echo $$; for n in pid net ipc uts mnt; do readlink /proc/self/ns/$n; done"])
    lines = r.stdout.split()
    assert lines[0] == "1", r.stderr
    for n, inside in zip(("pid", "net", "ipc", "uts", "mnt"), lines[1:]):
        assert inside != os.readlink(f"/proc/self/ns/{n}"), n


def test_hostname(bundle):
    bundle.config["hostname"] = "box-1"
    assert bundle.run(["hostname"]).stdout == "box-1\n"


def test_domainname(bundle):
    bundle.config["domainname"] = "example.test"
    r = bundle.run(["cat", "/proc/sys/kernel/domainname"])
    assert r.stdout == "example.test\n", r.stderr


def test_readonly_root(bundle):
    bundle.config["root"]["readonly"] = True
    r = bundle.run(["sh", "-c", "touch /x 2>&1; echo rc=$?; touch /tmp/../dev/shm/ok && echo shm-ok"])
    assert "Read-only file system" in r.stdout and "rc=1" in r.stdout
    assert "shm-ok" in r.stdout


def test_mounts_seen_inside(bundle):
    r = bundle.run(["cat", "/proc/self/mountinfo"])
    info = {line.split(" - ")[0].split()[4]: line for line in r.stdout.splitlines()}
    assert "proc" in info["/proc"].split(" - ")[1]
    assert " ro," in info["/sys"] or " ro " in info["/sys"]
    assert "devpts" in info["/dev/pts"]
    assert "mqueue" in info["/dev/mqueue"]
    assert "tmpfs" in info["/dev"].split(" - ")[1]


def test_user_and_groups(bundle):
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [5, 7], "umask": 0o077}
    r = bundle.run(["sh", "-c", "id; umask"])
    assert "uid=1000 gid=1001" in r.stdout, r.stderr
    assert "groups=5,7" in r.stdout or "groups=5(tty),7" in r.stdout or ",7" in r.stdout
    assert r.stdout.split()[-1] in ("0077", "077")


def _status(text):
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def test_capabilities_and_no_new_privs(bundle):
    caps = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    bundle.config["process"]["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    bundle.config["process"]["noNewPrivileges"] = True
    r = bundle.run(["cat", "/proc/self/status"])
    st = _status(r.stdout)
    want = (1 << 0) | (1 << 5) | (1 << 10)
    assert int(st["CapEff"], 16) == want
    assert int(st["CapPrm"], 16) == want
    assert int(st["CapBnd"], 16) == want
    assert int(st["CapInh"], 16) == 0
    assert st["NoNewPrivs"].strip() == "1"


def test_rlimits(bundle):
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
                                           {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]
    r = bundle.run(["cat", "/proc/self/limits"])
    line = next(l for l in r.stdout.splitlines() if l.startswith("Max open files"))
    assert line.split()[3:5] == ["123", "456"]


# The caller's inheritable fds (a careless caller's, or a leak in an engine) at 3, at 5
# and at a high number: only stdio reaches the container, unless --preserve-fds says so.
HANDED = (3, 5, 63)


def handing_fds(fd_numbers=HANDED):
    """-> (preexec_fn that puts an inheritable fd of a host pipe at each number, the
    pipe's fds to close afterwards); use with close_fds=False."""
    r, w = os.pipe()

    def put():
        for n in fd_numbers:
            os.dup2(r, n)  # dup2 makes them inheritable
    return put, (r, w)


def fds_seen(text):
    """The fd numbers `ls /proc/self/fd` printed, without ls's own directory fd (the
    lowest one that is not stdio: ls opens it last)."""
    fds = sorted(int(x) for x in text.split())
    assert fds[:3] == [0, 1, 2], fds
    return fds[:3] + fds[4:] if len(fds) > 3 else fds


def _run_handing(bundle, args, extra=()):
    import subprocess
    from support import OCIRUN
    bundle.config["process"]["args"] = args
    bundle.write()
    put, pipe = handing_fds()
    try:
        return subprocess.run([OCIRUN, "--root", bundle.root, "run", *extra, "-b", bundle.path,
                               bundle.new_id()], preexec_fn=put, close_fds=False,
                              capture_output=True, text=True, timeout=60)
    finally:
        for fd in pipe:
            os.close(fd)


def test_only_stdio_fds_are_open(bundle):
    r = _run_handing(bundle, ["ls", "/proc/self/fd"])
    assert r.returncode == 0, r.stderr
    assert fds_seen(r.stdout) == [0, 1, 2], r.stdout


def test_only_stdio_fds_after_create_and_start(bundle, tmp_path):
    """The fds reach `create` (the init holds them until `start`) and `start`."""
    import subprocess
    from support import OCIRUN
    bundle.config["process"]["args"] = ["sh", "-c", "ls /proc/self/fd > /fds"]
    bundle.write()
    cid = bundle.new_id()
    put, pipe = handing_fds()
    try:
        for verb in (["create", "-b", bundle.path, cid], ["start", cid]):
            r = subprocess.run([OCIRUN, "--root", bundle.root, *verb], preexec_fn=put,
                               close_fds=False, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
            assert r.returncode == 0, verb
    finally:
        for fd in pipe:
            os.close(fd)
    path = f"{bundle.rootfs}/fds"
    for _ in range(250):
        if os.path.exists(path) and bundle.state(cid)["status"] == "stopped":
            break
        time.sleep(0.02)
    with open(path) as f:
        assert fds_seen(f.read()) == [0, 1, 2]


def test_preserve_fds_keeps_only_the_ones_asked_for(bundle):
    """--preserve-fds 1: fd 3 reaches the container, 5 and 63 do not."""
    r = _run_handing(bundle, ["ls", "/proc/self/fd"], extra=["--preserve-fds", "1"])
    assert r.returncode == 0, r.stderr
    fds = sorted(int(x) for x in r.stdout.split())
    assert fds == [0, 1, 2, 3, 4], r.stdout  # 4: ls's own


def test_preserve_fds(bundle):
    r_fd, w_fd = os.pipe()
    os.set_inheritable(w_fd, True)
    # fd 3 in the container is whatever the caller passes as fd 3
    bundle.config["process"]["args"] = ["sh", "-c", "echo through >&3"]
    bundle.write()
    import subprocess
    from support import OCIRUN
    p = subprocess.run([OCIRUN, "--root", bundle.root, "run", "--preserve-fds", "1", "-b", bundle.path, "pf1"],
                       preexec_fn=lambda: os.dup2(w_fd, 3), close_fds=False, capture_output=True, text=True)
    os.close(w_fd)
    assert p.returncode == 0, p.stderr
    assert os.read(r_fd, 100) == b"through\n"
    os.close(r_fd)


def test_masked_and_readonly_paths(bundle):
    """Masked: a file of procfs and directories that exist wherever the test runs (one
    the test puts in the rootfs, /proc/tty of procfs) read empty. Read-only: a
    directory of the rootfs and /proc/sys, seen as `ro` in mountinfo and refused with
    EROFS to a writer that holds CAP_SYS_ADMIN (which the permission check alone would
    not stop)."""
    for d in ("srv/masked", "srv/ro"):
        os.makedirs(f"{bundle.rootfs}/{d}")
        with open(f"{bundle.rootfs}/{d}/file", "w") as f:
            f.write("visible\n")
    linux = bundle.config["linux"]
    linux["maskedPaths"] = ["/proc/keys", "/srv/masked", "/proc/tty"]
    linux["readonlyPaths"] = ["/srv/ro", "/proc/sys"]
    caps = bundle.config["process"]["capabilities"]
    for k in ("bounding", "effective", "permitted"):
        caps[k] = caps[k] + ["CAP_SYS_ADMIN"]
    r = bundle.run(["sh", "-c",
                    "wc -c < /proc/keys; ls -A /srv/masked | wc -l; ls -A /proc/tty | wc -l; "
                    "for p in /srv/ro /proc/sys; do grep \" $p \" /proc/self/mountinfo | "
                    "cut -d' ' -f6 | cut -d, -f1; done; "
                    "echo x > /srv/ro/file; echo 1 > /proc/sys/kernel/ns_last_pid; "
                    "cat /srv/ro/file"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "0", "0", "ro", "ro", "visible"], r.stdout + r.stderr
    assert r.stderr.count("Read-only file system") == 2, r.stderr
    # what the masks hide is there: the test can fail
    assert os.listdir("/proc/tty") and os.path.getsize("/proc/keys") == 0
    with open("/proc/keys") as f:
        assert f.read(1)


def test_sysctl_in_network_namespace(bundle):
    bundle.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    host = open("/proc/sys/net/ipv4/ip_forward").read()
    r = bundle.run(["cat", "/proc/sys/net/ipv4/ip_forward"])
    assert r.stdout == "1\n", r.stderr
    assert open("/proc/sys/net/ipv4/ip_forward").read() == host


def test_default_devices(bundle):
    want = {"/dev/null": "1:3", "/dev/zero": "1:5", "/dev/full": "1:7", "/dev/random": "1:8",
            "/dev/urandom": "1:9", "/dev/tty": "5:0"}
    r = bundle.run(["stat", "-c", "%n %A %t:%T", *want])
    assert r.returncode == 0, r.stderr
    seen = {}
    for line in r.stdout.splitlines():
        name, mode, dev = line.split()
        major, minor = (int(x, 16) for x in dev.split(":"))
        seen[name] = (mode, f"{major}:{minor}")
    assert seen == {name: ("crw-rw-rw-", dev) for name, dev in want.items()}, r.stdout


def test_linux_devices(bundle):
    bundle.config["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                          "fileMode": 0o640, "uid": 5, "gid": 6}]
    r = bundle.run(["stat", "-c", "%F %t:%T %a %u %g", "/dev/fuse"])
    assert r.stdout.strip() == "character special file a:e5 640 5 6", r.stderr


def test_cwd(bundle):
    bundle.config["process"]["cwd"] = "/tmp/work/dir"
    os.makedirs(f"{bundle.rootfs}/tmp/work/dir")
    assert bundle.run(["pwd"]).stdout == "/tmp/work/dir\n"


def test_env(bundle):
    bundle.config["process"]["env"] = ["PATH=/bin", "A=1", "B=x=y"]
    r = bundle.run(["env"])
    # HOME from the container's /etc/passwd for uid 0, as runc sets it
    assert sorted(r.stdout.split()) == ["A=1", "B=x=y", "HOME=/root", "PATH=/bin"]


def test_user_namespace(bundle):
    # the mapped root (host uid 100000) must be able to reach the bundle
    bundle.use_user_namespace(100000, own_bundle=True)
    r = bundle.run(["sh", "-c", "cat /proc/self/uid_map; id -u; echo $$"])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0].split() == ["0", "100000", "65536"]
    assert lines[1] == "0" and lines[2] == "1"


def test_no_pivot(bundle):
    r = bundle.run(["sh", "-c", "ls /bin/busybox"], extra=["--no-pivot"])
    assert r.returncode == 0 and r.stdout == "/bin/busybox\n", r.stderr


def test_join_network_namespace_by_path(bundle):
    cid = bundle.detach(["sleep", "30"])
    pid = bundle.state(cid)["pid"]
    target = os.readlink(f"/proc/{pid}/ns/net")
    for ns in bundle.config["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = f"/proc/{pid}/ns/net"
    r = bundle.run(["readlink", "/proc/self/ns/net"])
    assert r.stdout.strip() == target, r.stderr
    bundle.ocirun("delete", "-f", cid)


def test_run_leaves_nothing(bundle):
    r = bundle.run(["true"])
    assert r.returncode == 0
    assert [n for n in os.listdir(bundle.root) if not n.startswith(".")] == []


def test_apparmor_profile_without_apparmor_is_refused(bundle):
    """A container that asked to be confined does not run unconfined (runc refuses it
    too)."""
    from ocirun.config.plan import apparmor_enabled
    if apparmor_enabled():
        pytest.skip("AppArmor is enabled on this host: the profile would be applied")
    bundle.config["process"]["apparmorProfile"] = "containers-default"
    r = bundle.run(["true"])
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip() == ("ocirun: process.apparmorProfile: `containers-default` cannot "
                                "apply: AppArmor is not enabled on this host")


def _host_root_shared():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if line.split()[4] == "/":
                return "shared:" in line.split(" - ")[0]
    return False


@pytest.mark.parametrize("prop,tag", [("shared", "shared:"), ("rshared", "shared:"),
                                      ("slave", "master:"), ("private", None),
                                      ("unbindable", "unbindable"), ("runbindable", "unbindable")])
def test_rootfs_propagation(bundle, prop, tag):
    bundle.config["linux"]["rootfsPropagation"] = prop
    r = bundle.run(["cat", "/proc/self/mountinfo"])
    assert r.returncode == 0, r.stderr
    root = next(l for l in r.stdout.splitlines() if l.split()[4] == "/")
    optional = root.split(" - ")[0].split()[6:]
    if tag == "master:" and not _host_root_shared():
        tag = None  # a slave of a mount that is not shared has no master: private
    if tag is None:
        assert optional == [], root
    else:
        assert any(o.startswith(tag) for o in optional), root


