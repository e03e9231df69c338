"""Host files and paths over posix, for the modules on the start-up path: the os.path
helpers they need, whole-file reads, atomic writes, the JSON text of the files the runtime
writes, and the one mountinfo parser.

Importing `os` costs ~1.0 ms of every command (measured here: `python3 -I -S` running
`import os` vs `import posix`, 400 interleaved runs): its own body, and the ABCs of
_collections_abc it builds. So the modules of create, start, run, exec, state, kill,
delete and list call posix directly (the same functions os re-exports) and these
helpers for the few os.path functions they need; tests/integration/test_import_budget.py
fails if `os` comes back on those paths. Paths are str, as posix returns them.
"""
import posix
import sys

_ENC = sys.getfilesystemencoding()  # what posix uses for str paths
_S_IFMT = 0o170000
_S_IFDIR = 0o040000
_S_IFLNK = 0o120000


def join(a, *parts):
    """os.path.join for str: an absolute part starts over."""
    out = a
    for p in parts:
        if p.startswith("/"):
            out = p
        elif not out or out.endswith("/"):
            out += p
        else:
            out += "/" + p
    return out


def dirname(p):
    head = p[:p.rfind("/") + 1]
    return head.rstrip("/") or head


def basename(p):
    return p[p.rfind("/") + 1:]


def normpath(p):
    """os.path.normpath: no ".", no "a/..", no repeated "/" (a leading "//" is kept,
    as POSIX allows it a meaning of its own)."""
    if not p:
        return "."
    initial = 2 if p.startswith("//") and not p.startswith("///") else 1 if p.startswith("/") else 0
    out = []
    for comp in p.split("/"):
        if comp in ("", "."):
            continue
        if comp != ".." or (not initial and not out) or (out and out[-1] == ".."):
            out.append(comp)
        elif out:
            out.pop()
    return "/" * initial + "/".join(out) or "."


def abspath(p):
    return normpath(p if p.startswith("/") else join(posix.getcwd(), p))


def _mode(p, follow=True):
    try:
        return posix.stat(p, follow_symlinks=follow).st_mode & _S_IFMT
    except (OSError, ValueError):
        return None


def exists(p):
    return _mode(p) is not None


def isdir(p):
    return _mode(p) == _S_IFDIR


def islink(p):
    return _mode(p, follow=False) == _S_IFLNK


def realpath(p):
    """The canonical path of an existing file, as the kernel resolves it (what
    os.path.realpath(strict=True) computes, in two syscalls): raises OSError."""
    fd = posix.open(p, posix.O_PATH | posix.O_CLOEXEC)
    try:
        return posix.readlink(f"/proc/self/fd/{fd}")
    finally:
        posix.close(fd)


def makedirs(path, mode=0o777):
    """os.makedirs(path, mode, exist_ok=True)."""
    try:
        posix.mkdir(path, mode)
    except FileExistsError:
        if not isdir(path):
            raise
    except FileNotFoundError:
        parent = dirname(path)
        if not parent or parent == path:
            raise
        makedirs(parent, mode)
        try:
            posix.mkdir(path, mode)
        except FileExistsError:
            if not isdir(path):
                raise


def subdirs(d):
    """d and every directory below it, parents first (os.walk's order); a directory
    that vanishes meanwhile is skipped."""
    out = [d]
    i = 0
    while i < len(out):
        try:
            with posix.scandir(out[i]) as it:
                out.extend(e.path for e in it if e.is_dir(follow_symlinks=False))
        except OSError:
            pass
        i += 1
    return out


def getenv(name, default=None):
    """os.environ.get for str names and values (the environment is bytes in posix)."""
    v = posix.environ.get(name.encode(_ENC, "surrogateescape"))
    return default if v is None else v.decode(_ENC, "surrogateescape")


def read_bytes(path):
    """The whole file, through posix (no io stack: builtins.open costs five syscalls
    and three objects more for a /proc file). Raises OSError."""
    fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        chunks = []
        while True:
            b = posix.read(fd, 65536)
            if not b:
                return b"".join(chunks)
            chunks.append(b)
    finally:
        posix.close(fd)


def fsencode(s):
    """os.fsencode: str -> bytes the way posix calls encode a str path."""
    return s.encode(_ENC, "surrogateescape")


def write_file(path, text):
    """One write(2) of `text` into an existing file (a kernel interface file)."""
    fd = posix.open(path, posix.O_WRONLY | posix.O_CLOEXEC)
    try:
        posix.write(fd, text.encode())
    finally:
        posix.close(fd)


def write_atomic(path, data, mode=0o600):
    """Write temp + fsync-free rename: readers see the old or the new file, never half.
    The temporary name is unpredictable and created with O_EXCL, so a file someone
    planted in the directory (`--pid-file` may name one others can write) is never
    written through or adopted (docs/security.md N)."""
    flags = posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_CLOEXEC | posix.O_NOFOLLOW
    while True:
        tmp = f"{path}.{posix.urandom(8).hex()}.tmp"
        try:
            fd = posix.open(tmp, flags, mode)
            break
        except FileExistsError:
            continue
    try:
        view = memoryview(data)
        while view:
            view = view[posix.write(fd, view):]
    except OSError:
        posix.close(fd)
        posix.unlink(tmp)
        raise
    posix.close(fd)
    posix.rename(tmp, path)


def _no_default(o):
    raise TypeError(f"not JSON: {type(o).__name__}")


def dumps(obj):
    """Compact JSON text (json.dumps without importing json, which pulls in re)."""
    import _json
    enc = _json.make_encoder(None, _no_default, _json.encode_basestring_ascii, None, ":", ",",
                             False, False, True)
    return "".join(enc(obj, 0))


class Mount:
    """One line of /proc/PID/mountinfo (proc(5))."""

    __slots__ = ("mount_id", "parent_id", "root", "mount_point", "options", "fstype",
                 "source", "super_options")


def _unescape(field):
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
        .replace("\\134", "\\")


def parse_mountinfo(text):
    """[Mount] from the text of a mountinfo file; malformed lines are skipped."""
    out = []
    for line in text.splitlines():
        # "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
        left, sep, right = line.partition(" - ")
        fields = left.split(" ")
        rest = right.split(" ")
        if not sep or len(fields) < 6 or len(rest) < 3:
            continue
        m = Mount()
        try:
            m.mount_id = int(fields[0])
            m.parent_id = int(fields[1])
        except ValueError:
            continue
        m.root = _unescape(fields[3])
        m.mount_point = _unescape(fields[4])
        m.options = fields[5]
        m.fstype = rest[0]
        m.source = _unescape(rest[1])
        m.super_options = rest[2]
        out.append(m)
    return out
