"""linux.seccomp in real containers: the filter the runtime compiles is the one the
container runs under."""
import os


def _profile(action, **extra):
    rule = {"names": ["mkdir", "mkdirat"], "action": action}
    rule.update(extra)
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [rule]}


def test_errno_38_gives_enosys(bundle):
    bundle.config["linux"]["seccomp"] = _profile("SCMP_ACT_ERRNO", errnoRet=38)
    r = bundle.run(["sh", "-c", "mkdir /tmp/x; echo rc=$?; grep Seccomp: /proc/self/status"])
    assert "Function not implemented" in r.stderr, r.stderr
    assert "rc=1" in r.stdout
    assert "Seccomp:\t2" in r.stdout
    assert not os.path.exists(f"{bundle.rootfs}/tmp/x")


def test_kill_ends_with_sigsys(bundle):
    bundle.config["linux"]["seccomp"] = _profile("SCMP_ACT_KILL")
    r = bundle.run(["mkdir", "/tmp/y"])
    assert r.returncode == 128 + 31, (r.returncode, r.stderr)
    assert not os.path.exists(f"{bundle.rootfs}/tmp/y")


def test_kill_process(bundle):
    bundle.config["linux"]["seccomp"] = _profile("SCMP_ACT_KILL_PROCESS")
    r = bundle.run(["mkdir", "/tmp/z"])
    assert r.returncode == 128 + 31, (r.returncode, r.stderr)


def test_podman_profile_with_cache(bundle):
    import json
    from support import SHARED
    with open(os.path.join(SHARED, "fixtures", "seccomp-podman-default.json")) as f:
        bundle.config["linux"]["seccomp"] = json.load(f)
    bundle.config["process"]["noNewPrivileges"] = True
    for _ in range(2):  # cold, then from the cache under --root
        r = bundle.run(["sh", "-c", "grep -E 'Seccomp|NoNewPrivs' /proc/self/status; unshare -n true; echo rc=$?"])
        assert r.returncode == 0, r.stderr
        assert "Seccomp:\t2" in r.stdout and "NoNewPrivs:\t1" in r.stdout
        assert "rc=1" in r.stdout  # unshare is not in the profile's allow list
    assert os.listdir(f"{bundle.root}/.cache/seccomp")


def test_exec_gets_the_container_profile(bundle):
    bundle.config["linux"]["seccomp"] = _profile("SCMP_ACT_ERRNO", errnoRet=38)
    cid = bundle.detach(["sleep", "30"])
    r = bundle.ocirun("exec", cid, "sh", "-c", "mkdir /tmp/e; echo rc=$?")
    assert "rc=1" in r.stdout and "Function not implemented" in r.stderr


def test_bad_profile_one_line(bundle):
    bundle.config["linux"]["seccomp"] = _profile("SCMP_ACT_BOGUS")
    r = bundle.run(["true"])
    assert r.returncode == 1 and "SCMP_ACT_BOGUS" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    bundle.config["linux"]["seccomp"] = _profile("SCMP_ACT_ERRNO", errnoRet=65536)
    r = bundle.run(["true"])
    assert r.returncode == 1 and "errnoRet" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def _agent(path, timeout=30):
    """A seccomp agent on a unix socket: accepts one connection and reads the
    containerProcessState document and the fd sent with it."""
    import array
    import socket
    import threading
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(timeout)
    got = {}

    def serve():
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        finally:
            srv.close()
        conn.settimeout(timeout)
        try:
            msg, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(4))
        except OSError:
            got["connected"] = True
            return
        finally:
            conn.close()
        fds = array.array("i")
        for _level, _kind, data in anc:
            fds.frombytes(data[:4])
        got["msg"] = msg
        got["fds"] = list(fds)
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t, got


def test_listener_path_without_notify_rule_gets_the_state(bundle, tmp_path):
    """linux.seccomp.listenerPath and no SCMP_ACT_NOTIFY rule: the agent still gets
    the listener fd and the state (as crun does), instead of waiting forever for a
    connection; the container runs under its filter."""
    import json
    sock = str(tmp_path / "agent.sock")
    t, got = _agent(sock, timeout=20)
    bundle.config["linux"]["seccomp"] = dict(_profile("SCMP_ACT_ERRNO", errnoRet=38),
                                             listenerPath=sock, listenerMetadata="m-7")
    r = bundle.run(["sh", "-c", "mkdir /tmp/x; echo rc=$?"], timeout=60)
    t.join(25)
    assert r.returncode == 0, r.stderr
    assert "rc=1" in r.stdout and "Function not implemented" in r.stderr
    assert "msg" in got, f"the agent got no state (connected: {got.get('connected', False)})"
    doc = json.loads(got["msg"])
    assert doc["fds"] == ["seccompFd"] and doc["metadata"] == "m-7"
    assert doc["state"]["id"] == bundle.ids[-1]
    # the container as runc and crun show it to the agent: still being made
    assert doc["state"]["status"] == "creating" and doc["state"]["pid"] > 0
    assert len(got["fds"]) == 1
    try:
        assert os.readlink(f"/proc/self/fd/{got['fds'][0]}") == "anon_inode:seccomp notify"
    finally:
        os.close(got["fds"][0])


def test_podman_profile_overlap_as_runc(bundle, cgname, tmp_path):
    """podman's default profile allows setns(2) in its rule 1 and denies it with EPERM
    in rule 10: libseccomp keeps the first rule, so under runc (and crun) setns works,
    and it must under ocirun. sethostname is only in the EPERM rule: refused by both.
    With runc installed the same bundle runs under runc too, and the two must agree."""
    import json
    import shutil
    import subprocess
    from support import SHARED
    with open(os.path.join(SHARED, "fixtures", "seccomp-podman-default.json")) as f:
        bundle.config["linux"]["seccomp"] = json.load(f)
    caps = bundle.config["process"]["capabilities"]
    for kind in ("bounding", "effective", "permitted"):
        caps[kind] = caps[kind] + ["CAP_SYS_ADMIN"]
    bundle.config["linux"]["cgroupsPath"] = f"/{cgname}/c"
    script = ("nsenter --uts=/proc/self/ns/uts true; echo setns=$?; "
              "hostname other; echo sethostname=$?; grep Seccomp: /proc/self/status")
    r = bundle.run(["sh", "-c", script])
    assert r.returncode == 0, r.stderr
    assert "Seccomp:\t2" in r.stdout
    assert "setns=0" in r.stdout, (r.stdout, r.stderr)
    assert "sethostname=1" in r.stdout and "Operation not permitted" in r.stderr
    runc = shutil.which("runc")
    if runc is None:
        print("runc is not installed: the runc side of this test is skipped")
        return
    bundle.write()
    root = str(tmp_path / "runc-state")
    rr = subprocess.run([runc, "--root", root, "run", "-b", bundle.path, "r" + cgname[-8:]],
                        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert rr.returncode == 0, rr.stderr
    lines = [ln for ln in rr.stdout.splitlines() if "=" in ln or ln.startswith("Seccomp")]
    assert lines == [ln for ln in r.stdout.splitlines() if "=" in ln or ln.startswith("Seccomp")]
