"""Real kernel: load compiled programs with seccomp(2) in a forked child."""
import errno
import json
import os
import signal
import socket
import struct
import tempfile

import pytest

from ocirun.seccomp import connect_listener, load, prepare

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CAP_SYS_ADMIN for seccomp without no_new_privs)")


def profile(action, **kw):
    p = {"defaultAction": "SCMP_ACT_ALLOW",
         "syscalls": [dict({"names": ["mkdir", "mkdirat"], "action": action}, **kw)]}
    return p


def in_child(prepared, body, state=None):
    """Fork; the child loads the filter and runs body(); returns the wait status."""
    pid = os.fork()
    if pid == 0:
        code = 100
        try:
            load(prepared, state)
            code = body()
        except BaseException:
            code = 101
        finally:
            os._exit(code)
    return os.waitpid(pid, 0)[1]


def test_errno_38_gives_enosys(tmp_path):
    p = prepare(profile("SCMP_ACT_ERRNO", errnoRet=38), str(tmp_path / "c"))
    def body():
        try:
            os.mkdir(str(tmp_path / "x"))
            return 0
        except OSError as e:
            return e.errno
    st = in_child(p, body)
    assert os.WIFEXITED(st) and os.WEXITSTATUS(st) == errno.ENOSYS
    assert not (tmp_path / "x").exists()
    # the same from the cache
    p2 = prepare(profile("SCMP_ACT_ERRNO", errnoRet=38), str(tmp_path / "c"))
    assert p2.cached
    st = in_child(p2, body)
    assert os.WIFEXITED(st) and os.WEXITSTATUS(st) == errno.ENOSYS


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL"])
def test_kill_ends_with_sigsys(tmp_path, action):
    p = prepare(profile(action), None)
    st = in_child(p, lambda: os.mkdir(str(tmp_path / "x")) or 0)
    assert os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGSYS == 31


def test_status_shows_filter_mode_and_flags(tmp_path):
    p = prepare(dict(profile("SCMP_ACT_ERRNO"), flags=["SECCOMP_FILTER_FLAG_TSYNC",
                                                       "SECCOMP_FILTER_FLAG_LOG",
                                                       "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]), None)
    def body():
        with open("/proc/self/status") as f:
            status = f.read()
        return 7 if "\nSeccomp:\t2\n" in status else 8
    st = in_child(p, body)
    assert os.WIFEXITED(st) and os.WEXITSTATUS(st) == 7


def test_podman_profile_loads():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures",
                        "seccomp-podman-default.json")
    if not os.path.exists(path):
        pytest.skip(f"podman profile not found at {path}")
    with open(path) as f:
        p = prepare(json.load(f), None)
    def body():
        try:
            os.setns(0, 0) if hasattr(os, "setns") else None
        except OSError as e:
            return 3 if e.errno == errno.EPERM else 4
        return 5
    st = in_child(p, body)
    assert os.WIFEXITED(st) and os.WEXITSTATUS(st) in (3, 5)


def test_notify_sends_fd_and_state(tmp_path):
    sock_path = str(tmp_path / "agent.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(1)
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": sock_path,
            "listenerMetadata": "meta-1",
            "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_NOTIFY"}]}
    p = prepare(prof, None)
    assert p.notify and p.flags & 8
    connect_listener(p)
    state = b'{"ociVersion":"1.2.0","id":"c1","status":"creating","pid":1,"bundle":"/b"}'
    pid = os.fork()
    if pid == 0:
        try:
            load(p, state, pid=4242)
            os._exit(0)
        except BaseException:
            os._exit(1)
    p.listener[0].close()
    conn, _ = srv.accept()
    msg, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(4))
    st = os.waitpid(pid, 0)[1]
    assert os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0
    doc = json.loads(msg)
    assert doc["fds"] == ["seccompFd"] and doc["pid"] == 4242
    assert doc["metadata"] == "meta-1" and doc["state"]["id"] == "c1"
    assert doc["ociVersion"]
    level, kind, data = anc[0]
    assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
    fd = struct.unpack("i", data[:4])[0]
    assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:seccomp notify"
    os.close(fd)
    conn.close()
    srv.close()


def test_load_imports_nothing(tmp_path):
    """load() runs after pivot_root, where an import could run the container's files."""
    import builtins
    p = prepare(profile("SCMP_ACT_ERRNO", errnoRet=38), None)

    def body():
        return 0

    pid = os.fork()
    if pid == 0:
        def no_import(*a, **k):
            os._exit(55)
        builtins.__import__ = no_import
        try:
            load(p)
        except BaseException:
            os._exit(56)
        os._exit(0)
    st = os.waitpid(pid, 0)[1]
    assert os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0
