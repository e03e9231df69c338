"""Differential tests against libseccomp 2.5.4 (Debian's python3-seccomp, a test-only
dependency): both programs run in our emulator over every syscall number 0..1023 with
and without the x32 bit, -1, and argument values around every constant. They must
return the same 32-bit value everywhere, or both reject the profile.

Where the two differ by design the profiles avoid the difference (see
seccomp_libref.lib_program): libseccomp resolves overlapping rules by insertion order
and lets an unconditional rule override conditional ones; we let the most restrictive
match win. Big-endian ABIs are checked against the rules instead (libseccomp cannot
put them in one filter with the x86_64 native ABI)."""
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
