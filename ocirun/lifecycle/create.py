"""create: validate -> plan -> state dir -> cgroup -> fork init -> sync -> state."""
import posix

from ocirun import fs, kernel, timings
from ocirun.config.load import load_config_bytes
from ocirun.config.plan import build
from ocirun.config.validate import validate
from ocirun.errors import OciError, StateError
from ocirun.kernel import CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWTIME
from ocirun.linux import procfs, sync, trampoline
from ocirun.linux.init import child_main, child_prepare, needs_runtime
from ocirun.state import (
    CGROUP_RECORD, FIFO, State, _dumps, check_id, check_root, proc_start_time, remove_dir,
    write_atomic,
)


class Created:
    """What `run` needs after create: the state, the channel to the init, and the
    pty master when `run` relays the terminal itself."""

    __slots__ = ("state", "chan", "pty_master")

    def __init__(self, state, chan, pty_master=None):
        self.state = state
        self.chan = chan
        self.pty_master = pty_master


def now_rfc3339():
    import time
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%09dZ" % (int(t * 1e9) % 10**9)


def create(root, cid, bundle=None, config_path=None, pid_file=None, console_socket=None,
           no_pivot=False, preserve_fds=0, cgroup_manager="cgroupfs", for_run=False,
           detach=False):
    check_id(cid)
    bundle = fs.abspath(bundle or ".")
    if config_path is None:
        config_path = f"{bundle}/config.json"
    elif not config_path.startswith("/"):
        config_path = f"{bundle}/{config_path}"
    # Before the network namespace helper exists: it opens an fd into our table, which
    # could otherwise pass for one of the caller's.
    for fd in range(3, 3 + (preserve_fds or 0)):
        try:
            posix.fstat(fd)
        except OSError:
            raise OciError(f"--preserve-fds {preserve_fds}: fd {fd} is not open") from None
    spec, raw = load_config_bytes(config_path, "config.json")
    timings.mark("config load")
    netns = NetnsAhead()
    try:
        netns.start(spec)
        validate(spec)
        timings.mark("config validate")
        if not spec.get("process"):
            raise OciError("process: a process is required to create a container")
        plan = build(spec, bundle, no_pivot, preserve_fds or 0)
        if plan.hooks:
            import ocirun.hooks  # noqa: F401  (the init runs createContainer/startContainer hooks)
        timings.mark("plan")
        return _create(root, cid, bundle, spec, raw, plan, netns, pid_file, console_socket,
                       cgroup_manager, for_run, detach)
    finally:
        netns.close()


