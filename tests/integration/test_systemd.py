"""The systemd cgroup driver and sd_notify against a real systemd (tests/systemd_machine.py:
systemd 252 booted as PID 1 of a container of its own, in the host's hybrid layout and
in a cgroup2-only one). Every command runs inside that machine, as on a systemd host;
the unit states are read from the host over the machine's bus.

runc 1.1.5 runs the same scenarios with --systemd-cgroup in the same machine
(test_side_by_side_with_runc), and its results are printed next to ours. podman 4.3
(--cgroup-manager=systemd, --sdnotify=container) and containerd 1.6 (the runc shim with
SystemdCgroup) run containers with ocirun there too.

The fixture records the host's /tmp, /var/tmp, global sysctls and cgroup hierarchies
before it boots systemd and checks them after it is gone."""
import json
import os
import shutil
import subprocess
import time

import pytest

from layout import unified
from support import OCIRUN, base_config, make_rootfs, need_root
from systemd_machine import Machine, canaries, host_snapshot, snapshot_changes

RUNC = shutil.which("runc") or "/usr/sbin/runc"
MODES = ["hybrid", "unified"]


def _need_tools():
    need_root()
    for tool in ("/lib/systemd/systemd", "/usr/bin/dbus-daemon", "/usr/bin/busctl"):
        if not os.path.exists(tool):
            pytest.skip(f"{tool} is missing: install systemd and dbus to boot one in a "
                        "container (scripts/test.sh does not: their packages run "
                        "systemd-tmpfiles over the machine)")


@pytest.fixture(scope="module", params=MODES)
def machine(request, tmp_path_factory):
    _need_tools()
    mode = request.param
    if mode == "hybrid" and unified():
        pytest.skip("the hybrid machine mounts the host's v1 hierarchies, and this pass's "
                    "layout is pure cgroup v2 (the first pass on the host's own layout "
                    "boots it)")
    planted = canaries()
    before = host_snapshot()
    m = Machine(str(tmp_path_factory.mktemp(f"sd-{mode}")), mode)
    try:
        err = m.start()
        if err:
            pytest.fail(f"systemd ({mode}) did not boot: {err}")
        m.template = None
        yield m
    finally:
        m.stop()
        leftovers = m.leftovers()
        changes = snapshot_changes(before, host_snapshot(), planted)
        planted.remove()
        assert not leftovers, f"the machine left {leftovers}"
        assert not changes, f"the host changed while systemd ran: {changes}"


# -- helpers ------------------------------------------------------------------------------

