"""Container state under <root>/<id>/: state.json written atomically, the exec fifo,
and whether the init still lives, from its pid *and* its start time (a recycled pid is
not our container). The status the OCI state reports is lifecycle/state.py's (it also
asks the cgroup whether the container is paused)."""
import posix

from ocirun import fs
from ocirun.errors import NotFound, OciError, UsageError, os_error
from ocirun.fs import dumps, write_atomic  # noqa: F401  (the state store's writers)

STATE_FILE = "state.json"
FIFO = "exec.fifo"
CGROUP_RECORD = "cgroup.json"  # written by create as soon as the cgroup exists

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def check_id(cid):
    """Container ids name a directory under --root: no `/`, no `..`, nothing hidden
    (runc accepts [A-Za-z0-9_+.-]+; so do we, minus `.`/`..` and leading dots)."""
    if not cid:
        raise UsageError("container id cannot be empty")
    if len(cid) > 1024 or cid[0] == "." or not _ID_CHARS.issuperset(cid):
        raise UsageError(f"invalid container id `{cid!r}`: use [A-Za-z0-9_+.-], not starting with `.`"
                         if not _ID_CHARS.issuperset(cid) else
                         f"invalid container id `{cid}`: must not start with `.`")


_trusted_roots = set()


def check_root(root):
    """The state root must be the caller's alone: a directory another user owns, or
    one group or others may write, could hold a planted state.json that sends
    `kill`/`delete` to any pid, or a planted exec fifo (runc trusts it; we do not).
    A root that does not exist yet passes (create makes it)."""
    if root in _trusted_roots:
        return
    try:
        st = posix.stat(root)
    except FileNotFoundError:
        return
    except OSError as e:
        raise os_error(f"--root `{root}`", e) from None
    if st.st_uid != posix.geteuid():
        raise OciError(f"--root `{root}`: owned by uid {st.st_uid}, not by this user "
                       f"(uid {posix.geteuid()}): refusing to trust its state")
    if st.st_mode & 0o022:
        raise OciError(f"--root `{root}`: writable by group or others (mode "
                       f"{st.st_mode & 0o7777:04o}): refusing to trust its state")
    _trusted_roots.add(root)


def container_dir(root, cid):
    check_id(cid)
    return f"{root}/{cid}"


def proc_start_time(pid, exited_ok=False):
    """Field 22 of /proc/PID/stat (clock ticks since boot), or None if pid is gone
    (or has exited, unless `exited_ok`: a child of ours that we have not reaped keeps
    its pid and start time, which is how create records an init that was quick to
    exit). The comm field may contain spaces and ')', so split after the last ')'."""
    try:
        data = fs.read_bytes(f"/proc/{pid}/stat")
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()
    if rest[0] in (b"Z", b"X") and not exited_ok:  # the container's init has exited
        return None
    return int(rest[19])


def _loads(text):
    from ocirun.config.load import parse_config
    return parse_config(text, STATE_FILE)


class State:
    """What a later command needs to act on a container. Saved as state.json."""

    __slots__ = ("id", "pid", "pid_start", "bundle", "rootfs", "created", "annotations",
                 "cgroup", "root", "config_hooks", "namespaces", "intel_rdt")

    FIELDS = ("id", "pid", "pid_start", "bundle", "rootfs", "created", "annotations",
              "cgroup", "config_hooks", "namespaces", "intel_rdt")

    def __init__(self, root, cid):
        self.root = root
        self.id = cid
        self.pid = 0
        self.pid_start = None
        self.bundle = ""
        self.rootfs = ""
        self.created = ""
        self.annotations = {}
        self.cgroup = None
        self.config_hooks = None
        self.namespaces = []
        self.intel_rdt = []  # the resctrl groups create made, innermost first (delete removes them)

    @property
    def dir(self):
        return f"{self.root}/{self.id}"

    def save(self):
        data = {k: getattr(self, k) for k in self.FIELDS}
        write_atomic(f"{self.dir}/{STATE_FILE}", dumps(data).encode())

    def alive(self):
        """True if our init still runs: same pid *and* same start time."""
        if not self.pid:
            return False
        now = proc_start_time(self.pid)
        return now is not None and now == self.pid_start

    def waits_for_start(self):
        """Created and not started: the exec fifo is still there (`create` makes it,
        `start` removes it, `run` never has one)."""
        return fs.exists(f"{self.dir}/{FIFO}")


def load(root, cid):
    """Load a container's state; NotFound ("does not exist") if there is none."""
    d = container_dir(root, cid)
    check_root(root)
    try:
        fd = posix.open(f"{d}/{STATE_FILE}", posix.O_RDONLY | posix.O_CLOEXEC | posix.O_NOFOLLOW)
    except FileNotFoundError:
        if fs.isdir(d):
            st = State(root, cid)  # killed during create: a husk `delete` can remove
            return st
        raise NotFound(cid) from None
    except OSError as e:
        raise os_error(f"read state of `{cid}`", e) from None
    try:
        data = posix.read(fd, 1 << 20)
    finally:
        posix.close(fd)
    st = State(root, cid)
    try:
        doc = _loads(data.decode())
        for k in State.FIELDS:
            v = doc.get(k)
            if v is not None:  # null = absent, as in config.json
                setattr(st, k, v)
        if not isinstance(st.pid, int) or isinstance(st.pid, bool) or st.pid < 0:
            raise ValueError("pid")
    except (ValueError, UnicodeDecodeError, OciError):
        # A truncated or garbage state file: treat as a stopped husk so that `list`
        # still works and `delete` can clean it up, and never signal its pid.
        st = State(root, cid)
    return st


def list_ids(root):
    check_root(root)
    try:
        names = posix.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n[0] != "." and fs.isdir(f"{root}/{n}"))


def remove_dir(path):
    """Remove a container's state directory (state files and the fifo; the sd_notify
    socket's directory, lifecycle/notify.py, one level down)."""
    try:
        names = posix.listdir(path)
    except FileNotFoundError:
        return
    for n in names:
        try:
            posix.unlink(f"{path}/{n}")
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            remove_dir(f"{path}/{n}")
    try:
        posix.rmdir(path)
    except FileNotFoundError:
        pass
