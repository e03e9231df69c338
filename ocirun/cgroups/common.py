"""What v1 and v2 share: cgroupfs file access, directory bookkeeping, the Manager base.

A Manager owns one container's cgroup, which on v1 is one directory per hierarchy and on
v2 a single directory. `created` lists exactly the directories create() made (parents
first), so destroy() removes those and nothing else: a parent that existed before, or that
another container created, is never removed.
"""
import errno
import posix
import time

import _signal

from ocirun import fs, log
from ocirun.errors import OciError, os_error

RMDIR_TIMEOUT = 5.0
FREEZE_TIMEOUT = 5.0
SIGKILL = _signal.SIGKILL  # (the C module: `signal` pulls in enum)


# -- files ---------------------------------------------------------------------------------

def read_file(d, name):
    """Contents of d/name as str, or None if it does not exist."""
    try:
        return fs.read_bytes(fs.join(d, name)).decode("utf-8", "replace")
    except FileNotFoundError:
        return None


def write_file(d, name, value):
    """Write value to an existing cgroup file d/name in one write(2) (the kernel parses each
    write separately). No O_CREAT: a missing file means an unsupported knob."""
    data = value.encode() if isinstance(value, str) else value
    fd = posix.open(fs.join(d, name), posix.O_WRONLY | posix.O_TRUNC | posix.O_CLOEXEC)
    try:
        posix.write(fd, data)
    finally:
        posix.close(fd)


def write_checked(d, name, value, missing_ok=False):
    """Write, or raise OciError naming the file. missing_ok: a file (or directory)
    that does not exist returns False instead."""
    try:
        write_file(d, name, value)
    except FileNotFoundError as e:
        if missing_ok:
            return False
        raise os_error(f"write {value.strip()!r} to {fs.join(d, name)}", e) from None
    except OSError as e:
        raise os_error(f"write {value.strip()!r} to {fs.join(d, name)}", e) from None
    return True


def read_uint(d, name, default=0):
    """An integer file; "max" -> default 0 (runc's stats report no limit as 0 or omit it)."""
    text = read_file(d, name)
    if text is None:
        return default
    text = text.strip()
    if text == "max" or not text:
        return default
    try:
        return int(text)
    except ValueError:
        return default


def parse_flat(text):
    """"key value" lines -> {key: int} (memory.stat, cpu.stat, cgroup.events)."""
    out = {}
    for line in (text or "").splitlines():
        k, _, v = line.partition(" ")
        try:
            out[k] = int(v)
        except ValueError:
            continue
    return out


def exists(d, name):
    return fs.exists(fs.join(d, name))


# -- directories ---------------------------------------------------------------------------

def dirs_of(base, path):
    """The directories from base down to base+path, parents first (base itself excluded)."""
    out = []
    cur = base
    for comp in path.strip("/").split("/"):
        cur = fs.join(cur, comp)
        out.append(cur)
    return out


def mkdir_chain(base, path, created):
    """mkdir each missing directory of base+path; appends what it made to `created`.
    ENOENT on a parent another runtime just removed (it emptied a shared parent) is
    retried a few times instead of failing the container."""
    leaf = base + path
    try:  # the usual case, the parents exist: one mkdir
        posix.mkdir(leaf, 0o755)
        created.append(leaf)
        return
    except FileExistsError:
        if not fs.isdir(leaf):
            raise OciError(f"create cgroup {leaf}: exists and is not a directory") from None
        return
    except FileNotFoundError:
        pass
    if not fs.isdir(base):
        raise OciError(f"cgroup hierarchy {base} is not mounted")
    for attempt in range(5):
        try:
            for d in dirs_of(base, path):
                try:
                    posix.mkdir(d, 0o755)
                except FileExistsError:
                    if not fs.isdir(d):
                        raise OciError(f"create cgroup {d}: exists and is not a directory")
                    continue
                created.append(d)
            return
        except FileNotFoundError:
            if attempt == 4:
                raise
            time.sleep(0.01)


def _rmdir_retry(d, timeout):
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            posix.rmdir(d)
            return True
        except FileNotFoundError:
            return True
        except OSError as e:
            # EBUSY: tasks still exiting (a zombie keeps its cgroup until reaped)
            if e.errno not in (errno.EBUSY, errno.ENOTEMPTY) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def remove_tree(d, timeout=RMDIR_TIMEOUT):
    """Remove cgroup d and the sub-cgroups its processes made (cgroupfs files vanish with
    their directory; only directories are removed, bottom-up)."""
    try:  # the usual case, no sub-cgroups: one rmdir
        posix.rmdir(d)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    try:
        entries = list(posix.scandir(d))
    except FileNotFoundError:
        return
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            remove_tree(e.path, timeout)
    _rmdir_retry(d, timeout)


