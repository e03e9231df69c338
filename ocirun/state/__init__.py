"""Container state under <root>/<id>/: state.json written atomically, the exec fifo,
and the status derived from the init pid *and* its start time (a recycled pid is not
our container)."""
import posix

from ocirun import fs
from ocirun.errors import NotFound, OciError, UsageError, os_error

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


def write_atomic(path, data, mode=0o600):
    """Write temp + fsync-free rename: readers see the old or the new file, never half."""
    tmp = f"{path}.tmp{posix.getpid()}"
    fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC | posix.O_CLOEXEC | posix.O_NOFOLLOW, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[posix.write(fd, view):]
    except OSError:
        posix.close(fd)
        posix.unlink(tmp)
        raise
    posix.close(fd)
    posix.rename(tmp, path)


def _dumps(obj):
    import _json
    enc = _json.make_encoder(None, None, _json.encode_basestring_ascii, None, ":", ",",
                             False, False, True)
    return "".join(enc(obj, 0))


def _loads(text):
    from ocirun.config.load import parse_config
    return parse_config(text, STATE_FILE)


class State:
    """What a later command needs to act on a container. Saved as state.json."""

    __slots__ = ("id", "pid", "pid_start", "bundle", "rootfs", "created", "owner",
                 "annotations", "cgroup", "started", "root", "config_hooks", "namespaces",
                 "init_ns")

    FIELDS = ("id", "pid", "pid_start", "bundle", "rootfs", "created", "owner",
              "annotations", "cgroup", "started", "config_hooks", "namespaces", "init_ns")

    def __init__(self, root, cid):
        self.root = root
        self.id = cid
        self.pid = 0
        self.pid_start = None
        self.bundle = ""
        self.rootfs = ""
        self.created = ""
        self.owner = ""
        self.annotations = {}
        self.cgroup = None
        self.started = False
        self.config_hooks = None
        self.namespaces = []
        self.init_ns = {}

    @property
    def dir(self):
        return f"{self.root}/{self.id}"

    def save(self):
        data = {k: getattr(self, k) for k in self.FIELDS}
        write_atomic(f"{self.dir}/{STATE_FILE}", _dumps(data).encode())

    def alive(self):
        """True if our init still runs: same pid *and* same start time."""
        if not self.pid:
            return False
        now = proc_start_time(self.pid)
        return now is not None and now == self.pid_start

    def status(self):
        if not self.pid:
            return "creating"
        if not self.alive():
            return "stopped"
        # frozen before created: a created container can be paused as well
        if self.cgroup:
            from ocirun.cgroups import paused
            try:
                if paused(self.cgroup):
                    return "paused"
            except OciError:
                pass
        if not self.started and fs.exists(f"{self.dir}/{FIFO}"):
            return "created"
        return "running"

    def oci_state(self):
        """The OCI state document (runtime.md "State")."""
        from ocirun import SPEC_VERSION
        status = self.status()
        return {
            "ociVersion": SPEC_VERSION,
            "id": self.id,
            "pid": self.pid if status not in ("stopped", "creating") else 0,
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
            "annotations": self.annotations or {},
        }


def load(root, cid):
    """Load a container's state; NotFound ("does not exist") if there is none."""
    d = container_dir(root, cid)
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
    try:
        names = posix.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n[0] != "." and fs.isdir(f"{root}/{n}"))


def remove_dir(path):
    """Remove a container's state directory (flat: state files and the fifo)."""
    try:
        names = posix.listdir(path)
    except FileNotFoundError:
        return
    for n in names:
        try:
            posix.unlink(f"{path}/{n}")
        except FileNotFoundError:
            pass
    try:
        posix.rmdir(path)
    except FileNotFoundError:
        pass
