"""Per-phase timings (`ocirun --timings`, or OCIRUN_TIMINGS=1 or =FILE.json).

Off by default and then nearly free: mark() is one global test. The container init
reports its own marks to the runtime over the sync pipe (`T name ns`), so one table
covers both processes. Library callers record with ocirun.api.record_timings()
(begin/end below)."""
import time

_marks = None
_dest = None
_t0 = 0
_fault = None


def enable(dest=None):
    """Start recording; the first phase is the interpreter's own start (its CPU time
    so far: wall time since exec is not available at this precision)."""
    global _marks, _dest, _t0
    now = time.perf_counter_ns()
    _t0 = now - time.process_time_ns()
    _marks = [("interpreter start (cpu time)", now)]
    _dest = dest


def enable_fault(phase):
    """Test hook (OCIRUN_FAULT=PHASE): SIGKILL this runtime process when it reaches
    the mark PHASE, so tests can check that `delete --force` cleans up after a
    runtime that died at any point of create."""
    global _fault
    if _marks is None:
        enable("/dev/null")
    _fault = phase


def enabled():
    return _marks is not None


def mark(name):
    if _marks is not None:
        _marks.append((name, time.perf_counter_ns()))
        if _fault == name:
            _die()


def add(name, ns):
    """A mark taken in another process (same monotonic clock)."""
    if _marks is not None:
        _marks.append((name, ns))
        if _fault == name:
            _die()


def add_remote(payload):
    """A MARK message of the container init's: `name ns` (linux/sync.py)."""
    name, _, ns = payload.rpartition(" ")
    add("init: " + name, int(ns))


def _die():
    import posix
    import _signal
    posix.kill(posix.getpid(), _signal.SIGKILL)


def begin():
    """Start recording from now (a library call, no interpreter-start row); returns
    the recording it replaces, for end()."""
    global _marks, _dest, _t0
    saved = (_marks, _dest, _t0)
    _marks, _dest, _t0 = [], None, time.perf_counter_ns()
    return saved


def end(saved):
    """Stop the recording begin() started, put `saved` back, and return its rows:
    (phase, ms, ms since begin) in the order the phases ended."""
    global _marks, _dest, _t0
    rows = _rows()
    _marks, _dest, _t0 = saved
    return rows


def _rows():
    marks = sorted(_marks, key=lambda m: m[1])
    rows = []
    prev = _t0
    for name, t in marks:
        rows.append((name, (t - prev) / 1e6, (t - _t0) / 1e6))
        prev = t
    return rows


def report():
    if _marks is None:
        return
    rows = _rows()
    if _dest == "/dev/null":
        return
    if _dest:
        from ocirun.fs import dumps, write_atomic
        try:
            write_atomic(_dest, dumps([{"phase": n, "ms": round(d, 3), "total_ms": round(c, 3)}
                                       for n, d, c in rows]).encode(), 0o644)
        except OSError as e:  # the timings must never change the command's outcome
            from ocirun import log
            log.warning(f"OCIRUN_TIMINGS: cannot write `{_dest}`: {e.strerror}")
        return
    import sys
    w = max(len(r[0]) for r in rows)
    out = [f"{'phase'.ljust(w)}  {'ms':>8}  {'total':>8}"]
    out += [f"{n.ljust(w)}  {d:8.3f}  {c:8.3f}" for n, d, c in rows]
    sys.stderr.write("\n".join(out) + "\n")
