"""Compiler semantics, checked by running the program in the emulator."""
import random

import pytest

from ocirun.errors import ConfigError
from ocirun.seccomp import arches, build, compile as C, emulator, normalize
from ocirun.seccomp.asm import Asm, unpack
from ocirun.seccomp.consts import (
    BPF_JEQ, BPF_JMP, BPF_K, BPF_RET, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD, SECCOMP_RET_LOG, SECCOMP_RET_TRACE,
    SECCOMP_RET_TRAP, SECCOMP_RET_USER_NOTIF,
)
from ocirun.seccomp.explain import evaluate

X86_64 = arches.ARCHES["x86_64"]
X86 = arches.ARCHES["x86"]
X32 = arches.ARCHES["x32"]
U32 = 0xFFFFFFFF
U64 = (1 << 64) - 1
ALLOW = SECCOMP_RET_ALLOW


def prog_for(profile, native="x86_64"):
    return emulator.Program(build(profile, native)[0])


def run(profile, name, args=(), arch=X86_64, native="x86_64"):
    nr = arches.load_table(arch).NAMES[name]
    return prog_for(profile, native).run(nr, arch.audit, args)[0]


def rule(names, action="SCMP_ACT_ALLOW", args=None, **kw):
    r = {"names": names if isinstance(names, list) else [names], "action": action}
    if args is not None:
        r["args"] = args
    r.update(kw)
    return r


def prof(*rules, default="SCMP_ACT_ERRNO", archs=None, **kw):
    p = {"defaultAction": default, "syscalls": list(rules)}
    if archs:
        p["architectures"] = ["SCMP_ARCH_" + a.upper() for a in archs]
    p.update(kw)
    return p


@pytest.mark.parametrize("action,extra,ret", [
    ("SCMP_ACT_KILL", {}, SECCOMP_RET_KILL_THREAD),
    ("SCMP_ACT_KILL_THREAD", {}, SECCOMP_RET_KILL_THREAD),
    ("SCMP_ACT_KILL_PROCESS", {}, SECCOMP_RET_KILL_PROCESS),
    ("SCMP_ACT_TRAP", {}, SECCOMP_RET_TRAP),
    ("SCMP_ACT_ERRNO", {}, SECCOMP_RET_ERRNO | 1),
    ("SCMP_ACT_ERRNO", {"errnoRet": 38}, SECCOMP_RET_ERRNO | 38),
    ("SCMP_ACT_ERRNO", {"errnoRet": 65535}, SECCOMP_RET_ERRNO | 65535),
    ("SCMP_ACT_TRACE", {}, SECCOMP_RET_TRACE | 1),
    ("SCMP_ACT_TRACE", {"errnoRet": 7}, SECCOMP_RET_TRACE | 7),
    ("SCMP_ACT_LOG", {}, SECCOMP_RET_LOG),
    ("SCMP_ACT_NOTIFY", {}, SECCOMP_RET_USER_NOTIF),
])
def test_actions(action, extra, ret):
    p = prof(rule("mkdir", action, **extra), default="SCMP_ACT_ALLOW")
    assert run(p, "mkdir") == ret
    assert run(p, "rmdir") == ALLOW


def test_default_errno_ret():
    p = prof(default="SCMP_ACT_ERRNO", defaultErrnoRet=38)
    assert run(p, "mkdir") == SECCOMP_RET_ERRNO | 38
    assert run(prof(), "mkdir") == SECCOMP_RET_ERRNO | 1


OPS = ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
       "SCMP_CMP_GT"]
EDGE = [0, 1, 5, U32 - 1, U32, 1 << 32, (1 << 32) + 5, (5 << 32) | 5, 1 << 63, U64 - 1, U64]


def _py(op, a, v):
    return {"SCMP_CMP_NE": a != v, "SCMP_CMP_LT": a < v, "SCMP_CMP_LE": a <= v,
            "SCMP_CMP_EQ": a == v, "SCMP_CMP_GE": a >= v, "SCMP_CMP_GT": a > v}[op]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("arch", [X86_64, X86, X32], ids=lambda a: a.name)
