"""Black-box attack tests (SECURITY.md): build the malicious bundle, run the real
CLI as root, assert the host is unchanged and the attack failed."""
import hashlib
import os

import pytest


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_A_proc_self_exe_entrypoint_never_reaches_the_host_interpreter(bundle):
    # CVE-2019-5736: an entrypoint of #!/proc/self/exe would run whatever the
    # execing process is; the runtime's process is the host's python3.
    host_python = os.path.realpath("/usr/bin/python3")
    before = _sha(host_python)
    with open(f"{bundle.rootfs}/evil", "w") as f:
        f.write("#!/proc/self/exe\n")
    os.chmod(f"{bundle.rootfs}/evil", 0o755)
    r = bundle.run(["/evil"])
    # the memfd program is the "interpreter" now: it gets no usable arguments
    assert r.returncode != 0
    assert "Python" not in r.stdout + r.stderr
    r = bundle.run(["sh", "-c", "readlink /proc/self/exe; exec 3</proc/self/exe && echo opened"])
    assert r.stdout.splitlines()[0] == "/bin/busybox"
    assert _sha(host_python) == before


def test_A_exec_cannot_open_exe_of_runtime_processes(bundle):
    # the init while it waits for `start` (the waiter, or where the init forks, the
    # host interpreter) is not dumpable, so nothing in the container can open its
    # /proc/PID/exe or its fds
    bundle.config["process"]["args"] = ["true"]
    cid, r = bundle.create()
    assert r.returncode == 0, r.stderr
    # the init (pid 1 inside) is not dumpable: its exe cannot be opened from inside
    r2 = bundle.ocirun("exec", cid, "sh", "-c", "cat /proc/1/exe > /dev/null 2>&1 && echo readable || echo denied")
    assert r2.stdout.strip() == "denied", r2.stdout + r2.stderr


def test_B_cwd_through_leaked_fd_fails(bundle):
    """CVE-2024-21626: process.cwd through a directory fd the runtime holds while the
    init sets up (its procfs, the container's cgroup v2 directory): the chdir lands
    outside the container, and the run must fail, naming process.cwd, before anything
    runs there. Every fd number is tried; at least one must be such a directory, or
    the test reaches no check at all."""
    outside = []
    for n in range(3, 24):
        cwd = f"/proc/self/fd/{n}"
        bundle.config["process"]["cwd"] = cwd
        r = bundle.run(["pwd"])
        assert r.returncode == 1 and r.stdout == "", (n, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"ocirun: process.cwd `{cwd}`"), lines
        if lines[0].endswith("is outside the container"):
            outside.append(n)
    assert outside, "no fd of the runtime was a directory outside the container at chdir"


