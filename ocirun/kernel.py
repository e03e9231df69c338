"""The only module that touches ctypes: one function per syscall the runtime needs.

Everything here raises OSError (with errno) like the os module does, so callers
handle both the same way. ctypes is imported when this module is first imported,
which the CLI does only for verbs that need it (create/run/exec): `state`, `kill`,
`list` and `delete` never pay for it.
"""
import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

# Syscalls glibc 2.36 has no wrapper for, per machine (asm/unistd_64.h and
# asm-generic/unistd.h).
_NR = {
    "x86_64": dict(pivot_root=155, capget=125, capset=126, seccomp=317,
                   pidfd_send_signal=424, open_tree=428, move_mount=429,
                   fsopen=430, pidfd_open=434, close_range=436, openat2=437,
                   mount_setattr=442, bpf=321),
    "aarch64": dict(pivot_root=41, capget=90, capset=91, seccomp=277,
                    pidfd_send_signal=424, open_tree=428, move_mount=429,
                    fsopen=430, pidfd_open=434, close_range=436, openat2=437,
                    mount_setattr=442, bpf=280),
}[os.uname().machine]

# <linux/mount.h>, <sched.h>, <linux/openat2.h>, <linux/prctl.h>
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25
MNT_DETACH = 2

CLONE_NEWTIME = 0x80
CLONE_NEWNS = 0x20000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_NOSYMFOLLOW = 0x200000
AT_RECURSIVE = 0x8000
AT_EMPTY_PATH = 0x1000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4

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


def _check(ret):
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def _b(path):
    return path if path is None or isinstance(path, bytes) else os.fsencode(path)


def mount(source, target, fstype, flags=0, data=None):
    _check(_libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)))


def umount2(target, flags=0):
    _check(_libc.umount2(_b(target), flags))


def unshare(flags):
    _check(_libc.unshare(flags))


def setns(fd, nstype=0):
    _check(_libc.setns(fd, nstype))


def pivot_root(new_root, put_old):
    _check(_syscall(_NR["pivot_root"], _b(new_root), _b(put_old)))


def sethostname(name):
    b = name.encode()
    _check(_libc.sethostname(b, len(b)))


def setdomainname(name):
    b = name.encode()
    _check(_libc.setdomainname(b, len(b)))


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    return _check(_libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                              ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)))


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def mount_setattr(dirfd, path, flags, attr_set, attr_clr=0, propagation=0):
    attr = _MountAttr(attr_set, attr_clr, propagation, 0)
    _check(_syscall(_NR["mount_setattr"], dirfd, _b(path), ctypes.c_uint(flags),
                    ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))))


def open_tree(dirfd, path, flags):
    return _check(_syscall(_NR["open_tree"], dirfd, _b(path), ctypes.c_uint(flags)))


def move_mount(from_dirfd, from_path, to_dirfd, to_path, flags):
    _check(_syscall(_NR["move_mount"], from_dirfd, _b(from_path), to_dirfd, _b(to_path),
                    ctypes.c_uint(flags)))


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def openat2(dirfd, path, flags, mode=0, resolve=0):
    how = _OpenHow(flags, mode, resolve)
    return _check(_syscall(_NR["openat2"], dirfd, _b(path), ctypes.byref(how),
                           ctypes.c_size_t(ctypes.sizeof(how))))


def pidfd_open(pid, flags=0):
    return _check(_syscall(_NR["pidfd_open"], pid, flags))


def pidfd_send_signal(pidfd, sig):
    _check(_syscall(_NR["pidfd_send_signal"], pidfd, sig, None, 0))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capset(effective, permitted, inheritable):
    """Set the three per-thread sets from 64-bit masks."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)(
        _CapData(effective & 0xFFFFFFFF, permitted & 0xFFFFFFFF, inheritable & 0xFFFFFFFF),
        _CapData(effective >> 32, permitted >> 32, inheritable >> 32))
    _check(_syscall(_NR["capset"], ctypes.byref(hdr), data))


def seccomp(operation, flags, prog):
    """seccomp(2) with `prog` a bytes object of packed sock_filter instructions."""
    class _SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]
    fprog = _SockFprog(len(prog) // 8, prog)
    return _check(_syscall(_NR["seccomp"], ctypes.c_uint(operation), ctypes.c_uint(flags),
                           ctypes.byref(fprog)))


CLOSE_RANGE_CLOEXEC = 4


def close_range(first, last=0xFFFFFFFF, flags=0):
    """close_range(2); with CLOSE_RANGE_CLOEXEC the fds close at execve instead."""
    _check(_syscall(_NR["close_range"], ctypes.c_uint(first),
                    ctypes.c_uint(last), ctypes.c_uint(flags)))


def bpf(cmd, attr):
    """bpf(2) with `attr` a bytes-like union bpf_attr prefix; returns the result (an fd for
    BPF_PROG_LOAD). The buffer is copied, so pointers inside `attr` must stay alive."""
    buf = ctypes.create_string_buffer(bytes(attr), len(attr))
    return _check(_syscall(_NR["bpf"], ctypes.c_int(cmd), buf, ctypes.c_uint(len(attr))))


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
    code = ctypes.create_string_buffer(bytes(insns), len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    logbuf = ctypes.create_string_buffer(log_size)

    class _Load(ctypes.Structure):
        _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
                    ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
                    ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                    ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
                    ("prog_flags", ctypes.c_uint32), ("prog_name", ctypes.c_char * 16),
                    ("prog_ifindex", ctypes.c_uint32), ("expected_attach_type", ctypes.c_uint32)]

    def load(level):
        attr = _Load(prog_type, len(insns) // 8, ctypes.addressof(code), ctypes.addressof(lic),
                     level, log_size if level else 0, ctypes.addressof(logbuf) if level else 0,
                     0, 0, b"", 0, expected_attach_type)
        return _syscall(_NR["bpf"], ctypes.c_int(BPF_PROG_LOAD), ctypes.byref(attr),
                        ctypes.c_uint(ctypes.sizeof(attr)))

    fd = load(0)
    if fd >= 0:
        return fd
    err = ctypes.get_errno()
    if err in (1, 22):  # EPERM/EINVAL: reload with the verifier log for the message
        fd = load(1)
        if fd >= 0:  # a transient failure: the retry loaded it
            return fd
        verifier = logbuf.value.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise OSError(err, f"{os.strerror(err)}: {' | '.join(verifier)}")
    raise OSError(err, os.strerror(err))


def bpf_prog_attach(target_fd, prog_fd, attach_type, flags=0):
    """BPF_PROG_ATTACH: attach prog_fd to the cgroup open at target_fd."""
    class _Attach(ctypes.Structure):
        _fields_ = [("target_fd", ctypes.c_uint32), ("attach_bpf_fd", ctypes.c_uint32),
                    ("attach_type", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                    ("replace_bpf_fd", ctypes.c_uint32)]
    attr = _Attach(target_fd, prog_fd, attach_type, flags, 0)
    _check(_syscall(_NR["bpf"], ctypes.c_int(BPF_PROG_ATTACH), ctypes.byref(attr),
                    ctypes.c_uint(ctypes.sizeof(attr))))
