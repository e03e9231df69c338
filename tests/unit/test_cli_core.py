"""Pure logic of the core: option parsing, mount options, signals, ids, state files."""
import os

import pytest

from ocirun.cli.opts import parse
from ocirun.errors import UsageError
from ocirun import kernel
from ocirun.lifecycle.state import status
from ocirun.tables import parse_options
from ocirun.lifecycle.signals import parse_signal
from ocirun import state as state_mod

SPEC = {"-b": ("bundle", "str"), "--bundle": ("bundle", "str"), "-d": ("detach", "bool"),
        "--preserve-fds": ("n", "int"), "-e": ("env", "list"), "--no-subreaper": ("nsr", "bool")}


@pytest.mark.parametrize("argv", [["-b", "x", "id"], ["--bundle", "x", "id"], ["--bundle=x", "id"],
                                  ["-bundle", "x", "id"], ["id", "--bundle", "x"]])
def test_parse_spellings(argv):
    o, pos = parse(argv, SPEC)
    assert o.bundle == "x" and pos == ["id"]


def test_parse_bool_int_list():
    o, pos = parse(["-d", "--preserve-fds", "2", "-e", "A=1", "-e", "B=2", "-no-subreaper", "c"], SPEC)
    assert o.detach and o.n == 2 and o.env == ["A=1", "B=2"] and o.nsr and pos == ["c"]


def test_parse_stop_after_keeps_command_flags():
    o, pos = parse(["-d", "id", "sh", "-c", "ls -l"], SPEC, stop_after=1)
    assert pos == ["id", "sh", "-c", "ls -l"]


@pytest.mark.parametrize("argv,msg", [(["--nope"], "unknown flag `--nope`"),
                                      (["--bundle"], "needs a value"),
                                      (["--preserve-fds", "x"], "takes a number"),
                                      (["-d=maybe"], "true or false")])
def test_parse_errors(argv, msg):
    with pytest.raises(UsageError, match=msg):
        parse(argv, SPEC)


def test_mount_options_flags_and_data():
    mo = parse_options(["nosuid", "noexec", "nodev", "ro", "mode=755", "size=65536k", "rprivate"])
    assert mo.flags == kernel.MS_NOSUID | kernel.MS_NOEXEC | kernel.MS_NODEV | kernel.MS_RDONLY
    assert mo.data == ["mode=755", "size=65536k"]
    assert mo.propagation == [kernel.MS_PRIVATE | kernel.MS_REC]


def test_mount_options_later_wins():
    assert not parse_options(["ro", "rw"]).flags & kernel.MS_RDONLY
    assert parse_options(["rw", "ro"]).flags & kernel.MS_RDONLY


def test_mount_options_bind_and_recursive_attrs():
    mo = parse_options(["rbind", "rro", "rnosuid"])
    assert mo.bind and mo.flags & kernel.MS_REC
    assert mo.attr_set == kernel.MOUNT_ATTR_RDONLY | kernel.MOUNT_ATTR_NOSUID
    mo = parse_options(["bind", "rnoatime"])
    assert mo.attr_set == kernel.MOUNT_ATTR_NOATIME and mo.attr_clr == 0x70


@pytest.mark.parametrize("text,num", [("9", 9), ("KILL", 9), ("SIGKILL", 9), ("sigterm", 15),
                                      ("TERM", 15), ("HUP", 1), ("RTMIN+2", 36), ("SIGRTMAX", 64)])
def test_signals(text, num):
    assert parse_signal(text) == num


@pytest.mark.parametrize("text", ["0", "65", "FOO", "SIG", "-1", "RTMIN+99"])
def test_bad_signals(text):
    with pytest.raises(UsageError):
        parse_signal(text)


@pytest.mark.parametrize("cid", ["a/b", "..", ".", "../x", "", "a\0b", ".hidden", "a b", "x" * 1025])
def test_bad_ids(cid):
    with pytest.raises(UsageError):
        state_mod.check_id(cid)


@pytest.mark.parametrize("cid", ["abc", "a.b", "A_b-c+d", "0123456789" * 10])
def test_good_ids(cid):
    state_mod.check_id(cid)


def test_proc_start_time_matches_own_process():
    assert state_mod.proc_start_time(os.getpid()) > 0
    assert state_mod.proc_start_time(2 ** 22 + 12345) is None


def test_start_time_of_an_init_that_exited_before_it_was_recorded(tmp_path):
    """A run's init may exit before the runtime records it (it resumes only after the
    init's execve): unreaped, the zombie still gives its start time to create
    (exited_ok), and `alive` is false for it, and once it is gone, whatever was
    recorded (None included) never reads as running."""
    import time
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        for _ in range(500):
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rpartition(b")")[2].split()[0] == b"Z":
                    break
            time.sleep(0.002)
        started = state_mod.proc_start_time(pid, exited_ok=True)
        assert started and started > 0
        assert state_mod.proc_start_time(pid) is None
        st = state_mod.State(str(tmp_path), "z")
        st.pid, st.pid_start = pid, started
        assert not st.alive() and status(st) == "stopped"
    finally:
        os.waitpid(pid, 0)
    for recorded in (started, None):
        st.pid_start = recorded
        assert not st.alive() and status(st) == "stopped"


def test_state_roundtrip_and_garbage(tmp_path):
    root = str(tmp_path)
    os.mkdir(f"{root}/c1")
    st = state_mod.State(root, "c1")
    st.pid = os.getpid()
    st.pid_start = state_mod.proc_start_time(os.getpid())
    st.bundle = "/b"
    st.save()
    back = state_mod.load(root, "c1")
    assert back.pid == st.pid and back.bundle == "/b" and back.alive()
    # a recycled pid (same pid, other start time) is not our container
    back.pid_start += 1
    assert status(back) == "stopped"
    # garbage state: still loads as a husk that delete can remove
    with open(f"{root}/c1/state.json", "w") as f:
        f.write("{garbage")
    husk = state_mod.load(root, "c1")
    assert husk.pid == 0 and status(husk) == "creating"
    with pytest.raises(Exception, match="does not exist"):
        state_mod.load(root, "nope")


def test_log_lines_stay_one_line(capsys, tmp_path):
    """A message quoting a config's name or path is one line however the name is made
    (the fuzz tests found a syscall name that was a record separator)."""
    from ocirun import log
    log.configure(str(tmp_path / "log"), "text")
    try:
        log.error("unknown syscall `a\nb\x1e\udc80` skipped")
    finally:
        log.configure()
    err = capsys.readouterr().err
    assert err == "ocirun: unknown syscall `a\\nb\\x1e\\udc80` skipped\n"
    assert len((tmp_path / "log").read_text().splitlines()) == 1
