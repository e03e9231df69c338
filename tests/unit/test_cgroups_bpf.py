"""The v2 device program, run in a small interpreter of the eBPF subset it uses."""
import struct

import pytest

from ocirun.cgroups import devices_bpf as dev

R, W, M = 2, 4, 1
CHAR, BLOCK = dev.BPF_DEVCG_DEV_CHAR, dev.BPF_DEVCG_DEV_BLOCK


def run(prog, dtype, access, major, minor):
    ctx = struct.pack("<III", (access << 16) | dtype, major, minor)
    regs = [0] * 11
    pc = 0
    insns = [struct.unpack("<BBhi", prog[i:i + 8]) for i in range(0, len(prog), 8)]
    steps = 0
    while True:
        steps += 1
        assert steps < 10000 and 0 <= pc < len(insns), "program runs off its end"
        code, regs_b, off, imm = insns[pc]
        dst, src = regs_b & 0xF, regs_b >> 4
        u32 = imm & 0xFFFFFFFF
        pc += 1
        if code == dev.LDX_MEM_W:
            assert src == 1 and off in (0, 4, 8)
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == dev.ALU32_AND_K:
            regs[dst] = (regs[dst] & u32) & 0xFFFFFFFF
        elif code == dev.ALU32_RSH_K:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code == dev.ALU32_MOV_X:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif code == dev.ALU64_MOV_K:
            regs[dst] = imm
        elif code == dev.JMP32_JNE_K:
            if (regs[dst] & 0xFFFFFFFF) != u32:
                pc += off
        elif code == dev.JMP32_JEQ_K:
            if (regs[dst] & 0xFFFFFFFF) == u32:
                pc += off
        elif code == dev.EXIT:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


DEFAULT_DENY = [{"allow": False, "access": "rwm"}]


def test_default_deny_with_allow_list():
    rules = DEFAULT_DENY + [
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "c", "major": 136, "minor": -1, "access": "rw"},
        {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "r"},
    ]
    p = dev.assemble(rules)
    assert run(p, CHAR, R | W, 1, 3) == 1
    assert run(p, CHAR, M, 1, 3) == 1
    assert run(p, CHAR, R, 1, 5) == 0          # /dev/zero not listed
    assert run(p, BLOCK, R, 1, 3) == 0         # type matters
    assert run(p, CHAR, R | W, 136, 7) == 1    # minor wildcard
    assert run(p, CHAR, M, 136, 7) == 0        # mknod not granted
    assert run(p, BLOCK, R, 8, 0) == 1
    assert run(p, BLOCK, R | W, 8, 0) == 0     # asks for more than the rule gives


def test_last_rule_wins_and_deny_overlap():
    rules = [{"allow": True, "type": "c", "major": 1, "minor": 3},
             {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}]
    p = dev.assemble(rules)
    assert run(p, CHAR, R, 1, 3) == 1
    assert run(p, CHAR, W, 1, 3) == 0
    assert run(p, CHAR, R | W, 1, 3) == 0      # any denied bit denies
    assert run(p, CHAR, R, 1, 5) == 1          # nothing matched: inherited allow


def test_allow_all_after_deny_all():
    p = dev.assemble(DEFAULT_DENY + [{"allow": True}])
    assert run(p, BLOCK, R | W | M, 8, 0) == 1
    p = dev.assemble([{"allow": True}] + DEFAULT_DENY)
    assert run(p, CHAR, R, 1, 3) == 0


def test_empty_rules_allow():
    assert run(dev.assemble([]), CHAR, R, 1, 3) == 1


def test_large_numbers_compare_as_u32():
    p = dev.assemble(DEFAULT_DENY + [{"allow": True, "type": "c", "major": (1 << 32) - 1, "minor": 1 << 31}])
    assert run(p, CHAR, R, (1 << 32) - 1, 1 << 31) == 1
    assert run(p, CHAR, R, 1, 1 << 31) == 0


@pytest.mark.parametrize("n", [0, 1, 50])
def test_program_shape(n):
    rules = DEFAULT_DENY + [{"allow": True, "type": "c", "major": i, "minor": 0} for i in range(n)]
    p = dev.assemble(rules)
    assert len(p) % 8 == 0
    # every jump lands inside the program (the verifier would refuse otherwise)
    insns = [struct.unpack("<BBhi", p[i:i + 8]) for i in range(0, len(p), 8)]
    for i, (code, _r, off, _imm) in enumerate(insns):
        if code in (dev.JMP32_JNE_K, dev.JMP32_JEQ_K):
            assert 0 < i + 1 + off < len(insns)
    assert insns[-1][0] == dev.EXIT
