"""Seccomp for ocirun: linux.seccomp -> classic BPF, cached, then loaded.

    p = prepare(spec["linux"]["seccomp"], cache_dir(root))   # parent, before fork
    connect_listener(p)                                       # only if p.notify, before pivot_root
    load(p, state_json)                                       # container init, right before execve

prepare() computes a key over everything that determines the program (a canonical
encoding of defaultAction, defaultErrnoRet, architectures and syscalls, plus the
compiler version, the syscall-table version and the native ABI) and reads the
compiled program from the cache; on a miss it validates, compiles and stores it.
A hit neither parses the rules nor imports a syscall table. Modules: tables/ (gen.py
and one generated module per ABI), arches, consts, builder (a cache miss), normalize
(semantics and validation), compile, asm, emulator, disasm, explain, cache, notify, benchmark.

This module is imported on every container start: it imports only posix, sys and C
modules, and load() imports nothing (it runs after pivot_root, where an import could
execute the container's files).
"""
import errno
import posix
import sys

import _json
from _blake2 import blake2b

from ocirun.errors import ConfigError
from ocirun.seccomp import cache as _cache
from ocirun.seccomp.consts import COMPILER_VERSION as compiler_version
from ocirun.seccomp.consts import (
    FLAGS, SECCOMP_FILTER_FLAG_NEW_LISTENER, SECCOMP_FILTER_FLAG_TSYNC,
    SECCOMP_FILTER_FLAG_TSYNC_ESRCH, SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
    SECCOMP_SET_MODE_FILTER,
)

cache_dir = _cache.cache_dir

INFO_NOTIFY = 1         # cache entry info bit: the program returns SECCOMP_RET_USER_NOTIF
INFO_NO_EXECVEAT = 2    # ... the program refuses execveat(2) on the native architecture
_KEY_FIELDS = ("defaultAction", "defaultErrnoRet", "architectures", "syscalls")
_kernel = None          # ocirun.kernel, imported by prepare(): load() may not import
_notify = None


def _no_default(o):
    raise TypeError(f"not JSON: {type(o).__name__}")


# the C encoder json.dumps(sort_keys=True) uses, without importing json (and re)
_encode = _json.make_encoder({}, _no_default, _json.encode_basestring_ascii, None,
                             ":", ",", True, False, False)


class Prepared:
    """A program ready to load, and how to load it."""
    # notify: a listener fd goes to listenerPath (the profile has SCMP_ACT_NOTIFY
    # rules, or names a listenerPath without them)
    __slots__ = ("prog", "flags", "notify", "listener_path", "listener_metadata", "key",
                 "cached", "listener", "warnings", "refuses_execveat")

    def __repr__(self):
        return (f"<Prepared {len(self.prog) // 8} insns flags=0x{self.flags:x} "
                f"notify={self.notify} cached={self.cached}>")


def native_arch():
    from ocirun.seccomp.arches import native_name
    return native_name()


_NATIVE = None


def profile_key(seccomp, native=None):
    """blake2b-256 of the canonical encoding of what determines the program."""
    global _NATIVE
    if native is None:
        native = _NATIVE or posix.uname().machine + ":" + sys.byteorder
        _NATIVE = native
    from ocirun.seccomp.tables import VERSION as table_version
    try:
        body = "".join(_encode([seccomp.get(f) for f in _KEY_FIELDS], 0))
    except (TypeError, ValueError, RecursionError, AttributeError):
        return None
    h = blake2b(digest_size=32)
    h.update(b"ocirun-seccomp\0%s\0%s\0%s\0" % (compiler_version.encode(),
                                               table_version.encode(), native.encode()))
    h.update(body.encode())
    return h.digest()


