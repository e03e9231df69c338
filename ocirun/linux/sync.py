"""The runtime <-> init sync protocol, over two pipes (a socketpair would cost the
`socket` import; pipes are enough for these short text messages). Every message is one
line, `KIND [payload]`; the kinds are the Msg names below, never spelled elsewhere.

  runtime (lifecycle/create.py, birth.py)        container init (linux/init.py)
  ---------------------------------------        ------------------------------
  fork (birth.py) -------------------------------> (pid 1 if the runtime made the pid ns)
  put its pid in the cgroup
  GO <pid> -------------------------------------->  setns(paths), [unshare(NEWUSER)]
                                       <----------  USERNS        (a new user namespace)
  write uid_map / gid_map
  MAPPED ---------------------------------------->  unshare(the rest)
                                       <----------  NETNS         (linux.netDevices to move)
  move the devices into its network namespace
  NETNS_DONE ------------------------------------>  [fork pid 1]
                                       <----------  PID <pid>     (the init is a grandchild)
                                                    sysctl, hostname, mounts, /dev, masks
                                       <----------  HOOKS         (hooks before pivot_root,
  prestart, createRuntime hooks                                    or a seccomp listener)
  HOOKS_DONE <pid> <state> --------------------->   createContainer hooks, pivot_root,
                                                    the executable looked up
                                       <----------  READY
  write state.json, the pid file                    create: waits on the exec fifo
  (run: at the same time as ...)                    run: goes on at once
                                                    user, caps, no_new_privs, seccomp
                                       <----------  EOF (execve closed the pipe) | ERROR <msg>
  any time, with --timings:            <----------  MARK <phase> <ns>

`exec` (lifecycle/exec.py, linux/exec_init.py) is the same from GO on, with no USERNS,
PID, HOOKS or READY: GO carries the child's pid as the host sees it (for a seccomp
listener), and its execve closes the pipe.

Any failure in the child is sent as `ERROR <one line>` and the child _exits: nothing
unwinds into the runtime's code in the child.

An init that needs nothing from the runtime before its execve (no user namespace, no
hooks before pivot_root, no seccomp listener; lifecycle/birth.py has the rest) starts in
the runtime's memory instead of a fork: the runtime is suspended until the init's
execve (for `create`, of the waiter), so there is no GO; the init's messages (MARK,
READY, ERROR) wait in the pipe and the runtime reads them when it resumes.
"""
import posix


class Msg:
    """The message kinds, as they are written on the wire."""
    GO = "GO"
    USERNS = "USERNS"
    MAPPED = "MAPPED"
    NETNS = "NETNS"
    NETNS_DONE = "NETNS_DONE"
    PID = "PID"
    HOOKS = "HOOKS"
    HOOKS_DONE = "HOOKS_DONE"
    READY = "READY"
    ERROR = "ERROR"
    MARK = "MARK"
    EOF = "EOF"  # not sent: what recv() returns once the other end is closed


KINDS = frozenset(v for k, v in vars(Msg).items() if not k.startswith("_"))


class ProtocolError(Exception):
    """The other side sent something else than the step expects (or closed)."""

    def __init__(self, kind, payload):
        super().__init__(f"{kind} {payload}".strip())
        self.kind = kind
        self.payload = payload


class Channel:
    """One end: read lines from `rfd`, write lines to `wfd`."""

    __slots__ = ("rfd", "wfd", "buf")

    def __init__(self, rfd, wfd):
        self.rfd = rfd
        self.wfd = wfd
        self.buf = b""

    def send(self, kind, payload=""):
        line = f"{kind} {payload}".replace("\n", " ") + "\n" if payload else kind + "\n"
        posix.write(self.wfd, line.encode("utf-8", "replace"))

    def tell(self, kind, payload=""):
        """send(), for the runtime's side of a step that reads the answer next: a peer
        that has gone (EPIPE) is no error here, since what it wrote before it went (an
        ERROR line) or its silence (EOF) is what the next recv() returns."""
        try:
            self.send(kind, payload)
        except BrokenPipeError:
            pass

    def recv(self):
        """Next message as (kind, payload); (Msg.EOF, "") when the peer closed."""
        while b"\n" not in self.buf:
            chunk = posix.read(self.rfd, 4096)
            if not chunk:
                return Msg.EOF, ""
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        kind, _, payload = line.decode("utf-8", "replace").partition(" ")
        return kind, payload

    def expect(self, kind):
        """The payload of the next message, which must be `kind`: anything else (an
        ERROR, EOF) raises ProtocolError with what came instead."""
        got, payload = self.recv()
        if got != kind:
            raise ProtocolError(got, payload)
        return payload

    def close(self):
        for fd in (self.rfd, self.wfd):
            try:
                posix.close(fd)
            except OSError:
                pass


def pair():
    """Two channels: (parent's, child's). All four fds are O_CLOEXEC."""
    p2c_r, p2c_w = posix.pipe2(posix.O_CLOEXEC)
    c2p_r, c2p_w = posix.pipe2(posix.O_CLOEXEC)
    return Channel(c2p_r, p2c_w), Channel(p2c_r, c2p_w)
