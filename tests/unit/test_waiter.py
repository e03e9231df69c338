"""The waiter program of `create` (linux/trampoline.py): its ELF layout and data, and
when create.py chooses it. Its behaviour in a container: tests/integration/
test_create_waiter.py."""
import struct

import pytest

from ocirun.linux import trampoline
from ocirun.lifecycle import birth

pytestmark = pytest.mark.skipif(not trampoline.waiter_supported(),
                                reason="the waiter program exists for x86_64 only")

BASE, CODE = 0x400000, 120


class Prepared:
    flags = 0x2
    prog = struct.pack("<HBBI", 0x20, 0, 0, 4) + struct.pack("<HBBI", 0x06, 0, 0, 0x7FFF0000)


def _data(elf):
    return struct.unpack_from("<IxxxxQH6xQ", elf, CODE + trampoline._WAITER_DATA)


def test_layout_with_a_filter():
    elf = trampoline.waiter(9, Prepared)
    entry, = struct.unpack_from("<Q", elf, 24)
    filesz, memsz = struct.unpack_from("<QQ", elf, 64 + 32)
    assert entry == BASE + CODE and filesz == memsz == len(elf)
    fd, flags, length, ptr = _data(elf)
    assert (fd, flags, length) == (9, 0x2, 2)
    off = ptr - BASE
    assert off == CODE + len(trampoline._WAITER["x86_64"]) and off % 8 == 0
    assert elf[off:] == Prepared.prog


def test_layout_without_a_filter():
    elf = trampoline.waiter(5)
    assert _data(elf) == (5, 0, 0, 0)
    assert len(elf) == CODE + len(trampoline._WAITER["x86_64"])
    # the code is the trampoline's argv check first: the same "ocirun-e" prefix
    assert b"ocirun-e" in elf


class Plan:
    apparmor = None
    selinux = None
    nnp = False


class Context:
    seccomp = Prepared
    waiter_fd = None
    fifo_fd = 7


def test_no_waiter_with_an_apparmor_profile(monkeypatch):
    made = []
    monkeypatch.setattr(trampoline, "prepare", lambda k, program: made.append(program) or 42)
    plan, ctx = Plan(), Context()
    plan.apparmor, plan.selinux = "container-default", None
    assert not birth._prepare_waiter(plan, ctx) and not made and ctx.waiter_fd is None
    # an SELinux label too applies at the next execve: the waiter's, not the entrypoint's
    plan.apparmor, plan.selinux = None, "system_u:system_r:container_t:s0"
    assert not birth._prepare_waiter(plan, ctx) and not made and ctx.waiter_fd is None
    plan.selinux = None
    assert birth._prepare_waiter(plan, ctx) and ctx.waiter_fd == 42
    # without noNewPrivileges the init loads the filter itself: the waiter carries none
    assert _data(made[0])[2] == 0
    plan.nnp = True
    assert birth._prepare_waiter(plan, ctx)
    assert _data(made[1])[2] == 2


def test_no_executable_memfd_means_no_waiter(monkeypatch):
    def refuse(k, program):
        raise OSError(1, "memfd_create: Operation not permitted")
    monkeypatch.setattr(trampoline, "prepare", refuse)
    plan, ctx = Plan(), Context()
    assert not birth._prepare_waiter(plan, ctx) and ctx.waiter_fd is None


def test_the_bytes_are_waiter_s_assembled(tmp_path):
    """_WAITER is waiter.S, assembled: the source in the repository is what runs."""
    import shutil
    import subprocess
    from support import REPO
    if not (shutil.which("as") and shutil.which("objcopy")):
        pytest.skip("no GNU as/objcopy (binutils) to assemble waiter.S")
    obj, raw = tmp_path / "waiter.o", tmp_path / "waiter.bin"
    subprocess.run(["as", "--64", "-o", str(obj), f"{REPO}/ocirun/linux/waiter.S"], check=True)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(obj), str(raw)], check=True)
    assert raw.read_bytes() == trampoline._WAITER["x86_64"]
