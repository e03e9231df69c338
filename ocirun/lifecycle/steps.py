"""The steps create, run and exec share, written once."""
import posix

import _signal

from ocirun import kernel
from ocirun.errors import OciError

# The signals `run` and foreground `exec` pass on to the container's process.
FORWARDED = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGQUIT,
             _signal.SIGUSR1, _signal.SIGUSR2, _signal.SIGWINCH)
NS_NAMES = {kernel.CLONE_NEWPID: "pid", kernel.CLONE_NEWTIME: "time"}


def open_fds(n):
    """The fds of 3..3+n-1 that are open now, before anything of ours is: the ones
    --preserve-fds passes (a closed one is not there, as with crun; one of ours that
    later takes its number is close-on-exec and stays ours)."""
    out = []
    for fd in range(3, 3 + (n or 0)):
        try:
            posix.fstat(fd)
            out.append(fd)
        except OSError:
            pass
    return tuple(out)


def socket_activation():
    """systemd's socket activation (sd_listen_fds(3)), as runc passes it on: LISTEN_FDS
    fds from 3 on, meant for us (LISTEN_PID ours, or unset as crun allows). -> (how
    many, the environment the process gets: LISTEN_FDS=n, LISTEN_PID=1)."""
    from ocirun import fs
    n = fs.getenv("LISTEN_FDS")
    pid = fs.getenv("LISTEN_PID")
    if not n or not n.isdigit() or int(n) == 0 or (pid and pid != str(posix.getpid())):
        return 0, ()
    return int(n), (f"LISTEN_FDS={n}", "LISTEN_PID=1")


def prepare_seccomp(profile, root, nnp):
    """linux.seccomp -> a Prepared program (compiled or from the cache), checked
    against the exec program's needs, its listener connected (a host path: before
    fork and pivot_root)."""
    from ocirun import seccomp, timings
    from ocirun.linux import trampoline
    prepared = seccomp.prepare(profile, seccomp.cache_dir(root))
    trampoline.check_profile(prepared, nnp)
    if prepared.notify:
        seccomp.connect_listener(prepared)
    timings.mark("seccomp prepare (key + cache or compile)")
    return prepared


def console(terminal, console_socket, relay, detached_hint):
    """The terminal set-up of process.terminal: -> (console_fd for the child, relay_fd
    for us or None). With a socket the pty master goes there; `relay` (run and exec in
    the foreground) relays our own terminal instead."""
    if not terminal:
        if console_socket:
            raise OciError("--console-socket given but process.terminal is false")
        return None, None
    from ocirun.linux import terminal as term
    if console_socket:
        return term.connect_socket(console_socket), None
    if not relay:
        raise OciError(detached_hint)
    if not posix.isatty(0):
        # (runc fails on /dev/tty here; waiting for a terminal that never comes would
        # hang whoever ran us)
        raise OciError("process.terminal is true but stdin is not a terminal: give "
                       "--console-socket, or set process.terminal to false")
    import _socket
    a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    return b.detach(), a.detach()


def receive_master(relay_fd):
    """The pty master the child sent over the relay socket."""
    from ocirun.linux.terminal import recv_fd
    master, _ = recv_fd(relay_fd)
    return master


def forward_signals(target, pending=None):
    """Pass FORWARDED signals on to target[0] once it is known; until then they wait
    in `pending` (a list) if given."""
    def forward(sig, frame):
        if not target:
            if pending is not None:
                pending.append(sig)
            return
        try:
            posix.kill(target[0], sig)
        except OSError:
            pass

    for sig in FORWARDED:
        _signal.signal(sig, forward)
    return forward


def exit_code(status):
    """A wait status as `run` and `exec` exit with it: the code, or 128+N for a death
    by signal N."""
    code = posix.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def save_own_namespaces(flags):
    """fds of our own pid/time namespaces among `flags`, to come back to after the
    fork that used the container's: [(fd, flag)]."""
    return [(posix.open(f"/proc/self/ns/{NS_NAMES[flag]}", posix.O_RDONLY | posix.O_CLOEXEC),
             flag) for flag in NS_NAMES if flags & flag]


def back_to_own_namespaces(saved):
    for fd, flag in saved:
        kernel.setns(fd, flag)
        posix.close(fd)