def _load_fields(seccomp):
    """flags, listenerPath, listenerMetadata: they change how the program is loaded,
    not the program, so they stay out of the key and are checked on every call."""
    flags = 0
    fl = seccomp.get("flags") or []
    if not isinstance(fl, list):
        raise ConfigError("linux.seccomp.flags", "must be an array")
    for i, name in enumerate(fl):
        bit = FLAGS.get(name) if type(name) is str else None
        if bit is None:
            raise ConfigError(f"linux.seccomp.flags[{i}]", f"unknown flag `{name}`")
        flags |= bit
    path = seccomp.get("listenerPath")
    if path is not None and (type(path) is not str or not path or "\0" in path):
        raise ConfigError("linux.seccomp.listenerPath", "must be a non-empty path")
    meta = seccomp.get("listenerMetadata")
    if meta is not None and type(meta) is not str:
        raise ConfigError("linux.seccomp.listenerMetadata", "must be a string")
    return flags, path, meta


def prepare(seccomp, cache_dir=None):
    """Validate, then read the compiled program from the cache or compile and store
    it. Raises ConfigError (one line naming the rule) for a bad profile."""
    global _kernel
    if not isinstance(seccomp, dict):
        raise ConfigError("linux.seccomp", "must be an object")
    flags, path, meta = _load_fields(seccomp)
    key = profile_key(seccomp)
    entry = _cache.read(cache_dir, key) if cache_dir and key else None
    p = Prepared()
    p.warnings = ()
    if entry is not None:
        p.prog, info = entry
        p.cached = True
    else:
        from ocirun.seccomp import build
        prog, info, p.warnings = build(seccomp)
        p.prog = prog
        p.cached = False
        if cache_dir and key:
            _cache.write(cache_dir, key, prog, info)
    # A listenerPath is always served, NOTIFY rule or not: the agent waits for the
    # fd and the state, and gets a listener that never fires rather than nothing
    # (crun 1.8 does the same; runc 1.1 runs the container and never connects).
    p.notify = bool(info & INFO_NOTIFY) or path is not None
    p.refuses_execveat = bool(info & INFO_NO_EXECVEAT)
    if p.notify:
        if path is None:
            raise ConfigError("linux.seccomp.listenerPath", "is required with SCMP_ACT_NOTIFY")
        flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER
        if flags & SECCOMP_FILTER_FLAG_TSYNC:
            # TSYNC and NEW_LISTENER are exclusive unless a TSYNC failure is ESRCH
            flags |= SECCOMP_FILTER_FLAG_TSYNC_ESRCH
    else:
        # only meaningful for a listener; the kernel rejects it without one
        flags &= ~SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
    p.flags = flags
    p.listener_path = path
    p.listener_metadata = meta
    p.key = key
    p.listener = None
    if _kernel is None:
        from ocirun import kernel
        _kernel = kernel
    return p


def build(seccomp, native=None):
    """Compile without the cache: -> (program, info, warnings). Logs the warnings.
    (builder.py: only a cache miss needs its code, kept out of every `run`.)"""
    from ocirun.seccomp import builder
    return builder.build(seccomp, native)


def connect_listener(prepared):
    """Connect to listenerPath (before pivot_root); returns the socket's fd, or None
    when the profile names no listenerPath."""
    global _notify
    if not prepared.notify:
        return None
    from ocirun.seccomp import notify
    _notify = notify
    from ocirun import SPEC_VERSION
    prepared.listener = (notify.connect(prepared.listener_path), SPEC_VERSION,
                         _json.encode_basestring_ascii(prepared.listener_metadata or ""))
    return prepared.listener[0].fileno()


def load(prepared, state_json=None, pid=None, k=None):
    """Attach the filter to this process (right before execve; imports nothing).
    With NOTIFY, send the listener fd and the containerProcessState document
    (`state_json`: the container's state, bytes) over the connected socket. `k`: the
    kernel object the caller works through (kernel.Kernel, or a test's double)."""
    fd = (k or _kernel).seccomp(SECCOMP_SET_MODE_FILTER, prepared.flags, prepared.prog)
    if not prepared.notify:
        return
    try:
        if prepared.listener is None:
            raise OSError(errno.ENOTCONN, "seccomp listener: connect_listener() was not called")
        sock, version, meta = prepared.listener
        msg = _notify.message(version, posix.getpid() if pid is None else pid, meta, state_json)
        _notify.send(sock, fd, msg)
    finally:
        posix.close(fd)
        if prepared.listener is not None:
            prepared.listener[0].close()
