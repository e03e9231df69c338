"""Compile a linux.seccomp profile without the cache (seccomp.build): normalize, compile,
and what the cache entry records of the program (it returns SECCOMP_RET_USER_NOTIF; it
refuses execveat). Imported only on a cache miss: a `run` whose profile is cached does
not read its code."""
from ocirun.errors import ConfigError
from ocirun.seccomp import INFO_NO_EXECVEAT, INFO_NOTIFY


def build(seccomp, native=None):
    """Compile without the cache: -> (program, info, warnings). Logs the warnings."""
    from ocirun.seccomp import compile as _compile
    from ocirun.seccomp import normalize
    from ocirun.seccomp.asm import TooLarge
    from ocirun.seccomp.consts import SECCOMP_RET_USER_NOTIF
    model = normalize.build(seccomp, native)
    try:
        prog = _compile.compile_model(model)
    except TooLarge as e:
        raise ConfigError("linux.seccomp", f"profile too large for one filter "
                          f"({e.args[0]} instructions, the kernel allows 4096)") from None
    if model.warnings:
        from ocirun import log
        for w in model.warnings:
            log.warning(w)
    info = INFO_NOTIFY if _uses_notify(model, SECCOMP_RET_USER_NOTIF) else 0
    if _refuses_execveat(prog, model.arches[0]):
        info |= INFO_NO_EXECVEAT
    return prog, info, tuple(model.warnings)


def _refuses_execveat(prog, native):
    """Whether the program stops execveat(2) on the native architecture, as the
    runtime makes it (linux/trampoline.py: the sealed exec program, AT_EMPTY_PATH):
    the runtime must then have that program load the filter itself, after its own
    execveat, or refuse the container (lifecycle/create.py), since it never falls back
    to a path in the container's /proc (docs/security.md M)."""
    from ocirun.seccomp.arches import load_table
    from ocirun.seccomp.consts import (
        SECCOMP_RET_ACTION_FULL, SECCOMP_RET_ALLOW, SECCOMP_RET_LOG, SECCOMP_RET_USER_NOTIF,
    )
    from ocirun.seccomp.emulator import Program
    nr = load_table(native).NAMES.get("execveat")
    if nr is None:
        return False
    at_empty_path = 0x1000
    ret, _ = Program(prog, native.little).run(nr, native.audit, (3, 0, 0, 0, at_empty_path))
    return ret & SECCOMP_RET_ACTION_FULL not in (SECCOMP_RET_ALLOW, SECCOMP_RET_LOG,
                                                 SECCOMP_RET_USER_NOTIF)


def _uses_notify(model, notif):
    if model.default != notif and all(r.ret != notif for r in model.rules):
        return False        # every action in the tables comes from a rule
    for table in model.tables.values():
        for e in table.values():
            if type(e) is int:
                if e == notif:
                    return True
            elif notif in _tree_actions(e.chains):
                return True
    return False


def _tree_actions(chains):
    """Every action a syscall's tree (ruledb) can return."""
    out = set()
    seen = set()
    todo = [chains]
    while todo:
        n = todo.pop()
        while n is not None and n.prv is not None:
            n = n.prv
        while n is not None:
            if id(n) not in seen:
                seen.add(id(n))
                if n.t_flg:
                    out.add(n.t_act)
                if n.f_flg:
                    out.add(n.f_act)
                todo.append(n.nxt_t)
                todo.append(n.nxt_f)
            n = n.nxt
    return out
