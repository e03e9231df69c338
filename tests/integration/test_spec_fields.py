"""Spec fields that change the process or the container beyond namespaces and mounts
(issue 20): each is applied and read back from the kernel inside a real container, and
each refusal is one line naming the field, with nothing left behind."""
import json
import os
import re
import subprocess
import uuid

import pytest

from support import SHARED


def _stat_fields(text):
    """/proc/PID/stat, split after the command (which may hold spaces): field n of
    proc(5) is at index n - 3."""
    return text[text.rindex(")") + 2:].split()


def _refused(bundle, field):
    """create refuses with one line naming `field`, and leaves no state."""
    cid, r = bundle.create()
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not os.path.exists(f"{bundle.root}/{cid}")
    return lines[0]


# --- process.scheduler -----------------------------------------------------------------

def test_scheduler_batch_and_nice(bundle):
    bundle.config["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}
    r = bundle.run(["cat", "/proc/self/stat"])
    assert r.returncode == 0, r.stderr
    f = _stat_fields(r.stdout)
    assert f[41 - 3] == "3" and f[19 - 3] == "7"  # policy SCHED_BATCH, nice 7


def _realtime_budget(bundle):
    """A real-time policy needs real-time runtime in the process's cgroup (v1
    cpu.rt_runtime_us; a new cgroup has none): a cgroup of the test's own right under the
    cpu hierarchy's root, given some."""
    if not os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us"):
        pytest.skip("no cgroup v1 cpu controller with real-time group scheduling here")
    bundle.config["linux"]["cgroupsPath"] = "/ocirun-test-" + uuid.uuid4().hex[:8]
    bundle.config["linux"]["resources"] = {"cpu": {"realtimeRuntime": 10000,
                                                   "realtimePeriod": 1000000}}


def test_scheduler_fifo_priority(bundle):
    _realtime_budget(bundle)
    bundle.config["process"]["scheduler"] = {"policy": "SCHED_FIFO", "priority": 12}
    r = bundle.run(["cat", "/proc/self/stat"])
    assert r.returncode == 0, r.stderr
    f = _stat_fields(r.stdout)
    assert f[41 - 3] == "1" and f[40 - 3] == "12"  # SCHED_FIFO, rt_priority 12


def test_scheduler_reset_on_fork_is_a_flag(bundle):
    """SCHED_FLAG_RESET_ON_FORK: the process keeps SCHED_RR, its children do not."""
    _realtime_budget(bundle)
    bundle.config["process"]["scheduler"] = {"policy": "SCHED_RR", "priority": 3,
                                             "flags": ["SCHED_FLAG_RESET_ON_FORK"]}
    # (the shell forks the first cat and execs the last one: that one is the process)
    r = bundle.run(["sh", "-c", "cat /proc/self/stat; cat /proc/$$/stat"])
    assert r.returncode == 0, r.stderr
    child, own = r.stdout.splitlines()
    assert _stat_fields(own)[41 - 3] == "2"
    assert _stat_fields(child)[41 - 3] == "0"


def test_scheduler_refused_by_the_kernel_is_named(bundle):
    """SCHED_FIFO in a cgroup without real-time runtime: the kernel says EPERM, and the
    line names the field."""
    if not os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us"):
        pytest.skip("no cgroup v1 cpu controller with real-time group scheduling here")
    bundle.config["process"]["scheduler"] = {"policy": "SCHED_FIFO", "priority": 12}
    _refused(bundle, "process.scheduler")


@pytest.mark.parametrize("sched,field", [
    ({"policy": "SCHED_NOPE"}, "process.scheduler.policy"),
    ({"policy": "SCHED_FIFO", "priority": 100}, "process.scheduler.priority"),
    ({"policy": "SCHED_OTHER", "nice": 20}, "process.scheduler.nice"),
    ({"policy": "SCHED_DEADLINE", "runtime": 10}, "process.scheduler"),
    ({"policy": "SCHED_DEADLINE", "runtime": 20, "deadline": 10, "period": 30},
     "process.scheduler"),
    ({"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_NOPE"]}, "process.scheduler.flags[0]"),
])
def test_scheduler_bad_input(bundle, sched, field):
    bundle.config["process"]["scheduler"] = sched
    _refused(bundle, field)


