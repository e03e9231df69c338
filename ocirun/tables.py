"""Pure tables: the names of the runtime-spec and of the kernel, and their numbers. No
I/O, and no import from the rest of ocirun: both the syscall layer (kernel.py) and the
config layer (config/) build on them.

  namespaces   config-linux.md namespace types, CLONE_NEW* flags, the setns order
  capabilities names and numbers (linux/capability.h), masks
  rlimits      process.rlimits types and RLIMIT_* numbers
  devices      the default devices and /dev symlinks
  mounts       mount(2) and mount_setattr(2) flags, the mounts[].options table
"""


# --- namespaces -----------------------------------------------------------------------
# Namespace types of config-linux.md and their kernel flags (<linux/sched.h>); pure
# data, so validation can use it without loading the syscall layer.

CLONE_NEWTIME = 0x80
CLONE_NEWNS = 0x20000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# OCI type -> (CLONE_NEW* flag, name under /proc/PID/ns/)
NAMESPACES = {
    "pid": (CLONE_NEWPID, "pid"),
    "network": (CLONE_NEWNET, "net"),
    "mount": (CLONE_NEWNS, "mnt"),
    "ipc": (CLONE_NEWIPC, "ipc"),
    "uts": (CLONE_NEWUTS, "uts"),
    "user": (CLONE_NEWUSER, "user"),
    "cgroup": (CLONE_NEWCGROUP, "cgroup"),
    "time": (CLONE_NEWTIME, "time"),
}
# setns order: the user namespace first (it grants the rights to join the others),
# the mount namespace last (after it, paths resolve in the container).
JOIN_ORDER = ("user", "pid", "network", "ipc", "uts", "cgroup", "time", "mount")


# --- capabilities ---------------------------------------------------------------------
# Capability names (linux/capability.h) and the masks built from them.

CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
CAP_NUMBER = {name: i for i, name in enumerate(CAPS)}


def mask(names, top):
    """Bit mask of the named capabilities; names this kernel lacks are left out, as
    runc does (a newer config on an older kernel still runs)."""
    m = 0
    for n in names or ():
        bit = CAP_NUMBER[n]
        if bit <= top:
            m |= 1 << bit
    return m


# --- rlimits --------------------------------------------------------------------------
# process.rlimits types and their RLIMIT_* numbers (asm-generic/resource.h; the same on
# x86 and arm64).

RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4, "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}


# --- devices --------------------------------------------------------------------------
# The devices every container gets (runtime-spec config-linux.md "Default Devices"), and
# the /dev symlinks runc and crun make.

# path, major, minor (char devices, mode 0666)
DEFAULT_DEVICES = (
    ("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7),
    ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0),
)
NULL_DEVICE = (1, 3)
PTMX_DEVICE = (5, 2)  # /dev/pts/ptmx of a devpts instance

# target, link
DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
)
KCORE_SYMLINK = ("/proc/kcore", "/dev/core")  # where the kernel has /proc/kcore


# --- mounts ---------------------------------------------------------------------------
# Mount flags and the option table: what each option of config.json `mounts[].options`
# means to the kernel. Pure data; the same options runc and crun accept.

# <linux/mount.h>: mount(2) flags ...
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
MS_I_VERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25
MNT_DETACH = 2

# ... and mount_setattr(2) attributes
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70  # the atime mode: a 3-bit field, set as a whole
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_NOSYMFOLLOW = 0x200000

# option -> (clear?, flag). "clear" options undo a flag (rw clears MS_RDONLY).
FLAGS = {
    "async": (True, MS_SYNCHRONOUS), "atime": (True, MS_NOATIME),
    "bind": (False, MS_BIND), "defaults": (False, 0), "dev": (True, MS_NODEV),
    "diratime": (True, MS_NODIRATIME), "dirsync": (False, MS_DIRSYNC),
    "exec": (True, MS_NOEXEC), "iversion": (False, MS_I_VERSION), "lazytime": (False, MS_LAZYTIME),
    "loud": (True, MS_SILENT), "mand": (False, MS_MANDLOCK), "noatime": (False, MS_NOATIME),
    "nodev": (False, MS_NODEV), "nodiratime": (False, MS_NODIRATIME),
    "noexec": (False, MS_NOEXEC), "noiversion": (True, MS_I_VERSION),
    "nolazytime": (True, MS_LAZYTIME), "nomand": (True, MS_MANDLOCK),
    "norelatime": (True, MS_RELATIME), "nostrictatime": (True, MS_STRICTATIME),
    "nosuid": (False, MS_NOSUID), "nosymfollow": (False, MS_NOSYMFOLLOW),
    "rbind": (False, MS_BIND | MS_REC), "relatime": (False, MS_RELATIME),
    "remount": (False, MS_REMOUNT), "ro": (False, MS_RDONLY), "rw": (True, MS_RDONLY),
    "silent": (False, MS_SILENT), "strictatime": (False, MS_STRICTATIME),
    "suid": (True, MS_NOSUID), "sync": (False, MS_SYNCHRONOUS),
    "symfollow": (True, MS_NOSYMFOLLOW),
}

PROPAGATION = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC,
}

