"""A recording double of kernel.Kernel for unit tests of the container's set-up
(linux/rootfs.py, linux/init.py) without root: a small in-memory tree of files,
symlinks, device nodes and stacked mounts, path lookups that honour openat2's RESOLVE_*
flags, and a log of every call (`calls`). It models what the set-up relies on, not
Linux: enough to check the order of mounts, masks, devices and privilege changes, and
what a hostile image's symlinks make of them."""
import errno
import os
import stat
import types

from ocirun import kernel as K

MAGIC = {"proc": K.PROC_SUPER_MAGIC, "sysfs": K.SYSFS_MAGIC, "tmpfs": K.TMPFS_MAGIC,
         "devpts": K.DEVPTS_SUPER_MAGIC, "mqueue": K.MQUEUE_MAGIC, "ext4": 0xEF53,
         "cgroup": K.CGROUP_SUPER_MAGIC, "cgroup2": K.CGROUP2_SUPER_MAGIC}
# what a fresh filesystem of each type holds
CONTENT = {
    "proc": {"kcore": "file", "timer_list": "file", "sys": "dir", "sys/kernel": "dir",
             "sys/kernel/core_pattern": "file", "thread-self": "dir", "self": "dir",
             "thread-self/fd": "dir", "self/fd": "dir", "self/oom_score_adj": "file",
             "sys/net": "dir", "sys/net/ipv4": "dir", "sys/net/ipv4/ip_forward": "file"},
    "sysfs": {"firmware": "dir", "fs": "dir", "fs/cgroup": "dir", "kernel": "dir"},
}


class Stop(BaseException):
    """Raised by execve and fork: the code under test has nothing after them."""


class Node:
    __slots__ = ("kind", "target", "mode", "rdev", "ino")

    def __init__(self, kind, target=None, mode=0o755, rdev=0, ino=0):
        self.kind, self.target, self.mode, self.rdev, self.ino = kind, target, mode, rdev, ino


