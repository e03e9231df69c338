"""Reading config.json (or an `exec --process` file) into a dict.

The fast path never imports `json`: `import json` pulls in `re` and costs ~8 ms, most of a
container start. CPython's C scanner (`_json.make_scanner`) needs only an object carrying
the decoder settings (strict, object_hook, object_pairs_hook, parse_float, parse_int,
parse_constant); with plain `int`/`float` and no hooks it never calls back into Python.
What it cannot do alone is report a syntax error: it builds json.decoder.JSONDecodeError,
looking the class up in sys.modules, and fails with SystemError when json is not loaded.
So a document that does not parse is decoded a second time by `json.loads`, which may be
slow because it only runs on the way to an error message.

The file is opened O_NONBLOCK and must be a regular file, so a FIFO planted as config.json
cannot hang the runtime; it may be a symlink (runc and crun follow one too).
"""
import posix

import _json

from ocirun import fs
from ocirun.errors import ConfigError

MAX_SIZE = 16 << 20
_WS = " \t\n\r"


class _Constant(ValueError):
    """NaN/Infinity: Python's decoder accepts them, JSON (and Go's decoder) does not."""


def _refuse_constant(name):
    raise _Constant(name)


class _Settings:
    """The JSONDecoder attributes the C scanner reads (Modules/_json.c, scanner_new)."""

    __slots__ = ("strict", "object_hook", "object_pairs_hook", "parse_float", "parse_int",
                 "parse_constant")

    def __init__(self):
        self.strict = True          # control characters inside strings are errors
        self.object_hook = None
        self.object_pairs_hook = None
        self.parse_float = float    # the C fast paths are taken for exactly float and int
        self.parse_int = int
        self.parse_constant = _refuse_constant


_scan = _json.make_scanner(_Settings())


def _error(msg):
    return ConfigError("", msg)


def read_file(path, label):
    """The bytes of a regular file of at most MAX_SIZE bytes."""
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC | posix.O_NONBLOCK | posix.O_NOCTTY)
    except FileNotFoundError:
        raise _error(f"{label}: not found") from None
    except OSError as e:
        from ocirun.errors import os_error

        raise _error(str(os_error(label, e))) from None
    try:
        st = posix.fstat(fd)
        if st.st_mode & 0o170000 != 0o100000:
            raise _error(f"{label}: not a regular file")
        if st.st_size > MAX_SIZE:
            raise _error(f"{label}: too large ({st.st_size} bytes, limit {MAX_SIZE})")
        chunks = []
        total = 0
        want = st.st_size + 1  # one read for the whole file, one more to see EOF
        while True:
            chunk = posix.read(fd, want)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > MAX_SIZE:  # the file grew after fstat
                raise _error(f"{label}: too large (more than {MAX_SIZE} bytes)")
            want = 65536
    except OSError as e:
        from ocirun.errors import os_error

        raise _error(str(os_error(label, e))) from None
    finally:
        posix.close(fd)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def parse_config(text, label="config.json"):
    """Decode a JSON document that must hold an object."""
    start = len(text) - len(text.lstrip(_WS))
    if start == len(text):
        raise _error(f"{label}: empty")
    try:
        value, end = _scan(text, start)
    except RecursionError:
        raise _error(f"{label}: nesting too deep") from None
    except _Constant as e:
        raise _error(f"{label}: invalid JSON: {e} is not allowed") from None
    except (StopIteration, ValueError, SystemError):
        _diagnose(text, label)
    if end != len(text) and text[end:].strip(_WS):
        _diagnose(text, label)
    if type(value) is not dict:
        raise _error(f"{label}: must hold a JSON object")
    return value


def _diagnose(text, label):
    """Raise the error for a document the fast path refused (slow: imports json)."""
    import json

    try:
        json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as e:
        # "Unterminated string starting at" reads as a sentence once the position moves forward.
        msg = e.msg[:-3] if e.msg.endswith(" at") else e.msg
        raise _error(f"{label}: invalid JSON at line {e.lineno} column {e.colno}: {msg}") \
            from None
    except RecursionError:
        raise _error(f"{label}: nesting too deep") from None
    except _Constant as e:
        raise _error(f"{label}: invalid JSON: {e} is not allowed") from None
    except ValueError:  # e.g. an integer beyond sys.get_int_max_str_digits()
        raise _error(f"{label}: invalid JSON: a number is too long") from None
    raise _error(f"{label}: invalid JSON")


def load_config(path, label=None):
    """Read and decode config.json (or a process.json); errors are ConfigError with messages
    such as "config.json: not found" or "config.json: invalid JSON at line 3 column 7: ..."."""
    return load_config_bytes(path, label)[0]


def load_config_bytes(path, label=None):
    """load_config, and the bytes it was decoded from (create keeps a copy)."""
    if label is None:
        label = fs.basename(path) or path
    data = read_file(path, label)
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise _error(f"{label}: not valid UTF-8") from None
    return parse_config(text, label), data