def _create(root, cid, bundle, spec, raw, plan, netns, pid_file, console_socket,
            cgroup_manager, for_run, detach):
    linux = spec.get("linux") or {}
    if linux.get("seccomp"):
        from ocirun import seccomp
        plan.seccomp = seccomp.prepare(linux["seccomp"], seccomp.cache_dir(root))
        trampoline.check_profile(plan.seccomp, plan.nnp)
        if plan.seccomp.notify:
            seccomp.connect_listener(plan.seccomp)  # a host path: before fork and pivot
        timings.mark("seccomp prepare (key + cache or compile)")
    relay_fd = None
    if plan.terminal:
        from ocirun.linux import terminal
        if console_socket:
            plan.console_fd = terminal.connect_socket(console_socket)
        elif for_run and not detach:
            import _socket
            a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
            relay_fd, plan.console_fd = a.detach(), b.detach()
        else:
            raise OciError("process.terminal is true: a detached container needs --console-socket")
    elif console_socket:
        raise OciError("--console-socket given but process.terminal is false")
    manager = _cgroup_manager(cgroup_manager, linux, cid)
    timings.mark("cgroup manager")

    try:
        fs.makedirs(root, 0o711)
    except OSError as e:
        raise OciError(f"create state root `{root}`: {e.strerror}") from None
    check_root(root)
    cdir = f"{root}/{cid}"
    try:
        posix.mkdir(cdir, 0o711)
    except FileExistsError:
        raise StateError(f"container `{cid}` already exists") from None
    except OSError as e:
        raise OciError(f"create state directory `{cdir}`: {e.strerror}") from None

    st = State(root, cid)
    st.bundle = bundle
    st.rootfs = plan.rootfs
    st.created = now_rfc3339()
    st.annotations = spec.get("annotations") or {}
    st.config_hooks = spec.get("hooks") or None
    st.namespaces = linux.get("namespaces") or []
    pid = 0
    init_pid = 0
    chan = child_chan = fifo_fd = proc_fd = None
    try:
        if not for_run:
            posix.mkfifo(f"{cdir}/{FIFO}", 0o600)
            # O_RDWR: the open does not block, and init's read() then blocks
            # until `start` writes (a reader with no writer would see EOF).
            fifo_fd = posix.open(f"{cdir}/{FIFO}", posix.O_RDWR | posix.O_CLOEXEC)
        if manager is not None:
            manager.create()
            st.cgroup = manager.to_dict()
            # A runtime killed from here on leaves a cgroup that delete must find.
            write_atomic(f"{cdir}/{CGROUP_RECORD}", _dumps(st.cgroup).encode())
            resources = device_rules(linux)
            if resources:
                manager.apply(resources)
            timings.mark("cgroup create + resources")
        chan, child_chan = sync.pair()
        if for_run and plan.userns_new and plan.ns_new & (CLONE_NEWPID | CLONE_NEWTIME):
            # The init will be our grandchild: as a subreaper we inherit it when the
            # intermediate process exits, and `run` can wait for it.
            kernel.prctl(kernel.PR_SET_CHILD_SUBREAPER, 1)
        timings.mark("state dir")
        share = _can_share_memory(plan, linux) and (for_run or _waiter(plan, fifo_fd))
        plan.netns_fd = netns.take() if _init_unshares_netns(plan) else None
        # opened here, before fork: the init must not look anything up in a /proc that
        # the container's mounts (or a joined mount namespace) decide
        proc_fd = plan.proc_fd = procfs.open_root()
        pid, parent_did, joined, shared = _fork(plan, chan, child_chan, fifo_fd, manager, share)
        timings.mark("execve (the runtime resumes)" if shared else "fork")
        child_chan.close()
        child_chan = None
        if fifo_fd is not None:
            posix.close(fifo_fd)
            fifo_fd = None
        if plan.waiter_fd is not None:
            posix.close(plan.waiter_fd)
            plan.waiter_fd = None
        if plan.console_fd is not None:
            posix.close(plan.console_fd)
            plan.console_fd = None
        if plan.seccomp is not None and plan.seccomp.listener is not None:
            plan.seccomp.listener[0].close()  # the init holds its own copy
        init_pid = pid
        if not shared:  # (a child that shared our memory has exec'd already)
            if not joined:
                manager.add(pid)
            chan.send("GO")
        # (After a fork, while the init sets itself up.) exec takes the container's
        # process defaults and seccomp profile from this copy: the bundle may change.
        write_atomic(f"{cdir}/config.json", raw)
        while True:
            tag, payload = chan.recv()
            if tag == "T":
                timings.add_remote(payload)
                continue
            if tag == "READY":
                break
            if tag == "USERNS":
                _write_maps(pid, plan, proc_fd)
                chan.send("MAPPED")
            elif tag == "PID":
                init_pid = int(payload)
                posix.waitpid(pid, 0)  # the intermediate process has exited
            elif tag == "HOOKS":
                state_json = _run_create_hooks(st, init_pid, plan.hooks).decode()
                chan.send("HOOKS_DONE", f"{init_pid} {state_json}")
            elif tag == "ERROR":
                raise OciError(payload)
            else:
                raise OciError("container init exited during setup")
        if shared and not for_run:
            # The waiter's execve came after READY: it closed the pipe, or failed
            # and wrote an ERROR line (run reads that while it waits, run.py).
            tag, payload = after_marks(chan)
            if tag == "ERROR":
                raise OciError(payload)
        st.pid = init_pid
        # exited_ok: a run's init has exec'd before we get here (it shared our memory),
        # and a short program may have exited already; unreaped, it keeps its pid.
        st.pid_start = proc_start_time(init_pid, exited_ok=True)
        st.started = for_run
        st.save()
        if pid_file:
            _write_pid_file(pid_file, init_pid)
        timings.mark("state write")
        master = None
        if relay_fd is not None:
            from ocirun.linux.terminal import recv_fd
            master, _ = recv_fd(relay_fd)
            posix.close(relay_fd)
            relay_fd = None
        return Created(st, chan, master)
    except BaseException:
        for fd in (relay_fd, plan.console_fd, plan.waiter_fd, fifo_fd):
            if fd is not None:
                posix.close(fd)
        plan.waiter_fd = None
        if child_chan is not None:
            child_chan.close()
        _undo(pid, init_pid, chan, manager, cdir)
        raise
    finally:
        if proc_fd is not None:
            posix.close(proc_fd)
        plan.proc_fd = None


