"""Test support: paths, a busybox rootfs builder and the Bundle helper."""
import array
import json
import os
import socket
import threading
import shutil
import subprocess
import sys
import uuid

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("OCIRUN_SHARED", os.path.join(os.path.dirname(REPO), "shared"))
# The development launcher runs the checkout's modules; OCIRUN_COMMAND, if set, is the
# command the tests run instead (scripts/test.sh: ocirun's own interpreter in CI).
DEV_LAUNCHER = os.path.join(REPO, "bin", "ocirun")
OCIRUN = os.environ.get("OCIRUN_COMMAND") or DEV_LAUNCHER


def runtime_exe():
    """The program a process of the command under test runs (its /proc/PID/exe): the
    interpreter a launcher's #! line names, or the command itself when it is a program
    (ocirun's own interpreter)."""
    with open(OCIRUN, "rb") as f:
        first = f.readline(512)
    path = first[2:].split()[0].decode() if first.startswith(b"#!") else OCIRUN
    return os.path.realpath(path)
BUSYBOX = shutil.which("busybox") or "/bin/busybox"

sys.path.insert(0, REPO)


def need_root():
    if os.getuid() != 0:
        pytest.skip("integration test needs root (creates real containers)")
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed (apt-get install busybox-static)")


def make_rootfs(path):
    """A busybox rootfs: the static binary plus one symlink per applet."""
    os.makedirs(f"{path}/bin")
    shutil.copy2(BUSYBOX, f"{path}/bin/busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True).stdout.split()
    for a in applets:
        if a != "busybox":
            os.symlink("busybox", f"{path}/bin/{a}")
    for d in ("proc", "sys", "dev", "etc", "tmp", "root"):
        os.makedirs(f"{path}/{d}", exist_ok=True)
    with open(f"{path}/etc/passwd", "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    with open(f"{path}/etc/group", "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")




def base_config(args):
    with open(os.path.join(SHARED, "fixtures", "bench-config-noseccomp.json")) as f:
        cfg = json.load(f)
    cfg["process"]["args"] = args
    from layout import adapt_resources
    adapt_resources(cfg["linux"].get("resources"))
    return cfg


class Bundle:
    """A bundle directory plus a private state root; `run`/`ocirun` call the CLI
    (`command`: the development launcher unless a test sets another)."""

    def __init__(self, path, root, template):
        self.command = OCIRUN
        self.path = path
        self.root = root
        self.rootfs = f"{path}/rootfs"
        shutil.copytree(template, self.rootfs, symlinks=True)
        self.config = base_config(["/bin/true"])
        self.ids = []

    def write(self):
        with open(f"{self.path}/config.json", "w") as f:
            json.dump(self.config, f)

    def ocirun(self, *args, input=None, timeout=60, global_args=()):
        return subprocess.run([self.command, "--root", self.root, *global_args, *args],
                              capture_output=True, text=True, input=input, timeout=timeout,
                              cwd=self.path)

    def detach(self, args, cid=None, extra=()):
        """`run -d`: the container keeps our stdio, so give it files, not pipes
        (a pipe would stay open until the container exits)."""
        self.config["process"]["args"] = args
        self.write()
        cid = cid or self.new_id()
        if cid not in self.ids:
            self.ids.append(cid)
        with open(f"{self.path}/detach.err", "w+") as err:
            r = subprocess.run([self.command, "--root", self.root, "run", "-d", *extra, "-b", self.path,
                                cid],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                               timeout=60)
            err.seek(0)
            assert r.returncode == 0, err.read()
        return cid

    def create(self, cid=None, *extra):
        """`create` leaves the init holding our stdio: give it files, not pipes."""
        self.write()
        cid = cid or self.new_id()
        if cid not in self.ids:
            self.ids.append(cid)
        with open(f"{self.path}/create.err", "w+") as err:
            r = subprocess.run([self.command, "--root", self.root, "create", *extra, "-b", self.path,
                                cid],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                               timeout=60)
            err.seek(0)
            r.stderr = err.read()
        return cid, r

    def state(self, cid):
        r = self.ocirun("state", cid)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def new_id(self):
        cid = "t" + uuid.uuid4().hex[:12]
        self.ids.append(cid)
        return cid

    def run(self, args=None, extra=(), **kw):
        if args is not None:
            self.config["process"]["args"] = args
        self.write()
        return self.ocirun("run", *extra, "-b", self.path, self.new_id(), **kw)

    def use_user_namespace(self, host_id, own_bundle=False):
        """A new user namespace mapping container ids 0-65535 to host_id...: every
        directory above the bundle becomes searchable for the mapped root, and with
        `own_bundle` the bundle's files become the mapped root's."""
        linux = self.config["linux"]
        linux["namespaces"].append({"type": "user"})
        linux["uidMappings"] = [{"containerID": 0, "hostID": host_id, "size": 65536}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": host_id, "size": 65536}]
        d = self.path
        while d != "/":
            os.chmod(d, os.stat(d).st_mode | 0o011)
            d = os.path.dirname(d)
        if own_bundle:
            for dirpath, dirnames, filenames in os.walk(self.path):
                for n in dirnames + filenames:
                    os.lchown(os.path.join(dirpath, n), host_id, host_id)
            os.lchown(self.path, host_id, host_id)

    def cleanup(self):
        for cid in self.ids:
            subprocess.run([self.command, "--root", self.root, "delete", "-f", cid],
                           capture_output=True)


def console_server(path):
    """Accept one connection on a unix socket and receive the pty master."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    got = {}

    def accept():
        conn, _ = srv.accept()
        fds = array.array("i")
        msg, anc, _, _ = conn.recvmsg(1024, socket.CMSG_SPACE(4))
        for level, typ, data in anc:
            fds.frombytes(data[:4])
        got["fd"] = fds[0]
        got["name"] = msg.decode()
        conn.close()
        srv.close()
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    return t, got


def read_all(fd, limit=65536):
    """Everything a pty master gives until the other side closes (EIO)."""
    out = b""
    while True:
        try:
            chunk = os.read(fd, limit)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out
