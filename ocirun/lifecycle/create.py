"""create: validate -> plan -> state dir -> cgroup -> birth of the init -> sync -> state.

Two entry points: create() for `ocirun create` (the init waits on the exec fifo for
`start`), create_running() for `run` (no fifo: the init goes on at once; run.py waits).
Everything that can refuse the config does so before anything exists that would need
undoing; once something does, a failure undoes it all (_Creation.undo). The steps only
some containers take (hooks, user namespace maps, intelRdt, no cgroup manager) are in
create_extra.py, imported only then (its code stays out of a plain `run`)."""
import posix

import _signal

from ocirun import fs, kernel, timings
from ocirun.config.load import load_config_bytes
from ocirun.config.plan import build
from ocirun.config.validate import validate
from ocirun.errors import OciError, StateError
from ocirun.lifecycle import birth, steps
from ocirun.linux import procfs, sync
from ocirun.linux.init import Context
from ocirun.linux.sync import Msg
from ocirun.state import (
    CGROUP_RECORD, FIFO, State, check_id, check_root, dumps, proc_start_time, remove_dir,
    write_atomic,
)

SIGKILL = _signal.SIGKILL


class Created:
    """What `run` needs after create: the state, the channel to the init, and the
    pty master when `run` relays the terminal itself."""

    __slots__ = ("state", "chan", "pty_master", "notify")

    def __init__(self, state, chan, pty_master=None, notify=None):
        self.state = state
        self.chan = chan
        self.pty_master = pty_master
        self.notify = notify  # the sd_notify relay (lifecycle/notify.py), bound


def now_rfc3339():
    import time
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%09dZ" % (int(t * 1e9) % 10**9)


def create(root, cid, bundle=None, config_path=None, pid_file=None, console_socket=None,
           no_pivot=False, preserve_fds=0, cgroup_manager="cgroupfs", rootless=None):
    """`ocirun create`: the init is set up and waits for `start`. `rootless`: --rootless
    (None: auto, lifecycle/rootless.py)."""
    return _Creation(root, cid, for_run=False, relay=False, rootless=rootless).run(
        bundle, config_path, pid_file, console_socket, no_pivot, preserve_fds, cgroup_manager)


def create_running(root, cid, detach=False, bundle=None, config_path=None, pid_file=None,
                   console_socket=None, no_pivot=False, preserve_fds=0,
                   cgroup_manager="cgroupfs", rootless=None):
    """`run`'s create: the init goes on to its execve at once; a terminal without
    --console-socket is relayed by run.py unless detached."""
    return _Creation(root, cid, for_run=True, relay=not detach, rootless=rootless).run(
        bundle, config_path, pid_file, console_socket, no_pivot, preserve_fds, cgroup_manager)


def after_marks(chan):
    """The init's next message after its --timings marks: EOF once its execve has
    closed the pipe, or the ERROR line of a failed one."""
    kind, payload = chan.recv()
    while kind == Msg.MARK:
        timings.add_remote(payload)
        kind, payload = chan.recv()
    return kind, payload