def test_C_symlink_mount_destination_stays_inside(bundle, tmp_path):
    marker = f"/tmp/h-{os.getpid()}-{id(bundle)}"
    assert not os.path.exists(marker)
    os.makedirs(f"{bundle.rootfs}/etc", exist_ok=True)
    os.symlink(marker, f"{bundle.rootfs}/etc/hosts")
    src = tmp_path / "hosts"
    src.write_text("127.0.0.1 x\n")
    bundle.config["mounts"].append({"destination": "/etc/hosts", "type": "bind", "source": str(src),
                                    "options": ["bind", "ro"]})
    r = bundle.run(["cat", "/etc/hosts"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "127.0.0.1 x\n"
    assert not os.path.exists(marker), "the bind mount followed the symlink onto the host"
    assert os.path.exists(f"{bundle.rootfs}{marker}")


def test_C_symlinked_proc_is_refused_or_contained(bundle):
    os.rmdir(f"{bundle.rootfs}/proc")
    os.symlink("/", f"{bundle.rootfs}/proc")
    host_mounts = _host_mounts()
    r = bundle.run(["true"])
    assert _host_mounts() == host_mounts


def _host_target(tmp_path):
    target = tmp_path / "host-file"
    target.write_text("host file\n")
    return target


def test_D_dev_null_symlink_in_the_image_is_replaced(bundle, tmp_path):
    """maskedPaths binds /dev/null over each masked file: an image whose /dev/null is a
    symlink to a host file would expose (and let the container write) that file. With
    no /dev mount the default devices are made in the image's /dev: the symlink is
    replaced by the real node, and the masks hold."""
    target = _host_target(tmp_path)
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] not in ("/dev", "/dev/pts", "/dev/shm", "/dev/mqueue")]
    os.makedirs(f"{bundle.rootfs}/dev", exist_ok=True)
    os.symlink(str(target), f"{bundle.rootfs}/dev/null")
    r = bundle.run(["sh", "-c", "stat -c '%F %t:%T' /dev/null; wc -c < /proc/keys; "
                                "echo pwned > /proc/keys"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["character special file 1:3", "0"], r.stdout + r.stderr
    assert target.read_text() == "host file\n"


def test_D_dev_null_that_is_not_the_null_device_is_refused(bundle, tmp_path):
    """A /dev bound from elsewhere gets no default devices: its `null` is whatever is
    there. When it is not char 1:3 (here a symlink to a host file), masking would bind
    that file: create fails first, in one line, and the file is untouched."""
    target = _host_target(tmp_path)
    dev = tmp_path / "dev"
    dev.mkdir()
    os.symlink(str(target), dev / "null")
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if not m["destination"].startswith("/dev")]
    bundle.config["mounts"].append({"destination": "/dev", "type": "bind", "source": str(dev),
                                    "options": ["rbind"]})
    r = bundle.run(["sh", "-c", "echo pwned > /proc/keys; cat /proc/keys"])
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr.strip() == ("ocirun: maskedPaths: /dev/null in the container is not the "
                                "null device (char 1:3)"), r.stderr
    assert r.stdout == "" and target.read_text() == "host file\n"
    assert os.readlink(dev / "null") == str(target) and sorted(os.listdir(dev)) == ["null"]


def test_E_sysctl_outside_namespaces_refused(bundle):
    before = open("/proc/sys/kernel/core_pattern").read()
    bundle.config["linux"]["sysctl"] = {"kernel.core_pattern": "|/tmp/pwn"}
    r = bundle.run(["true"])
    assert r.returncode == 1 and "kernel.core_pattern" in r.stderr
    assert open("/proc/sys/kernel/core_pattern").read() == before


def test_E_mount_over_proc_paths_refused(bundle):
    bundle.config["mounts"].append({"destination": "/proc/self/attr", "type": "tmpfs", "source": "tmpfs"})
    r = bundle.run(["true"])
    assert r.returncode == 1 and "/proc/self/attr" in r.stderr


def test_E_net_sysctl_without_netns_refused(bundle):
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"] if n["type"] != "network"]
    bundle.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    before = open("/proc/sys/net/ipv4/ip_forward").read()
    r = bundle.run(["true"])
    assert r.returncode == 1 and "net.ipv4.ip_forward" in r.stderr
    assert open("/proc/sys/net/ipv4/ip_forward").read() == before


def test_G_hostname_without_uts_refused(bundle):
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"] if n["type"] != "uts"]
    bundle.config["hostname"] = "pwned"
    host = os.uname().nodename
    r = bundle.run(["true"])
    assert r.returncode == 1 and "hostname" in r.stderr
    assert os.uname().nodename == host


def test_I_userns_host_file_not_readable(bundle, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("top secret\n")
    os.chmod(secret, 0o600)
    bundle.use_user_namespace(300000)
    bundle.config["mounts"].append({"destination": "/secret", "type": "bind", "source": str(secret),
                                    "options": ["bind"]})
    r = bundle.run(["cat", "/secret"])
    assert "top secret" not in r.stdout
    assert "Permission denied" in r.stderr, r.stderr


def test_J_no_new_privs_and_inheritable(bundle):
    bundle.config["process"]["noNewPrivileges"] = True
    bundle.config["process"]["capabilities"]["inheritable"] = []
    r = bundle.run(["grep", "-E", "NoNewPrivs|CapInh", "/proc/self/status"])
    assert "NoNewPrivs:\t1" in r.stdout and "CapInh:\t0000000000000000" in r.stdout


def test_K_no_code_from_the_rootfs_runs_in_the_runtime(bundle):
    # a trojan encodings package / sitecustomize / NSS module in the image
    marker = f"/tmp/k-{os.getpid()}"
    for rel in ("usr/lib/python3.11/encodings/__init__.py", "usr/lib/python3.11/sitecustomize.py",
                "usr/lib/python3/dist-packages/sitecustomize.py"):
        os.makedirs(os.path.dirname(f"{bundle.rootfs}/{rel}"), exist_ok=True)
        with open(f"{bundle.rootfs}/{rel}", "w") as f:
            f.write(f"open({marker!r}, 'w').write('owned')\n")
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    r = bundle.run(["id"])
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(marker)
    assert not os.path.exists(f"{bundle.rootfs}{marker}")


def test_K_fifo_at_etc_passwd_does_not_hang(bundle):
    os.mkfifo(f"{bundle.rootfs}/etc/passwd.fifo")
    os.rename(f"{bundle.rootfs}/etc/passwd.fifo", f"{bundle.rootfs}/etc/passwd")
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    r = bundle.run(["true"], timeout=20)
    assert r.returncode == 0, r.stderr


def test_F_console_symlink_in_rootfs_changes_nothing(bundle, tmp_path):
    from support import console_server, read_all
    # no /dev tmpfs: the image's own /dev, with /dev/console aimed at core_pattern
    bundle.config["mounts"] = [m for m in bundle.config["mounts"]
                               if m["destination"] not in ("/dev", "/dev/shm", "/dev/mqueue")]
    os.makedirs(f"{bundle.rootfs}/dev/pts", exist_ok=True)
    os.symlink("/proc/sys/kernel/core_pattern", f"{bundle.rootfs}/dev/console")
    before = open("/proc/sys/kernel/core_pattern").read()
    sock = str(tmp_path / "c.sock")
    t, got = console_server(sock)
    bundle.config["process"]["terminal"] = True
    bundle.config["process"]["args"] = ["sh", "-c", "ls -l /dev/console; echo x > /dev/console"]
    cid, r = bundle.create(None, "--console-socket", sock)
    assert r.returncode == 0, r.stderr
    t.join(5)
    assert bundle.ocirun("start", cid).returncode == 0
    out = read_all(got["fd"])
    os.close(got["fd"])
    assert b"136," in out, out  # the container's console is a pty of its devpts
    assert open("/proc/sys/kernel/core_pattern").read() == before
    assert os.path.islink(f"{bundle.rootfs}/dev/console") is False


def test_H_namespace_path_of_the_wrong_type_refused(bundle):
    for ns in bundle.config["linux"]["namespaces"]:
        if ns["type"] == "ipc":
            ns["path"] = "/proc/self/ns/net"
    r = bundle.run(["true"])
    assert r.returncode == 1 and "is a network namespace, not ipc" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_H_masked_paths_without_mount_namespace_refused(bundle):
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"]
                                            if n["type"] != "mount"]
    bundle.config["mounts"] = []
    host = _host_mounts()
    r = bundle.run(["true"])
    assert r.returncode == 1 and "maskedPaths" in r.stderr
    assert _host_mounts() == host


def test_start_container_hooks_run_with_the_process_privileges(bundle):
    bundle.config["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": [
        "sh", "-c", "grep -E 'CapEff|CapBnd' /proc/self/status > /tmp/hookcaps; id -u >> /tmp/hookcaps"]}]}
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    bundle.config["process"]["noNewPrivileges"] = True
    os.chmod(f"{bundle.rootfs}/tmp", 0o1777)
    r = bundle.run(["true"])
    assert r.returncode == 0, r.stderr
    out = open(f"{bundle.rootfs}/tmp/hookcaps").read().split()
    caps = dict(zip(out[0:4:2], out[1:4:2]))
    assert int(caps["CapEff:"], 16) == 0 and out[-1] == "1000", out
    assert int(caps["CapBnd:"], 16) == (1 << 0) | (1 << 1) | (1 << 3) | (1 << 4) | (1 << 5) | \
        (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 18) | (1 << 31)


