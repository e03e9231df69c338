"""The only module that makes raw syscalls: one function per syscall the runtime needs.

Syscalls go through ocirun._sys.syscall, a tiny C function built at install time; where
it is not built, through ctypes (whose import alone costs ~1.5-3 ms, more than every
other import of `ocirun run`). Structures are packed with `struct`. Everything raises
OSError with errno, like the os module."""
import _struct  # the C module: `struct` is a .py file to find and load
import errno
import posix

from ocirun import fs

try:
    from ocirun._sys import address as _address
    from ocirun._sys import fork_into_cgroup
    from ocirun._sys import syscall as _raw
    try:
        from ocirun._sys import clone_vm  # x86_64 and glibc only (_sys.c)
        from ocirun._sys import netns_ahead, netns_take
    except ImportError:
        clone_vm = netns_ahead = netns_take = None
except ImportError:  # no C compiler at install: the same interface over ctypes
    import ctypes as _ct

    _libc = _ct.CDLL(None, use_errno=True)
    _libc.syscall.restype = _ct.c_long
    _keep = []

    def _arg(a):
        if a is None or isinstance(a, int):
            return _ct.c_long(a or 0 if a is None or a < 1 << 63 else a - (1 << 64))
        if isinstance(a, bytes):
            return _ct.c_char_p(a)
        buf = (_ct.c_char * len(a)).from_buffer(a)
        _keep.append(buf)
        return buf

    def _raw(nr, *args):
        ret = _libc.syscall(_ct.c_long(nr), *[_arg(a) for a in args])
        _keep.clear()
        if ret == -1:
            err = _ct.get_errno()
            raise OSError(err, posix.strerror(err))
        return ret

    def fork_into_cgroup(fd):
        """Needs the C extension (the interpreter's fork bookkeeping is C API)."""
        import errno
        raise OSError(errno.ENOSYS, "fork_into_cgroup needs ocirun._sys")

    clone_vm = netns_ahead = netns_take = None

    def _address(obj):
        if isinstance(obj, bytes):
            return _ct.cast(_ct.c_char_p(obj), _ct.c_void_p).value
        return _ct.addressof((_ct.c_char * len(obj)).from_buffer(obj))

# Syscall numbers per machine (asm/unistd_64.h; asm-generic/unistd.h for aarch64).
_NR = {
    "x86_64": dict(mount=165, umount2=166, unshare=272, setns=308, pivot_root=155,
                   sethostname=170, setdomainname=171, prctl=157, capget=125, capset=126,
                   seccomp=317, bpf=321, memfd_create=319, execveat=322,
                   open_tree=428, move_mount=429, close_range=436, openat2=437,
                   mount_setattr=442, prlimit64=302, fstatfs=138, rt_sigaction=13, fcntl=72, statx=332,
                   socket=41, ioctl=16, sched_setattr=314, ioprio_set=251, personality=135,
                   set_mempolicy=238),
    "aarch64": dict(mount=40, umount2=39, unshare=97, setns=268, pivot_root=41,
                    sethostname=161, setdomainname=162, prctl=167, capget=90, capset=91,
                    seccomp=277, bpf=280, memfd_create=279, execveat=281,
                    open_tree=428, move_mount=429, close_range=436, openat2=437,
                    mount_setattr=442, prlimit64=261, fstatfs=44, rt_sigaction=134, fcntl=25, statx=291,
                    socket=198, ioctl=29, sched_setattr=274, ioprio_set=30, personality=92,
                    set_mempolicy=237),
}[posix.uname().machine]

# The flags of mount(2), mount_setattr(2) and clone/unshare(2) are pure tables
# (ocirun/tables), re-exported here for the callers of these syscalls.
from ocirun.tables import (  # noqa: E402,F401
    MNT_DETACH, MOUNT_ATTR__ATIME, MOUNT_ATTR_IDMAP, MOUNT_ATTR_NOATIME, MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NODIRATIME, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NOSYMFOLLOW,
    MOUNT_ATTR_RDONLY, MOUNT_ATTR_RELATIME, MOUNT_ATTR_STRICTATIME, MS_BIND, MS_DIRSYNC,
    MS_LAZYTIME, MS_MANDLOCK, MS_MOVE, MS_NOATIME, MS_NODEV, MS_NODIRATIME, MS_NOEXEC,
    MS_NOSUID, MS_NOSYMFOLLOW, MS_PRIVATE, MS_RDONLY, MS_REC, MS_RELATIME, MS_REMOUNT,
    MS_SHARED, MS_SILENT, MS_SLAVE, MS_STRICTATIME, MS_SYNCHRONOUS, MS_UNBINDABLE,
)
from ocirun.tables import (  # noqa: E402,F401
    CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWTIME,
    CLONE_NEWUSER, CLONE_NEWUTS,
)

