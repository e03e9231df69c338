"""How fast can a container start from CPython here? A lower bound for ocirun's `run`.

Does only the kernel work a bundle like shared/fixtures/bench-config-noseccomp.json asks
for: five namespaces (pid, network, ipc, uts, mount), the rootfs bind, the config's
mounts, six device nodes, masked and read-only paths, pivot_root, then execve of
/bin/true and a wait, with the init sharing this process's memory as ocirun's does
(ocirun._sys clone_vm). The config is parsed by the C JSON scanner. No validation,
state, capabilities, seccomp or cgroups: what is left of ocirun's `run` once the
interpreter has started and every feature but the kernel work is taken away.

Run it as root from the bundle directory, under the interpreter the launcher uses,
side by side with the runtimes, e.g. in the README's private cgroup2 namespace:
    cd BUNDLE && hyperfine -N 'python3 -I -S /path/to/scripts/floor.py' \\
        'crun --cgroup-manager=disabled run x'
It needs ocirun._sys built (scripts/build-ext.sh) on x86_64 with glibc. Not a
runtime: errors end in a traceback and nothing is checked."""
import posix
import sys

import _json

sys.path.insert(0, __file__.rpartition("/scripts/")[0] or ".")
from ocirun._sys import clone_vm, syscall  # noqa: E402

UNSHARE, MOUNT, UMOUNT2, PIVOT_ROOT, SETHOSTNAME = 272, 165, 166, 155, 170
NEWNS, NEWUTS, NEWIPC, NEWPID, NEWNET = 0x20000, 0x4000000, 0x8000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 0x20
MS_BIND, MS_REC, MS_PRIVATE, MS_STRICTATIME, MNT_DETACH = 0x1000, 0x4000, 1 << 18, 1 << 24, 2
FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "ro": MS_RDONLY,
         "strictatime": MS_STRICTATIME}


class Scanner:
    """What _json.make_scanner reads from its context (json.JSONDecoder's fields)."""
    strict = True
    object_hook = object_pairs_hook = parse_constant = None
    parse_float, parse_int = float, int
    memo = {}


fd = posix.open("config.json", posix.O_RDONLY)
raw = posix.read(fd, 1 << 20)
posix.close(fd)
spec = _json.make_scanner(Scanner())(raw.decode(), 0)[0]
root = posix.getcwd().encode() + b"/" + spec["root"]["path"].encode()
# pid: the child is pid 1 of the new namespace; the others are made here and inherited
syscall(UNSHARE, NEWNS | NEWPID | NEWNET | NEWIPC | NEWUTS)
_, status_w = posix.pipe()


def child():
    """The init, in this process's memory until its execve: returns the exec request."""
    syscall(MOUNT, b"none", b"/", None, MS_REC | MS_PRIVATE, None)
    syscall(MOUNT, root, root, None, MS_BIND | MS_REC, None)
    for m in spec["mounts"]:
        options = m.get("options", ())
        flags = 0
        for o in options:
            flags |= FLAGS.get(o, 0)
        data = ",".join(o for o in options if "=" in o or o == "newinstance")
        dest = root + m["destination"].encode()
        try:
            posix.mkdir(dest, 0o755)
        except OSError:
            pass
        if m["type"] == "cgroup":
            syscall(MOUNT, b"cgroup2", dest, b"cgroup2", flags, None)
        elif m["type"] == "bind":
            syscall(MOUNT, m["source"].encode(), dest, None, MS_BIND | MS_REC, None)
        else:
            syscall(MOUNT, m["source"].encode(), dest, m["type"].encode(), flags,
                    data.encode() or None)
    for name in (b"null", b"zero", b"full", b"random", b"urandom", b"tty"):
        node = root + b"/dev/" + name
        posix.close(posix.open(node, posix.O_CREAT | posix.O_WRONLY, 0o666))
        syscall(MOUNT, b"/dev/" + name, node, None, MS_BIND, None)
    for p in spec["linux"]["maskedPaths"]:
        try:
            syscall(MOUNT, b"/dev/null", root + p.encode(), None, MS_BIND, None)
        except OSError:
            pass  # a directory or a missing path: ocirun does more here
    for p in spec["linux"]["readonlyPaths"]:
        path = root + p.encode()
        try:
            syscall(MOUNT, path, path, None, MS_BIND | MS_REC, None)
            syscall(MOUNT, None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)
        except OSError:
            pass
    posix.chdir(root)
    syscall(PIVOT_ROOT, b".", b".")
    syscall(UMOUNT2, b".", MNT_DETACH)
    syscall(SETHOSTNAME, b"floor", 5)
    # the exec request clone_vm performs (_sys.c): no fd to exec (-1: the path), the
    # program, argv, envp, the pipe a failed execve is reported on, that report's prefix
    return (-1, b"/bin/true", (b"/bin/true",), (b"PATH=/bin",), status_w, b"ERROR exec: ")


pid = clone_vm(child, -1, status_w)  # -1: no cgroup to be born in
posix._exit(posix.waitstatus_to_exitcode(posix.waitpid(pid, 0)[1]))
