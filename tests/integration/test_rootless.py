"""Rootless: podman run by an ordinary user with ocirun as its runtime, and ocirun run by
that user directly, each case side by side with runc in the same user's session.

The user and its session are tests/rootless_support.py's. Every case runs with runc
first and records what it gave (printed with -s, and in the table at the end of the
run, tests/conftest.py), then with ocirun, whose result is asserted. A case skips only
where this machine cannot do it, saying why."""
import json
import os
import secrets
import shutil
import subprocess
import time

import pytest

from layout import cgroup2_root
from support import need_root
from rootless_support import IMAGE, RESULTS, Session, ensure_user, missing_tools

LOOP = "trap 'exit 0' TERM; while :; do sleep 0.1; done"
UNDER_TEST = os.environ.get("OCIRUN_UNDER_TEST")


@pytest.fixture(scope="module")
def rl():
    need_root()
    missing = missing_tools()
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (scripts/test.sh installs them)")
    got = ensure_user()
    if isinstance(got, str):
        pytest.skip(got)
    s = Session(*got, ocirun=UNDER_TEST)
    try:
        tar = subprocess.Popen(["tar", "-C", s.rootfs, "-c", "."], stdout=subprocess.PIPE)
        r = subprocess.run(s.argv(["podman", "import", "-q", "-", IMAGE]), stdin=tar.stdout,
                           env=s.env, cwd=s.home, capture_output=True, text=True, timeout=120)
        tar.stdout.close()
        tar.wait()
        if r.returncode != 0:
            pytest.skip(f"rootless podman cannot import an image here: {r.stderr.strip()}")
        r = s.podman("run", "--rm", IMAGE, "true", runtime="runc")
        if r.returncode != 0:
            pytest.skip(f"rootless podman does not work here even with runc: "
                        f"{r.stderr.strip()[-600:]}")
        yield s
    finally:
        s.teardown()
    left = s.processes()
    assert not left, f"processes of the rootless user left: {left}"


def record(case, runtime, result):
    """What `runtime` gave for `case`: printed (pytest -s) and kept for the table."""
    RESULTS.setdefault(case, {})[runtime] = result
    print(f"\n[rootless] {case}: {runtime}: {result}")


def outcome(r, expect_rc=0, expect_out=None):
    """A CompletedProcess in a few words, for the table."""
    if r.returncode == expect_rc and (expect_out is None or expect_out in r.stdout):
        return "ok" if expect_rc == 0 else f"ok (exit {expect_rc})"
    return f"exit {r.returncode}: {said(r)}"


def said(r, width=110):
    """The last line of a command's complaint (runc's: its msg="...")."""
    err = (r.stderr.strip().splitlines() or [""])[-1]
    if 'msg="' in err:
        err = err.split('msg="', 1)[1].rsplit('"', 1)[0].replace('\\"', '"')
    for prefix in ("runc run failed: ", "unable to start container process: ",
                   "error during container init: "):
        err = err.removeprefix(prefix)
    return err if len(err) <= width else err[:width - 3] + "..."


def name():
    return "t" + secrets.token_hex(5)


# --- podman, rootless --------------------------------------------------------------------------

