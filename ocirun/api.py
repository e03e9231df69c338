"""ocirun as a Python library: the CLI's operations without spawning the CLI.

    from ocirun.api import Runtime
    rt = Runtime(root="/run/ocirun", cgroup_manager="cgroupfs")
    code = rt.run("job-1", "/path/to/bundle")            # create + start + wait + delete
    c = rt.create("svc", "/path/to/bundle")              # init waits for start
    c.start(); c.exec(["sh", "-c", "echo hi"]); c.kill("TERM"); c.delete(force=True)

Every call raises ocirun.errors.OciError (one-line message) on failure, and leaves
nothing behind, as the CLI does. The calling process is never changed, except that
`run` of a container with a new user namespace makes it a child subreaper (the init is
then a grandchild it must be able to wait for). A container with a new network
namespace briefly gives it one more child, the helper that makes the namespace
(lifecycle/create.py NetnsAhead): no SIGCHLD, reaped before the call returns."""
from ocirun.errors import OciError  # noqa: F401  (re-exported for callers)


class Container:
    """A handle on one container under a Runtime's root."""

    __slots__ = ("runtime", "id")

    def __init__(self, runtime, cid):
        self.runtime = runtime
        self.id = cid

    def state(self):
        return self.runtime.state(self.id)

    @property
    def status(self):
        return self.state()["status"]

    @property
    def pid(self):
        return self.state()["pid"]

    def start(self):
        self.runtime.start(self.id)

    def exec(self, args, **kw):
        return self.runtime.exec(self.id, args, **kw)

    def kill(self, signal="TERM", all=False):
        self.runtime.kill(self.id, signal, all)

    def delete(self, force=False):
        self.runtime.delete(self.id, force)

    def __repr__(self):
        return f"Container({self.id!r})"


class Runtime:
    """The operations of the CLI on one state root."""

    def __init__(self, root="/run/ocirun", cgroup_manager="cgroupfs"):
        self.root = root
        self.cgroup_manager = cgroup_manager

    def create(self, cid, bundle, config=None, pid_file=None, console_socket=None,
               no_pivot=False, preserve_fds=0):
        from ocirun.lifecycle.create import create
        c = create(self.root, cid, bundle=bundle, config_path=config, pid_file=pid_file,
                   console_socket=console_socket, no_pivot=no_pivot, preserve_fds=preserve_fds,
                   cgroup_manager=self.cgroup_manager)
        c.chan.close()
        return Container(self, cid)

    def run(self, cid, bundle, config=None, detach=False, keep=False, forward_signals=False,
            **kw):
        """Create, start and (unless detach) wait; returns the exit code (128+N for
        signal N) and deletes the container unless keep."""
        from ocirun.lifecycle.run import run
        return run(self.root, cid, detach=detach, keep=keep, forward_signals=forward_signals,
                   bundle=bundle, config_path=config, cgroup_manager=self.cgroup_manager, **kw)

    def start(self, cid):
        from ocirun.lifecycle.start import start
        start(self.root, cid)

    def exec(self, cid, args, env=(), cwd=None, user=None, detach=False, tty=False,
             process=None, pid_file=None, console_socket=None):
        """Run `args` (or a runtime-spec `process` dict) in the container; returns its
        exit code, or 0 once it runs with detach."""
        from ocirun.lifecycle import exec as ex
        from ocirun.state import load
        if process is None:
            base = ex.load_container_config(load(self.root, cid)).get("process") or {}
            process = ex.process_from_args(base, args, env, cwd, user, tty=tty)
        return ex.exec_process(self.root, cid, process, detach=detach, pid_file=pid_file,
                               console_socket=console_socket)

    def kill(self, cid, signal="TERM", all=False):
        from ocirun.lifecycle.kill import kill
        from ocirun.lifecycle.signals import parse_signal
        kill(self.root, cid, parse_signal(str(signal)), all)

    def delete(self, cid, force=False):
        from ocirun.lifecycle.delete import delete
        delete(self.root, cid, force)

    def state(self, cid):
        from ocirun.lifecycle.state import state
        return state(self.root, cid)

    def list(self):
        from ocirun.lifecycle.state import list_states
        return list_states(self.root)

    def container(self, cid):
        self.state(cid)  # raises "does not exist"
        return Container(self, cid)
