"""Seccomp figures, ours and libseccomp's side by side (python3-seccomp, if installed).

    /usr/bin/python3 -m ocirun.seccomp.benchmark [PROFILE]

Without PROFILE: podman's default profile from the shared data directory,
$OCIRUN_SHARED/fixtures/seccomp-podman-default.json (in a source checkout OCIRUN_SHARED
defaults to ../shared beside it; an installed package has no such directory).

seccomp_figures(profile_path=None) returns a dict; `ocirun bench` calls it. Timings are
medians. "cold compile" runs in a fresh interpreter and counts from before the first
import of the compiler (resp. of libseccomp's binding) to the finished program, so
the interpreter's own start is excluded from both.
"""
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PROFILE_IN_SHARED = os.path.join("fixtures", "seccomp-podman-default.json")


def default_profile():
    """The path of the default profile, or ValueError saying where it was looked for."""
    shared = os.environ.get("OCIRUN_SHARED")
    if not shared and os.path.exists(os.path.join(ROOT, "pyproject.toml")):
        shared = os.path.join(os.path.dirname(ROOT), "shared")  # a source checkout
    if not shared:
        raise ValueError("no seccomp profile: pass one, or set OCIRUN_SHARED to the shared "
                         f"data directory (it holds {PROFILE_IN_SHARED})")
    path = os.path.join(shared, PROFILE_IN_SHARED)
    if not os.path.exists(path):
        raise ValueError(f"no seccomp profile: `{path}` does not exist (OCIRUN_SHARED names "
                         "the shared data directory); pass a profile instead")
    return path

_OURS_COLD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[2])
from ocirun import log
log.configure(level="error")
import ocirun.kernel          # the runtime has it loaded before it prepares seccomp
prof = json.load(open(sys.argv[1]))
t = time.perf_counter()
from ocirun.seccomp import prepare
p = prepare(prof, None)
print((time.perf_counter() - t) * 1e3)
"""

_LIB_BUILD = r"""
def lib_build(prof, seccomp):
    def act(name, e):
        e = 1 if e is None else e
        return {"SCMP_ACT_KILL": seccomp.KILL, "SCMP_ACT_KILL_THREAD": seccomp.KILL,
                "SCMP_ACT_KILL_PROCESS": seccomp.KILL_PROCESS, "SCMP_ACT_TRAP": seccomp.TRAP,
                "SCMP_ACT_ALLOW": seccomp.ALLOW, "SCMP_ACT_LOG": seccomp.LOG,
                "SCMP_ACT_NOTIFY": seccomp.NOTIFY}.get(name) or (
                    seccomp.ERRNO(e) if name == "SCMP_ACT_ERRNO" else seccomp.TRACE(e))
    ops = {"SCMP_CMP_NE": seccomp.NE, "SCMP_CMP_LT": seccomp.LT, "SCMP_CMP_LE": seccomp.LE,
           "SCMP_CMP_EQ": seccomp.EQ, "SCMP_CMP_GE": seccomp.GE, "SCMP_CMP_GT": seccomp.GT,
           "SCMP_CMP_MASKED_EQ": seccomp.MASKED_EQ}
    default = prof["defaultAction"], prof.get("defaultErrnoRet")
    f = seccomp.SyscallFilter(act(*default))
    for a in prof.get("architectures", []):
        try:
            f.add_arch(getattr(seccomp.Arch, a[10:]))
        except RuntimeError:
            pass                      # native: already there
    for s in prof.get("syscalls", []):
        if (s["action"], s.get("errnoRet")) == default:
            continue
        args = [seccomp.Arg(a["index"], ops[a["op"]], a.get("value", 0), a.get("valueTwo", 0))
                for a in s.get("args") or []]
        for n in s["names"]:
            try:
                f.add_rule(act(s["action"], s.get("errnoRet")), n, *args)
            except (ValueError, RuntimeError):
                pass                  # unknown name, or a conflict libseccomp refuses
    return f
"""

_LIB_COLD = r"""
import json, sys, time, os
sys.path.insert(0, sys.argv[2])
prof = json.load(open(sys.argv[1]))
t = time.perf_counter()
import seccomp
""" + _LIB_BUILD + r"""
f = lib_build(prof, seccomp)
fd = os.open("/dev/null", os.O_WRONLY)
with os.fdopen(fd, "wb") as out:
    f.export_bpf(out)