@pytest.mark.parametrize("dest,link", [("//proc/self/attr", None), ("/x/../proc/self/attr", None),
                                       ("/mnt", "/proc/thread-self/attr")])
def test_E_mount_resolving_into_proc_refused(bundle, dest, link):
    if link:
        os.symlink(link, f"{bundle.rootfs}/mnt")
    bundle.config["mounts"].append({"destination": dest, "type": "tmpfs", "source": "tmpfs"})
    r = bundle.run(["true"])
    assert r.returncode == 1 and "/proc" in r.stderr, r.stderr




def test_delete_refuses_a_container_being_created(bundle, tmp_path):
    import subprocess
    import time
    from support import OCIRUN
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "1"]}]}
    bundle.config["process"]["args"] = ["true"]
    bundle.write()
    cid = bundle.new_id()
    with open(tmp_path / "err", "w") as err:
        p = subprocess.Popen([OCIRUN, "--root", bundle.root, "create", "-b", bundle.path, cid],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        time.sleep(0.4)
        r = bundle.ocirun("delete", cid)
        assert r.returncode == 1 and "not stopped: creating" in r.stderr, r.stderr
        assert p.wait(30) == 0
    assert bundle.ocirun("delete", "-f", cid).returncode == 0


def test_delete_of_stopped_container_kills_what_is_left_in_its_cgroup(bundle):
    import time
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"]
                                            if n["type"] != "pid"]
    cid, r = bundle.create()
    bundle.config["process"]["args"] = ["sh", "-c", "sleep 777 </dev/null >/dev/null 2>&1 & exit 0"]
    bundle.write()
    bundle.ocirun("delete", "-f", cid)
    cid, r = bundle.create()
    assert r.returncode == 0, r.stderr
    assert bundle.ocirun("start", cid).returncode == 0
    for _ in range(100):
        if bundle.state(cid)["status"] == "stopped":
            break
        time.sleep(0.02)
    r = bundle.ocirun("delete", cid)
    assert r.returncode == 0, r.stderr
    from layout import leftovers
    assert leftovers(f"/ocirun/{cid}") == []
    time.sleep(0.1)
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                assert b"sleep\x00777" not in open(f"/proc/{p}/cmdline", "rb").read()
            except OSError:
                pass


