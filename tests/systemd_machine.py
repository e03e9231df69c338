"""A real systemd to test against: systemd 252 booted as PID 1 of a container that ocirun
itself runs (its own pid, mount, cgroup, network, ipc and uts namespaces), never over the
host's filesystem.

The machine's root is an empty skeleton: the host's /usr and /etc are bound read-only
(/bin, /lib... are the usual symlinks into /usr), /run, /tmp and /var are tmpfs of its
own, /proc/sys and the other global /proc files are read-only, /sys is read-only, and
its /etc/systemd/system is a directory of this fixture: it masks every unit of the host
that could touch global state (systemd-tmpfiles-* cleans /tmp and /var/tmp,
systemd-sysctl writes fs.protected_*, binfmt, udev, the random seed, remount-fs...) and
boots a target that starts only the D-Bus system bus and the agent
(tests/systemd_agent.py), which runs the tests' commands inside the machine.

Layouts: "hybrid" mounts what the host has (v1 controllers, cgroup2 at
/sys/fs/cgroup/unified, name=systemd) rooted at the machine's own cgroups (a cgroup
namespace; the fixture puts the launcher in a name=systemd cgroup of its own, which
ocirun's cgroupfs manager does not make); "unified" binds the machine's own directory of
the cgroup2 hierarchy at /sys/fs/cgroup (no controllers are enabled there on this host,
as on a host whose v1 hierarchies hold them all).

The bus socket (/run/dbus in the machine) is a directory of the fixture, so the host
sees it: BASE/dbus/system_bus_socket. Teardown kills the machine through ocirun (by its
pid), removes its cgroups and BASE, and checks that the host's /tmp, /var/tmp and the
global sysctls systemd would touch are what they were before."""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time

from layout import cgroup2_root
from support import OCIRUN, REPO

SYSTEMD = "/lib/systemd/systemd"
UNIT_DIR = "/lib/systemd/system"
CGROUP = "/sys/fs/cgroup"
NAMED = f"{CGROUP}/systemd"  # the host's name=systemd hierarchy (hybrid)
# global state a booting systemd would change if it could (ENVIRONMENT.md)
SYSCTLS = ("fs/protected_hardlinks", "fs/protected_symlinks", "fs/protected_fifos",
           "fs/protected_regular", "fs/file-max", "fs/nr_open", "kernel/core_pattern",
           "kernel/pid_max", "kernel/printk", "kernel/sysrq", "net/unix/max_dgram_qlen",
           "vm/max_map_count", "fs/inotify/max_user_instances")
KEEP = {"dbus.service", "dbus.socket"}
MASKED_KINDS = (".service", ".socket", ".timer", ".path", ".mount", ".automount", ".swap")
TARGET = "ocirun-machine.target"
# PREFIX of an installed command under test (PREFIX/bin/ocirun, its PREFIX/lib/ocirun)
_PREFIX = (None if os.path.realpath(OCIRUN).startswith(REPO + "/")
           else os.path.dirname(os.path.dirname(os.path.realpath(OCIRUN))))


def host_snapshot():
    """Global state a systemd booted by mistake over the host would change: the sysctls,
    which hierarchy holds each cgroup controller, the root of cgroup2, and the /tmp and
    /var/tmp directories themselves (their contents are checked with canaries)."""
    snap = {}
    for d in ("/tmp", "/var/tmp"):
        try:
            st = os.stat(d)
            snap[d] = (st.st_ino, st.st_mode)
        except OSError:
            snap[d] = None
    for name in SYSCTLS:
        try:
            with open(f"/proc/sys/{name}") as f:
                snap[name] = f.read()
        except OSError:
            snap[name] = None
    # which hierarchy holds each controller (a systemd that mounted a v1 hierarchy for a
    # controller the host leaves unbound would move it off cgroup2 for the whole host)
    snap["cgroup hierarchies"] = _hierarchies()
    return snap


class Canaries:
    """Files planted in /tmp and /var/tmp, aged 60 days: systemd-tmpfiles would remove
    them (`D /tmp` at boot, the age of `q /var/tmp 30d` on clean). Other work on this
    machine adds and removes its own files meanwhile, so the contents are judged by
    these alone."""

    def __init__(self):
        import tempfile
        self.paths = []
        old = time.time() - 60 * 86400
        for d in ("/tmp", "/var/tmp"):
            if not os.path.isdir(d):
                continue
            top = tempfile.mkdtemp(prefix="ocirun-canary-", dir=d)
            f = os.path.join(top, "old")
            with open(f, "w") as fh:
                fh.write("canary\n")
            for p in (f, top):
                os.utime(p, (old, old))
            self.paths += [top, f]

    def missing(self):
        return [p for p in self.paths if not os.path.exists(p)]

    def remove(self):
        for p in reversed(self.paths):
            try:
                (os.rmdir if os.path.isdir(p) else os.unlink)(p)
            except OSError:
                pass