# --- process.ioPriority ----------------------------------------------------------------

def test_io_priority(bundle):
    bundle.config["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 6}
    r = bundle.run(["ionice", "-p", "1"])  # ioprio_get(IOPRIO_WHO_PROCESS, 1)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["best-effort:", "prio", "6"]


def test_io_priority_idle(bundle):
    bundle.config["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE", "priority": 0}
    r = bundle.run(["ionice", "-p", "1"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "idle"


@pytest.mark.parametrize("io,field", [
    ({"class": "IOPRIO_CLASS_NOPE", "priority": 0}, "process.ioPriority.class"),
    ({"class": "IOPRIO_CLASS_BE", "priority": 8}, "process.ioPriority.priority"),
])
def test_io_priority_bad_input(bundle, io, field):
    bundle.config["process"]["ioPriority"] = io
    _refused(bundle, field)


# --- process.execCPUAffinity ------------------------------------------------------------

def _cpus():
    return sorted(os.sched_getaffinity(0))


def _hook_affinity(bundle, out):
    """A createContainer hook (the init's child, before execve) records its
    Cpus_allowed_list: the affinity the runtime's set-up ran with."""
    bundle.config.setdefault("hooks", {})["createContainer"] = [{
        "path": "/bin/sh",
        "args": ["sh", "-c", f"grep Cpus_allowed_list /proc/self/status > {out}"]}]


def test_exec_cpu_affinity_initial_and_final(bundle, tmp_path):
    cpus = _cpus()
    if len(cpus) < 2:
        pytest.skip("needs two CPUs to tell initial from final")
    out = tmp_path / "initial"
    _hook_affinity(bundle, out)
    bundle.config["process"]["execCPUAffinity"] = {"initial": str(cpus[0]),
                                                   "final": str(cpus[1])}
    r = bundle.run(["grep", "Cpus_allowed_list", "/proc/self/status"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[1] == str(cpus[1])
    assert out.read_text().split()[1] == str(cpus[0])


def test_exec_cpu_affinity_initial_only_is_kept_after_execve(bundle):
    cpus = _cpus()
    bundle.config["process"]["execCPUAffinity"] = {"initial": str(cpus[-1])}
    r = bundle.run(["grep", "Cpus_allowed_list", "/proc/self/status"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[1] == str(cpus[-1])


def test_exec_cpu_affinity_for_exec(bundle, tmp_path):
    cpus = _cpus()
    cid = bundle.detach(["sleep", "30"])
    proc = dict(bundle.config["process"], args=["grep", "Cpus_allowed_list", "/proc/self/status"],
                execCPUAffinity={"final": str(cpus[0])})
    (tmp_path / "p.json").write_text(json.dumps(proc))
    r = bundle.ocirun("exec", "--process", str(tmp_path / "p.json"), cid)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[1] == str(cpus[0])
    bundle.ocirun("delete", "-f", cid)


@pytest.mark.parametrize("aff,field", [
    ({"initial": "0-"}, "process.execCPUAffinity.initial"),
    ({"final": "x"}, "process.execCPUAffinity.final"),
    ({"final": "4095"}, "process.execCPUAffinity.final"),  # a CPU the host lacks
])
def test_exec_cpu_affinity_bad_input(bundle, aff, field):
    bundle.config["process"]["execCPUAffinity"] = aff
    _refused(bundle, field)


# --- linux.personality -------------------------------------------------------------------

def test_personality_linux32(bundle):
    bundle.config["linux"]["personality"] = {"domain": "LINUX32"}
    r = bundle.run(["sh", "-c", "cat /proc/self/personality; uname -m"])
    assert r.returncode == 0, r.stderr
    pers, machine = r.stdout.split()
    assert int(pers, 16) == 0x0008  # PER_LINUX32
    assert machine in ("i686", "armv8l", "armv7l", "ppc", "s390")


def test_personality_linux(bundle):
    bundle.config["linux"]["personality"] = {"domain": "LINUX"}
    r = bundle.run(["cat", "/proc/self/personality"])
    assert r.returncode == 0, r.stderr
    assert int(r.stdout, 16) == 0


@pytest.mark.parametrize("pers,field", [
    ({"domain": "LINUX64"}, "linux.personality.domain"),
    ({"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]}, "linux.personality.flags"),
])
def test_personality_bad_input(bundle, pers, field):
    bundle.config["linux"]["personality"] = pers
    _refused(bundle, field)


# --- linux.memoryPolicy -------------------------------------------------------------------

def _nodes():
    with open("/sys/devices/system/node/online") as f:
        return f.read().strip()


@pytest.mark.parametrize("mode,shown", [("MPOL_BIND", "bind:0"),
                                        ("MPOL_INTERLEAVE", "interleave:0"),
                                        ("MPOL_PREFERRED", "prefer:0")])
def test_memory_policy(bundle, mode, shown):
    if not os.path.exists("/proc/self/numa_maps"):
        pytest.skip("the kernel has no NUMA support (no numa_maps)")
    bundle.config["linux"]["memoryPolicy"] = {"mode": mode, "nodes": "0"}
    r = bundle.run(["cat", "/proc/self/numa_maps"])
    assert r.returncode == 0, r.stderr
    # the policy of the task shows on every mapping that has no policy of its own
    assert all(line.split()[1] == shown for line in r.stdout.splitlines()), r.stdout


def test_memory_policy_local(bundle):
    bundle.config["linux"]["memoryPolicy"] = {"mode": "MPOL_LOCAL"}
    r = bundle.run(["cat", "/proc/self/numa_maps"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].split()[1] == "local"


@pytest.mark.parametrize("mp,field", [
    ({"mode": "MPOL_NOPE", "nodes": "0"}, "linux.memoryPolicy.mode"),
    ({"mode": "MPOL_BIND"}, "linux.memoryPolicy.nodes"),
    ({"mode": "MPOL_BIND", "nodes": "1023"}, "linux.memoryPolicy.nodes"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_NOPE"]}, "linux.memoryPolicy.flags"),
    ({"mode": "MPOL_LOCAL", "nodes": "0"}, "linux.memoryPolicy.nodes"),
])
def test_memory_policy_bad_input(bundle, mp, field):
    bundle.config["linux"]["memoryPolicy"] = mp
    _refused(bundle, field)


# --- linux.netDevices -----------------------------------------------------------------------

@pytest.fixture
def veth():
    """A veth pair of the test's own on the host, one end with a permanent address."""
    a, b = "oa" + uuid.uuid4().hex[:8], "ob" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b], check=True)
    subprocess.run(["ip", "addr", "add", "10.213.7.2/24", "dev", a], check=True)
    yield a, b
    for n in (a, b):
        subprocess.run(["ip", "link", "del", n], capture_output=True)


def _host_has(name):
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def _with_netns(bundle):
    ns = bundle.config["linux"]["namespaces"]
    if not any(n["type"] == "network" for n in ns):
        ns.append({"type": "network"})


def test_net_device_moved_renamed_up_with_its_address(bundle, veth):
    a, _ = veth
    _with_netns(bundle)
    bundle.config["linux"]["netDevices"] = {a: {"name": "eth7"}}
    r = bundle.run(["ip", "addr", "show", "eth7"])
    assert r.returncode == 0, r.stderr
    assert "10.213.7.2/24" in r.stdout and ",UP" in r.stdout
    # a virtual device dies with the container's namespace (config-linux.md: the
    # runtime MUST NOT move it out; the kernel destroys virtual devices)
    assert not _host_has(a)


def test_net_device_keeps_its_name_without_one(bundle, veth):
    a, _ = veth
    _with_netns(bundle)
    bundle.config["linux"]["netDevices"] = {a: {}}
    cid = bundle.detach(["sleep", "30"])
    r = bundle.ocirun("exec", cid, "ip", "-o", "link", "show", a)
    assert r.returncode == 0, r.stderr
    assert not _host_has(a)
    bundle.ocirun("delete", "-f", cid)


def test_net_device_name_template(bundle, veth):
    """A name ending in %d: the kernel picks the first free one in the container."""
    a, _ = veth
    _with_netns(bundle)
    bundle.config["linux"]["netDevices"] = {a: {"name": "net%d"}}
    r = bundle.run(["ip", "-o", "addr", "show", "net0"])
    assert r.returncode == 0, r.stderr
    assert "10.213.7.2/24" in r.stdout


def test_net_device_that_does_not_exist(bundle):
    _with_netns(bundle)
    bundle.config["linux"]["netDevices"] = {"nosuchdev0": {}}
    _refused(bundle, "linux.netDevices.nosuchdev0")


def test_net_devices_need_a_new_network_namespace(bundle, veth):
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"]
                                            if n["type"] != "network"]
    bundle.config["linux"]["netDevices"] = {veth[0]: {}}
    _refused(bundle, "linux.netDevices")
    assert _host_has(veth[0])


def test_a_failed_move_returns_the_devices_moved_before(bundle, veth):
    """The second device cannot take the name `lo` in the container: the first, already
    moved, is back on the host with its name when create fails."""
    a, b = veth
    _with_netns(bundle)
    bundle.config["linux"]["netDevices"] = {a: {"name": "eth3"}, b: {"name": "lo"}}
    line = _refused(bundle, f"linux.netDevices.{b}")
    assert "has a device called `lo`" in line
    assert _host_has(a) and _host_has(b)


# --- idmapped mounts ---------------------------------------------------------------------

@pytest.fixture
def owned_dir(tmp_path):
    d = tmp_path / "vol"
    d.mkdir()
    (d / "f").write_text("x")
    os.chown(d / "f", 1000, 1000)
    os.chmod(d, 0o777)
    return d


def _mount(src, dest, options, **extra):
    return dict({"destination": dest, "type": "bind", "source": str(src), "options": options},
                **extra)


def test_idmapped_mount_with_its_own_mappings(bundle, owned_dir):
    """Without a user namespace: on-disk 1000 shows as 2000 through the mount, and a
    file made as root through it is root's on disk (0 is not mapped: EOVERFLOW)."""
    maps = [{"containerID": 1000, "hostID": 2000, "size": 10}]
    bundle.config["mounts"].append(_mount(owned_dir, "/vol", ["rbind"],
                                          uidMappings=maps, gidMappings=maps))
    r = bundle.run(["stat", "-c", "%u:%g", "/vol/f"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "2000:2000"
    assert os.stat(owned_dir / "f").st_uid == 1000  # on disk, unchanged


def test_idmap_takes_the_container_user_namespace(bundle, owned_dir):
    """`idmap` with no mappings of its own: the container's; root's file on disk is
    root's inside a user namespace (65534, the overflow id, without the idmap)."""
    bundle.use_user_namespace(100000)
    os.mkdir(os.path.join(bundle.rootfs, "vol"))  # (the rootfs is the host root's)
    os.chown(owned_dir / "f", 0, 0)
    bundle.config["mounts"].append(_mount(owned_dir, "/vol", ["rbind", "idmap"]))
    r = bundle.run(["sh", "-c", "stat -c %u:%g /vol/f; touch /vol/new; stat -c %u /vol/new"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0:0", "0"]
    assert os.stat(owned_dir / "new").st_uid == 0  # written as the mapped root: 0 on disk
    bundle.config["mounts"][-1]["options"] = ["rbind"]
    r = bundle.run(["stat", "-c", "%u:%g", "/vol/f"])
    assert r.stdout.strip() == "65534:65534"


def test_ridmap_maps_the_mounts_below_too(bundle, owned_dir, tmp_path):
    sub = owned_dir / "sub"
    sub.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    (other / "g").write_text("y")
    os.chown(other / "g", 1000, 1000)
    subprocess.run(["mount", "--bind", str(other), str(sub)], check=True)
    try:
        maps = [{"containerID": 1000, "hostID": 3000, "size": 1}]
        bundle.config["mounts"].append(_mount(owned_dir, "/vol", ["rbind", "ridmap"],
                                              uidMappings=maps, gidMappings=maps))
        r = bundle.run(["stat", "-c", "%u", "/vol/f", "/vol/sub/g"])
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["3000", "3000"]
    finally:
        subprocess.run(["umount", str(sub)])


@pytest.mark.parametrize("mount,field", [
    ({"options": ["rbind", "idmap"]}, "mounts[1].options"),  # no mappings anywhere
    ({"options": ["rbind", "idmap", "ridmap"]}, "mounts[1].options"),
    ({"options": ["rbind"], "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]},
     "mounts[1]"),
    ({"options": ["rbind", "idmap=uids=0-1-10"]}, "mounts[1].options[1]"),
])
def test_idmap_bad_input(bundle, owned_dir, mount, field):
    bundle.config["mounts"] = bundle.config["mounts"][:1]
    bundle.config["mounts"].append(dict(_mount(owned_dir, "/vol", []), **mount))
    _refused(bundle, field)


def test_idmap_on_a_tmpfs_is_refused(bundle):
    bundle.config["mounts"] = bundle.config["mounts"][:1]
    maps = [{"containerID": 0, "hostID": 1, "size": 1}]
    bundle.config["mounts"].append({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["idmap"], "uidMappings": maps,
                                    "gidMappings": maps})
    _refused(bundle, "mounts[1].options")


# --- linux.intelRdt ------------------------------------------------------------------------

def _resctrl_mounted():
    with open("/proc/self/mountinfo") as f:
        return any(line.split(" - ")[1].startswith("resctrl ") for line in f)


def test_intel_rdt_without_resctrl_is_refused(bundle):
    if _resctrl_mounted():
        pytest.skip("resctrl is mounted here: the refusal is for hosts without it")
    bundle.config["linux"]["intelRdt"] = {"closID": "guaranteed_group",
                                          "l3CacheSchema": "L3:0=7f0"}
    line = _refused(bundle, "linux.intelRdt")
    assert "resctrl" in line


@pytest.mark.parametrize("rdt,field", [
    ({"closID": "../x"}, "linux.intelRdt.closID"),
    ({"enableMonitoring": "yes"}, "linux.intelRdt.enableMonitoring"),
])
def test_intel_rdt_bad_input(bundle, rdt, field):
    bundle.config["linux"]["intelRdt"] = rdt
    _refused(bundle, field)


# --- mount extensions -------------------------------------------------------------------------

def test_tmpcopyup_copies_what_the_image_had(bundle):
    etc = os.path.join(bundle.rootfs, "etc")
    os.makedirs(f"{etc}/sub")
    with open(f"{etc}/sub/conf", "w") as f:
        f.write("kept\n")
    os.chown(f"{etc}/sub/conf", 7, 8)
    os.symlink("sub/conf", f"{etc}/link")
    bundle.config["mounts"].append({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["tmpcopyup", "mode=755"]})
    r = bundle.run(["sh", "-c", "cat /etc/link; stat -c %u:%g /etc/sub/conf; "
                                "stat -f -c %T /etc; grep -c root /etc/passwd"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["kept", "7:8", "tmpfs", "1"]


def test_tmpfs_without_tmpcopyup_is_empty(bundle):
    bundle.config["mounts"].append({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["mode=755"]})
    r = bundle.run(["ls", "-A", "/etc"])
    assert r.returncode == 0 and r.stdout == "", (r.stdout, r.stderr)


def test_copy_symlink_makes_the_symlink_in_the_rootfs(bundle, tmp_path):
    link = tmp_path / "localtime"
    os.symlink("/usr/share/zoneinfo/Europe/Paris", link)
    bundle.config["mounts"].append(_mount(link, "/etc/localtime", ["rbind", "copy-symlink"]))
    r = bundle.run(["readlink", "/etc/localtime"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "/usr/share/zoneinfo/Europe/Paris"
    assert os.readlink(os.path.join(bundle.rootfs, "etc/localtime")) == os.readlink(link)


def test_copy_symlink_over_a_different_file_is_refused(bundle, tmp_path):
    link = tmp_path / "localtime"
    os.symlink("/elsewhere", link)
    with open(os.path.join(bundle.rootfs, "etc/localtime"), "w") as f:
        f.write("not a link")
    bundle.config["mounts"].append(_mount(link, "/etc/localtime", ["rbind", "copy-symlink"]))
    _refused(bundle, "mounts[")


@pytest.mark.parametrize("opts,mtype,field", [
    (["tmpcopyup"], "bind", "mounts[1].options[0]"),
    (["rbind", "src-nofollow"], "bind", "mounts[1].options[1]"),
    (["rbind", "dest-nofollow"], "bind", "mounts[1].options[1]"),
    (["copy-symlink"], "tmpfs", "mounts[1].options[0]"),
])
def test_mount_extension_bad_input(bundle, tmp_path, opts, mtype, field):
    bundle.config["mounts"] = bundle.config["mounts"][:1]
    bundle.config["mounts"].append({"destination": "/x", "type": mtype,
                                    "source": str(tmp_path), "options": opts})
    _refused(bundle, field)


# --- SELinux and AppArmor where the host has neither ------------------------------------------

@pytest.mark.parametrize("where,field,label", [
    ("process", "selinuxLabel", "system_u:system_r:container_t:s0:c1,c2"),
    ("linux", "mountLabel", "system_u:object_r:container_file_t:s0:c1,c2"),
])
def test_labels_without_selinux_are_refused(bundle, where, field, label):
    """A label that cannot apply is refused, as runc refuses it: the container does not
    run unlabelled."""
    if os.path.exists("/sys/fs/selinux/enforce"):
        pytest.skip("SELinux is enabled here: the labels apply")
    bundle.config[where][field] = label
    line = _refused(bundle, f"{where}.{field}")
    assert "SELinux is not enabled" in line


# --- features: what it claims is what the runtime takes ---------------------------------------

def test_features_claims_are_taken(bundle, tmp_path):
    """Every mount option, memory policy mode and flag, and linux feature the features
    document claims is accepted by create (and the ones above read it back)."""
    d = json.loads(bundle.ocirun("features").stdout)
    linux = d["linux"]
    assert linux["mountExtensions"]["idmap"]["enabled"] and linux["netDevices"]["enabled"]
    assert linux["intelRdt"]["enabled"]
    for mode in linux["memoryPolicy"]["modes"]:
        mp = {"mode": mode}
        if mode not in ("MPOL_DEFAULT", "MPOL_LOCAL"):
            mp["nodes"] = "0"
        bundle.config["linux"]["memoryPolicy"] = mp
        r = bundle.run(["true"])
        assert r.returncode == 0 or "Invalid argument" in r.stderr, (mode, r.stderr)
        assert "linux.memoryPolicy" not in r.stderr or r.returncode != 0, (mode, r.stderr)
    bundle.config["linux"].pop("memoryPolicy")
    for flag in linux["memoryPolicy"]["flags"]:
        bundle.config["linux"]["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "0",
                                                  "flags": [flag]}
        r = bundle.run(["true"])
        # (a kernel may refuse a flag with this mode: the refusal names the field)
        assert r.returncode == 0 or "linux.memoryPolicy" in r.stderr, (flag, r.stderr)
    bundle.config["linux"].pop("memoryPolicy")
    src = tmp_path / "src"
    src.mkdir()
    for opt in d["mountOptions"]:
        if opt in ("idmap", "ridmap", "tmpcopyup", "notmpcopyup", "copy-symlink"):
            continue  # each has its own test above
        if opt == "remount":
            continue  # (a remount of a mount that does not exist yet: refused by runc too)
        bundle.config["mounts"] = bundle.config["mounts"][:1] + [
            _mount(src, "/x", ["rbind", opt])]
        r = bundle.run(["true"])
        assert r.returncode == 0, (opt, r.stderr)
