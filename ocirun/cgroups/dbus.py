"""A small D-Bus client: what the systemd cgroup manager needs, over a unix socket.

The D-Bus specification's wire format ("Message Protocol"), little-endian on our side:
a 12-byte fixed header (endianness, type, flags, version, body length, serial), the
header fields as an array of (code, variant), padding to 8, then the body. Values are
aligned to their own size (strings and arrays to 4, structs and 64-bit numbers to 8);
an array's length counts its elements only, not the padding before the first one.

Authentication is SASL EXTERNAL (the kernel tells the server our uid through
SO_PEERCRED), sent in one write with BEGIN and the first message, as sd-bus does. On a
bus (dbus-daemon) the first call is Hello; on systemd's private socket
(/run/systemd/private, a direct connection to the manager) there is no bus to greet.

Only the standard library's C modules are used (_socket, _struct), and only commands
that talk to systemd import this module.
"""
import posix

import _socket
import _struct

from ocirun.errors import OciError

METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4
NO_REPLY_EXPECTED = 0x1
# header field codes
PATH, INTERFACE, MEMBER, ERROR_NAME, REPLY_SERIAL, DESTINATION, SENDER, SIGNATURE = range(1, 9)
_FIELD_SIG = {PATH: "o", INTERFACE: "s", MEMBER: "s", ERROR_NAME: "s", REPLY_SERIAL: "u",
              DESTINATION: "s", SENDER: "s", SIGNATURE: "g"}

_FIXED = {"y": ("B", 1), "b": ("I", 4), "n": ("h", 2), "q": ("H", 2), "i": ("i", 4),
          "u": ("I", 4), "x": ("q", 8), "t": ("Q", 8), "d": ("d", 8), "h": ("I", 4)}
_ALIGN = {"s": 4, "o": 4, "g": 1, "a": 4, "(": 8, "{": 8, "v": 1}
MAX_MESSAGE = 128 << 20

BUS = "org.freedesktop.DBus"
BUS_PATH = "/org/freedesktop/DBus"


class DBusError(OciError):
    """An error reply: `name` is the D-Bus error name, `text` its message."""

    def __init__(self, name, text):
        super().__init__(text or name)
        self.name = name
        self.text = text


def _align_of(t):
    return _FIXED[t][1] if t in _FIXED else _ALIGN[t]


def split_signature(sig):
    """"sa(sv)u" -> ["s", "a(sv)", "u"]: the complete types of a signature."""
    out = []
    i = 0
    while i < len(sig):
        j = _type_end(sig, i)
        out.append(sig[i:j])
        i = j
    return out


def _type_end(sig, i):
    c = sig[i]
    if c == "a":
        return _type_end(sig, i + 1)
    if c in "({":
        close = ")" if c == "(" else "}"
        j = i + 1
        while sig[j] != close:
            j = _type_end(sig, j)
        return j + 1
    if c in _FIXED or c in "sogv":
        return i + 1
    raise ValueError(f"D-Bus signature {sig!r}: unknown type {c!r}")


# -- marshalling ----------------------------------------------------------------------------

class _Writer:
    __slots__ = ("buf",)

    def __init__(self):
        self.buf = bytearray()

    def pad(self, n):
        self.buf += b"\0" * (-len(self.buf) % n)

    def put(self, t, v):
        """Append value v of the complete type t."""
        c = t[0]
        if c in _FIXED:
            fmt, size = _FIXED[c]
            self.pad(size)
            self.buf += _struct.pack("<" + fmt, float(v) if c == "d" else int(v))
        elif c in "so":
            data = v.encode()
            self.pad(4)
            self.buf += _struct.pack("<I", len(data)) + data + b"\0"
        elif c == "g":
            data = v.encode()
            self.buf += bytes((len(data),)) + data + b"\0"
        elif c == "v":
            vt, vv = v
            self.put("g", vt)
            self.put(vt, vv)
        elif c == "(":
            self.pad(8)
            for sub, item in zip(split_signature(t[1:-1]), v):
                self.put(sub, item)
        elif c == "a":
            et = t[1:]
            self.pad(4)
            at = len(self.buf)
            self.buf += b"\0\0\0\0"
            self.pad(_align_of(et[0]))
            start = len(self.buf)
            if et == "y":
                self.buf += bytes(v)
            elif et[0] == "{":
                kt, vt = split_signature(et[1:-1])
                for k, item in (v.items() if isinstance(v, dict) else v):
                    self.pad(8)
                    self.put(kt, k)
                    self.put(vt, item)
            else:
                for item in v:
                    self.put(et, item)
            self.buf[at:at + 4] = _struct.pack("<I", len(self.buf) - start)
        else:
            raise ValueError(f"cannot marshal D-Bus type {t!r}")


