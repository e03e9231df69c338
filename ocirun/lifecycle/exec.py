"""exec: run a new process in a running container: same namespaces, root, cgroup,
and the container's seccomp profile; the process's own user, caps and rlimits."""
import posix

import _signal

from ocirun import fs, kernel, timings
from ocirun.config.plan import build_process
from ocirun.errors import ConfigError, OciError, StateError
from ocirun.kernel import CLONE_NEWPID, CLONE_NEWTIME
from ocirun.lifecycle import steps
from ocirun.lifecycle.process import open_init
from ocirun.lifecycle.state import oci_state, status
from ocirun.linux import procfs, sync
from ocirun.linux.init import Context
from ocirun.linux.sync import Msg
from ocirun.state import load, write_atomic
from ocirun.tables import NAMESPACES

SIGKILL = _signal.SIGKILL


def load_container_config(st):
    """The copy of config.json create kept, read as create read it (null = absent)."""
    from ocirun.config.load import load_config
    from ocirun.config.nulls import CONFIG, drop_nulls
    try:
        return drop_nulls(load_config(f"{st.dir}/config.json", "container config"), CONFIG)
    except OciError:
        return {}


def process_from_args(base, args, env=(), cwd=None, user=None, gids=(), caps=(), nnp=False,
                      tty=False):
    """The process.json runc builds for `exec ID CMD...`: the container's process with
    the command line's changes."""
    proc = dict(base)
    proc["args"] = list(args)
    merged = {}
    for e in list(base.get("env") or ()) + list(env):
        k, _, v = e.partition("=")
        merged[k] = v
    proc["env"] = [f"{k}={v}" for k, v in merged.items()]
    if cwd:
        proc["cwd"] = cwd
    proc["terminal"] = tty
    proc.pop("consoleSize", None)
    u = dict(base.get("user") or {})
    if user:
        uid, _, gid = user.partition(":")
        try:
            u["uid"] = int(uid, 10)
            if gid:
                u["gid"] = int(gid, 10)
        except ValueError:
            raise ConfigError("--user", f"`{user}` is not UID[:GID] (numbers)") from None
    if gids:
        try:
            u["additionalGids"] = [int(g, 10) for g in gids]
        except ValueError:
            raise ConfigError("--additional-gids", f"`{','.join(gids)}` is not a list of numbers") from None
    u.setdefault("uid", 0)
    u.setdefault("gid", 0)
    proc["user"] = u
    if caps:
        c = {k: list(v) for k, v in (base.get("capabilities") or {}).items()}
        for name in caps:
            name = name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper()
            for k in ("bounding", "effective", "permitted"):
                c.setdefault(k, [])
                if name not in c[k]:
                    c[k].append(name)
        proc["capabilities"] = c
    if nnp:
        proc["noNewPrivileges"] = True
    return proc


def exec_process(root, cid, proc, detach=False, pid_file=None, console_socket=None,
                 preserve_fds=0, cgroup_sub=None, stdio=None, forward_signals=True):
    """Returns the process's exit code (foreground) or 0 once it runs (detach).
    For the library: stdio, the fds to give the process as its 0, 1, 2 (None: ours);
    forward_signals=False leaves the caller's signal handlers alone."""
    preserve = (preserve_fds or 0, steps.open_fds(preserve_fds))
    st, plan, ctx, relay_fd = _prepare(root, cid, proc, detach, console_socket, preserve)
    chan, ctx.chan = sync.pair()
    timings.mark("the container's namespaces and root")
    forward_to = []
    if not detach and forward_signals:
        steps.forward_signals(forward_to)
    pid, manager, self_join = _fork(st, plan, ctx, chan, relay_fd, cgroup_sub, stdio)
    timings.mark("fork")
    if ctx.fork_after_join:
        # the process will be our grandchild (_fork): as a subreaper we inherit it
        kernel.prctl(kernel.PR_SET_CHILD_SUBREAPER, 1)
    ctx.chan.close()
    for fd in (ctx.pidfd, ctx.root_fd, ctx.proc_fd, ctx.console_fd):
        if fd is not None:
            posix.close(fd)
    forward_to.append(pid)
    try:
        if manager is not None and self_join is None:
            manager.add(pid, cgroup_sub)
        if ctx.seccomp is not None and ctx.seccomp.listener is not None:
            ctx.seccomp.listener[0].close()
        chan.tell(Msg.GO, str(pid))
        if ctx.fork_after_join:
            pid = _grandchild(chan, pid, forward_to)
        master = None
        if relay_fd is not None:
            master = steps.receive_master(relay_fd)
            posix.close(relay_fd)
            relay_fd = None
        kind, payload = chan.recv()  # EOF: its execve closed the pipe
        chan.close()
        if kind == Msg.ERROR:
            posix.waitpid(pid, 0)
            raise OciError(payload)
        timings.mark("cgroup join, the child's set-up and execve")
    except BaseException:
        try:
            posix.kill(pid, SIGKILL)
            posix.waitpid(pid, 0)
        except OSError:
            pass
        if relay_fd is not None:
            posix.close(relay_fd)
        raise
    if pid_file:
        write_atomic(fs.abspath(pid_file), str(pid).encode(), 0o644)
    if detach:
        return 0
    if master is not None:
        from ocirun.lifecycle.tty_relay import relay
        relay(master, pid)
    _, wait_status = posix.waitpid(pid, 0)
    timings.mark("process exited")
    return steps.exit_code(wait_status)


