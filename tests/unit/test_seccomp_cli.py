"""`ocirun seccomp compile|disasm|explain`."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROFILE = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
           "architectures": ["SCMP_ARCH_X86"],
           "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                        {"names": ["mkdir"], "action": "SCMP_ACT_KILL_PROCESS"}]}


def ocirun(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "ocirun", "seccomp", *args], cwd=ROOT,
                          input=stdin, capture_output=True)


@pytest.fixture
def files(tmp_path):
    prof = tmp_path / "p.json"
    prof.write_text(json.dumps(PROFILE))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"ociVersion": "1.2.0", "linux": {"seccomp": PROFILE}}))
    return prof, config


def test_compile_formats(files, tmp_path):
    prof, config = files
    raw = ocirun("compile", str(prof), "--format", "raw")
    assert raw.returncode == 0 and len(raw.stdout) % 8 == 0 and raw.stdout
    assert ocirun("compile", str(config), "--format", "raw").stdout == raw.stdout
    hexed = ocirun("compile", str(prof)).stdout.decode().split()
    assert bytes.fromhex("".join(hexed)) == raw.stdout
    c = ocirun("compile", str(prof), "--format", "c").stdout.decode()
    assert "struct sock_filter filter[] = {" in c
    other = ocirun("compile", str(prof), "--arch", "aarch64", "--format", "raw").stdout
    assert other and other != raw.stdout
    assert ocirun("compile", str(prof), "--format", "xml").returncode != 0


def test_disasm_raw_and_profile(files, tmp_path):
    prof, _ = files
    raw = tmp_path / "p.bpf"
    raw.write_bytes(ocirun("compile", str(prof), "--format", "raw").stdout)
    a = ocirun("disasm", str(raw)).stdout.decode()
    b = ocirun("disasm", str(prof)).stdout.decode()
    assert a == b
    assert "AUDIT_ARCH x86_64" in a and "KILL_PROCESS" in a and "ERRNO(38)" in a
    bad = tmp_path / "bad.bpf"
    bad.write_bytes(b"1234567")
    r = ocirun("disasm", str(bad))
    assert r.returncode != 0 and b"multiple of 8" in r.stderr


def test_explain(files):
    prof, config = files
    r = ocirun("explain", str(prof), "personality", "8", "--arch", "x86")
    out = r.stdout.decode()
    assert r.returncode == 0 and "ALLOW" in out and "syscalls[1] (personality)" in out
    r = ocirun("explain", str(config), "personality", "9")
    assert "ERRNO(38)" in r.stdout.decode() and "default action" in r.stdout.decode()
    r = ocirun("explain", str(prof), "mkdir")
    assert "KILL_PROCESS" in r.stdout.decode() and "instructions executed" in r.stdout.decode()


def test_bad_profile_is_one_line(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "rmdir"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_FOO"}]}]}))
    r = ocirun("compile", str(p))
    assert r.returncode == 1
    assert r.stderr.decode() == ("ocirun: linux.seccomp.syscalls[0] (mkdir, rmdir): "
                                 "unknown operator `SCMP_CMP_FOO`\n")