# <linux/mount.h>, <linux/openat2.h>, <linux/prctl.h>
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
AT_EMPTY_PATH = 0x1000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = posix.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4


def _b(path):
    """A NUL-terminated path for the kernel (None stays NULL)."""
    if path is None:
        return None
    return (path if isinstance(path, bytes) else fs.fsencode(path)) + b"\0"


def mount(source, target, fstype, flags=0, data=None):
    _raw(_NR["mount"], _b(source), _b(target), _b(fstype), flags, _b(data))


def umount2(target, flags=0):
    _raw(_NR["umount2"], _b(target), flags)


def unshare(flags):
    _raw(_NR["unshare"], flags)


def setns(fd, nstype=0):
    _raw(_NR["setns"], fd, nstype)


def pivot_root(new_root, put_old):
    _raw(_NR["pivot_root"], _b(new_root), _b(put_old))


def sethostname(name):
    b = name.encode()
    _raw(_NR["sethostname"], b, len(b))


def setdomainname(name):
    b = name.encode()
    _raw(_NR["setdomainname"], b, len(b))


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    return _raw(_NR["prctl"], option, arg2, arg3, arg4, arg5)


def mount_setattr(dirfd, path, flags, attr_set, attr_clr=0, propagation=0, userns_fd=0):
    attr = _struct.pack("QQQQ", attr_set, attr_clr, propagation, userns_fd)  # struct mount_attr
    _raw(_NR["mount_setattr"], dirfd, _b(path), flags, attr, len(attr))


def open_tree(dirfd, path, flags):
    return _raw(_NR["open_tree"], dirfd, _b(path), flags)


def move_mount(from_dirfd, from_path, to_dirfd, to_path, flags):
    _raw(_NR["move_mount"], from_dirfd, _b(from_path), to_dirfd, _b(to_path), flags)


def openat2(dirfd, path, flags, mode=0, resolve=0):
    how = _struct.pack("QQQ", flags, mode, resolve)  # struct open_how
    return _raw(_NR["openat2"], dirfd, _b(path), how, len(how))


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capset(effective, permitted, inheritable):
    """Set the three per-thread capability sets from 64-bit masks."""
    hdr = _struct.pack("Ii", _LINUX_CAPABILITY_VERSION_3, 0)
    lo, hi = 0xFFFFFFFF, 32
    data = _struct.pack("IIIIII", effective & lo, permitted & lo, inheritable & lo,
                       effective >> hi, permitted >> hi, inheritable >> hi)
    _raw(_NR["capset"], hdr, data)


def seccomp(operation, flags, prog):
    """seccomp(2) with `prog` a bytes object of packed struct sock_filter."""
    fprog = _struct.pack("HxxxxxxQ", len(prog) // 8, _address(prog))  # struct sock_fprog
    ret = _raw(_NR["seccomp"], operation, flags, fprog)
    del prog  # the filter had to stay alive until here
    return ret


CLOSE_RANGE_CLOEXEC = 4


def close_range(first, last=0xFFFFFFFF, flags=0):
    """close_range(2); with CLOSE_RANGE_CLOEXEC the fds close at execve instead."""
    _raw(_NR["close_range"], first, last, flags)


def sigaction_default(sig):
    """rt_sigaction(sig, SIG_DFL): the kernel's disposition only. signal.signal()
    would also rewrite the interpreter's handler table, which a child made by
    clone_vm shares with the runtime (struct kernel_sigaction: handler 0, no flags,
    no restorer, empty mask; an 8-byte sigset)."""
    _raw(_NR["rt_sigaction"], sig, bytes(32), None, 8)


def memfd_create(name, flags):
    return _raw(_NR["memfd_create"], _b(name), flags)


def fcntl(fd, cmd, arg=0):
    """fcntl(2) with an integer argument (the fcntl module costs an import)."""
    return _raw(_NR["fcntl"], fd, cmd, arg)



# <linux/bpf.h>
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_OVERRIDE = 1
BPF_F_ALLOW_MULTI = 2


def bpf_prog_load(prog_type, insns, license="GPL", expected_attach_type=0, log_size=65536):
    """BPF_PROG_LOAD of packed struct bpf_insn bytes; returns the program fd (O_CLOEXEC by
    the kernel). On failure the OSError's strerror carries the verifier log."""
    code = bytes(insns)
    lic = license.encode() + b"\0"
    logbuf = bytearray(log_size)

    def load(level):
        attr = _struct.pack("IIQQIIQII16sII", prog_type, len(code) // 8, _address(code),
                           _address(lic), level, log_size if level else 0,
                           _address(logbuf) if level else 0, 0, 0, b"", 0, expected_attach_type)
        return _raw(_NR["bpf"], BPF_PROG_LOAD, attr, len(attr))

    try:
        return load(0)
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EINVAL):  # only these come with a verifier log
            raise
        err = e.errno
    try:
        return load(1)  # a transient failure: the retry loaded it
    except OSError:
        pass
    verifier = logbuf.split(b"\0", 1)[0].decode("utf-8", "replace").strip().splitlines()[-3:]
    raise OSError(err, f"{posix.strerror(err)}: {' | '.join(verifier)}")


