"""exec and terminals against real containers."""
import json
import os

import pytest

from support import console_server, read_all


@pytest.fixture
def running(bundle):
    cid = bundle.detach(["sleep", "120"])
    return bundle, cid, bundle.state(cid)["pid"]


def test_exec_joins_namespaces_and_passes_exit_code(running):
    bundle, cid, pid = running
    r = bundle.ocirun("exec", cid, "sh", "-c", "for n in pid net ipc uts mnt; do readlink /proc/self/ns/$n; done; exit 5")
    assert r.returncode == 5, r.stderr
    want = [os.readlink(f"/proc/{pid}/ns/{n}") for n in ("pid", "net", "ipc", "uts", "mnt")]
    assert r.stdout.split() == want


def test_exec_sees_container_root(running):
    bundle, cid, _ = running
    open(f"{bundle.rootfs}/marker", "w").write("inside\n")
    assert bundle.ocirun("exec", cid, "cat", "/marker").stdout == "inside\n"


def test_exec_user_is_honoured(running):
    # CVE-2026-30892: `exec -u 1` must not run as root
    bundle, cid, _ = running
    assert bundle.ocirun("exec", "-u", "1", cid, "id", "-u").stdout == "1\n"
    r = bundle.ocirun("exec", "--user", "1000:1001", "-g", "5", cid, "id")
    assert "uid=1000 gid=1001 groups=5" in r.stdout, r.stdout + r.stderr


def test_exec_env_cwd(running):
    bundle, cid, _ = running
    r = bundle.ocirun("exec", "-e", "FOO=bar", "--cwd", "/tmp", cid, "sh", "-c", "echo $FOO; pwd")
    assert r.stdout == "bar\n/tmp\n", r.stderr


def test_exec_process_file_and_detach(running, tmp_path):
    bundle, cid, _ = running
    proc = {"args": ["sh", "-c", "echo $X > /tmp/out; sleep 1"], "env": ["X=42", "PATH=/bin"], "cwd": "/",
            "user": {"uid": 0, "gid": 0}}
    pf = tmp_path / "process.json"
    pf.write_text(json.dumps(proc))
    import subprocess
    from support import OCIRUN
    r = subprocess.run([OCIRUN, "--root", bundle.root, "exec", "--process", str(pf), "--detach",
                        "--pid-file", str(tmp_path / "exec.pid"), cid],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert r.returncode == 0, r.stderr
    pid = int((tmp_path / "exec.pid").read_text())
    assert pid > 0
    import time
    for _ in range(100):
        if os.path.exists(f"{bundle.rootfs}/tmp/out"):
            break
        time.sleep(0.02)
    assert open(f"{bundle.rootfs}/tmp/out").read() == "42\n"


def test_exec_only_stdio_fds(running):
    """Inheritable fds handed to `exec` (test_run.py's set) stay out of the process."""
    import subprocess
    from support import OCIRUN
    from test_run import fds_seen, handing_fds
    bundle, cid, _ = running
    put, pipe = handing_fds()
    try:
        r = subprocess.run([OCIRUN, "--root", bundle.root, "exec", cid, "ls", "/proc/self/fd"],
                           preexec_fn=put, close_fds=False, capture_output=True, text=True,
                           timeout=60)
    finally:
        for fd in pipe:
            os.close(fd)
    assert r.returncode == 0, r.stderr
    assert fds_seen(r.stdout) == [0, 1, 2], r.stdout


def test_exec_caps(running):
    bundle, cid, _ = running
    r = bundle.ocirun("exec", "--cap", "CAP_SYS_ADMIN", "--no-new-privs", cid, "cat", "/proc/self/status")
    st = dict(l.split(":\t", 1) for l in r.stdout.splitlines() if ":\t" in l)
    assert int(st["CapEff"], 16) >> 21 & 1
    assert st["NoNewPrivs"].strip() == "1"
    assert int(st["CapInh"], 16) == 0


def test_exec_errors(running, tmp_path):
    bundle, cid, _ = running
    r = bundle.ocirun("exec", "nope", "true")
    assert r.returncode == 1 and "does not exist" in r.stderr
    r = bundle.ocirun("exec", cid, "nosuchcmd")
    assert r.returncode == 1 and "executable file not found in $PATH" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"args": [], "cwd": "/"}')
    r = bundle.ocirun("exec", "--process", str(bad), cid)
    assert r.returncode == 1 and "process.args" in r.stderr and len(r.stderr.splitlines()) == 1
    r = bundle.ocirun("exec", "-u", "-1", cid, "true")
    assert r.returncode == 1 and "uid" in r.stderr
    bundle.ocirun("kill", cid, "KILL")
    import time
    for _ in range(100):
        if bundle.state(cid)["status"] == "stopped":
            break
        time.sleep(0.02)
    r = bundle.ocirun("exec", cid, "true")
    assert r.returncode == 1 and "container not running" in r.stderr


def test_create_with_console_socket(bundle, tmp_path):
    sock = str(tmp_path / "console.sock")
    t, got = console_server(sock)
    bundle.config["process"]["terminal"] = True
    bundle.config["process"]["consoleSize"] = {"height": 25, "width": 91}
    bundle.config["process"]["args"] = ["sh", "-c", "tty; stty size; ls -l /dev/console"]
    cid, r = bundle.create(None, "--console-socket", sock)
    assert r.returncode == 0, r.stderr
    t.join(5)
    assert got["name"].startswith("/dev/pts/")
    assert bundle.ocirun("start", cid).returncode == 0
    out = read_all(got["fd"]).decode()
    os.close(got["fd"])
    assert "/dev/pts/0" in out and "25 91" in out, out
    assert "136,   0" in out  # /dev/console is the pty of the container's devpts


def test_exec_tty_with_console_socket(running, tmp_path):
    bundle, cid, _ = running
    sock = str(tmp_path / "exec.sock")
    t, got = console_server(sock)
    r = bundle.ocirun("exec", "-t", "--console-socket", sock, "-d", cid, "sh", "-c", "tty; echo done")
    assert r.returncode == 0, r.stderr
    t.join(5)
    out = read_all(got["fd"]).decode()
    os.close(got["fd"])
    assert "/dev/pts/" in out and "done" in out, out


def test_terminal_without_console_socket_when_detached(bundle):
    bundle.config["process"]["terminal"] = True
    cid, r = bundle.create()
    assert r.returncode == 1 and "console-socket" in r.stderr
    assert not os.path.exists(f"{bundle.root}/{cid}")


def test_console_socket_not_a_socket(bundle, tmp_path):
    bundle.config["process"]["terminal"] = True
    notsock = tmp_path / "file"
    notsock.write_text("")
    cid, r = bundle.create(None, "--console-socket", str(notsock))
    assert r.returncode == 1 and "--console-socket" in r.stderr and len(r.stderr.splitlines()) == 1
    assert not os.path.exists(f"{bundle.root}/{cid}")


def test_exec_in_user_namespace_container(bundle):
    bundle.use_user_namespace(200000)
    cid = bundle.detach(["sleep", "60"])
    r = bundle.ocirun("exec", cid, "sh", "-c", "id -u; cat /proc/self/uid_map")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:4] == ["0", "0", "200000", "65536"]
