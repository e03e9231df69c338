"""The child of `exec`: joins the container's namespaces and root, then becomes the
new process. Shares the privilege and exec steps with the container init; its channel
gets GO with its host pid (sync.py), then the execve closes it."""
import posix

from ocirun.kernel import PR_SET_DUMPABLE, PR_SET_PDEATHSIG
from ocirun.linux import init as init_mod
from ocirun.linux import procfs, trampoline
from ocirun.linux.init import SIGKILL, InitError, _step
from ocirun.linux.sync import Msg, ProtocolError


def exec_main(plan, ctx):
    """After the fork of lifecycle/exec.py. Never returns: execve or _exit."""
    try:
        _run(plan, ctx)
    except BaseException as e:
        init_mod.report_and_exit(ctx.chan, e)
    posix._exit(1)


def _run(plan, ctx):
    k = ctx.k
    # Non-dumpable before entering: a process of the container must not reach our
    # /proc/PID/exe, the host's interpreter (CVE-2019-5736).
    k.prctl(PR_SET_DUMPABLE, 0)
    k.prctl(PR_SET_PDEATHSIG, SIGKILL)
    init_mod.join_cgroups(k, ctx.cgroup_join)
    try:
        ctx.host_pid = int(ctx.chan.expect(Msg.GO))  # we are in the container's cgroup
    except (ProtocolError, ValueError):
        posix._exit(1)
    init_mod.begin_process(k, plan)
    init_mod.set_rlimits(k, plan.rlimits)
    if plan.oom_score_adj is not None:
        _step("write oom_score_adj", procfs.write, k, ctx.proc_fd, "self/oom_score_adj",
              str(plan.oom_score_adj))
    if ctx.ns_flags:
        # One setns(pidfd) joins them all at once, the user namespace first.
        _step("join the container's namespaces", k.setns, ctx.pidfd, ctx.ns_flags)
    k.close(ctx.pidfd)
    # The container's root: after pivot_root it is the mount namespace's root, but
    # with --no-pivot (chroot) only the init's root says where it is.
    k.fchdir(ctx.root_fd)
    _step("chroot into the container", k.chroot, ".")
    if plan.terminal:
        terminal = init_mod._module("ocirun.linux.terminal")
        master, peer = terminal.open_pty(ctx.root_fd)
        terminal.hand_over(master, peer, ctx.console_fd, plan.console_size)
    k.close(ctx.root_fd)
    _step(f"process.cwd `{plan.cwd}`", k.chdir, plan.cwd)
    if not k.getcwd().startswith("/"):
        raise InitError(f"process.cwd `{plan.cwd}` is outside the container")
    exe = init_mod.find_executable(k, plan.args[0], plan.path_env)
    env = init_mod.environment(k, plan)
    k.prctl(PR_SET_PDEATHSIG, 0)
    memfd = _step("create the sealed exec program", trampoline.program_for, k, ctx)
    init_mod._finalize(plan, ctx)
    try:
        trampoline.execve(k, trampoline.request(memfd, exe, plan.args, env, ctx.chan.wfd))
    except OSError as e:
        raise InitError(f"exec `{plan.args[0]}`: {e.strerror}") from None
