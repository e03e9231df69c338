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
from ocirun.seccomp.consts import EPERM

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
    return _export(profile, native, "export_bpf")


def _export(profile, native, how):
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
    # as runc and crun add them: the profile's order, each name in turn, one call per
    # condition where an index repeats; a rule with the default action is skipped
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
            getattr(f, how)(fh)
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


def lib_pfc(profile, native=None):
    """libseccomp's pseudo filter code for `profile` (export_pfc): its rule database
    printed as nested ifs, written by gen_pfc.c straight from the database, apart from
    the BPF generator (gen_bpf.c)."""
    return _export(profile, native, "export_pfc").decode()


class Pfc:
    """An interpreter of that text: a block is a list of statements; an `if` runs its
    branch, and a branch that reaches no action goes on with the next statement (as
    the BPF program goes on with the next node of a level)."""
    _ACT = {"ALLOW": 0x7FFF0000, "KILL": 0, "KILL_PROCESS": 0x80000000, "TRAP": 0x00030000,
            "LOG": 0x7FFC0000}

    def __init__(self, text):
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
                 or "filter for arch" in ln]
        self.arches = {}            # name -> (arch block, default action)
        self.bad_arch = None
        i = 0
        while i < len(lines):
            ln = lines[i]
            if "# filter for arch" in ln:
                name = ln.split("filter for arch ")[1].split()[0]
                block, i = self._block(lines, i + 2, 1)
                self.arches[name] = block
                continue
            if ln.startswith("action"):
                self.bad_arch = self._action(ln)
            i += 1

    def _action(self, ln):
        word = ln.strip()[len("action "):-1]
        if word in self._ACT:
            return self._ACT[word]
        if word.startswith("ERRNO("):
            return 0x00050000 | int(word[6:-1])
        if word.startswith("TRACE("):
            return 0x7FF00000 | int(word[6:-1])
        return int(word, 16)

    def _block(self, lines, i, depth):
        out = []
        pad = "  " * depth
        while i < len(lines) and lines[i].startswith(pad) and not lines[i].startswith(pad + " "):
            ln = lines[i].strip()
            if ln.startswith("action"):
                out.append(("act", self._action(ln)))
                i += 1
            elif ln.startswith("if ("):
                cond = ln[4:-1]
                then, i = self._block(lines, i + 1, depth + 1)
                other = []
                if i < len(lines) and lines[i] == pad + "else":
                    other, i = self._block(lines, i + 1, depth + 1)
                out.append(("if", cond, then, other))
            elif "# filter for arch" in lines[i]:
                break
            else:
                raise ValueError(f"pfc: {ln!r}")
        return out, i

    def run(self, abi, nr, args=()):
        args = tuple(args) + (0,) * (6 - len(args))
        return self._run(self.arches[abi], nr, args)

    def _run(self, block, nr, args):
        for st in block:
            if st[0] == "act":
                return st[1]
            got = self._run(st[2] if self._test(st[1], nr, args) else st[3], nr, args)
            if got is not None:
                return got
        return None

    @staticmethod
    def _test(cond, nr, args):
        parts = cond.split()
        if parts[0] == "$syscall":
            return nr == int(parts[2])
        ref = parts[0][2:]
        idx, _, word = ref.partition(".")
        v = args[int(idx)]
        v = v >> 32 if word == "hi32" else v & U32
        if parts[1] == "&":
            return v & int(parts[2], 16) == int(parts[4])
        k = int(parts[2])
        return {"==": v == k, ">": v > k, ">=": v >= k}[parts[1]]


def refused_by_lib(profile, native=None):
    """None if libseccomp builds the filter, else the error it raised."""
    try:
        lib_program(profile, native)
    except (ValueError, RuntimeError) as e:
        return e
    return None


def calls(profile, native, names, vectors):
    """(abi, nr, args) to compare for the syscalls `names` of a profile: on every ABI
    of the filter, each name's number, the socketcall/ipc multiplexers, and nr 0."""
    abis = [native] + [a[10:].lower() for a in profile.get("architectures", [])
                       if a[10:].lower() != native]
    out = []
    for abi in abis:
        arch = arches.ARCHES[abi]
        table = arches.load_table(arch).NAMES
        nrs = {table[n] for n in list(names) + ["socketcall", "ipc"] if n in table}
        nrs.add(0 | (arches.X32_SYSCALL_BIT if abi == "x32" else 0))
        for nr in sorted(nrs):
            for args in vectors:
                out.append((arch, nr, args))
    return out


def compare_calls(profile, native, names, vectors, limit=5, miscompiled=None):
    """Build with both (or both refuse) and compare on calls(): ocirun's program must
    return what libseccomp's rule database says (its PFC), which is what libseccomp's
    program returns, except where that program contradicts the database (gen_bpf.c
    keeps a stale argument word in the accumulator after falling out of a sub-level,
    or never loads the syscall number when the first entry is one the ABI lacks):
    those calls go to `miscompiled` (a list) instead. -> mismatches."""
    from ocirun.errors import ConfigError
    from ocirun.seccomp import build, emulator
    lib_err = refused_by_lib(profile, native)
    try:
        ours = build(profile, native)[0]
    except ConfigError as e:
        if lib_err is None:
            return [("ocirun refuses, libseccomp builds it", str(e))]
        return []
    if lib_err is not None:
        return [("libseccomp refuses, ocirun builds it", repr(lib_err))]
    little = arches.ARCHES[native].little
    a = emulator.Program(ours, little)
    b = emulator.Program(lib_program(profile, native), little)
    pfc = Pfc(lib_pfc(profile, native))
    bad = []
    for arch, nr, args in calls(profile, native, names, vectors):
        x = a.run(nr, arch.audit, args)[0]
        y = b.run(nr, arch.audit, args)[0]
        z = pfc.run(arch.name, nr, args)
        if x != y and miscompiled is not None and x == z and y != z:
            miscompiled.append((profile, arch.name, nr, args, hex(x), hex(y)))
            continue
        if x != y or x != z:
            bad.append((arch.name, nr, tuple(hex(v) for v in args), hex(x), hex(y), hex(z)))
            if len(bad) >= limit:
                break
    return bad