def _grandchild(chan, child, forward_to):
    """The pid of the process our child forked once in the container's pid namespace
    (exec_init.py), once the child has exited."""
    kind, payload = chan.recv()
    while kind == Msg.MARK:
        timings.add_remote(payload)
        kind, payload = chan.recv()
    posix.waitpid(child, 0)
    if kind == Msg.ERROR:
        raise OciError(payload)
    if kind != Msg.PID:
        raise OciError("the exec'd process's parent exited during setup")
    pid = int(payload)
    forward_to[:] = [pid]
    return pid


def _prepare(root, cid, proc, detach, console_socket, preserve_fds):
    """Everything before the fork: -> (state, plan, the child's Context, our end of the
    terminal relay or None)."""
    from ocirun.config.validate import validate_process
    st = load(root, cid)
    now = status(st)
    if now == "paused":
        raise StateError(f"cannot exec in a paused container `{cid}`")
    if now not in ("running", "created"):
        raise StateError(f"container not running: `{cid}` is {now}")
    validate_process(proc)
    timings.mark("state load + process validation")
    spec = load_container_config(st)
    plan = build_process(proc, kernel.last_cap(), preserve_fds, spec)
    ctx = Context(kernel.KERNEL, None)
    ctx.timings = timings.enabled()
    seccomp_cfg = (spec.get("linux") or {}).get("seccomp")
    if seccomp_cfg:
        ctx.seccomp = steps.prepare_seccomp(seccomp_cfg, root, plan.nnp)
        if ctx.seccomp.notify:
            from ocirun.hooks import encode_state
            ctx.state_json = encode_state(oci_state(st, now))
    ctx.console_fd, relay_fd = steps.console(plan.terminal, console_socket, not detach,
                                             "exec --tty --detach needs --console-socket")
    ctx.pidfd = open_init(st)
    if ctx.pidfd is None:
        raise StateError("container not running")
    for flag, name in NAMESPACES.values():
        try:
            if posix.stat(f"/proc/{st.pid}/ns/{name}").st_ino != \
                    posix.stat(f"/proc/self/ns/{name}").st_ino:
                ctx.ns_flags |= flag
        except FileNotFoundError:
            pass
    ctx.root_fd = posix.open(f"/proc/{st.pid}/root",
                             posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
    # the child writes under /proc after it has entered the container: never through
    # the container's /proc (linux/procfs.py)
    ctx.proc_fd = procfs.open_root(ctx.k)
    return st, plan, ctx, relay_fd


def _fork(st, plan, ctx, chan, relay_fd, cgroup_sub, stdio):
    """The child, in the container's pid and time namespaces (they apply to children:
    we enter them, fork, and come back): -> (pid, the cgroup manager or None, the
    directories the child joins itself or None)."""
    early = ctx.ns_flags & (CLONE_NEWPID | CLONE_NEWTIME)
    saved = steps.save_own_namespaces(early)
    if early:
        try:
            kernel.setns(ctx.pidfd, early)
            ctx.ns_flags &= ~early
        except PermissionError:
            # Rootless: joining a pid namespace needs privileges in its user namespace,
            # which only joining that one too would give us. The child joins them all
            # and forks the process (exec_init.py).
            for fd, _ in saved:
                posix.close(fd)
            saved = []
            ctx.fork_after_join = True
    manager = None
    if st.cgroup:
        from ocirun.cgroups import from_dict
        manager = from_dict(st.cgroup)
    try:
        if manager is None or cgroup_sub:  # exec --cgroup SUB: the runtime adds the pid
            pid, self_join = posix.fork(), None
        else:
            pid, self_join = manager.fork()
        if pid == 0:
            chan.close()  # see create: EOF must reach us if the runtime dies
            # Nothing of the runtime's that the child does not need: a process of the
            # container able to ptrace it (CAP_SYS_PTRACE) must not find our own pid
            # namespace or the relay's other end in its fd table.
            for fd, _ in saved:
                posix.close(fd)
            if relay_fd is not None:
                posix.close(relay_fd)
            if stdio:
                try:
                    for target, fd in enumerate(stdio):
                        if fd is not None:
                            posix.dup2(fd, target)
                except BaseException as e:  # the child's one error path (linux/init.py)
                    from ocirun.linux.init import report_and_exit
                    report_and_exit(ctx.chan, e)
            ctx.cgroup_join = self_join or ()
            from ocirun.linux.exec_init import exec_main
            exec_main(plan, ctx)
    finally:
        for fd, flag in saved:
            try:
                kernel.setns(fd, flag)
            except PermissionError:
                # Rootless: our own pid namespace belongs to a user namespace above
                # ours, whose privileges setns back would need. Nothing forks here
                # after the child (a foreground exec waits for it, -d exits).
                pass
            finally:
                posix.close(fd)
    return pid, manager, self_join
