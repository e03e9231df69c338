"""The container's filesystem: mounts, /dev, masked and read-only paths, pivot_root.

Runs in the container init, in its new mount namespace, before pivot_root. Every
destination is resolved inside the rootfs (paths.open_in_root) and mounted onto the
resolved fd; bind mounts use the fd-based mount API (open_tree, mount_setattr,
move_mount) so their attributes are applied before they become visible.

The image is hostile (docs/security.md C, L): a symlink at /proc, or a chain of them
through other image paths, would put procfs somewhere else, and masks looked up by name
later would find nothing. So the mounts the runtime relies on later (HELD_TYPES and
HELD_DESTINATIONS: procfs and sysfs for the masks and read-only paths, /dev for the
devices and the console, /dev/pts for the terminal, mqueue and cgroup) must land on a
plain directory reached without a symlink, are kept by fd as soon as they are made, are
checked to still be what the container sees once every mount is done, and the masks,
read-only paths and devices are applied through those fds, never by name.

Every syscall goes through `k`, the kernel object (kernel.Kernel, or a unit test's
double): Tree carries it.
"""
import errno
import posix
import _stat  # the C module behind `stat`

from ocirun import fs
from ocirun.errors import OciError
from ocirun.kernel import (
    AT_EMPTY_PATH, AT_FDCWD, AT_RECURSIVE, MNT_DETACH, MOUNT_ATTR__ATIME, MOUNT_ATTR_IDMAP,
    MOUNT_ATTR_NOATIME,
    MOUNT_ATTR_NODEV, MOUNT_ATTR_NODIRATIME, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_NOSYMFOLLOW, MOUNT_ATTR_RDONLY, MOUNT_ATTR_STRICTATIME, MOVE_MOUNT_F_EMPTY_PATH,
    MOVE_MOUNT_T_EMPTY_PATH, MS_BIND, MS_MOVE, MS_NOATIME, MS_NODEV, MS_NODIRATIME, MS_NOEXEC,
    MS_NOSUID, MS_NOSYMFOLLOW, MS_PRIVATE, MS_RDONLY, MS_REC, MS_RELATIME, MS_REMOUNT,
    MS_SHARED, MS_SLAVE, MS_STRICTATIME, OPEN_TREE_CLOEXEC, OPEN_TREE_CLONE, PROC_SUPER_MAGIC,
    RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, SYSFS_MAGIC,
)
from ocirun.linux import paths, procfs
from ocirun.linux.paths import open_in_root
from ocirun.tables import DEV_SYMLINKS, KCORE_SYMLINK, NULL_DEVICE
from ocirun.tables import MountOptions

# MS_* flag -> MOUNT_ATTR_* for binds done with mount_setattr.
_MS_TO_ATTR = (
    (MS_RDONLY, MOUNT_ATTR_RDONLY), (MS_NOSUID, MOUNT_ATTR_NOSUID),
    (MS_NODEV, MOUNT_ATTR_NODEV), (MS_NOEXEC, MOUNT_ATTR_NOEXEC),
    (MS_NODIRATIME, MOUNT_ATTR_NODIRATIME), (MS_NOSYMFOLLOW, MOUNT_ATTR_NOSYMFOLLOW),
)
_ATIME = ((MS_NOATIME, MOUNT_ATTR_NOATIME), (MS_STRICTATIME, MOUNT_ATTR_STRICTATIME),
          (MS_RELATIME, 0))

# Files under /proc a bind mount may cover (what lxcfs provides); anything else
# mounted over /proc could redirect the runtime's own procfs writes (CVE-2025-52881).
PROC_BIND_ALLOWED = frozenset(("/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo",
                               "/proc/stat", "/proc/swaps", "/proc/uptime", "/proc/loadavg",
                               "/proc/slabinfo", "/proc/sys/kernel/ns_last_pid"))

# Mount types and destinations the runtime relies on after mounting them (see the
# module docstring), and the filesystem each of proc and sysfs must turn out to be.
HELD_TYPES = frozenset(("proc", "sysfs", "mqueue", "cgroup", "cgroup2", "devpts"))
HELD_DESTINATIONS = frozenset(("/proc", "/sys", "/dev", "/dev/pts"))
_EXPECTED_MAGIC = {"proc": PROC_SUPER_MAGIC, "sysfs": SYSFS_MAGIC}
_NO_SYMLINKS = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS
# Below a held mount: nothing the image made can be there (procfs, sysfs, a fresh
# tmpfs), and the kernel's own links stay beneath it.
_BELOW_HELD = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS
_O_DIR = paths.O_PATH | posix.O_DIRECTORY


class MountError(OciError):
    pass