def test_podman_run_rm(rl):
    for rt in ("runc", "ocirun"):
        r = rl.podman("run", "--rm", IMAGE, "echo", "hi", runtime=rt)
        record("podman run --rm", rt, outcome(r, 0, "hi"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi\n"


def test_podman_exit_codes(rl):
    for rt in ("runc", "ocirun"):
        r3 = rl.podman("run", "--rm", IMAGE, "sh", "-c", "echo out; exit 3", runtime=rt)
        r127 = rl.podman("run", "--rm", IMAGE, "nosuch-command", runtime=rt)
        record("podman exit codes (3, missing command 127)", rt,
               f"{r3.returncode}, {r127.returncode}")
    assert r3.returncode == 3 and r3.stdout == "out\n", r3.stderr
    assert r127.returncode == 127 and "executable file not found" in r127.stderr, r127.stderr


def test_podman_detach_exec_stop_rm(rl):
    for rt in ("runc", "ocirun"):
        n = name()
        steps = []
        r = rl.podman("run", "-d", "--name", n, IMAGE, "sh", "-c", LOOP, runtime=rt)
        steps.append(r.returncode)
        st = rl.podman("inspect", "-f", "{{.State.Status}}", n, runtime=None).stdout.strip()
        e1 = rl.podman("exec", n, "echo", "inexec", runtime=rt)
        e4 = rl.podman("exec", n, "sh", "-c", "exit 4", runtime=rt)
        stop = rl.podman("stop", "-t", "10", n, runtime=rt)
        after = rl.podman("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", n,
                          runtime=None).stdout.strip()
        rm = rl.podman("rm", n, runtime=rt)
        gone = rl.podman("container", "exists", n, runtime=None).returncode
        record("podman run -d, exec, stop, rm", rt,
               f"run {r.returncode}, {st}, exec {e1.returncode} {e1.stdout.strip()!r}, "
               f"exec exit {e4.returncode}, stop {stop.returncode} -> {after}, rm "
               f"{rm.returncode}")
    assert r.returncode == 0, r.stderr
    assert st == "running"
    assert e1.returncode == 0 and e1.stdout == "inexec\n", e1.stderr
    assert e4.returncode == 4, e4.stderr
    assert stop.returncode == 0 and after == "exited 0", stop.stderr
    assert rm.returncode == 0 and gone == 1, rm.stderr


def test_podman_interactive_tty(rl):
    from engine_support import run_in_pty
    for rt in ("runc", "ocirun"):
        rc, out = run_in_pty(rl.argv(["podman", "--runtime", rt, "run", "--rm", "-it", IMAGE,
                                      "sh", "-c", "tty; echo tty-ok; exit 5"]),
                             env=rl.env, timeout=60)
        record("podman run -it (pty)", rt,
               f"exit {rc}, {'tty-ok' if 'tty-ok' in out else 'no output'}")
    assert rc == 5, out
    assert "/dev/pts/0" in out and "tty-ok" in out, out


def test_podman_pause_unpause(rl):
    results = {}
    for rt in ("runc", "ocirun"):
        n = name()
        r = rl.podman("run", "-d", "--name", n, IMAGE, "sh", "-c", LOOP, runtime=rt)
        assert r.returncode == 0, r.stderr
        p = rl.podman("pause", n, runtime=rt)
        st = rl.podman("inspect", "-f", "{{.State.Status}}", n, runtime=None).stdout.strip()
        u = rl.podman("unpause", n, runtime=rt)
        rl.podman("rm", "-f", "-t", "0", n, runtime=rt)
        results[rt] = (p, st, u)
        record("podman pause/unpause", rt,
               f"{st} after pause, unpause {u.returncode}" if p.returncode == 0
               else outcome(p))
    p, st, u = results["ocirun"]
    if results["runc"][0].returncode != 0 and "cgroup" in results["runc"][0].stderr:
        # podman itself refuses: rootless containers have no cgroup on this host
        assert p.returncode != 0
        pytest.skip("podman cannot pause a rootless container here, with any runtime: "
                    + results["runc"][0].stderr.strip().splitlines()[-1])
    assert p.returncode == 0 and st == "paused", p.stderr
    assert u.returncode == 0, u.stderr


def test_podman_userns_keep_id(rl):
    for rt in ("runc", "ocirun"):
        r = rl.podman("run", "--rm", "--userns=keep-id", IMAGE, "sh", "-c",
                      "id -u; id -g; cat /proc/self/uid_map", runtime=rt)
        record("podman --userns=keep-id", rt, outcome(r, 0, f"{rl.uid}\n{rl.gid}\n"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == [str(rl.uid), str(rl.gid)], r.stdout
    assert [str(rl.uid), "0", "1"] in [line.split() for line in lines[2:]], r.stdout


def test_podman_bind_volume(rl):
    for rt in ("runc", "ocirun"):
        vol = rl.own_dir(f"vol-{rt}", 0o755)
        with open(os.path.join(vol, "in"), "w") as f:
            f.write("from the host\n")
        os.chown(os.path.join(vol, "in"), rl.uid, rl.gid)
        r = rl.podman("run", "--rm", "-v", f"{vol}:/data", "-v", f"{vol}:/ro:ro", IMAGE, "sh",
                      "-c", "cat /data/in; echo x > /data/out; echo y > /ro/no || echo ro-ok",
                      runtime=rt)
        st = os.stat(os.path.join(vol, "out")) if os.path.exists(os.path.join(vol, "out")) \
            else None
        record("podman bind volume (rw and :ro)", rt,
               outcome(r, 0, "ro-ok") + (f", file owned by uid {st.st_uid}" if st else ""))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "from the host" and "ro-ok" in r.stdout, r.stdout
    assert st is not None and st.st_uid == rl.uid  # container root is the user


def test_podman_default_seccomp_profile(rl):
    for rt in ("runc", "ocirun"):
        r = rl.podman("run", "--rm", IMAGE, "grep", "-E", "^Seccomp(_filters)?:",
                      "/proc/self/status", runtime=rt)
        record("podman default seccomp profile", rt,
               outcome(r) + (": " + " ".join(r.stdout.split()) if r.returncode == 0 else ""))
    assert r.returncode == 0, r.stderr
    fields = dict(line.split(":\t") for line in r.stdout.strip().splitlines())
    assert fields["Seccomp"] == "2" and fields.get("Seccomp_filters", "1") == "1", r.stdout


def test_podman_network_slirp4netns(rl):
    tun = "/dev/net/tun"
    probe = rl.run(["sh", "-c", f"exec 3<>{tun}"])
    if probe.returncode != 0:
        mode = oct(os.stat(tun).st_mode & 0o777) if os.path.exists(tun) else "missing"
        pytest.skip(f"slirp4netns needs {tun} open to the user, and it is not here "
                    f"(mode {mode}; udev makes it 0666 on Debian)")
    for rt in ("runc", "ocirun"):
        r = rl.podman("run", "--rm", "--network", "slirp4netns", IMAGE, "ip", "-4", "addr",
                      runtime=rt)
        record("podman --network slirp4netns", rt, outcome(r, 0, "10.0.2.100"))
    assert r.returncode == 0, r.stderr
    assert "10.0.2.100" in r.stdout, r.stdout


def test_podman_refuses_unreadable_volume(rl):
    """A host path the user cannot read as a volume: refused, naming the mount (a bind of
    /root works, only searching it is denied: podman lets it through, and so does runc),
    and nothing left in the user's podman storage."""
    for rt in ("runc", "ocirun"):
        r = rl.podman("run", "--rm", "-v", "/root:/x", IMAGE, "true", runtime=rt)
        left = rl.podman("ps", "-a", "-q", runtime=None).stdout.split()
        record("podman -v /root:/x (unreadable)", rt,
               outcome(r, 0) + f", containers left: {len(left)}")
    assert r.returncode != 0
    assert "ocirun: mounts[" in r.stderr and "cannot read it" in r.stderr, r.stderr
    assert not left


# --- ocirun run by the user directly --------------------------------------------------------------

def make_bundle(rl, rt, tweak=None, args=("true",)):
    """A bundle of the user's: a busybox rootfs and `RT spec --rootless`'s config with
    `args` (no terminal), changed by tweak(config)."""
    b = rl.own_dir(f"bundles/{rt}-{secrets.token_hex(4)}")
    shutil.copytree(rl.rootfs, os.path.join(b, "rootfs"), symlinks=True)
    for cur, dirs, files in os.walk(b):  # the user's image, as podman's would be
        for n in dirs + files:
            os.lchown(os.path.join(cur, n), rl.uid, rl.gid)
    r = rl.run([rl.runtime(rt), "spec", "--rootless"], cwd=b)
    assert r.returncode == 0, r.stderr
    return rewrite(rl, b, args, tweak)


def rewrite(rl, b, args, tweak=None):
    path = os.path.join(b, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = list(args)
    if tweak:
        tweak(cfg)
    with open(path, "w") as f:
        json.dump(cfg, f)
    return b


def oci(rl, rt, b, *args, timeout=60):
    detached = args[0] == "create" or "-d" in args[:2]
    return rl.run([rl.runtime(rt), *args], cwd=b, timeout=timeout, detached=detached)


def state_root(rl, rt):
    return os.path.join(rl.run_dir, rt)


def test_spec_rootless(rl):
    cfgs = {}
    for rt in ("runc", "ocirun"):
        b = rl.own_dir(f"bundles/spec-{rt}")
        r = rl.run([rl.runtime(rt), "spec", "--rootless"], cwd=b)
        assert r.returncode == 0, r.stderr
        with open(os.path.join(b, "config.json")) as f:
            cfg = json.load(f)
        linux = cfg["linux"]
        sys_mount = next(m for m in cfg["mounts"] if m["destination"] == "/sys")
        cfgs[rt] = (sorted(n["type"] for n in linux["namespaces"]),
                    linux["uidMappings"], linux["gidMappings"], "resources" in linux,
                    sys_mount["type"], sys_mount["source"], cfg["process"]["user"])
        record("spec --rootless", rt,
               f"namespaces {','.join(cfgs[rt][0])}; maps 0->{linux['uidMappings'][0]['hostID']}"
               f"; resources {'kept' if cfgs[rt][3] else 'none'}; /sys {sys_mount['type']} "
               f"{sys_mount['source']}")
    ns, uids, gids, resources, sys_type, sys_src, user = cfgs["ocirun"]
    assert "user" in ns and "network" not in ns
    assert uids == [{"containerID": 0, "hostID": rl.uid, "size": 1}]
    assert gids == [{"containerID": 0, "hostID": rl.gid, "size": 1}]
    assert not resources
    assert sys_src == "/sys" and sys_type in ("none", "bind")
    assert user == {"uid": 0, "gid": 0}
    # runc 1.1 leaves out the cgroup namespace that ocirun's default config has
    assert set(ns) - set(cfgs["runc"][0]) <= {"cgroup"}
    assert cfgs["ocirun"][1:4] == cfgs["runc"][1:4]


def test_features_help_and_the_default_root(rl):
    f = rl.run([rl.ocirun, "features"])
    assert f.returncode == 0, f.stderr
    notes = json.loads(f.stdout)["annotations"]
    assert notes["run.oci.ocirun.rootless"] == "true"
    h = rl.run([rl.ocirun, "--help"])
    assert "--rootless" in h.stdout and "$XDG_RUNTIME_DIR/ocirun" in h.stdout
    # without XDG_RUNTIME_DIR (and no /run/user/UID of its own) the user is told what
    # to do; spec and features need no state directory and still work
    env = {"XDG_RUNTIME_DIR": ""}
    r = rl.run([rl.ocirun, "list"], env=env)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "XDG_RUNTIME_DIR" in r.stderr and "--root" in r.stderr, r.stderr
    b = rl.own_dir(f"bundles/noxdg-{secrets.token_hex(3)}")
    assert rl.run([rl.ocirun, "spec", "--rootless"], cwd=b, env=env).returncode == 0
    assert rl.run([rl.ocirun, "features"], env=env).returncode == 0
    # --rootless takes true, false or auto
    bad = rl.run([rl.ocirun, "--rootless", "maybe", "list"])
    assert bad.returncode != 0 and "--rootless" in bad.stderr


SEE = ("id; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; "
       "grep -E ' /sys | /sys/fs/cgroup ' /proc/self/mountinfo; stat -c '%F %t:%T' /dev/null; "
       "cat /proc/self/cgroup")


def test_run_from_spec(rl):
    for rt in ("runc", "ocirun"):
        b = make_bundle(rl, rt, args=("sh", "-c", SEE))
        cid = name()
        r = oci(rl, rt, b, "run", cid)
        record("run of the spec --rootless bundle", rt,
               outcome(r, 0, "uid=0") + (", setgroups deny" if "deny" in r.stdout else ""))
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0].startswith("uid=0(root) gid=0(root)"), out
    assert out[1].split() == ["0", str(rl.uid), "1"] and out[2].split() == ["0", str(rl.gid), "1"]
    assert out[3] == "deny"
    sys_line = next(line for line in out if " /sys " in line)
    assert " ro," in sys_line, sys_line  # /sys bound from the host, read-only
    assert "character special file 1:3" in out, out
    # no cgroup of its own: the container's cgroups are the runtime's
    with open("/proc/self/cgroup") as f:
        ours = f.read()
    assert "/ocirun" not in r.stdout and "/ocirun" not in ours
    # the default --root is the user's, and nothing is left there
    st = os.stat(state_root(rl, "ocirun"))
    assert st.st_uid == rl.uid and not st.st_mode & 0o022
    assert cid not in os.listdir(state_root(rl, "ocirun"))


def test_lifecycle_under_xdg_runtime_dir(rl):
    for rt in ("runc", "ocirun"):
        b = make_bundle(rl, rt, args=("sleep", "600"))
        cid = name()
        c = oci(rl, rt, b, "create", cid)
        made = os.path.isdir(os.path.join(state_root(rl, rt), cid))
        s1 = oci(rl, rt, b, "state", cid)
        st = oci(rl, rt, b, "start", cid)
        lst = oci(rl, rt, b, "list", "-q")
        ex = oci(rl, rt, b, "exec", cid, "sh", "-c", "echo in; exit 6")
        ps = oci(rl, rt, b, "ps", cid)
        k = oci(rl, rt, b, "kill", cid, "KILL")
        deadline = time.time() + 10
        while time.time() < deadline and '"stopped"' not in oci(rl, rt, b, "state", cid).stdout:
            time.sleep(0.05)
        d = oci(rl, rt, b, "delete", cid)
        gone = not os.path.exists(os.path.join(state_root(rl, rt), cid))
        status = json.loads(s1.stdout)["status"] if s1.returncode == 0 else "?"
        record("create/start/exec/ps/kill/delete, --root in $XDG_RUNTIME_DIR", rt,
               f"create {c.returncode} ({'state dir there' if made else 'no state dir'}), "
               f"{status}, start {st.returncode}, exec exit {ex.returncode}, ps "
               f"{ps.returncode}, kill {k.returncode}, delete {d.returncode}")
    assert c.returncode == 0 and made, c.stderr
    assert status == "created" and st.returncode == 0, st.stderr
    assert cid in lst.stdout.split()
    assert ex.returncode == 6 and ex.stdout == "in\n", ex.stderr
    assert ps.returncode == 0 and "sleep" in ps.stdout, ps.stderr
    assert k.returncode == 0 and d.returncode == 0 and gone, d.stderr


def test_terminal(rl):
    from engine_support import run_in_pty
    for rt in ("runc", "ocirun"):
        b = make_bundle(rl, rt, args=("sh", "-c", "tty; echo tty-ok; exit 5"),
                        tweak=lambda c: c["process"].update(terminal=True))
        rc, out = run_in_pty(rl.argv(["sh", "-c", f"cd {b} && exec {rl.runtime(rt)} run "
                                      f"{name()}"]), env=rl.env, timeout=60)
        record("run with a terminal (pty)", rt,
               f"exit {rc}, {'tty-ok' if 'tty-ok' in out else 'no output'}")
    assert rc == 5, out
    assert "/dev/pts/0" in out and "tty-ok" in out, out


def _subid_maps(rl):
    def tweak(c):
        linux = c["linux"]
        linux["uidMappings"] = [{"containerID": 0, "hostID": rl.uid, "size": 1},
                                {"containerID": 1, "hostID": rl.subuid, "size": 65535}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": rl.gid, "size": 1},
                                {"containerID": 1, "hostID": rl.subgid, "size": 65535}]
        c["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5]}
        c["mounts"].append({"destination": "/data", "type": "bind", "source": vol,
                            "options": ["bind"]})
    vol = rl.own_dir(f"vol-maps-{secrets.token_hex(3)}", 0o777)
    os.chmod(vol, 0o777)
    return tweak, vol


def test_subordinate_ids_through_newuidmap(rl):
    for rt in ("runc", "ocirun"):
        tweak, vol = _subid_maps(rl)
        b = make_bundle(rl, rt, tweak, args=("sh", "-c", "id; cat /proc/self/setgroups; "
                                                         "touch /data/made"))
        r = oci(rl, rt, b, "run", name())
        made = os.path.join(vol, "made")
        owner = os.stat(made).st_uid if os.path.exists(made) else None
        record("uid/gid maps over /etc/subuid (newuidmap), user 1000", rt,
               outcome(r, 0, "uid=1000") + (f", file owned by host uid {owner}"
                                            if owner is not None else ""))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:2] == ["uid=1000 gid=1000 groups=5", "allow"], r.stdout
    assert owner == rl.subuid + 999


@pytest.fixture
def locked_mount(rl):
    """A tmpfs of our own, mounted ro,nosuid,nodev,noexec,noatime: flags a user
    namespace cannot clear on a bind of it."""
    path = os.path.join(rl.base, f"locked-{secrets.token_hex(3)}")
    os.mkdir(path, 0o755)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,nosuid,nodev,noexec,noatime,mode=755",
                        "ocirun-rl-locked", path], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield path
    subprocess.run(["umount", path], capture_output=True)
    os.rmdir(path)


def test_bind_keeps_locked_flags(rl, locked_mount):
    """mounts[].options asking rw, suid, dev, exec and strictatime of a source mounted
    ro,nosuid,nodev,noexec,noatime: in a user namespace those are locked, the bind keeps
    them instead of failing."""
    def tweak(c):
        c["mounts"].append({"destination": "/mnt", "type": "bind", "source": locked_mount,
                            "options": ["bind", "rw", "suid", "dev", "exec", "strictatime"]})
    for rt in ("runc", "ocirun"):
        b = make_bundle(rl, rt, tweak, args=("grep", " /mnt ", "/proc/self/mountinfo"))
        r = oci(rl, rt, b, "run", name())
        record("bind of a ro,nosuid,nodev,noexec,noatime mount asking rw,suid,dev,exec,"
               "strictatime", rt,
               outcome(r) + (": " + r.stdout.split()[5] if r.returncode == 0 else ""))
    assert r.returncode == 0, r.stderr
    opts = set(r.stdout.split()[5].split(","))
    assert {"ro", "nosuid", "nodev", "noexec", "noatime"} <= opts, r.stdout


def test_devices_are_bound_from_the_host(rl):
    for rt in ("runc", "ocirun"):
        b = make_bundle(rl, rt, args=("sh", "-c", "grep ' /dev/null ' /proc/self/mountinfo; "
                                                  "echo x > /dev/null && echo written"))
        r = oci(rl, rt, b, "run", name())
        record("default devices (bind mounts of the host's)", rt, outcome(r, 0, "written"))
    assert r.returncode == 0, r.stderr
    assert " /null /dev/null " in r.stdout and "written" in r.stdout, r.stdout


def test_rlimits_within_the_hard_limit(rl):
    def tweak(c):
        c["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024}]
    for rt in ("runc", "ocirun"):
        b = make_bundle(rl, rt, tweak, args=("sh", "-c", "ulimit -n; ulimit -Hn"))
        r = oci(rl, rt, b, "run", name())
        record("rlimits below the hard limit", rt, outcome(r, 0, "512\n1024"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["512", "1024"]


def test_pause_needs_a_cgroup(rl):
    """Without a delegated cgroup v2 subtree the container has no cgroup: pause says so."""
    for rt in ("runc", "ocirun"):
        b = make_bundle(rl, rt, args=("sleep", "600"))
        cid = name()
        r = oci(rl, rt, b, "run", "-d", cid)
        assert r.returncode == 0, r.stderr
        p = oci(rl, rt, b, "pause", cid)
        st = oci(rl, rt, b, "state", cid)
        oci(rl, rt, b, "delete", "-f", cid)
        record("pause without a delegated cgroup", rt,
               outcome(p) + f", then {json.loads(st.stdout)['status'] if st.stdout else '?'}")
    assert p.returncode == 1 and "no cgroup" in p.stderr, p.stderr
    assert json.loads(st.stdout)["status"] == "running"


# --- a delegated cgroup v2 subtree ------------------------------------------------------------------

DELEGATED = """\
set -e
umount -R /sys/fs/cgroup
mount -t cgroup2 none /sys/fs/cgroup
mkdir /sys/fs/cgroup/{name} /sys/fs/cgroup/{name}/shell
chown -R {uid}:{gid} /sys/fs/cgroup/{name}
echo $$ > /sys/fs/cgroup/{name}/shell/cgroup.procs
exec {setpriv} sh -c "$0"
"""

PAUSE_SCRIPT = """\
cd {bundle}
{rt} run -d {cid} || exit 1
pid=$({rt} state {cid} | grep -o '"pid": [0-9]*' | grep -o '[0-9]*$')
cg=$(sed -n 's/^0:://p' /proc/$pid/cgroup)
echo "cgroup: $cg"
{rt} pause {cid}; echo "pause: $?"
echo "paused: $({rt} state {cid} | grep -o '"status": "[a-z]*"')"
echo "frozen: $(grep frozen /sys/fs/cgroup$cg/cgroup.events)"
{rt} resume {cid}; echo "resume: $?"
echo "resumed: $({rt} state {cid} | grep -o '"status": "[a-z]*"')"
{rt} delete -f {cid}; echo "delete: $?"
echo "left: $(cd /sys/fs/cgroup/{name} && ls -d */)"
"""


def _remove_cgroup(base):
    """Our delegated cgroup, on this pass's view of the v2 hierarchy (cgroup2_root: at
    /sys/fs/cgroup/unified on a hybrid host, /sys/fs/cgroup on a unified layout): what
    is left in it killed (only the test's processes are ever there), then removed."""
    if not os.path.isdir(base):
        return
    dirs = sorted((cur for cur, _d, _f in os.walk(base)), key=len, reverse=True)
    for d in dirs:
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                for pid in f.read().split():
                    os.kill(int(pid), 9)
        except OSError:
            pass
    for d in dirs:
        for _ in range(50):
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)
    assert not os.path.exists(base), f"cgroup left behind: {base}"


def test_delegated_cgroup_v2(rl):
    """A cgroup v2 subtree delegated to the user (chowned to it, the user's shell in
    it), on a pure cgroup v2 view of this machine's hierarchy (a private mount
    namespace; this host is hybrid): the container gets a cgroup there, and pause and
    resume work."""
    cg = "ocirun-rl-" + secrets.token_hex(3)
    results = {}
    for rt in ("runc", "ocirun"):
        b = make_bundle(rl, rt, args=("sleep", "600"))
        mine = f"{cg}-{rt}"
        script = PAUSE_SCRIPT.format(bundle=b, rt=rl.runtime(rt), cid=name(), name=mine)
        outer = DELEGATED.format(name=mine, uid=rl.uid, gid=rl.gid,
                                 setpriv=" ".join(rl.argv([])))
        try:
            r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                outer, script], env=rl.env, cwd=rl.home,
                               capture_output=True, text=True, timeout=120)
        finally:
            _remove_cgroup(f"{cgroup2_root()}/{mine}")
        results[rt] = r
        got = dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line)
        record("delegated cgroup v2: run -d, pause, resume, delete", rt,
               f"pause {got.get('pause', '?')} ({got.get('frozen', '').strip() or '-'}), "
               f"resume {got.get('resume', '?')}, cgroup {got.get('cgroup', '?')}"
               if got else outcome(r))
    r = results["ocirun"]
    if "mount" in r.stderr and "cgroup2" in r.stderr:
        pytest.skip(f"cannot mount a cgroup v2 hierarchy here: {r.stderr.strip()}")
    got = dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line)
    assert got.get("cgroup", "").startswith(f"/{cg}-ocirun/"), r.stdout + r.stderr
    assert got.get("pause") == "0", r.stdout + r.stderr
    assert got.get("paused", "").endswith('"paused"'), r.stdout
    assert got.get("frozen") == "frozen 1", r.stdout + r.stderr
    assert got.get("resumed", "").endswith('"running"'), r.stdout
    assert got.get("resume") == "0" and got.get("delete") == "0", r.stdout + r.stderr
    assert got.get("left", "").strip() == "shell/", r.stdout


PODMAN_PAUSE = """\
tar -C {rootfs} -c . | podman import -q - {image} >/dev/null || exit 1
for rt in runc {ocirun}; do
  n=p$$-$(basename $rt)
  podman --runtime $rt run -d --name $n {image} sleep 600 >/dev/null || exit 1
  podman --runtime $rt pause $n >/dev/null; p=$?
  st=$(podman inspect -f '{{{{.State.Status}}}}' $n)
  podman --runtime $rt unpause $n >/dev/null; u=$?
  st2=$(podman inspect -f '{{{{.State.Status}}}}' $n)
  podman --runtime $rt rm -f -t 0 $n >/dev/null; r=$?
  echo "$(basename $rt): pause $p -> $st, unpause $u -> $st2, rm $r"
done
"""


def test_podman_pause_delegated_cgroup_v2(rl):
    """podman pause and unpause where the cgroup manager allows them: a delegated
    cgroup v2 subtree (as in test_delegated_cgroup_v2), with a podman session of its
    own (its pause process and storage live in that mount namespace)."""
    mine = "ocirun-rl-" + secrets.token_hex(3)
    home = rl.own_dir(f"v2-{mine}")
    env = dict(rl.env, HOME=home, XDG_RUNTIME_DIR=rl.own_dir(f"v2-{mine}/run"),
               XDG_DATA_HOME=os.path.join(home, "data"), TMPDIR=rl.own_dir(f"v2-{mine}/tmp"),
               XDG_CONFIG_HOME=rl.own_dir(f"v2-{mine}/config"))
    conf = rl.own_dir(f"v2-{mine}/config/containers")
    shutil.copy(os.path.join(rl.home, ".config/containers/storage.conf"), conf)
    script = PODMAN_PAUSE.format(rootfs=rl.rootfs, image=IMAGE, ocirun=rl.ocirun)
    outer = DELEGATED.format(name=mine, uid=rl.uid, gid=rl.gid, setpriv=" ".join(rl.argv([])))
    try:
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", outer,
                            script], env=env, cwd=home, capture_output=True, text=True,
                           timeout=300)
    finally:
        _remove_cgroup(f"{cgroup2_root()}/{mine}")  # podman's pause process too
    got = dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line)
    for rt in ("runc", "ocirun"):
        record("podman pause/unpause, delegated cgroup v2", rt,
               got.get(os.path.basename(rl.runtime(rt)), outcome(r)))
    assert got.get(os.path.basename(rl.ocirun)) == \
        "pause 0 -> paused, unpause 0 -> running, rm 0", r.stdout + r.stderr


