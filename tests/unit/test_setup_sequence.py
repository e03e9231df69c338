"""The container's set-up (linux/rootfs.py, linux/init.py) through the recording
kernel double (fake_kernel.py): the order of mounts, masks, read-only paths, devices
and privilege changes, and what a hostile image's symlinks make of them, without root
and in milliseconds. The same behaviours are tested on real containers in
tests/integration; these pin the order, which a real container shows only in part."""
import os
import posix
import stat
import types

import pytest

from fake_kernel import FakeKernel, Stop
from ocirun import kernel as K
from ocirun.config.plan import build
from ocirun.linux import init, procfs, rootfs
from ocirun.linux.init import Context
from ocirun.tables import parse_options

ROOTFS = "/bundle/rootfs"
LAST_CAP = 40


def world(rootfs_dirs=("proc", "sys", "dev", "etc", "tmp")):
    k = FakeKernel()
    k.add(f"{ROOTFS}/bin/sh", "file", mode=0o755)
    for d in rootfs_dirs:
        k.add(f"{ROOTFS}/{d}")
    return k


def mount(dest, typ, *options, source=None):
    return {"destination": dest, "type": typ, "source": source or typ, "options": list(options)}


DEFAULT_MOUNTS = [
    mount("/proc", "proc", "nosuid", "noexec", "nodev"),
    mount("/dev", "tmpfs", "nosuid", "mode=755"),
    mount("/sys", "sysfs", "nosuid", "ro"),
    mount("/dev/pts", "devpts", "newinstance", "ptmxmode=0666"),
    mount("/dev/mqueue", "mqueue", "nosuid"),
]


def tree_of(k):
    rootfd = k.open(ROOTFS, posix.O_PATH | posix.O_DIRECTORY)
    return rootfs.Tree(k, rootfd, procfs.open_root(k))


def mount_all(k, mounts):
    tree = tree_of(k)
    for i, m in enumerate(mounts):
        rootfs.mount_one(tree, i, m, parse_options(m.get("options")), False)
    tree.verify()
    return tree


def test_mounts_land_in_order_on_plain_directories():
    k = world()
    mount_all(k, DEFAULT_MOUNTS)
    assert k.mounted() == [(f"{ROOTFS}/proc", "proc", "proc"), (f"{ROOTFS}/dev", "tmpfs", "tmpfs"),
                           (f"{ROOTFS}/sys", "sysfs", "sysfs"),
                           (f"{ROOTFS}/dev/pts", "devpts", "devpts"),
                           (f"{ROOTFS}/dev/mqueue", "mqueue", "mqueue")]
    mounts = [c for c in k.calls if c[0] == "mount"]
    assert mounts[0][4] == K.MS_NOSUID | K.MS_NOEXEC | K.MS_NODEV
    assert mounts[2][4] == K.MS_NOSUID | K.MS_RDONLY
    # every destination was looked up with symlinks refused
    held = [c for c in k.calls if c[0] == "openat2" and c[3] & K.RESOLVE_NO_SYMLINKS]
    assert {c[2] for c in held} >= {"proc", "dev", "sys", "dev/pts", "dev/mqueue"}


@pytest.mark.parametrize("link", ["/elsewhere", "elsewhere", "../elsewhere"])
def test_a_symlinked_proc_is_refused_before_anything_is_mounted(link):
    k = world(("sys", "dev", "elsewhere"))
    k.add(f"{ROOTFS}/proc", "link", link)
    with pytest.raises(rootfs.MountError) as e:
        mount_all(k, DEFAULT_MOUNTS)
    assert str(e.value) == "mounts[0].destination: /proc is a symlink in the rootfs"
    assert k.mounted() == []


def test_a_symlinked_parent_is_named():
    k = world(("proc", "dev", "elsewhere"))
    k.add(f"{ROOTFS}/sys", "link", "/elsewhere")
    with pytest.raises(rootfs.MountError) as e:
        mount_all(k, [mount("/sys/fs/cgroup", "cgroup2")])
    assert str(e.value) == "mounts[0].destination: /sys is a symlink in the rootfs"


def test_a_volume_that_covers_dev_is_refused():
    k = world(("proc", "sys", "dev", "data"))
    k.add("/srv/vol")
    k.nodes[f"{ROOTFS}/data"] = type(k.nodes["/"])("link", "/dev")
    volume = mount("/data", "bind", "rbind", source="/srv/vol")
    with pytest.raises(rootfs.MountError) as e:
        mount_all(k, DEFAULT_MOUNTS[:2] + [volume])
    assert str(e.value) == "mounts[1].destination: `/dev` is covered by a later mount"