def after_marks(chan):
    """The init's next message after its --timings marks: EOF once its execve has
    closed the pipe, or the ERROR line of a failed one."""
    tag, payload = chan.recv()
    while tag == "T":
        timings.add_remote(payload)
        tag, payload = chan.recv()
    return tag, payload


class NetnsAhead:
    """The container's network namespace, made by a helper on another CPU while we
    validate, plan and prepare seccomp, the cgroup and the state (_sys.c netns_ahead:
    unshare of a network namespace costs ~0.5 ms here, setns to it microseconds).

    It starts from the parsed, not yet validated config, so only a config that asks for
    a new network namespace, no user namespace (a new or a joined one would have to own
    it) and no memory limit starts a helper; _init_unshares_netns checks the plan again
    before the init gets the fd. (The kernel charges a namespace's memory, ~200 KiB, to
    the memory cgroup of the task that creates it: the helper's is ours, so a container
    with a memory limit has its init create its own, inside the limit.) A helper that
    fails leaves the init to unshare one, as without it."""

    __slots__ = ("pending", "fd")

    def __init__(self):
        self.pending = False
        self.fd = None

    def start(self, spec):
        if kernel.netns_ahead is None or not _asks_new_netns_only(spec):
            return
        # pending before the call: an interrupt right after it still has take() reap it
        self.pending = True
        try:
            kernel.netns_ahead()
        except OSError:
            self.pending = False

    def take(self):
        """The namespace's fd (ours to close), or None."""
        if self.pending:
            self.pending = False
            try:
                self.fd = kernel.netns_take()
            except OSError:
                self.fd = None
            timings.mark("network namespace made ahead (wait)")
        return self.fd

    def close(self):
        self.take()
        if self.fd is not None:
            posix.close(self.fd)
            self.fd = None


def _asks_new_netns_only(spec):
    """linux.namespaces of a config not yet validated: a new network namespace, no
    user namespace at all, and no memory limit."""
    try:
        linux = spec["linux"]
        entries = [(ns["type"], ns.get("path")) for ns in linux["namespaces"]]
        limited = _memory_limited(linux)
    except (KeyError, TypeError, AttributeError):
        return False
    return (any(typ == "network" and not path for typ, path in entries)
            and not any(typ == "user" for typ, _ in entries) and not limited)


def _memory_limited(linux):
    """Whether linux.resources limits the container's memory (v1 or unified)."""
    resources = linux.get("resources") or {}
    memory = resources.get("memory") or {}
    if any(type(memory.get(k)) is int and memory[k] > 0 for k in ("limit", "swap", "kernel")):
        return True
    return (resources.get("unified") or {}).get("memory.max", "max") != "max"


def _init_unshares_netns(plan):
    return (plan.ns_new & CLONE_NEWNET and not plan.userns_new
            and not any(typ == "user" for typ, _, _ in plan.ns_join))


def _fork(plan, chan, child_chan, fifo_fd, manager, share):
    """Fork the init. Without a new user namespace the runtime itself creates (or
    joins) the pid and time namespaces before fork, so the child is pid 1 without a
    second fork; a user namespace must own them, so then the child forks again.
    Returns (pid, namespaces done here, whether the init is in its cgroup, whether
    it shared our memory and has already exec'd: _clone_vm)."""
    parent_did = 0
    saved = []
    try:
        if not plan.userns_new:
            parent_did = _enter_early_namespaces(plan, saved)
        if share:
            pid = _clone_vm(plan, chan, child_chan, fifo_fd, manager, parent_did, saved)
            if pid:
                return pid, parent_did, True, True
            if plan.waiter_fd is not None:  # a forked init waits for `start` itself
                posix.close(plan.waiter_fd)
                plan.waiter_fd = None
        pid, self_join = manager.fork() if manager is not None else (posix.fork(), ())
        if pid == 0:
            # Our copy of the runtime's ends must go, or a runtime that dies would
            # leave the init waiting on a pipe that never reports EOF.
            chan.close()
            for fd, _ in saved:
                posix.close(fd)
            child_main(plan, child_chan, fifo_fd, parent_did, self_join or ())
    finally:
        for fd, flag in saved:
            kernel.setns(fd, flag)  # back to our own namespaces for children
            posix.close(fd)
    return pid, parent_did, manager is None or self_join is not None, False


