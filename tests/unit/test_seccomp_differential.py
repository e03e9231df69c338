"""Differential tests against libseccomp 2.5.4 (Debian's python3-seccomp, a test-only
dependency): both programs run in our emulator over every syscall number 0..1023 with
and without the x32 bit, -1, and argument values around every constant. They must
return the same 32-bit value everywhere, or both reject the profile. The rules go to
libseccomp as runc and crun give them: in the profile's order, name by name.

Overlapping rules (several rules for one syscall) are built in every shape and order
below, and also checked against libseccomp's own rule database as its pseudo filter
code prints it: where libseccomp 2.5.4's BPF generator contradicts that database
(seen here: after a sub-level that loaded another argument word, the next comparison
of a level reads the stale word; with an entry for a syscall the ABI lacks first, the
syscall number is never loaded), ocirun compiles what the database says; those calls
are counted apart (MISCOMPILED), one case is pinned by
test_libseccomp_stale_accumulator. Big-endian ABIs
are checked against the rules instead (libseccomp cannot put them in one filter with
the x86_64 native ABI)."""
import json
import os

import pytest

from ocirun.seccomp import arches, build, emulator, normalize
from ocirun.seccomp.explain import evaluate

import seccomp_libref as R

if R.libseccomp is None:
    pytest.skip("python3-seccomp (libseccomp's binding) is not installed", allow_module_level=True)

PODMAN = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures",
                      "seccomp-podman-default.json")
U64 = (1 << 64) - 1
OPS = ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT"]
VALS = [0, 5, 0xFFFFFFFF, 1 << 32, (1 << 32) + 5, (7 << 32) | 9, 1 << 63, U64, U64 - 1]
NAMES = ["read", "write", "open", "close", "stat", "fstat", "lseek", "mmap", "mprotect",
         "munmap", "brk", "ioctl", "pread64", "readv", "writev", "access", "pipe", "dup",
         "dup2", "getpid"]


