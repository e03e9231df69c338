"""Engines driving ocirun: a private podman and a private containerd for the tests.

Everything an engine test creates lives under one temp directory (storage, state, sockets,
config files) plus one cgroup parent named ocirun-engines-<random>; the teardown of each
engine removes containers, stops the daemon it started (by pid), unmounts what is left under
its directory and removes that cgroup parent.

An engine that is not installed skips the tests that need it, with the reason. An engine
that is installed but cannot run a container here even with runc is broken: the tests
that need it fail (errors at set-up), so a broken engine never leaves the suite green."""
import hashlib
import io
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import tarfile
import time

import pytest

from layout import controllers, hierarchies
from support import OCIRUN, REPO

RUNC = shutil.which("runc") or "/usr/sbin/runc"
# The runtime under test; OCIRUN_UNDER_TEST=/usr/sbin/runc checks the tests themselves.
RUNTIME = os.environ.get("OCIRUN_UNDER_TEST") or OCIRUN
IMAGE = "localhost/bb:latest"
CONF_TEMPLATE = os.path.join(REPO, "tests", "engines", "containers.conf")


def require_binary(name):
    path = shutil.which(name)
    if not path:
        pytest.skip(f"{name} is not installed")
    return path


def probe_or_fail(what, r):
    """`r` is the CompletedProcess of a command run with runc: it must have worked."""
    if r.returncode != 0:
        pytest.fail(f"{what} does not work on this machine even with runc "
                    f"(exit {r.returncode}): {(r.stderr or r.stdout).strip()[-800:]}")


# ---------------------------------------------------------------------------------------
# small helpers

