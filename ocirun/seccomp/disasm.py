"""Classic BPF -> text, annotated for seccomp (what a load reads, what a ret does)."""
from ocirun.seccomp import arches as _arches
from ocirun.seccomp.asm import unpack
from ocirun.seccomp.consts import action_name

_CLS = {0: "ld", 1: "ldx", 2: "st", 3: "stx", 4: "alu", 5: "jmp", 6: "ret", 7: "misc"}
_ALU = {0x00: "add", 0x10: "sub", 0x20: "mul", 0x30: "div", 0x40: "or", 0x50: "and",
        0x60: "lsh", 0x70: "rsh", 0x80: "neg", 0x90: "mod", 0xA0: "xor"}
_JMP = {0x10: "jeq", 0x20: "jgt", 0x30: "jge", 0x40: "jset"}
_AUDIT = {}
for _a in _arches.ARCHES.values():
    _AUDIT.setdefault(_a.audit, _a.name)


def _field(k, little):
    if k == 0:
        return "nr"
    if k == 4:
        return "arch"
    if 8 <= k < 16:
        return "instruction_pointer." + ("lo" if (k == 8) == little else "hi")
    if 16 <= k < 64:
        i, half = divmod(k - 16, 8)
        return f"args[{i}]." + ("lo" if (half == 0) == little else "hi")
    return "?"


def disasm(prog, little=None):
    """Return the listing as a list of lines."""
    import sys
    little = (sys.byteorder == "little") if little is None else little
    insns = unpack(prog, little) if isinstance(prog, (bytes, bytearray)) else prog
    out = []
    loaded = None
    for pc, (code, jt, jf, k) in enumerate(insns):
        cls = code & 7
        note = ""
        if cls == 0 and code & 0xE0 == 0x20:
            text = f"ld  [{k}]"
            loaded = _field(k, little)
            note = loaded
        elif cls == 0 and code & 0xE0 == 0x00:
            text, loaded = f"ld  #0x{k:x}", None
        elif cls in (0, 1) and code & 0xE0 == 0x60:
            text, loaded = f"{_CLS[cls]} M[{k}]", None
        elif cls in (0, 1) and code & 0xE0 == 0x80:
            text, loaded = f"{_CLS[cls]} #len", None
        elif cls == 1:
            text = f"ldx #0x{k:x}"
        elif cls in (2, 3):
            text = f"{_CLS[cls]} M[{k}]"
        elif cls == 4:
            src = "x" if code & 8 else f"#0x{k:x}"
            text, loaded = f"{_ALU.get(code & 0xF0, '?')} {src}", None
        elif cls == 5 and code & 0xF0 == 0:
            text = f"ja  {pc + 1 + k}"
        elif cls == 5:
            src = "x" if code & 8 else f"#0x{k:x}"
            text = f"{_JMP.get(code & 0xF0, '?')} {src}, {pc + 1 + jt}, {pc + 1 + jf}"
            if loaded == "arch" and not code & 8 and k in _AUDIT:
                note = "AUDIT_ARCH " + _AUDIT[k]
        elif cls == 6:
            if code & 0x18 == 0x10:
                text = "ret a"
            else:
                text, note = f"ret #0x{k:08x}", action_name(k)
        else:
            text, loaded = ("tax" if code & 0xF8 == 0 else "txa"), None
        out.append((f"{pc:4d}: {text:<34}" + (f"; {note}" if note else "")).rstrip())
    return out
