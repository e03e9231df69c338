"""The container init: executes the Plan in the child the runtime started, never
returns into the runtime's code.

Three births (lifecycle/birth.py chooses), three entry points sharing the same steps:
  forked_main        a fork: waits for GO, sets up, for `create` waits on the exec fifo,
                     then execs (the sealed program, trampoline.py);
  shared_run_main    `run` in the runtime's memory (clone_vm): no GO, the runtime is
                     suspended until our execve, which its C side performs;
  shared_create_main `create` in the runtime's memory: sets up entirely, privileges
                     included, and execs the waiter, which waits for `start`.
The steps: _begin, _enter_namespaces, _build_container, _enter_cwd, _finalize.

Everything it calls was imported before fork: after pivot_root the filesystem is the
container's, and importing (or loading NSS modules) from it would run the image's code
inside the runtime (docs/security.md K). Every syscall goes through ctx.k (the kernel
object, kernel.Kernel, or a unit test's double).
"""
import errno
import posix
import _stat  # the C module behind `stat`
import time

import _signal

from ocirun.errors import OciError
from ocirun.kernel import (
    CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWTIME, CLONE_NEWUSER, CLOSE_RANGE_CLOEXEC,
    PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, PR_CAP_AMBIENT_RAISE, PR_CAPBSET_DROP,
    PR_SET_DUMPABLE, PR_SET_KEEPCAPS, PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG,
)
from ocirun.linux import procfs, trampoline
from ocirun.linux import rootfs as rootfs_mod
from ocirun.linux.sync import Msg, ProtocolError
from ocirun.tables import JOIN_ORDER

SIGKILL = _signal.SIGKILL
ALL_FDS = 0xFFFFFFFF  # close_range's "to the last fd"


class InitError(OciError):
    pass


class Context:
    """What the child gets besides the Plan (which is data, built once and never
    changed): the kernel object, its channel, the fds the runtime opened for it, and
    what it learns while it runs (its host pid, the state for its hooks)."""

    __slots__ = (
        "k", "chan", "proc_fd", "netns_fd", "fifo_fd", "waiter_fd", "console_fd",
        "seccomp", "parent_did", "cgroup_join", "timings", "state_json", "host_pid",
        "idmaps", "own_cgroups", "early_ns",
        # the exec child (exec_init.py)
        "pidfd", "ns_flags", "root_fd", "fork_after_join",
    )

    def __init__(self, k, chan):
        self.k = k
        self.chan = chan
        self.proc_fd = self.netns_fd = self.fifo_fd = self.waiter_fd = None
        self.console_fd = self.seccomp = self.state_json = self.host_pid = None
        self.pidfd = self.root_fd = None
        self.fork_after_join = False  # exec: the child joins the pid namespace itself
        self.parent_did = self.ns_flags = 0
        self.cgroup_join = ()
        self.timings = False
        self.idmaps = {}  # mounts index -> detached idmapped tree fd: linux/idmap.py
        # a rootless runtime's /proc/self/cgroup (rootfs.mount_cgroup), else None
        self.own_cgroups = None
        # whether the runtime may enter pid/time namespaces for its children and come
        # back (lifecycle/birth.py init_forks): not as root of a user namespace that
        # does not own its own pid namespace (rootless podman runs us so)
        self.early_ns = True


def _step(what, fn, *args):
    try:
        return fn(*args)
    except OSError as e:
        raise _failed(what, e) from None


def _failed(what, e):
    name = errno.errorcode.get(e.errno, str(e.errno))
    return InitError(f"{what}: {name} ({e.strerror})")


class _Quit(BaseException):
    """Leave the init with this exit status, reporting nothing (the runtime is gone
    or has told us to stop)."""

    def __init__(self, code):
        self.code = code


# --- the three entry points -------------------------------------------------------------

def forked_main(plan, ctx):
    """After a fork. Never returns: execve or _exit."""
    try:
        req = _forked(plan, ctx)
    except _Quit as q:
        posix._exit(q.code)
    except BaseException as e:
        report_and_exit(ctx.chan, e)
    try:
        trampoline.execve(ctx.k, req)
    except OSError as e:
        report(ctx.chan, InitError(f"exec `{plan.args[0]}`: {e.strerror}"))
    posix._exit(1)


