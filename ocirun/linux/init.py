"""The container init: runs in the forked child, executes the Plan, never returns.

Everything it calls was imported before fork: after pivot_root the filesystem is the
container's, and importing (or loading NSS modules) from it would run the image's code
inside the runtime (docs/security.md K).
"""
import posix
import _stat  # the C module behind `stat`
import time

import _signal

from ocirun import kernel
from ocirun.errors import OciError
from ocirun.kernel import (
    CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWTIME, CLONE_NEWUSER, PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_CLEAR_ALL, PR_CAP_AMBIENT_RAISE, PR_CAPBSET_DROP, PR_SET_DUMPABLE,
    PR_SET_KEEPCAPS, PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG,
)
from ocirun.linux import procfs, trampoline
from ocirun.linux import rootfs as rootfs_mod
from ocirun.linux.namespaces import JOIN_ORDER


class InitError(OciError):
    pass


def _step(what, fn, *args):
    try:
        return fn(*args)
    except OSError as e:
        import errno as _errno
        name = _errno.errorcode.get(e.errno, str(e.errno))
        raise InitError(f"{what}: {name} ({e.strerror})") from None


class _Quit(BaseException):
    """Leave the init with this exit status, reporting nothing (the runtime is gone
    or has told us to stop)."""

    def __init__(self, code):
        self.code = code


def child_main(plan, chan, fifo_fd, parent_did, cgroup_join=()):
    """Entry point after fork. `parent_did`: namespace flags the runtime already
    created or joined for us before fork (pid, time). `cgroup_join`: cgroup v1
    directories to move ourselves into (cgroups/common.py Manager.fork). Never
    returns: execve or _exit."""
    req = child_prepare(plan, chan, fifo_fd, parent_did, cgroup_join)
    if isinstance(req, int):
        posix._exit(req)
    try:
        trampoline.execve(req)
    except OSError as e:
        report(chan, InitError(f"exec `{plan.args[0]}`: {e.strerror}"))
    posix._exit(1)


def child_prepare(plan, chan, fifo_fd, parent_did, cgroup_join, shared=False):
    """Everything up to the execve: returns its request (trampoline.request), or an
    exit status after reporting an error. Returns instead of exiting so that a child
    sharing the runtime's memory (`shared`: create.py _clone_vm) leaves no frame
    behind. Such a child gets no GO: the runtime is suspended until our execve."""
    try:
        return _run(plan, chan, fifo_fd, parent_did, cgroup_join, shared)
    except _Quit as q:
        return q.code
    except BaseException as e:
        report(chan, e)
        return 1


def needs_runtime(plan):
    """Whether the init must wait for the runtime during its set-up: to map a new user
    namespace, or for _hooks_before_pivot."""
    return bool(plan.userns_new or _hooks_need_runtime(plan))


def _hooks_need_runtime(plan):
    """Hooks before pivot_root, or a seccomp listener to hand over: both need the
    container's state from the runtime."""
    h = plan.hooks
    return bool(h.get("prestart") or h.get("createRuntime") or h.get("createContainer")
                or h.get("startContainer") or (plan.seccomp is not None and plan.seccomp.notify))


def join_cgroups(dirs):
    """Move ourselves into cgroup v1 directories (cgroups/common.py Manager.fork): "0" in
    `tasks` is the writing thread, which here is the whole process."""
    for d in dirs:
        _step(f"join cgroup {d}", _write_file, d + "/tasks", "0")


def report(chan, e):
    """The child's single error path: one line to the runtime."""
    msg = e.msg if isinstance(e, OciError) else (
        f"{e.strerror}" + (f": {e.filename}" if getattr(e, "filename", None) else "")
        if isinstance(e, OSError) else f"{type(e).__name__}: {e}")
    try:
        chan.send("ERROR", msg)
    except BaseException:
        pass


def report_and_exit(chan, e):
    """report(), then _exit (nothing unwinds into the runtime's code in the child)."""
    report(chan, e)
    posix._exit(1)


