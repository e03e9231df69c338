"""Classic-BPF assembler with symbolic labels and long-jump trampolines.

Conditional jumps hold 8-bit forward offsets. When a target is more than 255
instructions away, a trampoline is inserted within reach: a copy of the target if it
is a `ret` (one instruction, and one fewer executed), else `ja target` (32-bit offset).
Trampolines go far forward (with some slack), only after an instruction that does not
fall through, and are shared by later jumps to the same target; inserting one can push
other jumps out of reach, so we iterate to a fixed point.
"""
import struct
import sys

from ocirun.seccomp.consts import BPF_JA, BPF_JMP, BPF_MAXINSNS, BPF_RET

_JMP_JA = BPF_JMP | BPF_JA
_PACK = {True: struct.Struct("<HBBI"), False: struct.Struct(">HBBI")}
_SLACK = 24


class TooLarge(Exception):
    pass


class Asm:
    """Emit with `op(code, k)`, `jump(code, k, jt, jf)` (labels), `ja(label)`,
    `bind(label)`; `assemble()` -> bytes of struct sock_filter."""
    __slots__ = ("insns", "labels")

    def __init__(self):
        self.insns = []      # [code, jt, jf, k]; jt/jf (or k for ja) are labels
        self.labels = {}     # label -> index of the instruction it names

    def bind(self, label):
        self.labels[label] = len(self.insns)

    def op(self, code, k=0):
        self.insns.append([code, None, None, k])

    def jump(self, code, k, jt, jf):
        self.insns.append([code, jt, jf, k])

    def ja(self, label):
        self.insns.append([_JMP_JA, None, None, label])

    def _insert(self, p, insn, label):
        self.insns.insert(p, insn)
        labels = self.labels
        for name, pos in labels.items():
            if pos >= p:
                labels[name] = pos + 1
        labels[label] = p

    def resolve(self):
        """Insert trampolines until every conditional offset fits in 8 bits."""
        insns = self.insns
        labels = self.labels
        tramp = {}          # target label -> [trampoline labels]
        final = {}          # trampoline label -> its target
        n_tramp = 0
        i = 0
        while i < len(insns):
            ins = insns[i]
            if ins[1] is None:
                i += 1
                continue
            moved = False
            for slot in (1, 2):
                target = ins[slot]
                if labels[target] - i - 1 <= 255:
                    continue
                target = final.get(target, target)     # never chain trampolines
                best = None
                for t in tramp.get(target, ()):
                    if 0 <= labels[t] - i - 1 <= 255:
                        best = t
                if best is None:
                    # far ahead, so later jumps can share it, but with some slack so
                    # the next insertions do not push it out of reach again; only
                    # where nothing falls through into it
                    if len(insns) > BPF_MAXINSNS:
                        raise TooLarge(len(insns))
                    p = min(i + 256 - _SLACK, len(insns))
                    while p > i + 1 and not _no_fallthrough(insns[p - 1]):
                        p -= 1
                    real = insns[labels[target]]
                    copy = list(real) if real[0] & 0x07 == BPF_RET else [_JMP_JA, None, None, target]
                    n_tramp += 1
                    best = ("tramp", n_tramp)
                    self._insert(p, copy, best)
                    tramp.setdefault(target, []).append(best)
                    final[best] = target
                    moved = True
                ins[slot] = best
            if moved:
                i = max(0, i - 257)
            else:
                i += 1
        return n_tramp

    def assemble(self, little=None):
        """-> bytes, in the byte order of the kernel that loads it (default: ours)."""
        flat = self._flatten()
        if flat is None:            # some jump is too far: add trampolines, then again
            self.resolve()
            flat = self._flatten()
        n = len(flat) // 4
        if n > BPF_MAXINSNS:
            raise TooLarge(n)
        order = "<" if (sys.byteorder == "little" if little is None else little) else ">"
        return struct.pack(order + "HBBI" * n, *flat)

    def _flatten(self):
        """[code, jt, jf, k, ...] with offsets resolved, or None if one does not fit."""
        labels = self.labels
        out = []
        add = out.extend
        for i, (code, jt, jf, k) in enumerate(self.insns):
            if jt is not None:
                t = labels[jt] - i - 1
                f = labels[jf] - i - 1
                if t > 255 or f > 255:
                    return None
                add((code, t, f, k))
            elif code == _JMP_JA:
                add((code, 0, 0, labels[k] - i - 1))
            else:
                add((code, 0, 0, k))
        return out


def _no_fallthrough(ins):
    return ins[1] is not None or ins[0] == _JMP_JA or ins[0] & 0x07 == BPF_RET


def unpack(prog, little=None):
    """bytes -> [(code, jt, jf, k)]"""
    if len(prog) % 8:
        raise ValueError("a BPF program is a multiple of 8 bytes")
    return list(_PACK[sys.byteorder == "little" if little is None else little].iter_unpack(prog))