# --- what only root may do: one line naming the field, nothing left ------------------------------

def _bad(rl):
    return {
        "device the user may not open": (
            lambda c: c["linux"].setdefault("devices", []).append(
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}),
            "linux.devices[0]"),
        "volume the user cannot read": (
            lambda c: c["mounts"].append({"destination": "/x", "type": "bind",
                                          "source": "/root", "options": ["bind"]}),
            "mounts["),
        "cgroup limit without delegation": (
            lambda c: c["linux"].update(resources={"memory": {"limit": 64 << 20}}),
            "linux.resources.memory.limit"),
        "uid outside the user's range": (
            lambda c: c["linux"].update(uidMappings=[
                {"containerID": 0, "hostID": rl.uid, "size": 1},
                {"containerID": 1, "hostID": 4_000_000_000, "size": 10}]),
            "linux.uidMappings[1]"),
        "hard rlimit above the user's": (
            lambda c: c["process"].update(rlimits=[
                {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1 << 30}]),
            "process.rlimits[0]"),
        "additional gids with setgroups denied": (
            lambda c: c["process"]["user"].update(additionalGids=[0]),
            "process.user.additionalGids"),
        "no user namespace": (
            lambda c: (c["linux"].update(namespaces=[n for n in c["linux"]["namespaces"]
                                                     if n["type"] != "user"]),
                       c["linux"].pop("uidMappings"), c["linux"].pop("gidMappings")),
            "linux.namespaces"),
    }


