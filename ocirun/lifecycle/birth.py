"""How the container init is born, and the network namespace made ahead of it.

Three births (linux/init.py has an entry point for each):
  - a fork (forked_main): the general case; the init waits for GO;
  - the runtime's memory shared (clone_vm, shared_run_main) for `run`: no copy of the
    runtime, which is suspended until the init's execve;
  - the same for `create` (shared_create_main): the init then execs the waiter, a small
    program that waits for `start` (linux/trampoline.py).
Without a new user namespace the runtime creates (or joins) the pid and time namespaces
itself before the birth, so the init is pid 1 without a second fork; a user namespace
must own them, so then the init forks again.
"""
import posix

from ocirun import kernel, timings
from ocirun.errors import OciError
from ocirun.kernel import CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWTIME
from ocirun.lifecycle import steps
from ocirun.linux import init as init_mod
from ocirun.linux import trampoline

EARLY = CLONE_NEWPID | CLONE_NEWTIME  # namespaces that apply to children only


class Birth:
    """pid: the child's; joined: whether it is in its cgroup already; shared: whether
    it shared our memory (and has exec'd by the time we run again)."""

    __slots__ = ("pid", "joined", "shared")

    def __init__(self, pid, joined, shared):
        self.pid = pid
        self.joined = joined
        self.shared = shared


def give_birth(plan, ctx, chan, manager, linux, for_run):
    """Start the init (ctx: its Context; chan: our end of its channel, which the child
    closes). Shares our memory where can_share_memory allows, else forks."""
    share = can_share_memory(plan, ctx, linux) and (for_run or _prepare_waiter(plan, ctx))
    saved = []
    try:
        if not plan.userns_new:
            ctx.parent_did = _enter_early_namespaces(plan, ctx, saved)
        if share:
            pid = _clone_vm(plan, ctx, chan, manager, saved, for_run)
            if pid:
                return Birth(pid, True, True)
            if ctx.waiter_fd is not None:  # a forked init waits for `start` itself
                posix.close(ctx.waiter_fd)
                ctx.waiter_fd = None
        pid, self_join = manager.fork() if manager is not None else (posix.fork(), ())
        if pid == 0:
            # Our copy of the runtime's ends must go, or a runtime that dies would
            # leave the init waiting on a pipe that never reports EOF.
            chan.close()
            for fd, _ in saved:
                posix.close(fd)
            ctx.cgroup_join = self_join or ()
            init_mod.forked_main(plan, ctx)
    finally:
        steps.back_to_own_namespaces(saved)  # for our other children
    return Birth(pid, manager is None or self_join is not None, False)


def can_share_memory(plan, ctx, linux):
    """Whether the init may start with _clone_vm (for `create`, see _prepare_waiter
    too): the C extension has it (x86_64, glibc, CPython before 3.14); the init needs
    nothing from us before its execve (we are suspended until then); no process of
    another container can see it, since whatever could reach its memory (ptrace,
    /proc/PID/mem) would reach ours: it must not join an existing pid namespace; and
    nothing the kernel keeps per memory or per clone would differ: no oomScoreAdj (per
    memory: ours would change with it, and could not come back down without
    CAP_SYS_RESOURCE), no memory limit (the OOM killer kills every process that shares
    the memory of the one it picks: an init that runs out in its cgroup while setting
    up would take the runtime with it), no time namespace (before Linux 6.0 a CLONE_VM
    child does not enter the one made for children); and a process that stays root,
    so that only root can signal the init while it shares our memory."""
    if (kernel.clone_vm is None or init_mod.needs_runtime(plan, ctx)
            or plan.oom_score_adj is not None):
        return False
    if plan.uid != 0 or plan.gid != 0:
        # After its setresuid the init, still in our memory, can be signalled by any
        # host process of that uid: SIGSTOP would hold us in clone_vm, SIGKILL could
        # stop it halfway through changing one of our objects.
        return False
    if plan.ns_new & CLONE_NEWTIME:
        return False
    for _, _, flag in plan.ns_join:
        if flag & EARLY:
            return False
    return not memory_limited(linux)


def _prepare_waiter(plan, ctx):
    """For `create`: an init that shares our memory cannot wait for `start` (we are
    suspended until its execve), so it sets itself up entirely and execs the waiter
    (linux/trampoline.py), which waits on the exec fifo, loads a noNewPrivileges
    filter and execs the entrypoint. Its memfd goes in ctx.waiter_fd; False where
    there is none: an AppArmor profile or SELinux label (it would apply at the waiter's
    execve, not the entrypoint's), no waiter for this machine, no executable memfd."""
    if plan.apparmor or plan.selinux or not trampoline.waiter_supported():
        return False
    try:
        ctx.waiter_fd = trampoline.prepare(kernel.KERNEL, trampoline.waiter(
            ctx.fifo_fd, ctx.seccomp if plan.nnp else None))
    except OSError:
        return False
    return ctx.waiter_fd is not None