class _Creation:
    """One create, step by step, with what it has made so far (for undo)."""

    def __init__(self, root, cid, for_run, relay, rootless=None):
        self.root = root
        # rootless (lifecycle/rootless.py): --rootless, or auto: not root, or root of a user
        # namespace (rootless podman runs us so)
        self.rootless = rootless if rootless is not None else (
            posix.geteuid() != 0 or kernel.in_user_namespace())
        self.cid = cid
        self.for_run = for_run
        self.relay = relay
        self.cdir = f"{root}/{cid}"
        self.manager = self.chan = self.ctx = self.relay_fd = None
        self.net_moved = None  # (the container's netns fd, the devices moved into it)
        self.pid = self.init_pid = 0
        self.made_dir = False
        self.memory_limit = "none set"
        self.notify = None

    def run(self, bundle, config_path, pid_file, console_socket, no_pivot, preserve_fds,
            cgroup_manager):
        check_id(self.cid)
        self.bundle = bundle = fs.abspath(bundle or ".")
        if config_path is None:
            config_path = f"{bundle}/config.json"
        elif not config_path.startswith("/"):
            config_path = f"{bundle}/{config_path}"
        # --preserve-fds N passes fds 3+L..3+L+N-1 where they are open (L: socket
        # activation's), as crun does: a closed one is simply not there.
        listen, listen_env = steps.socket_activation()
        preserve_fds = (preserve_fds or 0) + listen
        preserved = steps.open_fds(preserve_fds)
        if not fs.isdir(bundle):
            raise OciError(f"bundle `{bundle}`: "
                           f"{'not a directory' if fs.exists(bundle) else 'does not exist'}")
        spec, raw = load_config_bytes(config_path, "config.json")
        if fs.getenv("NOTIFY_SOCKET"):
            self.notify = _notify(spec, self.cdir)
        timings.mark("config load")
        netns = birth.NetnsAhead()
        self.ctx = Context(kernel.KERNEL, None)
        try:
            plan, linux = self._validate(spec, bundle, no_pivot, (preserve_fds, preserved),
                                         console_socket, cgroup_manager, listen_env)
            # Nothing has been made before this point: a config refused above leaves
            # nothing to undo. The helper works while we make the state and the cgroup.
            netns.start(spec)
            try:
                return self._make(spec, raw, plan, linux, netns, pid_file)
            except BaseException:
                self.undo()
                raise
        finally:
            netns.close()
            for fd in (self.ctx.console_fd, self.ctx.waiter_fd, self.ctx.fifo_fd,
                       self.ctx.proc_fd, self.relay_fd,
                       *self.ctx.idmaps.values()):
                if fd is not None:
                    posix.close(fd)

    def _validate(self, spec, bundle, no_pivot, preserve_fds, console_socket, cgroup_manager,
                  listen_env):
        """Everything that can refuse the config, before anything exists: -> (plan,
        linux)."""
        validate(spec)
        timings.mark("config validate")
        if not spec.get("process"):
            raise OciError("process: a process is required to create a container")
        plan = build(spec, bundle, kernel.last_cap(), no_pivot, preserve_fds, listen_env)
        if plan.hooks:
            import ocirun.hooks  # noqa: F401  (the init runs createContainer/startContainer hooks)
        timings.mark("plan")
        linux = spec.get("linux") or {}
        ctx = self.ctx
        ctx.timings = timings.enabled()
        if self.rootless:
            from ocirun.lifecycle import rootless
            rootless.check(spec, plan, linux)
            # no mknod in a user namespace: the host's nodes are bound in
            plan.dev_from_host = True
            # our own pid namespace may not be ours to come back to (birth.init_forks)
            ctx.early_ns = False
            if cgroup_manager != "disabled":
                self.manager = rootless.cgroup_manager(cgroup_manager, linux, self.cid)
            if self.manager is None:
                # the container's cgroups are ours: what its /sys/fs/cgroup shows, as the
                # host names them (rootfs.mount_cgroup: v1 hierarchies cannot be mounted
                # in a user namespace, and are bound)
                ctx.own_cgroups = fs.read_bytes("/proc/self/cgroup").decode("utf-8", "replace")
        if linux.get("seccomp"):
            ctx.seccomp = steps.prepare_seccomp(linux["seccomp"], self.root, plan.nnp)
        if not self.rootless or cgroup_manager == "disabled":
            self.manager = _cgroup_manager(cgroup_manager, linux, self.cid,
                                           spec.get("annotations"))
        self.memory_limit = _memory_limit(linux)
        timings.mark("cgroup manager")
        ctx.console_fd, self.relay_fd = steps.console(
            plan.terminal, console_socket, self.relay,
            "process.terminal is true: a detached container needs --console-socket")
        return plan, linux

    def _make(self, spec, raw, plan, linux, netns, pid_file):
        ctx = self.ctx
        st = self._state_dir(spec, plan, linux)
        if self.notify is not None:
            from ocirun.lifecycle import notify
            notify.make_dir(self.cdir)
            if self.for_run:  # (create: `start` listens, from before it lets the init go)
                self.notify.bind()
        if not self.for_run:
            posix.mkfifo(f"{self.cdir}/{FIFO}", 0o600)
            # O_RDWR: the open does not block, and init's read() then blocks until
            # `start` writes (a reader with no writer would see EOF).
            ctx.fifo_fd = posix.open(f"{self.cdir}/{FIFO}", posix.O_RDWR | posix.O_CLOEXEC)
        if self.manager is not None:
            self.manager.create()
            st.cgroup = self.manager.to_dict()
            # A runtime killed from here on leaves a cgroup that delete must find.
            write_atomic(f"{self.cdir}/{CGROUP_RECORD}", dumps(st.cgroup).encode())
            resources = device_rules(linux)
            if resources:
                self.manager.apply(resources)
            timings.mark("cgroup create + resources")
        self.chan, ctx.chan = sync.pair()
        if self.for_run and birth.init_forks(plan, ctx):
            # The init will be our grandchild: as a subreaper we inherit it when the
            # intermediate process exits, and `run` can wait for it.
            kernel.prctl(kernel.PR_SET_CHILD_SUBREAPER, 1)
        timings.mark("state dir")
        ctx.netns_fd = netns.take() if birth.init_unshares_netns(plan) else None
        # opened here, before the birth: the init must not look anything up in a /proc
        # that the container's mounts (or a joined mount namespace) decide
        ctx.proc_fd = procfs.open_root(kernel.KERNEL)
        if plan.idmaps:
            from ocirun.linux import idmap
            ctx.idmaps = idmap.trees(plan, ctx.proc_fd)
        born = birth.give_birth(plan, ctx, self.chan, self.manager, linux, self.for_run)
        self.pid = self.init_pid = born.pid
        timings.mark("execve (the runtime resumes)" if born.shared else "fork")
        self._close_childs_fds()
        if not born.shared:  # (a child that shared our memory has exec'd already)
            if not born.joined:
                self.manager.add(born.pid)
                st.cgroup = self.manager.to_dict()  # (systemd: the scope exists from here)
            self.chan.tell(Msg.GO, str(born.pid))
        # (After a birth, while the init sets itself up.) exec takes the container's
        # process defaults and seccomp profile from this copy: the bundle may change.
        write_atomic(f"{self.cdir}/config.json", raw)
        self._until_ready(st, plan)
        if born.shared and not self.for_run:
            # The waiter's execve came after READY: it closed the pipe, or failed and
            # wrote an ERROR line (run reads that while it waits, run.py).
            kind, payload = after_marks(self.chan)
            if kind == Msg.ERROR:
                raise OciError(payload)
        if plan.intel_rdt is not None:
            from ocirun.lifecycle import create_extra
            st.intel_rdt = create_extra.join_intel_rdt(plan.intel_rdt, self.cid, self.init_pid)
        st.pid = self.init_pid
        # exited_ok: a run's init has exec'd before we get here (it shared our memory),
        # and a short program may have exited already; unreaped, it keeps its pid.
        st.pid_start = proc_start_time(self.init_pid, exited_ok=True)
        st.save()
        if pid_file:
            _write_pid_file(pid_file, self.init_pid)
        if self.net_moved is not None:  # the devices are the container's from here on
            posix.close(self.net_moved[0])
            self.net_moved = None
        timings.mark("state write")
        master = None
        if self.relay_fd is not None:
            master = steps.receive_master(self.relay_fd)
            posix.close(self.relay_fd)
            self.relay_fd = None
        return Created(st, self.chan, master, self.notify)

    def _state_dir(self, spec, plan, linux):
        try:
            fs.makedirs(self.root, 0o711)
        except OSError as e:
            raise OciError(f"create state root `{self.root}`: {e.strerror}") from None
        check_root(self.root)
        try:
            posix.mkdir(self.cdir, 0o711)
        except FileExistsError:
            raise StateError(f"container `{self.cid}` already exists") from None
        except OSError as e:
            raise OciError(f"create state directory `{self.cdir}`: {e.strerror}") from None
        self.made_dir = True
        st = State(self.root, self.cid)
        st.bundle = self.bundle
        st.rootfs = plan.rootfs
        st.created = now_rfc3339()
        st.annotations = spec.get("annotations") or {}
        st.config_hooks = spec.get("hooks") or None
        st.namespaces = linux.get("namespaces") or []
        return st

    def _close_childs_fds(self):
        """Our copies of what only the child needs."""
        ctx = self.ctx
        ctx.chan.close()
        for name in ("fifo_fd", "waiter_fd", "console_fd", "proc_fd"):
            fd = getattr(ctx, name)
            if fd is not None:
                posix.close(fd)
                setattr(ctx, name, None)
        if ctx.seccomp is not None and ctx.seccomp.listener is not None:
            ctx.seccomp.listener[0].close()  # the init holds its own copy
        for fd in ctx.idmaps.values():
            posix.close(fd)
        ctx.idmaps = {}

    def _until_ready(self, st, plan):
        """Answer the init until it is READY (sync.py)."""
        chan = self.chan
        while True:
            kind, payload = chan.recv()
            if kind == Msg.MARK:
                timings.add_remote(payload)
            elif kind == Msg.READY:
                return
            elif kind == Msg.USERNS:
                from ocirun.lifecycle import create_extra
                create_extra.write_maps(self.pid, plan)
                chan.tell(Msg.MAPPED)
            elif kind == Msg.NETNS:
                self._move_net_devices(plan)
                chan.tell(Msg.NETNS_DONE)
            elif kind == Msg.PID:
                self.init_pid = int(payload)
                posix.waitpid(self.pid, 0)  # the intermediate process has exited
            elif kind == Msg.HOOKS:
                from ocirun.lifecycle import create_extra
                state_json = create_extra.run_create_hooks(st, self.init_pid, plan.hooks).decode()
                chan.tell(Msg.HOOKS_DONE, f"{self.init_pid} {state_json}")
            elif kind == Msg.ERROR:
                raise OciError(payload)
            else:
                raise OciError(self._why_gone())

    def _move_net_devices(self, plan):
        """linux.netDevices into the network namespace of the init (which waits); the
        namespace is held until create succeeds, so that undo can put them back."""
        from ocirun.linux import netdev
        fd = posix.open(f"/proc/{self.pid}/ns/net", posix.O_RDONLY | posix.O_CLOEXEC)
        try:
            self.net_moved = (fd, netdev.move_devices(plan.net_devices, fd))
        except BaseException:
            posix.close(fd)
            raise

    def _why_gone(self):
        """The init went away without a word: the OOM killer, if the cgroup counted a
        kill (the memory limit is then too low for the set-up), else say just that."""
        try:
            killed = self.manager is not None and self.manager.oom_kills()
        except OciError:
            killed = False
        if killed:
            return (f"container init was killed by the OOM killer during setup: the memory "
                    f"limit ({self.memory_limit}) is too low")
        return "container init exited during setup"

    def undo(self):
        """Failed create: leave no process, cgroup or state directory behind, and no
        host network device in the container's namespace."""
        if self.net_moved is not None:
            from ocirun.linux import netdev
            netdev.return_devices(self.net_moved[1], self.net_moved[0])
            posix.close(self.net_moved[0])
            self.net_moved = None
        if self.ctx.chan is not None:
            self.ctx.chan.close()
        for p in {self.pid, self.init_pid} - {0}:
            try:
                posix.kill(p, SIGKILL)
            except OSError:
                pass
        for p in {self.pid, self.init_pid} - {0}:
            try:
                posix.waitpid(p, 0)
            except ChildProcessError:
                pass
        if self.chan is not None:
            self.chan.close()
        if self.notify is not None:
            self.notify.close()
        if self.manager is not None and self.made_dir:
            try:
                self.manager.destroy()
            except Exception:
                pass
        if self.made_dir:
            remove_dir(self.cdir)