class Ctx:
    """One test's view of the machine: bundles and state roots in the machine's shared
    directory, the runtime under test."""

    def __init__(self, m, name, runtime=OCIRUN):
        import tempfile
        self.m = m
        self.dir = tempfile.mkdtemp(prefix=name + "-", dir=m.base)
        self.runtime = runtime
        self.root = os.path.join(self.dir, "root")
        self.n = 0

    def rt(self, *args, env=None, input=None, timeout=60, global_args=("--systemd-cgroup",)):
        return self.m.run([self.runtime, "--root", self.root, *global_args, *args], env=env,
                          input=input, timeout=timeout)

    def bundle(self, args, cgroups_path=None, resources=None, annotations=None, usr=False):
        self.n += 1
        b = os.path.join(self.dir, f"b{self.n}")
        os.makedirs(b)
        tmpl = os.path.join(self.m.base, "rootfs-template")
        if not os.path.isdir(tmpl):
            make_rootfs(tmpl)
            for link in ("lib", "lib64"):
                os.symlink(f"usr/{link}", os.path.join(tmpl, link))
            os.makedirs(os.path.join(tmpl, "usr"))
        shutil.copytree(tmpl, os.path.join(b, "rootfs"), symlinks=True)
        cfg = base_config(args)
        linux = cfg["linux"]
        # the machine's /proc/sys is read-only (systemd would write host sysctls)
        linux.pop("sysctl", None)
        linux["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
        if resources:
            linux["resources"].update(resources)
        if cgroups_path is not None:
            linux["cgroupsPath"] = cgroups_path
        if annotations:
            cfg["annotations"] = annotations
        if usr:  # the host's /usr, for systemd-notify
            cfg["mounts"].append({"destination": "/usr", "type": "bind", "source": "/usr",
                                  "options": ["rbind", "ro"]})
        with open(os.path.join(b, "config.json"), "w") as f:
            json.dump(cfg, f)
        return b

    def state(self, cid):
        r = self.rt("state", cid)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def sh(self, script, timeout=60):
        return self.m.run(["sh", "-c", script], timeout=timeout)


def cgroup_dirs(m, path):
    """The cgroup directories of `path` in the machine, every hierarchy."""
    r = m.run(["sh", "-c", f"for d in /sys/fs/cgroup /sys/fs/cgroup/*; do "
                           f"[ -d $d{path} ] && echo $d{path}; done; true"])
    return sorted(set(r.stdout.split()))


def one_line_error(r):
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 1, r
    assert len(lines) == 1, r
    assert "Traceback" not in r.stderr
    return lines[0]


def scope_file(m, path, name):
    """A file of the scope's cgroup, wherever the layout keeps it."""
    r = m.run(["sh", "-c", f"for d in /sys/fs/cgroup /sys/fs/cgroup/*; do "
                           f"[ -f $d{path}/{name} ] && cat $d{path}/{name} && exit 0; done; exit 1"])
    return r.stdout.strip() if r.returncode == 0 else None


def unit_prop(m, unit, prop):
    r = m.run(["systemctl", "show", "-p", prop, "--value", unit])
    return r.stdout.strip()


# -- the scope ----------------------------------------------------------------------------

def test_run_is_a_scope_and_goes_with_the_container(machine):
    c = Ctx(machine, "run")
    b = c.bundle(["cat", "/proc/self/cgroup"], "system.slice:ocirun:run1")
    r = c.rt("run", "-b", b, "run1")
    assert r.returncode == 0, r
    assert "0::/system.slice/ocirun-run1.scope" in r.stdout.splitlines(), r
    assert machine.unit_state("ocirun-run1.scope") is None
    assert cgroup_dirs(machine, "/system.slice/ocirun-run1.scope") == []


def test_create_start_delete(machine):
    c = Ctx(machine, "csd")
    unit = "ocirun-csd.scope"
    path = "/system.slice/" + unit
    b = c.bundle(["sleep", "1000"], "system.slice:ocirun:csd")
    r = c.rt("create", "-b", b, "csd")
    assert r.returncode == 0, r
    st = c.state("csd")
    assert st["status"] == "created"
    assert machine.unit_state(unit) == "active"
    assert unit_prop(machine, unit, "Delegate") == "yes"
    assert unit_prop(machine, unit, "Slice") == "system.slice"
    procs = scope_file(machine, path, "cgroup.procs")
    assert str(st["pid"]) in procs.split()
    r = c.rt("start", "csd")
    assert r.returncode == 0, r
    assert c.state("csd")["status"] == "running"
    r = c.rt("exec", "csd", "cat", "/proc/self/cgroup")
    assert f"0::{path}" in r.stdout.splitlines(), r
    r = c.rt("delete", "-f", "csd")
    assert r.returncode == 0, r
    assert machine.unit_state(unit) is None
    assert cgroup_dirs(machine, path) == []
    assert not os.path.exists(os.path.join(c.root, "csd"))


@pytest.mark.parametrize("cgroups_path,path", [
    (None, "/system.slice/ocirun-{id}.scope"),
    (":pre:{id}", "/system.slice/pre-{id}.scope"),
    ("ocirun-test.slice:pre:{id}", "/ocirun.slice/ocirun-test.slice/pre-{id}.scope"),
    ("-.slice:pre:{id}", "/pre-{id}.scope"),
])
def test_unit_names_and_slices(machine, cgroups_path, path):
    c = Ctx(machine, "names")
    cid = f"n{abs(hash(cgroups_path)) % 10000}"
    b = c.bundle(["cat", "/proc/self/cgroup"],
                 cgroups_path.format(id=cid) if cgroups_path else None)
    r = c.rt("run", "-b", b, cid)
    assert r.returncode == 0, r
    assert "0::" + path.format(id=cid) in r.stdout.splitlines(), r


# -- resources ----------------------------------------------------------------------------

RESOURCES = {"memory": {"limit": 64 << 20, "swap": 128 << 20},
             "cpu": {"shares": 512, "quota": 25000, "period": 100000, "cpus": "0"},
             "pids": {"limit": 40}}


def test_resources_in_the_scope(machine):
    c = Ctx(machine, "res")
    unit = "ocirun-res.scope"
    path = "/system.slice/" + unit
    b = c.bundle(["sleep", "1000"], "system.slice:ocirun:res", resources=RESOURCES)
    r = c.rt("run", "-d", "-b", b, "res")
    if machine.mode == "unified":
        # no controller is enabled in this machine's cgroup2 tree (the host's v1
        # hierarchies hold them): a limit that cannot be set is refused, and the unit
        # goes with the failed create
        line = one_line_error(r)
        assert "linux.resources." in line and "not enabled" in line, line
        assert machine.unit_state(unit) is None
        assert cgroup_dirs(machine, path) == []
        assert not os.path.exists(os.path.join(c.root, "res"))
        return
    assert r.returncode == 0, r
    try:
        # what systemd was told ...
        assert unit_prop(machine, unit, "MemoryLimit") == str(64 << 20)
        assert unit_prop(machine, unit, "CPUShares") == "512"
        assert unit_prop(machine, unit, "CPUQuotaPerSecUSec") == "250ms"
        assert unit_prop(machine, unit, "TasksMax") == "40"
        assert unit_prop(machine, unit, "DevicePolicy") == "strict"
        # ... and what the cgroup files say (swap and cpuset only ever go there on v1)
        assert scope_file(machine, path, "memory.limit_in_bytes") == str(64 << 20)
        assert scope_file(machine, path, "memory.memsw.limit_in_bytes") == str(128 << 20)
        assert scope_file(machine, path, "cpu.shares") == "512"
        assert scope_file(machine, path, "cpu.cfs_quota_us") == "25000"
        assert scope_file(machine, path, "cpuset.cpus") == "0"
        assert scope_file(machine, path, "pids.max") == "40"
        devices = scope_file(machine, path, "devices.list").splitlines()
        assert "c 1:3 rwm" in devices and "a *:* rwm" not in devices
        # the pids limit holds inside the container
        r = c.rt("exec", "res", "sh", "-c", "for i in $(seq 60); do sleep 5 & done 2>&1; wait")
        assert "can't fork" in r.stdout + r.stderr or "Resource temporarily" in r.stdout + r.stderr, r
        # update: systemd and the files together
        r = c.rt("update", "-r", "-", "res",
                 input=json.dumps({"memory": {"limit": 32 << 20}, "pids": {"limit": 20}}))
        assert r.returncode == 0, r
        assert unit_prop(machine, unit, "MemoryLimit") == str(32 << 20)
        assert unit_prop(machine, unit, "TasksMax") == "20"
        assert scope_file(machine, path, "memory.limit_in_bytes") == str(32 << 20)
        assert scope_file(machine, path, "pids.max") == "20"
        # systemd applies the unit's settings again on daemon-reload: the device list
        # and the limits it writes are the container's, not systemd's defaults
        assert machine.run(["systemctl", "daemon-reload"]).returncode == 0
        assert scope_file(machine, path, "devices.list").splitlines() == devices
        assert scope_file(machine, path, "memory.limit_in_bytes") == str(32 << 20)
        assert scope_file(machine, path, "pids.max") == "20"
    finally:
        c.rt("delete", "-f", "res")
    assert machine.unit_state(unit) is None
    assert cgroup_dirs(machine, path) == []


def test_annotation_properties(machine):
    c = Ctx(machine, "annot")
    unit = "ocirun-annot.scope"
    b = c.bundle(["sleep", "1000"], "system.slice:ocirun:annot",
                 annotations={"org.systemd.property.TimeoutStopSec": "uint64 7",
                              "org.systemd.property.CollectMode": "'inactive-or-failed'"})
    r = c.rt("run", "-d", "-b", b, "annot")
    assert r.returncode == 0, r
    try:
        assert unit_prop(machine, unit, "TimeoutStopUSec") == "7s"
        assert unit_prop(machine, unit, "CollectMode") == "inactive-or-failed"
    finally:
        c.rt("delete", "-f", "annot")
    assert machine.unit_state(unit) is None


# -- the verbs on a scope -----------------------------------------------------------------

def test_pause_resume_ps_events_kill_all(machine):
    c = Ctx(machine, "verbs")
    unit = "ocirun-verbs.scope"
    path = "/system.slice/" + unit
    b = c.bundle(["sh", "-c", "sleep 1000 & sleep 1000 & wait"], "system.slice:ocirun:verbs")
    r = c.rt("run", "-d", "-b", b, "verbs")
    assert r.returncode == 0, r
    try:
        pids = []
        for _ in range(50):
            r = c.rt("ps", "--format", "json", "verbs")
            pids = json.loads(r.stdout)
            if len(pids) == 3:
                break
            time.sleep(0.05)
        assert len(pids) == 3, r
        assert sorted(pids) == sorted(int(p) for p in scope_file(machine, path, "cgroup.procs").split())
        assert c.rt("pause", "verbs").returncode == 0
        assert c.state("verbs")["status"] == "paused"
        frozen = (scope_file(machine, path, "cgroup.freeze") if machine.mode == "unified"
                  else scope_file(machine, path, "freezer.state"))
        assert frozen in ("1", "FROZEN")
        assert c.rt("resume", "verbs").returncode == 0
        assert c.state("verbs")["status"] == "running"
        r = c.rt("events", "--stats", "verbs")
        assert r.returncode == 0, r
        ev = json.loads(r.stdout)
        assert ev["type"] == "stats" and ev["data"]["cpu"]["usage"]["total"] > 0
        assert c.rt("kill", "--all", "verbs", "KILL").returncode == 0
        for _ in range(100):
            if c.state("verbs")["status"] == "stopped":
                break
            time.sleep(0.05)
        assert c.state("verbs")["status"] == "stopped"
        assert (scope_file(machine, path, "cgroup.procs") or "") == ""
    finally:
        r = c.rt("delete", "-f", "verbs")
    assert r.returncode == 0, r
    assert machine.unit_state(unit) is None
    assert cgroup_dirs(machine, path) == []


# -- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("cgroups_path,what", [
    ("/not/systemd", "linux.cgroupsPath"),
    ("a:b", "linux.cgroupsPath"),
    ("system:pre:x", "linux.cgroupsPath"),
    ("system.slice:pre:x/y", "linux.cgroupsPath"),
])
def test_malformed_cgroups_path(machine, cgroups_path, what):
    c = Ctx(machine, "badpath")
    b = c.bundle(["true"], cgroups_path)
    r = c.rt("run", "-b", b, "bad")
    assert what in one_line_error(r)
    assert not os.path.exists(os.path.join(c.root, "bad"))


