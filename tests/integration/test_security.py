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
    for n in range(3, 12):
        bundle.config["process"]["cwd"] = f"/proc/self/fd/{n}"
        r = bundle.run(["pwd"])
        assert r.returncode != 0 or not r.stdout.startswith("/proc/self/fd") and "(unreachable)" not in r.stdout


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
    host_mounts = open("/proc/self/mountinfo").read().count("\n")
    r = bundle.run(["true"])
    assert open("/proc/self/mountinfo").read().count("\n") == host_mounts


def test_D_dev_null_symlink_does_not_unmask(bundle):
    # maskedPaths binds /dev/null: if /dev/null were a symlink to a host file the
    # mask would expose it. The runtime checks it is char 1:3.
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] not in ("/dev", "/dev/pts", "/dev/shm", "/dev/mqueue")]
    os.makedirs(f"{bundle.rootfs}/dev", exist_ok=True)
    os.symlink("/proc/sys/kernel/core_pattern", f"{bundle.rootfs}/dev/null")
    before = open("/proc/sys/kernel/core_pattern").read()
    r = bundle.run(["sh", "-c", "echo '|/tmp/pwn' > /proc/sys/kernel/core_pattern"])
    assert open("/proc/sys/kernel/core_pattern").read() == before


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
    host = open("/proc/self/mountinfo").read().count("\n")
    r = bundle.run(["true"])
    assert r.returncode == 1 and "maskedPaths" in r.stderr
    assert open("/proc/self/mountinfo").read().count("\n") == host


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


def test_A_proc_self_exe_even_when_seccomp_denies_execveat(bundle):
    host_python = os.path.realpath("/usr/bin/python3")
    before = _sha(host_python)
    bundle.config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["execveat"], "action": "SCMP_ACT_ERRNO"}]}
    r = bundle.run(["/proc/self/exe", "-I", "-S", "-c", "print('host python ran')"])
    # the interpreter would print its own fatal error here (no stdlib in the image)
    assert "host python ran" not in r.stdout and "Python" not in r.stderr, r.stderr
    assert r.returncode == 127
    assert _sha(host_python) == before


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
    assert not any(os.path.isdir(f"/sys/fs/cgroup/{c}/ocirun/{cid}") for c in os.listdir("/sys/fs/cgroup"))
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


def test_preserve_fds_must_name_open_fds(bundle):
    import subprocess
    from support import OCIRUN
    bundle.write()
    r = subprocess.run([OCIRUN, "--root", bundle.root, "run", "--preserve-fds", "6", "-b", bundle.path, "pfx"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True)
    assert r.returncode == 1 and "--preserve-fds 6: fd" in r.stderr, r.stderr


def test_mounts_without_mount_namespace_are_undone_by_delete(bundle):
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"]
                                            if n["type"] != "mount"]
    bundle.config["linux"].pop("maskedPaths", None)
    bundle.config["linux"].pop("readonlyPaths", None)
    bundle.config["mounts"] = [{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}]
    r = bundle.run(["true"])
    assert r.returncode == 0, r.stderr
    assert f"{bundle.rootfs}/tmp " not in open("/proc/self/mountinfo").read()
