"""Test helper: build the libseccomp filter for a linux.seccomp profile through
Debian's python3-seccomp (a test-only dependency) and compare programs by emulation."""
import os
import random
import tempfile

try:
    import seccomp as libseccomp
except ImportError:          # reported as a skip reason by the tests
    libseccomp = None

from ocirun.seccomp import arches, normalize
from ocirun.seccomp.consts import EPERM, restrictiveness

U32 = 0xFFFFFFFF
U64 = (1 << 64) - 1

_OPS = {"SCMP_CMP_NE": "NE", "SCMP_CMP_LT": "LT", "SCMP_CMP_LE": "LE", "SCMP_CMP_EQ": "EQ",
        "SCMP_CMP_GE": "GE", "SCMP_CMP_GT": "GT", "SCMP_CMP_MASKED_EQ": "MASKED_EQ"}


def lib_action(name, errno_ret):
    L = libseccomp
    return {
        "SCMP_ACT_KILL": lambda: L.KILL, "SCMP_ACT_KILL_THREAD": lambda: L.KILL,
        "SCMP_ACT_KILL_PROCESS": lambda: L.KILL_PROCESS, "SCMP_ACT_TRAP": lambda: L.TRAP,
        "SCMP_ACT_ERRNO": lambda: L.ERRNO(EPERM if errno_ret is None else errno_ret),
        "SCMP_ACT_TRACE": lambda: L.TRACE(EPERM if errno_ret is None else errno_ret),
        "SCMP_ACT_ALLOW": lambda: L.ALLOW, "SCMP_ACT_LOG": lambda: L.LOG,
        "SCMP_ACT_NOTIFY": lambda: L.NOTIFY,
    }[name]()


def lib_arch(name):
    return getattr(libseccomp.Arch, name.upper())


def common_profile(profile, native=None):
    """Keep only names that libseccomp 2.5.4 and our tables agree on for every ABI
    in the filter (the csv is newer than libseccomp's built-in table)."""
    names = [native or arches.native_name()] + [a[10:].lower() for a in profile.get("architectures", [])]
    tables = {n: arches.load_table(arches.ARCHES[n]).NAMES for n in names}
    keep = {}

    def ok(name):
        if name not in keep:
            good = True
            for n in names:
                try:
                    lib = libseccomp.resolve_syscall(lib_arch(n), name)
                except (ValueError, RuntimeError):
                    lib = None
                ours = tables[n].get(name)
                if not (ours == lib or (ours is None and (lib is None or lib < 0))):
                    good = False
            keep[name] = good
        return keep[name]

    out = dict(profile)
    out["syscalls"] = []
    for s in profile.get("syscalls", []):
        s = dict(s)
        s["names"] = [n for n in s["names"] if ok(n)] or ["__unused_name__"]
        out["syscalls"].append(s)
    return out


def lib_program(profile, native=None):
    """libseccomp's BPF for `profile` (bytes), or raises what libseccomp raised."""
    L = libseccomp
    default = lib_action(profile["defaultAction"], profile.get("defaultErrnoRet"))
    f = L.SyscallFilter(default)
    if native and native != arches.native_name():
        f.remove_arch(L.Arch.NATIVE)
        f.add_arch(lib_arch(native))
    native = native or arches.native_name()
    for a in profile.get("architectures", []):
        name = a[10:].lower()
        if name != native:
            f.add_arch(lib_arch(name))
    dflt_ret, _, rules = normalize.validate(profile)
    # libseccomp keeps the first of two unconditional rules and lets an unconditional
    # rule override conditional ones; adding the rules most restrictive first makes
    # that agree with our documented rule (most restrictive match wins) wherever an
    # unconditional rule is not less restrictive than a conditional one.
    rules = sorted(rules, key=lambda r: restrictiveness(r.ret))
    for rule in rules:
        if rule.ret == dflt_ret:
            continue
        s = profile["syscalls"][rule.index]
        act = lib_action(s["action"], s.get("errnoRet"))
        for name in rule.names:
            for conds in rule.alts:
                args = [L.Arg(i, getattr(L, _OPS[op]), v, two) if op == "SCMP_CMP_MASKED_EQ"
                        else L.Arg(i, getattr(L, _OPS[op]), v) for i, op, v, two in conds]
                try:
                    f.add_rule(act, name, *args)
                except (ValueError, RuntimeError) as e:
                    if name != "__unused_name__":
                        raise
    fd, path = tempfile.mkstemp()
    try:
        with os.fdopen(fd, "wb") as fh:
            f.export_bpf(fh)
        with open(path, "rb") as fh:
            return fh.read()
    finally:
        os.unlink(path)


def constants(profile):
    out = set()
    for s in profile.get("syscalls", []):
        for a in s.get("args") or []:
            out.add(a.get("value", 0))
            out.add(a.get("valueTwo", 0))
    return out


def arg_values(profile, seed=1):
    vals = {0, 1, U32, 1 << 32, (1 << 32) + 1, 1 << 63, U64, U64 - 1}
    for c in constants(profile):
        for v in (c - 1, c, c + 1):
            v &= U64
            vals.update((v, v & U32, v | (U32 << 32), (v & U32) | (1 << 32), v >> 32))
    rnd = random.Random(seed)
    vals.update(rnd.getrandbits(64) for _ in range(8))
    vals.update(rnd.getrandbits(32) for _ in range(8))
    return sorted(vals)


def arg_vectors(profile, seed=1, n_random=64):
    """Argument tuples that exercise every constant on every argument slot."""
    vals = arg_values(profile, seed)
    vecs = [(0,) * 6]
    for idx in range(6):
        for v in vals:
            a = [0] * 6
            a[idx] = v
            vecs.append(tuple(a))
    rnd = random.Random(seed)
    for _ in range(n_random):
        vecs.append(tuple(rnd.choice(vals) for _ in range(6)))
    return vecs


def differential(profile, ours_prog, lib_prog, limit=20, native=None):
    """Run both programs over every ABI of the profile: syscall numbers 0..1023 with
    and without the x32 bit and -1 with zero args, and every argument vector from
    arg_vectors() on each syscall a rule names. Returns a list of mismatches."""
    from ocirun.seccomp import emulator
    names = [native or arches.native_name()] + [a[10:].lower() for a in profile.get("architectures", [])]
    little = arches.ARCHES[names[0]].little
    ours = emulator.Program(ours_prog, little)
    lib = emulator.Program(lib_prog, little)
    model = normalize.build(profile, native)
    vecs = arg_vectors(profile)
    bad = []
    seen = set()
    for name in names:
        arch = arches.ARCHES[name]
        if arch.audit in seen and name != "x32":
            continue
        seen.add(arch.audit)
        nrs = list(range(1024)) + [n | 0x40000000 for n in range(1024)] + [U32]
        if name.startswith("mips"):
            base = {"mips": 4000, "mipsel": 4000, "mips64": 5000, "mipsel64": 5000}.get(name, 6000)
            nrs += range(base, base + 1024)
        for nr in nrs:
            a = ours.run(nr, arch.audit, )[0]
            b = lib.run(nr, arch.audit, )[0]
            if a != b:
                bad.append((name, nr, (), hex(a), hex(b)))
        for nr, e in model.tables[name].items():
            if type(e) is int:
                continue
            for args in vecs:
                a = ours.run(nr, arch.audit, args, )[0]
                b = lib.run(nr, arch.audit, args, )[0]
                if a != b:
                    bad.append((name, nr, args, hex(a), hex(b)))
        if len(bad) > limit:
            break
    return bad[:limit]
