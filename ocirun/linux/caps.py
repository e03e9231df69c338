"""Capability names (linux/capability.h) and the masks built from them."""

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
CAP_SYS_ADMIN = 21


def last_cap():
    """The highest capability this kernel knows (caps above it cannot be set)."""
    from ocirun import fs  # here: config validation imports this module, and only names
    try:
        return int(fs.read_bytes("/proc/sys/kernel/cap_last_cap"))
    except OSError:
        return len(CAPS) - 1


def mask(names, top):
    """Bit mask of the named capabilities; names this kernel lacks are left out, as
    runc does (a newer config on an older kernel still runs)."""
    m = 0
    for n in names or ():
        bit = CAP_NUMBER[n]
        if bit <= top:
            m |= 1 << bit
    return m
