"""Model -> classic BPF.

Layout:
    ld arch; jeq AUDIT_ARCH_a -> section a; ...; ret KILL          (bad arch)
    section: ld nr; binary search over nr ranges (jge K); leaves jump straight to a
             shared `ret` or to the argument checks of one syscall
    argument checks, then the shared `ret` instructions
Until a syscall's search reaches its leaf the program uses only ld nr/arch, jge/jeq K
and ret K, which the kernel's constant-action cache (5.11+) can evaluate, so every
syscall with a constant result can be cached.

x86_64 and x32 share AUDIT_ARCH_X86_64 and one search: x32 numbers carry
__X32_SYSCALL_BIT. Numbers of an ABI that is not filtered (x32 calls in an
x86_64-only filter, or the reverse) get the bad-arch action, except nr == -1, which a
tracer sets to skip a call: it gets the default action.
"""
from ocirun.seccomp.arches import X32_SYSCALL_BIT
from ocirun.seccomp.asm import Asm
from ocirun.seccomp.consts import (
    BPF_ABS, BPF_ALU, BPF_AND, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_K, BPF_LD, BPF_RET,
    BPF_W, SECCOMP_DATA_ARCH, SECCOMP_DATA_ARGS, SECCOMP_DATA_NR, SECCOMP_RET_KILL_THREAD,
)

from ocirun.seccomp.consts import COMPILER_VERSION as VERSION  # noqa: E402,F401

LD_ABS = BPF_LD | BPF_W | BPF_ABS
JEQ = BPF_JMP | BPF_JEQ | BPF_K
JGT = BPF_JMP | BPF_JGT | BPF_K
JGE = BPF_JMP | BPF_JGE | BPF_K
AND = BPF_ALU | BPF_AND | BPF_K
RET = BPF_RET | BPF_K
U32 = 0xFFFFFFFF
BAD_ARCH = SECCOMP_RET_KILL_THREAD   # libseccomp's default bad-arch action


class _Gen:
    __slots__ = ("a", "n", "rets", "sec")

    def __init__(self):
        self.a = Asm()
        self.n = 0
        self.rets = {}
        self.sec = None

    def label(self):
        self.n += 1
        return self.n

    def ret(self, value):
        """Label of a `ret value` shared by the current section."""
        self.rets.setdefault(value, None)
        return ("ret", self.sec, value)

    def flush_rets(self):
        for value in self.rets:
            self.a.bind(("ret", self.sec, value))
            self.a.op(RET, value)
        self.rets = {}


def compile_model(model, bad_arch=BAD_ARCH):
    """Return the program as bytes (raises asm.TooLarge past BPF_MAXINSNS).

    Each section (one AUDIT_ARCH) is followed by its own `ret` instructions: its
    jumps stay short, at the cost of a few duplicated returns."""
    g = _Gen()
    a = g.a
    default = model.default
    # group ABIs that share an AUDIT_ARCH (x86_64 + x32)
    sections = {}
    for arch in model.arches:
        sections.setdefault(arch.audit, []).append(arch)
    a.op(LD_ABS, SECCOMP_DATA_ARCH)
    audits = list(sections)
    sec_labels = [("sec", au) for au in audits]
    for i, au in enumerate(audits):
        nxt = g.label()
        a.jump(JEQ, au, sec_labels[i], nxt)
        a.bind(nxt)
    a.op(RET, bad_arch)
    for au, lab in zip(audits, sec_labels):
        g.sec = au
        blocks = []
        a.bind(lab)
        a.op(LD_ABS, SECCOMP_DATA_NR)
        ranges = _ranges(g, model, sections[au], default, bad_arch, blocks)
        _tree(g, ranges, 0, len(ranges))
        for arch, label, entry in blocks:
            a.bind(label)
            _entry(g, arch, entry, default)
        g.flush_rets()
    return a.assemble(model.arches[0].little)


