"""The bench bundle: a busybox rootfs and a podman-like config.json running /bin/true.

The config is ours to write, so it is generated here rather than read from a file:
podman's mounts and masked paths for a container without host bind mounts, the
namespaces podman creates (pid, network, ipc, uts, mount), podman's default
capabilities and rlimits low enough for hosts without CAP_SYS_RESOURCE."""
import os

NAMESPACES = ("pid", "network", "ipc", "uts", "mount")
CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
        "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID",
        "CAP_SYS_CHROOT")
_NOX = ["nosuid", "noexec", "nodev"]
# (destination, type, source, options)
MOUNTS = (
    ("/proc", "proc", "proc", _NOX),
    ("/dev", "tmpfs", "tmpfs", ["nosuid", "noexec", "strictatime", "mode=755", "size=65536k"]),
    ("/sys", "sysfs", "sysfs", _NOX + ["ro"]),
    ("/dev/pts", "devpts", "devpts", ["nosuid", "noexec", "newinstance", "ptmxmode=0666",
                                      "mode=0620", "gid=5"]),
    ("/dev/shm", "tmpfs", "shm", _NOX + ["mode=1777", "size=65536k"]),
    ("/dev/mqueue", "mqueue", "mqueue", _NOX),
    ("/sys/fs/cgroup", "cgroup", "cgroup", ["rprivate"] + _NOX + ["relatime", "ro"]),
)
MASKED = ("/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
          "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
          "/sys/fs/selinux", "/sys/dev/block")
READONLY = ("/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
            "/proc/sysrq-trigger")


def config(seccomp=None, args=("/bin/true",), limits=True):
    """The bench config.json as a dict; `seccomp`: a linux.seccomp section or None;
    without `limits`, no pids limit (for a runtime without cgroups, which refuses it)."""
    caps = list(CAPS)
    resources = {"devices": [{"allow": False, "access": "rwm"}]}
    if limits:
        resources["pids"] = {"limit": 2048}
    linux = {
        "sysctl": {"net.ipv4.ping_group_range": "0 0"},
        # absolute, for every runtime alike: runc puts a relative path (or none) under
        # its own cgroup, which may be a service's of this machine
        "cgroupsPath": "/ocirun-bench",
        "resources": resources,
        "namespaces": [{"type": t} for t in NAMESPACES],
        "maskedPaths": list(MASKED),
        "readonlyPaths": list(READONLY),
    }
    if seccomp:
        linux["seccomp"] = seccomp
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "user": {"uid": 0, "gid": 0, "umask": 0o022},
            "args": list(args),
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm", "container=podman", "HOSTNAME=bench"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 4096},
                        {"type": "RLIMIT_NPROC", "hard": 4096, "soft": 4096}],
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "bench",
        "mounts": [{"destination": d, "type": t, "source": s, "options": list(o)}
                   for d, t, s, o in MOUNTS],
        "annotations": {},
        "linux": linux,
    }


def find_busybox():
    import shutil
    for p in (shutil.which("busybox"), "/bin/busybox", "/usr/bin/busybox"):
        if p and os.path.isfile(p):
            return p
    return None


def is_static(path):
    """True for an ELF without a PT_INTERP segment (a static busybox runs in any rootfs)."""
    import struct
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return not any(struct.unpack_from("<I", table, i * phentsize)[0] == 3 for i in range(phnum))


def make_rootfs(path, busybox=None):
    """A busybox rootfs: the static binary and a symlink per applet the bench runs."""
    import shutil
    busybox = busybox or find_busybox()
    if not busybox:
        raise FileNotFoundError("busybox not found (install busybox-static, or pass --bundle DIR)")
    if not is_static(busybox):
        raise OSError(f"{busybox} is not statically linked (install busybox-static, "
                      "or pass --bundle DIR)")
    os.makedirs(f"{path}/bin")
    shutil.copy2(busybox, f"{path}/bin/busybox")
    for applet in ("true", "sh", "echo", "cat", "ls"):
        os.symlink("busybox", f"{path}/bin/{applet}")
    for d in ("proc", "sys", "dev", "etc", "tmp", "root"):
        os.makedirs(f"{path}/{d}", exist_ok=True)
    with open(f"{path}/etc/passwd", "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    with open(f"{path}/etc/group", "w") as f:
        f.write("root:x:0:\n")


def write_config(bundle_dir, cfg):
    import json
    tmp = f"{bundle_dir}/config.json.tmp"
    with open(tmp, "w") as f:
        json.dump(cfg, f, indent=1)
    os.replace(tmp, f"{bundle_dir}/config.json")