def test_masks_and_read_only_paths_go_beneath_the_held_mounts():
    k = world()
    tree = mount_all(k, DEFAULT_MOUNTS)
    rootfs.make_devices(tree, [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3}], False)
    before = len(k.calls)
    rootfs.mask_paths(tree, ["/proc/kcore", "/sys/firmware", "/proc/nonexistent"])
    rootfs.readonly_paths(tree, ["/proc/sys"])
    calls = k.calls[before:]
    proc_fd = tree.held[("proc",)].fd
    sys_fd = tree.held[("sys",)].fd
    lookups = [(c[1], c[2], c[3]) for c in calls if c[0] == "openat2"]
    below = K.RESOLVE_BENEATH | K.RESOLVE_NO_MAGICLINKS
    assert (k.path(proc_fd), "kcore", below) in lookups
    assert (k.path(sys_fd), "firmware", below) in lookups
    # the file mask is the container's own /dev/null, the directory mask a read-only tmpfs
    assert ("move_mount", f"{ROOTFS}/dev/null", f"{ROOTFS}/proc/kcore") in calls
    assert ("mount", "tmpfs", f"{ROOTFS}/sys/firmware", "tmpfs", K.MS_RDONLY, None) in calls
    # read-only paths after the masks: a read-only clone stacked on the path
    ro = [i for i, c in enumerate(calls) if c[0] == "mount_setattr" and c[2] == K.MOUNT_ATTR_RDONLY]
    masks = [i for i, c in enumerate(calls) if c[0] in ("move_mount", "mount")]
    assert ro and max(masks[:2]) < ro[0]


def test_a_mask_that_escapes_its_mount_is_an_error_not_a_skip():
    k = world()
    tree = mount_all(k, DEFAULT_MOUNTS)
    with pytest.raises(rootfs.MountError, match=r"linux.maskedPaths\[0\]"):
        rootfs.mask_paths(tree, ["/proc/self/root/etc"])  # a magic link below procfs


