"""A rootless session for the tests: an ordinary user made for them, ocirun installed
where that user can read it, and podman and runc run as that user.

The user is `ocirun-rl` (comment "ocirun rootless tests"), made once with useradd and
kept: a later session finds it and reuses it. Its /etc/subuid and /etc/subgid range is
the one it has, or 65536 ids above every range listed there (usermod --add-subuids).
Everything else lives in one temp directory per session, removed at the end: ocirun
installed there (install.sh, PREFIX; a clean clone may sit where the user cannot read
it), the user's HOME, XDG_RUNTIME_DIR, podman's storage (vfs) and configuration. The
teardown removes the user's containers and images, ends every process of the user and of
its subordinate ids (only the tests start any), and removes the directory.

Commands run as the user through `setpriv --reuid --regid --init-groups` with an
environment of its own (no systemd user session: none is started)."""
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

from support import REPO, make_rootfs

USER = "ocirun-rl"
COMMENT = "ocirun rootless tests"
RANGE = 65536
FIRST = 1_000_000  # ranges go above this and above every range /etc/sub?id lists
IMAGE = "localhost/bb:latest"
RUNC = shutil.which("runc") or "/usr/sbin/runc"
# case -> {runtime: what it gave}: the table tests/conftest.py prints at the end
RESULTS = {}
# the debian packages the rootless tests need (scripts/test.sh installs them)
PACKAGES = {"newuidmap": "uidmap", "newgidmap": "uidmap", "slirp4netns": "slirp4netns"}

CONTAINERS_CONF = """\
# containers.conf of the rootless tests' user (CONTAINERS_CONF)
[containers]
# no network unless a test asks for one (--network slirp4netns)
netns = "none"
# above the hard limit a process may raise to on the test machines otherwise
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
# no systemd user session on the test machines
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime_supports_json = ["ocirun", "runc"]

[engine.runtimes]
ocirun = ["{ocirun}"]
"""

STORAGE_CONF = """\
[storage]
driver = "vfs"
"""


