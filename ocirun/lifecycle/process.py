"""Signalling and waiting for a container's processes, safe against pid reuse."""
import posix

import _signal

from ocirun.errors import OciError, StateError
from ocirun.state import proc_start_time

SIGKILL = _signal.SIGKILL


def open_init(st):
    """A pidfd of the container's init, or None if it is gone. The start time is
    checked *after* opening the pidfd, so the pidfd cannot name a recycled pid."""
    if not st.pid:
        return None
    try:
        fd = posix.pidfd_open(st.pid)
    except ProcessLookupError:
        return None
    if proc_start_time(st.pid) != st.pid_start:
        posix.close(fd)
        return None
    return fd


def signal_init(st, sig):
    import _signal
    fd = open_init(st)
    if fd is None:
        raise StateError("container not running")
    try:
        _signal.pidfd_send_signal(fd, sig)
    except ProcessLookupError:
        raise StateError("container not running") from None
    finally:
        posix.close(fd)


def pidns_members(pid):
    """Pids sharing `pid`'s pid namespace (a container without cgroups)."""
    try:
        target = posix.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return []
    if target == posix.stat("/proc/self/ns/pid").st_ino:
        return [pid]  # host pid namespace: only the init is known to be ours
    out = []
    for name in posix.listdir("/proc"):
        if name.isdigit():
            try:
                if posix.stat(f"/proc/{name}/ns/pid").st_ino == target:
                    out.append(int(name))
            except OSError:
                pass
    return out


def signal_all(st, sig):
    if st.cgroup:
        from ocirun.cgroups import from_dict as open_saved
        open_saved(st.cgroup).kill_all(sig)
        return
    for pid in pidns_members(st.pid):
        try:
            posix.kill(pid, sig)
        except ProcessLookupError:
            pass


def wait_gone(st, timeout=10.0):
    """Wait until init has exited (it is not our child: poll its pidfd)."""
    fd = open_init(st)
    if fd is None:
        return True
    import select  # only here: `state` and `run` never wait like this
    try:
        p = select.poll()
        p.register(fd, select.POLLIN)
        return bool(p.poll(int(timeout * 1000)))
    finally:
        posix.close(fd)


THAW_AFTER_S = 0.2


def kill_container(st, timeout=10.0):
    """SIGKILL every process of the container and wait for init to go. A task the v1
    freezer holds cannot act on SIGKILL: if the init is still there after a moment, its
    cgroup is thawed again (a pause may have been on its way while we signalled)."""
    try:
        signal_all(st, SIGKILL)
    except OciError:
        pass
    try:
        signal_init(st, SIGKILL)
    except StateError:
        return
    if wait_gone(st, THAW_AFTER_S):
        return
    thaw(st)
    if not wait_gone(st, timeout):
        raise OciError(f"container `{st.id}`: init {st.pid} did not exit after SIGKILL")


def thaw(st):
    """Thaw the container's cgroup, whatever its freezer says (FROZEN, or FREEZING on
    its way there); nothing to do without a cgroup."""
    if st.cgroup:
        from ocirun.cgroups import from_dict
        try:
            from_dict(st.cgroup).thaw()
        except OciError:
            pass
