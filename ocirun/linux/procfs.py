"""The runtime's own procfs handle: every file it writes under /proc goes through it.

Once a container's mounts exist, /proc by name belongs to the container: the image, a
volume, or a process with CAP_SYS_ADMIN in a mount namespace the runtime joins decides
what a lookup there finds (a tmpfs over /proc/self/attr, a symlink from one sysctl to
another: CVE-2019-16884, CVE-2025-52881). So the runtime opens /proc once, before fork
and before it joins anything, checks that it is the root of a procfs, and reaches every
file below it with openat2 beneath that fd: no mount crossed (RESOLVE_NO_XDEV), no magic
link followed (`self` and `thread-self` are plain links to the caller's own directory,
which a procfs of an ancestor pid namespace has too), and the file checked to be procfs
again. Nothing is ever looked up in the container's /proc.

The handle is the host's procfs: its fd is O_CLOEXEC (gone at execve), and the processes
holding it are not dumpable, so nothing in the container can reach it.

`k` is the kernel object (kernel.Kernel, or a test's double).
"""
import errno
import posix

from ocirun.errors import OciError
from ocirun.kernel import (
    PROC_ROOT_INO, PROC_SUPER_MAGIC, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_XDEV,
)

_BENEATH = RESOLVE_BENEATH | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS


class ProcError(OciError):
    pass


def open_root(k, path="/proc"):
    """An O_PATH fd of the procfs at `path`, verified: the root directory of a procfs
    (f_type PROC_SUPER_MAGIC, inode 1), reached without following a symlink at its
    last component. The caller closes it."""
    try:
        fd = k.open(path, posix.O_PATH | posix.O_DIRECTORY | posix.O_NOFOLLOW | posix.O_CLOEXEC)
    except OSError as e:
        raise ProcError(f"open `{path}`: {e.strerror}") from None
    try:
        if k.fstatfs_type(fd) != PROC_SUPER_MAGIC or k.fstat(fd).st_ino != PROC_ROOT_INO:
            raise ProcError(f"`{path}` is not the root of a procfs")
    except BaseException:
        k.close(fd)
        raise
    return fd


def open_file(k, root, rel, flags):
    """`rel` (e.g. "thread-self/attr/exec", "sys/net/ipv4/ip_forward") beneath the
    verified procfs `root`, checked to be a procfs file. Raises OSError."""
    fd = k.openat2(root, rel, flags | posix.O_CLOEXEC | posix.O_NOFOLLOW, 0, _BENEATH)
    if k.fstatfs_type(fd) != PROC_SUPER_MAGIC:
        k.close(fd)
        raise OSError(errno.EXDEV, f"not a procfs file: {rel}")
    return fd


def write(k, root, rel, value):
    """Write `value` (str or bytes) to a procfs file in one write(2), as the kernel
    wants for sysctls, maps and attributes. Raises OSError."""
    data = value.encode() if isinstance(value, str) else value
    fd = open_file(k, root, rel, posix.O_WRONLY)
    try:
        k.write(fd, data)
    finally:
        k.close(fd)


def read(k, root, rel):
    fd = open_file(k, root, rel, posix.O_RDONLY)
    try:
        chunks = []
        while True:
            b = k.read(fd, 65536)
            if not b:
                return b"".join(chunks)
            chunks.append(b)
    finally:
        k.close(fd)


def readlink_fd(k, root, fd):
    """Where our `fd` leads (the magic link's text), read through the verified procfs."""
    return k.readlink(f"thread-self/fd/{fd}", dir_fd=root)


def fd_path(k, root, fd):
    """A path naming our `fd` for the syscalls that take paths only (mount(2) of a new
    filesystem, whose target the kernel reaches through the magic link): relative, for
    the current directory, which this moves to the verified procfs (the caller moves it
    back: rootfs.Tree). The init is not dumpable while it is there. Looked up in the
    process's own /proc instead, the /proc of a mount namespace the config joins could
    redirect the mount."""
    k.fchdir(root)
    return f"thread-self/fd/{fd}"
