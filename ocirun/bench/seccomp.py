"""Seccomp: compiling the profile with nothing cached (cold) against a cache hit, with
ocirun's compiler (when the ocirun.seccomp package is installed), and libseccomp's
build + export of the same profile through its Python binding (python3-seccomp).

The profile is read from a file (--profile, a seccomp profile or a config.json with
linux.seccomp); without one, from the --bundle config, then from a default the
seccomp package may offer, then from a source checkout's shared fixtures."""
import os
import time

from ocirun.bench import import_optional
from ocirun.bench.report import summarize

COLD_RUNS = 20
HIT_RUNS = 200
LIB_RUNS = 20


def load_profile(path):
    """A seccomp section from a file holding either the section or a whole config,
    validated as create would (a bad file is a one-line error, not a benchmark)."""
    from ocirun.config.load import load_config
    from ocirun.config.nulls import CONFIG, SECCOMP, drop_nulls
    from ocirun.errors import UsageError
    doc = load_config(path, f"--profile {path}")
    if "linux" in doc:
        doc = drop_nulls(doc, CONFIG).get("linux") or {}
        doc = doc.get("seccomp") if isinstance(doc, dict) else None
    else:
        drop_nulls(doc, SECCOMP, "linux.seccomp")
    if not isinstance(doc, dict) or "defaultAction" not in doc:
        raise UsageError(f"--profile {path}: no seccomp profile (neither a profile nor a "
                         "config with linux.seccomp)")
    from ocirun.seccomp import normalize
    normalize.validate(doc)
    return doc


def find_profile(path=None, bundle=None):
    """(profile, where it came from) or (None, why there is none)."""
    if path:
        return load_profile(path), path
    if bundle and os.path.exists(f"{bundle}/config.json"):
        try:
            return load_profile(f"{bundle}/config.json"), f"{bundle}/config.json"
        except ValueError:
            pass
    try:
        from ocirun import seccomp as oseccomp
    except ImportError:
        oseccomp = None
    for attr in ("default_profile", "DEFAULT_PROFILE"):
        value = getattr(oseccomp, attr, None) if oseccomp else None
        if callable(value):
            value = value()
        if isinstance(value, dict):
            return value, f"ocirun.seccomp.{attr}"
    import ocirun
    repo = os.path.dirname(os.path.dirname(os.path.abspath(ocirun.__file__)))
    shared = os.environ.get("OCIRUN_SHARED") or os.path.join(os.path.dirname(repo), "shared")
    fixture = os.path.join(shared, "fixtures", "seccomp-podman-default.json")
    if os.path.exists(fixture):
        return load_profile(fixture), fixture
    return None, "no profile: pass --profile FILE"


def measure(profile, source, progress=None):
    rows, notes, extra = [], [f"profile: {source}"], {}
    names = sum(len(s.get("names") or ()) for s in profile.get("syscalls") or ())
    notes.append(f"{names} syscall names, arches: "
                 + " ".join(a.replace("SCMP_ARCH_", "").lower()
                            for a in profile.get("architectures") or ()))
    try:
        from ocirun import seccomp as oseccomp
    except ImportError:
        oseccomp = None
        rows.append({"name": "ocirun compile, cold", "na": "seccomp package not installed"})
        rows.append({"name": "ocirun cache hit", "na": "seccomp package not installed"})
    if oseccomp is not None:
        rows += _ocirun_rows(oseccomp, profile, progress)
        figures = _ocirun_figures(oseccomp, profile, progress)
        if figures is not None:
            extra["ocirun seccomp_figures"] = figures  # all of it, for --json
            notes.extend(_figure_notes(figures))
    try:
        libseccomp = import_optional("seccomp")
    except ImportError:
        rows.append({"name": "libseccomp build + export", "na": "python3-seccomp not installed"})
    else:
        if progress:
            progress.phase(f"seccomp: libseccomp build + export x{LIB_RUNS}")
        try:
            samples, insns, skipped = _libseccomp_compile(libseccomp, profile, LIB_RUNS)
        except (OSError, ValueError, RuntimeError) as e:
            rows.append({"name": "libseccomp build + export", "na": f"failed: {e}"})
        else:
            rows.append(summarize("libseccomp build + export", samples,
                                  note=f"{insns} BPF instructions"))
            if skipped:
                notes.append(f"libseccomp: {skipped} rules skipped (unknown names or "
                             "rules equal to the default action)")
    sec = {"title": "seccomp profile compilation", "rows": rows, "notes": notes}
    if extra:
        sec["extra"] = extra
    return sec