def test_stale_state_dir_in_another_root_cannot_touch_a_container(bundle, tmp_path):
    cid = bundle.detach(["sleep", "60"])
    other = tmp_path / "other-root"
    (other / cid).mkdir(parents=True)
    import subprocess
    from support import OCIRUN
    r = subprocess.run([OCIRUN, "--root", str(other), "delete", "-f", cid], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert bundle.state(cid)["status"] == "running"


def test_preserve_fds_never_hands_over_the_runtimes_own(bundle):
    """--preserve-fds 6 with none of 3..8 open: the range is skipped (as crun does), and
    whatever the runtime itself opened there since (the procfs handle, channels, the
    exec program) is close-on-exec: the container sees stdio only."""
    import subprocess
    from support import OCIRUN
    # (no pipeline: the shell would hold its pipe while ls lists the shell's fds)
    bundle.config["process"]["args"] = ["sh", "-c", "ls /proc/$$/fd; exit 0"]
    bundle.write()
    r = subprocess.run([OCIRUN, "--root", bundle.root, "run", "--preserve-fds", "6", "-b",
                        bundle.path, "pfx"], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "1", "2"], r.stdout


def test_mounts_without_mount_namespace_are_undone_by_delete(bundle):
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"]
                                            if n["type"] != "mount"]
    bundle.config["linux"].pop("maskedPaths", None)
    bundle.config["linux"].pop("readonlyPaths", None)
    bundle.config["mounts"] = [{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}]
    r = bundle.run(["true"])
    assert r.returncode == 0, r.stderr
    assert f"{bundle.rootfs}/tmp " not in open("/proc/self/mountinfo").read()


# --- L: special filesystems through image symlinks; masks that must not fail open ---------
#
# Each case is a hostile rootfs in which the destination of a mount the runtime relies
# on later is a symlink, or reached through one: to an absolute path, to a relative
# one, through two hops, through a parent directory, or through a directory that a
# later mount of the same config hides (so that masks looked up by name afterwards
# would find nothing). ocirun must refuse each with one line naming the mount, exit 1,
# and leave nothing behind; the host's mounts and sysctls stay as they were.

NO_DEV = ("/dev", "/dev/pts", "/dev/shm", "/dev/mqueue")


def _target(bundle, dest):
    """The index of the mount at `dest`; for /dev/mqueue, /dev/pts and /sys/fs/cgroup the
    mounts that would otherwise hide the image's path (/dev, /sys) are dropped, so that
    the image decides what the destination is."""
    mounts = bundle.config["mounts"]
    if dest.startswith("/dev/"):
        mounts[:] = [m for m in mounts if m["destination"] not in NO_DEV or m["destination"] == dest]
    if dest == "/sys/fs/cgroup":
        mounts[:] = [m for m in mounts if m["destination"] != "/sys"]
        bundle.config["linux"]["maskedPaths"] = [
            p for p in bundle.config["linux"]["maskedPaths"] if not p.startswith("/sys")]
    return next(i for i, m in enumerate(mounts) if m["destination"] == dest)


