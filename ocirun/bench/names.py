"""Syscall-name resolution: every name of the x86_64 table to its number, then every
number back to its name, PASSES times; ocirun's generated tables against libseccomp's
resolver through its Python binding (python3-seccomp), when each is installed.

libseccomp looked names up by a linear scan of its table at the time of the start-up
story; ocirun's tables are dicts, so a lookup is one hash."""
import time

from ocirun.bench import import_optional
from ocirun.bench.report import summarize

DEFAULT_PASSES = 1000
ARCH = "x86_64"


def ocirun_table(arch=ARCH):
    """(name -> number, number -> name) from ocirun.seccomp's generated table, or raise
    ImportError when the seccomp package is not installed."""
    import ocirun.seccomp  # noqa: F401  (the ImportError the caller reports)
    from ocirun.seccomp import arches
    tab = arches.load_table(arches.ARCHES[arch])
    names = tab.NAMES
    numbers = getattr(tab, "NUMBERS", None) or {nr: n for n, nr in names.items()}
    return names, numbers


def _time_passes(passes, names, numbers, by_name, by_number, progress, label):
    samples = []
    if progress:
        progress.phase(f"names: {label} x{passes}")
    for _ in range(passes):
        t0 = time.perf_counter_ns()
        for n in names:
            by_name(n)
        for nr in numbers:
            by_number(nr)
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return samples


def measure(passes=DEFAULT_PASSES, progress=None):
    rows, notes = [], []
    names = numbers = None
    try:
        table, back = ocirun_table()
    except ImportError:
        rows.append({"name": "ocirun tables (dict)", "na": "seccomp package not installed"})
    else:
        names, numbers = sorted(table), sorted(back)
        samples = _time_passes(passes, names, numbers, table.__getitem__, back.__getitem__,
                               progress, "ocirun")
        rows.append(_row("ocirun tables (dict)", samples, len(names) + len(numbers)))
    try:
        libseccomp = import_optional("seccomp")
    except ImportError:
        rows.append({"name": "libseccomp resolve_syscall", "na": "python3-seccomp not installed"})
    else:
        arch = getattr(libseccomp.Arch, ARCH.upper())
        resolve = libseccomp.resolve_syscall
        known = []
        if names is None:  # no ocirun table: the names libseccomp itself knows
            for nr in range(0, 1024):
                try:
                    known.append(resolve(arch, nr).decode())
                except (ValueError, UnicodeDecodeError):
                    pass
            notes.append(f"without ocirun's table the names are libseccomp's own ({len(known)})")
        else:
            for n in names:
                try:
                    if resolve(arch, n) >= 0:  # negative: a pseudo-number, not on this arch
                        known.append(n)
                except ValueError:
                    pass
            if len(known) < len(names):
                notes.append(f"libseccomp does not know {len(names) - len(known)} of the "
                             f"{len(names)} names; they are left out of its row")
        nrs = [resolve(arch, n) for n in known]
        samples = _time_passes(passes, known, nrs, lambda n: resolve(arch, n),
                               lambda nr: resolve(arch, nr), progress, "libseccomp")
        rows.append(_row("libseccomp resolve_syscall", samples, 2 * len(known)))
    return {
        "title": f"syscall-name resolution ({ARCH}: every name, then every number back; "
                 f"time per pass, {passes} passes)",
        "passes": passes,
        "rows": rows,
        "notes": notes,
    }


def _row(name, samples, lookups):
    from ocirun.bench.report import median
    m = median(samples)
    return summarize(name, samples, per_op_ns=m * 1e6 / lookups if lookups else None,
                     note=f"{lookups} lookups per pass")