def write_argv_logger(directory, target, logfile, name="ocirun"):
    """A shell wrapper DIRECTORY/NAME that appends its argv (one line per call) to
    LOGFILE and execs TARGET; its base name stays `name`, so podman still matches it
    against runtime_supports_json."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n"
                f"printf '%s\\n' \"$*\" >> '{logfile}'\n"
                f"exec '{target}' \"$@\"\n")
    os.chmod(path, 0o755)
    return path


def mounts_under(path):
    """Mount points at or below `path` (deepest first), from our mountinfo."""
    path = os.path.realpath(path)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == path or mp.startswith(path + "/"):
                out.append(mp)
    return sorted(set(out), key=len, reverse=True)


def umount_under(path):
    for mp in mounts_under(path):
        subprocess.run(["umount", "-l", mp], capture_output=True)


def remove_tree(path):
    umount_under(path)
    shutil.rmtree(path, ignore_errors=True)


def new_cgroup_parent():
    return "ocirun-engines-" + secrets.token_hex(4)


def remove_cgroup_parent(name):
    """Kill what is left in our cgroup parent (only engine-test processes are ever put
    there) and remove it from every hierarchy, deepest first. The tree is walked again
    on every try: an engine may still be making a child cgroup (podman's conmon) while
    the first walk runs, and that child would keep the parent busy."""
    if not name or "/" in name:
        return
    for h in hierarchies():
        top = os.path.join(h, name)
        deadline = time.time() + 5
        while os.path.isdir(top):
            dirs = [cur for cur, _d, _f in os.walk(top)]
            for d in dirs:
                for fname in ("freezer.state", "cgroup.freeze"):
                    p = os.path.join(d, fname)
                    if os.path.exists(p):
                        try:
                            with open(p, "w") as f:
                                f.write("THAWED" if fname == "freezer.state" else "0")
                        except OSError:
                            pass
                try:
                    with open(os.path.join(d, "cgroup.procs")) as f:
                        pids = [int(x) for x in f.read().split()]
                except OSError:
                    pids = []
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            for d in sorted(dirs, key=len, reverse=True):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            if os.path.isdir(top):
                if time.time() > deadline:
                    break
                time.sleep(0.02)


def bound_unix_paths():
    """Paths of the unix sockets some process still has bound (/proc/net/unix)."""
    out = set()
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            parts = line.split(None, 7)
            if len(parts) == 8:
                out.add(parts[7].strip())
    return out


def conmon_sockets():
    return {os.path.join("/tmp", n) for n in os.listdir("/tmp") if n.startswith("conmon-term.")}


def remove_orphan_sockets(paths):
    """conmon leaves its console socket in /tmp when the runtime fails; remove the ones
    a test made (`paths`) that no process holds any more."""
    held = bound_unix_paths()
    for p in paths:
        if p not in held:
            try:
                os.unlink(p)
            except OSError:
                pass


def run_in_pty(argv, env=None, timeout=30, input_text=None):
    """Run argv with a new pty as its controlling terminal and stdio; return
    (exit code, everything written to the terminal). On timeout the child (and its
    process group) is killed and the exit code is None."""
    import pty
    import termios

    master, slave = pty.openpty()

    def setup():
        os.setsid()
        import fcntl
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                         preexec_fn=setup, close_fds=True)
    os.close(slave)
    if input_text:
        os.write(master, input_text.encode())
    chunks = []
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([master], [], [], min(left, 0.2))
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave fd is closed
                    break
                if not data:
                    break
                chunks.append(data)
            elif p.poll() is not None:
                # exited; drain what is left without blocking
                while select.select([master], [], [], 0.05)[0]:
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        data = b""
                    if not data:
                        break
                    chunks.append(data)
                break
    finally:
        if timed_out:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            rc = p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        os.close(master)
    out = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    return (None if timed_out else rc), out


# ---------------------------------------------------------------------------------------
# an OCI image archive built with tar + JSON (no registry, no podman needed)

def _tar_tree(rootfs):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for cur, dirs, files in os.walk(rootfs):
            dirs.sort()
            for n in dirs + sorted(files):
                p = os.path.join(cur, n)
                ti = t.gettarinfo(p, os.path.relpath(p, rootfs))
                ti.mtime = 0
                ti.uname = ti.gname = ""
                if ti.isfile():
                    with open(p, "rb") as f:
                        t.addfile(ti, f)
                else:
                    t.addfile(ti)
    return buf.getvalue()


def make_oci_archive(rootfs, out, name=IMAGE):
    """Write an OCI image layout tarball of one uncompressed layer holding `rootfs`,
    named `name` (the annotation `ctr images import` reads)."""
    blobs = {}

    def blob(data):
        d = hashlib.sha256(data).hexdigest()
        blobs[d] = data
        return {"digest": "sha256:" + d, "size": len(data)}

    layer = blob(_tar_tree(rootfs))
    config = blob(json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
    }).encode())
    manifest = blob(json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}],
    }).encode())
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest,
        "annotations": {"io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rpartition(":")[2]}}]}
    with tarfile.open(out, "w") as t:
        def add(path, data):
            ti = tarfile.TarInfo(path)
            ti.size = len(data)
            ti.mode = 0o644
            t.addfile(ti, io.BytesIO(data))
        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", json.dumps(index).encode())
        for d, data in blobs.items():
            add("blobs/sha256/" + d, data)
    return out


# ---------------------------------------------------------------------------------------
# podman

# Paths podman (as root) touches outside its configured storage: containers/image's
# blob-info cache (written by `podman import`/`load`) and netavark's run directory.
HOST_LEFTOVERS = [
    "/var/lib/containers/cache/blob-info-cache-v1.boltdb",
    "/var/lib/containers/cache",
    "/var/lib/containers",
    "/run/containers/networks",
    "/run/containers",
]


class Podman:
    """podman with private storage, tmp dir and events log, configured through
    CONTAINERS_CONF / CONTAINERS_STORAGE_CONF files in `base`; ocirun registered as the
    runtime `ocirun`."""

    def __init__(self, base, ocirun=RUNTIME):
        self.base = base
        self.bin = shutil.which("podman")
        self.cgroup_parent = new_cgroup_parent()
        self.tmp = os.path.join(base, "tmp")
        os.makedirs(self.tmp, exist_ok=True)
        self.conf = os.path.join(base, "containers.conf")
        with open(CONF_TEMPLATE) as f:
            text = f.read().replace("@OCIRUN@", ocirun).replace("@TMP@", self.tmp)
        if "pids" not in controllers():
            # podman's default pids limit (2048) needs a pids controller, which the
            # unified layout of a hybrid host does not have
            text = text.replace("[containers]\n", "[containers]\npids_limit = 0\n", 1)
        with open(self.conf, "w") as f:
            f.write(text)
        self.storage_conf = os.path.join(base, "storage.conf")
        with open(self.storage_conf, "w") as f:
            f.write("[storage]\n"
                    'driver = "vfs"\n'
                    f'graphroot = "{base}/root"\n'
                    f'runroot = "{base}/runroot"\n')
        # conmon makes its console sockets in TMPDIR, podman its update files
        self.env = dict(os.environ, CONTAINERS_CONF=self.conf,
                        CONTAINERS_STORAGE_CONF=self.storage_conf, TMPDIR=self.tmp)
        self.env.pop("CONTAINERS_REGISTRIES_CONF", None)
        # podman writes these whatever its storage settings: remove them at the end if
        # this session made them
        self._host_paths = [p for p in HOST_LEFTOVERS if not os.path.lexists(p)]

    def argv(self, *args, runtime="ocirun"):
        pre = [self.bin]
        if runtime:
            pre += ["--runtime", runtime]
        return pre + list(args)

    def run_args(self, *extra, seccomp=False):
        """Options for `podman run`/`create`: our cgroup parent; seccomp off unless
        asked for (the default profile is tested on its own)."""
        out = ["--cgroup-parent", "/" + self.cgroup_parent]
        if not seccomp:
            out += ["--security-opt", "seccomp=unconfined"]
        return out + list(extra)

    def __call__(self, *args, runtime="ocirun", timeout=60, input=None):
        return subprocess.run(self.argv(*args, runtime=runtime), env=self.env,
                              capture_output=True, text=True, timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)

    def import_image(self, rootfs, name=IMAGE):
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        r = subprocess.run([self.bin, "import", "-q", "-", name], stdin=tar.stdout,
                           env=self.env, capture_output=True, text=True, timeout=120)
        tar.stdout.close()
        tar.wait()
        return r

    def teardown(self):
        if self.bin:
            self("rm", "-a", "-f", "-t", "0", runtime=None, timeout=120)
            self("rmi", "-a", "-f", runtime=None, timeout=120)
        remove_cgroup_parent(self.cgroup_parent)
        remove_tree(self.base)
        for p in self._host_paths:  # deepest first
            try:
                if os.path.isdir(p) and not os.path.islink(p):
                    os.rmdir(p)
                else:
                    os.unlink(p)
            except OSError:
                pass


# ---------------------------------------------------------------------------------------
# containerd

CONTAINERD_CONFIG = """\
# Private containerd for the engine tests: its own root, state and sockets; no CRI,
# no snapshotters that need special file systems, no debug or metrics listeners.
version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""
"""


class Containerd:
    """A containerd started by the tests, reached with `ctr -a SOCK -n NS`. The runtime's
    state root is kept under `base` (ctr --runc-root), FIFOs too (--fifo-dir); the namespace
name is random, and so is the cgroup parent ctr derives from it (/NAMESPACE/ID)."""

    def __init__(self, base):
        self.base = base
        self.bin = shutil.which("containerd")
        self.ctr_bin = shutil.which("ctr")
        self.sock = os.path.join(base, "containerd.sock")
        self.ns = "ocirun-engines-" + secrets.token_hex(4)
        self.runc_root = os.path.join(base, "runc")
        self.fifo_dir = os.path.join(base, "fifo")
        self.proc = None
        self.log = None
        self.ids = set()
        self._had_run_containerd = os.path.exists("/run/containerd")

    def start(self, timeout=20):
        os.makedirs(self.base, exist_ok=True)
        conf = os.path.join(self.base, "config.toml")
        with open(conf, "w") as f:
            f.write(CONTAINERD_CONFIG.format(d=self.base))
        self.log = open(os.path.join(self.base, "containerd.log"), "w+")
        # the shims inherit TMPDIR: their exec process files and console sockets go there
        tmp = os.path.join(self.base, "tmp")
        os.makedirs(tmp, exist_ok=True)
        self.proc = subprocess.Popen([self.bin, "--config", conf], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log, start_new_session=True,
                                     env=dict(os.environ, TMPDIR=tmp))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if os.path.exists(self.sock):
                r = self.ctr("version", timeout=10)
                if r.returncode == 0:
                    return None
            time.sleep(0.05)
        self.log.seek(0)
        return f"containerd did not come up: {self.log.read()[-800:]}"

    def ctr(self, *args, timeout=60, input=None):
        return subprocess.run([self.ctr_bin, "-a", self.sock, "-n", self.ns, *args],
                              capture_output=True, text=True, timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)

    def run_argv(self, runtime, *args):
        """`ctr run` with `runtime` as the runc binary, our runtime root, FIFO dir and
        cgroup parent; `args` are the rest: [flags] IMAGE ID [COMMAND...]."""
        self.ids.update(a for a in args if not a.startswith("-"))  # a superset of the ids
        # ctr asks for cpu shares 1024 by default, which needs a cpu controller: the
        # unified layout of a hybrid host does not have one
        cpu = [] if "cpu" in controllers() else ["--cpu-shares", "0"]
        return [self.ctr_bin, "-a", self.sock, "-n", self.ns, "run",
                "--runc-binary", runtime, "--runc-root", self.runc_root,
                "--fifo-dir", self.fifo_dir, *cpu, *args]

    def run(self, runtime, *args, timeout=60):
        return subprocess.run(self.run_argv(runtime, *args), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def remove(self, cid, runtime=RUNTIME):
        """Whatever state `cid` is in: kill, delete task and container."""
        self.ctr("task", "kill", "-s", "SIGKILL", cid, timeout=30)
        self.ctr("task", "delete", "-f", cid, timeout=30)
        self.ctr("container", "delete", cid, timeout=30)
        # a runtime that wedged inside the shim may have left its own state
        subprocess.run([runtime, "--root", os.path.join(self.runc_root, self.ns),
                        "delete", "-f", cid], capture_output=True, timeout=30)

    def shim_socket(self, cid):
        """Where containerd 1.6 puts the shim's socket: a fixed directory, the file named
        by sha256(ADDRESS/NAMESPACE/ID)."""
        h = hashlib.sha256(os.path.join(self.sock, self.ns, cid).encode()).hexdigest()
        return os.path.join("/run/containerd/s", h)

    def _own_shims(self):
        pids = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and \
                    self.sock.encode() in argv:
                pids.append(int(name))
        return pids

    def teardown(self):
        if self.proc is not None and self.proc.poll() is None:
            r = self.ctr("containers", "list", "-q", timeout=30)
            for cid in r.stdout.split():
                self.remove(cid)
            self.ctr("images", "remove", IMAGE, timeout=30)
            self.ctr("namespaces", "remove", self.ns, timeout=30)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self._own_shims():  # shims outlive containerd by design
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for cid in self.ids:  # a killed shim leaves its socket behind
            sock = self.shim_socket(cid)
            if os.path.exists(sock):
                try:
                    os.unlink(sock)
                except OSError:
                    pass
        if self.log:
            self.log.close()
        remove_cgroup_parent(self.ns)  # ctr puts each container at /NAMESPACE/ID
        remove_tree(self.base)
        if not self._had_run_containerd:  # the shims' socket dir, if empty
            for d in ("/run/containerd/s", "/run/containerd"):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