def test_devices_are_made_below_the_held_dev():
    k = world()
    tree = mount_all(k, DEFAULT_MOUNTS)
    rootfs.make_devices(tree, [
        {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666},
        {"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200, "uid": 5, "gid": 6}], False)
    rootfs.make_dev_symlinks(tree)
    mknods = [c[1:] for c in k.calls if c[0] == "mknod"]
    assert mknods == [(f"{ROOTFS}/dev/null", stat.S_IFCHR, 0o666, 1, 3),
                      (f"{ROOTFS}/dev/net/tun", stat.S_IFCHR, 0o666, 10, 200)]
    assert ("chown", f"{ROOTFS}/dev/net/tun", 5, 6) in k.calls
    links = {c[2]: c[1] for c in k.calls if c[0] == "symlink"}
    assert links[f"{ROOTFS}/dev/fd"] == "/proc/self/fd"
    assert links[f"{ROOTFS}/dev/ptmx"] == "pts/ptmx"


def spec(**process):
    proc = {"args": ["/bin/sh"], "cwd": "/", "user": {"uid": 1000, "gid": 1000,
            "additionalGids": [5]}, "capabilities": {"bounding": ["CAP_KILL"],
            "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}}
    proc.update(process)
    return {"ociVersion": "1.2.0", "root": {"path": ROOTFS}, "process": proc,
            "mounts": DEFAULT_MOUNTS,
            "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}],
                      "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"]}}


def plan_of(doc, monkeypatch):
    monkeypatch.setattr("ocirun.fs.realpath", lambda p: p)
    monkeypatch.setattr("ocirun.fs.isdir", lambda p: True)
    return build(doc, "/bundle", LAST_CAP)


class Chan:
    wfd = 99

    def __init__(self):
        self.sent = []

    def send(self, kind, payload=""):
        self.sent.append((kind, payload))


def finalize_calls(doc, monkeypatch, seccomp=True):
    k = FakeKernel()
    ctx = Context(k, Chan())
    if seccomp:
        import ocirun.seccomp  # noqa: F401  (the init takes it from sys.modules)
        ctx.seccomp = types.SimpleNamespace(notify=False, refuses_execveat=False, flags=0,
                                            prog=b"\x06\x00\x00\x00\x00\x00\xff\x7f")
    monkeypatch.setattr(init._signal, "pthread_sigmask", lambda how, mask: None)
    init._finalize(plan_of(doc, monkeypatch), ctx)
    return [c for c in k.calls if c[0] != "sigaction_default"]


def _names(calls):
    out = []
    for c in calls:
        if c[0] == "prctl":
            out.append({K.PR_CAP_AMBIENT: "ambient", K.PR_CAPBSET_DROP: "bset-drop",
                        K.PR_SET_KEEPCAPS: f"keepcaps={c[2]}",
                        K.PR_SET_NO_NEW_PRIVS: "no_new_privs"}[c[1]])
        else:
            out.append(c[0])
    # one entry for each run of bounding-set drops and stdio chowns
    out = [n for n in out if n != "isatty"]
    return [n for i, n in enumerate(out) if n not in ("bset-drop", "fchown") or out[i - 1] != n]


def test_privileges_drop_in_order_with_no_new_privileges(monkeypatch):
    calls = finalize_calls(spec(noNewPrivileges=True), monkeypatch)
    assert _names(calls) == ["umask", "close_range", "ambient", "bset-drop", "fchown",
                             "keepcaps=1", "setgroups", "setresgid", "setresuid", "keepcaps=0",
                             "capset", "no_new_privs", "seccomp"]
    # the pipes of root's that stdio is become the process user's
    assert [c[1:] for c in calls if c[0] == "fchown"] == [(0, 1000, 1000), (1, 1000, 1000),
                                                          (2, 1000, 1000)]
    assert ("close_range", 3, init.ALL_FDS, K.CLOSE_RANGE_CLOEXEC) in calls
    assert ("setresuid", 1000, 1000, 1000) in calls and ("setgroups", [5]) in calls
    dropped = {c[2] for c in calls if c[0] == "prctl" and c[1] == K.PR_CAPBSET_DROP}
    assert dropped == set(range(LAST_CAP + 1)) - {5}  # all but CAP_KILL


def test_without_no_new_privileges_the_filter_goes_on_while_root(monkeypatch):
    names = _names(finalize_calls(spec(noNewPrivileges=False), monkeypatch))
    assert names.index("seccomp") < names.index("setresuid")
    assert "no_new_privs" not in names


def test_preserved_fds_stay_open_across_execve(monkeypatch):
    """--preserve-fds 3 with fd 4 closed when the runtime started: 3 and 5 pass, and
    whatever of ours took number 4 since is close-on-exec and not made inheritable."""
    doc = spec()
    k = FakeKernel()
    ctx = Context(k, Chan())
    monkeypatch.setattr(init._signal, "pthread_sigmask", lambda how, mask: None)
    p = plan_of(doc, monkeypatch)
    p.preserve_fds, p.preserved = 3, (3, 5)
    init._finalize(p, ctx)
    assert [c[1] for c in k.calls if c[0] == "set_inheritable"] == [3, 5]
    assert ("close_range", 6, init.ALL_FDS, K.CLOSE_RANGE_CLOEXEC) in k.calls


def test_keep_original_groups_skips_setgroups(monkeypatch):
    doc = spec()
    doc["annotations"] = {"run.oci.keep_original_groups": "1"}
    names = _names(finalize_calls(doc, monkeypatch))
    assert "setgroups" not in names and "setresuid" in names
    doc["annotations"] = {"run.oci.keep_original_groups": "0"}
    assert "setgroups" in _names(finalize_calls(doc, monkeypatch))


def test_the_whole_rootfs_set_up_in_order(monkeypatch):
    k = world()
    ctx = Context(k, Chan())
    ctx.proc_fd = procfs.open_root(k)
    p = plan_of(spec(), monkeypatch)
    init._setup_rootfs(p, ctx)
    kinds = []
    for c in k.calls:
        if c[0] == "mount" and c[3] in ("proc", "tmpfs", "sysfs", "devpts", "mqueue"):
            kinds.append("fs" if c[2] != f"{ROOTFS}/proc/kcore" else "mask")
        elif c[0] == "mknod":
            kinds.append("device")
        elif c[0] == "move_mount" and c[1].endswith("/dev/null"):
            kinds.append("mask")
        elif c[0] == "mount_setattr" and c[2] == K.MOUNT_ATTR_RDONLY:
            kinds.append("readonly")
        elif c[0] == "pivot_root":
            kinds.append("pivot")
    squeezed = [x for i, x in enumerate(kinds) if i == 0 or kinds[i - 1] != x]
    assert squeezed == ["fs", "device", "mask", "readonly", "pivot"]
    # the mounts went through the runtime's procfs, and the cwd came back after
    assert k.cwd == "/"
    assert not [c for c in k.calls if c[0] == "mount" and str(c[2]).startswith("/proc/")]


def test_sysctls_and_oom_score_go_through_the_procfs_handle(monkeypatch):
    doc = spec(oomScoreAdj=5)
    doc["linux"]["namespaces"].append({"type": "network"})
    doc["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    k = world()
    ctx = Context(k, Chan())
    ctx.proc_fd = procfs.open_root(k)
    p = plan_of(doc, monkeypatch)
    monkeypatch.setattr(init, "_setup_rootfs", lambda plan, ctx: None)
    with pytest.raises(Stop):
        init._enter_namespaces(p, ctx)  # the pid namespace's fork ends the double's run
    init._build_container(p, ctx)
    assert ("/proc/self/oom_score_adj", b"5") in k.writes
    assert ("/proc/sys/net/ipv4/ip_forward", b"1") in k.writes
    lookups = [c for c in k.calls if c[0] == "openat2" and c[1] == "/proc"]
    assert all(c[3] == K.RESOLVE_BENEATH | K.RESOLVE_NO_XDEV | K.RESOLVE_NO_MAGICLINKS
               for c in lookups) and len(lookups) == 2