def _fail(what, dest, e, index=None):
    name = errno.errorcode.get(e.errno, str(e.errno))
    where = f"mounts[{index}]: " if index is not None else ""
    return MountError(f"{where}mount `{what}` on `{dest}`: {name} ({e.strerror})")


def components(path):
    """`path` as a tuple of names, lexically normalised ("//proc/./x/" -> ("proc", "x"),
    "/a/../b" -> ("b",)): how held destinations and the paths below them are compared."""
    p = "/" + path
    if "//" not in p and "/." not in p:
        # nothing to normalise ("/dev/pts", "proc/sys"): the names as they are
        p = p.strip("/")
        return tuple(p.split("/")) if p else ()
    return tuple(fs.normpath(p).strip("/").split("/")) if path.strip("/.") else ()


class Held:
    __slots__ = ("fd", "mnt_id", "index", "path")

    def __init__(self, fd, mnt_id, index, path):
        self.fd = fd
        self.mnt_id = mnt_id
        self.index = index
        self.path = path


class Tree:
    """The container's filesystem while the init builds it: the kernel object, an
    O_PATH fd of the rootfs, the runtime's verified procfs handle (procfs.py), and the
    held mounts: destination components -> Held (an O_PATH fd of the mount's root and
    its id)."""

    __slots__ = ("k", "rootfd", "procfd", "held", "cwd", "idmaps", "mount_label",
                 "own_cgroups", "last", "keep_cwd")

    def __init__(self, k, rootfd, procfd, idmaps=None, mount_label=None):
        self.k = k
        self.mount_label = mount_label  # linux.mountLabel, where SELinux applies it
        self.rootfd = rootfd
        self.procfd = procfd
        self.held = {}
        self.cwd = None  # where we were before fd_path moved us
        self.idmaps = idmaps or {}  # mounts index -> detached idmapped tree (linux/idmap.py)
        self.own_cgroups = None  # a rootless runtime's /proc/self/cgroup (mount_cgroup)
        self.last = None  # the index of the last mount_one (verify)
        # whether close() puts our current directory back (fd_path moves it): not for
        # an init whose next step is pivot(), which moves it itself
        self.keep_cwd = True

    def close(self):
        for h in self.held.values():
            self.k.close(h.fd)
        self.held = {}
        if self.cwd is not None:
            # back where we were: hooks run next (createContainer) inherit it
            self.k.fchdir(self.cwd)
            self.k.close(self.cwd)
            self.cwd = None

    def hold(self, comps, index, mtype):
        """Keep the mount now at `comps` (just made by mounts[index]) by fd."""
        k = self.k
        path = "/" + "/".join(comps)
        fd = open_in_root(k, self.rootfd, path, _O_DIR, resolve=_NO_SYMLINKS)
        try:
            magic = _EXPECTED_MAGIC.get(mtype)
            if magic is not None and k.fstatfs_type(fd) != magic:
                raise MountError(f"mounts[{index}]: `{path}` is not {mtype} after mounting it")
            mnt_id = k.mount_id(fd)
        except BaseException:
            k.close(fd)
            raise
        old = self.held.get(comps)
        if old is not None:
            k.close(old.fd)
        self.held[comps] = Held(fd, mnt_id, index, path)

    def verify(self):
        """Once every mount is made: each held destination, looked up in the rootfs
        without symlinks, must still be the held mount (a later mount may cover it,
        or a parent of it, and the container would see that instead)."""
        k = self.k
        for h in self.held.values():
            if h.index == self.last:
                # made by the last mount: hold() has just done this very lookup, and
                # nothing has been mounted (or made in the rootfs) since
                continue
            try:
                fd = open_in_root(k, self.rootfd, h.path, _O_DIR, resolve=_NO_SYMLINKS)
            except OSError as e:
                raise MountError(f"mounts[{h.index}].destination: `{h.path}` no longer resolves "
                                 f"to its mount ({e.strerror}): a later mount covers it") from None
            try:
                same = k.mount_id(fd) == h.mnt_id
            finally:
                k.close(fd)
            if not same:
                raise MountError(f"mounts[{h.index}].destination: `{h.path}` is covered by a "
                                 f"later mount")

    def base(self, path):
        """(dirfd, rest, resolve) to reach the container path `path`: beneath the held
        mount whose destination is its longest prefix, else from the rootfs, where the
        image's symlinks are followed inside the rootfs only."""
        comps = components(path)
        for n in range(len(comps), 0, -1):
            h = self.held.get(comps[:n])
            if h is not None:
                return h.fd, "/".join(comps[n:]) or ".", _BELOW_HELD
        return self.rootfd, "/".join(comps) or ".", paths.RESOLVE_ROOT

    def open(self, path, flags=paths.O_PATH):
        dirfd, rest, resolve = self.base(path)
        return open_in_root(self.k, dirfd, rest, flags, resolve=resolve)

    def mkdir_all(self, path, mode=0o755):
        dirfd, rest, resolve = self.base(path)
        return paths.mkdir_all(self.k, dirfd, rest, mode, resolve=resolve)

    def create_file(self, path, mode=0o644):
        dirfd, rest, resolve = self.base(path)
        return paths.create_file(self.k, dirfd, rest, mode, resolve=resolve)

    def fd_path(self, fd):
        """For mount(2), which takes paths only: see procfs.fd_path (it moves our
        current directory; close() moves it back)."""
        if self.cwd is None and self.keep_cwd:
            self.cwd = self.k.open(".", posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
        return procfs.fd_path(self.k, self.procfd, fd)

    def in_root_path(self, fd):
        """The path of `fd` as seen from the rootfs ("/proc/cpuinfo")."""
        full = procfs.readlink_fd(self.k, self.procfd, fd)
        base = procfs.readlink_fd(self.k, self.procfd, self.rootfd).rstrip("/")
        return full[len(base):] if full.startswith(base + "/") else full


def ms_to_attr(flags):
    attr = 0
    for ms, a in _MS_TO_ATTR:
        if flags & ms:
            attr |= a
    for ms, a in _ATIME:
        if flags & ms:
            attr = (attr & ~MOUNT_ATTR__ATIME) | a
    return attr


def detached_bind(k, src_fd_or_path, mo, recursive, idmap=None):
    """A clone of a tree, detached, its attributes set: -> its fd. A source path is the
    host's, absolute (plan.build makes bind sources absolute). `idmap`: (user namespace
    fd, recursive): an idmapped mount (linux/idmap.py; the idmap goes last, on a mount
    that is still detached, as the kernel requires)."""
    rec = AT_RECURSIVE if recursive else 0
    if isinstance(src_fd_or_path, int):
        tree = k.open_tree(src_fd_or_path, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC
                           | AT_EMPTY_PATH | rec)
    else:
        tree = k.open_tree(AT_FDCWD, src_fd_or_path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | rec)
    try:
        attr_set = ms_to_attr(mo.flags) if mo else 0
        attr_clr = ms_to_attr(mo.clear) if mo else 0
        if mo and (mo.flags | mo.clear) & (MS_NOATIME | MS_STRICTATIME | MS_RELATIME):
            # the atime mode is one field: a change to it (atime, nostrictatime too)
            # clears all of it, and attr_set holds the new mode (relatime is 0)
            attr_clr |= MOUNT_ATTR__ATIME
        if attr_set or attr_clr:
            try:
                k.mount_setattr(tree, "", AT_EMPTY_PATH, attr_set, attr_clr)
            except PermissionError:
                # In a user namespace the flags the host's mount has are locked
                # (mount_namespaces(7)): keep them, as runc and crun do, and set the rest.
                attr_set, attr_clr = keep_locked(k.fstatvfs(tree).f_flag, attr_set, attr_clr)
                k.mount_setattr(tree, "", AT_EMPTY_PATH, attr_set, attr_clr)
        if mo and (mo.attr_set or mo.attr_clr):
            k.mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, mo.attr_set, mo.attr_clr)
        if idmap is not None:
            userns, rec_idmap = idmap
            k.mount_setattr(tree, "", AT_EMPTY_PATH | (AT_RECURSIVE if rec_idmap else 0),
                            MOUNT_ATTR_IDMAP, 0, 0, userns)
    except BaseException:
        k.close(tree)
        raise
    return tree


