"""Why a call gets its action: the profile's rules evaluated directly (the model),
checked against the compiled program run in the emulator."""
from ocirun.seccomp import arches as _arches
from ocirun.seccomp import compile as _compile
from ocirun.seccomp import emulator, normalize
from ocirun.seccomp.consts import action_name

U32 = 0xFFFFFFFF


def evaluate(model, arch, nr, args=()):
    """-> (ret, index of the deciding rule or None, the comparisons made on the way:
    [(ruledb.Node, result)])."""
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
        return e, _plain_source(model, arch, nr), ()
    ret, src, path = walk(e.chains, args, arch.bits)
    return (model.default if ret is None else ret), src, path


def _test(n, args, bits):
    """A tree node's comparison on `args` (64-bit values)."""
    a = args[n.arg]
    word = (a >> 32 if n.hi else a & U32) if bits == 64 else a & U32
    word &= n.mask
    if n.op == "SCMP_CMP_GT":
        return word > n.datum
    if n.op == "SCMP_CMP_GE":
        return word >= n.datum
    return word == n.datum              # EQ, MASKED_EQ


def walk(chains, args, bits):
    """Walk a syscall's tree (ruledb) as the compiled program does -> (action, rule
    index, path); (None, None, path) when nothing matches (the default action
    applies). `path`: the comparisons made, in order, as (node, result)."""
    path = []
    return _level(chains, args, bits, path) or (None, None, path)


def _level(n, args, bits, path):
    while n.prv is not None:
        n = n.prv
    while n is not None:
        r = _test(n, args, bits)
        path.append((n, r))
        sub = n.nxt_t if r else n.nxt_f
        if sub is not None:
            got = _level(sub, args, bits, path)
            if got is not None:
                return got
        elif r and n.t_flg:
            return n.t_act, n.t_src, path
        elif not r and n.f_flg:
            return n.f_act, n.f_src, path
        n = n.nxt
    return None


def _plain_source(model, arch, nr):
    """The rule behind a constant result: the first rule without conditions (or with
    conditions that compare nothing) naming the call; later ones never count."""
    table = _arches.load_table(arch).NAMES
    for r in model.rules:
        if r.ret == model.default or not any(table.get(n) == nr for n in r.names):
            continue
        for alt in r.alts:
            if all(op == "SCMP_CMP_MASKED_EQ" and not (v if arch.bits == 64 else v & U32)
                   for _i, op, v, _t in alt):
                return r.index
    return None


def _show(node, result, bits):
    word = "" if bits == 32 else (".hi" if node.hi else ".lo")
    op = {"SCMP_CMP_EQ": "==", "SCMP_CMP_GT": ">", "SCMP_CMP_GE": ">=",
          "SCMP_CMP_MASKED_EQ": "=="}[node.op]
    val = f"args[{node.arg}]{word}"
    if node.mask != U32:
        val = f"({val} & {node.mask:#x})"
    return f"{val} {op} {node.datum:#x}: {'yes' if result else 'no'}"


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
    ret, src, path = evaluate(model, arch, nr, args)
    got, count = emulator.Program(prog, model.arches[0].little).run(nr, arch.audit, args)
    lines = [f"{name} ({arch.name} nr {nr}): {action_name(ret)} [0x{ret:08x}]"]
    if src is None:
        lines.append("  because: no rule matches; the default action applies")
    else:
        rule = model.rules[src]
        how = "with its conditions" if path else "without conditions, the first such rule for it"
        lines.append(f"  because: {rule.label} decides, {how}")
    if path:
        lines.append("  walk (libseccomp's order, 32-bit words): " +
                     "; ".join(_show(n, r, arch.bits) for n, r in path))
    lines.append(f"  program: {count} of {len(prog) // 8} instructions executed, "
                 f"returned 0x{got:08x}")
    if got != ret:
        lines.append("  MISMATCH between the rules and the compiled program")
    return lines, got == ret