def _ranges(g, model, archs, default, bad_arch, blocks):
    """[(lo, target label)] covering 0..2^32-1, neighbours with equal targets merged."""
    names = {a.name for a in archs}
    dflt = g.ret(default)
    bad = g.ret(bad_arch)
    regions = [(0, dflt)]          # what numbers no rule names get
    if names == {"x86_64"}:
        regions = [(0, dflt), (X32_SYSCALL_BIT, bad), (U32, dflt)]
    elif names == {"x32"}:
        regions = [(0, bad), (X32_SYSCALL_BIT, dflt)]
    points = {}
    rets = g.rets
    sec = g.sec
    for arch in archs:
        for nr, e in model.tables[arch.name].items():
            if type(e) is int:
                if e not in rets:
                    rets[e] = None
                points[nr] = ("ret", sec, e)
            else:
                label = ("args", arch.name, nr)
                blocks.append((arch, label, e))
                points[nr] = label
    # sweep the named numbers in order; region starts are keys too, so a gap between
    # two keys lies in one region
    keys = sorted(set(points).union(r[0] for r in regions))
    out = []
    ri = 0
    last = len(regions) - 1
    end = 0
    for k in keys:
        if k > end:
            t = regions[ri][1]
            if out[-1][1] != t:
                out.append((end, t))
        while ri < last and regions[ri + 1][0] <= k:
            ri += 1
        t = points.get(k) or regions[ri][1]
        if not out or out[-1][1] != t:
            out.append((k, t))
        end = k + 1
    if end <= U32:
        t = regions[ri][1]
        if out[-1][1] != t:
            out.append((end, t))
    return out


def _tree(g, ranges, lo, hi):
    """Binary search: emit `jge` nodes in preorder; leaves are jump targets."""
    if hi - lo == 1:
        return ranges[lo][1]
    a = g.a
    mid = (lo + hi) // 2
    here = g.label()
    a.bind(here)
    idx = len(a.insns)
    a.jump(JGE, ranges[mid][0], None, None)
    left = _tree(g, ranges, lo, mid)
    right = _tree(g, ranges, mid, hi)
    a.insns[idx][1] = right
    a.insns[idx][2] = left
    return here


_JUMPS = {"SCMP_CMP_EQ": JEQ, "SCMP_CMP_MASKED_EQ": JEQ, "SCMP_CMP_GT": JGT, "SCMP_CMP_GE": JGE}


def _level(n):
    """The nodes of n's level (its prv/nxt list), first to last."""
    while n.prv is not None:
        n = n.prv
    nodes = []
    while n is not None:
        nodes.append(n)
        n = n.nxt
    return nodes


def _entry(g, arch, entry, default):
    """Argument checks for one syscall: its tree (ruledb) as the program walks it.
    Each node is one `jeq/jgt/jge K` on one 32-bit word, preceded by a load (and an
    `and` for MASKED_EQ) unless every way in leaves that word in the accumulator.
    A branch with a sub-level jumps to it, one with an action to the shared `ret`, one
    with neither to the next node of the level; past a level's last node the walk goes
    back to the node after its parent, and past the top level to the default action.
    Nodes shared by several chains (64-bit GT/GE/LT/LE) are placed once per
    fall-through target. Units are made after everything they jump to and placed in
    the reverse order, so every jump goes forward and every way into a unit is placed
    before it."""
    memo = {}
    made = []
    ret = g.ret
    label = g.label

    def level(n, fall):
        for n in reversed(_level(n)):
            key = (id(n), fall)
            lab = memo.get(key)
            if lab is None:
                jf = level(n.nxt_f, fall) if n.nxt_f is not None else (
                    ret(n.f_act) if n.f_flg else fall)
                jt = level(n.nxt_t, fall) if n.nxt_t is not None else (
                    ret(n.t_act) if n.t_flg else fall)
                lab = memo[key] = label()
                made.append((lab, n, jt, jf))
            fall = lab
        return fall

    first = level(entry.chains, ret(default))
    a = g.a
    acc_in = {first: None}      # unit label -> (offset, mask) every way in leaves, or None
    for lab, n, jt, jf in reversed(made):
        acc = acc_in.get(lab, 0)
        if acc == 0:
            continue            # nothing jumps here (both branches before it decide)
        base = SECCOMP_DATA_ARGS + 8 * n.arg
        off = base + 4 if n.hi == arch.little else base
        a.bind(lab)
        mask = n.mask
        if acc is None or acc[0] != off or acc[1] not in (mask, U32):
            a.op(LD_ABS, off)
            acc = (off, U32)
        if mask != acc[1]:
            a.op(AND, mask)
        a.jump(_JUMPS[n.op], n.datum, jt, jf)
        out = (off, mask)
        for t in (jt, jf):
            if type(t) is int:
                acc_in[t] = out if acc_in.get(t, out) == out else None


def units(chains, limit):
    """How many comparisons _entry places for a tree (a node once per place it falls
    through to); stops counting past `limit`."""
    seen = set()

    def level(n, fall):
        for n in reversed(_level(n)):
            key = (id(n), fall)
            if key not in seen and len(seen) <= limit:
                if n.nxt_f is not None:
                    level(n.nxt_f, fall)
                if n.nxt_t is not None:
                    level(n.nxt_t, fall)
                seen.add(key)
            fall = key
        return fall

    level(chains, None)
    return len(seen)