# statvfs f_flag bits (ST_*) and the mount attributes they stand for
_ST_LOCKABLE = ((1, MOUNT_ATTR_RDONLY), (2, MOUNT_ATTR_NOSUID), (4, MOUNT_ATTR_NODEV),
                (8, MOUNT_ATTR_NOEXEC))
_ST_NOATIME, _ST_NODIRATIME, _ST_RELATIME = 1024, 2048, 4096


def keep_locked(f_flag, attr_set, attr_clr):
    """A bind's attributes with those of its source (statvfs f_flag) that the kernel
    locks in a less privileged mount namespace kept: ro, nosuid, nodev and noexec stay
    set, and a requested change of the atime mode (noatime, relatime, strictatime,
    nodiratime: one locked field) becomes the source's own mode. -> (set, clear)."""
    for st, attr in _ST_LOCKABLE:
        if f_flag & st:
            attr_set |= attr
            attr_clr &= ~attr
    if attr_clr & MOUNT_ATTR__ATIME or (attr_set | attr_clr) & MOUNT_ATTR_NODIRATIME:
        mode = (MOUNT_ATTR_NOATIME if f_flag & _ST_NOATIME else
                0 if f_flag & _ST_RELATIME else MOUNT_ATTR_STRICTATIME)
        attr_set = (attr_set & ~(MOUNT_ATTR__ATIME | MOUNT_ATTR_NODIRATIME)) | mode | (
            MOUNT_ATTR_NODIRATIME if f_flag & _ST_NODIRATIME else 0)
        attr_clr |= MOUNT_ATTR__ATIME | MOUNT_ATTR_NODIRATIME
    return attr_set, attr_clr


