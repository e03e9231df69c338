"""Paths inside the container's rootfs, resolved without ever leaving it.

Every lookup starts from an fd of the rootfs and uses openat2(RESOLVE_IN_ROOT), so a
symlink in the (hostile) rootfs such as `etc/hosts -> /tmp/x` or `proc -> /` resolves
inside the rootfs, never to the host (CVE-2021-30465, CVE-2024-45310). Mounts then
target the resolved fd through /proc/self/fd/N, so nothing can swap the path between
the check and the mount."""
import posix
import _stat  # the C module behind `stat`

from ocirun import kernel
from ocirun.kernel import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS

_RESOLVE = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
O_PATH = posix.O_PATH | posix.O_CLOEXEC


def open_in_root(rootfd, path, flags=O_PATH, mode=0):
    """openat2 relative to rootfd with the rootfs as "/" for every symlink."""
    return kernel.openat2(rootfd, path.lstrip("/") or ".", flags | posix.O_CLOEXEC, mode, _RESOLVE)


def fd_path(fd):
    return f"/proc/self/fd/{fd}"


def mkdir_all(rootfd, path, mode=0o755):
    """Create every missing directory of `path` inside the rootfs and return an O_PATH
    fd of the last one. Each component is created relative to its resolved parent,
    so a symlinked component is followed inside the rootfs only."""
    try:
        return open_in_root(rootfd, path, O_PATH | posix.O_DIRECTORY)
    except FileNotFoundError:
        pass
    parts = [p for p in path.split("/") if p and p != "."]
    parent = posix.dup(rootfd)
    done = ""
    try:
        for name in parts:
            if name == "..":
                raise OSError(22, f"`..` in path {path}")
            done += "/" + name
            try:
                fd = open_in_root(rootfd, done, O_PATH | posix.O_DIRECTORY)
            except FileNotFoundError:
                try:
                    # mkdirat() accepts the O_PATH fd of the resolved parent.
                    posix.mkdir(name, mode, dir_fd=parent)
                except FileExistsError:
                    pass
                fd = open_in_root(rootfd, done, O_PATH | posix.O_DIRECTORY)
            posix.close(parent)
            parent = fd
    except BaseException:
        posix.close(parent)
        raise
    return parent


def create_file(rootfd, path, mode=0o644, _depth=0):
    """Make sure a regular file (a bind-mount target) exists at `path` inside the
    rootfs; return an O_PATH fd of it. Created with O_EXCL|O_NOFOLLOW; a dangling
    symlink in the way has its target created, inside the rootfs."""
    try:
        return open_in_root(rootfd, path, O_PATH)
    except FileNotFoundError:
        pass
    parent, _, name = path.rstrip("/").rpartition("/")
    pfd = mkdir_all(rootfd, parent or "/")
    target = None
    try:
        try:
            fd = posix.open(name, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC,
                         mode, dir_fd=pfd)
            posix.close(fd)
        except FileExistsError:
            target = posix.readlink(name, dir_fd=pfd)
    finally:
        posix.close(pfd)
    if target is not None:
        if _depth >= 40:
            raise OSError(40, f"too many levels of symbolic links at {path}")
        return create_file(rootfd, target if target.startswith("/") else f"{parent}/{target}",
                           mode, _depth + 1)
    return open_in_root(rootfd, path, O_PATH)


def is_dir(fd):
    return _stat.S_ISDIR(posix.fstat(fd).st_mode)
