"""The parent <-> init sync protocol, over two pipes (a socketpair would cost the
`socket` import; pipes are enough for these short text messages).

  runtime (parent)                               container init (child)
  ----------------                               ----------------------
  fork ------------------------------------------> (pid 1 if the parent made the pid ns)
  put pid in the cgroup
  GO -------------------------------------------->  setns(paths), [unshare(NEWUSER)]
                                       <----------  USERNS        (only for a new user ns)
  write uid_map / gid_map
  MAPPED ---------------------------------------->  unshare(the rest) [+ fork pid 1]
                                       <----------  PID <n>       (only if init is a grandchild)
                                                    sysctl, hostname, mounts, /dev, pivot_root,
                                                    resolve the executable
                                       <----------  READY
  write state.json, pid file, run hooks              create: init waits on the exec fifo
  (run: at the same time as ...)                    run: goes on at once
                                                    user, caps, no_new_privs, seccomp
                                       <----------  EOF (execve closed the pipe) | ERROR <msg>

Any failure in the child is sent as `ERROR <one line>` and the child _exits: nothing
unwinds into the runtime's code in the child.

`run` and `create` of an init that needs nothing from the runtime (no user namespace,
no hooks before pivot_root, no seccomp listener; lifecycle/create.py _can_share_memory
has the rest) start it in the runtime's memory instead of a fork (_clone_vm): the
runtime is suspended until the init's execve (for `create`, of the waiter), so there
is no GO; the init's messages (T, READY, ERROR) wait in the pipe and the runtime reads
them when it resumes.
"""
import posix


class Channel:
    """One end: read lines from `rfd`, write lines to `wfd`."""

    __slots__ = ("rfd", "wfd", "buf")

    def __init__(self, rfd, wfd):
        self.rfd = rfd
        self.wfd = wfd
        self.buf = b""

    def send(self, tag, payload=""):
        line = f"{tag} {payload}".replace("\n", " ") + "\n" if payload else tag + "\n"
        posix.write(self.wfd, line.encode("utf-8", "replace"))

    def recv(self):
        """Next message as (tag, payload); ("EOF", "") when the peer closed."""
        while b"\n" not in self.buf:
            chunk = posix.read(self.rfd, 4096)
            if not chunk:
                return "EOF", ""
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        tag, _, payload = line.decode("utf-8", "replace").partition(" ")
        return tag, payload

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
