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
import posix

from ocirun import fs
from _struct import Struct          # not `struct`: one module fewer on every start

from _blake2 import blake2b

MAGIC = b"OCIBPF\x00\x01"
HEADER = Struct("<8s32sII16s")
MAX_PROG = 4096 * 8
MAX_ENTRIES = 256
MAX_BYTES = 8 << 20

_RD = posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_NONBLOCK | posix.O_CLOEXEC
_DIR = posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW | posix.O_CLOEXEC


def cache_dir(root):
    """The cache directory under a state root."""
    return fs.join(root, ".cache", "seccomp")


def _trusted(st):
    return st.st_uid == posix.geteuid() and not st.st_mode & 0o077


def read(directory, key):
    """-> (program bytes, info) or None."""
    try:
        dfd = posix.open(directory, _DIR)
    except OSError:
        return None
    try:
        if not _trusted(posix.fstat(dfd)):
            return None
        name = key.hex()
        try:
            fd = posix.open(name, _RD, dir_fd=dfd)
        except OSError:
            return None
        try:
            st = posix.fstat(fd)
            if st.st_mode & 0o170000 != 0o100000 or not _trusted(st):
                data = b""
            else:
                data = posix.read(fd, HEADER.size + MAX_PROG + 1)
        finally:
            posix.close(fd)
        entry = _verify(data, key)
        if entry is None:
            _unlink(name, dfd)
        return entry
    finally:
        posix.close(dfd)


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
        posix.unlink(name, dir_fd=dfd)
    except OSError:
        pass


def _makedirs(directory):
    parent = fs.dirname(directory)
    if parent and not fs.isdir(parent):
        _makedirs(parent)
    try:
        posix.mkdir(directory, 0o700)
    except FileExistsError:
        return
    posix.chmod(directory, 0o700)     # whatever the umask


def write(directory, key, prog, info=0):
    """Store an entry; returns True if it was stored."""
    try:
        _makedirs(directory)
        dfd = posix.open(directory, _DIR)
    except OSError:
        return False
    tmp = None
    try:
        st = posix.fstat(dfd)
        if st.st_uid != posix.geteuid():
            return False
        if st.st_mode & 0o777 != 0o700:
            posix.chmod(dfd, 0o700)
        data = HEADER.pack(MAGIC, key, info, len(prog),
                           blake2b(prog, digest_size=16).digest()) + prog
        tmp = ".tmp.%d.%s" % (posix.getpid(), posix.urandom(6).hex())
        fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC,
                     0o600, dir_fd=dfd)
        try:
            if posix.write(fd, data) != len(data):
                raise OSError("short write")
        finally:
            posix.close(fd)
        posix.rename(tmp, key.hex(), src_dir_fd=dfd, dst_dir_fd=dfd)
        tmp = None
        evict(dfd)
        return True
    except OSError:
        return False
    finally:
        if tmp is not None:
            _unlink(tmp, dfd)
        posix.close(dfd)


def evict(dfd, max_entries=MAX_ENTRIES, max_bytes=MAX_BYTES):
    """Remove the oldest entries until the store is within its bounds; also
    temporary files a killed writer left behind more than a minute ago."""
    import time
    now = time.time()
    entries = []
    total = 0
    for e in posix.scandir(dfd):
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