class FakeKernel:
    def __init__(self):
        self.calls = []
        self.nodes = {"/": Node("dir")}
        self.mounts = []           # [(id, path, fstype, source)], later ones on top
        self.fds = {}              # fd -> (path, mount id at open)
        self.next_fd = 10
        self.next_ino = 100
        self.cwd = "/"
        self.reads = {}            # path -> bytes a read returns
        self.writes = []           # (path, bytes)
        self.add_mount("/", "ext4", "/dev/root")
        self.add_mount("/proc", "proc", "proc")
        self.nodes["/proc/kcore"] = Node("file")
        # stdio: pipes of root's
        self.nodes["/pipe"] = Node("file")
        for fd in (0, 1, 2):
            self.fds[fd] = ("/pipe", 1)

    # --- the model ------------------------------------------------------------------------
    def add(self, path, kind="dir", target=None, mode=0o755, rdev=0):
        parent = path.rpartition("/")[0] or "/"
        if parent not in self.nodes:
            self.add(parent)
        self.next_ino += 1
        self.nodes[path] = Node(kind, target, mode, rdev, self.next_ino)

    def add_mount(self, path, fstype, source):
        """A new filesystem at `path`: what was below it is hidden."""
        mid = len(self.mounts) + 1
        for p in [p for p in self.nodes if p.startswith(path.rstrip("/") + "/")]:
            del self.nodes[p]
        self.nodes[path] = Node("dir", ino=1 if fstype == "proc" else 2)
        for rel, kind in CONTENT.get(fstype, {}).items():
            self.nodes[f"{path.rstrip('/')}/{rel}"] = Node(kind)
        self.mounts.append((mid, path, fstype, source))
        return mid

    def mount_of(self, path):
        best = None
        for m in self.mounts:
            mp = m[1]
            if path == mp or mp == "/" or path.startswith(mp + "/"):
                if best is None or len(mp) >= len(best[1]):
                    best = m
        return best

    def mounted(self):
        """[(path, fstype, source)] in the order they were made (what a test asserts)."""
        return [(p, t, s) for _, p, t, s in self.mounts[2:]]

    def lookup(self, base, path, resolve=0, follow=True):
        """The model's path walk from `base`: -> the resolved absolute path (whose last
        component may not exist). RESOLVE_IN_ROOT makes `base` "/" for absolute paths
        and symlinks; RESOLVE_BENEATH refuses (EXDEV) to leave it."""
        root = base if resolve & K.RESOLVE_IN_ROOT else "/"
        beneath = base if resolve & K.RESOLVE_BENEATH else None
        return self._walk(base, path, root, beneath, resolve, follow, 0)

    def _walk(self, cur, path, root, beneath, resolve, follow, depth):
        if depth > 40:
            raise OSError(errno.ELOOP, "too many symlinks", path)
        if path.startswith("/"):
            if beneath is not None:
                raise OSError(errno.EXDEV, "absolute path beneath a directory", path)
            cur = root
        parts = [p for p in path.split("/") if p and p != "."]
        for i, name in enumerate(parts):
            last = i == len(parts) - 1
            if name == "..":
                if beneath is not None and cur == beneath:
                    raise OSError(errno.EXDEV, "`..` leaves the directory", path)
                if cur != root:
                    cur = cur.rpartition("/")[0] or "/"
                continue
            nxt = f"{cur.rstrip('/')}/{name}"
            magic = self._magic(nxt)
            if magic is not None:
                if resolve & (K.RESOLVE_NO_MAGICLINKS | K.RESOLVE_NO_SYMLINKS):
                    raise OSError(errno.ELOOP, "magic link", nxt)
                cur = magic
                continue
            node = self.nodes.get(nxt)
            if node is not None and node.kind == "link" and (follow or not last):
                if resolve & K.RESOLVE_NO_SYMLINKS:
                    raise OSError(errno.ELOOP, "symlink", nxt)
                rest = "/".join(parts[i + 1:])
                target = f"{node.target}/{rest}" if rest else node.target
                return self._walk(cur, target, root, beneath, resolve, follow, depth + 1)
            if node is not None and node.kind != "dir" and not last:
                raise OSError(errno.ENOTDIR, "not a directory", nxt)
            if node is None and not last:
                raise FileNotFoundError(errno.ENOENT, "no such file", nxt)
            cur = nxt
        return cur

    def _magic(self, path):
        """/proc/thread-self/fd/N and /proc/self/fd/N lead to our fd N's file; any
        procfs's self/root (and cwd) to "/"."""
        for prefix in ("/proc/thread-self/fd/", "/proc/self/fd/"):
            if path.startswith(prefix) and path[len(prefix):].isdigit():
                return self.fds[int(path[len(prefix):])][0]
        if path.endswith(("/self/root", "/thread-self/root", "/self/cwd")):
            return "/"
        return None

    def _fd(self, path):
        fd = self.next_fd
        self.next_fd += 1
        m = self.mount_of(path)
        self.fds[fd] = (path, m[0])
        return fd

    def _at(self, path, dir_fd=None):
        base = self.fds[dir_fd][0] if dir_fd is not None else self.cwd
        return path if path.startswith("/") else f"{base.rstrip('/')}/{path}"

    def path(self, fd):
        return self.fds[fd][0]

    def log(self, *call):
        self.calls.append(call)

    # --- mounts ---------------------------------------------------------------------------
    def mount(self, source, target, fstype, flags=0, data=None):
        where = self.lookup(self.cwd, target) if not target.startswith("/") else \
            self.lookup("/", target)
        self.log("mount", source, where, fstype, flags, data)
        if fstype and not flags & (K.MS_REMOUNT | K.MS_BIND):
            self.add_mount(where, fstype, source)
        elif flags & K.MS_BIND and not flags & K.MS_REMOUNT:
            self.mounts.append((len(self.mounts) + 1, where, "bind", source))

    def umount2(self, target, flags=0):
        self.log("umount2", target, flags)

    def pivot_root(self, new, old):
        self.log("pivot_root", self.cwd)

    def open_tree(self, dirfd, path, flags):
        src = self.path(dirfd) if flags & K.AT_EMPTY_PATH else path
        self.log("open_tree", src, flags)
        return self._fd(src)

    def move_mount(self, from_fd, from_path, to_fd, to_path, flags):
        src, dst = self.path(from_fd), self.path(to_fd)
        self.log("move_mount", src, dst)
        self.mounts.append((len(self.mounts) + 1, dst, "bind", src))

    def mount_setattr(self, fd, path, flags, attr_set, attr_clr=0, propagation=0):
        where = self.path(fd) if fd >= 0 else path
        self.log("mount_setattr", where, attr_set, attr_clr, propagation)

    def openat2(self, dirfd, path, flags, mode=0, resolve=0):
        base = self.path(dirfd) if dirfd >= 0 else self.cwd
        follow = not (flags & os.O_NOFOLLOW)
        where = self.lookup(base, path, resolve, follow)
        node = self.nodes.get(where)
        if node is None:
            raise FileNotFoundError(errno.ENOENT, "no such file", where)
        if flags & os.O_DIRECTORY and node.kind != "dir":
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", where)
        if node.kind == "link" and follow:
            raise OSError(errno.ELOOP, "symlink", where)
        self.log("openat2", base, path, resolve)
        return self._fd(where)

    def fstatfs_type(self, fd):
        path, mid = self.fds[fd]
        return MAGIC.get(next(m[2] for m in self.mounts if m[0] == mid), 0)

    def mount_id(self, fd):
        return self.mount_of(self.path(fd))[0]

    # --- files ----------------------------------------------------------------------------
    def open(self, path, flags, mode=0o777, dir_fd=None):
        where = self._at(path, dir_fd)
        if flags & os.O_CREAT:
            if flags & os.O_EXCL and where in self.nodes:
                raise FileExistsError(errno.EEXIST, "exists", where)
            self.add(where, "file", mode=mode)
        elif self._magic(where) is None:
            where = self.lookup("/", where, 0, not flags & os.O_NOFOLLOW)
            if where not in self.nodes:
                raise FileNotFoundError(errno.ENOENT, "no such file", where)
        return self._fd(where)

    def close(self, fd):
        del self.fds[fd]

    def read(self, fd, n):
        return self.reads.get(self.path(fd), b"")[:n]

    def write(self, fd, data):
        self.writes.append((self.path(fd), bytes(data)))
        self.log("write", self.path(fd), bytes(data))
        return len(data)

    def dup(self, fd):
        return self._fd(self.path(fd))

    def _stat(self, where):
        node = self.nodes.get(where)
        if node is None:
            raise FileNotFoundError(errno.ENOENT, "no such file", where)
        kind = {"dir": stat.S_IFDIR, "file": stat.S_IFREG, "link": stat.S_IFLNK,
                "chr": stat.S_IFCHR}[node.kind]
        return types.SimpleNamespace(st_mode=kind | node.mode, st_rdev=node.rdev, st_ino=node.ino,
                                     st_uid=0)

    def fstat(self, fd):
        return self._stat(self.path(fd))

    def stat(self, path, dir_fd=None, follow_symlinks=True):
        return self._stat(self.lookup("/", self._at(path, dir_fd), 0, follow_symlinks))

    def mkdir(self, name, mode=0o777, dir_fd=None):
        where = self._at(name, dir_fd)
        if where in self.nodes:
            raise FileExistsError(errno.EEXIST, "exists", where)
        self.log("mkdir", where)
        self.add(where)

    def mknod(self, name, mode, dev, dir_fd=None):
        where = self._at(name, dir_fd)
        self.log("mknod", where, stat.S_IFMT(mode), mode & 0o7777, os.major(dev), os.minor(dev))
        self.add(where, "chr", mode=mode & 0o7777, rdev=dev)

    def chown(self, name, uid, gid, dir_fd=None, follow_symlinks=True):
        self.log("chown", self._at(name, dir_fd), uid, gid)

    def symlink(self, target, name, dir_fd=None):
        where = self._at(name, dir_fd)
        if where in self.nodes:
            raise FileExistsError(errno.EEXIST, "exists", where)
        self.log("symlink", target, where)
        self.add(where, "link", target)

    def readlink(self, path, dir_fd=None):
        where = self._at(path, dir_fd)
        magic = self._magic(where if where.startswith("/proc/") else
                            "/proc/" + where.partition("/proc/")[2])
        if magic is not None:
            return magic
        return self.nodes[where].target

    def unlink(self, name, dir_fd=None):
        where = self._at(name, dir_fd)
        self.log("unlink", where)
        del self.nodes[where]

    def fchdir(self, fd):
        self.cwd = self.path(fd)

    def chdir(self, path):
        self.log("chdir", path)
        self.cwd = path if path.startswith("/") else self._at(path)

    def chroot(self, path):
        self.log("chroot", path)

    def getcwd(self):
        return "/"

    # --- namespaces and the process -------------------------------------------------------
    def __getattr__(self, name):
        """Every other call of kernel.Kernel is recorded, and returns 0."""
        if name not in vars(K.Kernel):
            raise AttributeError(name)

        def call(*args, **kw):
            self.log(name, *args)
            if name in ("execve", "fork"):
                raise Stop(name)
            if name == "memfd_create":
                return self._fd("/memfd:" + args[0])
            return 0
        return call
