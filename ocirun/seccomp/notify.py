"""SCMP_ACT_NOTIFY: hand the listener fd to the agent at linux.seccomp.listenerPath.

The runtime connects before pivot_root (the socket path is on the host), the
container init loads the filter with SECCOMP_FILTER_FLAG_NEW_LISTENER and sends the
fd with SCM_RIGHTS together with the runtime-spec "containerProcessState"
document: {ociVersion, fds: ["seccompFd"], pid, metadata, state}.
"""
import struct

_socket = None      # imported by connect(): send() runs after pivot_root, where no import may happen


def connect(path):
    """A connected AF_UNIX stream socket (CLOEXEC) to the agent."""
    global _socket
    import _socket
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        s.connect(path)
    except OSError:
        s.close()
        raise
    return s


def message(spec_version, pid, metadata_json, state_json):
    """The containerProcessState document as bytes; `metadata_json` is the
    already-encoded JSON string, `state_json` the container state as bytes."""
    return b'{"ociVersion":"%s","fds":["seccompFd"],"pid":%d,"metadata":%s,"state":%s}' % (
        spec_version.encode(), pid, metadata_json.encode(), state_json or b"{}")


def send(sock, fd, msg):
    """Send `msg` with `fd` attached (SCM_RIGHTS)."""
    sock.sendmsg([msg], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("i", fd))])