def test_unit_that_already_exists(machine):
    c = Ctx(machine, "dup")
    b1 = c.bundle(["sleep", "1000"], "system.slice:dup:same")
    b2 = c.bundle(["sleep", "1000"], "system.slice:dup:same")
    assert c.rt("run", "-d", "-b", b1, "first").returncode == 0
    try:
        r = c.rt("run", "-d", "-b", b2, "second")
        line = one_line_error(r)
        assert "dup-same.scope" in line and "already exists" in line, line
        assert not os.path.exists(os.path.join(c.root, "second"))
        # the first container and its unit are untouched
        assert c.state("first")["status"] == "running"
        assert machine.unit_state("dup-same.scope") == "active"
        # and so is its cgroup (the failed create removes nothing of the other unit's)
        assert str(c.state("first")["pid"]) in scope_file(
            machine, "/system.slice/dup-same.scope", "cgroup.procs").split()
    finally:
        c.rt("delete", "-f", "first")
    assert machine.unit_state("dup-same.scope") is None


def test_property_systemd_refuses(machine):
    c = Ctx(machine, "refused")
    b = c.bundle(["sleep", "1000"], "system.slice:ocirun:refused",
                 annotations={"org.systemd.property.NoSuchThing": "true"})
    r = c.rt("run", "-d", "-b", b, "refused")
    line = one_line_error(r)
    assert "ocirun-refused.scope" in line and "NoSuchThing" in line, line
    assert machine.unit_state("ocirun-refused.scope") is None
    assert cgroup_dirs(machine, "/system.slice/ocirun-refused.scope") == []
    assert not os.path.exists(os.path.join(c.root, "refused"))


