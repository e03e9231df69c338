"""ocirun as a Python library: the command's operations, without spawning the command.

    from ocirun.api import Runtime
    rt = Runtime(root="/run/ocirun", cgroup_manager="cgroupfs")
    code = rt.run("job-1", "/path/to/bundle")            # create + start + wait + delete
    c = rt.create("svc", "/path/to/bundle")              # init waits for start
    c.start(); out = c.exec_output(["hostname"]); c.kill("KILL"); c.wait(); c.delete()

docs/api.md has a tested example of every call. Containers need root (the calls
create namespaces, mounts and cgroups), Linux 5.12 or newer and CPython 3.11 or newer.

What the calls do to the host, as the command does: `create` and `run` make a state
directory <root>/<id>/, the container's cgroup, its namespaces and mounts (in its own
mount namespace; without one, under its rootfs in the caller's), its init process (a
child of the calling process) and a compiled seccomp filter in <root>/.cache/seccomp/;
`delete` removes them. Every call raises OciError (one line) on failure and then
leaves nothing behind. What they do to the calling process: containers are its
children until they exit (`wait` and `delete` reap them); the container's process
uses the caller's fds 0-2 unless told otherwise; `run` of a container with a new
user namespace and a new pid or time namespace makes the caller a child subreaper (its
init is then a grandchild); a container with a new network namespace gives it, for a
fraction of a millisecond during create, one more child (the helper that makes the
namespace: no SIGCHLD, reaped before the call returns). No signal handler is
installed unless forward_signals=True asks for one, and then only for the call.

The calls are not thread-safe with each other on one container, and timings
(record_timings) are process-wide."""
from ocirun.errors import (  # noqa: F401  (re-exported for callers)
    ConfigError, NotFound, OciError, StateError, UsageError,
)

__all__ = ["Runtime", "Container", "Output", "Phase", "Timings", "record_timings",
           "default_config", "OciError", "ConfigError", "NotFound", "StateError",
           "UsageError"]

# typing is not imported at run time (its import costs ~10 ms); type checkers
# read these names.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, Iterable, Sequence, Union

    FileLike = Union[int, IO[Any]]

# The signals `run` and `exec` forward to the container with forward_signals=True.
_FORWARDED = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH")


def default_config(args: "Sequence[str] | None" = None, *, terminal: bool = False,
                   rootless: bool = False) -> "dict[str, Any]":
    """The config.json `ocirun spec` writes (runc's defaults: a shell in ./rootfs,
    namespaces pid, network, ipc, uts, mount, cgroup, a read-only root), with
    process.args set to `args` (if given) and process.terminal false unless `terminal` (a
    container run from a library rarely has a terminal to give). Touches nothing: it
    returns a new dict to change and write as <bundle>/config.json."""
    from ocirun.config.default import default_spec
    spec = default_spec(rootless=rootless)
    if args is not None:
        spec["process"]["args"] = list(args)
    spec["process"]["terminal"] = bool(terminal)
    return spec


class Output:
    """What exec_output returns: the process's exit code (128+N if signal N killed
    it) and what it wrote to its stdout and stderr before it exited."""

    __slots__ = ("returncode", "stdout", "stderr")

    def __init__(self, returncode: int, stdout: bytes, stderr: bytes):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self) -> str:
        return (f"Output(returncode={self.returncode}, stdout={self.stdout!r}, "
                f"stderr={self.stderr!r})")


