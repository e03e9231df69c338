"""linux.seccomp -> per-architecture decision tables (validation included).

Semantics, in the order they are applied (tested in test_seccomp_compile and, against
libseccomp 2.5.4 itself, in test_seccomp_differential):
- The native architecture is always filtered; `architectures` adds to it.
- A rule whose action equals the default action is ignored (libseccomp refuses such
  rules and runc/crun skip them).
- Several `args` in one rule are ANDed. If an index repeats, every condition becomes a
  rule of its own and they are ORed (what runc and crun do).
- On 32-bit ABIs (x86, arm, mips o32/n32, ppc, s390, parisc, x32) an argument is
  compared on its low 32 bits; a value that does not fit is truncated with a warning.
  MASKED_EQ compares (arg & mask) with (valueTwo & mask), as libseccomp does.
- Overlapping rules combine exactly as in libseccomp, which runc, crun and youki load
  the profile into, rule by rule in the profile's order (each name of `names` in turn;
  ruledb.py has the whole of it):
  - the first rule without conditions for a syscall decides it; later rules for that
    syscall, with or without conditions, are dropped, whatever their action (podman's
    profile allows setns in its rule 1 and denies it in rule 10: it is allowed);
  - a rule without conditions after conditional ones replaces them;
  - conditional rules merge into one tree of comparisons per syscall, walked in
    libseccomp's order (higher argument index first, then by operator and value), not
    in the profile's: the first comparison chain that reaches an action decides;
  - a conditional rule that ends where an earlier one ends, with another action, is
    refused (one line naming the rule), as libseccomp refuses it (EEXIST) and runc and
    crun with it.
- socketcall(2)/ipc(2): on ABIs with these multiplexers (x86, mips o32, ppc, ppc64,
  s390, s390x), a rule on a sub-call (socket, shmget, ...) is also a rule on the
  multiplexer, its args[0] condition replaced by `args[0] == sub-call number` and its
  other conditions kept (compared on the multiplexer's own arguments, as libseccomp
  does); the multiplexed form is added first, and overlaps like any other rule.
- A name that no filtered ABI knows is warned about and skipped; a name that only some
  ABIs know is silently skipped on the others.
"""
from ocirun.errors import ConfigError
from ocirun.seccomp import arches as _arches
from ocirun.seccomp.consts import ACTIONS, BPF_MAXINSNS, EPERM, OPERATORS, SECCOMP_RET_USER_NOTIF

FIELD = "linux.seccomp"
U64 = (1 << 64) - 1

# <linux/net.h> SYS_* and <linux/ipc.h> call numbers
SOCKETCALL = {
    "socket": 1, "bind": 2, "connect": 3, "listen": 4, "accept": 5, "getsockname": 6,
    "getpeername": 7, "socketpair": 8, "send": 9, "recv": 10, "sendto": 11, "recvfrom": 12,
    "shutdown": 13, "setsockopt": 14, "getsockopt": 15, "sendmsg": 16, "recvmsg": 17,
    "accept4": 18, "recvmmsg": 19, "sendmmsg": 20,
}
IPC = {
    "semop": 1, "semget": 2, "semctl": 3, "semtimedop": 4, "msgsnd": 11, "msgrcv": 12,
    "msgget": 13, "msgctl": 14, "shmat": 21, "shmdt": 22, "shmget": 23, "shmctl": 24,
}
MUX = (("socketcall", SOCKETCALL), ("ipc", IPC))


class Rule:
    """One validated entry of linux.seccomp.syscalls, conditions already split into
    alternatives (`alts`: a list of AND-lists of (index, op, value, valueTwo))."""
    __slots__ = ("index", "names", "ret", "alts", "label")

    def __init__(self, index, names, ret, alts, label):
        self.index = index
        self.names = names
        self.ret = ret
        self.alts = alts
        self.label = label


class Model:
    __slots__ = ("default", "arches", "tables", "warnings", "rules")

    def __init__(self, default, arches, tables, warnings, rules):
        self.default = default        # SECCOMP_RET_* for unmatched calls
        self.arches = arches          # [Arch], native first
        self.tables = tables          # arch name -> {nr: int ret | ruledb.Sys (its tree)}
        self.warnings = warnings
        self.rules = rules


def rule_label(i, names):
    shown = ", ".join(str(n) for n in names[:3]) + (", ..." if len(names) > 3 else "")
    return f"{FIELD}.syscalls[{i}] ({shown})"


def _int(v, field, what, hi=U64):
    if type(v) is not int:
        raise ConfigError(field, f"{what} must be an integer, not {_show(v)}")
    if v < 0 or v > hi:
        raise ConfigError(field, f"{what} {v} is out of range 0..{hi}")
    return v


def _show(v):
    if v is True or v is False:
        return "a boolean"
    if v is None:
        return "null"
    return f"`{v}`" if isinstance(v, (str, int, float)) else type(v).__name__