def attach(k, tree, dest_fd, mo):
    """A detached tree onto dest_fd, then its propagation (closes nothing)."""
    k.move_mount(tree, "", dest_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)
    if mo:
        _set_propagation(k, tree, mo.propagation)


def bind(k, src_fd_or_path, dest_fd, mo, recursive):
    """Clone a tree, set its attributes while detached, attach it onto dest_fd."""
    tree = detached_bind(k, src_fd_or_path, mo, recursive)
    try:
        attach(k, tree, dest_fd, mo)
    finally:
        k.close(tree)


def _set_propagation(k, fd, propagation):
    """Each propagation option in turn, on the mount open at `fd` (mount_setattr:
    no path to look up)."""
    for prop in propagation:
        k.mount_setattr(fd, "", AT_EMPTY_PATH | (AT_RECURSIVE if prop & MS_REC else 0),
                        0, 0, prop & ~MS_REC)


def _held(m, mo, comps):
    return not mo.bind and (m.get("type") or "") in HELD_TYPES or (
        "/" + "/".join(comps)) in HELD_DESTINATIONS


def _plain_dir(tree, dest, index):
    """The held destination: a directory reached from the rootfs without a symlink,
    created (each component a directory) where missing."""
    try:
        return paths.mkdir_all(tree.k, tree.rootfd, dest, resolve=_NO_SYMLINKS)
    except OSError as e:
        where = getattr(e, "filename", None) or dest
        if e.errno == errno.ELOOP:
            why = "is a symlink in the rootfs"
        elif e.errno == errno.ENOTDIR:
            why = "is not a directory in the rootfs"
        else:
            why = f"cannot be made a directory in the rootfs: {e.strerror}"
        raise MountError(f"mounts[{index}].destination: {where} {why}") from None


def mount_one(tree, index, m, mo, cgroupns):
    """Mount `mounts[index]` inside the rootfs."""
    k = tree.k
    tree.last = index
    dest = m["destination"]
    mtype = m.get("type") or ""
    source = m.get("source") or mtype or "none"
    comps = components(dest)
    if comps[:1] == ("proc",):
        norm = "/" + "/".join(comps)
        if not (norm == "/proc" and mtype == "proc") and not (
                mo.bind and norm in PROC_BIND_ALLOWED):
            raise MountError(f"mounts: refusing to mount `{source}` over `{dest}` "
                             f"(mounts inside /proc could redirect procfs writes)")
    held = _held(m, mo, comps)
    if mo.bind and "copy-symlink" in mo.extensions and _copy_symlink(tree, index, source, dest):
        return
    if mo.bind:
        try:
            st = k.stat(source)
        except OSError as e:
            raise _fail(source, dest, e, index) from None
        is_dir = _stat.S_ISDIR(st.st_mode)
    else:
        is_dir = True
    if held:
        if not is_dir:
            raise MountError(f"mounts[{index}].source: `{source}` must be a directory "
                             f"for `{dest}`")
        dest_fd = _plain_dir(tree, dest, index)
    else:
        try:
            dest_fd = (paths.mkdir_all(k, tree.rootfd, dest) if is_dir
                       else paths.create_file(k, tree.rootfd, dest))
        except OSError as e:
            raise _fail(source, dest, e, index) from None
    # The check above reads the config's text; what counts is where the path led
    # (`/x/../proc`, or a symlink in the image, reach procfs).
    if k.fstatfs_type(dest_fd) == PROC_SUPER_MAGIC and not (
            mo.bind and tree.in_root_path(dest_fd) in PROC_BIND_ALLOWED):
        k.close(dest_fd)
        raise MountError(f"mounts: refusing to mount `{source}` over `{dest}`: it resolves "
                         f"inside /proc")
    try:
        if mo.bind:
            if index in tree.idmaps:  # made by the runtime (linux/idmap.py)
                attach(k, tree.idmaps[index], dest_fd, mo)
            else:
                bind(k, source, dest_fd, mo, bool(mo.flags & MS_REC))
        elif mtype == "cgroup" or mtype == "cgroup2":
            mount_cgroup(tree, dest, dest_fd, mo, cgroupns)
        else:
            _mount_fs(tree, source, dest_fd, mtype, mo)
    except OSError as e:
        raise _fail(source, dest, e, index) from None
    finally:
        k.close(dest_fd)
    if held:
        tree.hold(comps, index, mtype)