def edge_profile(archs):
    sc = []
    k = 0
    for op in OPS:
        for v in VALS:
            sc.append({"names": [NAMES[k % len(NAMES)]], "action": "SCMP_ACT_ALLOW",
                       "args": [{"index": k % 6, "value": v, "op": op}]})
            k += 1
    sc += [
        {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
         "args": [{"index": 1, "value": 0xFF00, "valueTwo": 0x1200, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["chown"], "action": "SCMP_ACT_TRAP",
         "args": [{"index": 1, "value": (0xFF << 32) | 0xFF, "valueTwo": (0x12 << 32) | 3,
                   "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["fchown"], "action": "SCMP_ACT_LOG",
         "args": [{"index": 0, "value": U64, "valueTwo": 5, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["kill"], "action": "SCMP_ACT_KILL_PROCESS",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 9, "op": "SCMP_CMP_GT"}]},
        {"names": ["tkill"], "action": "SCMP_ACT_TRACE", "errnoRet": 7,     # ORed: index repeats
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 9, "op": "SCMP_CMP_GT"}]},
        {"names": ["socket", "bind", "shmget", "semop"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["connect", "msgget"], "action": "SCMP_ACT_KILL"},
        {"names": ["mkdir", "rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": ["uname"], "action": "SCMP_ACT_NOTIFY"},
    ]
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_" + a for a in archs], "syscalls": sc}


def check(profile, native="x86_64"):
    profile = R.common_profile(profile, native)
    ours = build(profile, native)[0]
    lib = R.lib_program(profile, native)
    bad = R.differential(profile, ours, lib, native=native)
    assert not bad, bad
    return ours, lib


def test_podman_profile():
    if not os.path.exists(PODMAN):
        pytest.skip(f"podman profile not found at {PODMAN}")
    with open(PODMAN) as f:
        ours, lib = check(json.load(f))
    print(f"podman: {len(ours) // 8} insns, libseccomp {len(lib) // 8}")


@pytest.mark.parametrize("archs", [["X86_64"], ["X86_64", "X86", "X32"], ["X86_64", "X32"],
                                   ["AARCH64", "ARM"], ["MIPSEL", "MIPSEL64", "MIPSEL64N32"],
                                   ["RISCV64"], ["PPC64LE"]], ids="+".join)
def test_edge_profiles(archs):
    check(edge_profile(archs), archs[0].lower())


def test_default_actions():
    for d in ("SCMP_ACT_ALLOW", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_LOG",
              "SCMP_ACT_KILL"):
        check({"defaultAction": d, "architectures": ["SCMP_ARCH_X86"],
               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]})


def test_both_reject_bad_actions():
    with pytest.raises(Exception):
        R.lib_program({"defaultAction": "SCMP_ACT_NOPE"})
    with pytest.raises(Exception):
        build({"defaultAction": "SCMP_ACT_NOPE"})


@pytest.mark.parametrize("archs", [["S390X", "S390"], ["PPC64", "PPC"], ["MIPS", "MIPS64", "MIPS64N32"],
                                   ["PARISC64", "PARISC"]], ids="+".join)
def test_big_endian_against_the_rules(archs):
    profile = edge_profile(archs)
    native = archs[0].lower()
    model = normalize.build(profile, native)
    em = emulator.Program(build(profile, native)[0], little=False)
    vecs = R.arg_vectors(profile, n_random=16)
    for arch in model.arches:
        for nr, e in model.tables[arch.name].items():
            for args in (vecs if type(e) is not int else [()]):
                assert em.run(nr, arch.audit, args)[0] == evaluate(model, arch, nr, args)[0]


# --- overlapping rules: every shape, in both orders, against libseccomp ---------------
#
# runc, crun and youki add a profile's rules to libseccomp one by one, and libseccomp
# decides how rules for one syscall combine (ocirun/seccomp/ruledb.py). Each shape below
# is built by both, in every order; both must refuse it, or return the same value for
# every call on every ABI (x86_64, with x86 and x32 for 32-bit argument trees).

HI = 1 << 32


def _c(idx, op, v, two=None):
    d = {"index": idx, "value": v, "op": "SCMP_CMP_" + op}
    if two is not None:
        d["valueTwo"] = two
    return d


KINDS = {
    "plain": None,
    "a0==7": [_c(0, "EQ", 7)],
    "a0==9": [_c(0, "EQ", 9)],
    "a0==hi+7": [_c(0, "EQ", HI | 7)],
    "a1==7": [_c(1, "EQ", 7)],
    "a0==7&a1==2": [_c(0, "EQ", 7), _c(1, "EQ", 2)],
    "a0!=7": [_c(0, "NE", 7)],
    "a0>5": [_c(0, "GT", 5)],
    "a0>hi+9": [_c(0, "GT", HI | 9)],
    "a0>=7": [_c(0, "GE", 7)],
    "a0<9": [_c(0, "LT", 9)],
    "a0<=hi+5": [_c(0, "LE", HI | 5)],
    "a0&0xf0==0x70": [_c(0, "MASKED_EQ", 0xF0, 0x70)],
    "a0&0==0": [_c(0, "MASKED_EQ", 0, 0)],              # compares nothing: plain
    "a0==7|a0==9": [_c(0, "EQ", 7), _c(0, "EQ", 9)],   # an index repeats: two rules
}
DEFAULT = ("SCMP_ACT_ERRNO", 38)
ALLOW, ERRNO1, LOG = ("SCMP_ACT_ALLOW", None), ("SCMP_ACT_ERRNO", 1), ("SCMP_ACT_LOG", None)
# same action, different actions both ways, and a rule whose action is the default
ACTION_PAIRS = [(ALLOW, ALLOW), (ALLOW, ERRNO1), (ERRNO1, ALLOW), (LOG, ERRNO1),
                (DEFAULT, ALLOW), (ALLOW, DEFAULT)]
A0 = [0, 2, 5, 6, 7, 8, 9, 10, 0x70, 0x7F, 0x170, HI, HI | 5, HI | 7, HI | 9, HI | 10,
      2 * HI | 7, U64]
VECTORS = [(a, b) for a in A0 for b in (0, 2, 7)]
ABIS = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
# calls where libseccomp's program contradicts its own rule database (see
# seccomp_libref.compare_calls); ocirun returns what the database says
MISCOMPILED = []


def _rule(names, kind, action):
    r = {"names": names, "action": action[0]}
    if action[1] is not None:
        r["errnoRet"] = action[1]
    if KINDS[kind] is not None:
        r["args"] = KINDS[kind]
    return r


def _profile(*rules, archs=ABIS):
    return {"defaultAction": DEFAULT[0], "defaultErrnoRet": DEFAULT[1],
            "architectures": archs, "syscalls": list(rules)}


@pytest.mark.parametrize("first", list(KINDS))
def test_overlap_pairs(first):
    """Two rules on one syscall: every pair of shapes, both orders (`second` runs over
    all kinds, `first` is the parameter), same and different actions, and a rule whose
    action is the default (skipped by runc and crun, refused by libseccomp alone)."""
    bad = []
    for second in KINDS:
        for act_a, act_b in ACTION_PAIRS:
            p = _profile(_rule(["mkdir"], first, act_a), _rule(["mkdir"], second, act_b))
            if act_a == DEFAULT or act_b == DEFAULT:
                p["syscalls"] = [s for s in p["syscalls"] if (s["action"], s.get("errnoRet"))
                                 != DEFAULT] + [_rule(["rmdir"], "plain", ALLOW)]
                q = _profile(_rule(["mkdir"], first, act_a), _rule(["mkdir"], second, act_b),
                             _rule(["rmdir"], "plain", ALLOW))
                ours = build(q, "x86_64")[0]
                assert ours == build(p, "x86_64")[0], (first, second, act_a, act_b)
            for m in R.compare_calls(p, "x86_64", ["mkdir"], VECTORS, miscompiled=MISCOMPILED):
                bad.append((first, second, act_a[0], act_b[0], m))
    assert not bad, bad[:10]


def test_overlap_triples():
    """Three to five rules on one or two syscalls, shapes and actions drawn at random
    (seeded): deeper merges, where chains are pruned and levels reordered."""
    import random
    rnd = random.Random(16)
    kinds = list(KINDS)
    acts = [ALLOW, ERRNO1, LOG, ("SCMP_ACT_TRAP", None), ("SCMP_ACT_ERRNO", 13)]
    bad = []
    refused = 0
    for _ in range(250):
        rules = [_rule(rnd.choice([["mkdir"], ["mkdir"], ["mkdir", "rmdir"]]),
                       rnd.choice(kinds), rnd.choice(acts))
                 for _ in range(rnd.randint(3, 5))]
        p = _profile(*rules)
        if R.refused_by_lib(p, "x86_64") is not None:
            refused += 1
        for m in R.compare_calls(p, "x86_64", ["mkdir", "rmdir"], VECTORS, miscompiled=MISCOMPILED):
            bad.append((rules, m))
    assert not bad, bad[:3]
    assert 0 < refused < 250       # both outcomes are exercised


@pytest.mark.parametrize("kind", list(KINDS))
def test_repeated_names_in_one_rule(kind):
    """A name twice in one `names` list (and between other names): two rules."""
    bad = []
    for act in (ALLOW, ERRNO1):
        for names in (["mkdir", "mkdir"], ["mkdir", "rmdir", "mkdir"]):
            for other in ("plain", "a0==7", "a0>5"):
                for p in (_profile(_rule(names, kind, act), _rule(["mkdir"], other, LOG)),
                          _profile(_rule(["mkdir"], other, LOG), _rule(names, kind, act))):
                    bad += R.compare_calls(p, "x86_64", ["mkdir", "rmdir"], VECTORS,
                                           miscompiled=MISCOMPILED)
    assert not bad, bad[:5]


SOCK_KINDS = {
    "plain": None,
    "a0==2": [_c(0, "EQ", 2)],
    "a0==11": [_c(0, "EQ", 11)],
    "a2==9": [_c(2, "EQ", 9)],
    "a0==2&a2==9": [_c(0, "EQ", 2), _c(2, "EQ", 9)],
    "a2!=9": [_c(2, "NE", 9)],
    "a1>5": [_c(1, "GT", 5)],
}
SOCK_VECTORS = [(a, b, c) for a in (0, 1, 2, 3, 9, 11, 13, 23, HI | 2, HI | 11)
                for b in (0, 6) for c in (0, 9)]


@pytest.mark.parametrize("native,archs", [("x86", []), ("x86_64", ["SCMP_ARCH_X86"])],
                         ids=["x86", "x86_64+x86"])
def test_overlap_socketcall_and_ipc(native, archs):
    """The multiplexed forms (socketcall, ipc on x86): a sub-call's rule also lands on
    the multiplexer, with args[0] replaced; overlapping with each other and with rules
    that name the multiplexer itself, in both orders."""
    names = [["socket"], ["sendto"], ["socketcall"], ["shmget"], ["ipc"], ["socket", "bind"]]
    bad = []
    for ka in SOCK_KINDS:
        for kb in SOCK_KINDS:
            for na, nb in ((0, 2), (2, 0), (0, 1), (1, 0), (3, 4), (4, 3), (5, 0), (0, 0)):
                for act_a, act_b in ((ALLOW, ERRNO1), (ERRNO1, ALLOW), (ALLOW, ALLOW)):
                    ra = dict(_rule(names[na], "plain", act_a))
                    rb = dict(_rule(names[nb], "plain", act_b))
                    if SOCK_KINDS[ka]:
                        ra["args"] = SOCK_KINDS[ka]
                    if SOCK_KINDS[kb]:
                        rb["args"] = SOCK_KINDS[kb]
                    p = _profile(ra, rb, archs=archs)
                    for m in R.compare_calls(p, native, names[na] + names[nb], SOCK_VECTORS,
                                             miscompiled=MISCOMPILED):
                        bad.append((ra, rb, m))
    assert not bad, bad[:5]


def test_libseccomp_stale_accumulator():
    """One way libseccomp's program departs from its rule database: `a0 > 2^32+9`
    then `a0 < 9`, both ALLOW. For a0 = 9 neither matches (its database, printed as
    pseudo filter code, says the default); libseccomp's program, falling out of the
    `a0 < 9` checks on the low word, compares that low word (9) with the high-word
    bound of the next node (> 1) and allows. ocirun follows the database."""
    p = _profile({"names": ["mkdir"], "action": "SCMP_ACT_ALLOW", "args": [_c(0, "GT", HI | 9)]},
                 {"names": ["mkdir"], "action": "SCMP_ACT_ALLOW", "args": [_c(0, "LT", 9)]},
                 archs=[])
    lib = emulator.Program(R.lib_program(p, "x86_64"))
    ours = emulator.Program(build(p, "x86_64")[0])
    pfc = R.Pfc(R.lib_pfc(p, "x86_64"))
    x86_64 = arches.ARCHES["x86_64"]
    for a0, want in ((9, 0x50026), (8, 0x7FFF0000), (HI | 10, 0x7FFF0000), (HI | 9, 0x50026)):
        assert pfc.run("x86_64", 83, (a0,)) == want
        assert ours.run(83, x86_64.audit, (a0,))[0] == want
    assert lib.run(83, x86_64.audit, (9,))[0] == 0x7FFF0000       # the stale word
    mis = []
    assert not R.compare_calls(p, "x86_64", ["mkdir"], VECTORS, miscompiled=mis)
    # only where the low word passed the `a0 < 9` check's last comparison (>= 9)
    assert mis and all(9 <= m[3][0] < HI for m in mis), mis

