"""run: create, start at once (no exec fifo: the init is released over the sync
pipe), then wait for the container, forwarding signals, and delete it."""
import posix

import _signal

from ocirun import timings
from ocirun.errors import OciError
from ocirun.lifecycle.create import after_marks, create
from ocirun.lifecycle.ops import destroy, run_poststart

FORWARDED = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGQUIT,
             _signal.SIGUSR1, _signal.SIGUSR2, _signal.SIGWINCH)


def run(root, cid, detach=False, keep=False, forward_signals=True, **create_args):
    # Handlers first: create releases the init before it returns, and a signal
    # meant for the container may come at once. Until the init's pid is known,
    # signals wait in `pending`.
    target = []
    pending = []

    def forward(sig, frame):
        if not target:
            pending.append(sig)
            return
        try:
            posix.kill(target[0], sig)
        except OSError:
            pass

    if not detach and forward_signals:
        for sig in FORWARDED:
            _signal.signal(sig, forward)
    c = create(root, cid, for_run=True, detach=detach, **create_args)
    st = c.state
    init_pid = st.pid
    target.append(init_pid)
    for sig in pending:
        forward(sig, None)
    try:
        tag, payload = after_marks(c.chan)
        timings.mark("execve done")
        c.chan.close()
        if tag == "ERROR":
            raise OciError(payload)
        run_poststart(st)
    except BaseException:
        from ocirun.lifecycle.process import kill_container
        kill_container(st)
        _reap(init_pid)
        destroy(st)
        raise
    if detach:
        return 0
    if c.pty_master is not None:
        from ocirun.lifecycle.tty_relay import relay
        relay(c.pty_master, init_pid)
    status = _reap(init_pid)
    timings.mark("container exited")
    if not keep:
        destroy(st)
        timings.mark("delete")
    code = posix.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _reap(init_pid):
    """Wait for init: our child, or our grandchild handed to us as its subreaper
    (create sets PR_SET_CHILD_SUBREAPER when a user namespace needs two forks)."""
    try:
        return posix.waitpid(init_pid, 0)[1]
    except ChildProcessError:
        return 0