class Container:
    """A handle on one container under a Runtime's root (Runtime.create,
    Runtime.container). It holds only the id: each call reads the container's state
    again, so a handle stays right whoever changes the container."""

    __slots__ = ("runtime", "id")

    def __init__(self, runtime: "Runtime", cid: str):
        self.runtime = runtime
        self.id = cid

    def state(self) -> "dict[str, Any]":
        """Runtime.state of this container."""
        return self.runtime.state(self.id)

    @property
    def status(self) -> str:
        """"created", "running", "paused" or "stopped" (reads the state)."""
        return self.state()["status"]

    @property
    def pid(self) -> int:
        """The init's pid as the host sees it; 0 once it has stopped."""
        return self.state()["pid"]

    def start(self) -> None:
        """Runtime.start of this container."""
        self.runtime.start(self.id)

    def exec(self, args: "Sequence[str]", **kw: "Any") -> int:
        """Runtime.exec in this container; returns the exit code."""
        return self.runtime.exec(self.id, args, **kw)

    def exec_output(self, args: "Sequence[str]", **kw: "Any") -> Output:
        """Runtime.exec_output in this container: exit code, stdout and stderr."""
        return self.runtime.exec_output(self.id, args, **kw)

    def kill(self, signal: "int | str" = "TERM", all: bool = False) -> None:
        """Runtime.kill of this container."""
        self.runtime.kill(self.id, signal, all)

    def wait(self, timeout: "float | None" = None) -> "int | None":
        """Runtime.wait for this container."""
        return self.runtime.wait(self.id, timeout)

    def delete(self, force: bool = False) -> None:
        """Runtime.delete of this container."""
        self.runtime.delete(self.id, force)

    def __repr__(self) -> str:
        return f"Container({self.id!r})"