def _ranges(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                    out.append((parts[0], int(parts[1]), int(parts[2])))
    except FileNotFoundError:
        pass
    return out


def ensure_user():
    """The tests' user (made if missing, with a subordinate range): -> (pw entry,
    subuid start, subgid start), or a reason it cannot be had."""
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        r = subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin",
                            "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", "-c", COMMENT,
                            USER], capture_output=True, text=True)
        if r.returncode != 0:
            return f"useradd {USER} failed: {r.stderr.strip()}"
        pw = pwd.getpwnam(USER)
    if pw.pw_gecos != COMMENT:
        return f"a user {USER} exists that the tests did not make (comment {pw.pw_gecos!r})"
    starts = []
    ours = (USER, str(pw.pw_uid))
    # one start for both, above every other user's range in either file
    top = max([s + c for name, s, c in _ranges("/etc/subuid") + _ranges("/etc/subgid")
               if name not in ours] + [FIRST])
    start = -(-top // RANGE) * RANGE
    for kind in ("uid", "gid"):
        path = f"/etc/sub{kind}"
        mine = [(s, c) for name, s, c in _ranges(path) if name in ours]
        if not mine:
            r = subprocess.run(["usermod", f"--add-sub{kind}s", f"{start}-{start + RANGE - 1}",
                                USER], capture_output=True, text=True)
            if r.returncode != 0:
                return f"usermod --add-sub{kind}s failed: {r.stderr.strip()}"
            mine = [(start, RANGE)]
        if mine[0][1] < RANGE:
            return f"{USER}'s /etc/sub{kind} range is smaller than {RANGE}"
        starts.append(mine[0][0])
    return pw, starts[0], starts[1]


def missing_tools():
    return sorted({pkg for tool, pkg in PACKAGES.items() if not shutil.which(tool)}
                  | {t for t in ("podman", "setpriv") if not shutil.which(t)}
                  | ({"runc"} if not os.path.exists(RUNC) else set()))


class Session:
    """One rootless session: see the module docstring."""

    def __init__(self, pw, subuid, subgid, ocirun=None):
        self.pw = pw
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.subuid, self.subgid = subuid, subgid
        self.base = tempfile.mkdtemp(prefix="ocirun-rootless-")
        os.chmod(self.base, 0o755)  # the user reaches its directories and ocirun
        self.home = self.own_dir("home")
        self.run_dir = self.own_dir("run")
        self.bundles = self.own_dir("bundles")
        self.ocirun = ocirun or self._install()
        self.conf = os.path.join(self.base, "containers.conf")
        with open(self.conf, "w") as f:
            f.write(CONTAINERS_CONF.format(ocirun=self.ocirun))
        os.chmod(self.conf, 0o644)
        cfg = self.own_dir("home/.config/containers")
        with open(os.path.join(cfg, "storage.conf"), "w") as f:
            f.write(STORAGE_CONF)
        os.chown(os.path.join(cfg, "storage.conf"), self.uid, self.gid)
        self.env = {
            "HOME": self.home, "USER": USER, "LOGNAME": USER, "LANG": "C.UTF-8",
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "XDG_RUNTIME_DIR": self.run_dir,
            "XDG_CONFIG_HOME": os.path.join(self.home, ".config"),
            "XDG_DATA_HOME": os.path.join(self.home, ".local/share"),
            "TMPDIR": self.own_dir("home/tmp"),
            "CONTAINERS_CONF": self.conf,
        }
        self.rootfs = os.path.join(self.base, "rootfs")
        make_rootfs(self.rootfs)

    def own_dir(self, rel, mode=0o700):
        """base/rel, made and owned by the user (its parents too, below base)."""
        path = self.base
        for part in rel.split("/"):
            path = os.path.join(path, part)
            if not os.path.isdir(path):
                os.mkdir(path, mode)
                os.chown(path, self.uid, self.gid)
        return path

    def _install(self):
        prefix = os.path.join(self.base, "prefix")
        r = subprocess.run(["./install.sh", "--no-demo"], cwd=REPO, capture_output=True,
                           text=True, env=dict(os.environ, PREFIX=prefix), timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"install.sh failed: {r.stdout}{r.stderr}")
        for cur, dirs, files in os.walk(prefix):  # whatever the umask was
            for n in dirs + files:
                p = os.path.join(cur, n)
                os.chmod(p, os.stat(p).st_mode | 0o444 | (0o111 if os.path.isdir(p) else 0))
        return os.path.join(prefix, "bin", "ocirun")

    # --- commands as the user --------------------------------------------------------------

    def argv(self, argv):
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
                "--", *argv]

    def run(self, argv, cwd=None, timeout=60, input=None, env=None, detached=False):
        """argv as the user. `detached`: a command that leaves a process holding its
        stdio (create, run -d): files, not pipes, or the wait for EOF would never end."""
        if detached:
            with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
                r = subprocess.run(self.argv(argv), env=dict(self.env, **(env or {})),
                                   cwd=cwd or self.home, stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=err, timeout=timeout)
                out.seek(0)
                err.seek(0)
                r.stdout, r.stderr = out.read(), err.read()
            return r
        return subprocess.run(self.argv(argv), env=dict(self.env, **(env or {})),
                              cwd=cwd or self.home, capture_output=True, text=True,
                              timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)

    def podman(self, *args, runtime="ocirun", timeout=90):
        pre = ["podman"] + (["--runtime", runtime] if runtime else [])
        return self.run(pre + list(args), timeout=timeout)

    def runtime(self, name):
        """The runtime binary the user runs for `name` ("ocirun" or "runc")."""
        return self.ocirun if name == "ocirun" else RUNC

    # --- what the user owns ----------------------------------------------------------------

    def ids(self):
        return ({self.uid} | set(range(self.subuid, self.subuid + RANGE)))

    def processes(self):
        """pids of every process of the user or of its subordinate ids."""
        mine = self.ids()
        out = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/status") as f:
                    for line in f:
                        if line.startswith("Uid:"):
                            if int(line.split()[1]) in mine:
                                out.append(int(name))
                            break
            except OSError:
                continue
        return out

    def kill_all(self):
        for _ in range(50):
            pids = self.processes()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)

    def teardown(self):
        try:
            self.podman("rm", "-a", "-f", "-t", "0", runtime=None, timeout=120)
            self.podman("rmi", "-a", "-f", runtime=None, timeout=120)
        except (subprocess.TimeoutExpired, OSError):
            pass
        self.kill_all()
        for cur, _dirs, _files in os.walk(self.base, topdown=False):
            if os.path.ismount(cur):
                subprocess.run(["umount", "-l", cur], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)
