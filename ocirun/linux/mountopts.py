"""The mount option table: what each option of config.json `mounts[].options` means
to the kernel. Pure data; the same options runc and crun accept."""
from ocirun.kernel import (
    MOUNT_ATTR_NOATIME, MOUNT_ATTR_NODEV, MOUNT_ATTR_NODIRATIME, MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID, MOUNT_ATTR_NOSYMFOLLOW, MOUNT_ATTR_RDONLY, MOUNT_ATTR_RELATIME,
    MOUNT_ATTR_STRICTATIME, MS_BIND, MS_DIRSYNC, MS_LAZYTIME, MS_MANDLOCK, MS_NOATIME,
    MS_NODEV, MS_NODIRATIME, MS_NOEXEC, MS_NOSUID, MS_NOSYMFOLLOW, MS_PRIVATE, MS_RDONLY,
    MS_REC, MS_RELATIME, MS_REMOUNT, MS_SHARED, MS_SILENT, MS_SLAVE, MS_STRICTATIME,
    MS_SYNCHRONOUS, MS_UNBINDABLE,
)

# option -> (clear?, flag). "clear" options undo a flag (rw clears MS_RDONLY).
FLAGS = {
    "async": (True, MS_SYNCHRONOUS), "atime": (True, MS_NOATIME),
    "bind": (False, MS_BIND), "defaults": (False, 0), "dev": (True, MS_NODEV),
    "diratime": (True, MS_NODIRATIME), "dirsync": (False, MS_DIRSYNC),
    "exec": (True, MS_NOEXEC), "iversion": (False, 1 << 23), "lazytime": (False, MS_LAZYTIME),
    "loud": (True, MS_SILENT), "mand": (False, MS_MANDLOCK), "noatime": (False, MS_NOATIME),
    "nodev": (False, MS_NODEV), "nodiratime": (False, MS_NODIRATIME),
    "noexec": (False, MS_NOEXEC), "noiversion": (True, 1 << 23),
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
EXTENSIONS = frozenset(("tmpcopyup", "idmap", "ridmap", "copy-symlink", "private-shm",
                        "notmpcopyup", "x-mount.mkdir"))


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
                mo.attr_clr |= 0x70
                mo.attr_set &= ~0x70
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
