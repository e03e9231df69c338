"""fork() for a container's processes (the init, exec'd processes), with the child
put in the container's cgroup without the runtime writing its pid to cgroup.procs.

That write takes the kernel's cgroup_threadgroup_rwsem for writing, which waits for
an RCU grace period: 5-20 ms measured here, more than the rest of a container start.
Instead the child is born in its cgroup v2 directory (clone3 CLONE_INTO_CGROUP, see
_sys.c) and joins its cgroup v1 hierarchies itself, first thing after fork, by
writing "0" to their `tasks` files (linux/init.py join_cgroups): a thread that moves
itself skips that lock."""
import posix

from ocirun import kernel


def fork_in_cgroup(manager):
    """-> (pid, the v1 directories the child must join itself), or (pid, None) when
    the runtime must still add the pid: no C extension, a kernel before 5.7, a
    manager without targets. `manager` None: a plain fork, nothing to join."""
    if manager is None:
        return posix.fork(), ()
    v2, v1 = manager.fork_targets()
    if v2 is None:
        return posix.fork(), (v1 or None)
    try:
        fd = posix.open(v2, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    except OSError:
        return posix.fork(), None
    try:
        return kernel.fork_into_cgroup(fd), v1
    except OSError:
        return posix.fork(), None
    finally:
        posix.close(fd)