def shared_run_main(plan, ctx):
    """`run`'s init in the runtime's memory: returns the execve request for the C side
    (_sys.c vm_exec), or an exit status after reporting an error. It returns instead of
    exiting so that it leaves no frame behind in the memory it shares."""
    return _contained(_shared_run, plan, ctx)


def shared_create_main(plan, ctx):
    """`create`'s init in the runtime's memory: as shared_run_main, for the waiter."""
    return _contained(_shared_create, plan, ctx)


def _contained(fn, plan, ctx):
    try:
        return fn(plan, ctx)
    except _Quit as q:
        return q.code
    except BaseException as e:
        report(ctx.chan, e)
        return 1


def _forked(plan, ctx):
    _begin(ctx)
    try:
        ctx.host_pid = int(ctx.chan.expect(Msg.GO))
    except (ProtocolError, ValueError):  # EOF: the runtime died before (or while) we set PDEATHSIG
        raise _Quit(1) from None
    exe, env, state_json = _prepare(plan, ctx)
    ctx.chan.send(Msg.READY)
    if ctx.fifo_fd is not None:
        _wait_for_start(ctx)
    # (run has no fifo: the init goes on at once, while the runtime writes the state)
    memfd = _step("create the sealed exec program", trampoline.program_for, ctx.k, ctx)
    hooks = plan.hooks.get("startContainer")
    # startContainer hooks come from the container's filesystem: they run with the
    # process's own user, capabilities and (without noNewPrivileges) seccomp filter.
    _finalize(plan, ctx, (lambda: _module("ocirun.hooks").run_hooks(
        "startContainer", hooks, state_json)) if hooks else None)
    if ctx.fifo_fd is None:
        # (after `start` the runtime that made us is gone: a mark written to its pipe
        # would only raise SIGPIPE, whose default disposition _finalize restored)
        _tmark(ctx, "user, caps, seccomp (execve next)")
    return trampoline.request(memfd, exe, plan.args, env, ctx.chan.wfd)


def _shared_run(plan, ctx):
    _begin(ctx)
    if not _runtime_alive(ctx):  # it died before we set PDEATHSIG
        raise _Quit(1)
    exe, env, _ = _prepare(plan, ctx)
    ctx.chan.send(Msg.READY)
    memfd = _step("create the sealed exec program", trampoline.program_for, ctx.k, ctx)
    # (a child sharing the runtime's memory unblocks signals in C, at its execve)
    _finalize(plan, ctx, unblock=False)
    _tmark(ctx, "user, caps, seccomp (execve next)")
    return trampoline.request(memfd, exe, plan.args, env, ctx.chan.wfd)


def _shared_create(plan, ctx):
    _begin(ctx)
    if not _runtime_alive(ctx):
        raise _Quit(1)
    exe, env, _ = _prepare(plan, ctx)
    # The runtime is suspended until our execve, so the waiting is the waiter's
    # (trampoline.py), after all the rest; READY once nothing but that execve can fail.
    _finalize(plan, ctx, unblock=False, keep_fd=ctx.fifo_fd)
    _tmark(ctx, "user, caps, seccomp (the waiter next)")
    ctx.chan.send(Msg.READY)
    return trampoline.request(ctx.waiter_fd, exe, plan.args, env, ctx.chan.wfd,
                              keep_mask=True)


def _prepare(plan, ctx):
    """Everything between the start and READY: -> (executable, environment, state
    JSON)."""
    _tmark(ctx, "started")
    _enter_namespaces(plan, ctx)
    state_json = _build_container(plan, ctx)
    exe = _enter_cwd(plan, ctx)
    env = environment(ctx.k, plan)
    ctx.k.prctl(PR_SET_PDEATHSIG, 0)
    return exe, env, state_json


# --- what the runtime must be asked -------------------------------------------------------

def needs_runtime(plan, ctx):
    """Whether the init must wait for the runtime during its set-up: to map a new user
    namespace, or for _hooks_before_pivot."""
    return bool(plan.userns_new or plan.net_devices or hooks_need_runtime(plan, ctx))