def _plant(bundle, dest, shape):
    """Make `dest` in the rootfs a symlink of `shape` to a directory the image owns;
    returns the image path `dest` would then lead to (an empty directory)."""
    rootfs = bundle.rootfs
    path = rootfs + dest
    if os.path.isdir(path) and not os.path.islink(path):
        os.rmdir(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    real = f"/elsewhere{dest.replace('/', '-')}"
    os.makedirs(rootfs + real, exist_ok=True)
    if shape == "absolute":
        os.symlink(real, path)
    elif shape == "relative":
        up = "../" * (dest.count("/") - 1)
        os.symlink(up + real.lstrip("/"), path)
    elif shape == "two-hops":
        os.symlink("/hop1", path)
        os.symlink("hop2", rootfs + "/hop1")
        os.symlink(real, rootfs + "/hop2")
    elif shape == "parent":
        parent = os.path.dirname(dest)
        import shutil
        shutil.rmtree(rootfs + parent)
        os.makedirs(rootfs + real + "/" + os.path.basename(dest))
        os.symlink(real, rootfs + parent)
        return real + "/" + os.path.basename(dest)
    elif shape == "hidden":
        # dest -> /hidden/link -> real, and /hidden gets a tmpfs from a later mount
        os.makedirs(rootfs + "/hidden", exist_ok=True)
        os.symlink(real, rootfs + "/hidden/link")
        os.symlink("/hidden/link", path)
        bundle.config["mounts"].append({"destination": "/hidden", "type": "tmpfs",
                                        "source": "tmpfs"})
    return real


def _host_mounts():
    """The host's mounts, but those under any test run's scratch directories (other
    suites on the machine mount and unmount there while this one runs): a mount that
    an attack lands on the host (/, /tmp-..., /realproc) is in it."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return sorted(p for p in points if not p.startswith("/tmp/pytest-of-"))


def _host_view():
    with open("/proc/sys/kernel/core_pattern") as f:
        core = f.read()
    return _host_mounts(), core


SPECIAL = ["/proc", "/sys", "/dev/mqueue", "/sys/fs/cgroup", "/dev/pts"]
SHAPES = ["absolute", "relative", "two-hops", "parent", "hidden"]


@pytest.mark.parametrize("dest,shape", [(d, s) for d in SPECIAL for s in SHAPES
                                        if s != "parent" or d.count("/") > 1])
def test_L_special_mount_through_an_image_symlink_is_refused(bundle, dest, shape):
    index = _target(bundle, dest)
    real = _plant(bundle, dest, shape)
    before = _host_view()
    # what the container would do with a procfs it was not meant to have
    r = bundle.run(["sh", "-c", f"echo '|/tmp/pwn' > {real}/sys/kernel/core_pattern; "
                                "echo survived"])
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith(f"ocirun: mounts[{index}].destination: "), lines[0]
    assert "is a symlink in the rootfs" in lines[0], lines[0]
    assert "survived" not in r.stdout
    assert _host_view() == before
    assert bundle.ocirun("list", "-q").stdout.strip() == ""
    assert not os.listdir(f"{bundle.rootfs}{real}"), "something was mounted or made there"


def test_L_the_reported_exploit_chain_is_refused(bundle):
    """The review's chain: /proc -> /dev/link -> /realproc, where the /dev tmpfs then
    hides /dev/link, so that masks by name found nothing and procfs at /realproc was
    writable."""
    os.rmdir(f"{bundle.rootfs}/proc")
    os.symlink("/dev/link", f"{bundle.rootfs}/proc")
    os.makedirs(f"{bundle.rootfs}/realproc")
    os.symlink("/realproc", f"{bundle.rootfs}/dev/link")
    before = _host_view()
    r = bundle.run(["sh", "-c", "echo '|/tmp/pwn' > /realproc/sys/kernel/core_pattern"])
    assert r.returncode == 1
    assert r.stderr.strip() == "ocirun: mounts[0].destination: /proc is a symlink in the rootfs"
    assert _host_view() == before


def test_L_special_destination_that_is_a_file_is_refused(bundle):
    os.rmdir(f"{bundle.rootfs}/sys")
    open(f"{bundle.rootfs}/sys", "w").close()
    r = bundle.run(["true"])
    assert r.returncode == 1
    assert r.stderr.strip() == "ocirun: mounts[2].destination: /sys is not a directory in the rootfs"


@pytest.mark.parametrize("shape", SHAPES)
def test_L_volume_through_an_image_symlink_stays_inside_the_rootfs(bundle, tmp_path, shape):
    """A volume's destination may be a symlink in the image (runc and crun follow it,
    inside the rootfs): the volume lands inside the rootfs, never on the host."""
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "data").write_text("volume\n")
    real = _plant(bundle, "/mnt/data", "absolute" if shape == "parent" else shape) \
        if shape != "parent" else None
    if shape == "parent":
        os.symlink(f"/tmp-{os.getpid()}-{shape}", f"{bundle.rootfs}/vol")
        dest, real = "/vol/sub", f"/tmp-{os.getpid()}-{shape}/sub"
    else:
        dest = "/mnt/data"
    bundle.config["mounts"].append({"destination": dest, "type": "bind", "source": str(vol),
                                    "options": ["rbind", "ro"]})
    before = _host_view()
    r = bundle.run(["sh", "-c", f"cat {dest}/data 2>/dev/null; true"])
    assert r.returncode == 0, r.stderr
    if shape != "hidden":
        assert r.stdout == "volume\n"
    assert not os.path.exists(real), "the volume's destination was made on the host"
    assert _host_view() == before
    assert os.listdir(vol) == ["data"]


def test_L_volume_that_lands_on_dev_is_refused_before_devices_are_made(bundle, tmp_path):
    """An image symlink can steer a volume onto /dev: the devices and /dev symlinks
    would then be made in the host directory behind it. The runtime holds /dev by fd
    and checks, once every mount is made, that /dev is still its own tmpfs."""
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "null").write_text("host file\n")
    os.symlink("/dev", f"{bundle.rootfs}/data")
    bundle.config["mounts"].append({"destination": "/data", "type": "bind", "source": str(vol),
                                    "options": ["rbind"]})
    index = len(bundle.config["mounts"]) - 1
    r = bundle.run(["true"])
    assert r.returncode == 1
    assert r.stderr.strip() == ("ocirun: mounts[1].destination: `/dev` is covered by a later "
                                "mount"), r.stderr
    assert sorted(os.listdir(vol)) == ["null"] and (vol / "null").read_text() == "host file\n"
    assert index > 1


def test_L_masks_and_read_only_paths_hold(bundle):
    """With the runtime's own procfs and sysfs: a masked file reads empty, a masked
    directory is an empty read-only tmpfs, /proc/sys is read-only (in mountinfo and for
    a writer with CAP_SYS_ADMIN)."""
    bundle.config["linux"]["maskedPaths"] = ["/proc/timer_list", "/sys/firmware", "/proc/acpi"]
    bundle.config["linux"]["readonlyPaths"] = ["/proc/sys"]
    bundle.config["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    bundle.config["process"]["capabilities"]["effective"].append("CAP_SYS_ADMIN")
    bundle.config["process"]["capabilities"]["permitted"].append("CAP_SYS_ADMIN")
    r = bundle.run(["sh", "-c",
                    "wc -c < /proc/timer_list; ls -A /sys/firmware | wc -l; "
                    "touch /sys/firmware/x 2>&1 | grep -c 'Read-only'; "
                    "grep ' /proc/sys ' /proc/self/mountinfo | cut -d' ' -f6; "
                    "(echo 1 > /proc/sys/kernel/ns_last_pid) 2>&1 | grep -c 'Read-only'"])
    assert r.returncode == 0, r.stderr
    timer_list, firmware, firmware_ro, sys_opts, sys_ro = r.stdout.split()
    assert timer_list == "0" and firmware == "0" and firmware_ro == "1"
    assert sys_opts.split(",")[0] == "ro" and sys_ro == "1", r.stdout
    # what the masks hide is there on this host: the test can fail
    assert os.listdir("/sys/firmware")
    with open("/proc/timer_list") as f:
        assert f.read(1)


# --- M: nothing is looked up in the container's /proc --------------------------------------

def test_M_profile_refusing_execveat_without_no_new_privileges_is_refused(bundle):
    host_python = os.path.realpath("/usr/bin/python3")
    before = _sha(host_python)
    bundle.config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["execveat"], "action": "SCMP_ACT_ERRNO"}]}
    r = bundle.run(["/proc/self/exe", "-I", "-S", "-c", "print('host python ran')"])
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ocirun: linux.seccomp: refuses execveat(2)")
    assert _sha(host_python) == before
    cid, r = bundle.create()
    assert r.returncode == 1 and "linux.seccomp: refuses execveat" in r.stderr
    assert bundle.ocirun("list", "-q").stdout.strip() == ""


def test_M_profile_refusing_execveat_with_no_new_privileges_runs_without_proc(bundle):
    """With noNewPrivileges the sealed program loads the filter after its own execveat.
    The container has no /proc at all here: nothing needs one."""
    host_python = os.path.realpath("/usr/bin/python3")
    before = _sha(host_python)
    bundle.config["process"]["noNewPrivileges"] = True
    bundle.config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["execveat"], "action": "SCMP_ACT_ERRNO"}]}
    r = bundle.run(["/proc/self/exe", "-I", "-S", "-c", "print('host python ran')"])
    assert r.returncode == 127 and "host python ran" not in r.stdout
    assert _sha(host_python) == before
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["type"] != "proc"]
    bundle.config["linux"]["maskedPaths"] = []
    bundle.config["linux"]["readonlyPaths"] = []
    r = bundle.run(["sh", "-c", "ls /proc | wc -l; echo ran"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "ran"]


def test_M_the_filter_is_in_force_when_the_program_loads_it(bundle):
    bundle.config["process"]["noNewPrivileges"] = True
    bundle.config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["execveat"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    r = bundle.run(["sh", "-c", "grep -E 'Seccomp:|NoNewPrivs:' /proc/self/status; "
                                "mkdir /tmp/x 2>&1 || echo refused"])
    assert r.returncode == 0, r.stderr
    assert "Seccomp:\t2" in r.stdout and "NoNewPrivs:\t1" in r.stdout
    assert "Operation not permitted" in r.stdout and "refused" in r.stdout


def test_M_exec_never_runs_what_the_containers_proc_names(bundle):
    """A container with CAP_SYS_ADMIN replaces its /proc with a tmpfs in which every
    self/fd/N is its own script. `exec` under a profile that refuses execveat (with
    noNewPrivileges) must still run the command asked for: the runtime never execs a
    path in the container's /proc."""
    caps = bundle.config["process"]["capabilities"]
    for k in ("bounding", "effective", "permitted"):
        caps[k].append("CAP_SYS_ADMIN")
    bundle.config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["execveat"], "action": "SCMP_ACT_ERRNO"}]}
    bundle.config["process"]["noNewPrivileges"] = True
    script = ("mount -t tmpfs none /proc && mkdir -p /proc/self/fd && "
              "for n in $(seq 0 64); do printf '#!/bin/sh\\necho PWNED\\n' > /proc/self/fd/$n; "
              "chmod 755 /proc/self/fd/$n; done && touch /tmp/ready && exec sleep 60")
    cid = bundle.detach(["sh", "-c", script])
    import time
    for _ in range(200):
        if os.path.exists(f"{bundle.rootfs}/tmp/ready"):
            break
        time.sleep(0.02)
    r = bundle.ocirun("exec", cid, "echo", "asked-for")
    assert "PWNED" not in r.stdout + r.stderr
    assert r.returncode == 0 and r.stdout == "asked-for\n", r.stdout + r.stderr
    r = bundle.ocirun("exec", "--no-new-privs", cid, "echo", "again")
    assert r.returncode == 0 and r.stdout == "again\n", r.stdout + r.stderr
    assert bundle.ocirun("delete", "-f", cid).returncode == 0


