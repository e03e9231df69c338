"""Content-addressed store of compiled seccomp programs.

<root>/.cache/seccomp/<hex key>, the directory 0700 and every entry 0600, owned by
the runtime's euid. An entry is a header then the program:

    magic "OCIBPF\\0\\1" | key (32) | info u32 | length u32 | blake2b-128(program)

Reads open with O_NOFOLLOW|O_NONBLOCK (no symlink, no FIFO hang), check owner, type
and mode, then the header: a wrong magic, key, length or checksum (corrupt,
truncated, or an entry planted under another name) is removed and reported as a miss,
so the caller recompiles. Writes go to a temporary name and are renamed into place,
so a reader sees a whole entry or none. The store is bounded (MAX_ENTRIES,
MAX_BYTES); writing evicts the oldest entries by mtime. Every failure of the cache
is a miss, never an error: the program can always be compiled.
"""
import os
from _struct import Struct          # not `struct`: one module fewer on every start

from _blake2 import blake2b

MAGIC = b"OCIBPF\x00\x01"
HEADER = Struct("<8s32sII16s")
MAX_PROG = 4096 * 8
MAX_ENTRIES = 256
MAX_BYTES = 8 << 20

_RD = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def cache_dir(root):
    """The cache directory under a state root."""
    return os.path.join(root, ".cache", "seccomp")


def _trusted(st):
    return st.st_uid == os.geteuid() and not st.st_mode & 0o077


def read(directory, key):
    """-> (program bytes, info) or None."""
    try:
        dfd = os.open(directory, _DIR)
    except OSError:
        return None
    try:
        if not _trusted(os.fstat(dfd)):
            return None
        name = key.hex()
        try:
            fd = os.open(name, _RD, dir_fd=dfd)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if st.st_mode & 0o170000 != 0o100000 or not _trusted(st):
                data = b""
            else:
                data = os.read(fd, HEADER.size + MAX_PROG + 1)
        finally:
            os.close(fd)
        entry = _verify(data, key)
        if entry is None:
            _unlink(name, dfd)
        return entry
    finally:
        os.close(dfd)


def _verify(data, key):
    if len(data) < HEADER.size:
        return None
    magic, k, info, length, digest = HEADER.unpack_from(data)
    prog = data[HEADER.size:]
    if (magic != MAGIC or k != key or length != len(prog) or not length or length % 8
            or length > MAX_PROG or blake2b(prog, digest_size=16).digest() != digest):
        return None
    return prog, info


def _unlink(name, dfd):
    try:
        os.unlink(name, dir_fd=dfd)
    except OSError:
        pass


def _makedirs(directory):
    parent = os.path.dirname(directory)
    if parent and not os.path.isdir(parent):
        _makedirs(parent)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        return
    os.chmod(directory, 0o700)     # whatever the umask


def write(directory, key, prog, info=0):
    """Store an entry; returns True if it was stored."""
    try:
        _makedirs(directory)
        dfd = os.open(directory, _DIR)
    except OSError:
        return False
    tmp = None
    try:
        st = os.fstat(dfd)
        if st.st_uid != os.geteuid():
            return False
        if st.st_mode & 0o777 != 0o700:
            os.chmod(dfd, 0o700)
        data = HEADER.pack(MAGIC, key, info, len(prog),
                           blake2b(prog, digest_size=16).digest()) + prog
        tmp = ".tmp.%d.%s" % (os.getpid(), os.urandom(6).hex())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dfd)
        try:
            if os.write(fd, data) != len(data):
                raise OSError("short write")
        finally:
            os.close(fd)
        os.rename(tmp, key.hex(), src_dir_fd=dfd, dst_dir_fd=dfd)
        tmp = None
        evict(dfd)
        return True
    except OSError:
        return False
    finally:
        if tmp is not None:
            _unlink(tmp, dfd)
        os.close(dfd)


def evict(dfd, max_entries=MAX_ENTRIES, max_bytes=MAX_BYTES):
    """Remove the oldest entries until the store is within its bounds; also
    temporary files a killed writer left behind more than a minute ago."""
    import time
    now = time.time()
    entries = []
    total = 0
    for e in os.scandir(dfd):
        try:
            st = e.stat(follow_symlinks=False)
        except OSError:
            continue
        if e.name.startswith(".tmp."):
            if now - st.st_mtime > 60:
                _unlink(e.name, dfd)
            continue
        entries.append((st.st_mtime, e.name, st.st_size))
        total += st.st_size
    entries.sort()
    i = 0
    while len(entries) - i > max_entries or total > max_bytes:
        _, name, size = entries[i]
        _unlink(name, dfd)
        total -= size
        i += 1
    return i