def test_no_bus(machine):
    c = Ctx(machine, "nobus")
    b = c.bundle(["true"], "system.slice:ocirun:nobus")
    r = c.rt("run", "-b", b, "nobus", env={"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent"})
    line = one_line_error(r)
    assert "cannot connect to systemd" in line and "/nonexistent" in line, line
    assert not os.path.exists(os.path.join(c.root, "nobus"))
    assert machine.unit_state("ocirun-nobus.scope") is None


def test_private_socket_when_the_bus_is_gone(machine):
    """Without a system bus, root reaches systemd on its private socket (as runc does)."""
    c = Ctx(machine, "private")
    b = c.bundle(["cat", "/proc/self/cgroup"], "system.slice:ocirun:private")
    script = (f"mount -t tmpfs tmpfs /run/dbus && exec {OCIRUN} --root {c.root} "
              f"--systemd-cgroup run -b {b} private")
    r = machine.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script])
    assert r.returncode == 0, r
    assert "0::/system.slice/ocirun-private.scope" in r.stdout.splitlines(), r


def test_no_systemd_on_this_host(bundle):
    """The host itself runs no systemd: one line, nothing made."""
    need_root()
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("this host runs systemd")
    bundle.config["linux"]["cgroupsPath"] = "system.slice:ocirun:x"
    bundle.write()
    r = bundle.ocirun("--systemd-cgroup", "run", "-b", bundle.path, "nosd")
    line = one_line_error(r)
    assert "systemd is not running" in line, line
    assert not os.path.exists(os.path.join(bundle.root, "nosd"))


# -- sd_notify ----------------------------------------------------------------------------

NOTIFY_SCRIPT = ("sleep 0.3; /usr/bin/systemd-notify --status=starting; sleep 0.3; "
                 "/usr/bin/systemd-notify --ready --status=up; sleep 1000")


@pytest.mark.parametrize("how", ["run -d", "run", "create+start"])
def test_notify_service(machine, how):
    """A Type=notify service of the machine's systemd runs a container: it is active
    once the container said READY=1, with MAINPID the container's init (`run -d`,
    `start`) or the runtime that stays (`run`), and the container's STATUS= text."""
    c = Ctx(machine, "notify")
    cid = "nt" + how.replace(" ", "").replace("-", "").replace("+", "")
    unit = f"ocirun-{cid}-svc.service"
    b = c.bundle(["sh", "-c", NOTIFY_SCRIPT], f"system.slice:ocirun:{cid}", usr=True)
    rt = f"{OCIRUN} --root {c.root} --systemd-cgroup"
    cmd = {"run -d": [f"{rt} run -d -b {b} {cid}"],
           "run": [f"{rt} run -b {b} {cid}"],
           "create+start": [f"{rt} create -b {b} {cid}", f"{rt} start {cid}"]}[how]
    argv = ["systemd-run", f"--unit={unit}", "-p", "Type=notify", "-p", "TimeoutStartSec=30",
            "-p", "TimeoutStopSec=2",
            "-p", "KillMode=none" if how != "run" else "KillMode=control-group"]
    if len(cmd) == 2:
        # create must see NOTIFY_SOCKET too (it gives the container the socket), and
        # systemd passes it to ExecStartPre= only with NotifyAccess=all
        argv += ["-p", "NotifyAccess=all", "-p", f"ExecStartPre=/bin/sh -c '{cmd[0]}'"]
    argv += ["--", "/bin/sh", "-c", f"exec {cmd[-1]}"]
    t0 = time.monotonic()
    r = machine.run(argv, timeout=60)
    waited = time.monotonic() - t0
    try:
        assert r.returncode == 0, r
        # systemd-run returns when the service is started, i.e. after READY=1
        assert waited >= 0.5, waited
        assert unit_prop(machine, unit, "ActiveState") == "active"
        assert unit_prop(machine, unit, "StatusText") == "up"
        st = c.state(cid)
        main = int(unit_prop(machine, unit, "MainPID"))
        if how == "run":
            comm = machine.run(["cat", f"/proc/{main}/cmdline"]).stdout
            assert "ocirun" in comm and st["pid"] != main, (comm, st)
        else:
            assert main == st["pid"], (main, st)
    finally:
        machine.run(["systemctl", "stop", unit])
        machine.run(["systemctl", "reset-failed", unit])
        c.rt("delete", "-f", cid)
    assert machine.unit_state(f"ocirun-{cid}.scope") is None