def _run(plan, chan, fifo_fd, parent_did, cgroup_join, shared):
    # Not dumpable: nothing in the container may open our /proc/PID/exe (the host's
    # interpreter) or ptrace us before execve (CVE-2019-5736). Die with the runtime
    # while we are being set up.
    kernel.prctl(PR_SET_DUMPABLE, 0)
    kernel.prctl(PR_SET_PDEATHSIG, 9)
    join_cgroups(cgroup_join)
    if not shared:
        tag, _ = chan.recv()  # EOF if the runtime died before (or while) we set PDEATHSIG
        if tag != "GO":
            raise _Quit(1)
    elif not _runtime_alive(chan):  # it died before we set PDEATHSIG
        raise _Quit(1)
    _tmark(plan, chan, "started")
    posix.umask(0)
    # rlimits first: in a new user namespace we could no longer raise them.
    for res, soft, hard in plan.rlimits:
        _step(f"setrlimit {res}", kernel.setrlimit, res, soft, hard)
    if plan.oom_score_adj is not None:
        _step("write oom_score_adj", procfs.write, plan.proc_fd, "self/oom_score_adj",
              str(plan.oom_score_adj))

    # Join namespaces by path: open them all first (after joining the mount
    # namespace the paths would resolve elsewhere), then setns, user first.
    fds = {}
    for typ, path, flag in plan.ns_join:
        if flag & parent_did:
            continue
        fds[typ] = (_step(f"open namespace {path}", posix.open, path, posix.O_RDONLY | posix.O_CLOEXEC), flag, path)
    for typ in JOIN_ORDER:
        if typ in fds:
            fd, flag, path = fds[typ]
            _step(f"join {typ} namespace {path}", kernel.setns, fd, flag)
            posix.close(fd)

    if plan.userns_new:
        _step("unshare user namespace", kernel.unshare, CLONE_NEWUSER)
        chan.send("USERNS")
        tag, payload = chan.recv()
        if tag != "MAPPED":
            raise InitError(f"user namespace mapping failed: {payload}")
        try:
            posix.setresgid(0, 0, 0)
            posix.setresuid(0, 0, 0)
        except OSError:
            pass  # root is not mapped: keep the overflow ids, as runc does
    rest = plan.ns_new & ~CLONE_NEWUSER & ~parent_did
    if plan.netns_fd is not None:
        # the runtime made it while it prepared the rest (create.py _netns_ahead)
        _step("join the new network namespace", kernel.setns, plan.netns_fd, CLONE_NEWNET)
        posix.close(plan.netns_fd)  # our copy (the plan itself is not ours to change)
        rest &= ~CLONE_NEWNET
    if rest:
        _step("unshare namespaces", kernel.unshare, rest)
    _tmark(plan, chan, "namespaces")
    if rest & (CLONE_NEWPID | CLONE_NEWTIME):
        # A new pid (or time) namespace applies to children only: fork the init.
        if rest & CLONE_NEWTIME and plan.time_offsets:
            _step("write timens_offsets", procfs.write, plan.proc_fd, "self/timens_offsets",
                  plan.time_offsets)
        pid = posix.fork()
        if pid:
            chan.send("PID", str(pid))
            posix._exit(0)

    # (through the runtime's procfs: /proc/sys/net of this task is its own network
    # namespace's, whichever procfs it is read through)
    for key, value in plan.sysctl.items():
        _step(f"sysctl {key}", procfs.write, plan.proc_fd, "sys/" + key.replace(".", "/"), value)
    if plan.hostname is not None:
        _step("sethostname", kernel.sethostname, plan.hostname)
    if plan.domainname is not None:
        _step("setdomainname", kernel.setdomainname, plan.domainname)

    state_json = None
    if plan.mount_ns:
        state_json = _setup_rootfs(plan, chan)
    else:
        # No mount namespace: the container shares the runtime's, as the config
        # asks (runtime-spec: namespaces not listed are inherited). Its mounts go
        # under the rootfs there; no propagation change, no pivot_root: chroot.
        if plan.terminal:
            raise InitError("process.terminal needs a mount namespace (for /dev/pts and /dev/console)")
        rootfd = _step("open rootfs", posix.open, plan.rootfs, posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
        tree = rootfs_mod.Tree(rootfd, plan.proc_fd)
        try:
            for i, (m, mo) in enumerate(plan.mounts):
                rootfs_mod.mount_one(tree, i, m, mo, plan.cgroupns)
            tree.verify()
        finally:
            tree.close()
            posix.close(rootfd)
        state_json = _hooks_before_pivot(plan, chan)
        _step("chroot", posix.chroot, plan.rootfs)
        posix.chdir("/")

    _step(f"process.cwd `{plan.cwd}`", posix.chdir, plan.cwd)
    cwd = posix.getcwd()
    if not cwd.startswith("/"):  # "(unreachable)": outside the container (CVE-2024-21626)
        raise InitError(f"process.cwd `{plan.cwd}` is outside the container")
    exe = find_executable(plan.args[0], plan.path_env)
    _tmark(plan, chan, "cwd + executable lookup")

    kernel.prctl(PR_SET_PDEATHSIG, 0)
    if plan.waiter_fd is not None:
        # `create` with the runtime's memory shared: the runtime is suspended until
        # our execve, so the waiting is the waiter's (trampoline.py), after all the
        # rest; READY once nothing but that execve can fail.
        _finalize(plan, unblock=False, keep_fd=fifo_fd)
        _tmark(plan, chan, "user, caps, seccomp (the waiter next)")
        chan.send("READY")
        return trampoline.request(plan.waiter_fd, exe, plan.args, plan.env, chan.wfd,
                                  keep_mask=True)
    chan.send("READY")
    if fifo_fd is not None:
        # Waiting for `start`: as pid 1 of its namespace the init would ignore
        # signals it has no handler for, and `kill ID TERM` would be lost. Die of
        # them instead (as 128+n: pid 1 cannot re-raise them at itself).
        for sig in _WAIT_SIGNALS:
            _signal.signal(sig, _die_of)
        # `ocirun start` writes one byte into the exec fifo.
        if not posix.read(fifo_fd, 1):
            raise _Quit(1)
        posix.close(fifo_fd)
    # (run has no fifo: the init goes on at once, while the runtime writes the state)
    memfd = _step("create the sealed exec program", trampoline.program_for, plan)
    hooks = plan.hooks.get("startContainer")
    # startContainer hooks come from the container's filesystem: they run with the
    # process's own user, capabilities and (without noNewPrivileges) seccomp filter.
    _finalize(plan, (lambda: _module("ocirun.hooks").run_hooks(
        "startContainer", hooks, state_json)) if hooks else None, unblock=not shared)
    if fifo_fd is None:
        # (after `start` the runtime that made us is gone: a mark written to its pipe
        # would only raise SIGPIPE, whose default disposition _finalize restored)
        _tmark(plan, chan, "user, caps, seccomp (execve next)")
    return trampoline.request(memfd, exe, plan.args, plan.env, chan.wfd)


def _runtime_alive(chan):
    """For a child that gets no GO: the runtime's end of our pipe is open as long as
    it lives (and it sends nothing), so a read that would block means alive."""
    posix.set_blocking(chan.rfd, False)
    try:
        return posix.read(chan.rfd, 1) != b""
    except BlockingIOError:
        return True


_WAIT_SIGNALS = (_signal.SIGHUP, _signal.SIGINT, _signal.SIGQUIT, _signal.SIGTERM,
                 _signal.SIGUSR1, _signal.SIGUSR2, _signal.SIGALRM)


def _die_of(sig, frame):
    posix._exit(128 + sig)


def _tmark(plan, chan, name):
    if plan.timings:
        chan.send("T", f"{name} {time.perf_counter_ns()}")


def _write_file(path, value):
    """A host file outside /proc (a cgroup's tasks file)."""
    fd = posix.open(path, posix.O_WRONLY | posix.O_CLOEXEC | posix.O_NOFOLLOW)
    try:
        posix.write(fd, value.encode())
    finally:
        posix.close(fd)


def _hooks_before_pivot(plan, chan):
    """prestart/createRuntime run in the runtime (it gets HOOKS), createContainer
    here, in the container's namespaces; all before pivot_root (runtime.md
    "Lifecycle"). Returns the state JSON the runtime sent, for startContainer."""
    if not _hooks_need_runtime(plan):
        return None
    h = plan.hooks
    chan.send("HOOKS")
    tag, payload = chan.recv()
    if tag != "HOOKS_DONE":
        raise _Quit(1)
    pid, _, payload = payload.partition(" ")
    state_json = payload.encode()
    # for the seccomp listener: the state and our pid as the host sees it
    plan.state_json = state_json
    plan.host_pid = int(pid)
    if h.get("createContainer"):
        _module("ocirun.hooks").run_hooks("createContainer", h["createContainer"], state_json)
    return state_json


def _setup_rootfs(plan, chan):
    rootfd = _step("prepare rootfs", rootfs_mod.prepare_root, plan.proc_fd, plan.rootfs,
                   plan.root_propagation)
    _tmark(plan, chan, "rootfs bind + propagation")
    tree = rootfs_mod.Tree(rootfd, plan.proc_fd)
    try:
        for i, (m, mo) in enumerate(plan.mounts):
            rootfs_mod.mount_one(tree, i, m, mo, plan.cgroupns)
        tree.verify()
        _tmark(plan, chan, f"mounts ({len(plan.mounts)})")
        if plan.devices:
            rootfs_mod.make_devices(tree, plan.devices, plan.dev_from_host)
        if plan.dev_symlinks:
            _step("create /dev symlinks", rootfs_mod.make_dev_symlinks, tree)
        if plan.terminal:
            _step("set up the terminal", _setup_terminal, plan, tree)
        _tmark(plan, chan, "devices")
        rootfs_mod.mask_paths(tree, plan.masked)
        rootfs_mod.readonly_paths(tree, plan.readonly_paths)
        _tmark(plan, chan, "masked + readonly paths")
    finally:
        tree.close()
    state_json = _hooks_before_pivot(plan, chan)
    _step("pivot_root", rootfs_mod.pivot, rootfd, plan.no_pivot)
    posix.close(rootfd)
    _step("finish rootfs", rootfs_mod.finish_root, plan.readonly, plan.root_propagation)
    _tmark(plan, chan, "pivot_root")
    return state_json


def _setup_terminal(plan, tree):
    """A pty of the container's devpts: /dev/console is its peer, the master goes to
    the caller over the console socket, the peer becomes our stdio."""
    terminal = _module("ocirun.linux.terminal")
    master, peer = terminal.open_pty(tree.rootfd)
    # A symlink the image left at /dev/console must not steer the bind elsewhere
    # (CVE-2025-52565): remove it, the console is ours to create.
    dev = tree.mkdir_all("/dev")
    try:
        if _stat.S_ISLNK(posix.stat("console", dir_fd=dev, follow_symlinks=False).st_mode):
            posix.unlink("console", dir_fd=dev)
    except FileNotFoundError:
        pass
    finally:
        posix.close(dev)
    console = tree.create_file("/dev/console", 0o600)
    try:
        rootfs_mod.bind(peer, console, None, False)
    finally:
        posix.close(console)
    terminal.hand_over(master, peer, plan.console_fd, plan.console_size)


def find_executable(arg0, path_env):
    """Resolve process.args[0] the way execvp would, inside the container, so a
    missing binary fails `create` with the wording callers map to exit 127."""
    if "/" in arg0:
        try:
            st = posix.stat(arg0)
        except OSError:
            raise InitError(f"exec: \"{arg0}\": stat {arg0}: no such file or directory") from None
        if not _stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
            # podman maps "permission denied" to exit 126, as a shell would
            raise InitError(f"exec: \"{arg0}\": permission denied")
        return arg0
    for d in path_env.split(":"):
        cand = f"{d or '.'}/{arg0}"
        try:
            st = posix.stat(cand)
        except OSError:
            continue
        if _stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return cand
    raise InitError(f"exec: \"{arg0}\": executable file not found in $PATH")


def _apparmor_exec(procfd, profile):
    """Ask AppArmor to confine the process from its next execve on: through the
    runtime's procfs, never the container's /proc (CVE-2019-16884)."""
    data = f"exec {profile}"
    try:
        procfs.write(procfd, "thread-self/attr/apparmor/exec", data)
    except FileNotFoundError:  # kernels before 5.8
        procfs.write(procfd, "thread-self/attr/exec", data)


def _module(name):
    """A module the runtime imported before fork because this container needs it
    (seccomp, hooks, terminal): taken from sys.modules, never through the import
    system, which after pivot_root would search the container's filesystem."""
    import sys
    return sys.modules[name]


def _load_seccomp(plan):
    _module("ocirun.seccomp").load(plan.seccomp, plan.state_json, plan.host_pid)


def _finalize(plan, then=None, unblock=True, keep_fd=None):
    """Privileges, last. First what needs no privilege and which a seccomp profile
    might not allow (umask, signal dispositions, fds); then the bounding set, user
    and capabilities; then `then()` (the startContainer hooks, which must not run
    with more than the process gets). With noNewPrivileges the filter goes on right
    before execve (docs/security.md J); without it, seccomp(2) needs CAP_SYS_ADMIN, so it
    goes on before the capabilities are dropped, and only the few syscalls that drop
    them run under it. `keep_fd`: the exec fifo, for the waiter, which then also
    loads the noNewPrivileges filter itself (trampoline.py), as the exec program
    does where the profile refuses execveat (trampoline.loads_filter)."""
    posix.umask(0o022 if plan.umask is None else plan.umask)
    if plan.apparmor:
        _step(f"process.apparmorProfile `{plan.apparmor}`", _apparmor_exec, plan.proc_fd,
              plan.apparmor)
    # Python ignores SIGPIPE and SIGXFSZ; ignored signals survive execve. (The
    # kernel's dispositions only: the interpreter's table may be the runtime's.)
    for sig in (_signal.SIGPIPE, _signal.SIGXFSZ) + _WAIT_SIGNALS:
        kernel.sigaction_default(sig)
    if unblock:  # (a child sharing the runtime's memory unblocks in C, at its execve)
        _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
    # Every fd above the preserved ones closes at execve (CVE-2024-21626).
    for fd in range(3, 3 + plan.preserve_fds):
        try:
            posix.set_inheritable(fd, True)
        except OSError:
            pass
    _step("close_range", kernel.close_range, 3 + plan.preserve_fds, 0xFFFFFFFF,
          kernel.CLOSE_RANGE_CLOEXEC)
    if keep_fd is not None:
        posix.set_inheritable(keep_fd, True)
    kernel.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    for cap in range(plan.last_cap + 1):
        if not plan.cap_bounding >> cap & 1:
            _step(f"drop capability {cap} from the bounding set", kernel.prctl, PR_CAPBSET_DROP, cap)
    if plan.seccomp is not None and not plan.nnp:
        _load_seccomp(plan)
    kernel.prctl(PR_SET_KEEPCAPS, 1)
    _step("setgroups", posix.setgroups, plan.gids)
    _step(f"setresgid {plan.gid}", posix.setresgid, plan.gid, plan.gid, plan.gid)
    _step(f"setresuid {plan.uid}", posix.setresuid, plan.uid, plan.uid, plan.uid)
    kernel.prctl(PR_SET_KEEPCAPS, 0)
    _step("capset", kernel.capset, plan.cap_effective, plan.cap_permitted, plan.cap_inheritable)
    if plan.cap_ambient:
        for cap in range(plan.last_cap + 1):
            if plan.cap_ambient >> cap & 1:
                _step(f"raise ambient capability {cap}", kernel.prctl, PR_CAP_AMBIENT,
                      PR_CAP_AMBIENT_RAISE, cap)
    if then is not None:
        then()
    if plan.nnp:
        kernel.prctl(PR_SET_NO_NEW_PRIVS, 1)
        if plan.seccomp is not None and keep_fd is None and not trampoline.loads_filter(plan):
            _load_seccomp(plan)