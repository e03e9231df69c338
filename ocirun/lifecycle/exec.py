"""exec: run a new process in a running container: same namespaces, root, cgroup,
and the container's seccomp profile; the process's own user, caps and rlimits."""
import posix

import _signal

from ocirun import fs, kernel, timings
from ocirun.config.plan import Plan, fill_process
from ocirun.errors import ConfigError, OciError, StateError
from ocirun.kernel import CLONE_NEWPID, CLONE_NEWTIME
from ocirun.lifecycle.process import open_init
from ocirun.linux import sync
from ocirun.linux.caps import last_cap
from ocirun.linux.namespaces import NAMESPACES
from ocirun.state import load, write_atomic


def load_container_config(st):
    """The copy of config.json create kept, read as create read it (null = absent)."""
    from ocirun.config.load import load_config
    from ocirun.config.validate import CONFIG, drop_nulls
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
                 preserve_fds=0, cgroup_sub=None):
    """Returns the process's exit code (foreground) or 0 once it runs (detach)."""
    from ocirun.config.validate import validate_process
    st = load(root, cid)
    status = st.status()
    if status == "paused":
        raise StateError(f"cannot exec in a paused container `{cid}`")
    if status not in ("running", "created"):
        raise StateError(f"container not running: `{cid}` is {status}")
    validate_process(proc)
    for fd in range(3, 3 + (preserve_fds or 0)):
        try:
            posix.fstat(fd)
        except OSError:
            raise OciError(f"--preserve-fds {preserve_fds}: fd {fd} is not open") from None
    timings.mark("state load + process validation")
    spec = load_container_config(st)
    p = Plan()
    fill_process(p, proc, preserve_fds or 0)
    p.last_cap = last_cap()
    p.hooks = {}
    p.seccomp = None
    p.state_json = None
    p.host_pid = None
    seccomp_cfg = (spec.get("linux") or {}).get("seccomp")
    if seccomp_cfg:
        from ocirun import seccomp
        p.seccomp = seccomp.prepare(seccomp_cfg, seccomp.cache_dir(root))
        if p.seccomp.notify:
            seccomp.connect_listener(p.seccomp)
            from ocirun.hooks import encode_state
            p.state_json = encode_state(st.oci_state())
        timings.mark("seccomp prepare (key + cache or compile)")
    relay_fd = None
    if p.terminal:
        from ocirun.linux import terminal
        if console_socket:
            p.console_fd = terminal.connect_socket(console_socket)
        elif not detach:
            import _socket
            a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
            relay_fd, p.console_fd = a.detach(), b.detach()
        else:
            raise OciError("exec --tty --detach needs --console-socket")

    pidfd = open_init(st)
    if pidfd is None:
        raise StateError("container not running")
    flags = 0
    for typ, (flag, name) in NAMESPACES.items():
        try:
            if posix.stat(f"/proc/{st.pid}/ns/{name}").st_ino != posix.stat(f"/proc/self/ns/{name}").st_ino:
                flags |= flag
        except FileNotFoundError:
            pass
    root_fd = posix.open(f"/proc/{st.pid}/root", posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
    chan, child_chan = sync.pair()
    timings.mark("the container's namespaces and root")
    # pid and time namespaces apply to children: enter them here, fork, come back.
    early = flags & (CLONE_NEWPID | CLONE_NEWTIME)
    saved = []
    for flag, name in ((CLONE_NEWPID, "pid"), (CLONE_NEWTIME, "time")):
        if early & flag:
            saved.append((posix.open(f"/proc/self/ns/{name}", posix.O_RDONLY | posix.O_CLOEXEC), flag))
    if early:
        kernel.setns(pidfd, early)
    forward_to = []
    if not detach:
        def forward(sig, frame):
            for pid in forward_to:
                try:
                    posix.kill(pid, sig)
                except OSError:
                    pass
        for sig in (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGQUIT,
                    _signal.SIGUSR1, _signal.SIGUSR2, _signal.SIGWINCH):
            _signal.signal(sig, forward)
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
            from ocirun.linux.exec_init import exec_main
            exec_main(p, child_chan, pidfd, flags & ~early, root_fd, self_join or ())
    finally:
        for fd, flag in saved:
            kernel.setns(fd, flag)
            posix.close(fd)
    timings.mark("fork")
    child_chan.close()
    posix.close(pidfd)
    posix.close(root_fd)
    if p.console_fd is not None:
        posix.close(p.console_fd)
    forward_to.append(pid)
    try:
        if manager is not None and self_join is None:
            manager.add(pid, cgroup_sub)
        if p.seccomp is not None and p.seccomp.listener is not None:
            p.seccomp.listener[0].close()
        chan.send("GO", str(pid))
        master = None
        if relay_fd is not None:
            from ocirun.linux.terminal import recv_fd
            master, _ = recv_fd(relay_fd)
            posix.close(relay_fd)
            relay_fd = None
        tag, payload = chan.recv()  # EOF: its execve closed the pipe
        chan.close()
        if tag == "ERROR":
            posix.waitpid(pid, 0)
            raise OciError(payload)
        timings.mark("cgroup join, the child's set-up and execve")
    except BaseException:
        try:
            posix.kill(pid, 9)
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
    _, status = posix.waitpid(pid, 0)
    timings.mark("process exited")
    code = posix.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code

