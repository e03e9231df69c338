"""Terminals: a pty from the container's own devpts instance, its master sent over
the console socket (the runc/crun protocol: one message, the pty name as data, the
fd as SCM_RIGHTS), its peer made the process's stdio and controlling terminal.

The master is opened inside the rootfs with symlinks refused and checked to be the
ptmx of a devpts (5:2); the peer comes from TIOCGPTPEER, never from a path the
container could swap (CVE-2025-52565)."""
import fcntl
import os
import stat
import struct

import _socket

from ocirun.errors import OciError
from ocirun.kernel import RESOLVE_IN_ROOT, RESOLVE_NO_SYMLINKS, openat2

TIOCSCTTY = 0x540E
TIOCSWINSZ = 0x5414
TIOCGWINSZ = 0x5413
TIOCSPTLCK = 0x40045431
TIOCGPTN = 0x80045430
TIOCGPTPEER = 0x5441


def connect_socket(path):
    """Connect to the caller's console socket (before fork: it is a host path)."""
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise OciError(f"--console-socket `{path}`: {e.strerror}") from None
    return s.detach()


def open_pty(rootfd):
    """Open a new pty in the container's devpts; returns (master, peer) fds."""
    master = openat2(rootfd, "dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC, 0,
                     RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS)
    st = os.fstat(master)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(5, 2):
        os.close(master)
        raise OciError("process.terminal: /dev/pts/ptmx in the container is not a devpts ptmx")
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    peer = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    return master, peer


def pty_name(master):
    n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"))[0]
    return f"/dev/pts/{n}"


def set_size(fd, height, width):
    fcntl.ioctl(fd, TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def get_size(fd):
    h, w, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, TIOCGWINSZ, b"\0" * 8))
    return h, w


def send_fd(sock_fd, fd, name):
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, sock_fd)
    try:
        s.sendmsg([name.encode()], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("i", fd))])
    finally:
        s.detach()


def recv_fd(sock_fd):
    """Receive one fd sent with send_fd; returns (fd, name)."""
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, sock_fd)
    try:
        msg, anc, _, _ = s.recvmsg(4096, _socket.CMSG_SPACE(4))
    finally:
        s.detach()
    for level, typ, data in anc:
        if level == _socket.SOL_SOCKET and typ == _socket.SCM_RIGHTS:
            fd = struct.unpack("i", data[:4])[0]
            os.set_inheritable(fd, False)
            return fd, msg.decode("utf-8", "replace")
    raise OciError("console socket: no pty master received")


def make_stdio(peer):
    """The pty peer becomes stdin/out/err and the controlling terminal of a new session."""
    os.setsid()
    fcntl.ioctl(peer, TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(peer, fd)


def hand_over(master, peer, console_fd, size):
    """The caller gets the master over the console socket; the peer becomes our
    stdio and controlling terminal. Closes what it was given."""
    if size:
        set_size(master, *size)
    send_fd(console_fd, master, pty_name(master))
    os.close(master)
    os.close(console_fd)
    make_stdio(peer)
    if peer > 2:
        os.close(peer)