def _action(name, errno_ret, field, errno_field):
    if type(name) is not str:
        raise ConfigError(field, f"action must be a string, not {_show(name)}")
    entry = ACTIONS.get(name)
    if entry is None:
        raise ConfigError(field, f"unknown action `{name}`")
    ret, takes_errno = entry
    if errno_ret is not None:
        if not takes_errno:
            raise ConfigError(field, f"{errno_field} is only valid with SCMP_ACT_ERRNO or "
                                     f"SCMP_ACT_TRACE, not `{name}`")
        _int(errno_ret, field, errno_field, 0xFFFF)
        return ret | errno_ret
    return ret | EPERM if takes_errno else ret


def validate(seccomp):
    """Check linux.seccomp; return (default ret, [arch names], [Rule])."""
    if not isinstance(seccomp, dict):
        raise ConfigError(FIELD, "must be an object")
    if "defaultAction" not in seccomp:
        raise ConfigError(FIELD, "defaultAction is required")
    default = _action(seccomp["defaultAction"], seccomp.get("defaultErrnoRet"),
                      f"{FIELD}.defaultAction", "defaultErrnoRet")
    if default == SECCOMP_RET_USER_NOTIF:
        # The runtime's own calls between load and execve would wait on a listener
        # that has not been handed the fd yet.
        raise ConfigError(f"{FIELD}.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action")
    names = []
    archs = seccomp.get("architectures") or []
    if not isinstance(archs, list):
        raise ConfigError(f"{FIELD}.architectures", "must be an array")
    for i, a in enumerate(archs):
        name = a[10:].lower() if isinstance(a, str) and a.startswith("SCMP_ARCH_") else None
        if name not in _arches.ARCHES:
            raise ConfigError(f"{FIELD}.architectures[{i}]", f"unknown architecture {_show(a)}")
        if name not in names:
            names.append(name)
    syscalls = seccomp.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise ConfigError(f"{FIELD}.syscalls", "must be an array")
    rules = []
    for i, s in enumerate(syscalls):
        if not isinstance(s, dict):
            raise ConfigError(f"{FIELD}.syscalls[{i}]", "must be an object")
        sn = s.get("names")
        if not isinstance(sn, list) or not sn or not all(type(n) is str and n for n in sn):
            raise ConfigError(f"{FIELD}.syscalls[{i}]", "names must be a non-empty array of names")
        label = rule_label(i, sn)
        ret = _action(s.get("action"), s.get("errnoRet"), label, "errnoRet")
        args = s.get("args") or []
        if not isinstance(args, list):
            raise ConfigError(label, "args must be an array")
        conds = []
        for j, a in enumerate(args):
            if not isinstance(a, dict):
                raise ConfigError(label, f"args[{j}] must be an object")
            idx = _int(a.get("index"), label, f"args[{j}].index", 5)
            op = a.get("op")
            if op not in OPERATORS:
                raise ConfigError(label, f"unknown operator {_show(op)}")
            value = _int(a.get("value", 0), label, f"args[{j}].value")
            two = _int(a.get("valueTwo", 0), label, f"args[{j}].valueTwo")
            conds.append((idx, op, value, two))
        if len({c[0] for c in conds}) < len(conds):
            alts = [[c] for c in conds]
        else:
            alts = [conds]
        rules.append(Rule(i, sn, ret, alts, label))
    return default, names, rules


def _truncate(conds, rule, arch, warnings):
    out = []
    for idx, op, value, two in conds:
        if value > 0xFFFFFFFF or two > 0xFFFFFFFF:
            warnings.append(f"{rule.label}: arg {idx} value does not fit the 32-bit "
                            f"{arch.name} ABI; only the low 32 bits are compared")
            value &= 0xFFFFFFFF
            two &= 0xFFFFFFFF
        out.append((idx, op, value, two))
    return tuple(out)