def bpf_prog_attach(target_fd, prog_fd, attach_type, flags=0):
    """BPF_PROG_ATTACH: attach prog_fd to the cgroup open at target_fd."""
    attr = _struct.pack("IIIII", target_fd, prog_fd, attach_type, flags, 0)
    _raw(_NR["bpf"], BPF_PROG_ATTACH, attr, len(attr))


def setrlimit(resource, soft, hard):
    """prlimit64(0, resource, new, NULL): 64-bit limits without the `resource`
    module (one shared library less to load on every create)."""
    _raw(_NR["prlimit64"], 0, resource, _struct.pack("QQ", soft, hard), None)


# f_type values (<linux/magic.h>) of the filesystems the runtime mounts and checks.
PROC_SUPER_MAGIC = 0x9FA0
SYSFS_MAGIC = 0x62656572
TMPFS_MAGIC = 0x01021994
DEVPTS_SUPER_MAGIC = 0x1CD1
MQUEUE_MAGIC = 0x19800202
CGROUP_SUPER_MAGIC = 0x27E0EB
CGROUP2_SUPER_MAGIC = 0x63677270
PROC_ROOT_INO = 1


def fstatfs_type(fd):
    """f_type of the filesystem holding `fd` (struct statfs starts with it)."""
    buf = bytearray(120)
    _raw(_NR["fstatfs"], fd, buf)
    return _struct.unpack_from("l", buf)[0]


STATX_MNT_ID = 0x1000
_STATX_MNT_ID_OFFSET = 0x90  # struct statx: stx_mnt_id follows stx_dev_minor


def mount_id(fd):
    """The id of the mount `fd` is on (statx STATX_MNT_ID, Linux 5.8): two fds on the
    same directory of two different mounts (a mount stacked over another) differ."""
    buf = bytearray(256)
    _raw(_NR["statx"], fd, b"\0", AT_EMPTY_PATH, STATX_MNT_ID, buf)
    if not _struct.unpack_from("I", buf)[0] & STATX_MNT_ID:
        raise OSError(errno.ENOSYS, "statx: no mount id (Linux 5.8 or newer is needed)")
    return _struct.unpack_from("Q", buf, _STATX_MNT_ID_OFFSET)[0]


AF_INET = 2
SOCK_DGRAM = 2
SOCK_CLOEXEC = 0o2000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
_IFREQ = "16sh22x"  # struct ifreq: the name, then ifr_flags in the union


def loopback_up():
    """Bring `lo` up in the current network namespace (a new one has it down), as
    runc and crun do: SIOCGIFFLAGS/SIOCSIFFLAGS on a datagram socket, no `socket` or
    `fcntl` module to import."""
    sock = _raw(_NR["socket"], AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)
    try:
        req = bytearray(_struct.pack(_IFREQ, b"lo", 0))
        _raw(_NR["ioctl"], sock, SIOCGIFFLAGS, req)
        name, flags = _struct.unpack(_IFREQ, req)
        if not flags & IFF_UP:
            _raw(_NR["ioctl"], sock, SIOCSIFFLAGS, bytearray(_struct.pack(_IFREQ, name,
                                                                            flags | IFF_UP)))
    finally:
        posix.close(sock)


