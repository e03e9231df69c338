"""Syscall tables: generated, re-runnable, offsets applied, arch metadata."""
import filecmp
import os

import pytest

from ocirun.seccomp import arches, tables
from ocirun.seccomp.tables import gen

CSV = gen.DEFAULT_CSV


@pytest.fixture(scope="module")
def csv_path():
    if not os.path.exists(CSV):
        pytest.skip(f"syscalls.csv not found at {CSV}")
    return CSV


def test_generated_modules_are_up_to_date(tmp_path, csv_path):
    version = gen.generate(csv_path, str(tmp_path))
    assert version == tables.VERSION
    for name in tables.MODULES + ("__init__",):
        assert filecmp.cmp(tmp_path / f"{name}.py", os.path.join(gen.HERE, f"{name}.py"),
                           shallow=False), name


def test_version_recorded_in_every_module():
    for name in tables.MODULES:
        mod = __import__("ocirun.seccomp.tables." + name, fromlist=["VERSION"])
        assert mod.VERSION == tables.VERSION


@pytest.mark.parametrize("arch,name,nr", [
    ("x86_64", "read", 0), ("x86_64", "mkdir", 83), ("x86", "socketcall", 102),
    ("x32", "read", 0x40000000), ("x32", "rt_sigaction", 0x40000000 + 512),
    ("mips", "read", 4003), ("mipsel", "read", 4003), ("mips64", "read", 5000),
    ("mips64n32", "read", 6000), ("aarch64", "read", 63), ("arm", "breakpoint", 0xF0001),
    ("s390x", "read", 3), ("ppc64le", "read", 3), ("riscv64", "read", 63),
    ("loongarch64", "read", 63), ("parisc", "read", 3),
])
def test_numbers(arch, name, nr):
    t = arches.load_table(arches.ARCHES[arch])
    assert t.NAMES[name] == nr
    assert t.NUMBERS[nr] == name


def test_reverse_maps_are_inverse():
    for name in tables.MODULES:
        mod = __import__("ocirun.seccomp.tables." + name, fromlist=["NAMES"])
        assert {v: k for k, v in mod.NAMES.items()} == mod.NUMBERS


def test_all_oci_architectures():
    oci = ("x86 x86_64 x32 arm aarch64 mips mipsel mips64 mips64n32 mipsel64 mipsel64n32 "
           "ppc ppc64 ppc64le s390 s390x parisc parisc64 riscv64 loongarch64").split()
    assert sorted(arches.ARCHES) == sorted(oci)
    a = arches.ARCHES
    assert a["x86_64"].audit == a["x32"].audit == 0xC000003E
    assert a["x86"].audit == 0x40000003 and a["x86"].bits == 32
    assert a["aarch64"].audit == 0xC00000B7 and a["aarch64"].bits == 64
    assert a["s390x"].little is False and a["ppc64le"].little is True
    assert a["mips64n32"].audit == 0xA0000008 and a["mipsel64n32"].audit == 0xE0000008
    for arch in a.values():
        assert arch.bits in (32, 64)
        assert bool(arch.audit & 0x40000000) == arch.little
        assert arch.table in tables.MODULES


def test_native_name():
    assert arches.native_name("x86_64") == "x86_64"
    assert arches.native_name("mips64", "little") == "mipsel64"
    assert arches.native_name("aarch64") == "aarch64"
