"""Namespace costs: create + destroy of the network and ipc namespaces, an mqueue
mount, and every namespace the bench bundle asks for at once.

Each iteration forks a child that makes the call and exits; the parent times fork to
waitpid (so namespace teardown, which happens when the last process leaves, is in the
figure) and the child reports how long the syscall itself took over a pipe."""
import os
import struct
import time

from ocirun import kernel
from ocirun.bench.report import median, summarize

DEFAULT_ITERATIONS = 200
WARMUP = 5


def _child_fork_exit():
    return 0


def _child_unshare(flags):
    def fn():
        t0 = time.perf_counter_ns()
        kernel.unshare(flags)
        return time.perf_counter_ns() - t0
    return fn


def _child_mqueue(target):
    def fn():
        kernel.unshare(kernel.CLONE_NEWNS)
        # Private first: the mount must not propagate back to the host.
        kernel.mount(None, "/", None, kernel.MS_REC | kernel.MS_PRIVATE)
        t0 = time.perf_counter_ns()
        kernel.mount("mqueue", target, "mqueue",
                     kernel.MS_NOSUID | kernel.MS_NODEV | kernel.MS_NOEXEC)
        return time.perf_counter_ns() - t0
    return fn


def _child_all(flags):
    """What create does: unshare every namespace, then fork so that the child is pid 1
    of the new pid namespace; the pid namespace ends when that child exits."""
    def fn():
        t0 = time.perf_counter_ns()
        kernel.unshare(flags)
        dt = time.perf_counter_ns() - t0
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        return dt
    return fn


def one(fn):
    """Fork, run fn in the child, wait. Returns (wall ns, child's syscall ns)."""
    r, w = os.pipe()
    t0 = time.perf_counter_ns()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            value = fn()
        except OSError as e:
            value, code = -(e.errno or 1), 1
        except BaseException:
            value, code = -1, 1
        try:
            os.write(w, struct.pack("q", value))
        finally:
            os._exit(code)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    wall = time.perf_counter_ns() - t0
    data = os.read(r, 8)
    os.close(r)
    value = struct.unpack("q", data)[0] if len(data) == 8 else -1
    if status != 0 or value < 0:
        err = -value if value < -1 else 0
        raise OSError(err, os.strerror(err) if err else "child failed")
    return wall, value


def all_namespace_flags():
    """The flags create uses for the bench bundle's namespaces (pid, network, ipc, uts,
    mount) plus cgroup, through ocirun's own table."""
    from ocirun.bench.bundle import NAMESPACES as bundle_ns
    from ocirun.tables import NAMESPACES
    flags = 0
    for typ in list(bundle_ns) + ["cgroup"]:
        flags |= NAMESPACES[typ][0]
    return flags


def measure(iterations=DEFAULT_ITERATIONS, progress=None):
    import tempfile
    target = tempfile.mkdtemp(prefix="ocirun-bench-mq-")
    cases = [
        ("fork + exit (baseline)", _child_fork_exit),
        ("network namespace create+destroy", _child_unshare(kernel.CLONE_NEWNET)),
        ("ipc namespace create+destroy", _child_unshare(kernel.CLONE_NEWIPC)),
        ("mqueue mount (private mount ns)", _child_mqueue(target)),
        ("all namespaces (mnt uts ipc net pid+fork cgroup)", _child_all(all_namespace_flags())),
    ]
    # Interleaved (one iteration of each case per round) so that the machine's noise
    # falls on every case alike.
    walls = {name: [] for name, _ in cases}
    inner = {name: [] for name, _ in cases}
    failed = {}
    if progress:
        progress.phase(f"ns: {len(cases)} cases x{iterations}, interleaved")
    try:
        for i in range(WARMUP + iterations):
            for name, fn in cases:
                if name in failed:
                    continue
                try:
                    wall, dt = one(fn)
                except OSError as e:
                    failed[name] = e.strerror or str(e)
                    continue
                if i >= WARMUP:
                    walls[name].append(wall / 1e6)
                    inner[name].append(dt / 1e6)
            if progress and i >= WARMUP:
                progress.count("ns: round", i + 1 - WARMUP, iterations)
    finally:
        try:
            os.rmdir(target)
        except OSError:
            pass
    rows = []
    base = median(walls[cases[0][0]])
    for k, (name, fn) in enumerate(cases):
        if name in failed:
            rows.append({"name": name, "na": f"failed: {failed[name]}"})
            continue
        extra = {}
        if k:
            extra["child_ms"] = median(inner[name])
            if base is not None:
                extra["note"] = f"{median(walls[name]) - base:+.3f} ms over baseline"
        rows.append(summarize(name, walls[name], **extra))
    return {
        "title": "namespaces (fork a child that creates them and exits; wall time per iteration)",
        "iterations": iterations,
        "rows": rows,
        "notes": ["syscall ms: the unshare(2) or mount(2) call alone, timed in the child; "
                  "the rest of the wall time is fork, exit and namespace teardown"],
    }