def _memory_limit(linux):
    """linux.resources' memory limit as the config says it, for messages."""
    resources = linux.get("resources") or {}
    limit = (resources.get("memory") or {}).get("limit")
    if type(limit) is int and limit > 0:
        return f"linux.resources.memory.limit = {limit}"
    unified = (resources.get("unified") or {}).get("memory.max")
    return f"linux.resources.unified memory.max = {unified}" if unified else "none set"


def _notify(spec, cdir):
    """NOTIFY_SOCKET is set: the container gets a socket of ours (lifecycle/notify.py)."""
    from ocirun.lifecycle import notify
    host = notify.host_socket()
    if host is None or not notify.add_to_spec(spec, cdir):
        return None
    return notify.Relay(cdir, host)


def _write_pid_file(path, pid):
    path = fs.abspath(path)
    try:
        write_atomic(path, str(pid).encode(), 0o644)
    except OSError as e:
        raise OciError(f"write pid file `{path}`: {e.strerror}") from None


def _cgroup_manager(kind, linux, cid, annotations=None):
    """The container's cgroup manager (None when cgroups are disabled: the container
    then lives in the runtime's cgroup, and a limit it asks for cannot apply: refused,
    as crun refuses it). Resources are validated here, before anything exists that
    would need undoing."""
    from ocirun import cgroups
    resources = linux.get("resources")
    if kind == "disabled":
        if resources:
            cgroups.validate_resources(resources, None)
            from ocirun.lifecycle import create_extra
            create_extra.no_limits_without_cgroups(resources)
        return None
    return cgroups.open_manager(kind, linux.get("cgroupsPath"), cid, resources=resources,
                                annotations=annotations)


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
