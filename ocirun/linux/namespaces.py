"""Namespace types of config-linux.md and their kernel flags (<linux/sched.h>); pure
data, so validation can use it without loading the syscall layer."""

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
