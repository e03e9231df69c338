"""sd_notify(3) through a container: NOTIFY_SOCKET in the runtime's environment.

A service of Type=notify that runs a container learns that it is ready from the
container's READY=1. The container cannot reach the host's socket (another mount
namespace, often another user), and systemd only listens to the service's main process
anyway; so, as runc does:

  - create (and run) give the container a socket of the runtime's: the directory
    `<state>/notify` bound read-only at /run/notify, the socket /run/notify/notify.sock,
    and NOTIFY_SOCKET=/run/notify/notify.sock in the process's environment (runc's
    layout, which podman uses for its own proxy too: systemd in the container keeps
    /run/systemd/notify for itself);
  - start, and run -d, listen there until the container says READY=1 (or its init
    exits), pass on what it said, with MAINPID=<the init's pid> before READY=1, then
    wait for the BARRIER=1 sd_notify_barrier(3) sends, so that systemd has read MAINPID
    before we exit;
  - run (in the foreground) relays for the container's whole life, from a thread, with
    MAINPID=<its own pid>: it stays the service's main process, as runc's does.

The container is not trusted: only the assignments of sd_notify(3) that speak about
the service's state are passed on (READY, STATUS, ...); MAINPID= (a host pid a container
could name), file descriptor store and NOTIFYACCESS= requests never are.
"""
import posix

import _socket

from ocirun import fs

IN_CONTAINER = "/run/notify"
NAME = "notify.sock"
BARRIER_TIMEOUT_MS = 10000
LINGER_MS = 20
FORWARDED = (b"READY", b"RELOADING", b"STOPPING", b"STATUS", b"ERRNO", b"BUSERROR",
             b"EXIT_STATUS", b"WATCHDOG", b"WATCHDOG_USEC", b"EXTEND_TIMEOUT_USEC",
             b"MONOTONIC_USEC")


def host_socket():
    """$NOTIFY_SOCKET as a connect() address (a leading @ is the abstract namespace),
    or None when unset or not a unix socket path."""
    v = fs.getenv("NOTIFY_SOCKET")
    if not v:
        return None
    if v[0] == "@":
        return "\0" + v[1:]
    return v if v[0] == "/" else None


def add_to_spec(spec, state_dir):
    """The container's side: the mount and the variable; False when the container
    gets none. Before validation: a config whose mounts or process are malformed is
    left for validation to refuse."""
    process = spec.get("process")
    mounts = spec.get("mounts", [])
    if not isinstance(process, dict) or not isinstance(mounts, list):
        return False
    # only into a mount namespace of the container's own: without one (or in one it
    # joins) the bind would land in the runtime's, or another container's, tree
    linux = spec.get("linux")
    spaces = linux.get("namespaces") if isinstance(linux, dict) else None
    if not isinstance(spaces, list) or not any(
            isinstance(n, dict) and n.get("type") == "mount" and not n.get("path") for n in spaces):
        return False
    env = process.get("env")
    if env is None:
        env = process["env"] = []
    if not isinstance(env, list):
        return False
    env[:] = [e for e in env if not (isinstance(e, str) and e.startswith("NOTIFY_SOCKET="))]
    env.append(f"NOTIFY_SOCKET={IN_CONTAINER}/{NAME}")
    mounts.append({"destination": IN_CONTAINER, "type": "bind", "source": f"{state_dir}/notify",
                   "options": ["bind", "nosuid", "noexec", "nodev", "ro"]})
    spec["mounts"] = mounts
    return True


def make_dir(state_dir):
    posix.mkdir(f"{state_dir}/notify", 0o755)


class Relay:
    """The socket in `<state>/notify` and what is passed on to the host's."""

    __slots__ = ("sock", "host", "path")

    def __init__(self, state_dir, host):
        self.host = host
        self.path = f"{state_dir}/notify/{NAME}"
        self.sock = None

    def bind(self):
        try:
            posix.unlink(self.path)
        except FileNotFoundError:
            pass
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
        try:
            s.bind(self.path)
            # any user of the container may notify (a user namespace's root included)
            posix.chmod(self.path, 0o777)
        except BaseException:
            s.close()
            raise
        self.sock = s
        return self

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def forward(self, data, mainpid, barrier=True):
        """Pass one datagram of the container's on; True if it said READY=1 (then,
        with `barrier`, wait until the manager has read it)."""
        lines = [ln for ln in data.split(b"\n") if ln.partition(b"=")[0] in FORWARDED]
        if not lines:
            return False
        ready = b"READY=1" in lines
        if ready:
            lines.insert(0, b"MAINPID=%d" % mainpid)
        out = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
        try:
            out.sendto(b"\n".join(lines) + b"\n", self.host)
            if ready and barrier:
                _barrier(out, self.host)
        except OSError:
            pass  # nobody listens any more: the container goes on regardless
        finally:
            out.close()
        return ready

    def barrier(self):
        out = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
        try:
            _barrier(out, self.host)
        finally:
            out.close()

    def until_ready(self, init_pidfd, mainpid):
        """start, run -d: relay until READY=1 or the init's exit."""
        import select
        p = select.poll()
        p.register(self.sock.fileno(), select.POLLIN)
        p.register(init_pidfd, select.POLLIN)
        while True:
            for fd, _ in p.poll():
                if fd == init_pidfd:
                    # the last words of an init that exited at once still count
                    self._drain(mainpid, 0)
                    return
                if self.forward(self.sock.recv(4096), mainpid, barrier=False):
                    # What comes right after READY=1 too: the container's own
                    # sd_notify_barrier(3) (systemd-notify sends one) is answered by
                    # reading it, which closes its fd; a closed socket would refuse it.
                    # Then ours, so that the manager has MAINPID before we exit.
                    self._drain(mainpid, LINGER_MS)
                    self.barrier()
                    return

    def _drain(self, mainpid, linger_ms):
        import select
        p = select.poll()
        p.register(self.sock.fileno(), select.POLLIN)
        while p.poll(linger_ms):
            try:
                self.forward(self.sock.recv(4096), mainpid)
            except OSError:
                return

    def in_background(self):
        """run in the foreground: a thread relays everything for as long as the socket
        is open, with MAINPID=<this process> (the service's main process stays us)."""
        import _thread
        _thread.start_new_thread(self._loop, (posix.getpid(),))

    def _loop(self, mainpid):
        import _signal
        # signals are for the main thread, which forwards them to the container
        _signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())
        sock = self.sock
        while True:
            try:
                data = sock.recv(4096)
            except OSError:
                return  # closed: the container has exited
            self.forward(data, mainpid)


def wait_ready(relay, st):
    """start, run -d: return once the container said READY=1 (or its init exited);
    MAINPID is the init's."""
    from ocirun.lifecycle.process import open_init
    fd = open_init(st)
    try:
        if fd is not None:
            relay.until_ready(fd, st.pid)
    finally:
        relay.close()
        if fd is not None:
            posix.close(fd)


def _barrier(sock, host):
    """sd_notify_barrier(3): BARRIER=1 with the write end of a pipe; the manager closes
    it once it has handled what came before. A listener that is not systemd (and keeps
    the fd) costs the timeout, at most."""
    import _struct
    import select
    r, w = posix.pipe2(posix.O_CLOEXEC)
    try:
        sock.sendmsg([b"BARRIER=1"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                                       _struct.pack("i", w))], 0, host)
        posix.close(w)
        w = -1
        p = select.poll()
        p.register(r, select.POLLIN)
        p.poll(BARRIER_TIMEOUT_MS)
    except OSError:
        pass
    finally:
        posix.close(r)
        if w >= 0:
            posix.close(w)
