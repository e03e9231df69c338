"""OCI hooks (config.md "POSIX-platform Hooks"): each hook runs with the container
state JSON on stdin, its own args and env, and an optional timeout in seconds.

Spawned with posix_spawn and waited on through a pidfd, so running hooks costs no
`subprocess` import and works in the container init too (everything here is imported
before fork)."""
import os
import select

import _signal

from ocirun import log
from ocirun.errors import OciError


class HookError(OciError):
    pass


def encode_state(state):
    from ocirun.fs import dumps
    return dumps(state).encode()


def run_hooks(kind, hooks, state, warn_only=False):
    """Run the hooks of one kind in order; the first failure stops the rest (and is a
    warning only for poststart/poststop, as runtime.md says)."""
    data = state if isinstance(state, bytes) else encode_state(state)
    for i, hook in enumerate(hooks or ()):
        try:
            run_hook(hook, data)
        except OciError as e:
            msg = f"{kind} hook #{i} `{hook.get('path')}`: {e}"
            if warn_only:
                log.warning(msg)
                continue
            raise HookError(msg) from None


def run_hook(hook, data):
    path = hook["path"]
    args = hook.get("args") or [path]
    env = {}
    for e in hook.get("env") or ():
        k, _, v = e.partition("=")
        env[k] = v
    timeout = hook.get("timeout")
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        try:
            pid = os.posix_spawn(path, args, env, file_actions=[(os.POSIX_SPAWN_DUP2, r, 0)])
        except OSError as e:
            raise HookError(f"cannot run: {e.strerror}") from None
        os.close(r)
        r = -1
        try:
            _write_all(w, data)
        except BrokenPipeError:
            pass  # a hook need not read its stdin
        os.close(w)
        w = -1
        status = _wait(pid, timeout)
    finally:
        for fd in (r, w):
            if fd >= 0:
                os.close(fd)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise HookError(f"exited with status {code}" if code > 0 else f"killed by signal {-code}")


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _wait(pid, timeout):
    if timeout:
        fd = os.pidfd_open(pid)
        try:
            p = select.poll()
            p.register(fd, select.POLLIN)
            if not p.poll(int(timeout * 1000)):
                os.kill(pid, _signal.SIGKILL)
                os.waitpid(pid, 0)
                raise HookError(f"timed out after {timeout} s")
        finally:
            os.close(fd)
    return os.waitpid(pid, 0)[1]
