"""Why a call gets its action: the profile's rules evaluated directly (the model),
checked against the compiled program run in the emulator."""
from ocirun.seccomp import arches as _arches
from ocirun.seccomp import compile as _compile
from ocirun.seccomp import emulator, normalize
from ocirun.seccomp.consts import action_name

U32 = 0xFFFFFFFF


def _match(op, arg, value, two, bits):
    if bits == 32:
        arg &= U32
    if op == "SCMP_CMP_EQ":
        return arg == value
    if op == "SCMP_CMP_NE":
        return arg != value
    if op == "SCMP_CMP_LT":
        return arg < value
    if op == "SCMP_CMP_LE":
        return arg <= value
    if op == "SCMP_CMP_GT":
        return arg > value
    if op == "SCMP_CMP_GE":
        return arg >= value
    return arg & value == two        # MASKED_EQ: value is the mask


def evaluate(model, arch, nr, args=()):
    """-> (ret, rule index or None, conditions that matched)."""
    args = tuple(args) + (0,) * (6 - len(args))
    if arch.audit == _arches.AUDIT_ARCH_X86_64 and nr != U32:
        # x86_64 and x32 share AUDIT_ARCH_X86_64; the x32 bit picks the ABI
        arch = _arches.ARCHES["x32" if nr & _arches.X32_SYSCALL_BIT else "x86_64"]
        if arch not in model.arches:
            return _compile.BAD_ARCH, None, ()
    e = model.tables[arch.name].get(nr)
    if e is None:
        return model.default, None, ()
    if type(e) is int:
        for r in model.rules:       # the unconditional rule that set it
            if r.ret == e and r.alts == [[]] and _names_nr(r, arch, nr):
                return e, r.index, ()
        return e, None, ()
    for ret, conds, src in e.rules:
        if all(_match(op, args[i], v, two, arch.bits) for i, op, v, two in conds):
            return ret, src, conds
    return e.fallback, e.fallback_src, ()


def _names_nr(rule, arch, nr):
    table = _arches.load_table(arch).NAMES
    if any(table.get(n) == nr for n in rule.names):
        return True
    for mux, subs in normalize.MUX:
        if table.get(mux) == nr and any(n in subs for n in rule.names):
            return True
    return False


def explain(seccomp, syscall, args=(), arch_name=None, native=None):
    """-> (lines of text, ok) where ok says the program agrees with the rules."""
    model = normalize.build(seccomp, native)
    prog = _compile.compile_model(model)
    arch = _arches.ARCHES[arch_name] if arch_name else model.arches[0]
    if arch not in model.arches:
        return [f"{arch.name} is not filtered: every call gets the bad-arch action "
                f"{action_name(_compile.BAD_ARCH)}"], True
    table = _arches.load_table(arch)
    try:
        nr = (syscall if isinstance(syscall, int) else int(syscall, 0)) & U32
    except ValueError:
        nr = None
    if nr is not None:
        tables = [table]
        if arch.audit == _arches.AUDIT_ARCH_X86_64:
            tables = [_arches.load_table(_arches.ARCHES["x32" if nr & _arches.X32_SYSCALL_BIT
                                                        else "x86_64"])]
        name = tables[0].NUMBERS.get(nr, "?")
    else:
        name = syscall
        nr = table.NAMES.get(syscall)
        if nr is None:
            return [f"{syscall}: not a syscall of the {arch.name} ABI"], False
    ret, src, conds = evaluate(model, arch, nr, args)
    got, count = emulator.Program(prog, model.arches[0].little).run(nr, arch.audit, args)
    lines = [f"{name} ({arch.name} nr {nr}): {action_name(ret)} [0x{ret:08x}]"]
    if src is None:
        lines.append("  because: no rule matches; the default action applies")
    else:
        rule = model.rules[src]
        why = " and ".join(f"args[{i}] {op[9:]} {v:#x}" + (f" == {t:#x}" if op.endswith("MASKED_EQ") else "")
                           for i, op, v, t in conds) or "unconditionally"
        lines.append(f"  because: {rule.label} matches {why}")
    lines.append(f"  program: {count} of {len(prog) // 8} instructions executed, "
                 f"returned 0x{got:08x}")
    if got != ret:
        lines.append("  MISMATCH between the rules and the compiled program")
    return lines, got == ret
