"""linux.resources.devices on cgroup v2: an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE.

v2 has no devices.allow/deny files; the kernel asks a program attached to the cgroup
(BPF_CGROUP_DEVICE) on every open/mknod of a device node, with a struct
bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; } where access_type is
(access << 16) | type, type BPF_DEVCG_DEV_BLOCK=1 / CHAR=2, access MKNOD=1 READ=2 WRITE=4.
The program returns 1 to allow, 0 to deny (EPERM).

The rule list means what it means on v1, so one config behaves alike on both:
  - rules are applied in order, so the LAST matching rule decides; the program therefore
    tests the rules in reverse order and returns at the first match;
  - with no matching rule the access is allowed (a v1 cgroup starts from its parent's
    allow-all); a config that wants a default of "deny" starts with {"allow": false}, as
    generated configs do;
  - type "a" stands for every device whatever its numbers and access (v1 writes it as "a");
  - an allow rule matches when every requested access bit is in the rule's access; a deny
    rule matches when any requested bit is (v1's exception semantics).

The program is attached without BPF_F_ALLOW_MULTI, so attaching a new program (update)
replaces the old one in place, with no window in which neither is attached.
"""
import _struct  # the C module: `struct` is a .py file to find and load

BPF_DEVCG_DEV_BLOCK = 1
BPF_DEVCG_DEV_CHAR = 2
ACCESS_BITS = {"m": 1, "r": 2, "w": 4}
TYPES = {"b": BPF_DEVCG_DEV_BLOCK, "c": BPF_DEVCG_DEV_CHAR}

# opcodes (<linux/bpf_common.h>, <linux/bpf.h>)
LDX_MEM_W = 0x61      # BPF_LDX | BPF_MEM | BPF_W
ALU32_AND_K = 0x54    # BPF_ALU | BPF_AND | BPF_K
ALU32_RSH_K = 0x74    # BPF_ALU | BPF_RSH | BPF_K
ALU32_MOV_X = 0xBC    # BPF_ALU | BPF_MOV | BPF_X
ALU64_MOV_K = 0xB7    # BPF_ALU64 | BPF_MOV | BPF_K
JMP32_JNE_K = 0x56    # BPF_JMP32 | BPF_JNE | BPF_K
JMP32_JEQ_K = 0x16    # BPF_JMP32 | BPF_JEQ | BPF_K
EXIT = 0x95           # BPF_JMP | BPF_EXIT
NEXT = object()       # placeholder: jump to the next rule's block


def _imm(v):
    return v - (1 << 32) if v >= (1 << 31) else v


def insn(code, dst=0, src=0, off=0, imm=0):
    return _struct.pack("<BBhi", code, (src << 4) | dst, off, _imm(imm))


def _rule_block(rule):
    """Instructions for one rule; NEXT offsets are patched to skip to the block's end."""
    allow = 1 if rule["allow"] else 0
    t = rule.get("type") or "a"
    out = []
    if t != "a":
        access = rule.get("access") or "rwm"
        mask = 0
        for c in access:
            mask |= ACCESS_BITS[c]
        out.append((JMP32_JNE_K, 2, 0, NEXT, TYPES[t]))
        if mask != 7:
            out.append((ALU32_MOV_X, 1, 3, 0, 0))
            if allow:
                # requested access must lie within the rule's
                out.append((ALU32_AND_K, 1, 0, 0, ~mask & 7))
                out.append((JMP32_JNE_K, 1, 0, NEXT, 0))
            else:
                # any requested bit the rule denies
                out.append((ALU32_AND_K, 1, 0, 0, mask))
                out.append((JMP32_JEQ_K, 1, 0, NEXT, 0))
        major, minor = rule.get("major"), rule.get("minor")
        if major is not None and major != -1:
            out.append((JMP32_JNE_K, 4, 0, NEXT, major))
        if minor is not None and minor != -1:
            out.append((JMP32_JNE_K, 5, 0, NEXT, minor))
    out.append((ALU64_MOV_K, 0, 0, 0, allow))
    out.append((EXIT, 0, 0, 0, 0))
    n = len(out)
    return [insn(c, d, s, (n - i - 1) if o is NEXT else o, imm) for i, (c, d, s, o, imm) in enumerate(out)]


def assemble(rules, default_allow=True):
    """The program for a linux.resources.devices list, as packed struct bpf_insn bytes."""
    prog = [
        insn(LDX_MEM_W, 2, 1, 0),        # w2 = ctx->access_type
        insn(ALU32_AND_K, 2, 0, 0, 0xFFFF),  # w2 = type
        insn(LDX_MEM_W, 3, 1, 0),        # w3 = ctx->access_type
        insn(ALU32_RSH_K, 3, 0, 0, 16),  # w3 = access
        insn(LDX_MEM_W, 4, 1, 4),        # w4 = ctx->major
        insn(LDX_MEM_W, 5, 1, 8),        # w5 = ctx->minor
    ]
    for rule in reversed(rules):
        prog.extend(_rule_block(rule))
        if (rule.get("type") or "a") == "a":
            break  # matches everything: earlier rules can never decide
    else:
        prog.append(insn(ALU64_MOV_K, 0, 0, 0, 1 if default_allow else 0))
        prog.append(insn(EXIT))
    return b"".join(prog)


def apply(cgroup_dir, rules):
    """Load the program for `rules` and attach it to cgroup_dir (replacing ours, if any)."""
    import posix

    from ocirun import kernel
    from ocirun.errors import os_error

    prog = assemble(rules)
    try:
        prog_fd = kernel.bpf_prog_load(kernel.BPF_PROG_TYPE_CGROUP_DEVICE, prog, "Apache-2.0")
    except OSError as e:
        raise os_error("load the cgroup v2 device program (linux.resources.devices)", e) from None
    try:
        dfd = posix.open(cgroup_dir, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
        try:
            kernel.bpf_prog_attach(dfd, prog_fd, kernel.BPF_CGROUP_DEVICE, 0)
        finally:
            posix.close(dfd)
    except OSError as e:
        raise os_error(f"attach the device program to {cgroup_dir}", e) from None
    finally:
        posix.close(prog_fd)
