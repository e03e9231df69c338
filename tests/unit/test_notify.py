"""lifecycle/notify.py without a container: what the container is given, and what of its
messages reaches the host's socket."""
import socket

from ocirun.lifecycle import notify


def _spec(namespaces):
    return {"process": {"env": ["A=1", "NOTIFY_SOCKET=/elsewhere"]}, "mounts": [],
            "linux": {"namespaces": namespaces}}


def test_spec_gets_the_socket():
    spec = _spec([{"type": "mount"}])
    assert notify.add_to_spec(spec, "/run/ocirun/c1")
    assert spec["process"]["env"] == ["A=1", "NOTIFY_SOCKET=/run/notify/notify.sock"]
    assert spec["mounts"] == [{"destination": "/run/notify", "type": "bind",
                               "source": "/run/ocirun/c1/notify",
                               "options": ["bind", "nosuid", "noexec", "nodev", "ro"]}]


def test_no_socket_without_a_mount_namespace_of_its_own():
    for spaces in ([], [{"type": "mount", "path": "/proc/1/ns/mnt"}], None):
        spec = _spec(spaces)
        assert not notify.add_to_spec(spec, "/run/ocirun/c1")
        assert spec["mounts"] == [] and "NOTIFY_SOCKET=/elsewhere" in spec["process"]["env"]


def test_malformed_config_is_left_to_validation():
    assert not notify.add_to_spec({"process": "x", "linux": {"namespaces": [{"type": "mount"}]}}, "/r")
    assert not notify.add_to_spec({"process": {"env": "x"}, "linux": {"namespaces": [{"type": "mount"}]}}, "/r")


def test_forward_filters_and_adds_mainpid(tmp_path):
    host = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    host.bind(str(tmp_path / "h"))
    host.settimeout(5)
    relay = notify.Relay(str(tmp_path), str(tmp_path / "h"))
    assert not relay.forward(b"MAINPID=1\nSTATUS=x\nFDSTORE=1\nNOTIFYACCESS=all\n", 42)
    assert host.recv(4096) == b"STATUS=x\n"
    assert not relay.forward(b"MAINPID=1\nBARRIER=1\n", 42)  # nothing of it is sent
    assert relay.forward(b"READY=1\nSTATUS=up", 42, barrier=False)
    assert host.recv(4096) == b"MAINPID=42\nREADY=1\nSTATUS=up\n"
    host.setblocking(False)
    try:
        host.recv(4096)
        raise AssertionError("an extra datagram")
    except BlockingIOError:
        pass


def test_host_socket(monkeypatch):
    monkeypatch.setattr(notify.fs, "getenv", lambda k, d=None: "@abstract")
    assert notify.host_socket() == "\0abstract"
    monkeypatch.setattr(notify.fs, "getenv", lambda k, d=None: "relative")
    assert notify.host_socket() is None