def build(seccomp, native=None):
    """Validate and resolve a profile into a Model (the compiler's input): per ABI, the
    rules added one by one in the profile's order, as libseccomp adds them (module doc).
    Raises ConfigError for a rule libseccomp would refuse."""
    default, names, rules = validate(seccomp)
    native = native or _arches.native_name()
    order = [native] + [n for n in names if n != native]
    arch_list = [_arches.ARCHES[n] for n in order]
    warnings = []
    tables = {}
    live = [r for r in rules if r.ret != default]
    all_tables = [_arches.load_table(arch).NAMES for arch in arch_list]
    conflict = None
    muxed = set()
    every = None            # every name libseccomp knows, loaded on the first miss
    for arch, table in zip(arch_list, all_tables):
        get = table.get
        wide = arch.bits == 64
        # libseccomp's multiplexer ABIs are those with socketcall(2): there a sub-call
        # also gets its multiplexed form, and a name the ABI lacks is skipped; on the
        # others a name it knows for some ABI keeps an entry of its own (never in the
        # program), where a later rule can still be refused
        mux = _mux_map(table)
        db = {}             # nr -> ret (a plain rule came first) | ruledb.Sys
        ghosts = {}         # name the ABI lacks -> the same
        trees = []          # keys of db holding a ruledb.Sys
        grown = {}
        try:
            for pos, rule in enumerate(live):
                ret = rule.ret
                plain = rule.alts == [[]]
                if plain:
                    alts = ((),)
                elif wide:
                    alts = [tuple(sorted(c)) for c in rule.alts]
                else:
                    alts = [tuple(sorted(_truncate(c, rule, arch, warnings))) for c in rule.alts]
                skip = ()
                if plain and mux is not None:
                    # a plain rule that names the multiplexer itself, which has no entry
                    # yet: the forms its other names add are all replaced by it (or
                    # dropped after it), and cannot be refused (one action, one
                    # comparison each): no need to build them
                    skip = [table[m] for m, _ in MUX if m in table and table[m] not in db
                            and m in rule.names]
                for name in rule.names:
                    nr = get(name)
                    if mux is not None:
                        m = mux.get(name)
                        if m is not None:
                            muxed.add(name)
                            mux_nr, sub = m
                            for conds in (alts if mux_nr not in skip else ()):
                                mconds = ((0, "SCMP_CMP_EQ", sub, 0),) + tuple(
                                    c for c in conds if c[0] != 0)
                                _add(db, trees, mux_nr, mconds, ret, rule, wide, pos, name, grown)
                        if nr is None:
                            continue
                        d = db
                    elif nr is None:
                        # a plain rule cannot be refused: no need to know the name
                        if not plain:
                            if every is None:
                                from ocirun.seccomp.tables.names import ALL as every
                            if name not in every:
                                continue
                        nr = name
                        d = ghosts
                    else:
                        d = db
                    if plain:
                        e = d.get(nr)
                        if e is None:
                            d[nr] = ret         # the common case: the first rule, plain
                        elif type(e) is not int:
                            _add(d, trees, nr, (), ret, rule, wide, pos, name, grown)
                    else:
                        for conds in alts:
                            _add(d, trees, nr, conds, ret, rule, wide, pos, name, grown)
        except _Refused as e:
            if conflict is None or e.args[0] < conflict[0]:
                conflict = e.args + (arch.name,)
        for nr in trees:
            e = db.get(nr)
            if e is not None and type(e) is not int and e.chains is None:
                db[nr] = e.action
        tables[arch.name] = db
    if conflict is not None:
        pos, name, arch_name = conflict
        raise ConfigError(live[pos].label,
                          f"conflicts with an earlier rule for `{name}` on {arch_name}: the same "
                          f"conditions with another action (libseccomp refuses it: EEXIST)")
    known = muxed.union(*all_tables)
    for rule in live:
        for name in rule.names:
            if name not in known:
                warnings.append(f"{rule.label}: unknown syscall `{name}` skipped")
    return Model(default, arch_list, tables, warnings, rules)


class _Refused(Exception):
    pass


_CHECK_NODES = 256
ruledb = None           # imported by the first conditional rule


_MUX_MAPS = {}


def _mux_map(table):
    """socketcall/ipc sub-call name -> (multiplexer nr, sub-call number), or None for
    an ABI without multiplexers."""
    got = _MUX_MAPS.get(id(table))
    if got is None:
        got = {}
        for m, subs in MUX:
            if m in table:
                for name, sub in subs.items():
                    got[name] = (table[m], sub)
        got = _MUX_MAPS[id(table)] = (got or None, table)    # the table keeps its id
    return got[0]


def _add(db, trees, key, conds, ret, rule, wide, pos, name, grown):
    """One rule into one syscall's entry: an int (a plain rule came first) keeps it.
    A tree's program can grow quadratically with its rules (as libseccomp's does), and
    merging into it more than that: once the nodes added could have doubled it, count
    what it costs, and refuse the profile as soon as that alone exceeds what a filter
    holds."""
    e = db.get(key)
    if type(e) is int:
        return
    global ruledb
    if ruledb is None:
        from ocirun.seccomp import ruledb
    if e is None:
        trees.append(key)
    try:
        ruledb.add(db, key, conds, ret, rule.index, wide)
    except ruledb.Conflict:
        raise _Refused(pos, name) from None
    added, last = grown.get(key, (0, _CHECK_NODES))
    added += 3 * len(conds)
    if added > last:            # counted again once it may have doubled: linear in all
        chains = db[key].chains
        from ocirun.seccomp.compile import units
        last = units(chains, BPF_MAXINSNS) if chains is not None else 0
        if last > BPF_MAXINSNS:
            raise ConfigError(FIELD, f"profile too large for one filter (the argument checks "
                                     f"for `{name}` alone exceed {BPF_MAXINSNS} instructions)")
        added, last = 0, max(last, _CHECK_NODES)
    grown[key] = (added, last)