def hooks_need_runtime(plan, ctx):
    """Hooks before pivot_root, or a seccomp listener to hand over: both need the
    container's state from the runtime."""
    h = plan.hooks
    return bool(h.get("prestart") or h.get("createRuntime") or h.get("createContainer")
                or h.get("startContainer") or (ctx.seccomp is not None and ctx.seccomp.notify))


# --- the steps -----------------------------------------------------------------------------

def _begin(ctx):
    # Not dumpable: nothing in the container may open our /proc/PID/exe (the host's
    # interpreter) or ptrace us before execve (CVE-2019-5736). Die with the runtime
    # while we are being set up.
    k = ctx.k
    k.prctl(PR_SET_DUMPABLE, 0)
    k.prctl(PR_SET_PDEATHSIG, SIGKILL)
    join_cgroups(k, ctx.cgroup_join)


def begin_process(k, plan):
    """What applies to the container's process from its first step on (init and exec
    child alike, once in their cgroup): execCPUAffinity.initial, linux.memoryPolicy
    (per task, inherited across fork and execve)."""
    if plan.cpus_initial is not None:
        _step("process.execCPUAffinity.initial: sched_setaffinity", k.sched_setaffinity, 0,
              plan.cpus_initial)
    if plan.mempolicy is not None:
        _step("linux.memoryPolicy: set_mempolicy", k.set_mempolicy, *plan.mempolicy)


def join_cgroups(k, dirs):
    """Move ourselves into cgroup v1 directories (cgroups/common.py Manager.fork): "0" in
    `tasks` is the writing thread, which here is the whole process. Host paths, written
    before any namespace is joined."""
    for d in dirs:
        _step(f"join cgroup {d}", _write_file, k, d + "/tasks", "0")


def set_rlimits(k, rlimits):
    for name, res, soft, hard in rlimits:
        _step(f"process.rlimits: setrlimit {name} {soft}:{hard}", k.setrlimit, res, soft, hard)


def _enter_namespaces(plan, ctx):
    k = ctx.k
    begin_process(k, plan)
    k.umask(0)
    # rlimits first: in a new user namespace we could no longer raise them.
    set_rlimits(k, plan.rlimits)
    if plan.oom_score_adj is not None:
        _step("process.oomScoreAdj: write oom_score_adj", procfs.write, k, ctx.proc_fd,
              "self/oom_score_adj", str(plan.oom_score_adj))
    # Join namespaces by path: open them all first (after joining the mount
    # namespace the paths would resolve elsewhere), then setns, user first.
    fds = {}
    joined = 0
    for typ, path, flag in plan.ns_join:
        if not flag & ctx.parent_did:
            fds[typ] = (_step(f"open namespace {path}", k.open, path,
                              posix.O_RDONLY | posix.O_CLOEXEC), flag, path)
    for typ in JOIN_ORDER:
        if typ in fds:
            fd, flag, path = fds[typ]
            _step(f"join {typ} namespace {path}", k.setns, fd, flag)
            k.close(fd)
            joined |= flag
    if plan.userns_new:
        # A runtime that is not root writes our maps (or has newuidmap write them) as
        # an ordinary user: our /proc files must be its, which they are not while we
        # are not dumpable. Dumpable only until the maps exist: we are in nothing of
        # the container's yet but this empty namespace (runc does the same).
        by_user = posix.geteuid() != 0
        _step("unshare user namespace", k.unshare, CLONE_NEWUSER)
        if by_user:
            k.prctl(PR_SET_DUMPABLE, 1)
        ctx.chan.send(Msg.USERNS)
        try:
            ctx.chan.expect(Msg.MAPPED)
        except ProtocolError as e:
            raise InitError(f"user namespace mapping failed: {e.payload}") from None
        if by_user:
            k.prctl(PR_SET_DUMPABLE, 0)
        try:
            k.setresgid(0, 0, 0)
            k.setresuid(0, 0, 0)
        except OSError:
            pass  # root is not mapped: keep the overflow ids, as runc does
    rest = plan.ns_new & ~CLONE_NEWUSER & ~ctx.parent_did
    if ctx.netns_fd is not None:
        # the runtime made it while it prepared the rest (birth.py NetnsAhead)
        _step("join the new network namespace", k.setns, ctx.netns_fd, CLONE_NEWNET)
        k.close(ctx.netns_fd)
        ctx.netns_fd = None
        rest &= ~CLONE_NEWNET
    if rest:
        _step("unshare namespaces", k.unshare, rest)
    if plan.ns_new & CLONE_NEWNET:
        # a network namespace of the container's own has its loopback down
        _step("bring up the loopback interface", k.loopback_up)
        if plan.net_devices:  # the runtime moves them in (linux/netdev.py)
            ctx.chan.send(Msg.NETNS)
            try:
                ctx.chan.expect(Msg.NETNS_DONE)
            except ProtocolError:
                raise _Quit(1) from None
    _tmark(ctx, "namespaces")
    if rest & (CLONE_NEWPID | CLONE_NEWTIME) or joined & CLONE_NEWPID:
        # A new pid (or time) namespace, or a pid namespace joined, applies to
        # children only: fork the init.
        if rest & CLONE_NEWTIME and plan.time_offsets:
            _step("write timens_offsets", procfs.write, k, ctx.proc_fd, "self/timens_offsets",
                  plan.time_offsets)
        if k.fork():
            posix._exit(0)
        # The init says its pid itself, first: sent by the parent, PID could reach the
        # runtime after the init's own READY (the runtime would then wait for the
        # parent). As the host sees it: the runtime's procfs names it.
        ctx.chan.send(Msg.PID, host_pid(k, ctx.proc_fd))