def test_M_sysctl_in_a_joined_mount_namespace_is_not_redirected(bundle):
    """Container A (CAP_SYS_ADMIN, /proc/sys writable) binds the host-global
    /proc/sys/fs/lease-break-time over its /proc/sys/kernel/domainname (CVE-2025-52881's
    redirect). Container B joins A's mount namespace and sets kernel.domainname in its
    own UTS namespace: the write must reach B's domainname, not the host's setting.
    (B then fails: its rootfs is not in A's namespace. The write comes before that.)"""
    import json
    import time
    caps = bundle.config["process"]["capabilities"]
    for k in ("bounding", "effective", "permitted"):
        caps[k].append("CAP_SYS_ADMIN")
    bundle.config["linux"]["readonlyPaths"] = []
    script = ("mount --bind /proc/sys/fs/lease-break-time /proc/sys/kernel/domainname && "
              "touch /tmp/ready && exec sleep 60")
    a = bundle.detach(["sh", "-c", script])
    for _ in range(200):
        if os.path.exists(f"{bundle.rootfs}/tmp/ready"):
            break
        time.sleep(0.02)
    pid = bundle.state(a)["pid"]
    with open("/proc/sys/fs/lease-break-time") as f:
        before = f.read()
    try:
        b = json.loads(json.dumps(bundle.config))
        b["linux"]["namespaces"] = [{"type": "mount", "path": f"/proc/{pid}/ns/mnt"},
                                    {"type": "uts"}]
        b["linux"]["sysctl"] = {"kernel.domainname": "7"}
        b.pop("hostname", None)
        bundle.config = b
        r = bundle.run(["true"])
        assert r.returncode == 1 and "Traceback" not in r.stderr
        with open("/proc/sys/fs/lease-break-time") as f:
            assert f.read() == before, "the runtime's sysctl write reached a host setting"
    finally:
        with open("/proc/sys/fs/lease-break-time", "w") as f:
            f.write(before)
        bundle.ocirun("delete", "-f", a)


