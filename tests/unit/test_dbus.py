"""The D-Bus client's wire format (ocirun/cgroups/dbus.py), without a bus: messages
encoded by it are decoded by it, and match bytes laid out by hand from the
specification; a fake peer on a socketpair checks authentication and calls."""
import os
import socket
import struct
import threading

import pytest

from ocirun.cgroups import dbus
from ocirun.errors import OciError


def test_split_signature():
    assert dbus.split_signature("ssa(sv)a(sa(sv))") == ["s", "s", "a(sv)", "a(sa(sv))"]
    assert dbus.split_signature("a{sv}ayb") == ["a{sv}", "ay", "b"]
    with pytest.raises(ValueError):
        dbus.split_signature("z")


def test_layout_by_hand():
    """A method call with one string, as the specification lays it out."""
    msg = dbus.encode_message(dbus.METHOD_CALL, 7, {dbus.PATH: "/a", dbus.MEMBER: "M"},
                              "s", ("hi",))
    # fixed header: 'l', type 1, flags 0, version 1, body length 7 (u32 2 + "hi\0" + pad?)
    assert msg[:4] == b"l\x01\x00\x01"
    body_len, serial, fields_len = struct.unpack_from("<III", msg, 4)
    assert serial == 7
    assert body_len == 4 + 3  # u32 length, "hi", NUL
    head_end = 16 + fields_len
    body = msg[head_end + (-head_end % 8):]
    assert body == struct.pack("<I", 2) + b"hi\0"
    # the first header field: code 1 (PATH), variant signature "o", the path
    assert msg[16:16 + 4] == b"\x01\x01o\x00"
    assert msg[20:24] == struct.pack("<I", 2) and msg[24:27] == b"/a\0"


@pytest.mark.parametrize("sig,args", [
    ("y", (255,)), ("b", (True,)), ("n", (-5,)), ("q", (65535,)), ("i", (-(1 << 31),)),
    ("u", ((1 << 32) - 1,)), ("x", (-(1 << 63),)), ("t", ((1 << 64) - 1,)), ("d", (0.5,)),
    ("s", ("héllo",)), ("o", ("/org/x",)), ("g", ("a(sv)",)),
    ("ay", (b"\x00\x01\xff",)), ("au", ([1, 2, 3],)), ("at", ([1, 1 << 40],)),
    ("a(ss)", ([("a", "b"), ("c", "d")],)), ("a{sv}", ({"k": ("u", 5), "s": ("s", "v")},)),
    ("ssa(sv)a(sa(sv))", ("u.scope", "replace",
                          [("Delegate", ("b", True)), ("PIDs", ("au", [42])),
                           ("AllowedCPUs", ("ay", b"\x03")), ("MemoryMax", ("t", 1 << 30)),
                           ("DeviceAllow", ("a(ss)", [("char-5", "rwm")]))], [])),
    ("ya(st)", (1, [("/dev/block/8:0", 100)])),
])
def test_round_trip(sig, args):
    msg = dbus.encode_message(dbus.METHOD_CALL, 1, {dbus.PATH: "/", dbus.MEMBER: "M"},
                              sig, args)
    assert dbus.decode_message(bytearray(msg)).body == tuple(_plain(sig, args))


def _plain(sig, args):
    """What the reader returns: variants as their value."""
    out = []
    for t, a in zip(dbus.split_signature(sig), args):
        out.append(_value(t, a))
    return out


def _value(t, a):
    if t == "v":
        return _value(a[0], a[1])
    if t == "b":
        return bool(a)
    if t.startswith("a{"):
        kt, vt = dbus.split_signature(t[2:-1])
        return {k: _value(vt, v) for k, v in a.items()}
    if t == "ay":
        return bytes(a)
    if t.startswith("a"):
        return [_value(t[1:], x) for x in a]
    if t.startswith("("):
        return tuple(_value(s, x) for s, x in zip(dbus.split_signature(t[1:-1]), a))
    return a


