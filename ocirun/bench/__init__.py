"""`ocirun bench`: the start-up measurements, reproduced on the user's machine.

One module per section (ns, names, seccomp, run), report.py for the table and JSON,
plot.py for the SVG chart. Nothing here is imported on the create/run path."""
import sys

SECTIONS = ("ns", "names", "seccomp", "run")


class Progress:
    """One line per phase on stderr; a counter that rewrites its line on a terminal."""

    __slots__ = ("tty", "quiet", "_open")

    def __init__(self, quiet=False, stream=None):
        stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = not quiet and stream.isatty()
        self._open = False

    def phase(self, text):
        if self.quiet:
            return
        self._end()
        sys.stderr.write(f"bench: {text}\n")
        sys.stderr.flush()

    def count(self, text, i, n):
        """`text i/n`: rewritten in place on a terminal, else one line per quarter."""
        if self.quiet:
            return
        if self.tty:
            sys.stderr.write(f"\rbench: {text} {i}/{n}\x1b[K")
            self._open = True
            if i == n:
                self._end()
        elif i == n or i == 1 or (n >= 4 and i % max(1, n // 4) == 0):
            sys.stderr.write(f"bench: {text} {i}/{n}\n")
        sys.stderr.flush()

    def _end(self):
        if self._open:
            sys.stderr.write("\n")
            self._open = False


def host_info():
    import os
    import time
    info = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "cpus": os.cpu_count(),
            "kernel": os.uname().release, "python": sys.version.split()[0]}
    try:
        from ocirun.cgroups import detect
        info["cgroups"] = detect()
    except (ImportError, OSError):
        pass
    return info


def collect(only, progress, runs=None, iterations=None, passes=None, bundle=None,
            profile=None, extra=(), ocirun=None, argv0=None, plot=False):
    """Run the sections named in `only` (in SECTIONS order); returns the result document
    (see report.py)."""
    from ocirun.bench import report
    result = {"version": report.VERSION, "host": host_info(), "sections": {}}
    sections = result["sections"]
    need_profile = "seccomp" in only or ("run" in only and not bundle)
    prof = prof_src = None
    if need_profile:
        from ocirun.bench.seccomp import find_profile
        prof, prof_src = find_profile(profile, bundle)
    for name in SECTIONS:
        if name not in only:
            continue
        if name == "ns":
            from ocirun.bench import ns
            sections[name] = ns.measure(iterations or ns.DEFAULT_ITERATIONS, progress)
        elif name == "names":
            from ocirun.bench import names
            sections[name] = names.measure(passes or names.DEFAULT_PASSES, progress)
        elif name == "seccomp":
            from ocirun.bench import seccomp
            if prof is None:
                sections[name] = {"title": "seccomp profile compilation", "rows": [],
                                  "skipped": prof_src}
            else:
                sections[name] = seccomp.measure(prof, prof_src, progress)
        elif name == "run":
            from ocirun.bench import run
            path = ocirun or run.default_ocirun(argv0)
            sections[name] = run.measure(runs or run.DEFAULT_RUNS, path, extra, bundle, prof,
                                         progress, waterfall=plot)
    return result


def import_optional(name):
    """Import an optional third-party module (libseccomp's binding). The command runs
    without site processing, so the system's dist-packages are not on sys.path: add
    them, after our own paths, for the benchmark only."""
    import importlib
    try:
        return importlib.import_module(name)
    except ImportError:
        pass
    import os
    import site
    added = False
    for d in site.getsitepackages():
        if d not in sys.path and os.path.isdir(d):
            sys.path.append(d)
            added = True
    if not added:
        raise ImportError(f"No module named {name!r}")
    return importlib.import_module(name)