def test_operators_64_and_32_bit(op, arch):
    rnd = random.Random(op)
    values = EDGE + [rnd.getrandbits(64) for _ in range(5)]
    for v in values:
        p = prof(rule("mkdir", args=[{"index": 2, "value": v, "op": op}]),
                 archs=["x86", "x32"])
        prog = prog_for(p)
        nr = arches.load_table(arch).NAMES["mkdir"]
        for a in values + [(v + d) & U64 for d in (-1, 1)] + [v & U32, v | (U32 << 32)]:
            if arch.bits == 32:
                want = _py(op, a & U32, v & U32)
            else:
                want = _py(op, a, v)
            got = prog.run(nr, arch.audit, (0, 0, a))[0]
            assert (got == ALLOW) == want, (op, arch.name, hex(v), hex(a))


@pytest.mark.parametrize("arch", [X86_64, X86], ids=lambda a: a.name)
def test_masked_eq(arch):
    cases = [(0xFF00, 0x1200), ((0xFF << 32) | 0xFF, (0x12 << 32) | 3), (U64, 5),
             (0xF, 0x10), (1 << 40, 0), (1 << 40, 1 << 40)]
    for mask, datum in cases:
        p = prof(rule("chmod", args=[{"index": 1, "value": mask, "valueTwo": datum,
                                      "op": "SCMP_CMP_MASKED_EQ"}]), archs=["x86"])
        prog = prog_for(p)
        nr = arches.load_table(arch).NAMES["chmod"]
        for a in EDGE + [datum, datum | ~mask & U64, datum ^ 1, (datum ^ (1 << 40)) & U64]:
            m, d, x = (mask, datum, a) if arch.bits == 64 else (mask & U32, datum & U32, a & U32)
            want = x & m == d & m       # libseccomp masks the datum too: 0xF/0x10 is x & 0xF == 0
            assert (prog.run(nr, arch.audit, (0, a))[0] == ALLOW) == want, (hex(mask), hex(a))


