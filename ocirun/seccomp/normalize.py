"""linux.seccomp -> per-architecture decision tables (validation included).

Semantics, in the order they are applied (each one tested in test_seccomp_normalize):
- The native architecture is always filtered; `architectures` adds to it.
- A rule whose action equals the default action is ignored (libseccomp refuses such
  rules and runc/crun skip them).
- Several `args` in one rule are ANDed. If an index repeats, every condition becomes a
  rule of its own and they are ORed (what runc and crun do).
- On 32-bit ABIs (x86, arm, mips o32/n32, ppc, s390, parisc, x32) an argument is
  compared on its low 32 bits; a value that does not fit is truncated with a warning.
- Overlapping rules: when several rules match a call, the most restrictive action wins,
  in the kernel's own precedence between stacked filters (the action as a signed 32-bit
  value, data included): KILL_PROCESS > KILL_THREAD > TRAP > ERRNO > NOTIFY > TRACE >
  LOG > ALLOW, and ERRNO(1) beats ERRNO(22). A rule with no args always matches.
- socketcall(2)/ipc(2): on ABIs with these multiplexers, an unconditional rule on a
  sub-call (socket, shmget, ...) also covers the multiplexed form (multiplexer nr with
  arg0 == sub-call number). Conditional rules are not carried over: the sub-call's
  arguments live in user memory that seccomp cannot read. A profile that names
  socketcall or ipc itself decides alone what the multiplexer does.
- A name that no filtered ABI knows is warned about and skipped; a name that only some
  ABIs know is silently skipped on the others.
"""
from ocirun.errors import ConfigError
from ocirun.seccomp import arches as _arches
from ocirun.seccomp.consts import ACTIONS, EPERM, OPERATORS, SECCOMP_RET_USER_NOTIF, restrictiveness

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


class Entry:
    """What one syscall number gets on one ABI: `rules` (ret, conds, rule index) tried
    in order, most restrictive first; `fallback` when none matches."""
    __slots__ = ("rules", "fallback", "fallback_src")

    def __init__(self, rules, fallback, fallback_src):
        self.rules = rules
        self.fallback = fallback
        self.fallback_src = fallback_src


class Model:
    __slots__ = ("default", "arches", "tables", "warnings", "rules")

    def __init__(self, default, arches, tables, warnings, rules):
        self.default = default        # SECCOMP_RET_* for unmatched calls
        self.arches = arches          # [Arch], native first
        self.tables = tables          # arch name -> {nr: int ret | Entry}
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


def _finish(cands, default):
    """[(ret, conds, src)] for one syscall -> int ret or Entry (see module doc)."""
    if len(cands) == 1 and not cands[0][1]:
        return cands[0][0]                      # the common case: one plain rule
    fallback = None
    fsrc = None
    for ret, conds, src in cands:
        if not conds and (fallback is None or restrictiveness(ret) < restrictiveness(fallback)):
            fallback, fsrc = ret, src
    if fallback is None:
        fallback = default
        limit = None
    else:
        limit = restrictiveness(fallback)
    kept = []
    seen = set()
    for ret, conds, src in sorted(cands, key=lambda c: restrictiveness(c[0])):
        if not conds or (limit is not None and restrictiveness(ret) >= limit):
            continue
        if conds in seen:      # same conditions, less restrictive action: never reached
            continue
        seen.add(conds)
        kept.append((ret, conds, src))
    if not kept:
        return fallback if fsrc is not None else None
    return Entry(kept, fallback, fsrc)


def build(seccomp, native=None):
    """Validate and resolve a profile into a Model (the compiler's input)."""
    default, names, rules = validate(seccomp)
    native = native or _arches.native_name()
    order = [native] + [n for n in names if n != native]
    arch_list = [_arches.ARCHES[n] for n in order]
    warnings = []
    tables = {}
    live = [r for r in rules if r.ret != default]
    explicit = {n for r in rules for n in r.names if n in ("socketcall", "ipc")}
    names_by_arch = []
    muxed = set()
    for arch in arch_list:
        table = _arches.load_table(arch).NAMES
        names_by_arch.append(table)
        get = table.get
        wide = arch.bits == 64
        cands = {}
        muxes = [(table[m], subs) for m, subs in MUX if m in table and m not in explicit]
        for rule in live:
            plain = rule.alts == [[]]
            if plain:
                items = [(rule.ret, (), rule.index)]
            elif wide:
                items = [(rule.ret, tuple(c), rule.index) for c in rule.alts]
            else:
                items = [(rule.ret, _truncate(c, rule, arch, warnings), rule.index)
                         for c in rule.alts]
            for name in rule.names:
                nr = get(name)
                if nr is not None:
                    lst = cands.get(nr)
                    # lists are shared between names: never extend one in place
                    cands[nr] = items if lst is None else lst + items
            if muxes and plain:
                for mux_nr, subs in muxes:
                    for name in rule.names:
                        sub = subs.get(name)
                        if sub is not None:
                            muxed.add(name)
                            cands[mux_nr] = cands.get(mux_nr, []) + [
                                (rule.ret, ((0, "SCMP_CMP_EQ", sub, 0),), rule.index)]
        out = {}
        for nr, lst in cands.items():
            if len(lst) == 1 and not lst[0][1]:
                e = lst[0][0]           # the common case: one plain rule
            else:
                e = _finish(lst, default)
            if e is not None and e != default:
                out[nr] = e
        tables[arch.name] = out
    known = muxed.union(*names_by_arch)
    for rule in live:
        for name in rule.names:
            if name not in known:
                warnings.append(f"{rule.label}: unknown syscall `{name}` skipped")
    return Model(default, arch_list, tables, warnings, rules)
