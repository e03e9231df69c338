"""The child of `exec`: joins the container's namespaces and root, then becomes the
new process. Shares the privilege and exec steps with the container init."""
import posix

from ocirun import kernel
from ocirun.kernel import PR_SET_DUMPABLE, PR_SET_PDEATHSIG
from ocirun.linux import init as init_mod
from ocirun.linux import procfs, trampoline
from ocirun.linux.init import InitError, _step


def exec_main(plan, chan, pidfd, ns_flags, root_fd, cgroup_join=()):
    try:
        _run(plan, chan, pidfd, ns_flags, root_fd, cgroup_join)
    except BaseException as e:
        init_mod.report_and_exit(chan, e)
    posix._exit(1)


def _run(plan, chan, pidfd, ns_flags, root_fd, cgroup_join):
    # Non-dumpable before entering: a process of the container must not reach our
    # /proc/PID/exe, the host's interpreter (CVE-2019-5736).
    kernel.prctl(PR_SET_DUMPABLE, 0)
    kernel.prctl(PR_SET_PDEATHSIG, 9)
    init_mod.join_cgroups(cgroup_join)
    tag, payload = chan.recv()  # we are in the container's cgroup
    if tag != "GO":
        posix._exit(1)
    plan.host_pid = int(payload)  # our pid as the host sees it (seccomp listener)
    for res, soft, hard in plan.rlimits:
        _step(f"setrlimit {res}", kernel.setrlimit, res, soft, hard)
    if plan.oom_score_adj is not None:
        _step("write oom_score_adj", procfs.write, plan.proc_fd, "self/oom_score_adj",
              str(plan.oom_score_adj))
    if ns_flags:
        # One setns(pidfd) joins them all at once, the user namespace first.
        _step("join the container's namespaces", kernel.setns, pidfd, ns_flags)
    posix.close(pidfd)
    # The container's root: after pivot_root it is the mount namespace's root, but
    # with --no-pivot (chroot) only the init's root says where it is.
    posix.fchdir(root_fd)
    _step("chroot into the container", posix.chroot, ".")
    if plan.terminal:
        terminal = init_mod._module("ocirun.linux.terminal")
        master, peer = terminal.open_pty(root_fd)
        terminal.hand_over(master, peer, plan.console_fd, plan.console_size)
    posix.close(root_fd)
    _step(f"process.cwd `{plan.cwd}`", posix.chdir, plan.cwd)
    if not posix.getcwd().startswith("/"):
        raise InitError(f"process.cwd `{plan.cwd}` is outside the container")
    exe = init_mod.find_executable(plan.args[0], plan.path_env)
    kernel.prctl(PR_SET_PDEATHSIG, 0)
    memfd = _step("create the sealed exec program", trampoline.program_for, plan)
    init_mod._finalize(plan)
    try:
        trampoline.execve(trampoline.request(memfd, exe, plan.args, plan.env, chan.wfd))
    except OSError as e:
        raise InitError(f"exec `{plan.args[0]}`: {e.strerror}") from None