class Runtime:
    """The command's operations on one state root: `root` is the command's --root
    (where each container's state directory lives; created on first use, mode 0711),
    `cgroup_manager` its --cgroup-manager: "cgroupfs", "systemd" or "disabled" (no
    cgroup: linux.resources are then not applied). Making one touches nothing."""

    def __init__(self, root: str = "/run/ocirun", cgroup_manager: str = "cgroupfs"):
        if cgroup_manager not in ("cgroupfs", "systemd", "disabled"):
            raise UsageError(f"cgroup_manager: unknown manager `{cgroup_manager}` "
                             "(cgroupfs, systemd or disabled)")
        self.root = root
        self.cgroup_manager = cgroup_manager

    def create(self, cid: str, bundle: str, config: "str | None" = None,
               pid_file: "str | None" = None, console_socket: "str | None" = None,
               no_pivot: bool = False, preserve_fds: int = 0) -> Container:
        """Create container `cid` from the bundle directory (its config.json, or
        `config`, a path relative to it): the state directory, cgroup, namespaces,
        mounts, createRuntime/createContainer hooks, and an init process, a child of
        this process, that waits for start(). The init holds this process's fds 0-2
        (or, with process.terminal, a pty sent to `console_socket`) and, when
        `preserve_fds` is N, fds 3..3+N-1. `pid_file` gets the init's pid."""
        from ocirun.lifecycle.create import create
        c = create(self.root, cid, bundle=bundle, config_path=config, pid_file=pid_file,
                   console_socket=console_socket, no_pivot=no_pivot,
                   preserve_fds=preserve_fds, cgroup_manager=self.cgroup_manager)
        c.chan.close()
        return Container(self, cid)

    def run(self, cid: str, bundle: str, config: "str | None" = None, detach: bool = False,
            keep: bool = False, forward_signals: bool = False, pid_file: "str | None" = None,
            console_socket: "str | None" = None, no_pivot: bool = False,
            preserve_fds: int = 0) -> int:
        """Create and start container `cid` (as create, without the wait for start)
        and wait for it to exit; returns its exit code (128+N if signal N killed it)
        and deletes it unless `keep`. The container's process uses this process's
        fds 0-2. With `detach`, returns 0 once it runs: it stays a child of this
        process (wait() reaps it, or delete()). With `forward_signals`, TERM, INT,
        HUP, QUIT, USR1, USR2 and WINCH sent to this process go to the container
        while it runs (main thread only; the previous handlers come back after)."""
        from ocirun.lifecycle.run import run
        saved = _take_signals() if forward_signals and not detach else None
        try:
            return run(self.root, cid, detach=detach, keep=keep,
                       forward_signals=forward_signals, bundle=bundle, config_path=config,
                       pid_file=pid_file, console_socket=console_socket, no_pivot=no_pivot,
                       preserve_fds=preserve_fds, cgroup_manager=self.cgroup_manager)
        finally:
            if saved is not None:
                _restore_signals(saved)

    def start(self, cid: str) -> None:
        """Start created container `cid`: its init execs the process of its config
        (one byte written to its exec fifo), then the poststart hooks run."""
        from ocirun.lifecycle.start import start
        start(self.root, cid)

    def exec(self, cid: str, args: "Sequence[str]", env: "Iterable[str]" = (),
             cwd: "str | None" = None, user: "str | None" = None, detach: bool = False,
             tty: bool = False, process: "dict[str, Any] | None" = None,
             pid_file: "str | None" = None, console_socket: "str | None" = None,
             stdin: "FileLike | None" = None, stdout: "FileLike | None" = None,
             stderr: "FileLike | None" = None, forward_signals: bool = False) -> int:
        """Run `args` in running container `cid` (its namespaces, root, cgroup and
        seccomp filter; env entries "K=V" added to its process's, `user` "UID[:GID]")
        or a whole runtime-spec `process` dict; returns the exit code (128+N if
        signal N killed it), or 0 once it runs with `detach` (then it stays a child
        of this process until it exits). The process is forked from this one and
        gets this process's fds 0-2, or `stdin`/`stdout`/`stderr` (an fd or a file
        object). forward_signals: as in run()."""
        from ocirun.lifecycle import exec as ex
        from ocirun.state import load
        if process is None:
            base = ex.load_container_config(load(self.root, cid)).get("process") or {}
            process = ex.process_from_args(base, args, env, cwd, user, tty=tty)
        stdio = (_fileno(stdin, "stdin"), _fileno(stdout, "stdout"),
                 _fileno(stderr, "stderr"))
        forward = forward_signals and not detach
        saved = _take_signals() if forward else None
        try:
            return ex.exec_process(self.root, cid, process, detach=detach, pid_file=pid_file,
                                   console_socket=console_socket,
                                   stdio=stdio if stdio != (None, None, None) else None,
                                   forward_signals=forward)
        finally:
            if saved is not None:
                _restore_signals(saved)

    def exec_output(self, cid: str, args: "Sequence[str]", env: "Iterable[str]" = (),
                    cwd: "str | None" = None, user: "str | None" = None,
                    stdin: "FileLike | None" = None) -> Output:
        """exec() that captures what the process writes to stdout and stderr (in two
        memory files, read once it has exited: nothing is lost however much it
        writes); stdin is this process's unless given."""
        import os
        out = os.memfd_create("ocirun-exec-stdout", os.MFD_CLOEXEC)
        err = os.memfd_create("ocirun-exec-stderr", os.MFD_CLOEXEC)
        try:
            code = self.exec(cid, args, env=env, cwd=cwd, user=user, stdin=stdin, stdout=out,
                             stderr=err)
            return Output(code, _read_all(out), _read_all(err))
        finally:
            os.close(out)
            os.close(err)

    def kill(self, cid: str, signal: "int | str" = "TERM", all: bool = False) -> None:
        """Send `signal` (a number, or a name with or without SIG: "TERM", "SIGKILL")
        to the init of container `cid`, or with `all` to every process in its
        cgroup. SIGKILL to a paused container thaws it, so that it can die."""
        from ocirun.lifecycle.kill import kill
        from ocirun.lifecycle.signals import parse_signal
        kill(self.root, cid, parse_signal(str(signal)), all)

    def wait(self, cid: str, timeout: "float | None" = None) -> "int | None":
        """Wait until the init of container `cid` has exited (at most `timeout`
        seconds: then OciError). Returns its exit code (128+N if signal N killed it)
        when it was a child of this process (create, run with detach), which reaps
        it; None when another process started it (that one gets its status)."""
        import select
        from ocirun.lifecycle.process import open_init
        from ocirun.state import load
        st = load(self.root, cid)
        fd = open_init(st)
        if fd is not None:  # (None: it has exited, and is reaped unless ours)
            try:
                p = select.poll()
                p.register(fd, select.POLLIN)
                if not p.poll(-1 if timeout is None else int(timeout * 1000)):
                    raise StateError(f"container `{cid}` still runs after {timeout} s")
            finally:
                import os
                os.close(fd)
        return _reap(st)

    def delete(self, cid: str, force: bool = False) -> None:
        """Delete container `cid`: its cgroup, the mounts it made outside a mount
        namespace of its own, its state directory, then the poststop hooks. A
        container that still runs is an error unless `force`, which kills its
        processes first. An init that was a child of this process is reaped."""
        from ocirun.lifecycle.delete import delete
        from ocirun.state import load
        try:
            st = load(self.root, cid)
        except NotFound:
            st = None
        delete(self.root, cid, force)
        if st is not None:
            _reap(st)

    def state(self, cid: str) -> "dict[str, Any]":
        """The OCI state of container `cid` (ociVersion, id, pid, status, bundle,
        rootfs, created, owner, annotations), as `ocirun state` prints it. Reads its
        state directory and /proc; changes nothing."""
        from ocirun.lifecycle.state import state
        return state(self.root, cid)

    def list(self) -> "list[dict[str, Any]]":
        """The state() of every container under this root."""
        from ocirun.lifecycle.state import list_states
        return list_states(self.root)

    def container(self, cid: str) -> Container:
        """A handle on existing container `cid` (NotFound if there is none)."""
        self.state(cid)
        return Container(self, cid)