def canaries():
    return Canaries()


def snapshot_changes(before, after, planted=None):
    out = [f"{p} is gone" for p in (planted.missing() if planted else ())]
    for key, was in before.items():
        now = after.get(key)
        if was != now:
            where = key if " " in key or key.startswith("/") else f"/proc/sys/{key}"
            out.append(f"{where}: {was!r} -> {now!r}")
    return out


def _hierarchies():
    """{controller: hierarchy id} from /proc/cgroups (0: cgroup2 or unbound)."""
    out = {}
    with open("/proc/cgroups") as f:
        for line in f:
            if not line.startswith("#"):
                name, hier, _n, _enabled = line.split()
                out[name] = int(hier)
    return out


class Result:
    __slots__ = ("returncode", "stdout", "stderr", "args")

    def __init__(self, args, returncode, stdout, stderr):
        self.args = args
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self):
        return (f"Result({self.args!r}, rc={self.returncode}, stdout={self.stdout[-500:]!r}, "
                f"stderr={self.stderr[-1500:]!r})")


class Machine:
    """One booted systemd. `run(argv)` runs a command inside it (through the agent)."""

    def __init__(self, base, mode):
        assert mode in ("hybrid", "unified")
        self.base = base
        self.mode = mode
        self.name = "ocirun-sdm-" + secrets.token_hex(4)
        self.root = os.path.join(base, "state")  # the host ocirun's --root for the machine
        self.bundle = os.path.join(base, "machine")
        self.dbus_dir = os.path.join(base, "dbus")
        self.agent_sock = os.path.join(base, "agent.sock")
        self.console = os.path.join(base, "console.log")
        self.named = os.path.join(NAMED, self.name) if mode == "hybrid" else None
        self.pid = None
        self.started = False
        self.delete_error = None
        self.env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "LANG": "C.UTF-8", "HOME": "/root"}

    # -- the bus, seen from the host --------------------------------------------------

    @property
    def bus_address(self):
        return f"unix:path={self.dbus_dir}/system_bus_socket"

    def busctl(self, *args, timeout=20):
        return subprocess.run(["busctl", f"--address={self.bus_address}", *args],
                              capture_output=True, text=True, timeout=timeout)

    def manager_property(self, name):
        r = self.busctl("get-property", "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                        "org.freedesktop.systemd1.Manager", name)
        return r.stdout.strip() if r.returncode == 0 else None

    def unit_state(self, unit):
        """ActiveState of `unit`, or None when systemd has no such unit loaded."""
        r = self.busctl("call", "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                        "org.freedesktop.systemd1.Manager", "GetUnit", "s", unit)
        if r.returncode != 0:
            return None
        path = r.stdout.split()[-1].strip('"')
        r = self.busctl("get-property", "org.freedesktop.systemd1", path,
                        "org.freedesktop.systemd1.Unit", "ActiveState")
        return r.stdout.split()[-1].strip('"') if r.returncode == 0 else None

    # -- boot -----------------------------------------------------------------------

    def _skeleton(self):
        rootfs = os.path.join(self.bundle, "rootfs")
        os.makedirs(rootfs)
        for d in ("usr", "etc", "proc", "sys", "dev", "run", "tmp", "var", "root", "work"):
            os.makedirs(os.path.join(rootfs, d))
        for link in ("bin", "sbin", "lib", "lib64"):
            os.symlink(f"usr/{link}", os.path.join(rootfs, link))
        units = os.path.join(self.base, "units")
        os.makedirs(units)
        masked = []
        for name in sorted(os.listdir(UNIT_DIR)):
            if name.endswith(MASKED_KINDS) and name not in KEEP:
                os.symlink("/dev/null", os.path.join(units, name))
                masked.append(name)
        with open(os.path.join(units, TARGET), "w") as f:
            f.write("[Unit]\nDescription=ocirun test machine\n"
                    "Wants=dbus.socket dbus.service ocirun-agent.service\n"
                    "After=dbus.socket dbus.service ocirun-agent.service\nAllowIsolate=yes\n")
        # our own bus units: the host's pull sysinit.target through default dependencies
        with open(os.path.join(units, "dbus.socket"), "w") as f:
            f.write("[Unit]\nDescription=D-Bus System Message Bus Socket\nDefaultDependencies=no\n"
                    "[Socket]\nListenStream=/run/dbus/system_bus_socket\n")
        with open(os.path.join(units, "dbus.service"), "w") as f:
            f.write("[Unit]\nDescription=D-Bus System Message Bus\nRequires=dbus.socket\n"
                    "DefaultDependencies=no\n"
                    "[Service]\nType=notify\nNotifyAccess=main\n"
                    "ExecStart=/usr/bin/dbus-daemon --system --address=systemd: --nofork "
                    "--nopidfile --systemd-activation --syslog-only\n")
        with open(os.path.join(units, "ocirun-agent.service"), "w") as f:
            f.write("[Unit]\nDescription=ocirun test agent\nDefaultDependencies=no\n"
                    "[Service]\nType=simple\nKillMode=mixed\n"
                    f"ExecStart=/usr/bin/python3 -I {REPO}/tests/systemd_agent.py {self.agent_sock}\n")
        return rootfs, units, masked

    def _config(self, units):
        mounts = [
            {"destination": "/proc", "type": "proc", "source": "proc",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ]
        if self.mode == "hybrid":
            mounts.append({"destination": CGROUP, "type": "cgroup", "source": "cgroup",
                           "options": ["nosuid", "noexec", "nodev", "relatime", "rw"]})
            # systemd mounts a v1 hierarchy for every controller of /proc/cgroups that
            # is not mounted yet: for one the host leaves on cgroup2 (hugetlb here) that
            # makes a new hierarchy and takes the controller off cgroup2, host-wide.
            # An empty read-only tmpfs where it would go makes it skip them.
            for name in _unmounted_controller_dirs():
                mounts.append({"destination": f"{CGROUP}/{name}", "type": "tmpfs",
                               "source": "tmpfs",
                               "options": ["ro", "nosuid", "noexec", "nodev", "size=4k"]})
        else:
            # the machine's own directory of the cgroup2 hierarchy (ocirun made it
            # before the init mounts anything)
            mounts.append({"destination": CGROUP, "type": "bind",
                           "source": f"{cgroup2_root()}/{self.name}",
                           "options": ["rbind", "nosuid", "noexec", "nodev", "rw"]})
        ro_bind = ["rbind", "ro", "nosuid", "nodev"]
        mounts += [
            {"destination": "/usr", "type": "bind", "source": "/usr", "options": ro_bind},
            {"destination": "/etc", "type": "bind", "source": "/etc", "options": ro_bind},
            {"destination": "/etc/systemd/system", "type": "bind", "source": units,
             "options": ["bind", "ro"]},
            {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=755"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=1777"]},
            {"destination": "/var", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=755"]},
            {"destination": "/run/dbus", "type": "bind", "source": self.dbus_dir,
             "options": ["bind", "rw"]},
            {"destination": REPO, "type": "bind", "source": REPO, "options": ["rbind", "ro"]},
            # the command under test where it is installed outside the checkout
            # (OCIRUN_COMMAND: ocirun's own interpreter in CI), at the same path inside
            *([{"destination": _PREFIX, "type": "bind", "source": _PREFIX,
                "options": ["rbind", "ro"]}] if _PREFIX else []),
            # the tests' files (bundles, sockets, logs) at the same path inside
            {"destination": self.base, "type": "bind", "source": self.base,
             "options": ["bind", "rw"]},
        ]
        caps = [c for c in _all_caps() if c != "CAP_SYS_RESOURCE"]
        return {
            "ociVersion": "1.0.2",
            "process": {
                "terminal": False,
                "user": {"uid": 0, "gid": 0},
                "args": [SYSTEMD, f"--unit={TARGET}", "--log-target=console",
                         "--log-level=info", "--show-status=false"],
                "env": ["container=ocirun", "PATH=" + self.env["PATH"]],
                "cwd": "/",
                "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
                "noNewPrivileges": False,
            },
            "root": {"path": "rootfs", "readonly": True},
            "hostname": "ocirun-machine",
            "mounts": mounts,
            "linux": {
                "cgroupsPath": "/" + self.name,
                "namespaces": [{"type": t} for t in
                               ("pid", "mount", "ipc", "uts", "network", "cgroup")],
                # systemd writes global sysctls at boot (fs.file-max, fs.nr_open) and
                # its sysctl service would write fs.protected_*: read-only here
                "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus",
                                  "/proc/fs", "/proc/asound"],
                "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list",
                                "/proc/sched_debug", "/proc/acpi", "/proc/scsi",
                                "/sys/firmware"],
            },
        }

    def _into_named_cgroup(self):
        """preexec of the launcher (hybrid): a name=systemd cgroup of our own, so that
        the machine's cgroup namespace roots that hierarchy there, not at the host's."""
        with open(os.path.join(self.named, "cgroup.procs"), "w") as f:
            f.write("0")

    def start(self, timeout=60):
        os.makedirs(self.base, exist_ok=True)
        os.makedirs(self.dbus_dir)
        _rootfs, units, masked = self._skeleton()
        self.masked = masked
        with open(os.path.join(self.bundle, "config.json"), "w") as f:
            json.dump(self._config(units), f, indent=1)
        if self.named:
            os.mkdir(self.named)
        with open(self.console, "w") as out:
            r = subprocess.run([OCIRUN, "--root", self.root, "run", "-d", "--pid-file",
                                os.path.join(self.base, "machine.pid"), "-b", self.bundle,
                                self.name], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                               preexec_fn=self._into_named_cgroup if self.named else None,
                               timeout=60)
        self.started = True
        if r.returncode != 0:
            return f"ocirun run of the machine failed: {self._console_tail()}"
        with open(os.path.join(self.base, "machine.pid")) as f:
            self.pid = int(f.read())
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            if not os.path.exists(f"/proc/{self.pid}"):
                return f"systemd exited during boot: {self._console_tail()}"
            if os.path.exists(self.agent_sock) and os.path.exists(
                    os.path.join(self.dbus_dir, "system_bus_socket")):
                state = self.manager_property("SystemState")
                if state and ("running" in state or "degraded" in state):
                    r = self.run(["true"], timeout=10)
                    if r.returncode == 0:
                        return None
            time.sleep(0.1)
        return f"systemd did not boot in {timeout}s (SystemState {state}): {self._console_tail()}"

    def _console_tail(self, n=3000):
        try:
            with open(self.console) as f:
                return f.read()[-n:]
        except OSError:
            return ""

    # -- commands inside ------------------------------------------------------------

    def _request(self, req, fds):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.agent_sock)
        socket.send_fds(s, [json.dumps(req).encode() + b"\n"], fds)
        return s

    def run(self, argv, env=None, cwd=None, input=None, timeout=60, stdin=None):
        """Run argv inside the machine and wait: a Result with its output."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        if stdin is None:
            in_r, in_w = os.pipe()
        else:
            in_r, in_w = stdin, None
        full_env = dict(self.env, **(env or {}))
        try:
            s = self._request({"argv": list(argv), "env": full_env, "cwd": cwd or self.base,
                               "timeout": timeout}, [in_r, out_w, err_w])
        finally:
            for fd in (out_w, err_w):
                os.close(fd)
            if stdin is None:
                os.close(in_r)
        if in_w is not None:
            if input:
                os.write(in_w, input.encode() if isinstance(input, str) else input)
            os.close(in_w)
        outs = {out_r: [], err_r: []}
        import selectors
        sel = selectors.DefaultSelector()
        for fd in outs:
            sel.register(fd, selectors.EVENT_READ)
        sel.register(s, selectors.EVENT_READ)
        buf = b""
        status = None
        deadline = time.monotonic() + timeout + 15
        try:
            # Until the agent reports the exit status, and the output is read: to EOF,
            # or, when a process the command left behind (a detached container) keeps
            # the pipes open, what is there shortly after the exit.
            while True:
                open_fds = [k.fileobj for k in sel.get_map().values() if k.fileobj is not s]
                if status is not None and not open_fds:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{argv}: no answer from the machine's agent")
                events = sel.select(1 if status is None else 0.2)
                if not events and status is not None:
                    break
                for key, _ in events:
                    if key.fileobj is s:
                        data = s.recv(65536)
                        if not data:
                            sel.unregister(s)
                            status = status or {"status": None}
                            continue
                        buf += data
                        *lines, buf = buf.split(b"\n")
                        for line in lines:
                            msg = json.loads(line)
                            if "status" in msg or "timeout" in msg:
                                status = msg
                    else:
                        data = os.read(key.fd, 65536)
                        if data:
                            outs[key.fd].append(data)
                        else:
                            sel.unregister(key.fd)
        finally:
            sel.close()
            s.close()
            out = b"".join(outs[out_r]).decode("utf-8", "replace")
            err = b"".join(outs[err_r]).decode("utf-8", "replace")
            os.close(out_r)
            os.close(err_r)
        if status.get("timeout"):
            rc = None
        elif status.get("status") is None:
            rc = None
        else:
            rc = os.waitstatus_to_exitcode(status["status"])
        return Result(list(argv), rc, out, err)

    def spawn(self, argv, env=None, cwd=None, log=None):
        """Start argv inside the machine in the background (its output to `log`, a
        host path); returns its pid there."""
        fd_in = os.open("/dev/null", os.O_RDONLY)
        fd_out = os.open(log or "/dev/null", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            s = self._request({"argv": list(argv), "env": dict(self.env, **(env or {})),
                               "cwd": cwd or self.base, "background": True},
                              [fd_in, fd_out, fd_out])
        finally:
            os.close(fd_in)
            os.close(fd_out)
        with s:
            return json.loads(s.makefile().readline())["pid"]

    def kill(self, pid, sig=signal.SIGTERM):
        s = self._request({"kill": pid, "signal": int(sig)}, [])
        with s:
            return json.loads(s.makefile().readline()).get("killed")

    # -- teardown -------------------------------------------------------------------

    def stop(self):
        """Kill the machine (ocirun kills its init, by the pid ocirun recorded; the
        pid namespace takes every process inside with it), remove its cgroups."""
        if self.started:
            r = subprocess.run([OCIRUN, "--root", self.root, "delete", "--force", self.name],
                               capture_output=True, text=True, timeout=60)
            self.delete_error = r.stderr.strip() if r.returncode else None
        if self.pid and self._is_ours(self.pid):
            # ocirun did not manage: the pid is still the machine's systemd (its cgroup
            # says so), kill it ourselves; its pid namespace goes with it
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            for _ in range(100):
                if not self._is_ours(self.pid):
                    break
                time.sleep(0.05)
        for h in os.listdir(CGROUP):
            d = os.path.join(CGROUP, h, self.name)
            if os.path.isdir(d) and not os.path.islink(os.path.join(CGROUP, h)):
                _remove_cgroup_tree(d)
        if os.path.isdir(self.base):
            _umount_under(self.base)
            shutil.rmtree(self.base, ignore_errors=True)

    def _is_ours(self, pid):
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                return f"/{self.name}" in f.read()
        except OSError:
            return False

    def leftovers(self):
        """What the machine may have left on the host: its cgroups, a process."""
        out = [f"ocirun delete: {self.delete_error}"] if self.delete_error else []
        for h in os.listdir(CGROUP):
            d = os.path.join(CGROUP, h, self.name)
            if os.path.isdir(d) and not os.path.islink(os.path.join(CGROUP, h)):
                out.append(d)
        if self.pid and self._is_ours(self.pid):
            out.append(f"process {self.pid}")
        return out


def _unmounted_controller_dirs():
    """The /sys/fs/cgroup names systemd would mount v1 hierarchies at and that the host
    has no v1 hierarchy for: controllers in no v1 hierarchy, and systemd's co-mounted
    pairs (cpu,cpuacct and net_cls,net_prio) unless the host co-mounts them."""
    hier = _hierarchies()
    names = [c for c, h in hier.items() if h == 0]
    for pair in (("cpu", "cpuacct"), ("net_cls", "net_prio")):
        if all(c in hier for c in pair) and not (hier[pair[0]] == hier[pair[1]] != 0):
            names.append(",".join(pair))
    return [n for n in names if not os.path.ismount(os.path.join(CGROUP, n))]


def _all_caps():
    from ocirun import tables
    return list(tables.CAPS)


def _remove_cgroup_tree(d):
    for cur, _dirs, _files in os.walk(d, topdown=False):
        for _ in range(100):
            try:
                with open(os.path.join(cur, "cgroup.procs")) as f:
                    pids = [int(x) for x in f.read().split()]
            except OSError:
                pids = []
            # only processes of the machine can be in the machine's cgroups
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                os.rmdir(cur)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)


def _umount_under(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        mps = [line.split()[4] for line in f]
    for mp in sorted({m for m in mps if m == path or m.startswith(path + "/")}, key=len,
                     reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)