def test_conditions_are_anded():
    p = prof(rule("socket", args=[{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                                  {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]))
    assert run(p, "socket", (1, 0, 9)) == ALLOW
    assert run(p, "socket", (1, 0, 8)) != ALLOW
    assert run(p, "socket", (2, 0, 9)) != ALLOW


def test_repeated_index_is_ored():
    p = prof(rule("kill", args=[{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                                {"index": 0, "value": 9, "op": "SCMP_CMP_GT"},
                                {"index": 1, "value": 3, "op": "SCMP_CMP_EQ"}]))
    assert run(p, "kill", (1, 0)) == ALLOW
    assert run(p, "kill", (10, 0)) == ALLOW
    assert run(p, "kill", (5, 3)) == ALLOW     # every condition alone
    assert run(p, "kill", (5, 0)) != ALLOW


def test_first_plain_rule_wins():
    """As libseccomp: a syscall's first rule without conditions decides it, whatever
    comes later; podman's profile allows setns (rule 1) and later denies it (rule 10)."""
    rules = [rule("mkdir", "SCMP_ACT_ALLOW"), rule("mkdir", "SCMP_ACT_ERRNO", errnoRet=5),
             rule("mkdir", "SCMP_ACT_LOG"), rule("mkdir", "SCMP_ACT_ERRNO", errnoRet=3)]
    for order, want in ((rules, ALLOW), (rules[::-1], SECCOMP_RET_ERRNO | 3),
                        (rules[1:] + rules[:1], SECCOMP_RET_ERRNO | 5)):
        assert run(prof(*order, default="SCMP_ACT_KILL"), "mkdir") == want
    # later conditional rules are dropped
    p = prof(rule("rmdir", "SCMP_ACT_ALLOW"),
             rule("rmdir", "SCMP_ACT_TRAP", args=[{"index": 0, "value": 7, "op": "SCMP_CMP_EQ"}]))
    assert run(p, "rmdir", (7, 0)) == ALLOW
    # a plain rule after conditional ones replaces them
    p = prof(rule("rmdir", "SCMP_ACT_ALLOW", args=[{"index": 0, "value": 7, "op": "SCMP_CMP_EQ"}]),
             rule("rmdir", "SCMP_ACT_ERRNO"), default="SCMP_ACT_KILL")
    assert run(p, "rmdir", (7,)) == SECCOMP_RET_ERRNO | 1
    assert run(p, "rmdir", (0,)) == SECCOMP_RET_ERRNO | 1


def test_conditional_rules_merge_in_libseccomp_order():
    """Conditional rules for one syscall: the higher argument index is compared first,
    whatever the profile's order; the same conditions with another action are refused."""
    a0 = rule("rmdir", "SCMP_ACT_TRAP", args=[{"index": 0, "value": 7, "op": "SCMP_CMP_EQ"}])
    a1 = rule("rmdir", "SCMP_ACT_KILL_PROCESS", args=[{"index": 1, "value": 7, "op": "SCMP_CMP_EQ"}])
    for order in ((a0, a1), (a1, a0)):
        p = prof(*order)
        assert run(p, "rmdir", (0, 0)) == SECCOMP_RET_ERRNO | 1
        assert run(p, "rmdir", (7, 0)) == SECCOMP_RET_TRAP
        assert run(p, "rmdir", (7, 7)) == SECCOMP_RET_KILL_PROCESS
    same = dict(a0, action="SCMP_ACT_LOG")
    with pytest.raises(ConfigError, match=r"syscalls\[1\] \(rmdir\): conflicts with an earlier "
                                          r"rule for `rmdir` on x86_64.*EEXIST"):
        build(prof(a0, same), "x86_64")
    # a shorter chain with another action, after a longer one: refused too (libseccomp)
    longer = rule("rmdir", "SCMP_ACT_ALLOW", args=[{"index": 0, "value": 7, "op": "SCMP_CMP_EQ"},
                                                   {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}])
    with pytest.raises(ConfigError, match="EEXIST"):
        build(prof(longer, a0), "x86_64")
    # ... while the other order keeps the shorter one
    p = prof(a0, longer)
    assert run(p, "rmdir", (7, 2)) == SECCOMP_RET_TRAP


def test_rule_with_default_action_is_ignored():
    p = prof(rule("mkdir", "SCMP_ACT_ALLOW"),
             rule("mkdir", "SCMP_ACT_ERRNO", args=[{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]))
    assert run(p, "mkdir", (1,)) == ALLOW


def test_socketcall_and_ipc_forms_on_x86():
    p = prof(rule(["socket", "shmget"]), rule("connect", "SCMP_ACT_KILL"),
             rule("bind", args=[{"index": 0, "value": 3, "op": "SCMP_CMP_EQ"}]),
             rule("sendto", args=[{"index": 2, "value": 5, "op": "SCMP_CMP_EQ"}]), archs=["x86"])
    t = arches.load_table(X86).NAMES
    prog = prog_for(p)
    assert prog.run(t["socket"], X86.audit)[0] == ALLOW
    assert prog.run(t["socketcall"], X86.audit, (1,))[0] == ALLOW         # SYS_SOCKET
    assert prog.run(t["socketcall"], X86.audit, (3,))[0] == SECCOMP_RET_KILL_THREAD
    # a conditional rule's form: its args[0] condition becomes the sub-call's number
    # (libseccomp), its other conditions stay, compared on socketcall's own arguments
    assert prog.run(t["socketcall"], X86.audit, (2,))[0] == ALLOW
    assert prog.run(t["bind"], X86.audit, (2,))[0] == SECCOMP_RET_ERRNO | 1
    assert prog.run(t["socketcall"], X86.audit, (11, 0, 5))[0] == ALLOW    # SYS_SENDTO
    assert prog.run(t["socketcall"], X86.audit, (11, 0, 4))[0] == SECCOMP_RET_ERRNO | 1
    assert prog.run(t["socketcall"], X86.audit, (4,))[0] == SECCOMP_RET_ERRNO | 1
    assert prog.run(t["ipc"], X86.audit, (23,))[0] == ALLOW               # SHMGET
    assert prog.run(t["ipc"], X86.audit, (1 << 32 | 23,))[0] == ALLOW     # 32-bit ABI
    # the profile names socketcall itself, without conditions: it decides, before or
    # after the sub-calls' forms
    for rules in ((rule(["socket"], "SCMP_ACT_KILL"), rule("socketcall")),
                  (rule("socketcall"), rule(["socket"], "SCMP_ACT_KILL"))):
        assert prog_for(prof(*rules, archs=["x86"])).run(t["socketcall"], X86.audit, (1,))[0] == ALLOW
    # x86_64 has no multiplexer
    assert "socketcall" not in arches.load_table(X86_64).NAMES


def test_unknown_names_warned_and_skipped():
    prog, _, warnings = build(prof(rule(["mkdir", "no_such_call"])), "x86_64")
    assert any("no_such_call" in w for w in warnings)
    assert emulator.Program(prog).run(83, X86_64.audit)[0] == ALLOW
    # known on one filtered ABI only: no warning
    assert not build(prof(rule(["arch_prctl"]), archs=["x86"]), "x86_64")[2]


def test_x32_bit_and_minus_one():
    dflt = SECCOMP_RET_ERRNO | 1
    only64 = prog_for(prof(rule("mkdir")))
    assert only64.run(83, X86_64.audit)[0] == ALLOW
    assert only64.run(0x40000000 | 83, X86_64.audit)[0] == SECCOMP_RET_KILL_THREAD
    assert only64.run(0x7FFFFFFF, X86_64.audit)[0] == SECCOMP_RET_KILL_THREAD
    assert only64.run(U32, X86_64.audit)[0] == dflt
    both = prog_for(prof(rule("mkdir"), archs=["x32"]))
    assert both.run(0x40000000 | 83, X86_64.audit)[0] == ALLOW
    assert both.run(0x40000000 | 1000, X86_64.audit)[0] == dflt
    assert both.run(U32, X86_64.audit)[0] == dflt
    assert both.run(0x1234, 0x12345678)[0] == SECCOMP_RET_KILL_THREAD    # bad arch


def test_cacheable_prefix_and_result_set():
    """Until a syscall's path loads an argument it uses only what the kernel's
    constant-action cache can evaluate."""
    p = prof(*[rule(n) for n in ("read", "write", "close")],
             rule("personality", args=[{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]),
             archs=["x86", "x32"])
    prog = build(p, "x86_64")[0]
    insns = unpack(prog)
    ok = {0x20, 0x15, 0x25, 0x35, 0x45, 0x05, 0x54, 0x06}
    em = emulator.Program(prog)
    for arch in (X86_64, X86):
        for nr in range(600):
            trace = []
            em.run(nr, arch.audit, trace=trace)
            for pc in trace:
                code, _, _, k = insns[pc]
                if code == 0x20 and k >= 16:
                    break
                assert code in ok, (nr, pc, hex(code))


def test_too_large_profile_is_a_config_error():
    rules = [rule("ioctl", args=[{"index": 1, "value": v, "op": "SCMP_CMP_GT"},
                                 {"index": 2, "value": v, "op": "SCMP_CMP_LT"}])
             for v in range(1, 1200)]
    with pytest.raises(ConfigError, match="too large for one filter"):
        build(prof(*rules), "x86_64")


def test_long_jumps_agree_with_the_rules():
    """Hundreds of argument rules push jumps past 255: trampolines keep it right."""
    rnd = random.Random(7)
    names = ["ioctl", "fcntl", "prctl", "mmap", "openat", "clone", "setsockopt"]
    rules = []
    for i in range(160):
        op = rnd.choice(OPS + ["SCMP_CMP_MASKED_EQ"])
        v = rnd.choice([rnd.getrandbits(64), rnd.getrandbits(16), i])
        rules.append(rule(rnd.choice(names), rnd.choice(["SCMP_ACT_ALLOW", "SCMP_ACT_LOG",
                                                          "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO"]),
                          args=[{"index": rnd.randrange(6), "value": v, "op": op,
                                 "valueTwo": v & 0xFF0}]))
    p = prof(*rules, archs=["x86"])
    model = normalize.build(p, "x86_64")
    a = C._Gen()
    prog = C.compile_model(model)
    em = emulator.Program(prog)
    assert len(prog) // 8 > 300
    consts = [r["args"][0]["value"] for r in rules]
    for arch in (X86_64, X86):
        t = arches.load_table(arch).NAMES
        for name in names:
            for _ in range(150):
                args = tuple(rnd.choice(consts + [0, U64, rnd.getrandbits(64)]) for _ in range(6))
                want = evaluate(model, arch, t[name], args)[0]
                assert em.run(t[name], arch.audit, args)[0] == want
    del a


def test_assembler_trampolines():
    a = Asm()
    a.jump(BPF_JMP | BPF_JEQ | BPF_K, 1, "far", "near")
    a.bind("near")
    for _ in range(600):
        a.op(BPF_RET | BPF_K, 1)
    a.bind("far")
    a.op(BPF_RET | BPF_K, 2)
    insns = unpack(a.assemble())
    em = emulator.Program(insns)
    assert em.run(0, 0)[0] == 1
    # A == 1 is what the jump compares: load nr=1 first
    insns2 = [(0x20, 0, 0, 0)] + insns
    # offsets are relative, so prepending shifts nothing
    assert emulator.Program(insns2).run(1, 0)[0] == 2


@pytest.mark.parametrize("profile,message", [
    ({"defaultAction": "SCMP_ACT_NOPE"}, "linux.seccomp.defaultAction: unknown action `SCMP_ACT_NOPE`"),
    ({}, "defaultAction is required"),
    (prof(rule(["mkdir", "rmdir"], args=[{"index": 0, "value": 1, "op": "SCMP_CMP_FOO"}]), default="SCMP_ACT_ALLOW"),
     "linux.seccomp.syscalls[0] (mkdir, rmdir): unknown operator `SCMP_CMP_FOO`"),
    (prof(rule("a"), rule("mkdir", "SCMP_ACT_BLOCK")), "linux.seccomp.syscalls[1] (mkdir): unknown action `SCMP_ACT_BLOCK`"),
    (prof(archs=["vax"]), "linux.seccomp.architectures[0]: unknown architecture `SCMP_ARCH_VAX`"),
    (prof(rule("mkdir", "SCMP_ACT_ERRNO", errnoRet=65536)), "errnoRet 65536 is out of range 0..65535"),
    (prof(rule("mkdir", "SCMP_ACT_ERRNO", errnoRet=-1)), "out of range"),
    (prof(rule("mkdir", "SCMP_ACT_ERRNO", errnoRet=True)), "errnoRet must be an integer, not a boolean"),
    (prof(rule("mkdir", "SCMP_ACT_ALLOW", errnoRet=1), default="SCMP_ACT_KILL"), "errnoRet is only valid with"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}, "defaultErrnoRet is only valid with"),
    (prof(rule("mkdir", args=[{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}])), "value -1 is out of range"),
    (prof(rule("mkdir", args=[{"index": 0, "value": 1 << 64, "op": "SCMP_CMP_EQ"}])), "out of range"),
    (prof(rule("mkdir", args=[{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}])), "index 6 is out of range 0..5"),
    (prof(rule("mkdir", args=[{"index": True, "value": 1, "op": "SCMP_CMP_EQ"}])), "index must be an integer, not a boolean"),
    (prof(rule("mkdir", args=[{"index": 0, "value": False, "op": "SCMP_CMP_EQ"}])), "value must be an integer, not a boolean"),
    (prof(rule("mkdir", args=[{"index": 0, "value": 1.5, "op": "SCMP_CMP_EQ"}])), "must be an integer"),
    (prof(rule([])), "names must be a non-empty array"),
    ({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}, "cannot be the default action"),
])
def test_bad_input(profile, message):
    with pytest.raises(ConfigError) as e:
        build(profile, "x86_64")
    text = str(e.value)
    assert message in text and "\n" not in text


def test_32_bit_truncation_warns():
    p = prof(rule("mkdir", args=[{"index": 0, "value": (1 << 33) + 7, "op": "SCMP_CMP_EQ"}]),
             archs=["x86"])
    prog, _, warnings = build(p, "x86_64")
    assert any("low 32 bits" in w for w in warnings)
    em = emulator.Program(prog)
    assert em.run(39, X86.audit, (7,))[0] == ALLOW
    assert em.run(83, X86_64.audit, (7,))[0] != ALLOW
    assert em.run(83, X86_64.audit, ((1 << 33) + 7,))[0] == ALLOW


def test_podman_profile_figures(podman):
    prog = build(podman, "x86_64")[0]
    assert len(prog) // 8 <= 572
    em = emulator.Program(prog)
    counts = [em.run(nr, X86_64.audit)[1] for nr in arches.load_table(X86_64).NUMBERS]
    assert max(counts) <= 32
    assert sum(counts) / len(counts) <= 314 / 20


@pytest.fixture
def podman():
    import json
    import os
    path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures",
                        "seccomp-podman-default.json")
    if not os.path.exists(path):
        pytest.skip(f"podman profile not found at {path}")
    with open(path) as f:
        return json.load(f)