def procs_recursive(d, name="cgroup.procs"):
    """Pids in d and every sub-cgroup."""
    out = []
    for cur in fs.subdirs(d):
        text = read_file(cur, name)
        if text:
            out.extend(int(x) for x in text.split() if x.isdigit())
    seen = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def check_created(created, allowed):
    """from_dict: a persisted `created` list may only name directories of this container's
    own path, so a corrupted state file cannot make destroy() remove someone else's cgroup."""
    if not isinstance(created, list) or not all(isinstance(c, str) and c in allowed for c in created):
        raise ValueError("`created` names directories outside the container's cgroup path")
    return list(created)


# -- managers ------------------------------------------------------------------------------

class Manager:
    """Interface shared by every manager; see V1Manager / V2Manager for the file logic."""

    __slots__ = ("root", "path", "container_id", "mode", "created")
    kind = "cgroupfs"

    def __init__(self, root, path, container_id, mode):
        self.root = fs.normpath(root)
        self.path = path
        self.container_id = container_id
        self.mode = mode
        self.created = []

    # subclasses: _leaf_dirs() -> [dir], _procs_dir() -> dir or None, _set(res, update), ...

    def to_dict(self):
        return {"version": 1, "kind": self.kind, "mode": self.mode, "root": self.root,
                "path": self.path, "container_id": self.container_id,
                "created": list(self.created)}

    def create(self):
        """mkdir what is missing; refuse a pre-existing cgroup that already has processes
        (kill_all/destroy would otherwise reach processes that are not the container's)."""
        made = []
        try:
            for base in self._bases():
                mkdir_chain(base, self.path, made)
            for d in self._leaf_dirs():
                if d not in made and procs_recursive(d):
                    raise OciError(f"cgroup {d} already exists and has processes")
            self._after_create(made)
        except OSError as e:
            self.created = made
            self.destroy()
            raise os_error(f"create cgroup {self.path}", e) from None
        except BaseException:
            self.created = made
            self.destroy()
            raise
        self.created = made
        return self

    def _after_create(self, made):
        pass

    def add(self, pid, sub=None):
        """Move pid into the container's cgroup (every hierarchy), or into existing
        sub-cgroups of it (exec --cgroup): `sub` is a path for every hierarchy, or
        {controller: path} with "" for the hierarchies no controller names. A path
        given for every hierarchy is joined where it exists and the container's own
        cgroup elsewhere (as runc does on v1, where each controller has its tree); one
        named for a controller must exist."""
        for d in self._leaf_dirs():
            named = not isinstance(sub, str) and sub and self._named_for(d, sub)
            path = sub if isinstance(sub, str) else self._sub_for(d, sub) if sub else None
            if path:
                parts = [x for x in path.split("/") if x]
                if not parts or any(x in (".", "..") for x in parts):
                    raise OciError(f"--cgroup: `{path}` must name a sub-cgroup of the container")
                target = d + "/" + "/".join(parts)
                if named or fs.isdir(target):
                    d = target
            write_checked(d, "cgroup.procs", str(pid))

    def fork_targets(self):
        """(cgroup v2 leaf or None, [cgroup v1 leaves]): where a new process can be
        born (clone3 CLONE_INTO_CGROUP, v2 only) and which hierarchies it then joins
        by itself (fork below)."""
        return None, []

    def fork(self):
        """fork() for a process of this container (its init, an exec'd process), put
        in the cgroup without the runtime writing its pid to cgroup.procs: that write
        takes the kernel's cgroup_threadgroup_rwsem for writing, which waits for an
        RCU grace period (5-20 ms measured here, more than the rest of a container
        start). Instead the child is born in its cgroup v2 directory (clone3
        CLONE_INTO_CGROUP, _sys.c) and joins its cgroup v1 hierarchies itself, first
        thing after fork, by writing "0" to their `tasks` files (linux/init.py
        join_cgroups): a thread that moves itself skips that lock.
        -> (pid, the v1 directories the child must join), or (pid, None) when the
        runtime must still add(pid): no C extension, a kernel before 5.7, no targets."""
        targets = self.birth_targets()
        if targets is None:
            return posix.fork(), None
        fd, v1 = targets
        if fd < 0:
            return posix.fork(), v1
        from ocirun import kernel  # not at the top: `state` and `kill` import this module
        try:
            return kernel.fork_into_cgroup(fd), v1
        except OSError:
            return posix.fork(), None
        finally:
            posix.close(fd)

    def birth_targets(self):
        """fork_targets() ready for clone3: (an fd of the cgroup v2 directory to be
        born in, or -1; the v1 directories the child joins itself), or None when
        the runtime must add the pid (no targets, or the directory cannot be opened).
        The caller closes the fd. Used by fork above and by `run`'s init
        (lifecycle/create.py _clone_vm)."""
        v2, v1 = self.fork_targets()
        if v2 is None:
            return (-1, v1) if v1 else None
        try:
            return posix.open(v2, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC), v1
        except OSError:
            return None

    def _named_for(self, leaf, sub):
        """Whether `sub` names a controller of `leaf`'s hierarchy explicitly."""
        hier = getattr(self, "hier", None) or {}
        return any(leaf.startswith(base + "/") and ctrl in sub for ctrl, base in hier.items())

    def _sub_for(self, leaf, sub):
        """The sub-path of `sub` ({controller: path}) that applies to `leaf`."""
        hier = getattr(self, "hier", None) or {}
        for ctrl, base in hier.items():
            if leaf.startswith(base + "/") and ctrl in sub:
                return sub[ctrl]
        return sub.get("")

    def apply(self, resources):
        from ocirun.cgroups import validate
        validate.validate_resources(resources, self.mode)
        if resources:
            self._set(resources, False)

    def update(self, resources):
        """Apply a (partial) linux.resources object to a running container; keys left out
        keep their current values (runc `update -r`)."""
        from ocirun.cgroups import validate
        validate.validate_resources(resources, self.mode)
        if resources:
            self._set(resources, True)

    def pids(self):
        d = self._procs_dir()
        return procs_recursive(d) if d else []

    def kill_all(self, sig=SIGKILL):
        """Signal every process in the cgroup. cgroup.kill where the kernel has it (v2,
        5.14+) is atomic against forks; otherwise freeze first, so nothing forks between
        reading the pid list and signalling it, then thaw so the signals are handled."""
        if sig == SIGKILL and self._cgroup_kill():
            return
        frozen = False
        try:
            self.freeze()
            frozen = True
        except OciError as e:
            log.debug(f"kill_all without freezing: {e}")
        try:
            for pid in self.pids():
                try:
                    posix.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            if frozen:
                self.thaw()

    def _cgroup_kill(self):
        return False

    def oom_kills(self):
        """How many processes the kernel's OOM killer has killed in this cgroup (0 where
        the kernel does not count them)."""
        return 0

    def destroy(self):
        """Remove the directories create() made, deepest first (the container's own leaf
        recursively, with the sub-cgroups its processes made). Parents shared with other
        containers stay when they are not empty."""
        leaves = set(self._leaf_dirs())
        errors = []
        for d in reversed(self.created):
            try:
                if d in leaves:
                    remove_tree(d)
                else:
                    posix.rmdir(d)
            except OSError as e:
                if d in leaves:
                    errors.append(os_error(f"remove cgroup {d}", e))
                elif e.errno not in (errno.EBUSY, errno.ENOTEMPTY, errno.ENOENT):
                    errors.append(os_error(f"remove cgroup {d}", e))
        self.created = []
        if errors:
            raise errors[0]

    def exists(self):
        return any(fs.isdir(d) for d in self._leaf_dirs())