def _can_share_memory(plan, linux):
    """Whether the init may start with _clone_vm (for `create`, see _waiter too): the
    C extension has it (x86_64, glibc, CPython before 3.14); the init needs nothing
    from us before its execve (we are suspended until then); no process of another
    container can see it, since whatever could reach its memory (ptrace,
    /proc/PID/mem) would reach ours: it must not join an existing pid namespace; and
    nothing the kernel keeps per memory or per clone would differ: no oomScoreAdj (per
    memory: ours would change with it, and could not come back down without
    CAP_SYS_RESOURCE), no memory limit (the OOM killer kills every process that shares
    the memory of the one it picks: an init that runs out in its cgroup while setting
    up would take the runtime with it), no time namespace (before Linux 6.0 a CLONE_VM
    child does not enter the one made for children); and a process that stays root,
    so that only root can signal the init while it shares our memory."""
    if kernel.clone_vm is None or needs_runtime(plan) or plan.oom_score_adj is not None:
        return False
    if plan.uid != 0 or plan.gid != 0:
        # After its setresuid the init, still in our memory, can be signalled by any
        # host process of that uid: SIGSTOP would hold us in clone_vm, SIGKILL could
        # stop it halfway through changing one of our objects.
        return False
    if plan.ns_new & CLONE_NEWTIME:
        return False
    for _, _, flag in plan.ns_join:
        if flag in (CLONE_NEWPID, CLONE_NEWTIME):
            return False
    return not _memory_limited(linux)


def _waiter(plan, fifo_fd):
    """For `create`: an init that shares our memory cannot wait for `start` (we are
    suspended until its execve), so it sets itself up entirely and execs the waiter
    (linux/trampoline.py), which waits on the exec fifo, loads a noNewPrivileges
    filter and execs the entrypoint. Its memfd goes in plan.waiter_fd; False where
    there is none: an AppArmor profile (it would apply at the waiter's execve, not the
    entrypoint's), no waiter for this machine, no executable memfd."""
    if plan.apparmor or not trampoline.waiter_supported():
        return False
    plan.waiter_fd = trampoline.prepare(
        trampoline.waiter(fifo_fd, plan.seccomp if plan.nnp else None))
    return plan.waiter_fd is not None


def _clone_vm(plan, chan, child_chan, fifo_fd, manager, parent_did, saved):
    """Start the init without copying the runtime (kernel.clone_vm, _sys.c): it runs
    in our memory, born in its cgroup v2 directory, up to its execve, while we wait.
    That spares the ~800 copy-on-write faults a fork of this process costs. Returns
    its pid, or 0 where it cannot be done (no cgroup v2 directory to be born in, a
    second thread in this process, an old kernel): the caller forks instead."""
    cg_fd, join = -1, ()
    if manager is not None:
        targets = manager.birth_targets()
        if targets is None:
            return 0
        cg_fd, join = targets

    def init():
        # The child's fd table is a copy: closing fds here leaves ours open.
        chan.close()
        for fd, _ in saved:
            posix.close(fd)
        return child_prepare(plan, child_chan, fifo_fd, parent_did, join, shared=True)

    try:
        return kernel.clone_vm(init, cg_fd, child_chan.wfd)
    except OSError:
        return 0
    finally:
        if cg_fd >= 0:
            posix.close(cg_fd)