def sched_setattr(policy, flags, nice, priority, runtime, deadline, period):
    """sched_setattr(0, ...): this thread's scheduling (struct sched_attr, size 48)."""
    attr = _struct.pack("IIQiIQQQ", 48, policy, flags, nice, priority, runtime, deadline,
                        period)
    _raw(_NR["sched_setattr"], 0, attr, 0)


IOPRIO_WHO_PROCESS = 1


def ioprio_set(value):
    _raw(_NR["ioprio_set"], IOPRIO_WHO_PROCESS, 0, value)


def personality(persona):
    return _raw(_NR["personality"], persona)


def set_mempolicy(mode, nodes):
    """set_mempolicy(2) of `mode` (with its flags) over the node numbers `nodes`."""
    maxnode = (max(nodes) + 1 if nodes else 0) + 1
    words = bytearray(8 * ((maxnode + 63) // 64 or 1))
    for n in nodes:
        words[n // 8] |= 1 << (n % 8)
    _raw(_NR["set_mempolicy"], mode, words if nodes else None, maxnode if nodes else 0)


def last_cap():
    """The highest capability this kernel knows (caps above it cannot be set)."""
    try:
        return int(fs.read_bytes("/proc/sys/kernel/cap_last_cap"))
    except OSError:
        from ocirun.tables import CAPS
        return len(CAPS) - 1


class Kernel:
    """Every call the container's set-up makes (linux/: init, exec_init, rootfs, paths,
    procfs, trampoline), as the methods of one object. Those modules never call posix or
    this module's functions directly: they are handed this object (KERNEL), and a unit
    test hands them a recording double instead (tests/unit/fake_kernel.py) to check the
    order of mounts, masks, devices and privilege changes, without root and in
    milliseconds. The methods are the functions themselves: a call costs what it did."""

    # mounts and the filesystem tree
    mount = staticmethod(mount)
    umount2 = staticmethod(umount2)
    pivot_root = staticmethod(pivot_root)
    open_tree = staticmethod(open_tree)
    move_mount = staticmethod(move_mount)
    mount_setattr = staticmethod(mount_setattr)
    openat2 = staticmethod(openat2)
    fstatfs_type = staticmethod(fstatfs_type)
    mount_id = staticmethod(mount_id)
    open = staticmethod(posix.open)
    close = staticmethod(posix.close)
    read = staticmethod(posix.read)
    write = staticmethod(posix.write)
    dup = staticmethod(posix.dup)
    fstat = staticmethod(posix.fstat)
    stat = staticmethod(posix.stat)
    mkdir = staticmethod(posix.mkdir)
    mknod = staticmethod(posix.mknod)
    chown = staticmethod(posix.chown)
    fchown = staticmethod(posix.fchown)
    isatty = staticmethod(posix.isatty)
    symlink = staticmethod(posix.symlink)
    readlink = staticmethod(posix.readlink)
    unlink = staticmethod(posix.unlink)
    fchdir = staticmethod(posix.fchdir)
    chdir = staticmethod(posix.chdir)
    chroot = staticmethod(posix.chroot)
    getcwd = staticmethod(posix.getcwd)
    # namespaces and the process
    unshare = staticmethod(unshare)
    setns = staticmethod(setns)
    sethostname = staticmethod(sethostname)
    setdomainname = staticmethod(setdomainname)
    loopback_up = staticmethod(loopback_up)
    sched_setattr = staticmethod(sched_setattr)
    sched_setaffinity = staticmethod(posix.sched_setaffinity)
    ioprio_set = staticmethod(ioprio_set)
    personality = staticmethod(personality)
    set_mempolicy = staticmethod(set_mempolicy)
    fork = staticmethod(posix.fork)
    prctl = staticmethod(prctl)
    setrlimit = staticmethod(setrlimit)
    umask = staticmethod(posix.umask)
    sigaction_default = staticmethod(sigaction_default)
    set_inheritable = staticmethod(posix.set_inheritable)
    close_range = staticmethod(close_range)
    setgroups = staticmethod(posix.setgroups)
    setresgid = staticmethod(posix.setresgid)
    setresuid = staticmethod(posix.setresuid)
    capset = staticmethod(capset)
    seccomp = staticmethod(seccomp)
    # the last execve (linux/trampoline.py)
    memfd_create = staticmethod(memfd_create)
    fcntl = staticmethod(fcntl)
    execve = staticmethod(posix.execve)


KERNEL = Kernel()