def _copy_symlink(tree, index, source, dest):
    """copy-symlink (crun's): a bind source that is a symlink is made a symlink of the
    same text at the destination instead of being followed; a destination that exists
    must already be that symlink. -> False when the source is not a symlink (then an
    ordinary bind)."""
    k = tree.k
    try:
        if not _stat.S_ISLNK(k.stat(source, follow_symlinks=False).st_mode):
            return False
        target = k.readlink(source)
    except OSError as e:
        raise _fail(source, dest, e, index) from None
    comps = components(dest)
    if not comps:
        raise MountError(f"mounts[{index}].destination: copy-symlink cannot replace the root")
    parent = "/" + "/".join(comps[:-1])
    try:
        pfd = paths.mkdir_all(k, tree.rootfd, parent)
    except OSError as e:
        raise _fail(source, dest, e, index) from None
    try:
        try:
            k.symlink(target, comps[-1], dir_fd=pfd)
        except FileExistsError:
            try:
                same = k.readlink(comps[-1], dir_fd=pfd) == target
            except OSError:
                same = False
            if not same:
                raise MountError(f"mounts[{index}].destination: {dest} exists in the rootfs "
                                 f"and is not a symlink to `{target}` (copy-symlink)") from None
    except OSError as e:
        raise _fail(source, dest, e, index) from None
    finally:
        k.close(pfd)
    return True


# filesystems whose files carry labels of their own (linux.mountLabel is a context= for
# the others: tmpfs, mqueue, devpts...)
_UNLABELED = frozenset(("proc", "sysfs", "cgroup", "cgroup2"))


def _mount_fs(tree, source, dest_fd, mtype, mo):
    k = tree.k
    flags = mo.flags & ~MS_REC
    data = mo.data
    if tree.mount_label and mtype not in _UNLABELED:
        data = data + [f'context="{tree.mount_label}"']
    data = ",".join(data) or None
    try:
        k.mount(source, tree.fd_path(dest_fd), mtype, flags, data)
    except PermissionError:
        if mtype != "sysfs":
            raise
        # sysfs needs a network namespace owned by our user namespace; without one
        # (host network in a user namespace) bind the host's /sys, as runc does.
        bind(k, "/sys", dest_fd, mo, True)
        return
    copy_up = mtype == "tmpfs" and "tmpcopyup" in mo.extensions
    if mo.propagation or mo.attr_set or mo.attr_clr or copy_up:
        # the new mount's root, where dest_fd led (not a new lookup by name)
        top = open_in_root(k, tree.rootfd, tree.in_root_path(dest_fd),
                           posix.O_RDONLY | posix.O_DIRECTORY, resolve=_NO_SYMLINKS)
        try:
            if copy_up:
                # the directory the tmpfs now covers, still reached through dest_fd
                below = k.openat2(dest_fd, ".", posix.O_RDONLY | posix.O_DIRECTORY
                                  | posix.O_CLOEXEC, 0, RESOLVE_BENEATH)
                try:
                    _copy_up(k, below, top)
                finally:
                    k.close(below)
            _set_propagation(k, top, mo.propagation)
            if mo.attr_set or mo.attr_clr:
                k.mount_setattr(top, "", AT_EMPTY_PATH | AT_RECURSIVE, mo.attr_set, mo.attr_clr)
        finally:
            k.close(top)


_COPY_NOFOLLOW = posix.O_NOFOLLOW | posix.O_CLOEXEC


def _copy_up(k, src, dst):
    """tmpcopyup (podman's --tmpfs): what the image had at a tmpfs's destination is
    copied into it: directories, regular files (mode and owner) and symlinks, each
    opened relative to its parent without following a link; other kinds are left out."""
    for entry in posix.scandir(src):
        name = entry.name
        st = k.stat(name, dir_fd=src, follow_symlinks=False)
        mode = st.st_mode
        if _stat.S_ISLNK(mode):
            k.symlink(k.readlink(name, dir_fd=src), name, dir_fd=dst)
        elif _stat.S_ISDIR(mode):
            k.mkdir(name, _stat.S_IMODE(mode), dir_fd=dst)
            s = k.open(name, posix.O_RDONLY | posix.O_DIRECTORY | _COPY_NOFOLLOW, dir_fd=src)
            try:
                d = k.open(name, posix.O_RDONLY | posix.O_DIRECTORY | _COPY_NOFOLLOW, dir_fd=dst)
                try:
                    _copy_up(k, s, d)
                finally:
                    k.close(d)
            finally:
                k.close(s)
        elif _stat.S_ISREG(mode):
            s = k.open(name, posix.O_RDONLY | posix.O_NONBLOCK | _COPY_NOFOLLOW, dir_fd=src)
            try:
                d = k.open(name, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | _COPY_NOFOLLOW,
                           _stat.S_IMODE(mode), dir_fd=dst)
                try:
                    while True:
                        chunk = k.read(s, 1 << 20)
                        if not chunk:
                            break
                        view = memoryview(chunk)
                        while view:
                            view = view[k.write(d, view):]
                finally:
                    k.close(d)
            finally:
                k.close(s)
        else:
            continue
        k.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)