BAD_CASES = ["device the user may not open", "volume the user cannot read",
             "cgroup limit without delegation", "uid outside the user's range",
             "hard rlimit above the user's", "additional gids with setgroups denied",
             "no user namespace"]


def _mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        return sorted(line.split()[4] for line in f if line.split()[4].startswith(path))


@pytest.mark.parametrize("case", BAD_CASES)
def test_refused_with_one_line(rl, case):
    tweak, field = _bad(rl)[case]
    for rt in ("runc", "ocirun"):
        # the same config for both: ocirun's spec --rootless, changed
        b = make_bundle(rl, "ocirun", tweak, args=("true",))
        before = sorted(os.listdir(state_root(rl, rt))) if os.path.isdir(state_root(rl, rt)) \
            else []
        mounts = _mounts_under(rl.base)
        cid = name()
        r = oci(rl, rt, b, "run", cid)
        after = sorted(os.listdir(state_root(rl, rt))) if os.path.isdir(state_root(rl, rt)) \
            else []
        record(f"refused: {case}", rt, outcome(r, 0) if r.returncode == 0 else
               f"exit {r.returncode}: {said(r, 160)}")
        if rt == "runc":
            oci(rl, rt, b, "delete", "-f", cid)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ocirun: {field}"), r.stderr
    assert "Traceback" not in r.stderr
    assert after == before, after
    assert _mounts_under(rl.base) == mounts
    assert not [p for p in rl.processes() if _is_container(p, b)]


def _is_container(pid, bundle):
    try:
        return os.readlink(f"/proc/{pid}/root").startswith(bundle)
    except OSError:
        return False