def _enter_early_namespaces(plan, saved):
    """Create or join the pid and time namespaces for our children (they only ever
    apply to children); `saved` gets fds of our own, to come back after fork."""
    did = 0
    for typ, path, flag in plan.ns_join:
        if flag in (CLONE_NEWPID, CLONE_NEWTIME):
            name = "pid" if flag == CLONE_NEWPID else "time"
            saved.append((posix.open(f"/proc/self/ns/{name}", posix.O_RDONLY | posix.O_CLOEXEC), flag))
            fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
            try:
                kernel.setns(fd, flag)
            except OSError as e:
                raise OciError(f"join namespace `{path}`: {e.strerror}") from None
            finally:
                posix.close(fd)
            did |= flag
    new = plan.ns_new & (CLONE_NEWPID | CLONE_NEWTIME)
    if new:
        for flag, name in ((CLONE_NEWPID, "pid"), (CLONE_NEWTIME, "time")):
            if new & flag and not did & flag:
                saved.append((posix.open(f"/proc/self/ns/{name}", posix.O_RDONLY | posix.O_CLOEXEC), flag))
        kernel.unshare(new)
        if new & CLONE_NEWTIME and plan.time_offsets:
            try:
                procfs.write(plan.proc_fd, "self/timens_offsets", plan.time_offsets)
            except OSError as e:
                raise OciError(f"linux.timeOffsets: write timens_offsets: {e.strerror}") from None
        did |= new
    return did


def _run_create_hooks(st, init_pid, hooks):
    """prestart and createRuntime, in the runtime's namespaces, before pivot_root.
    prestart (deprecated) sees "created", as it did when it ran at `start`;
    createRuntime sees "creating". Returns the state for the init's own hooks."""
    from ocirun.hooks import encode_state, run_hooks
    st.pid = init_pid
    st.pid_start = proc_start_time(init_pid)
    doc = st.oci_state()
    doc["pid"] = init_pid
    doc["status"] = "created"
    created = encode_state(doc)
    if hooks.get("prestart"):
        run_hooks("prestart", hooks["prestart"], created)
    if hooks.get("createRuntime"):
        doc["status"] = "creating"
        run_hooks("createRuntime", hooks["createRuntime"], encode_state(doc))
    return created


def _write_maps(pid, plan, proc_fd):
    for name, text in (("uid_map", plan.uid_map), ("gid_map", plan.gid_map)):
        if not text:
            continue
        try:
            procfs.write(proc_fd, f"{pid}/{name}", text)
        except OSError as e:
            raise OciError(f"write {name} `{text.strip()}`: {e.strerror}") from None


def _write_pid_file(path, pid):
    path = fs.abspath(path)
    try:
        write_atomic(path, str(pid).encode(), 0o644)
    except OSError as e:
        raise OciError(f"write pid file `{path}`: {e.strerror}") from None


def _cgroup_manager(kind, linux, cid):
    """The container's cgroup manager (None when cgroups are disabled). Resources
    are validated here, before anything exists that would need undoing."""
    if kind == "disabled":
        return None
    from ocirun import cgroups
    return cgroups.open_manager(kind, linux.get("cgroupsPath"), cid,
                                resources=linux.get("resources"))


def device_rules(linux):
    """The device cgroup rules: the config's, then allow the default devices and
    every device in linux.devices (config-linux.md: the runtime MUST supply them)."""
    resources = linux.get("resources")
    if not resources or "devices" not in resources:
        return resources
    from ocirun.cgroups.convert import DEFAULT_ALLOWED
    rules = list(resources["devices"]) + DEFAULT_ALLOWED
    for d in linux.get("devices") or ():
        if d.get("type") in ("c", "b", "u"):
            rules.append({"allow": True, "type": "c" if d["type"] == "u" else d["type"],
                          "major": d.get("major"), "minor": d.get("minor"), "access": "rwm"})
    resources = dict(resources)
    resources["devices"] = rules
    return resources


def _undo(pid, init_pid, chan, manager, cdir):
    """Failed create: leave no process, cgroup or state directory behind."""
    for p in {pid, init_pid} - {0}:
        try:
            posix.kill(p, 9)
        except OSError:
            pass
    for p in {pid, init_pid} - {0}:
        try:
            posix.waitpid(p, 0)
        except ChildProcessError:
            pass
    if chan is not None:
        chan.close()
    if manager is not None:
        try:
            manager.destroy()
        except Exception:
            pass
    remove_dir(cdir)