class _Reader:
    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf, pos, end):
        self.buf = buf
        self.pos = pos
        self.end = "<" if end == "l" else ">"

    def pad(self, n):
        self.pos += -self.pos % n

    def _unpack(self, fmt, size):
        self.pad(size)
        v = _struct.unpack_from(self.end + fmt, self.buf, self.pos)[0]
        self.pos += size
        return v

    def get(self, t):
        c = t[0]
        if c in _FIXED:
            v = self._unpack(*_FIXED[c])
            return bool(v) if c == "b" else v
        if c in "so":
            n = self._unpack("I", 4)
            s = bytes(self.buf[self.pos:self.pos + n]).decode("utf-8", "replace")
            self.pos += n + 1
            return s
        if c == "g":
            n = self.buf[self.pos]
            s = bytes(self.buf[self.pos + 1:self.pos + 1 + n]).decode()
            self.pos += n + 2
            return s
        if c == "v":
            return self.get(self.get("g"))
        if c == "(":
            self.pad(8)
            return tuple(self.get(sub) for sub in split_signature(t[1:-1]))
        if c == "a":
            et = t[1:]
            n = self._unpack("I", 4)
            self.pad(_align_of(et[0]))
            stop = self.pos + n
            if et == "y":
                v = bytes(self.buf[self.pos:stop])
                self.pos = stop
                return v
            if et[0] == "{":
                kt, vt = split_signature(et[1:-1])
                out = {}
                while self.pos < stop:
                    self.pad(8)
                    k = self.get(kt)
                    out[k] = self.get(vt)
                return out
            out = []
            while self.pos < stop:
                out.append(self.get(et))
            return out
        raise ValueError(f"cannot read D-Bus type {t!r}")


def encode_message(mtype, serial, fields, sig="", args=(), flags=0):
    """One message: fields {code: value} (their types are fixed by the code)."""
    body = _Writer()
    for t, a in zip(split_signature(sig), args):
        body.put(t, a)
    if sig:
        fields = dict(fields)
        fields[SIGNATURE] = sig
    head = _Writer()
    head.buf += _struct.pack("<cBBBII", b"l", mtype, flags, 1, len(body.buf), serial)
    head.put("a(yv)", [(code, (_FIELD_SIG[code], v)) for code, v in fields.items()])
    head.pad(8)
    return bytes(head.buf + body.buf)


class Message:
    __slots__ = ("type", "flags", "serial", "fields", "body")

    @property
    def member(self):
        return self.fields.get(MEMBER)

    @property
    def reply_serial(self):
        return self.fields.get(REPLY_SERIAL)


def _message_length(buf):
    """The full length of the message at the start of buf, or 0 if its fixed header
    is not all there yet."""
    if len(buf) < 16:
        return 0
    end = "<" if buf[0:1] == b"l" else ">"
    if buf[0:1] not in (b"l", b"B"):
        raise OciError("D-Bus: malformed message from the bus (bad endianness)")
    body_len, _serial, fields_len = _struct.unpack_from(end + "III", buf, 4)
    head = 16 + fields_len
    total = head + (-head % 8) + body_len
    if total > MAX_MESSAGE:
        raise OciError("D-Bus: oversized message from the bus")
    return total


def decode_message(buf):
    end = chr(buf[0])
    r = _Reader(buf, 4, end)
    m = Message()
    m.type = buf[1]
    m.flags = buf[2]
    body_len = r.get("u")
    m.serial = r.get("u")
    m.fields = {code: value for code, value in r.get("a(yv)")}
    r.pad(8)
    start = r.pos
    sig = m.fields.get(SIGNATURE, "")
    m.body = tuple(r.get(t) for t in split_signature(sig))
    if r.pos > start + body_len:
        raise OciError("D-Bus: malformed message from the bus (body overrun)")
    return m


# -- addresses ------------------------------------------------------------------------------

SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
SYSTEMD_PRIVATE = "unix:path=/run/systemd/private"


