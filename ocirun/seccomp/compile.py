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
            _entry(g, arch, entry)
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


def _offsets(arch, idx):
    base = SECCOMP_DATA_ARGS + 8 * idx
    return (base, base + 4) if arch.little else (base + 4, base)   # (lo, hi)


def _entry(g, arch, entry):
    """Argument checks for one syscall: rules in order, first match returns."""
    rules = entry.rules
    fallback = g.ret(entry.fallback)
    i = 0
    while i < len(rules):
        # a run of single EQ conditions on one argument: one load, then a switch
        j = i
        ret, conds, _ = rules[i]
        if len(conds) == 1 and conds[0][1] == "SCMP_CMP_EQ":
            idx = conds[0][0]
            while (j + 1 < len(rules) and len(rules[j + 1][1]) == 1 and
                   rules[j + 1][1][0][1] == "SCMP_CMP_EQ" and rules[j + 1][1][0][0] == idx):
                j += 1
        nxt = fallback if j == len(rules) - 1 else g.label()
        if j > i:
            _switch(g, arch, idx, rules[i:j + 1], nxt)
        else:
            _conds(g, arch, conds, g.ret(ret), nxt)
        if nxt != fallback:
            g.a.bind(nxt)
        i = j + 1


def _switch(g, arch, idx, rules, fail):
    a = g.a
    lo_off, hi_off = _offsets(arch, idx)
    cases = {}
    for ret, conds, _ in rules:
        cases.setdefault(conds[0][2], ret)     # first (most restrictive) wins
    if arch.bits == 64:
        by_hi = {}
        for v, ret in cases.items():
            by_hi.setdefault(v >> 32, []).append((v & U32, ret))
        a.op(LD_ABS, hi_off)
        his = list(by_hi)
        labels = [g.label() for _ in his]
        for n, h in enumerate(his):
            last = n == len(his) - 1
            nxt = fail if last else g.label()
            a.jump(JEQ, h, labels[n], nxt)
            if not last:
                a.bind(nxt)
        groups = [(labels[n], by_hi[h]) for n, h in enumerate(his)]
    else:
        groups = [(None, [(v, ret) for v, ret in cases.items()])]
    for label, vals in groups:
        if label is not None:
            a.bind(label)
        a.op(LD_ABS, lo_off)
        for n, (v, ret) in enumerate(vals):
            last = n == len(vals) - 1
            nxt = fail if last else g.label()
            a.jump(JEQ, v, g.ret(ret), nxt)
            if not last:
                a.bind(nxt)


def _conds(g, arch, conds, ok, fail):
    """AND of conditions: all true -> ok, any false -> fail."""
    acc = None
    for n, (idx, op, value, two) in enumerate(conds):
        last = n == len(conds) - 1
        p = ok if last else g.label()
        acc = _cond(g, arch, idx, op, value, two, p, fail, acc)
        if not last:
            g.a.bind(p)


def _cond(g, arch, idx, op, value, two, p, f, acc):
    """One comparison of args[idx] (64-bit, or the low word on 32-bit ABIs).
    Returns the word offset the accumulator holds on the pass path, or None."""
    a = g.a
    lo_off, hi_off = _offsets(arch, idx)
    wide = arch.bits == 64

    def ld(off):
        if acc != off:
            a.op(LD_ABS, off)

    if op == "SCMP_CMP_MASKED_EQ":
        mask, datum = value, two
        if wide and (mask >> 32 or datum >> 32):
            ld(hi_off)
            a.op(AND, mask >> 32)
            n = g.label()
            a.jump(JEQ, datum >> 32, n, f)
            a.bind(n)
            acc = None
        if (mask & U32) != U32:
            ld(lo_off)
            a.op(AND, mask & U32)
            a.jump(JEQ, datum & U32, p, f)
            return None
        ld(lo_off)
        a.jump(JEQ, datum & U32, p, f)
        return lo_off
    lo = value & U32
    if wide:
        hi = value >> 32
        ld(hi_off)
        n = g.label()
        if op == "SCMP_CMP_EQ":
            a.jump(JEQ, hi, n, f)
        elif op == "SCMP_CMP_NE":
            a.jump(JEQ, hi, n, p)
        elif op in ("SCMP_CMP_GT", "SCMP_CMP_GE"):
            m = g.label()
            a.jump(JGT, hi, p, m)
            a.bind(m)
            a.jump(JEQ, hi, n, f)
        else:   # LT, LE
            m = g.label()
            a.jump(JGT, hi, f, m)
            a.bind(m)
            a.jump(JEQ, hi, n, p)
        a.bind(n)
    if wide or acc != lo_off:
        a.op(LD_ABS, lo_off)
    if op == "SCMP_CMP_EQ":
        a.jump(JEQ, lo, p, f)
        return lo_off
    if op == "SCMP_CMP_NE":
        a.jump(JEQ, lo, f, p)
    elif op == "SCMP_CMP_GT":
        a.jump(JGT, lo, p, f)
    elif op == "SCMP_CMP_GE":
        a.jump(JGE, lo, p, f)
    elif op == "SCMP_CMP_LT":
        a.jump(JGE, lo, f, p)
    else:   # LE
        a.jump(JGT, lo, f, p)
    return None
