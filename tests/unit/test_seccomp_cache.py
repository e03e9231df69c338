"""The compiled-program cache and the prepare() entry point."""
import json
import os
import stat
import subprocess
import sys

import pytest

from ocirun.errors import ConfigError
from ocirun.seccomp import INFO_NOTIFY, build, cache, prepare, profile_key

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROFILE = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
           "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
           "syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
                        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                         "args": [{"index": 1, "value": 0o700, "op": "SCMP_CMP_EQ"}]}]}


@pytest.fixture
def cdir(tmp_path):
    return cache.cache_dir(str(tmp_path / "root"))


def entry_path(cdir, profile=PROFILE):
    return os.path.join(cdir, profile_key(profile).hex())


def test_miss_then_hit(cdir):
    a = prepare(PROFILE, cdir)
    assert not a.cached
    b = prepare(PROFILE, cdir)
    assert b.cached and b.prog == a.prog == build(PROFILE)[0]
    assert stat.S_IMODE(os.stat(cdir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.dirname(cdir)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(entry_path(cdir)).st_mode) == 0o600
    assert os.listdir(cdir) == [profile_key(PROFILE).hex()]      # no temporary left


def test_key_covers_what_determines_the_program():
    k = profile_key(PROFILE)
    assert len(k) == 32
    assert profile_key(json.loads(json.dumps(PROFILE))) == k
    changed = [dict(PROFILE, defaultErrnoRet=39), dict(PROFILE, architectures=["SCMP_ARCH_X86_64"]),
               dict(PROFILE, defaultAction="SCMP_ACT_KILL")]
    s = json.loads(json.dumps(PROFILE))
    s["syscalls"][1]["args"][0]["value"] = 0o701
    changed.append(s)
    s = json.loads(json.dumps(PROFILE))
    s["syscalls"][1]["args"][0]["index"] = True
    changed.append(s)
    assert len({profile_key(p) for p in changed} | {k}) == len(changed) + 1
    assert profile_key(PROFILE, native="aarch64:little") != k
    # load-time fields are not part of it
    assert profile_key(dict(PROFILE, flags=["SECCOMP_FILTER_FLAG_LOG"])) == k


@pytest.mark.parametrize("damage", ["truncate", "flip", "magic", "foreign", "empty", "header"])
def test_corrupt_entries_are_recompiled(cdir, damage):
    good = prepare(PROFILE, cdir).prog
    path = entry_path(cdir)
    data = open(path, "rb").read()
    if damage == "truncate":
        data = data[:-8]
    elif damage == "flip":
        data = data[:-1] + bytes([data[-1] ^ 1])
    elif damage == "magic":
        data = b"X" + data[1:]
    elif damage == "empty":
        data = b""
    elif damage == "header":
        data = data[:20]
    else:   # a valid entry for another profile, planted under this name
        other = dict(PROFILE, defaultErrnoRet=1)
        prepare(other, cdir)
        data = open(entry_path(cdir, other), "rb").read()
    with open(path, "wb") as f:
        f.write(data)
    p = prepare(PROFILE, cdir)
    assert not p.cached and p.prog == good
    assert prepare(PROFILE, cdir).cached


def test_symlink_and_fifo_and_permissions_are_not_trusted(cdir, tmp_path):
    prepare(PROFILE, cdir)
    path = entry_path(cdir)
    real = tmp_path / "elsewhere"
    os.rename(path, real)
    os.symlink(real, path)
    assert not prepare(PROFILE, cdir).cached          # O_NOFOLLOW
    os.unlink(path) if os.path.islink(path) else None
    prepare(PROFILE, cdir)
    os.chmod(path, 0o644)
    assert not prepare(PROFILE, cdir).cached
    os.unlink(path) if os.path.exists(path) else None
    os.mkfifo(path, 0o600)
    assert not prepare(PROFILE, cdir).cached          # no hang on a FIFO
    os.unlink(path) if os.path.exists(path) else None
    prepare(PROFILE, cdir)
    os.chmod(cdir, 0o777)
    assert not prepare(PROFILE, cdir).cached          # a directory others can write
    assert stat.S_IMODE(os.stat(cdir).st_mode) == 0o700


def test_eviction(tmp_path):
    d = str(tmp_path / "c")
    for i in range(12):
        assert cache.write(d, bytes([i]) * 32, b"\x06\0\0\0\0\0\xff\x7f")
        os.utime(os.path.join(d, (bytes([i]) * 32).hex()), (i, i))
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert cache.evict(fd, max_entries=5) == 7
    finally:
        os.close(fd)
    names = sorted(os.listdir(d))
    assert names == sorted((bytes([i]) * 32).hex() for i in range(7, 12))


def test_unwritable_cache_is_a_miss_not_an_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    p = prepare(PROFILE, str(blocker / "seccomp"))
    assert not p.cached and p.prog


def test_bad_profile_leaves_nothing_behind(cdir):
    bad = dict(PROFILE, syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}])
    with pytest.raises(ConfigError, match=r"linux.seccomp.syscalls\[0\] \(mkdir\): errnoRet"):
        prepare(bad, cdir)
    assert not os.path.exists(cdir)


def test_flags_and_notify():
    p = prepare(dict(PROFILE, flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                     "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                     "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]), None)
    assert p.flags == 1 | 2 | 4 and not p.notify
    n = dict(PROFILE, syscalls=PROFILE["syscalls"] + [{"names": ["uname"], "action": "SCMP_ACT_NOTIFY"}],
             flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
             listenerPath="/run/agent.sock", listenerMetadata="m")
    p = prepare(n, None)
    assert p.notify and p.flags == 1 | 8 | 16 | 32
    assert p.listener_path == "/run/agent.sock" and p.listener_metadata == "m"
    assert build(n)[1] & INFO_NOTIFY
    with pytest.raises(ConfigError, match="listenerPath: is required"):
        prepare(dict(n, listenerPath=None), None)
    with pytest.raises(ConfigError, match=r"flags\[0\]: unknown flag"):
        prepare(dict(PROFILE, flags=["SECCOMP_FILTER_FLAG_NOPE"]), None)


def test_listener_path_without_notify_rule():
    """listenerPath with no SCMP_ACT_NOTIFY rule: the listener is still created and
    handed over (as crun does), so the agent is never left waiting."""
    n = dict(PROFILE, flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
             listenerPath="/run/agent.sock")
    assert not build(n)[1] & INFO_NOTIFY
    p = prepare(n, None)
    assert p.notify and p.flags == 8 | 32 and p.listener_path == "/run/agent.sock"


def _py(code):
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True).stdout


def test_hit_imports_no_table_and_no_compiler(cdir):
    prepare(PROFILE, cdir)
    out = _py(f"""
import sys, json
from ocirun.seccomp import prepare
p = prepare(json.loads({json.dumps(json.dumps(PROFILE))}), {cdir!r})
mods = [m for m in sys.modules if m.startswith("ocirun.seccomp")]
print(p.cached, sorted(mods))
""")
    assert out.startswith("True"), out
    for m in ("tables.x86", "normalize", "compile", "asm"):
        assert f"ocirun.seccomp.{m}'" not in out, out


def test_import_is_cheap():
    out = _py("import sys; import ocirun.seccomp; print(sorted(sys.modules))")
    for heavy in ("json", "re", "socket", "hashlib", "ctypes", "ocirun.seccomp.normalize"):
        assert f"'{heavy}'" not in out, heavy
