"""Signal names and numbers without importing `signal` (its enum costs ~5 ms)."""
import _signal

from ocirun.errors import UsageError

SIGNALS = {n[3:]: getattr(_signal, n) for n in dir(_signal)
           if n.startswith("SIG") and not n.startswith("SIG_") and n not in ("SIGRTMIN", "SIGRTMAX")}


def parse_signal(text):
    """`9`, `KILL`, `SIGKILL`, `sigkill`, `RTMIN+2` -> number."""
    t = text.strip()
    if t.isdigit():
        n = int(t)
        if 0 < n <= 64:
            return n
        raise UsageError(f"invalid signal `{text}`")
    name = t.upper()
    if name.startswith("SIG"):
        name = name[3:]
    if name.startswith("RTMIN") or name.startswith("RTMAX"):
        base = _signal.SIGRTMIN if name.startswith("RTMIN") else _signal.SIGRTMAX
        off = name[5:]
        try:
            n = base + int(off) if off else base
        except ValueError:
            raise UsageError(f"invalid signal `{text}`") from None
        if _signal.SIGRTMIN <= n <= _signal.SIGRTMAX:
            return n
        raise UsageError(f"invalid signal `{text}`")
    n = SIGNALS.get(name)
    if n is None:
        raise UsageError(f"invalid signal `{text}`")
    return n
