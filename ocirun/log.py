"""Runtime log: text or JSON lines to --log (containerd reads the last
{"level":"error","msg":...} line), errors and warnings also to stderr."""
import posix
import sys
import time

_LEVELS = {"debug": 0, "info": 1, "warning": 2, "warn": 2, "error": 3}
_path = None
_json = False
_level = 2


def configure(path=None, fmt="text", level="warning", debug=False):
    global _path, _json, _level
    _path = path
    _json = fmt == "json"
    _level = 0 if debug else _LEVELS.get(level or "warning", 2)


def _now():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % (int(t * 1e6) % 1000000)


def _write(level, msg):
    if _LEVELS[level] < _level:
        return
    if not msg.isprintable():
        # One line, whatever a config put in a name or path: control characters
        # (newlines, and the separators str.splitlines() breaks at) are escaped.
        msg = "".join(c if c.isprintable() else repr(c)[1:-1] for c in msg)
    if _path:
        if _json:
            import _json as cjson  # C encoder: no `json`/`re` import on the hot path
            enc = cjson.encode_basestring_ascii
            line = '{"level":%s,"msg":%s,"time":"%s"}\n' % (enc(level), enc(msg), _now())
        else:
            line = f"{_now()} {level}: {msg}\n"
        try:
            fd = posix.open(_path, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC, 0o600)
            try:
                posix.write(fd, line.encode("utf-8", "replace"))
            finally:
                posix.close(fd)
        except OSError:
            pass
    # Errors always reach stderr; warnings only when there is no log file (engines
    # that pass --log read it, and keep stderr for the container's own output).
    if level == "error" or not _path:
        try:
            sys.stderr.write(f"ocirun: {msg}\n" if level == "error" else f"ocirun: {level}: {msg}\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def error(msg):
    _write("error", msg)


def warning(msg):
    _write("warning", msg)


def info(msg):
    _write("info", msg)


def debug(msg):
    if _level == 0:
        _write("debug", msg)
