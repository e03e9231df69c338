"""Classic-BPF interpreter over struct seccomp_data.

run(prog, nr, arch, args=(), ip=0) -> (return value, instructions executed). It
implements every instruction the kernel accepts in a seccomp filter
(seccomp_check_filter: loads from seccomp_data, scratch memory, ALU, jumps, ret) and
rejects anything else, an out-of-range load or jump, or running off the end, with
EmulationError, like the kernel would refuse the filter.
"""
import struct
import sys

from ocirun.seccomp import asm as _asm
from ocirun.seccomp.consts import BPF_MEMWORDS, SECCOMP_DATA_SIZE

U32 = 0xFFFFFFFF


class EmulationError(Exception):
    pass


def seccomp_data(nr, arch, args=(), ip=0, little=True):
    """Pack struct seccomp_data (args: up to six 64-bit values)."""
    args = list(args) + [0] * (6 - len(args))
    fmt = "<iIQ6Q" if little else ">iIQ6Q"
    if nr > 0x7FFFFFFF:
        nr -= 1 << 32
    return struct.pack(fmt, nr, arch, ip, *args)


class Program:
    """A decoded program, reusable over many runs."""
    __slots__ = ("insns", "little")

    def __init__(self, prog, little=None):
        """`little`: byte order of the program and of seccomp_data (the kernel's);
        default: this machine's."""
        self.little = (sys.byteorder == "little") if little is None else little
        if isinstance(prog, (bytes, bytearray)):
            self.insns = _asm.unpack(prog, self.little)
        else:
            self.insns = list(prog)
        if not self.insns or len(self.insns) > 4096:
            raise EmulationError(f"program length {len(self.insns)} is not in 1..4096")

    def run(self, nr, arch, args=(), ip=0, trace=None):
        """-> (return value, instructions executed); `trace` (a list) gets each pc."""
        return self.run_data(seccomp_data(nr, arch, args, ip, self.little), trace)

    def run_data(self, data, trace=None):
        insns = self.insns
        n = len(insns)
        order = "little" if self.little else "big"
        A = X = 0
        mem = [0] * BPF_MEMWORDS
        pc = 0
        count = 0
        while True:
            if pc >= n:
                raise EmulationError("ran off the end of the program")
            code, jt, jf, k = insns[pc]
            count += 1
            if trace is not None:
                trace.append(pc)
            pc += 1
            cls = code & 0x07
            if cls == 0x00:            # BPF_LD
                mode = code & 0xE0
                if mode == 0x20 and code & 0x18 == 0:     # BPF_W | BPF_ABS
                    if k & 3 or k + 4 > SECCOMP_DATA_SIZE:
                        raise EmulationError(f"bad load offset {k}")
                    A = int.from_bytes(data[k:k + 4], order)
                elif mode == 0x00:     # BPF_IMM
                    A = k
                elif mode == 0x60:     # BPF_MEM
                    A = mem[_memidx(k)]
                elif mode == 0x80:     # BPF_LEN
                    A = SECCOMP_DATA_SIZE
                else:
                    raise EmulationError(f"unsupported load 0x{code:02x}")
            elif cls == 0x01:          # BPF_LDX
                mode = code & 0xE0
                if mode == 0x00:
                    X = k
                elif mode == 0x60:
                    X = mem[_memidx(k)]
                elif mode == 0x80:
                    X = SECCOMP_DATA_SIZE
                else:
                    raise EmulationError(f"unsupported ldx 0x{code:02x}")
            elif cls == 0x02:          # BPF_ST
                mem[_memidx(k)] = A
            elif cls == 0x03:          # BPF_STX
                mem[_memidx(k)] = X
            elif cls == 0x04:          # BPF_ALU
                op = code & 0xF0
                src = X if code & 0x08 else k
                if op == 0x00:
                    A = (A + src) & U32
                elif op == 0x10:
                    A = (A - src) & U32
                elif op == 0x20:
                    A = (A * src) & U32
                elif op == 0x30:
                    if src == 0:
                        return 0, count       # the kernel's BPF returns 0 on x/0
                    A = A // src
                elif op == 0x90:
                    if src == 0:
                        return 0, count
                    A = A % src
                elif op == 0x40:
                    A |= src
                elif op == 0x50:
                    A &= src
                elif op == 0xA0:
                    A ^= src
                elif op == 0x60:
                    A = (A << src) & U32 if src < 32 else 0
                elif op == 0x70:
                    A = A >> src if src < 32 else 0
                elif op == 0x80:
                    A = (-A) & U32
                else:
                    raise EmulationError(f"unsupported alu 0x{code:02x}")
            elif cls == 0x05:          # BPF_JMP
                op = code & 0xF0
                if op == 0x00:
                    pc += k
                else:
                    src = X if code & 0x08 else k
                    if op == 0x10:
                        cond = A == src
                    elif op == 0x20:
                        cond = A > src
                    elif op == 0x30:
                        cond = A >= src
                    elif op == 0x40:
                        cond = bool(A & src)
                    else:
                        raise EmulationError(f"unsupported jump 0x{code:02x}")
                    pc += jt if cond else jf
            elif cls == 0x06:          # BPF_RET
                if code & 0x18 == 0x10:
                    return A, count
                if code & 0x18 == 0x00:
                    return k, count
                raise EmulationError(f"unsupported ret 0x{code:02x}")
            else:                      # BPF_MISC
                if code & 0xF8 == 0x00:
                    X = A
                elif code & 0xF8 == 0x80:
                    A = X
                else:
                    raise EmulationError(f"unsupported misc 0x{code:02x}")


def _memidx(k):
    if k >= BPF_MEMWORDS:
        raise EmulationError(f"scratch memory index {k} out of range")
    return k


def run(prog, nr, arch, args=(), ip=0, little=None):
    return Program(prog, little).run(nr, arch, args, ip)