def _cgroup_mounts(tree):
    """Host cgroup hierarchies under /sys/fs/cgroup: [(fstype, mountpoint, options)].
    (Only the lines of cgroup filesystems are parsed: fs.parse_mountinfo would make a
    Mount of every line, about 40 us more on a host of 20 mounts.)"""
    text = procfs.read(tree.k, tree.procfd, "thread-self/mountinfo").decode()
    out = []
    for line in text.splitlines():
        if " - cgroup" not in line:
            continue
        out += [(m.fstype, m.mount_point, m.super_options) for m in fs.parse_mountinfo(line)
                if m.fstype in ("cgroup", "cgroup2")
                and m.mount_point.startswith("/sys/fs/cgroup")]
    return out


def _own_cgroups(tree):
    """controller set (or "" for v2) -> this process's cgroup path (a rootless
    runtime's, read before the container's cgroup namespace, where the init shares it)."""
    own = {}
    text = tree.own_cgroups
    if text is None:
        text = procfs.read(tree.k, tree.procfd, "thread-self/cgroup").decode()
    for line in text.splitlines():
        _, ctrls, path = line.split(":", 2)
        own[ctrls] = path
    return own


def mount_cgroup(tree, dest, dest_fd, mo, cgroupns):
    """The container's view of its cgroups. With a cgroup namespace, mount the
    hierarchies themselves (the kernel roots them at the container's cgroup);
    without one, bind the container's own cgroup directories."""
    k = tree.k
    ro = mo.flags & MS_RDONLY
    flags = (mo.flags & ~(MS_REC | MS_BIND)) | MS_NOSUID | MS_NODEV | MS_NOEXEC
    sub_mo = MountOptions()
    sub_mo.flags = flags
    hier = _cgroup_mounts(tree)
    own = _own_cgroups(tree)
    unified = [h for h in hier if h[1] == "/sys/fs/cgroup" and h[0] == "cgroup2"]
    if unified:
        if cgroupns:
            try:
                k.mount("cgroup2", tree.fd_path(dest_fd), "cgroup2", flags)
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                # The destination is the root of a mount of the same filesystem (a
                # rootless /sys is the host's, bound), which the kernel refuses to stack
                # on itself: put a tmpfs between the two.
                k.mount("tmpfs", tree.fd_path(dest_fd), "tmpfs", flags & ~MS_RDONLY,
                        "mode=755")
                top = open_in_root(k, tree.rootfd, dest, _O_DIR, resolve=_NO_SYMLINKS)
                try:
                    k.mount("cgroup2", tree.fd_path(top), "cgroup2", flags)
                finally:
                    k.close(top)
        else:
            bind(k, "/sys/fs/cgroup" + own.get("", "/"), dest_fd, sub_mo, True)
        return
    k.mount("tmpfs", tree.fd_path(dest_fd), "tmpfs", flags & ~MS_RDONLY, "mode=755")
    # (the destination is held: reached without symlinks, so this finds the tmpfs)
    top = open_in_root(k, tree.rootfd, dest, _O_DIR, resolve=_NO_SYMLINKS)
    try:
        for fstype, mnt, opts in hier:
            name = mnt[len("/sys/fs/cgroup/"):]
            if not name or "/" in name:
                continue
            # (top is the tmpfs just mounted: empty but for what this loop made, so
            # the directory is made directly; a name met twice is walked to)
            try:
                k.mkdir(name, 0o755, dir_fd=top)
                sub = open_in_root(k, top, name, _O_DIR, resolve=_BELOW_HELD)
            except FileExistsError:
                sub = paths.mkdir_all(k, top, name, resolve=_BELOW_HELD)
            try:
                if fstype == "cgroup2":
                    if cgroupns:
                        k.mount("cgroup2", tree.fd_path(sub), "cgroup2", flags)
                    else:
                        bind(k, mnt + own.get("", "/"), sub, sub_mo, True)
                    continue
                ctrls = [o for o in opts.split(",") if o not in ("rw", "ro")]
                key = next((c for c in own if c and set(c.split(",")) == set(ctrls)), None)
                mine = mnt + (own.get(key, "/") if key else "/")
                if cgroupns:
                    try:
                        k.mount("cgroup", tree.fd_path(sub), "cgroup", flags, ",".join(ctrls))
                    except PermissionError:
                        # a v1 hierarchy cannot be mounted in a user namespace: the
                        # container's own cgroup of it, bound (what runc shows too)
                        bind(k, mine, sub, sub_mo, True)
                else:
                    bind(k, mine, sub, sub_mo, True)
            finally:
                k.close(sub)
            # cpu,cpuacct is reachable as cpu and cpuacct too, as on the host.
            if "," in name:
                for alias in name.split(","):
                    try:
                        k.symlink(name, alias, dir_fd=top)
                    except FileExistsError:
                        pass
        if ro:
            k.mount(None, tree.fd_path(top), None,
                    MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    finally:
        k.close(top)


def make_devices(tree, devices, bind_from_host):
    """mknod each device (or, in a user namespace where mknod is not allowed, bind the
    host's node onto an empty file), in the held /dev where there is one."""
    parents = {}  # one fd per directory (they are nearly all in /dev)
    try:
        for i, d in enumerate(devices):
            _make_device(tree, i, d, bind_from_host, parents)
    finally:
        for pfd in parents.values():
            tree.k.close(pfd)


_DEVICE_TYPES = {"c": _stat.S_IFCHR, "u": _stat.S_IFCHR, "b": _stat.S_IFBLK, "p": _stat.S_IFIFO}


# A device bound from the host (in a user namespace): never a way to setuid or exec.
_BOUND_DEVICE = MountOptions()
_BOUND_DEVICE.flags = MS_NOSUID | MS_NOEXEC


def _make_device(tree, i, d, bind_from_host, parents):
    """linux.devices[i] (or, past the config's, a default device)."""
    k = tree.k
    path = d["path"]
    parent, _, name = path.rpartition("/")
    pfd = parents.get(parent)
    try:
        if pfd is None:
            pfd = parents[parent] = tree.mkdir_all(parent or "/")
        kind = d.get("type", "c")
        mode = d.get("fileMode", 0o666) & 0o7777
        if not bind_from_host:
            dev = posix.makedev(d.get("major", 0), d.get("minor", 0)) if kind != "p" else 0
            try:
                # (first: in a fresh /dev nothing is there, and the checks below cost
                # a stat per device)
                k.mknod(name, mode | _DEVICE_TYPES[kind], dev, dir_fd=pfd)
            except FileExistsError:
                _remove_entry(k, pfd, name, path)
                k.mknod(name, mode | _DEVICE_TYPES[kind], dev, dir_fd=pfd)
            k.chown(name, d.get("uid", 0), d.get("gid", 0), dir_fd=pfd, follow_symlinks=False)
            return
        _remove_entry(k, pfd, name, path)
        try:
            k.stat(path)
        except FileNotFoundError:
            raise MountError(f"linux.devices[{i}]: `{path}` does not exist on the host (in a "
                             f"user namespace, devices are bind mounts of the host's)") from None
        fd = k.open(name, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW
                    | posix.O_CLOEXEC, 0o644, dir_fd=pfd)
        k.close(fd)
        dfd = k.open(name, posix.O_PATH | posix.O_NOFOLLOW | posix.O_CLOEXEC, dir_fd=pfd)
        try:
            bind(k, path, dfd, _BOUND_DEVICE, False)
        finally:
            k.close(dfd)
    except OSError as e:
        raise MountError(f"create device `{path}`: {e.strerror}") from None


def _remove_entry(k, pfd, name, path):
    """What the image has where a device goes (not a directory), removed."""
    try:
        st = k.stat(name, dir_fd=pfd, follow_symlinks=False)
        if _stat.S_ISDIR(st.st_mode):
            raise MountError(f"linux.devices: `{path}` is a directory in the rootfs")
        k.unlink(name, dir_fd=pfd)
    except FileNotFoundError:
        pass


def make_dev_symlinks(tree):
    k = tree.k
    try:
        k.close(procfs.open_file(k, tree.procfd, "kcore", posix.O_PATH))
        links = DEV_SYMLINKS + (KCORE_SYMLINK,)
    except OSError:
        links = DEV_SYMLINKS
    dfd = tree.mkdir_all("/dev")
    try:
        for target, link in links:
            try:
                k.symlink(target, link[len("/dev/"):], dir_fd=dfd)
            except FileExistsError:
                pass
    finally:
        k.close(dfd)


def _dev_null(tree):
    """The container's /dev/null, verified to be the real char 1:3 (CVE-2025-31133: a
    symlink or other file there would turn masking into exposure)."""
    k = tree.k
    fd = tree.open("/dev/null", paths.O_PATH | posix.O_NOFOLLOW)
    st = k.fstat(fd)
    if not _stat.S_ISCHR(st.st_mode) or st.st_rdev != posix.makedev(*NULL_DEVICE):
        k.close(fd)
        raise MountError("maskedPaths: /dev/null in the container is not the null device "
                         "(char 1:3)")
    return fd


def _open_listed(tree, field, i, path):
    """maskedPaths[i] / readonlyPaths[i]: an O_PATH fd of it, or None where it does
    not exist. Below a held mount (procfs, sysfs) it is looked up beneath that mount's
    fd, so no image symlink and no later mount elsewhere decides what it names; a
    lookup that leaves the mount, or any other failure, is an error, never a skip."""
    try:
        return tree.open(path, paths.O_PATH | posix.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise MountError(f"{field}[{i}]: `{path}`: {e.strerror}") from None


def mask_paths(tree, masked):
    if not masked:
        return
    k = tree.k
    null_fd = None
    try:
        for i, path in enumerate(masked):
            fd = _open_listed(tree, "linux.maskedPaths", i, path)
            if fd is None:
                continue
            try:
                if _stat.S_ISDIR(k.fstat(fd).st_mode):
                    k.mount("tmpfs", tree.fd_path(fd), "tmpfs", MS_RDONLY, None)
                else:
                    if null_fd is None:
                        null_fd = _dev_null(tree)
                    bind(k, null_fd, fd, None, False)
            except OSError as e:
                raise _fail("maskedPaths", path, e) from None
            finally:
                k.close(fd)
    finally:
        if null_fd is not None:
            k.close(null_fd)


def readonly_paths(tree, ro_paths):
    k = tree.k
    for i, path in enumerate(ro_paths or ()):
        fd = _open_listed(tree, "linux.readonlyPaths", i, path)
        if fd is None:
            continue
        try:
            clone = k.open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH
                                | AT_RECURSIVE)
            try:
                k.mount_setattr(clone, "", AT_EMPTY_PATH | AT_RECURSIVE, MOUNT_ATTR_RDONLY, 0)
                k.move_mount(clone, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)
            finally:
                k.close(clone)
        except OSError as e:
            raise _fail("readonlyPaths", path, e) from None
        finally:
            k.close(fd)


def prepare_root(k, procfd, rootfs, propagation):
    """Stop our mounts from reaching the host, then make the rootfs a mount point
    (pivot_root needs one). Returns an O_PATH fd of the rootfs mount."""
    # Before pivot_root only the kind of link to the host matters (shared, private,
    # or slave by default); an unbindable tree could not even be bound to itself.
    # finish_root() applies rootfsPropagation to the container's "/" afterwards.
    kind = propagation & ~MS_REC if propagation else 0
    first = {MS_SHARED: MS_SHARED | MS_REC, MS_PRIVATE: MS_PRIVATE | MS_REC}.get(
        kind, MS_SLAVE | MS_REC)
    k.mount(None, "/", None, first)
    if kind == MS_SHARED:
        # pivot_root refuses a shared new root, a shared parent of it and a shared
        # current root: make those private (in our namespace only); "/" of the
        # container gets rootfsPropagation back after pivot_root.
        k.mount(None, "/", None, MS_PRIVATE)
        k.mount(None, _mount_point_of(k, procfd, rootfs), None, MS_PRIVATE)
    k.mount(rootfs, rootfs, None, MS_BIND | MS_REC)
    if kind == MS_SHARED:
        k.mount(None, rootfs, None, MS_PRIVATE)
    return k.open(rootfs, posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)


def _mount_point_of(k, procfd, path):
    """The mount point (from mountinfo) that holds `path`."""
    best = "/"
    text = procfs.read(k, procfd, "thread-self/mountinfo").decode()
    for m in fs.parse_mountinfo(text):
        mp = m.mount_point
        if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) > len(best):
            best = mp
    return best


def pivot(k, rootfd, no_pivot):
    k.fchdir(rootfd)
    if no_pivot:
        k.mount(".", "/", None, MS_MOVE)
        k.chroot(".")
        k.chdir("/")
        return
    oldroot = k.open("/", posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
    try:
        k.pivot_root(".", ".")
        # The old root is now stacked on the new one. Make it (and only it: "." from
        # the new root's fd would name the new root, and a recursive slave there would
        # cut a shared volume's way back to the host, Bidirectional in Kubernetes)
        # a slave, so that unmounting it does not propagate to the host; then detach
        # it. As runc does, from its own fd.
        k.fchdir(oldroot)
        k.mount(None, ".", None, MS_SLAVE | MS_REC)
        k.umount2(".", MNT_DETACH)
    finally:
        k.close(oldroot)
    k.chdir("/")


def finish_root(k, readonly, propagation):
    """After pivot_root: root.readonly and linux.rootfsPropagation."""
    if readonly:
        k.mount_setattr(AT_FDCWD, "/", 0, MOUNT_ATTR_RDONLY, 0)
    if propagation:
        k.mount(None, "/", None, propagation)
