"""Behaviours runc and crun users rely on (the gaps peers' suites and Kubernetes' CRI
validation found), each against a real container. Where runc 1.1.5 runs the same
bundle cheaply, the test runs it too and prints what it did (`-s` shows it)."""
import json
import os
import shutil
import subprocess
import time

import pytest

from layout import leftovers, need, unified
from support import OCIRUN

RUNC = shutil.which("runc")


def runc_run(bundle, args, timeout=30, **kw):
    """The same bundle under runc (its own state root), for the record."""
    if not RUNC:
        return None
    bundle.config["process"]["args"] = args
    cid = "r" + bundle.new_id()
    linux = bundle.config["linux"]
    own = linux.get("cgroupsPath")
    # runc puts a relative (or no) cgroupsPath under its own cgroup, which is the
    # machine's here: an absolute path of the test's own instead (runc removes it)
    linux["cgroupsPath"] = own if own and own.startswith("/") else f"/ocirun-test-{cid}"
    bundle.write()
    try:
        r = subprocess.run([RUNC, "--root", bundle.root + "-runc", "run", "-b", bundle.path,
                            cid], capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, **kw)
    finally:
        if own is None:
            linux.pop("cgroupsPath")
        else:
            linux["cgroupsPath"] = own
        bundle.write()
    print(f"runc: exit {r.returncode}, out {r.stdout!r}, err {r.stderr.strip()[-200:]!r}")
    return r


def caps(bundle, *names):
    for k in ("bounding", "effective", "permitted"):
        bundle.config["process"]["capabilities"][k] += list(names)


# --- 1. Bidirectional mount propagation ----------------------------------------------------

@pytest.fixture
def shared_dir(tmp_path):
    """A tmpfs of the test's own, shared, so that a peer can propagate into it."""
    d = tmp_path / "shared"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(d)], check=True)
    subprocess.run(["mount", "--make-shared", str(d)], check=True)
    yield d
    subprocess.run(["umount", "-R", "-l", str(d)])


def test_rshared_volume_propagates_both_ways(bundle, shared_dir):
    """A volume with `rshared` under rootfsPropagation rshared (Kubernetes'
    Bidirectional, as containerd sets it): a mount made inside the container under it
    shows on the host, and one made on the host shows inside."""
    caps(bundle, "CAP_SYS_ADMIN")
    bundle.config["linux"]["rootfsPropagation"] = "rshared"
    bundle.config["mounts"].append({"destination": "/vol", "type": "bind",
                                    "source": str(shared_dir), "options": ["rbind", "rshared"]})
    os.makedirs(shared_dir / "in")
    os.makedirs(shared_dir / "out")
    script = ("mount -t tmpfs -o size=1m inner /vol/in && touch /vol/in/made-inside && "
              "while [ ! -e /vol/out/made-outside ]; do sleep 0.05; done; echo saw-host")
    cid = bundle.detach(["sh", "-c", script])
    try:
        deadline = time.time() + 10
        while not (shared_dir / "in" / "made-inside").exists() and time.time() < deadline:
            time.sleep(0.05)
        assert (shared_dir / "in" / "made-inside").exists(), \
            "a mount made in the container did not reach the host"
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "outer", str(shared_dir / "out")],
                       check=True)
        (shared_dir / "out" / "made-outside").write_text("")
        deadline = time.time() + 10
        while bundle.state(cid)["status"] != "stopped" and time.time() < deadline:
            time.sleep(0.05)
        assert bundle.state(cid)["status"] == "stopped", "the host's mount never showed inside"
    finally:
        bundle.ocirun("delete", "-f", cid)


# --- 2. HOME from the container's /etc/passwd ----------------------------------------------

def _passwd(bundle):
    with open(f"{bundle.rootfs}/etc/passwd", "a") as f:
        f.write("app:x:1000:1000:app:/home/app:/bin/sh\n")


def test_home_comes_from_etc_passwd(bundle):
    _passwd(bundle)
    bundle.config["process"]["env"] = ["PATH=/bin"]
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    r = bundle.run(["sh", "-c", "echo $HOME"])
    assert r.returncode == 0 and r.stdout == "/home/app\n", r.stderr
    runc_run(bundle, ["sh", "-c", "echo $HOME"])
    # no entry for the uid: "/"; an explicit HOME is kept
    bundle.config["process"]["user"] = {"uid": 4242, "gid": 4242}
    assert bundle.run(["sh", "-c", "echo $HOME"]).stdout == "/\n"
    bundle.config["process"]["env"] = ["PATH=/bin", "HOME=/mine"]
    assert bundle.run(["sh", "-c", "echo $HOME"]).stdout == "/mine\n"


