"""linux.netDevices: host network devices moved into the container's network namespace
(config-linux.md "Network Devices"), over rtnetlink, by the runtime:

- the device's permanent addresses of global scope are read first (the kernel drops a
  device's addresses when it changes namespace, and the spec wants them kept);
- one RTM_NEWLINK moves it under its own name (IFLA_NET_NS_FD);
- in the container's namespace (a netlink socket opened there) it is renamed (a name the
  namespace already has is EEXIST, and a name ending in %d lets the kernel choose), its
  addresses are added back and it is set up.
A container that runs is never undone: the kernel returns physical devices to the initial
namespace when the container's is freed and destroys virtual ones, and the spec says a
runtime MUST NOT move them out before deletion. A create that fails after the move puts
them back itself (return_devices), so that a refused container leaves the host as it was.
"""
import posix
import _socket
import _struct

from ocirun.errors import OciError

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP, NLM_F_CREATE, NLM_F_EXCL = 1, 4, 0x300, 0x400, 0x200
NLMSG_ERROR, NLMSG_DONE = 2, 3
IFLA_IFNAME, IFLA_NET_NS_FD = 3, 28
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
IFA_F_PERMANENT = 0x80
RT_SCOPE_UNIVERSE = 0
IFF_UP = 1
_HDR = "=IHHII"          # struct nlmsghdr
_IFINFO = "=BxHiII"      # struct ifinfomsg
_IFADDR = "=BBBBi"       # struct ifaddrmsg
_CLONE_NEWNET = 0x40000000


def _attr(kind, data):
    n = 4 + len(data)
    return _struct.pack("=HH", n, kind) + data + b"\0" * (-n % 4)


def _attrs(buf):
    out = {}
    i = 0
    while i + 4 <= len(buf):
        n, kind = _struct.unpack_from("=HH", buf, i)
        if n < 4:
            break
        out.setdefault(kind & 0x3FFF, buf[i + 4:i + n])
        i += (n + 3) & ~3
    return out


class Netlink:
    """An rtnetlink socket, of the network namespace the caller is in when it opens it."""

    def __init__(self):
        self.sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC,
                                   NETLINK_ROUTE)
        self.seq = 0

    def close(self):
        self.sock.close()

    def request(self, kind, flags, body):
        """Send one request; -> the messages answering it (raises OSError on an error)."""
        self.seq += 1
        msg = _struct.pack(_HDR, 16 + len(body), kind, NLM_F_REQUEST | flags, self.seq, 0) + body
        self.sock.send(msg)
        out = []
        while True:
            data = self.sock.recv(65536)
            i = 0
            while i + 16 <= len(data):
                n, mtype, _, seq, _ = _struct.unpack_from(_HDR, data, i)
                payload = data[i + 16:i + n]
                i += (n + 3) & ~3
                if seq != self.seq:
                    continue
                if mtype == NLMSG_ERROR:
                    err = -_struct.unpack_from("=i", payload)[0]
                    if err:
                        raise OSError(err, posix.strerror(err))
                    return out
                if mtype == NLMSG_DONE:
                    return out
                out.append((mtype, payload))
            if not flags & (NLM_F_DUMP | NLM_F_ACK):
                return out

    def link(self, name):
        """-> (index, flags) of the device called `name`."""
        body = _struct.pack(_IFINFO, 0, 0, 0, 0, 0) + _attr(IFLA_IFNAME, name.encode() + b"\0")
        for _, payload in self.request(RTM_GETLINK, 0, body):
            _, _, index, flags, _ = _struct.unpack_from(_IFINFO, payload)
            return index, flags
        raise OSError(19, posix.strerror(19))  # ENODEV

    def addresses(self, index):
        """The permanent addresses of global scope of device `index`: [(family, prefix
        length, address bytes)]."""
        out = []
        for _, payload in self.request(RTM_GETADDR, NLM_F_DUMP, _struct.pack(_IFADDR, 0, 0, 0, 0, 0)):
            family, plen, flags, scope, idx = _struct.unpack_from(_IFADDR, payload)
            attrs = _attrs(payload[8:])
            if IFA_FLAGS in attrs:
                flags = _struct.unpack("=I", attrs[IFA_FLAGS][:4])[0]
            if idx == index and scope == RT_SCOPE_UNIVERSE and flags & IFA_F_PERMANENT:
                out.append((family, plen, attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)))
        return out

    def move(self, index, netns_fd):
        """Into the namespace at `netns_fd`, under the name it has. (A name given with
        the move is a rename after it: a move that then fails to rename leaves the
        device moved, so renames are done apart, inside.)"""
        body = _struct.pack(_IFINFO, 0, 0, index, 0, 0) + _attr(IFLA_NET_NS_FD, _struct.pack("=I", netns_fd))
        self.request(RTM_NEWLINK, NLM_F_ACK, body)

    def rename(self, index, name):
        body = _struct.pack(_IFINFO, 0, 0, index, 0, 0) + _attr(IFLA_IFNAME, name.encode() + b"\0")
        self.request(RTM_NEWLINK, NLM_F_ACK, body)

    def set_up(self, index):
        self.request(RTM_NEWLINK, NLM_F_ACK, _struct.pack(_IFINFO, 0, 0, index, IFF_UP, IFF_UP))

    def add_address(self, index, family, plen, addr):
        body = (_struct.pack(_IFADDR, family, plen, IFA_F_PERMANENT, RT_SCOPE_UNIVERSE, index)
                + _attr(IFA_LOCAL, addr) + _attr(IFA_ADDRESS, addr))
        self.request(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, body)


