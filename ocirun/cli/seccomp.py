"""`ocirun seccomp`: compile, disassemble and explain seccomp profiles."""
import sys

from ocirun.cli import opts
from ocirun.errors import ConfigError, UsageError

HELP = """\
usage: ocirun seccomp compile PROFILE [--arch ARCH]... [--format raw|hex|c]
       ocirun seccomp disasm FILE [--arch ARCH]...
       ocirun seccomp explain PROFILE SYSCALL [ARG...] [--arch ARCH]

PROFILE is a linux.seccomp object or a whole config.json ("-" reads stdin).
compile   print the BPF program (hex: one instruction per line; raw: the bytes of
          struct sock_filter; c: a C array). --arch replaces the profile's
          architectures; the first one is the machine the program is for.
disasm    list a raw BPF program (FILE), or the program compiled from a profile.
explain   the action SYSCALL (a name or number) with ARGs (numbers) gets, the rule
          that decides it, and what the compiled program returns in the emulator.
          --arch picks the ABI (default: this machine's).
"""

SPEC = {"--arch": ("arch", "list"), "--format": ("format", "str")}


def _read(path):
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as f:
        return f.read()


def _profile(data, arch):
    import json
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise ConfigError("", f"profile is not JSON: {e}") from None
    from ocirun.config.nulls import CONFIG, SECCOMP, drop_nulls
    if isinstance(doc, dict) and ("linux" in doc or "ociVersion" in doc):
        doc = drop_nulls(doc, CONFIG).get("linux") or {}  # null = absent, as in create
        if not isinstance(doc, dict):
            raise ConfigError("linux", "must be an object")
        doc = doc.get("seccomp")
        if doc is None:
            raise ConfigError("linux.seccomp", "the config has no seccomp profile")
    else:
        drop_nulls(doc, SECCOMP, "linux.seccomp")
    native = None
    if arch:
        names = []
        for a in arch:
            a = a[10:].lower() if a.upper().startswith("SCMP_ARCH_") else a.lower()
            names.append("SCMP_ARCH_" + a.upper())
        doc = dict(doc, architectures=names)
        native = names[0][10:].lower()
        from ocirun.seccomp.arches import ARCHES
        if native not in ARCHES:
            raise UsageError(f"--arch: unknown architecture `{arch[0]}`")
    return doc, native


def main(g, args):
    if not args:
        sys.stdout.write(HELP)
        return 2
    verb, rest = args[0], args[1:]
    o, pos = opts.parse(rest, SPEC)
    if verb == "compile":
        return _compile(o, pos)
    if verb == "disasm":
        return _disasm(o, pos)
    if verb == "explain":
        return _explain(o, pos)
    raise UsageError(f"seccomp: unknown command `{verb}` (compile, disasm, explain)")


def _compile(o, pos):
    if len(pos) != 1:
        raise UsageError("usage: ocirun seccomp compile PROFILE [--arch ARCH]... [--format raw|hex|c]")
    from ocirun.seccomp import build
    from ocirun.seccomp.arches import ARCHES, native_name
    doc, native = _profile(_read(pos[0]), o.arch)
    prog = build(doc, native)[0]
    little = ARCHES[native or native_name()].little
    fmt = o.format or "hex"
    if fmt == "raw":
        sys.stdout.buffer.write(prog)
    elif fmt in ("hex", "c"):
        from ocirun.seccomp.asm import unpack
        insns = unpack(prog, little)
        if fmt == "hex":
            sys.stdout.write("".join(prog[i:i + 8].hex() + "\n" for i in range(0, len(prog), 8)))
        else:
            lines = [f"/* {len(insns)} instructions */", "struct sock_filter filter[] = {"]
            lines += [f"\t{{ 0x{c:02x}, {jt}, {jf}, 0x{k:08x} }}," for c, jt, jf, k in insns]
            lines.append("};")
            sys.stdout.write("\n".join(lines) + "\n")
    else:
        raise UsageError(f"--format: unknown format `{fmt}` (raw, hex, c)")
    return 0


def _disasm(o, pos):
    if len(pos) != 1:
        raise UsageError("usage: ocirun seccomp disasm FILE")
    from ocirun.seccomp.arches import ARCHES, native_name
    from ocirun.seccomp.disasm import disasm
    data = _read(pos[0])
    native = None
    if data.lstrip()[:1] == b"{":
        from ocirun.seccomp import build
        doc, native = _profile(data, o.arch)
        data = build(doc, native)[0]
    elif len(data) % 8 or not data:
        raise UsageError(f"{pos[0]}: not a BPF program (length {len(data)} is not a multiple of 8)")
    little = ARCHES[native or native_name()].little
    sys.stdout.write("\n".join(disasm(data, little)) + "\n")
    return 0


def _explain(o, pos):
    if len(pos) < 2:
        raise UsageError("usage: ocirun seccomp explain PROFILE SYSCALL [ARG...] [--arch ARCH]")
    from ocirun.seccomp.explain import explain
    doc, _ = _profile(_read(pos[0]), None)
    args = []
    for a in pos[2:]:
        try:
            v = int(a, 0)
        except ValueError:
            raise UsageError(f"explain: argument `{a}` is not a number") from None
        if not 0 <= v < 1 << 64:
            raise UsageError(f"explain: argument `{a}` is not an unsigned 64-bit value")
        args.append(v)
    if len(args) > 6:
        raise UsageError("explain: a syscall has at most 6 arguments")
    arch = None
    if o.arch:
        arch = o.arch[0].lower()
        arch = arch[10:] if arch.startswith("scmp_arch_") else arch
        from ocirun.seccomp.arches import ARCHES
        if arch not in ARCHES:
            raise UsageError(f"--arch: unknown architecture `{o.arch[0]}`")
    lines, ok = explain(doc, pos[1], args, arch)
    sys.stdout.write("\n".join(lines) + "\n")
    return 0 if ok else 1