def test_big_endian_message():
    """A peer of the other byte order: the reader follows the message's flag."""
    body = struct.pack(">I", 3) + b"abc\0"
    fields = bytearray()
    fields += b"\x08\x01g\x00" + b"\x01s\x00"  # SIGNATURE "s"
    head = b"B\x02\x00\x01" + struct.pack(">III", len(body), 9, len(fields)) + fields
    head += b"\0" * (-len(head) % 8)
    m = dbus.decode_message(bytearray(head + body))
    assert m.type == dbus.METHOD_RETURN and m.serial == 9 and m.body == ("abc",)


def test_parse_address():
    assert dbus.parse_address("unix:path=/run/dbus/system_bus_socket") == [
        "/run/dbus/system_bus_socket"]
    assert dbus.parse_address("tcp:host=x;unix:abstract=a%2fb,guid=1") == ["\0a/b"]
    assert dbus.parse_address("unix:path=/a%20b") == ["/a b"]


class FakePeer:
    """A bus on the other end of a socketpair: checks the AUTH line, answers Hello,
    replies to one call with `reply` (a function of the message) and sends `signals`
    first."""

    def __init__(self, reply, signals=()):
        self.ours, self.theirs = socket.socketpair()
        self.reply = reply
        self.signals = signals
        self.seen = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        s = self.theirs
        buf = b""
        while b"BEGIN\r\n" not in buf:
            buf += s.recv(4096)
        assert buf.startswith(b"\0AUTH EXTERNAL " + str(os.geteuid()).encode().hex().encode())
        s.sendall(b"OK 0123456789abcdef0123456789abcdef\r\n")
        buf = bytearray(buf.split(b"BEGIN\r\n", 1)[1])
        while True:
            n = dbus._message_length(buf)
            while not n or len(buf) < n:
                data = s.recv(65536)
                if not data:
                    return
                buf += data
                n = dbus._message_length(buf)
            m = dbus.decode_message(buf[:n])
            del buf[:n]
            self.seen.append(m)
            if m.member == "Hello":
                s.sendall(dbus.encode_message(dbus.METHOD_RETURN, 1, {dbus.REPLY_SERIAL: m.serial},
                                              "s", (":1.5",)))
                continue
            for sig in self.signals:
                s.sendall(sig)
            s.sendall(self.reply(m))


def _connection(peer):
    c = dbus.Connection(peer.ours, "unix:path=/fake", True)
    c._auth()
    return c


def test_call_and_error_reply():
    def reply(m):
        if m.member == "Fail":
            return dbus.encode_message(dbus.ERROR, 2, {dbus.REPLY_SERIAL: m.serial,
                                                       dbus.ERROR_NAME: "org.x.Bad"},
                                       "s", ("no good",))
        return dbus.encode_message(dbus.METHOD_RETURN, 2, {dbus.REPLY_SERIAL: m.serial},
                                   "o", ("/job/1",))

    job_removed = dbus.encode_message(dbus.SIGNAL, 3, {dbus.PATH: "/org/freedesktop/systemd1",
                                                       dbus.MEMBER: "JobRemoved",
                                                       dbus.INTERFACE: "x"},
                                      "uoss", (1, "/job/1", "u.scope", "done"))
    peer = FakePeer(reply, signals=[job_removed])
    c = _connection(peer)
    assert c.unique_name == ":1.5"
    assert c.call("d", "/p", "i", "Start", "s", ("x",)) == ("/job/1",)
    # the signal that came before the reply waits in the inbox
    assert c.next_signal("JobRemoved").body == (1, "/job/1", "u.scope", "done")
    with pytest.raises(dbus.DBusError) as ei:
        c.call("d", "/p", "i", "Fail")
    assert ei.value.name == "org.x.Bad" and "no good" in str(ei.value)
    c.close()


def test_refused_credentials():
    a, b = socket.socketpair()

    def serve():
        b.recv(4096)
        b.sendall(b"REJECTED EXTERNAL\r\n")

    threading.Thread(target=serve, daemon=True).start()
    c = dbus.Connection(a, "unix:path=/fake", True)
    with pytest.raises(OciError, match="refused our credentials"):
        c._auth()
    c.close()


def test_connect_to_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        dbus.Connection.open(f"unix:path={tmp_path}/none")