def _build_container(plan, ctx):
    """sysctls, names, the filesystem, the hooks before pivot_root: -> the state JSON
    the runtime sent for the hooks (or None)."""
    k = ctx.k
    # (through the runtime's procfs: /proc/sys/net of this task is its own network
    # namespace's, whichever procfs it is read through)
    for key, value in plan.sysctl.items():
        _step(f"sysctl {key}", procfs.write, k, ctx.proc_fd, "sys/" + key.replace(".", "/"),
              value)
    if plan.hostname is not None:
        _step("sethostname", k.sethostname, plan.hostname)
    if plan.domainname is not None:
        _step("setdomainname", k.setdomainname, plan.domainname)
    if plan.mount_ns:
        return _setup_rootfs(plan, ctx)
    # No mount namespace: the container shares the runtime's, as the config asks
    # (runtime-spec: namespaces not listed are inherited). Its mounts go under the
    # rootfs there; no propagation change, no pivot_root: chroot.
    if plan.terminal:
        raise InitError("process.terminal needs a mount namespace (for /dev/pts and /dev/console)")
    rootfd = _step("open rootfs", k.open, plan.rootfs,
                   posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
    tree = rootfs_mod.Tree(k, rootfd, ctx.proc_fd, ctx.idmaps, plan.mount_label)
    tree.own_cgroups = ctx.own_cgroups
    try:
        for i, (m, mo) in enumerate(plan.mounts):
            rootfs_mod.mount_one(tree, i, m, mo, plan.cgroupns)
        tree.verify()
        _make_cwd(plan, tree)
    finally:
        tree.close()
        k.close(rootfd)
    state_json = _hooks_before_pivot(plan, ctx)
    _step("chroot", k.chroot, plan.rootfs)
    k.chdir("/")
    return state_json


def _setup_rootfs(plan, ctx):
    k = ctx.k
    rootfd = _step("prepare rootfs", rootfs_mod.prepare_root, k, ctx.proc_fd, plan.rootfs,
                   plan.root_propagation)
    _tmark(ctx, "rootfs bind + propagation")
    tree = rootfs_mod.Tree(k, rootfd, ctx.proc_fd, ctx.idmaps, plan.mount_label)
    tree.own_cgroups = ctx.own_cgroups
    # (hooks that run before pivot_root inherit our current directory; else pivot()
    # is the next to move it)
    tree.keep_cwd = hooks_need_runtime(plan, ctx)
    try:
        for i, (m, mo) in enumerate(plan.mounts):
            rootfs_mod.mount_one(tree, i, m, mo, plan.cgroupns)
        tree.verify()
        _tmark(ctx, f"mounts ({len(plan.mounts)})")
        if plan.devices:
            rootfs_mod.make_devices(tree, plan.devices, plan.dev_from_host)
        if plan.dev_symlinks:
            _step("create /dev symlinks", rootfs_mod.make_dev_symlinks, tree)
        if plan.terminal:
            _step("set up the terminal", _setup_terminal, plan, ctx, tree)
        _make_cwd(plan, tree)
        _tmark(ctx, "devices")
        rootfs_mod.mask_paths(tree, plan.masked)
        rootfs_mod.readonly_paths(tree, plan.readonly_paths)
        _tmark(ctx, "masked + readonly paths")
    finally:
        tree.close()
    state_json = _hooks_before_pivot(plan, ctx)
    _step("pivot_root", rootfs_mod.pivot, k, rootfd, plan.no_pivot)
    k.close(rootfd)
    _step("finish rootfs", rootfs_mod.finish_root, k, plan.readonly, plan.root_propagation)
    _tmark(ctx, "pivot_root")
    return state_json


def _hooks_before_pivot(plan, ctx):
    """prestart/createRuntime run in the runtime (it gets HOOKS), createContainer
    here, in the container's namespaces; all before pivot_root (runtime.md
    "Lifecycle"). Returns the state JSON the runtime sent, for startContainer."""
    if not hooks_need_runtime(plan, ctx):
        return None
    ctx.chan.send(Msg.HOOKS)
    try:
        payload = ctx.chan.expect(Msg.HOOKS_DONE)
    except ProtocolError:
        raise _Quit(1) from None
    pid, _, payload = payload.partition(" ")
    state_json = payload.encode()
    # for the seccomp listener: the state and our pid as the host sees it; the agent
    # sees the container "creating", as runc and crun show it (the first "status" of the
    # compact document is its own: it comes before the annotations, and the values
    # before it cannot hold an unescaped quote)
    ctx.state_json = state_json.replace(b'"status":"created"', b'"status":"creating"', 1)
    ctx.host_pid = int(pid)
    hooks = plan.hooks.get("createContainer")
    if hooks:
        _module("ocirun.hooks").run_hooks("createContainer", hooks, state_json)
    return state_json


def _setup_terminal(plan, ctx, tree):
    """A pty of the container's devpts: /dev/console is its peer, the master goes to
    the caller over the console socket, the peer becomes our stdio."""
    k = tree.k
    terminal = _module("ocirun.linux.terminal")
    master, peer = terminal.open_pty(tree.rootfd)
    # A symlink the image left at /dev/console must not steer the bind elsewhere
    # (CVE-2025-52565): remove it, the console is ours to create.
    dev = tree.mkdir_all("/dev")
    try:
        if _stat.S_ISLNK(k.stat("console", dir_fd=dev, follow_symlinks=False).st_mode):
            k.unlink("console", dir_fd=dev)
    except FileNotFoundError:
        pass
    finally:
        k.close(dev)
    console = tree.create_file("/dev/console", 0o600)
    try:
        rootfs_mod.bind(k, peer, console, None, False)
    finally:
        k.close(console)
    terminal.hand_over(master, peer, ctx.console_fd, plan.console_size)


def _make_cwd(plan, tree):
    """process.cwd that the rootfs lacks is made, as runc and crun do (after the mounts:
    it may be inside a volume), owned by the process's user so that it can use it."""
    if plan.cwd == "/":
        return  # the rootfs itself
    try:
        tree.k.close(tree.open(plan.cwd))
        return
    except FileNotFoundError:
        pass
    except OSError:
        return  # chdir will say what is wrong with it
    try:
        fd = tree.mkdir_all(plan.cwd)
    except OSError as e:
        raise InitError(f"process.cwd `{plan.cwd}`: cannot be made in the rootfs: "
                        f"{e.strerror}") from None
    try:
        # (an O_PATH fd, which fchown cannot take: through its magic link, in the
        # runtime's procfs)
        tree.k.chown(f"thread-self/fd/{fd}", plan.uid, plan.gid, dir_fd=tree.procfd)
    finally:
        tree.k.close(fd)


def _enter_cwd(plan, ctx):
    """chdir to process.cwd inside the container, then resolve the executable: -> its
    path."""
    k = ctx.k
    _step(f"process.cwd `{plan.cwd}`", k.chdir, plan.cwd)
    # Outside the container (CVE-2024-21626): the kernel's getcwd says "(unreachable)",
    # which glibc's turns into ENOENT.
    try:
        outside = not k.getcwd().startswith("/")
    except FileNotFoundError:
        outside = True
    if outside:
        raise InitError(f"process.cwd `{plan.cwd}` is outside the container")
    exe = find_executable(k, plan.args[0], plan.path_env)
    _tmark(ctx, "cwd + executable lookup")
    return exe


def find_executable(k, arg0, path_env):
    """Resolve process.args[0] the way execvp would, inside the container, so a
    missing binary fails `create` with the wording callers map to exit 127."""
    if "/" in arg0:
        try:
            st = k.stat(arg0)
        except OSError:
            raise InitError(f"exec: \"{arg0}\": stat {arg0}: no such file or directory") from None
        if not _stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
            # podman maps "permission denied" to exit 126, as a shell would
            raise InitError(f"exec: \"{arg0}\": permission denied")
        return arg0
    for d in path_env.split(":"):
        cand = f"{d or '.'}/{arg0}"
        try:
            st = k.stat(cand)
        except OSError:
            continue
        if _stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return cand
    raise InitError(f"exec: \"{arg0}\": executable file not found in $PATH")


def host_pid(k, procfd):
    """Our pid in the pid namespace of the runtime's procfs (its `thread-self` link)."""
    return k.readlink("thread-self", dir_fd=procfd).partition("/")[0]


def _wait_for_start(ctx):
    """`create`'s forked init: wait on the exec fifo for `start`'s byte. As pid 1 of its
    namespace the init would ignore signals it has no handler for, and `kill ID TERM`
    would be lost: it dies of them instead (as 128+n: pid 1 cannot re-raise them at
    itself)."""
    for sig in WAIT_SIGNALS:
        _signal.signal(sig, _die_of)
    if not ctx.k.read(ctx.fifo_fd, 1):
        raise _Quit(1)
    ctx.k.close(ctx.fifo_fd)
    ctx.fifo_fd = None


def _runtime_alive(ctx):
    """For a child that gets no GO: the runtime's end of our pipe is open as long as
    it lives (and it sends nothing), so a read that would block means alive."""
    posix.set_blocking(ctx.chan.rfd, False)
    try:
        return ctx.k.read(ctx.chan.rfd, 1) != b""
    except BlockingIOError:
        return True


WAIT_SIGNALS = (_signal.SIGHUP, _signal.SIGINT, _signal.SIGQUIT, _signal.SIGTERM,
                _signal.SIGUSR1, _signal.SIGUSR2, _signal.SIGALRM)


def _die_of(sig, frame):
    posix._exit(128 + sig)


def _tmark(ctx, name):
    if ctx.timings:
        ctx.chan.send(Msg.MARK, f"{name} {time.perf_counter_ns()}")


def _write_file(k, path, value):
    """A host file outside /proc (a cgroup's tasks file)."""
    fd = k.open(path, posix.O_WRONLY | posix.O_CLOEXEC | posix.O_NOFOLLOW)
    try:
        k.write(fd, value.encode())
    finally:
        k.close(fd)


def report(chan, e):
    """The child's single error path: one line to the runtime."""
    msg = e.msg if isinstance(e, OciError) else (
        f"{e.strerror}" + (f": {e.filename}" if getattr(e, "filename", None) else "")
        if isinstance(e, OSError) else f"{type(e).__name__}: {e}")
    try:
        chan.send(Msg.ERROR, msg)
    except BaseException:
        pass


def report_and_exit(chan, e):
    """report(), then _exit (nothing unwinds into the runtime's code in the child)."""
    report(chan, e)
    posix._exit(1)


def _apparmor_exec(k, procfd, profile):
    """Ask AppArmor to confine the process from its next execve on: through the
    runtime's procfs, never the container's /proc (CVE-2019-16884)."""
    data = f"exec {profile}"
    try:
        procfs.write(k, procfd, "thread-self/attr/apparmor/exec", data)
    except FileNotFoundError:  # kernels before 5.8
        procfs.write(k, procfd, "thread-self/attr/exec", data)


def _module(name):
    """A module the runtime imported before fork because this container needs it
    (seccomp, hooks, terminal): taken from sys.modules, never through the import
    system, which after pivot_root would search the container's filesystem."""
    import sys
    return sys.modules[name]


def _load_seccomp(ctx):
    _module("ocirun.seccomp").load(ctx.seccomp, ctx.state_json, ctx.host_pid, ctx.k)


def _home(k, uid):
    """The home directory of `uid` in the container's /etc/passwd ("/" if none), for a
    process.env without HOME (runc and crun set it). Read as a hostile file: only a
    regular file, without blocking, at most 1 MiB."""
    try:
        fd = k.open("/etc/passwd", posix.O_RDONLY | posix.O_NONBLOCK | posix.O_NOCTTY
                    | posix.O_CLOEXEC)
    except OSError:
        return "/"
    try:
        st = k.fstat(fd)
        if not _stat.S_ISREG(st.st_mode):
            return "/"
        # its size (and a byte more, for a file that grew since): a read of PASSWD_MAX
        # has the interpreter map, shrink and unmap a 1 MiB buffer (a size of 0 may be
        # a file of a kernel filesystem, which says no size: that read then)
        size = st.st_size
        data = k.read(fd, size + 1 if 0 < size < PASSWD_MAX else PASSWD_MAX)
    except OSError:
        return "/"
    finally:
        k.close(fd)
    want = str(uid).encode()
    for line in data.split(b"\n"):
        fields = line.split(b":")
        if len(fields) >= 6 and fields[2] == want:
            return fields[5].decode("utf-8", "surrogateescape") or "/"
    return "/"


PASSWD_MAX = 1 << 20


def environment(k, plan):
    """process.env as the process gets it: with HOME where it has none."""
    if any(e.startswith("HOME=") for e in plan.env):
        return plan.env
    return plan.env + [f"HOME={_home(k, plan.uid)}"]


def _chown_stdio(k, plan):
    """stdio that is a pipe or a file of root's, handed to a process that is not root,
    is given to its user (crun and runc do), so that it can reopen /proc/self/fd/0..2:
    not a terminal or another device, and failures (an unmapped user, a read-only
    file) left for the process to meet."""
    if plan.uid == 0:
        return
    for fd in (0, 1, 2):
        try:
            if k.isatty(fd):
                continue
            st = k.fstat(fd)
            if _stat.S_ISCHR(st.st_mode) or _stat.S_ISBLK(st.st_mode) or st.st_uid == plan.uid:
                continue
            k.fchown(fd, plan.uid, plan.gid)
        except OSError:
            pass


def set_groups(k, procfd, gids):
    """setgroups(2) to process.user.additionalGids. In a user namespace whose gid map
    an ordinary user wrote (its own gid only) setgroups is denied (user_namespaces(7)):
    the process then keeps the groups it has, as with runc and crun, and asking for
    others is an error (lifecycle/rootless.py refuses such a config before this)."""
    try:
        k.setgroups(gids)
        return
    except PermissionError:
        denied = False
        if procfd is not None:
            try:
                denied = procfs.read(k, procfd, "thread-self/setgroups").strip() == b"deny"
            except OSError:
                pass
        if not denied:
            raise InitError("setgroups: EPERM (Operation not permitted)") from None
    if gids:
        raise InitError("process.user.additionalGids: setgroups is denied in this user "
                        "namespace (its gid map is the caller's own gid only)")


def _process_attributes(k, plan):
    """The personality, scheduling and I/O priority of the process, while we still hold
    the capabilities a real-time class needs (after execve they stay)."""
    if plan.personality is not None:
        _step("linux.personality: personality", k.personality, plan.personality)
    if plan.scheduler is not None:
        _step("process.scheduler: sched_setattr", k.sched_setattr, *plan.scheduler)
    if plan.ioprio is not None:
        _step("process.ioPriority: ioprio_set", k.ioprio_set, plan.ioprio)


def _finalize(plan, ctx, then=None, unblock=True, keep_fd=None):
    """Privileges, last. First what needs no privilege and which a seccomp profile
    might not allow (umask, signal dispositions, fds); then the bounding set, user
    and capabilities; then `then()` (the startContainer hooks, which must not run
    with more than the process gets). With noNewPrivileges the filter goes on right
    before execve (docs/security.md J); without it, seccomp(2) needs CAP_SYS_ADMIN, so
    it goes on before the capabilities are dropped, and only the few syscalls that
    drop them run under it. `keep_fd`: the exec fifo, for the waiter, which then also
    loads the noNewPrivileges filter itself (trampoline.py), as the exec program does
    where the profile refuses execveat (trampoline.loads_filter)."""
    k = ctx.k
    k.umask(0o022 if plan.umask is None else plan.umask)
    if plan.apparmor:
        _step(f"process.apparmorProfile `{plan.apparmor}`", _apparmor_exec, k, ctx.proc_fd,
              plan.apparmor)
    if plan.selinux:
        # the label the next execve gives the process (the runtime's procfs, as above)
        _step(f"process.selinuxLabel `{plan.selinux}`", procfs.write, k, ctx.proc_fd,
              "thread-self/attr/exec", plan.selinux)
    # Python ignores SIGPIPE and SIGXFSZ; ignored signals survive execve. (The
    # kernel's dispositions only: the interpreter's table may be the runtime's.)
    for sig in (_signal.SIGPIPE, _signal.SIGXFSZ) + WAIT_SIGNALS:
        k.sigaction_default(sig)
    if unblock:
        _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
    # Every fd but stdio and the preserved ones closes at execve (CVE-2024-21626):
    # above the range by close_range, inside it because ours are all close-on-exec.
    for fd in plan.preserved:
        try:
            k.set_inheritable(fd, True)
        except OSError:
            pass
    _step("close_range", k.close_range, 3 + plan.preserve_fds, ALL_FDS, CLOSE_RANGE_CLOEXEC)
    if keep_fd is not None:
        k.set_inheritable(keep_fd, True)
    k.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    for cap in range(plan.last_cap + 1):
        if not plan.cap_bounding >> cap & 1:
            try:  # (not _step: its message would be built for each of ~30 drops)
                k.prctl(PR_CAPBSET_DROP, cap)
            except OSError as e:
                raise _failed(f"drop capability {cap} from the bounding set", e) from None
    _chown_stdio(k, plan)
    _process_attributes(k, plan)
    if ctx.seccomp is not None and not plan.nnp:
        _load_seccomp(ctx)
    k.prctl(PR_SET_KEEPCAPS, 1)
    if not plan.keep_groups:
        set_groups(k, ctx.proc_fd, plan.gids)
    _step(f"setresgid {plan.gid}", k.setresgid, plan.gid, plan.gid, plan.gid)
    _step(f"setresuid {plan.uid}", k.setresuid, plan.uid, plan.uid, plan.uid)
    k.prctl(PR_SET_KEEPCAPS, 0)
    _step("capset", k.capset, plan.cap_effective, plan.cap_permitted, plan.cap_inheritable)
    if plan.cap_ambient:
        for cap in range(plan.last_cap + 1):
            if plan.cap_ambient >> cap & 1:
                _step(f"raise ambient capability {cap}", k.prctl, PR_CAP_AMBIENT,
                      PR_CAP_AMBIENT_RAISE, cap)
    if plan.cpus_final is not None:
        _step("process.execCPUAffinity.final: sched_setaffinity", k.sched_setaffinity, 0,
              plan.cpus_final)
    if then is not None:
        then()
    if plan.nnp:
        k.prctl(PR_SET_NO_NEW_PRIVS, 1)
        if ctx.seccomp is not None and keep_fd is None and not trampoline.loads_filter(ctx):
            _load_seccomp(ctx)