# Recursive mount attributes (mount_setattr(2) with AT_RECURSIVE): option ->
# (clear?, attr). The atime ones are a 3-bit field, set as a whole.
RECURSIVE = {
    "rro": (False, MOUNT_ATTR_RDONLY), "rrw": (True, MOUNT_ATTR_RDONLY),
    "rnosuid": (False, MOUNT_ATTR_NOSUID), "rsuid": (True, MOUNT_ATTR_NOSUID),
    "rnodev": (False, MOUNT_ATTR_NODEV), "rdev": (True, MOUNT_ATTR_NODEV),
    "rnoexec": (False, MOUNT_ATTR_NOEXEC), "rexec": (True, MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, MOUNT_ATTR_NODIRATIME), "rdiratime": (True, MOUNT_ATTR_NODIRATIME),
    "rrelatime": (False, MOUNT_ATTR_RELATIME), "rnorelatime": (True, MOUNT_ATTR_RELATIME),
    "rnoatime": (False, MOUNT_ATTR_NOATIME), "ratime": (True, MOUNT_ATTR_NOATIME),
    "rstrictatime": (False, MOUNT_ATTR_STRICTATIME),
    "rnostrictatime": (True, MOUNT_ATTR_STRICTATIME),
    "rnosymfollow": (False, MOUNT_ATTR_NOSYMFOLLOW), "rsymfollow": (True, MOUNT_ATTR_NOSYMFOLLOW),
}
_ATIME_ATTRS = (MOUNT_ATTR_NOATIME, MOUNT_ATTR_STRICTATIME, MOUNT_ATTR_RELATIME)

# Options the runtime itself interprets rather than the kernel.
# (x-mount.mkdir asks what the runtime always does: the destination is made when missing.)
# Those that look like the runtime's own (crun's) but are not implemented are refused
# by config/validate.py: the kernel would ignore them on a bind mount, and the mount
# would be made without what they ask.
UNSUPPORTED_OPTIONS = ("src-nofollow", "dest-nofollow", "private-shm")
EXTENSIONS = frozenset(("tmpcopyup", "idmap", "ridmap", "copy-symlink", "notmpcopyup",
                        "x-mount.mkdir") + UNSUPPORTED_OPTIONS)


class MountOptions:
    __slots__ = ("flags", "clear", "propagation", "data", "attr_set", "attr_clr", "extensions")

    def __init__(self):
        self.flags = 0
        self.clear = 0
        self.propagation = []
        self.data = []
        self.attr_set = 0
        self.attr_clr = 0
        self.extensions = []

    @property
    def bind(self):
        return bool(self.flags & MS_BIND)


def parse_options(options):
    """Split config options into mount(2) flags, propagation changes, filesystem data
    (anything unknown, e.g. mode=755, size=64k) and recursive attributes. A later
    option wins over an earlier one (ro then rw is rw), as in mount(8)."""
    mo = MountOptions()
    for opt in options or ():
        f = FLAGS.get(opt)
        if f is not None:
            clear, flag = f
            if clear:
                mo.flags &= ~flag
                mo.clear |= flag
            else:
                mo.flags |= flag
                mo.clear &= ~flag
            continue
        p = PROPAGATION.get(opt)
        if p is not None:
            mo.propagation.append(p)
            continue
        r = RECURSIVE.get(opt)
        if r is not None:
            clear, attr = r
            if attr in _ATIME_ATTRS or (clear and attr == MOUNT_ATTR_RELATIME):
                # The atime mode is one field: clearing it and setting the new mode.
                mo.attr_clr |= MOUNT_ATTR__ATIME
                mo.attr_set &= ~MOUNT_ATTR__ATIME
                if not clear:
                    mo.attr_set |= attr
            elif clear:
                mo.attr_set &= ~attr
                mo.attr_clr |= attr
            else:
                mo.attr_set |= attr
                mo.attr_clr &= ~attr
            continue
        if opt in EXTENSIONS:
            mo.extensions.append(opt)
            continue
        mo.data.append(opt)
    return mo


# --- scheduling, I/O priority, personality, NUMA ----------------------------------------
# sched_setattr(2) (include/uapi/linux/sched.h), ioprio_set(2) (linux/ioprio.h),
# personality(2) (linux/personality.h), set_mempolicy(2) (linux/mempolicy.h).

SCHED_POLICY = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                "SCHED_ISO": 4, "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAG = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
              "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
              "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
              "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
IOPRIO_CLASS = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
IOPRIO_CLASS_SHIFT = 13
PERSONALITY_DOMAIN = {"LINUX": 0x0000, "LINUX32": 0x0008}
MPOL_MODE = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3,
             "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MPOL_FLAG = {"MPOL_F_STATIC_NODES": 1 << 15, "MPOL_F_RELATIVE_NODES": 1 << 14,
             "MPOL_F_NUMA_BALANCING": 1 << 13}
# modes that take no nodes, and those that need at least one
MPOL_NO_NODES = frozenset(("MPOL_DEFAULT", "MPOL_LOCAL"))
MPOL_NEED_NODES = frozenset(("MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_PREFERRED_MANY",
                             "MPOL_WEIGHTED_INTERLEAVE"))


def parse_cpu_list(text):
    """"0-3,7" -> {0, 1, 2, 3, 7}; ValueError for anything else (also for an empty
    list). The format of CPU lists and of NUMA node lists alike."""
    out = set()
    for part in text.split(","):
        part = part.strip()
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise ValueError(text)
        a, b = int(lo), int(hi) if dash else int(lo)
        if b < a or b > 1 << 16:
            raise ValueError(text)
        out.update(range(a, b + 1))
    return out