class Phase:
    """One phase of a recording: its name, its own duration and the time from the
    start of the recording to its end, in milliseconds. Names that start with
    "init: " are the container init's (reported over its sync pipe)."""

    __slots__ = ("name", "ms", "total_ms")

    def __init__(self, name: str, ms: float, total_ms: float):
        self.name = name
        self.ms = ms
        self.total_ms = total_ms

    def __repr__(self) -> str:
        return f"Phase({self.name!r}, ms={self.ms:.3f}, total_ms={self.total_ms:.3f})"


class Timings:
    """What record_timings() returns: a context manager; `phases` (a list of Phase,
    in the order they ended) is filled when its `with` block ends."""

    __slots__ = ("phases", "_saved")

    def __init__(self) -> None:
        self.phases: "list[Phase]" = []
        self._saved: "Any" = None

    def __enter__(self) -> "Timings":
        from ocirun import timings
        self._saved = timings.begin()
        return self

    def __exit__(self, *exc: object) -> None:
        from ocirun import timings
        self.phases = [Phase(*row) for row in timings.end(self._saved)]
        self._saved = None


def record_timings() -> Timings:
    """The phases of the calls made in a `with` block, as `ocirun --timings` shows
    them: the runtime's (config load, validation, plan, seccomp, cgroup, fork or
    clone, state...) and the container init's (namespaces, mounts, pivot_root,
    execve...). Recording costs a clock read per phase; it is process-wide (one at
    a time) and off outside the block."""
    return Timings()


def _fileno(f: "FileLike | None", name: str) -> "int | None":
    if f is None:
        return None
    fd = f if isinstance(f, int) else f.fileno()
    import os
    try:
        os.fstat(fd)
    except OSError:
        raise UsageError(f"{name}: fd {fd} is not open") from None
    return fd


def _read_all(fd: int) -> bytes:
    import os
    chunks: "list[bytes]" = []
    offset = 0
    while True:
        chunk = os.pread(fd, 1 << 20, offset)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)


def _reap(st: "Any") -> "int | None":
    """The exit code of the container's init if it is an exited child of ours (the
    same pid *and* start time: never another child that got a recycled pid)."""
    import os
    from ocirun.state import proc_start_time
    if not st.pid or proc_start_time(st.pid, exited_ok=True) != st.pid_start:
        return None
    try:
        pid, status = os.waitpid(st.pid, os.WNOHANG)
    except ChildProcessError:
        return None
    if pid == 0:
        return None
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _take_signals() -> "list[tuple[int, Any]]":
    """The handlers forward_signals replaces, to put back after the call."""
    import signal
    saved = []
    for name in _FORWARDED:
        sig = getattr(signal, name)
        saved.append((sig, signal.getsignal(sig)))
    try:
        for sig, handler in saved:
            signal.signal(sig, handler)  # ValueError outside the main thread
    except ValueError:
        raise UsageError("forward_signals: only from the main thread (signal handlers)") from None
    return saved


def _restore_signals(saved: "list[tuple[int, Any]]") -> None:
    import signal
    for sig, handler in saved:
        # (None: a handler installed from C; the default is the nearest we can put back)
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