def _clone_vm(plan, ctx, chan, manager, saved, for_run):
    """Start the init without copying the runtime (kernel.clone_vm, _sys.c): it runs
    in our memory, born in its cgroup v2 directory, up to its execve, while we wait.
    That spares the ~800 copy-on-write faults a fork of this process costs. Returns
    its pid, or 0 where it cannot be done (no cgroup v2 directory to be born in, a
    second thread in this process, an old kernel): the caller forks instead."""
    cg_fd = -1
    if manager is not None:
        targets = manager.birth_targets()
        if targets is None:
            return 0
        cg_fd, ctx.cgroup_join = targets
    main = init_mod.shared_run_main if for_run else init_mod.shared_create_main

    def init():
        # The child's fd table is a copy: closing fds here leaves ours open.
        chan.close()
        for fd, _ in saved:
            posix.close(fd)
        return main(plan, ctx)

    try:
        return kernel.clone_vm(init, cg_fd, ctx.chan.wfd)
    except OSError:
        return 0
    finally:
        if cg_fd >= 0:
            posix.close(cg_fd)
        ctx.cgroup_join = ()


def _enter_early_namespaces(plan, ctx, saved):
    """Create or join the pid and time namespaces for our children (they only ever
    apply to children); `saved` gets fds of our own, to come back after the birth."""
    did = 0
    joined = [(path, flag) for _, path, flag in plan.ns_join if flag & EARLY]
    new = plan.ns_new & EARLY
    saved.extend(steps.save_own_namespaces(new | sum(flag for _, flag in joined)))
    for path, flag in joined:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
        try:
            kernel.setns(fd, flag)
        except OSError as e:
            raise OciError(f"join namespace `{path}`: {e.strerror}") from None
        finally:
            posix.close(fd)
        did |= flag
    new &= ~did
    if new:
        kernel.unshare(new)
        if new & CLONE_NEWTIME and plan.time_offsets:
            from ocirun.linux import procfs
            try:
                procfs.write(kernel.KERNEL, ctx.proc_fd, "self/timens_offsets", plan.time_offsets)
            except OSError as e:
                raise OciError(f"linux.timeOffsets: write timens_offsets: {e.strerror}") from None
        did |= new
    return did


class NetnsAhead:
    """The container's network namespace, made by a helper on another CPU while we
    validate, plan and prepare seccomp, the cgroup and the state (_sys.c netns_ahead:
    unshare of a network namespace costs ~0.5 ms here, setns to it microseconds).

    It starts from the parsed, not yet validated config, so only a config that asks for
    a new network namespace, no user namespace (a new or a joined one would have to own
    it) and no memory limit starts a helper; init_unshares_netns checks the plan again
    before the init gets the fd. (The kernel charges a namespace's memory, ~200 KiB, to
    the memory cgroup of the task that creates it: the helper's is ours, so a container
    with a memory limit has its init create its own, inside the limit.) A helper that
    fails leaves the init to unshare one, as without it."""

    __slots__ = ("pending", "fd")

    def __init__(self):
        self.pending = False
        self.fd = None

    def start(self, spec):
        if kernel.netns_ahead is None or not asks_new_netns_only(spec):
            return
        # pending before the call: an interrupt right after it still has take() reap it
        self.pending = True
        try:
            kernel.netns_ahead()
        except OSError:
            self.pending = False

    def take(self):
        """The namespace's fd (ours to close), or None."""
        if self.pending:
            self.pending = False
            try:
                self.fd = kernel.netns_take()
            except OSError:
                self.fd = None
            timings.mark("network namespace made ahead (wait)")
        return self.fd

    def close(self):
        self.take()
        if self.fd is not None:
            posix.close(self.fd)
            self.fd = None


def asks_new_netns_only(spec):
    """linux.namespaces of a config not yet validated: a new network namespace, no
    user namespace at all, and no memory limit."""
    try:
        linux = spec["linux"]
        entries = [(ns["type"], ns.get("path")) for ns in linux["namespaces"]]
        limited = memory_limited(linux)
    except (KeyError, TypeError, AttributeError):
        return False
    return (any(typ == "network" and not path for typ, path in entries)
            and not any(typ == "user" for typ, _ in entries) and not limited)


def memory_limited(linux):
    """Whether linux.resources limits the container's memory (v1 or unified)."""
    resources = linux.get("resources") or {}
    memory = resources.get("memory") or {}
    if any(type(memory.get(k)) is int and memory[k] > 0 for k in ("limit", "swap", "kernel")):
        return True
    return (resources.get("unified") or {}).get("memory.max", "max") != "max"


def init_unshares_netns(plan):
    return (plan.ns_new & CLONE_NEWNET and not plan.userns_new
            and not any(typ == "user" for typ, _, _ in plan.ns_join))