def _ocirun_rows(oseccomp, profile, progress):
    import shutil
    import tempfile
    from ocirun import log
    work = tempfile.mkdtemp(prefix="ocirun-bench-seccomp-")
    rows = []
    # The profile's warnings (unknown names) once, not once per compile.
    saved_level, log._level = log._level, 3
    try:
        if progress:
            progress.phase(f"seccomp: ocirun compile, cold x{COLD_RUNS}")
        cold = []
        result = None
        for i in range(COLD_RUNS):
            cache = f"{work}/cold{i}"
            t0 = time.perf_counter_ns()
            result = oseccomp.prepare(profile, cache)
            cold.append((time.perf_counter_ns() - t0) / 1e6)
            shutil.rmtree(cache, ignore_errors=True)
        note = "empty cache (modules already imported)"
        prog = getattr(result, "prog", None) or getattr(result, "program", result)
        if isinstance(prog, (bytes, bytearray)) and len(prog) % 8 == 0:
            note += f"; {len(prog) // 8} BPF instructions"
        warnings = getattr(result, "warnings", ())
        if warnings:
            note += f"; {len(warnings)} warnings"
        rows.append(summarize("ocirun compile, cold", cold, note=note))
        if progress:
            progress.phase(f"seccomp: ocirun cache hit x{HIT_RUNS}")
        cache = f"{work}/hit"
        oseccomp.prepare(profile, cache)
        hit = []
        for _ in range(HIT_RUNS):
            t0 = time.perf_counter_ns()
            oseccomp.prepare(profile, cache)
            hit.append((time.perf_counter_ns() - t0) / 1e6)
        rows.append(summarize("ocirun cache hit", hit, note="hash of the profile + read"))
    except Exception as e:  # a package under development: report, do not crash the bench
        rows.append({"name": "ocirun compile", "na": f"failed: {type(e).__name__}: {e}"})
    finally:
        log._level = saved_level
        shutil.rmtree(work, ignore_errors=True)
    return rows


def _figure_notes(f):
    """The seccomp_figures that the table has no row for, as readable notes."""
    def pair(key, fmt):
        ours, lib = f.get("ours_" + key), f.get("lib_" + key)
        text = "ocirun " + (fmt.format(ours) if ours is not None else "n/a")
        return text + (", libseccomp " + fmt.format(lib) if lib is not None else "")
    out = []
    runs = [f"{who} {f[p + '_exec_avg']:.1f} average, {f[p + '_exec_max']} max"
            for who, p in (("ocirun", "ours"), ("libseccomp", "lib"))
            if f.get(p + "_exec_avg") is not None and f.get(p + "_exec_max") is not None]
    if runs:
        out.append("the filter's own run time, instructions executed per x86_64 syscall: "
                   + "; ".join(runs))
    if f.get("ours_attach_ms") is not None:
        out.append(f"loading the filter, seccomp(2): {pair('attach_ms', '{:.3f} ms')}")
    if f.get("ours_cold_compile_ms") is not None:
        out.append("cold compile in a fresh interpreter (its start not counted): "
                   + pair("cold_compile_ms", "{:.2f} ms"))
    return out


def _ocirun_figures(oseccomp, profile, progress):
    try:
        from ocirun.seccomp import benchmark
    except ImportError:
        return None
    fn = getattr(benchmark, "seccomp_figures", None)
    if fn is None:
        return None
    if progress:
        progress.phase("seccomp: ocirun.seccomp.benchmark.seccomp_figures()")
    # It compiles in fresh processes, which read the profile from a file.
    import json
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(profile, f)
    try:
        return fn(profile_path=f.name)
    except Exception as e:
        return f"failed: {type(e).__name__}: {e}"
    finally:
        os.unlink(f.name)


# OCI action names -> libseccomp binding constructors
def _lib_action(lib, name, errno_ret, default_errno):
    import errno as _errno
    name = name.replace("SCMP_ACT_", "")
    if name == "ERRNO":
        return lib.ERRNO(errno_ret if errno_ret is not None else
                         default_errno if default_errno is not None else _errno.EPERM)
    if name == "TRACE":
        return lib.TRACE(errno_ret if errno_ret is not None else
                         default_errno if default_errno is not None else _errno.EPERM)
    if name in ("KILL", "KILL_THREAD"):
        return lib.KILL
    return getattr(lib, name)


def _lib_filter(lib, profile, out):
    """Build the filter the way runc and crun do and export its BPF to `out`;
    returns the number of rules skipped."""
    default_errno = profile.get("defaultErrnoRet")
    default = _lib_action(lib, profile["defaultAction"], None, default_errno)
    f = lib.SyscallFilter(default)
    for a in profile.get("architectures") or ():
        arch = getattr(lib.Arch, a.replace("SCMP_ARCH_", ""))
        if not f.exist_arch(arch):
            f.add_arch(arch)
    ops = {"SCMP_CMP_" + n: getattr(lib, n) for n in ("EQ", "NE", "LT", "LE", "GT", "GE",
                                                       "MASKED_EQ")}
    skipped = 0
    for rule in profile.get("syscalls") or ():
        if rule["action"] == profile["defaultAction"] and \
                rule.get("errnoRet") == default_errno:
            skipped += len(rule.get("names") or ())
            continue
        action = _lib_action(lib, rule["action"], rule.get("errnoRet"), default_errno)
        args = [lib.Arg(a["index"], ops[a["op"]], a.get("value", 0), a.get("valueTwo", 0))
                for a in rule.get("args") or ()]
        # An argument index used twice means OR: one rule per condition (runc, crun).
        sets = [args] if len({a["index"] for a in rule.get("args") or ()}) == len(args) \
            else [[a] for a in args]
        for name in rule.get("names") or ():
            for conds in sets:
                try:
                    f.add_rule(action, name, *conds)
                except (ValueError, RuntimeError, OSError):
                    skipped += 1
    f.export_bpf(out)
    return skipped


def _libseccomp_compile(lib, profile, runs):
    import tempfile
    samples = []
    insns = skipped = 0
    with tempfile.TemporaryFile() as out:
        for _ in range(runs):
            out.seek(0)
            out.truncate()
            t0 = time.perf_counter_ns()
            skipped = _lib_filter(lib, profile, out)
            samples.append((time.perf_counter_ns() - t0) / 1e6)
        insns = os.fstat(out.fileno()).st_size // 8
    return samples, insns, skipped