def test_notify_reaches_a_host_socket(bundle, tmp_path):
    """Outside any systemd: READY=1 from the container arrives at $NOTIFY_SOCKET with
    MAINPID=<init>, after the container's earlier messages; a MAINPID= of the
    container's own is not passed on."""
    import socket
    need_root()
    sock_path = str(tmp_path / "host.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(sock_path)
    s.settimeout(20)
    for link in ("lib", "lib64"):
        os.symlink(f"usr/{link}", os.path.join(bundle.rootfs, link))
    os.makedirs(os.path.join(bundle.rootfs, "usr"), exist_ok=True)
    bundle.config["mounts"].append({"destination": "/usr", "type": "bind", "source": "/usr",
                                    "options": ["rbind", "ro"]})
    bundle.config["process"]["args"] = [
        "sh", "-c", "test -S $NOTIFY_SOCKET && /usr/bin/systemd-notify --status=one MAINPID=1 && "
                    "/usr/bin/systemd-notify --ready && sleep 1000"]
    bundle.write()
    env = dict(os.environ, NOTIFY_SOCKET=sock_path)
    with open(tmp_path / "out", "w") as out:
        p = subprocess.Popen([OCIRUN, "--root", bundle.root, "run", "-d", "-b", bundle.path,
                              "hn"], env=env, stdout=out, stderr=out)
    try:
        got = []
        while not any(b"READY=1" in g for g in got):
            got.append(s.recv(4096))
        # run -d returns once READY=1 is passed on (and our BARRIER=1 answered: reading
        # it without taking its fd closes the fd, as systemd does once it has read all)
        got.append(s.recv(4096))
        assert p.wait(timeout=5) == 0, (tmp_path / "out").read_text()
        st = json.loads(bundle.ocirun("state", "hn").stdout)
        assert st["status"] == "running", (st, (tmp_path / "out").read_text())
        assert got == [b"STATUS=one\n", f"MAINPID={st['pid']}\nREADY=1\n".encode(),
                       b"BARRIER=1"], got
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        bundle.ocirun("delete", "-f", "hn")
        s.close()


# -- runc, side by side -------------------------------------------------------------------

def _scenarios(c, m):
    """The same steps for a runtime (c.runtime); each gives a short result."""
    out = []
    sfx = "runc" if c.runtime == RUNC else "oci"
    unit = f"sbs-{sfx}.scope"
    path = "/system.slice/" + unit

    def step(name, fn):
        try:
            out.append((name, " ".join(str(fn()).split())))
        except Exception as e:  # noqa: BLE001 (recorded, not raised: this is a record)
            out.append((name, f"ERROR {type(e).__name__}: {str(e)[:80]}"))

    def run_scope():
        b = c.bundle(["cat", "/proc/self/cgroup"], f"system.slice:sbsrun:{sfx}")
        r = c.rt("run", "-b", b, f"run-{sfx}")
        line = [ln for ln in r.stdout.splitlines() if ln.startswith("0::")]
        return f"rc={r.returncode} {line[0] if line else r.stderr.strip()[-60:]}"

    res = RESOURCES if m.mode == "hybrid" else None
    b = c.bundle(["sh", "-c", "sleep 1000 & sleep 1000 & wait"], f"system.slice:sbs:{sfx}",
                 resources=res)

    def create():
        r = c.rt("create", "-b", b, f"c-{sfx}")
        return f"rc={r.returncode} unit={m.unit_state(unit)} {r.stderr.strip()[-60:]}"

    def start():
        r = c.rt("start", f"c-{sfx}")
        time.sleep(0.3)
        return f"rc={r.returncode} status={(c.state(f'c-{sfx}') or {}).get('status')}"

    def files():
        if m.mode != "hybrid":
            return "no controllers in this layout"
        return (f"memory={scope_file(m, path, 'memory.limit_in_bytes')} "
                f"pids={scope_file(m, path, 'pids.max')} "
                f"quota={scope_file(m, path, 'cpu.cfs_quota_us')} "
                f"cpus={scope_file(m, path, 'cpuset.cpus')}")

    def update():
        if m.mode != "hybrid":
            return "no controllers in this layout"
        r = c.rt("update", "--pids-limit", "30", f"c-{sfx}")
        return (f"rc={r.returncode} pids={scope_file(m, path, 'pids.max')} "
                f"TasksMax={unit_prop(m, unit, 'TasksMax')}")

    def pause():
        r1 = c.rt("pause", f"c-{sfx}")
        s1 = (c.state(f"c-{sfx}") or {}).get("status")
        r2 = c.rt("resume", f"c-{sfx}")
        s2 = (c.state(f"c-{sfx}") or {}).get("status")
        return f"rc={r1.returncode}/{r2.returncode} {s1}->{s2}"

    def ps():
        r = c.rt("ps", "--format", "json", f"c-{sfx}")
        if r.returncode:
            return f"rc={r.returncode} {r.stderr.strip()[-60:]}"
        pids = json.loads(r.stdout)  # runc prints null for a cgroup it finds empty
        return f"rc=0 pids={len(pids) if isinstance(pids, list) else r.stdout.strip()}"

    def events():
        r = c.rt("events", "--stats", f"c-{sfx}")
        if r.returncode:
            return f"rc={r.returncode} {r.stderr.strip()[-60:]}"
        data = json.loads(r.stdout.splitlines()[0])["data"]
        return f"rc=0 cpu.total>0={data['cpu']['usage']['total'] > 0}"

    def kill_all():
        r = c.rt("kill", "--all", f"c-{sfx}", "KILL")
        time.sleep(0.3)
        left = scope_file(m, path, "cgroup.procs")
        # (an empty scope is stopped by systemd at once: no cgroup.procs at all)
        return f"rc={r.returncode} left={left or 'none'} unit={m.unit_state(unit)}"

    def delete():
        r = c.rt("delete", "-f", f"c-{sfx}")
        return f"rc={r.returncode} unit={m.unit_state(unit)} dirs={len(cgroup_dirs(m, path))}"

    def bad_path():
        bb = c.bundle(["true"], "not-a-slice")
        r = c.rt("run", "-b", bb, f"bad-{sfx}")
        return f"rc={r.returncode} {r.stderr.strip().splitlines()[-1][-90:] if r.stderr.strip() else ''}"

    def dup():
        b1 = c.bundle(["sleep", "100"], f"system.slice:sbsdup:{sfx}")
        b2 = c.bundle(["sleep", "100"], f"system.slice:sbsdup:{sfx}")
        c.rt("run", "-d", "-b", b1, f"d1-{sfx}")
        r = c.rt("run", "-d", "-b", b2, f"d2-{sfx}")
        out = f"rc={r.returncode} {r.stderr.strip().splitlines()[-1][-90:] if r.stderr.strip() else ''}"
        c.rt("delete", "-f", f"d2-{sfx}")
        c.rt("delete", "-f", f"d1-{sfx}")
        return out

    for name, fn in (("run: the container's cgroup", run_scope), ("create: unit", create),
                     ("start", start), ("resources in the files", files),
                     ("update --pids-limit 30", update), ("pause/resume", pause),
                     ("ps --format json", ps), ("events --stats", events),
                     ("kill --all KILL", kill_all), ("delete: unit, dirs", delete),
                     ("cgroupsPath not slice:prefix:name", bad_path),
                     ("a unit that exists", dup)):
        step(name, fn)
    return out


def test_side_by_side_with_runc(machine, capsys):
    if not os.path.exists(RUNC):
        pytest.skip("runc is not installed")
    ours = _scenarios(Ctx(machine, "sbs-ocirun"), machine)
    theirs = _scenarios(Ctx(machine, "sbs-runc", runtime=RUNC), machine)
    width = max(len(n) for n, _ in ours)
    lines = [f"systemd cgroup driver, {machine.mode} layout: ocirun | runc 1.1.5 --systemd-cgroup"]
    for (name, a), (_, b) in zip(ours, theirs):
        lines.append(f"  {name:<{width}}  ocirun: {a}")
        lines.append(f"  {'':<{width}}  runc:   {b}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    got = dict(ours)
    assert got["run: the container's cgroup"].startswith("rc=0 0::/system.slice/sbsrun-oci.scope"), got
    assert got["create: unit"].startswith("rc=0 unit=active"), got
    assert got["start"] == "rc=0 status=running", got
    assert got["pause/resume"] == "rc=0/0 paused->running", got
    assert got["ps --format json"] == "rc=0 pids=3", got
    assert got["events --stats"] == "rc=0 cpu.total>0=True", got
    assert got["kill --all KILL"].startswith("rc=0 left=none"), got
    assert got["delete: unit, dirs"] == "rc=0 unit=None dirs=0", got
    assert got["cgroupsPath not slice:prefix:name"].startswith("rc=1"), got
    assert got["a unit that exists"].startswith("rc=1") and "already exists" in got["a unit that exists"]
    if machine.mode == "hybrid":
        assert got["resources in the files"] == "memory=67108864 pids=40 quota=25000 cpus=0", got
        assert got["update --pids-limit 30"] == "rc=0 pids=30 TasksMax=30", got


# -- engines ------------------------------------------------------------------------------

PODMAN_CONF = """\
[containers]
netns = "none"
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
# the machine's /proc/sys is read-only
default_sysctls = []
log_driver = "k8s-file"
{pids}

[network]
network_config_dir = "{d}/networks"

[engine]
cgroup_manager = "systemd"
events_logger = "file"
events_logfile_path = "{d}/events.log"
tmp_dir = "{d}/tmp"
runtime_supports_json = ["ocirun", "crun", "runc", "kata"]

[engine.runtimes]
ocirun = ["{ocirun}"]
"""


@pytest.fixture(scope="module")
def podman(machine):
    if not shutil.which("podman"):
        pytest.skip("podman is not installed")
    d = os.path.join(machine.base, "podman")
    os.makedirs(os.path.join(d, "tmp"))
    with open(os.path.join(d, "containers.conf"), "w") as f:
        # no controller in the cgroup2-only layout: podman's default pids limit (2048)
        # could not be set, with runc as with ocirun (test_engine_defaults_without_controllers)
        f.write(PODMAN_CONF.format(d=d, ocirun=OCIRUN, pids="pids_limit = 0" if
                                   machine.mode == "unified" else ""))
    with open(os.path.join(d, "storage.conf"), "w") as f:
        f.write(f'[storage]\ndriver = "vfs"\ngraphroot = "{d}/root"\nrunroot = "{d}/runroot"\n')
    env = {"CONTAINERS_CONF": f"{d}/containers.conf", "TMPDIR": f"{d}/tmp",
           "CONTAINERS_STORAGE_CONF": f"{d}/storage.conf"}
    tar = os.path.join(d, "image.tar")
    tmpl = _image_rootfs(machine)
    subprocess.run(["tar", "-C", tmpl, "-cf", tar, "."], check=True)

    def pm(*args, runtime="ocirun", timeout=120):
        pre = ["podman"] + (["--runtime", runtime] if runtime else [])
        return machine.run(pre + list(args), env=env, timeout=timeout)

    r = pm("import", "-q", tar, "localhost/bb:latest", runtime=None)
    assert r.returncode == 0, r
    yield pm


def _image_rootfs(m):
    tmpl = os.path.join(m.base, "image-rootfs")
    if not os.path.isdir(tmpl):
        make_rootfs(tmpl)
        for link in ("lib", "lib64"):
            os.symlink(f"usr/{link}", os.path.join(tmpl, link))
        os.makedirs(os.path.join(tmpl, "usr"))
    return tmpl


def test_podman_systemd_cgroup_manager(machine, podman, capsys):
    out = {}
    for runtime in ("ocirun", RUNC):
        r = podman("run", "--rm", "--cgroupns=host", "--security-opt", "seccomp=unconfined",
                   "localhost/bb", "cat", "/proc/self/cgroup", runtime=runtime)
        line = [ln for ln in r.stdout.splitlines() if ln.startswith("0::")]
        out[runtime] = (r.returncode, line[0] if line else r.stderr.strip()[-300:])
    with capsys.disabled():
        print(f"\npodman --cgroup-manager=systemd ({machine.mode}): ocirun {out['ocirun']}, "
              f"runc {out[RUNC]}")
    rc, line = out["ocirun"]
    assert rc == 0, line
    assert line.startswith("0::/machine.slice/libpod-") and line.endswith(".scope"), line
    # a detached container: exec, stop, rm; its scope goes with it
    r = podman("run", "-d", "--name", "pmd", "--cgroupns=host", "--security-opt",
               "seccomp=unconfined", "localhost/bb", "sleep", "1000")
    assert r.returncode == 0, r
    cid = r.stdout.strip()
    try:
        assert machine.unit_state(f"libpod-{cid}.scope") == "active"
        r = podman("exec", "pmd", "cat", "/proc/self/cgroup")
        assert f"0::/machine.slice/libpod-{cid}.scope" in r.stdout.splitlines(), r
        assert podman("stop", "-t", "0", "pmd").returncode == 0
    finally:
        podman("rm", "-f", "pmd", runtime=None)
    assert machine.unit_state(f"libpod-{cid}.scope") is None


def test_podman_sdnotify_container(machine, podman):
    """podman run --sdnotify=container in a Type=notify service: podman gives the
    container its own socket (it does not pass NOTIFY_SOCKET to the runtime) and tells
    systemd MAINPID=conmon; the unit is active once the container said READY=1."""
    unit = "ocirun-podman-notify.service"
    d = os.path.join(machine.base, "podman")
    env = " ".join(f"{k}={v}" for k, v in (("CONTAINERS_CONF", f"{d}/containers.conf"),
                                          ("CONTAINERS_STORAGE_CONF", f"{d}/storage.conf"),
                                          ("TMPDIR", f"{d}/tmp")))
    cmd = (f"exec env {env} podman --runtime ocirun run -d --name pmn --sdnotify=container "
           "--security-opt seccomp=unconfined -v /usr:/usr:ro localhost/bb sh -c "
           "'sleep 0.5; /usr/bin/systemd-notify --ready --status=up; sleep 1000'")
    t0 = time.monotonic()
    r = machine.run(["systemd-run", f"--unit={unit}", "-p", "Type=notify", "-p",
                     "NotifyAccess=all", "-p", "TimeoutStartSec=60", "-p", "KillMode=none",
                     "-p", "TimeoutStopSec=2",
                     "--", "/bin/sh", "-c", cmd], timeout=90)
    try:
        assert r.returncode == 0, r
        assert time.monotonic() - t0 >= 0.5
        assert unit_prop(machine, unit, "ActiveState") == "active"
        main = unit_prop(machine, unit, "MainPID")
        assert machine.run(["cat", f"/proc/{main}/comm"]).stdout.strip() == "conmon"
    finally:
        machine.run(["systemctl", "stop", unit])
        machine.run(["systemctl", "reset-failed", unit])
        podman("rm", "-f", "pmn", runtime=None)


CONTAINERD_CONFIG = """\
version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
"""


def test_containerd_systemd_cgroup(machine, capsys):
    """containerd 1.6 and its runc v2 shim with SystemdCgroup (ctr's
    --runc-systemd-cgroup sets that option), cgroupsPath slice:prefix:name."""
    if not shutil.which("containerd") or not shutil.which("ctr"):
        pytest.skip("containerd is not installed")
    from engine_support import make_oci_archive
    d = os.path.join(machine.base, "containerd")
    os.makedirs(os.path.join(d, "tmp"))
    with open(os.path.join(d, "config.toml"), "w") as f:
        f.write(CONTAINERD_CONFIG.format(d=d))
    archive = make_oci_archive(_image_rootfs(machine), os.path.join(d, "image.tar"))
    sock = os.path.join(d, "containerd.sock")
    pid = machine.spawn(["containerd", "--config", f"{d}/config.toml"],
                        env={"TMPDIR": f"{d}/tmp"}, log=os.path.join(d, "containerd.log"))
    ctr = ["ctr", "-a", sock, "-n", "sd"]
    try:
        for _ in range(200):
            if machine.run(ctr + ["version"], timeout=10).returncode == 0:
                break
            time.sleep(0.05)
        r = machine.run(ctr + ["images", "import", archive])
        assert r.returncode == 0, r
        out = {}
        for name, runtime in (("ocirun", OCIRUN), ("runc", RUNC)):
            cid = f"ctd-{name}"
            # (ctr's default --cpu-shares 1024 needs a cpu controller, which the
            # cgroup2-only layout has not: test_engine_defaults_without_controllers)
            shares = ["--cpu-shares", "0"] if machine.mode == "unified" else []
            r = machine.run(ctr + ["run", "--rm", "--runc-binary", runtime, *shares,
                                   "--runc-systemd-cgroup", "--cgroup",
                                   f"system.slice:ctr:{cid}", "localhost/bb:latest", cid,
                                   "cat", "/proc/self/cgroup"], timeout=120)
            line = [ln for ln in r.stdout.splitlines() if ln.startswith("0::")]
            out[name] = (r.returncode, line[0] if line else r.stderr.strip()[-300:])
            assert machine.unit_state(f"ctr-{cid}.scope") is None
        with capsys.disabled():
            print(f"\ncontainerd SystemdCgroup ({machine.mode}): ocirun {out['ocirun']}, "
                  f"runc {out['runc']}")
        assert out["ocirun"] == (0, "0::/system.slice/ctr-ctd-ocirun.scope"), out
    finally:
        machine.kill(pid)


def test_engine_defaults_without_controllers(machine, podman, capsys):
    """Why the cgroup2-only layout gets the engines' default limits turned off above:
    with podman's default pids limit, runc refuses the container as ocirun does (no
    controller is enabled in that layout on this host: its v1 hierarchies hold them
    all). Recorded for both; on the hybrid layout both run."""
    out = {}
    for runtime in ("ocirun", RUNC):
        r = podman("run", "--rm", "--pids-limit", "2048", "--security-opt",
                   "seccomp=unconfined", "localhost/bb", "true", runtime=runtime)
        out[runtime] = (r.returncode, " ".join(r.stderr.split()))
    with capsys.disabled():
        print(f"\npodman --pids-limit 2048 ({machine.mode}): ocirun {out['ocirun']}, runc {out[RUNC]}")
    if machine.mode == "unified":
        assert out["ocirun"][0] != 0 and "pids controller is not enabled" in out["ocirun"][1]
        assert out[RUNC][0] != 0
    else:
        assert out["ocirun"][0] == 0 and out[RUNC][0] == 0, out