PROCFS_PROBE = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
from ocirun import kernel
from ocirun.linux import procfs
k = kernel.KERNEL
out = []
kernel.unshare(kernel.CLONE_NEWNS)
kernel.mount(None, "/", None, kernel.MS_PRIVATE | kernel.MS_REC)
root = procfs.open_root(k)
# a redirect made after the handle was opened: a tmpfs over a procfs directory
kernel.mount("tmpfs", "/proc/sys/kernel", "tmpfs", 0)
open("/proc/sys/kernel/domainname", "w").close()
for rel in ("sys/kernel/domainname", "self/root/etc/hostname", "self/oom_score_adj"):
    try:
        os.close(procfs.open_file(k, root, rel, os.O_RDONLY))
        out.append("opened")
    except OSError as e:
        out.append(str(e.errno))
# a tmpfs is not a procfs root
os.makedirs("/tmp/fakeproc-%d" % os.getpid(), exist_ok=True)
kernel.mount("tmpfs", "/tmp/fakeproc-%d" % os.getpid(), "tmpfs", 0)
try:
    procfs.open_root(k, "/tmp/fakeproc-%d" % os.getpid())
    out.append("accepted")
except procfs.ProcError:
    out.append("refused")
print(" ".join(out))
"""


def test_M_procfs_handle_refuses_redirects():
    """The mechanism under every /proc write of the runtime (AppArmor's attr file,
    oom_score_adj, sysctls, maps): a mount over a procfs path after the handle was
    opened, and a magic link, are refused; a tmpfs does not pass for a procfs."""
    import subprocess
    import sys
    from support import REPO
    r = subprocess.run([sys.executable, "-c", PROCFS_PROBE, REPO], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    # EXDEV (crossing the tmpfs), ELOOP (the magic link `root`), then a real file
    assert r.stdout.split() == ["18", "40", "opened", "refused"], r.stdout


# --- N: files the runtime creates in directories others can write ----------------------------

def test_N_pid_file_never_adopts_a_planted_file(bundle, tmp_path):
    """Another user plants regular files at every temporary name the runtime's next
    pids would have used: the pid file must still be root's own, and the planted files
    untouched."""
    d = tmp_path / "shared"
    d.mkdir()
    os.chmod(d, 0o1777)
    with open("/proc/sys/kernel/ns_last_pid") as f:
        last = int(f.read())
    planted = []
    for pid in range(last + 1, last + 400):
        p = d / f"init.pid.tmp{pid}"
        p.write_text("planted")
        os.chown(p, 1000, 1000)
        planted.append(p)
    cid, r = bundle.create(None, "--pid-file", str(d / "init.pid"))
    assert r.returncode == 0, r.stderr
    st = os.stat(d / "init.pid")
    assert st.st_uid == 0, "the pid file is a file another user planted"
    assert int((d / "init.pid").read_text()) == bundle.state(cid)["pid"]
    assert all(p.read_text() == "planted" for p in planted)
    assert bundle.ocirun("delete", "-f", cid).returncode == 0


@pytest.mark.parametrize("mode,owner", [(0o777, 0), (0o770, 0), (0o700, 1000)])
def test_N_untrusted_root_directory_is_refused(bundle, tmp_path, mode, owner):
    root = tmp_path / "root"
    root.mkdir()
    os.chmod(root, mode)
    os.chown(root, owner, 0)
    bundle.write()
    for args in (["create", "-b", bundle.path, "c1"], ["list"], ["state", "c1"],
                 ["delete", "-f", "c1"]):
        r = bundle.ocirun(*args, global_args=()) if False else __import__("subprocess").run(
            [bundle.command, "--root", str(root), *args], capture_output=True, text=True,
            stdin=__import__("subprocess").DEVNULL, timeout=60)
        assert r.returncode == 1, (args, r.stderr)
        assert r.stderr.startswith(f"ocirun: --root `{root}`: ") and "refusing to trust" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert os.listdir(root) == []


EXEC_CHILD_FDS = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
from ocirun.linux import exec_init
from ocirun.lifecycle.exec import exec_process, load_container_config, process_from_args
from ocirun.state import load

def spy(plan, ctx):
    links = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            links[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    with open(sys.argv[4], "w") as f:
        json.dump(links, f)
    os._exit(0)

exec_init.exec_main = spy
st = load(sys.argv[2], sys.argv[3])
proc = process_from_args(load_container_config(st).get("process") or {}, ["true"])
try:
    exec_process(sys.argv[2], sys.argv[3], proc)
except Exception as e:
    print(type(e).__name__, e)
"""


def test_exec_child_carries_no_namespace_of_the_runtime(bundle, tmp_path):
    """The exec child enters the container while its set-up can be seized (a process of
    the container with CAP_SYS_PTRACE): it must hold no fd of the runtime's own
    namespaces, only what it needs (the container's pidfd and root, its channel)."""
    import json
    import subprocess
    import sys
    from support import REPO
    cid = bundle.detach(["sleep", "60"])
    out = tmp_path / "fds.json"
    r = subprocess.run([sys.executable, "-c", EXEC_CHILD_FDS, REPO, bundle.root, cid, str(out)],
                       capture_output=True, text=True, timeout=60)
    assert out.exists(), r.stdout + r.stderr
    links = json.loads(out.read_text())
    own = {os.readlink(f"/proc/self/ns/{n}") for n in ("pid", "time", "mnt", "net", "ipc", "uts")}
    assert not [l for l in links.values() if l in own], links
    assert bundle.ocirun("delete", "-f", cid).returncode == 0