def _unescape(v):
    out = bytearray()
    i = 0
    data = v.encode()
    while i < len(data):
        if data[i:i + 1] == b"%" and i + 2 < len(data) + 1:
            out.append(int(data[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(data[i])
            i += 1
    return out.decode("utf-8", "surrogateescape")


def parse_address(address):
    """The socket addresses (for connect) of a D-Bus address string, in order: only
    unix:path= and unix:abstract= are understood (a system bus is always local)."""
    out = []
    for part in address.split(";"):
        kind, _, rest = part.partition(":")
        if kind != "unix":
            continue
        keys = dict(kv.partition("=")[::2] for kv in rest.split(",") if kv)
        if "path" in keys:
            out.append(_unescape(keys["path"]))
        elif "abstract" in keys:
            out.append("\0" + _unescape(keys["abstract"]))
    return out


# -- the connection -------------------------------------------------------------------------

class Connection:
    """One authenticated connection; `bus` is False on a direct connection to a peer
    (systemd's private socket), where there is no Hello and no AddMatch."""

    __slots__ = ("sock", "serial", "inbox", "buf", "bus", "address", "unique_name")

    def __init__(self, sock, address, bus):
        self.sock = sock
        self.address = address
        self.bus = bus
        self.serial = 0
        self.inbox = []  # messages read while waiting for something else (signals)
        self.buf = bytearray()
        self.unique_name = None

    @classmethod
    def open(cls, address, bus=True, timeout=25.0):
        """Connect to `address` (a D-Bus address string) and authenticate. Raises
        OSError when nothing listens there, OciError when the peer refuses us."""
        last = None
        for target in parse_address(address):
            s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
            s.settimeout(timeout)
            try:
                s.connect(target)
            except OSError as e:
                s.close()
                last = e
                continue
            c = cls(s, address, bus)
            try:
                c._auth()
            except BaseException:
                s.close()
                raise
            return c
        if last is None:
            raise OciError(f"D-Bus address `{address}`: no unix socket address in it")
        raise last

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _auth(self):
        uid = str(posix.geteuid()).encode().hex().encode()
        out = b"\0AUTH EXTERNAL " + uid + b"\r\nBEGIN\r\n"
        hello = None
        if self.bus:
            self.serial += 1
            hello = self.serial
            out += encode_message(METHOD_CALL, hello, {
                PATH: BUS_PATH, INTERFACE: BUS, MEMBER: "Hello", DESTINATION: BUS})
        self.sock.sendall(out)
        line = self._auth_line()
        if not line.startswith(b"OK "):
            raise OciError(f"D-Bus: the bus at {self.address} refused our credentials "
                           f"({line.decode('ascii', 'replace').strip()})")
        if hello is not None:
            self.unique_name = self._reply(hello)[0]

    def _auth_line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                raise OciError(f"D-Bus: the bus at {self.address} closed the connection "
                               "during authentication")
            self.buf += data
        line, _, rest = bytes(self.buf).partition(b"\r\n")
        self.buf = bytearray(rest)
        return line + b"\r\n"

    def _read_message(self):
        while True:
            n = _message_length(self.buf)
            if n and len(self.buf) >= n:
                m = decode_message(self.buf[:n])
                del self.buf[:n]
                return m
            data = self.sock.recv(65536)
            if not data:
                raise OciError(f"D-Bus: the bus at {self.address} closed the connection")
            self.buf += data

    def send(self, dest, path, iface, member, sig="", args=(), flags=0):
        self.serial += 1
        fields = {PATH: path, INTERFACE: iface, MEMBER: member}
        if dest:
            fields[DESTINATION] = dest
        self.sock.sendall(encode_message(METHOD_CALL, self.serial, fields, sig, args, flags))
        return self.serial

    def _reply(self, serial):
        while True:
            m = self._read_message()
            if m.type in (METHOD_RETURN, ERROR) and m.reply_serial == serial:
                if m.type == ERROR:
                    text = m.body[0] if m.body and isinstance(m.body[0], str) else ""
                    raise DBusError(m.fields.get(ERROR_NAME, "?"), text)
                return m.body
            if m.type == SIGNAL:
                self.inbox.append(m)

    def call(self, dest, path, iface, member, sig="", args=()):
        """A method call and its reply's body (a tuple); DBusError for an error reply."""
        return self._reply(self.send(dest, path, iface, member, sig, args))

    def add_match(self, rule):
        if self.bus:
            self.call(BUS, BUS_PATH, BUS, "AddMatch", "s", (rule,))

    def next_signal(self, member):
        """The next signal named `member` (from the inbox first). The socket's timeout
        applies to the wait."""
        for i, m in enumerate(self.inbox):
            if m.member == member:
                return self.inbox.pop(i)
        while True:
            m = self._read_message()
            if m.type == SIGNAL and m.member == member:
                return m