def move_devices(devices, netns_fd):
    """[(host name, name in the container)] into the network namespace open at
    `netns_fd`, their addresses kept and their state up. One line naming the device on
    failure, and the devices moved so far are back on the host. -> what return_devices
    takes."""
    moved = []  # [host name, addresses, index in the container (once known)]
    host = Netlink()
    try:
        for name, _ in devices:
            try:
                index, _ = host.link(name)
                addrs = host.addresses(index)
                host.move(index, netns_fd)
            except OSError as e:
                return_devices(moved, netns_fd)
                raise OciError(f"linux.netDevices.{name}: cannot move `{name}` into the "
                               f"container: {e.strerror}") from None
            moved.append([name, addrs, None])
    finally:
        host.close()
    try:
        _configure_inside(moved, [new for _, new in devices], netns_fd)
    except OciError:
        return_devices(moved, netns_fd)
        raise
    return moved


def return_devices(moved, netns_fd):
    """Undo move_devices for a container whose create failed: each device back into the
    runtime's network namespace under its host name (best effort: a device that is gone
    stays gone)."""
    if not moved:
        return
    own = posix.open("/proc/self/ns/net", posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        inside = _open_inside(netns_fd, own)
        try:
            for name, _, index in moved:
                try:
                    if index is None:
                        index, _ = inside.link(name)
                    else:  # its host name first: the host may have one like its new name
                        inside.rename(index, name)
                    inside.move(index, own)
                except OSError:
                    continue
        finally:
            inside.close()
    finally:
        posix.close(own)


def _open_inside(netns_fd, own):
    """A netlink socket of the namespace at `netns_fd` (a socket belongs to the namespace
    it was opened in: we enter it for that, and come back to `own`)."""
    from ocirun import kernel
    kernel.setns(netns_fd, _CLONE_NEWNET)
    try:
        return Netlink()
    finally:
        kernel.setns(own, _CLONE_NEWNET)


def _configure_inside(moved, names, netns_fd):
    """In the container's namespace: each moved device renamed as asked (a name ending in
    %d lets the kernel choose; a name the namespace has is EEXIST), its addresses back,
    and up."""
    if not moved:
        return
    own = posix.open("/proc/self/ns/net", posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        inside = _open_inside(netns_fd, own)
    finally:
        posix.close(own)
    try:
        for entry, new in zip(moved, names):
            name, addrs, _ = entry
            try:
                index, _ = inside.link(name)
                entry[2] = index
                if new != name:
                    inside.rename(index, new)
                for family, plen, addr in addrs:
                    inside.add_address(index, family, plen, addr)
                inside.set_up(index)
            except OSError as e:
                why = (f"the container's network namespace has a device called `{new}`"
                       if e.errno == 17 else e.strerror)
                raise OciError(f"linux.netDevices.{name}: {why}") from None
    finally:
        inside.close()