def test_home_for_create_and_exec(bundle):
    _passwd(bundle)
    bundle.config["process"]["env"] = ["PATH=/bin"]
    cid = bundle.detach(["sleep", "30"])
    try:
        r = bundle.ocirun("exec", "-u", "1000", cid, "sh", "-c", "echo $HOME")
        assert r.returncode == 0 and r.stdout == "/home/app\n", r.stderr
        r = bundle.ocirun("exec", cid, "sh", "-c", "echo $HOME")
        assert r.stdout == "/root\n"
    finally:
        bundle.ocirun("delete", "-f", cid)


def test_a_fifo_at_etc_passwd_gives_the_default_home(bundle):
    os.unlink(f"{bundle.rootfs}/etc/passwd")
    os.mkfifo(f"{bundle.rootfs}/etc/passwd")
    bundle.config["process"]["env"] = ["PATH=/bin"]
    r = bundle.run(["sh", "-c", "echo $HOME"], timeout=20)
    assert r.returncode == 0 and r.stdout == "/\n"


# --- 3. process.cwd is made --------------------------------------------------------------

def test_missing_cwd_is_made_for_the_process_user(bundle):
    bundle.config["process"]["cwd"] = "/work/deep"
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    r = bundle.run(["sh", "-c", "pwd; stat -c '%u %g' .; touch mine && echo wrote"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:3] == ["/work/deep", "1000 1000", "wrote"]
    runc_run(bundle, ["pwd"])


def test_cwd_through_a_symlink_is_made_inside_the_rootfs(bundle, tmp_path):
    marker = f"/tmp/cwd-{os.getpid()}"
    os.symlink(marker, f"{bundle.rootfs}/work")
    bundle.config["process"]["cwd"] = "/work/x"
    r = bundle.run(["pwd"])
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(marker)
    assert os.path.isdir(f"{bundle.rootfs}{marker}/x")


# --- 4. loopback --------------------------------------------------------------------------

def test_loopback_is_up_in_a_new_network_namespace(bundle):
    r = bundle.run(["sh", "-c", "cat /sys/class/net/lo/operstate /sys/class/net/lo/flags"])
    assert r.returncode == 0, r.stderr
    state, flags = r.stdout.split()
    assert int(flags, 16) & 1, r.stdout  # IFF_UP
    runc_run(bundle, ["cat", "/sys/class/net/lo/flags"])


def test_loopback_is_up_with_a_memory_limit_too(bundle):
    """(a limited container's init makes its own network namespace: no helper)"""
    need("memory")
    bundle.config["linux"].setdefault("resources", {})["memory"] = {"limit": 256 << 20}
    r = bundle.run(["cat", "/sys/class/net/lo/flags"])
    assert r.returncode == 0 and int(r.stdout, 16) & 1, r.stderr


# --- 5. ambient capabilities that cannot be raised ----------------------------------------

def test_runc_spec_runs_unchanged(bundle):
    """`runc spec` asks for ambient capabilities it does not make inheritable: runc warns
    and runs; so does ocirun."""
    if not RUNC:
        pytest.skip("runc is not installed: `runc spec` is what this test runs")
    subprocess.run([RUNC, "spec"], cwd=bundle.path, check=True)
    with open(f"{bundle.path}/config.json") as f:
        cfg = json.load(f)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", "grep CapAmb /proc/self/status"]
    with open(f"{bundle.path}/config.json", "w") as f:
        json.dump(cfg, f)
    r = bundle.ocirun("run", "-b", bundle.path, bundle.new_id())
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "CapAmb:\t0000000000000000"
    assert "process.capabilities.ambient: CAP_KILL, CAP_NET_BIND_SERVICE, CAP_AUDIT_WRITE " \
           "not raised" in r.stderr


def test_ambient_caps_that_are_inheritable_are_raised(bundle):
    c = bundle.config["process"]["capabilities"]
    c["inheritable"] = ["CAP_KILL"]
    c["ambient"] = ["CAP_KILL"]
    r = bundle.run(["grep", "CapAmb", "/proc/self/status"])
    assert r.returncode == 0 and r.stdout.strip() == "CapAmb:\t0000000000000020", r.stderr


# --- 8. systemd form of cgroupsPath under cgroupfs -----------------------------------------

def test_systemd_form_cgroups_path_under_cgroupfs(bundle):
    name = f"system.slice:ocirun-test:{bundle.new_id()}"
    bundle.config["linux"]["cgroupsPath"] = name
    r = bundle.run(["cat", "/proc/self/cgroup"])
    assert r.returncode == 0, r.stderr
    assert f"/{name}" in r.stdout
    assert leftovers(f"/{name}") == []


# --- 9. a terminal without a terminal ------------------------------------------------------

def test_terminal_without_a_tty_is_refused_not_hung(bundle):
    bundle.config["process"]["terminal"] = True
    bundle.write()
    t0 = time.time()
    r = subprocess.run([OCIRUN, "--root", bundle.root, "run", "-b", bundle.path, bundle.new_id()],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    assert time.time() - t0 < 10
    assert r.returncode == 1
    assert r.stderr.strip() == ("ocirun: process.terminal is true but stdin is not a terminal: "
                                "give --console-socket, or set process.terminal to false")
    assert bundle.ocirun("list", "-q").stdout.strip() == ""


# --- 11. --preserve-fds and socket activation ----------------------------------------------

PRESERVE = r"""
import os, subprocess, sys
ocirun, root, bundle, cid, mode = sys.argv[1:6]
r, w = os.pipe()
os.dup2(r, 3); os.dup2(w, 5)            # 3 and 5 open, 4 closed
for fd in (r, w):
    if fd not in (3, 5):
        os.close(fd)
os.set_inheritable(3, True); os.set_inheritable(5, True)
try:
    os.close(4)
except OSError:
    pass
env = dict(os.environ)
args = [ocirun, "--root", root, "run", "-b", bundle]
if mode == "preserve":
    args += ["--preserve-fds", "3"]
else:  # socket activation: LISTEN_FDS=1 passes fd 3, with LISTEN_PID ours
    env["LISTEN_FDS"] = "1"
    args = ["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh"] + args
out = subprocess.run(args + [cid], env=env, pass_fds=(3, 5), capture_output=True, text=True,
                     stdin=subprocess.DEVNULL)
print(out.returncode, out.stdout.replace("\n", "|"), out.stderr.strip())
"""


def _preserve(bundle, mode, script):
    import sys
    bundle.config["process"]["args"] = ["sh", "-c", script]
    bundle.write()
    r = subprocess.run([sys.executable, "-c", PRESERVE, OCIRUN, bundle.root, bundle.path,
                        bundle.new_id(), mode], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


FDS = "for n in 3 4 5 6 7; do [ -e /proc/$$/fd/$n ] && printf '%s ' $n; done; echo"


def test_preserve_fds_passes_the_open_ones_and_skips_closed(bundle):
    out = _preserve(bundle, "preserve", FDS)
    assert out == "0 3 5 |", out


def test_socket_activation_passes_listen_fds(bundle):
    out = _preserve(bundle, "listen", FDS + "; echo $LISTEN_FDS $LISTEN_PID")
    assert out == "0 3 |1 1|", out


# --- 12. stdio of root's handed to another user --------------------------------------------

def test_stdio_pipes_are_the_process_users(bundle):
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    r = bundle.run(["sh", "-c", "echo reopened > /proc/self/fd/1; stat -Lc '%u' /proc/self/fd/2"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["reopened", "1000"]


# --- 13. devices in a user namespace -------------------------------------------------------

def test_devices_in_a_user_namespace_are_nosuid_noexec_binds(bundle):
    bundle.use_user_namespace(200000, own_bundle=True)
    r = bundle.run(["sh", "-c", "grep ' /dev/null ' /proc/self/mountinfo"])
    assert r.returncode == 0, r.stderr
    opts = r.stdout.split()[5].split(",")
    assert "nosuid" in opts and "noexec" in opts, r.stdout


def test_a_device_the_host_lacks_is_named(bundle):
    bundle.use_user_namespace(200000, own_bundle=True)
    bundle.config["linux"]["devices"] = [{"path": "/dev/nope-xyz", "type": "c", "major": 1,
                                          "minor": 3}]
    r = bundle.run(["true"])
    assert r.returncode == 1
    assert r.stderr.strip() == ("ocirun: linux.devices[0]: `/dev/nope-xyz` does not exist on the "
                                "host (in a user namespace, devices are bind mounts of the "
                                "host's)"), r.stderr


# --- 14. exec --cgroup ------------------------------------------------------------------------

def test_exec_cgroup_joins_the_sub_cgroup_where_it_exists(bundle):
    """v1: the sub-cgroup exists in one controller's tree only, so the process joins it
    there and stays in the container's cgroup elsewhere; v2: the one tree."""
    cid = bundle.detach(["sleep", "30"])
    try:
        base = "/sys/fs/cgroup" if unified() else "/sys/fs/cgroup/memory"
        os.mkdir(f"{base}/ocirun/{cid}/job")
        r = bundle.ocirun("exec", "--cgroup", "job", cid, "cat", "/proc/self/cgroup")
        assert r.returncode == 0, r.stderr
        lines = dict(line.split(":", 2)[1:] for line in r.stdout.splitlines())
        if unified():
            assert lines[""] == f"/ocirun/{cid}/job", lines
        else:
            assert lines["memory"].endswith(f"/{cid}/job")
            assert lines["pids"].endswith(f"/{cid}")
    finally:
        bundle.ocirun("delete", "-f", cid)
    assert leftovers(f"/ocirun/{cid}") == []


# --- 15. run.oci.keep_original_groups --------------------------------------------------------

def test_keep_original_groups_keeps_the_callers_groups(bundle):
    bundle.config["annotations"] = {"run.oci.keep_original_groups": "1"}
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [7]}
    bundle.write()
    r = subprocess.run([OCIRUN, "--root", bundle.root, "run", "-b", bundle.path, bundle.new_id()],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                       preexec_fn=lambda: os.setgroups([4242, 4343]))
    assert r.returncode == 0, r.stderr
    bundle.config["process"]["args"] = ["grep", "Groups", "/proc/self/status"]
    bundle.write()
    r = subprocess.run([OCIRUN, "--root", bundle.root, "run", "-b", bundle.path, bundle.new_id()],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                       preexec_fn=lambda: os.setgroups([4242, 4343]))
    assert r.stdout.split()[1:] == ["4242", "4343"], r.stdout
    bundle.config["annotations"] = {}
    bundle.write()
    r = subprocess.run([OCIRUN, "--root", bundle.root, "run", "-b", bundle.path, bundle.new_id()],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                       preexec_fn=lambda: os.setgroups([4242, 4343]))
    assert r.stdout.split()[1:] == ["7"], r.stdout


# --- 16. messages -----------------------------------------------------------------------------

def test_an_oom_kill_during_setup_says_so(bundle):
    need("memory")
    limit = 512 << 10  # less than the runtime's init touches while it sets up
    bundle.config["linux"].setdefault("resources", {})["memory"] = {"limit": limit,
                                                                     "swap": limit}
    r = bundle.run(["true"])
    assert r.returncode == 1
    assert r.stderr.strip() == ("ocirun: container init was killed by the OOM killer during "
                                "setup: the memory limit (linux.resources.memory.limit = "
                                f"{limit}) is too low"), r.stderr


def test_rlimits_are_named(bundle):
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1 << 30,
                                            "hard": 1 << 30}]
    r = bundle.run(["true"])
    assert r.returncode == 1
    assert "process.rlimits: setrlimit RLIMIT_NOFILE" in r.stderr, r.stderr


def test_a_missing_bundle_is_named_as_such(bundle, tmp_path):
    r = bundle.ocirun("run", "-b", str(tmp_path / "nope"), bundle.new_id())
    assert r.returncode == 1
    assert r.stderr.strip() == f"ocirun: bundle `{tmp_path / 'nope'}`: does not exist"


def test_a_failed_mount_names_its_entry(bundle):
    bundle.config["mounts"].append({"destination": "/x", "type": "nosuchfs", "source": "none"})
    index = len(bundle.config["mounts"]) - 1
    r = bundle.run(["true"])
    assert r.returncode == 1
    assert r.stderr.startswith(f"ocirun: mounts[{index}]: mount `none` on `/x`: ENODEV"), r.stderr
