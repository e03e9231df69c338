"""run: create, start at once (no exec fifo: the init goes on to its execve as soon as
it is set up), then wait for the container, forwarding signals, and delete it."""
import posix

import _signal

from ocirun import timings
from ocirun.errors import OciError
from ocirun.lifecycle import steps
from ocirun.lifecycle.create import after_marks, create_running
from ocirun.lifecycle.delete import destroy
from ocirun.linux.sync import Msg


def run(root, cid, detach=False, keep=False, forward_signals=True, **create_args):
    # Handlers first: create releases the init before it returns, and a signal meant
    # for the container may come at once. Until the init's pid is known, signals wait
    # in `pending`.
    target = []
    pending = []
    forward = None
    if not detach and forward_signals:
        forward = steps.forward_signals(target, pending)
    c = create_running(root, cid, detach=detach, **create_args)
    st = c.state
    init_pid = st.pid
    target.append(init_pid)
    if c.notify is not None and not detach:
        c.notify.in_background()
    for sig in pending:
        forward(sig, None)
    try:
        kind, payload = after_marks(c.chan)
        timings.mark("execve done")
        c.chan.close()
        if kind == Msg.ERROR:
            raise OciError(payload)
        if (st.config_hooks or {}).get("poststart"):
            from ocirun.lifecycle.start import run_poststart
            run_poststart(st)
    except BaseException:
        from ocirun.lifecycle.process import kill_container
        kill_container(st)
        _reap(init_pid)
        destroy(st)
        raise
    if detach:
        if c.notify is not None:
            from ocirun.lifecycle.notify import wait_ready
            wait_ready(c.notify, st)
        return 0
    if c.pty_master is not None:
        from ocirun.lifecycle.tty_relay import relay
        relay(c.pty_master, init_pid)
    status = _reap(init_pid)
    timings.mark("container exited")
    if posix.WIFSIGNALED(status) and posix.WTERMSIG(status) == _signal.SIGKILL and st.cgroup:
        _say_if_oom(st)
    if c.notify is not None:
        c.notify.close()
    if not keep:
        destroy(st)
        timings.mark("delete")
    return steps.exit_code(status)


def _say_if_oom(st):
    """A container killed by SIGKILL whose cgroup counted an OOM kill: say so in one
    line (exit 137 alone reads as `kill -9`; a limit too low for the program's start
    ends so, the kernel killing it during its execve)."""
    from ocirun.cgroups import from_dict
    try:
        kills = from_dict(st.cgroup).oom_kills()
    except OciError:
        return
    if kills:
        from ocirun import log
        log.warning("the container was killed by the OOM killer (its cgroup counted "
                    f"{kills} OOM kill{'s' if kills > 1 else ''}): "
                    "linux.resources.memory.limit may be too low")


def _reap(init_pid):
    """Wait for init: our child, or our grandchild handed to us as its subreaper
    (create sets PR_SET_CHILD_SUBREAPER when a user namespace needs two forks)."""
    try:
        return posix.waitpid(init_pid, 0)[1]
    except ChildProcessError:
        return 0