# -- plans ---------------------------------------------------------------------------------
# plan_v1/plan_v2 turn linux.resources into a list of steps, pure data, so the translation
# is tested without a kernel. A write step is ("w", controller, [(file, value), ...], policy,
# label): the first candidate file that exists is written (e.g. blkio.weight, or
# blkio.bfq.weight when the BFQ scheduler replaced CFQ). policy "required" makes a missing
# controller/file an error (a limit the config asks for must not be silently dropped);
# "warn" logs and goes on (classification knobs, deprecated settings).

def step_write(ctrl, candidates, label, policy="required"):
    return ("w", ctrl, candidates, policy, label)


def step_warn(msg):
    return ("warn", msg)


def _write_field(d, name, value, label, missing_ok=False):
    """write_checked, and a value the kernel refuses (EINVAL, EBUSY...) names the field."""
    try:
        return write_checked(d, name, value, missing_ok)
    except OciError as e:
        raise OciError(f"cannot set {label}: {e}") from None


def do_write(d, ctrl, candidates, policy, label):
    """Execute one write step in cgroup directory d (None: controller not available)."""
    # The usual case: one file, which exists. Only when it is missing do the checks
    # below run, to say what is missing (saves two stats per write).
    if d is not None and len(candidates) == 1 and _write_field(d, *candidates[0], label, True):
        return
    if d is None or not fs.isdir(d):
        msg = f"cannot set {label}: the {ctrl} controller is not available for this cgroup"
        if policy == "warn":
            log.warning(msg + "; ignored")
            return
        raise OciError(msg)
    for name, value in candidates:
        if exists(d, name):
            _write_field(d, name, value, label)
            return
    names = " or ".join(n for n, _ in candidates)
    msg = f"cannot set {label}: {names} does not exist in {d} (not supported by this kernel)"
    enabled = read_file(d, "cgroup.controllers")
    if enabled is not None and ctrl != "cgroup" and ctrl not in enabled.split():
        # v2: the parent does not delegate the controller to this cgroup
        msg = (f"cannot set {label}: the {ctrl} controller is not enabled for {d} "
               f"(cgroup.controllers: {enabled.strip() or 'none'})")
    if policy == "warn":
        log.warning(msg + "; ignored")
        return
    raise OciError(msg)
