"""Paths inside the container's rootfs, resolved without ever leaving it.

Every lookup starts from an fd of the rootfs and uses openat2(RESOLVE_IN_ROOT), so a
symlink in the (hostile) rootfs such as `etc/hosts -> /tmp/x` or `proc -> /` resolves
inside the rootfs, never to the host (CVE-2021-30465, CVE-2024-45310). Mounts then
target the resolved fd (procfs.fd_path), so nothing can swap the path between the
check and the mount. Where a mount must be a plain directory (rootfs.py, held mounts)
the lookup refuses symlinks altogether (RESOLVE_NO_SYMLINKS).

`k` is the kernel object (kernel.Kernel, or a test's double)."""
import errno
import posix

from ocirun.kernel import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS

# The default: symlinks of the image are followed, with the rootfs as "/".
RESOLVE_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
O_PATH = posix.O_PATH | posix.O_CLOEXEC
MAX_SYMLINKS = 40  # as the kernel's path walk allows


def open_in_root(k, rootfd, path, flags=O_PATH, mode=0, *, resolve=RESOLVE_ROOT):
    """openat2 relative to rootfd with the rootfs as "/" for every symlink (or the
    `resolve` flags given)."""
    return k.openat2(rootfd, path.lstrip("/") or ".", flags | posix.O_CLOEXEC, mode, resolve)


def fd_path(fd):
    """The runtime's own /proc path of `fd` (host paths only: inside a container's
    mount namespace, see procfs.fd_path)."""
    return f"/proc/self/fd/{fd}"


def mkdir_all(k, rootfd, path, mode=0o755, *, resolve=RESOLVE_ROOT, _depth=0):
    """Create every missing directory of `path` inside the rootfs and return an O_PATH
    fd of the last one. Each component is created relative to its resolved parent,
    so a symlinked component is followed inside the rootfs only (or, with
    RESOLVE_NO_SYMLINKS in `resolve`, refused: the OSError's filename then names the
    first component that is a symlink or not a directory)."""
    try:
        return open_in_root(k, rootfd, path, O_PATH | posix.O_DIRECTORY, resolve=resolve)
    except FileNotFoundError:
        pass
    except OSError as e:
        if not resolve & RESOLVE_NO_SYMLINKS or e.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
    parts = [p for p in path.split("/") if p and p != "."]
    if parts and ".." not in parts:
        # The usual case, only the last directory missing (/dev/pts in a fresh /dev
        # tmpfs): its parent, resolved as the walk below would, then the last step of
        # that walk. Anything else (a missing parent, a symlink, a dangling link where
        # the name is) is the walk's, from the start.
        try:
            parent = open_in_root(k, rootfd, "/".join(parts[:-1]), O_PATH | posix.O_DIRECTORY,
                                  resolve=resolve)
        except OSError:
            parent = None
        if parent is not None:
            try:
                k.mkdir(parts[-1], mode, dir_fd=parent)
            except OSError:
                pass
            else:
                try:
                    return open_in_root(k, rootfd, path, O_PATH | posix.O_DIRECTORY,
                                        resolve=resolve)
                except OSError as e:
                    raise OSError(e.errno, e.strerror, "/" + "/".join(parts)) from None
            finally:
                k.close(parent)
    parent = k.dup(rootfd)
    done = ""
    try:
        for name in parts:
            if name == "..":
                raise OSError(errno.EINVAL, f"`..` in path {path}")
            done += "/" + name
            try:
                fd = open_in_root(k, rootfd, done, O_PATH | posix.O_DIRECTORY, resolve=resolve)
            except FileNotFoundError:
                try:
                    # mkdirat() accepts the O_PATH fd of the resolved parent.
                    k.mkdir(name, mode, dir_fd=parent)
                except FileExistsError:
                    # a dangling symlink (where symlinks are followed at all): make
                    # its target, resolved inside the rootfs as any lookup here is
                    target = k.readlink(name, dir_fd=parent)
                    if _depth >= MAX_SYMLINKS:
                        raise OSError(errno.ELOOP, "too many levels of symbolic links",
                                      done) from None
                    base = done.rpartition("/")[0]
                    k.close(mkdir_all(k, rootfd, target if target.startswith("/") else
                                      f"{base}/{target}", mode, resolve=resolve,
                                      _depth=_depth + 1))
                fd = open_in_root(k, rootfd, done, O_PATH | posix.O_DIRECTORY, resolve=resolve)
            except OSError as e:
                raise OSError(e.errno, e.strerror, done) from None
            k.close(parent)
            parent = fd
    except BaseException:
        k.close(parent)
        raise
    return parent


def create_file(k, rootfd, path, mode=0o644, *, resolve=RESOLVE_ROOT, _depth=0):
    """Make sure a regular file (a bind-mount target) exists at `path` inside the
    rootfs; return an O_PATH fd of it. Created with O_EXCL|O_NOFOLLOW; a dangling
    symlink in the way has its target created, inside the rootfs."""
    try:
        return open_in_root(k, rootfd, path, O_PATH, resolve=resolve)
    except FileNotFoundError:
        pass
    parent, _, name = path.rstrip("/").rpartition("/")
    pfd = mkdir_all(k, rootfd, parent or "/", resolve=resolve)
    target = None
    try:
        try:
            fd = k.open(name, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW
                        | posix.O_CLOEXEC, mode, dir_fd=pfd)
            k.close(fd)
        except FileExistsError:
            target = k.readlink(name, dir_fd=pfd)
    finally:
        k.close(pfd)
    if target is not None:
        if _depth >= MAX_SYMLINKS:
            raise OSError(errno.ELOOP, f"too many levels of symbolic links at {path}")
        return create_file(k, rootfd, target if target.startswith("/") else f"{parent}/{target}",
                           mode, resolve=resolve, _depth=_depth + 1)
    return open_in_root(k, rootfd, path, O_PATH, resolve=resolve)