print((time.perf_counter() - t) * 1e3)
"""


def _env():
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("PYTHONDONTWRITEBYTECODE", None)     # measure with bytecode caches, as installed
    return env


def _cold_once(code, profile, path):
    r = subprocess.run([sys.executable, "-I", "-S", "-c", code, profile, path], env=_env(),
                       capture_output=True, text=True, cwd=ROOT)
    if r.returncode:
        raise RuntimeError(r.stderr.strip().splitlines()[-1])
    return float(r.stdout)


def _cold(jobs, profile, runs):
    """Median per job; the jobs alternate, so both sides see the same machine noise."""
    out = [[] for _ in jobs]
    for _ in range(runs):
        for i, (code, path) in enumerate(jobs):
            out[i].append(_cold_once(code, profile, path))
    return [statistics.median(o) for o in out]


def _lib():
    try:
        import seccomp
    except ImportError:
        return None
    return seccomp


def lib_program(prof):
    seccomp = _lib()
    ns = {}
    exec(_LIB_BUILD, ns)
    f = ns["lib_build"](prof, seccomp)
    r, w = os.pipe()
    with os.fdopen(w, "wb") as out:
        f.export_bpf(out)
    with os.fdopen(r, "rb") as inp:
        return inp.read()


def _attach(prog, runs):
    """Median time of seccomp(2) attaching `prog`, each in a fresh forked child."""
    from ocirun import kernel
    times = []
    for _ in range(runs):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                t = time.perf_counter()
                kernel.seccomp(1, 0, prog)
                dt = time.perf_counter() - t
                os.write(w, repr(dt).encode())
            finally:
                os._exit(0)
        os.close(w)
        data = os.read(r, 64)
        os.close(r)
        os.waitpid(pid, 0)
        times.append(float(data) * 1e3)
    return statistics.median(times)


def _executed(prog, audit, numbers):
    """(average, max) instructions executed, the set of numbers whose path loads no
    argument (a constant action), and those of them that end in ALLOW (what the
    kernel's action cache remembers)."""
    from ocirun.seccomp.emulator import Program
    em = Program(prog)
    counts = []
    const = set()
    allow = set()
    insns = em.insns
    for nr in numbers:
        trace = []
        ret, n = em.run(nr, audit, trace=trace)
        counts.append(n)
        if not any(insns[pc][0] == 0x20 and insns[pc][3] >= 16 for pc in trace):
            const.add(nr)
            if ret == 0x7FFF0000:
                allow.add(nr)
    return sum(counts) / len(counts), max(counts), const, allow


def _resolve_bench(passes):
    from ocirun.seccomp.tables import x86_64
    names = list(x86_64.NAMES)
    t = time.perf_counter()
    for _ in range(passes):
        NAMES = x86_64.NAMES
        nrs = [NAMES[n] for n in names]
        NUMBERS = x86_64.NUMBERS
        [NUMBERS[n] for n in nrs]
    ours = (time.perf_counter() - t) * 1e3
    seccomp = _lib()
    if seccomp is None:
        return ours, None
    arch = seccomp.Arch.X86_64
    res = seccomp.resolve_syscall
    names_b = [n for n in names if _lib_known(res, arch, n)]
    t = time.perf_counter()
    for _ in range(passes):
        nrs = [res(arch, n) for n in names_b]
        [res(arch, n) for n in nrs]
    lib = (time.perf_counter() - t) * 1e3
    return ours, lib


def _lib_known(res, arch, name):
    try:
        return res(arch, name) >= 0
    except (ValueError, RuntimeError):
        return False


def seccomp_figures(profile_path=None, runs=31):
    import json
    from ocirun import log
    from ocirun.seccomp import arches, build, cache, prepare
    log.configure(level="error")
    profile_path = os.path.abspath(profile_path or default_profile())
    with open(profile_path) as f:
        prof = json.load(f)
    fig = {"profile": profile_path}
    ours = build(prof)[0]
    jobs = [(_OURS_COLD, ROOT)]
    if _lib() is not None:
        jobs.append((_LIB_COLD, os.path.dirname(_lib().__file__)))
    cold = _cold(jobs, profile_path, runs)
    fig["ours_cold_compile_ms"] = cold[0]
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        cdir = cache.cache_dir(d)
        prepare(prof, cdir)
        hits = []
        for _ in range(200):
            t = time.perf_counter()
            p = prepare(prof, cdir)
            hits.append((time.perf_counter() - t) * 1e3)
            assert p.cached
        fig["ours_cache_hit_ms"] = statistics.median(hits)
    fig["ours_insns"] = len(ours) // 8
    x86_64 = arches.ARCHES["x86_64"]
    numbers = sorted(arches.load_table(x86_64).NUMBERS)
    avg, mx, ours_const, ours_allow = _executed(ours, x86_64.audit, numbers)
    fig["ours_exec_avg"], fig["ours_exec_max"] = avg, mx
    root = os.geteuid() == 0
    if root:
        fig["ours_attach_ms"] = _attach(ours, runs * 4)
    fig["ours_resolve_ms"], fig["lib_resolve_ms"] = _resolve_bench(1000)
    if _lib() is not None:
        lib = lib_program(prof)
        fig["lib_cold_compile_ms"] = cold[1]
        fig["lib_insns"] = len(lib) // 8
        avg, mx, lib_const, lib_allow = _executed(lib, x86_64.audit, numbers)
        fig["lib_exec_avg"], fig["lib_exec_max"] = avg, mx
        fig["const_same"] = ours_const == lib_const
        fig["const_count"] = len(ours_const)
        # libseccomp keeps the first of two overlapping rules, we the most restrictive
        # (podman's profile both allows and denies setns): compare ALLOW sets with the
        # profile's rules given to libseccomp most restrictive first
        from ocirun.seccomp.consts import ACTIONS, restrictiveness
        ordered = dict(prof, syscalls=sorted(prof.get("syscalls", []), key=lambda s: restrictiveness(
            ACTIONS[s["action"]][0] | (s.get("errnoRet") or 0))))
        sorted_allow = _executed(lib_program(ordered), x86_64.audit, numbers)[3]
        fig["allow_cache_count"] = len(ours_allow)
        fig["allow_cache_same"] = ours_allow == sorted_allow
        fig["allow_cache_diff_as_given"] = sorted(ours_allow ^ lib_allow)
        if root:
            fig["lib_attach_ms"] = _attach(lib, runs * 4)
    return fig


def render(fig):
    def g(k, fmt="{:.3f}"):
        v = fig.get(k)
        return "n/a" if v is None else (fmt.format(v) if isinstance(v, float) else str(v))
    rows = [
        ("cold compile, fresh process, excl. interpreter start (ms)", g("ours_cold_compile_ms"), g("lib_cold_compile_ms")),
        ("cache hit: key + read + verify (ms)", g("ours_cache_hit_ms"), "n/a"),
        ("seccomp(2) attach (ms)", g("ours_attach_ms"), g("lib_attach_ms")),
        ("program length (insns)", g("ours_insns"), g("lib_insns")),
        ("insns executed per syscall, avg (x86_64 table)", g("ours_exec_avg", "{:.2f}"), g("lib_exec_avg", "{:.2f}")),
        ("insns executed per syscall, max", g("ours_exec_max"), g("lib_exec_max")),
        ("name->nr->name, 1000 passes over the x86_64 table (ms)", g("ours_resolve_ms", "{:.1f}"), g("lib_resolve_ms", "{:.1f}")),
    ]
    out = ["| figure | ocirun | libseccomp 2.5 |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    if "const_same" in fig:
        out.append(f"\nx86_64 syscalls with no argument load on their path: {fig['const_count']}, "
                   f"same set as libseccomp's: {fig['const_same']}. Of them ALLOW (what the "
                   f"kernel caches): {fig['allow_cache_count']}, same set as libseccomp's with "
                   f"the rules given most restrictive first: {fig['allow_cache_same']}; with the "
                   f"rules as given they differ in {fig['allow_cache_diff_as_given']} "
                   f"(overlapping rules, see normalize.py).")
    return "\n".join(out)


if __name__ == "__main__":
    try:
        print(render(seccomp_figures(sys.argv[1] if len(sys.argv) > 1 else None)))
    except (ValueError, OSError) as e:
        sys.exit(f"ocirun.seccomp.benchmark: {e}")
