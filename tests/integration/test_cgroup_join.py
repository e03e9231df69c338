"""How the init gets into its cgroup (cgroups/common.py Manager.fork).

Born in the cgroup v2 directory by clone3(CLONE_INTO_CGROUP), then moving itself into
every cgroup v1 hierarchy through `tasks`: no write of its pid to cgroup.procs by the
runtime, which waits for an RCU grace period. Whatever the path, the container's
process must be in its cgroup in every hierarchy, from its first instruction on."""
import errno
import os

import pytest

from ocirun import kernel
from ocirun.api import Runtime
from ocirun.cgroups import common, detect

from layout import cgroup2_root, leftovers, need_v1, unified
from test_cgroups_v2_private import in_pure_v2


def _cgroup_lines(text):
    """{hierarchy: path} of a /proc/PID/cgroup, without named (controller-less) v1
    hierarchies such as name=systemd, which no runtime joins; on a unified layout the
    cgroup2 line alone (where that layout is simulated on a hybrid host, the v1
    hierarchies still exist in the kernel, mounted nowhere the runtime can see)."""
    out = {}
    for line in text.splitlines():
        _, ctrls, path = line.split(":", 2)
        if not ctrls.startswith("name=") and (ctrls == "" or not unified()):
            out[ctrls] = path
    return out


def _run_cat_cgroup(bundle, tmp_path, cid):
    """Run `cat /proc/self/cgroup` in a container through the library (same code
    as the CLI, in this process, so tests can replace pieces of it)."""
    bundle.config["process"]["args"] = ["cat", "/proc/self/cgroup"]
    bundle.write()
    out = tmp_path / f"{cid}.out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    saved = os.dup(1)
    os.dup2(fd, 1)
    try:
        code = Runtime(root=bundle.root).run(cid, bundle.path)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(fd)
    assert code == 0
    return _cgroup_lines(out.read_text())


@pytest.fixture
def cgroup_host():
    """Any layout: the cgroup lines of the process are checked in every hierarchy
    there is (one on a unified layout)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: creates containers with cgroups")


@pytest.fixture(params=["clone_vm", "fork"])
def start_path(request, monkeypatch):
    """Both ways `run` starts an init: in the runtime's memory (kernel.clone_vm,
    where the extension has it) and by fork."""
    if request.param == "fork":
        monkeypatch.setattr(kernel, "clone_vm", None)
    elif kernel.clone_vm is None:
        pytest.skip("kernel.clone_vm needs the C extension on x86_64 with glibc")
    return request.param


def test_init_is_in_every_hierarchy_without_a_procs_write(bundle, tmp_path, cgroup_host, monkeypatch,
                                                          start_path):
    def no_add(self, pid, sub=None):
        raise AssertionError("the runtime wrote the init's pid to cgroup.procs")
    monkeypatch.setattr(common.Manager, "add", no_add)
    seen = _run_cat_cgroup(bundle, tmp_path, "join1")
    assert seen, "no cgroup lines"
    assert all(p == "/ocirun/join1" for p in seen.values()), seen


def test_without_clone3_the_runtime_adds_the_pid(bundle, tmp_path, cgroup_host, monkeypatch):
    def enosys(fd):
        raise OSError(errno.ENOSYS, "clone3 unavailable")
    monkeypatch.setattr(kernel, "fork_into_cgroup", enosys)
    if kernel.clone_vm is not None:
        real_clone_vm = kernel.clone_vm

        def clone_vm(fn, cgroup_fd, errfd):
            if cgroup_fd >= 0:
                raise OSError(errno.ENOSYS, "clone3 unavailable")
            return real_clone_vm(fn, cgroup_fd, errfd)
        monkeypatch.setattr(kernel, "clone_vm", clone_vm)
    added = []
    real_add = common.Manager.add

    def add(self, pid, sub=None):
        added.append(pid)
        return real_add(self, pid, sub)
    monkeypatch.setattr(common.Manager, "add", add)
    seen = _run_cat_cgroup(bundle, tmp_path, "join2")
    if cgroup2_root():
        assert added, "a cgroup2 hierarchy and no clone3: the runtime must add the pid"
    assert all(p == "/ocirun/join2" for p in seen.values()), seen


def test_a_cgroup_the_init_cannot_join_fails_create_and_leaves_nothing(bundle, tmp_path, cgroup_host,
                                                                        monkeypatch, start_path):
    """The init's own join fails (a v1 directory that is gone): create reports it in
    one line and leaves no state directory, cgroup or process."""
    need_v1("only v1 hierarchies are joined by the init itself; a v2 directory that "
            "cannot be opened makes the runtime add the pid instead")
    from ocirun.cgroups import v1
    real = v1.V1Manager.fork_targets

    def broken(self):
        v2, dirs = real(self)
        return v2, dirs + [dirs[0] + "/missing"] if dirs else dirs
    monkeypatch.setattr(v1.V1Manager, "fork_targets", broken)
    bundle.config["process"]["args"] = ["true"]
    bundle.write()
    from ocirun.errors import OciError
    with pytest.raises(OciError, match="join cgroup .*/missing"):
        Runtime(root=bundle.root).run("join3", bundle.path)
    assert not os.path.exists(os.path.join(bundle.root, "join3"))
    assert leftovers("/ocirun/join3") == []


def _pure_v2_run(repo_bundle_path, root, name):
    """In a pure v2 view: run a container in /<name>/c and report its cgroup line."""
    import json
    import subprocess
    from support import OCIRUN
    cfg_path = os.path.join(repo_bundle_path, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["process"]["args"] = ["cat", "/proc/self/cgroup"]
    cfg["linux"]["cgroupsPath"] = f"/{name}/c"
    cfg["linux"]["resources"].pop("pids", None)  # no controller is delegated here
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    r = subprocess.run([OCIRUN, "--root", root, "run", "-b", repo_bundle_path, "v2c"],
                       capture_output=True, text=True, timeout=60)
    left = os.path.exists(f"/sys/fs/cgroup/{name}/c")
    if os.path.isdir(f"/sys/fs/cgroup/{name}"):
        os.rmdir(f"/sys/fs/cgroup/{name}")
    return {"rc": r.returncode, "err": r.stderr, "out": r.stdout, "left": left}


def test_pure_v2_init_is_born_in_its_cgroup(bundle, cgname):
    if not os.path.isdir("/sys/fs/cgroup/unified") and detect() != "unified":
        pytest.skip("no cgroup2 hierarchy on this host")
    bundle.write()
    r = in_pure_v2(_pure_v2_run, bundle.path, bundle.root, cgname)
    assert r["rc"] == 0, r["err"]
    v2_line = [x for x in r["out"].splitlines() if x.startswith("0::")]
    assert v2_line == [f"0::/{cgname}/c"], r["out"]
    assert not r["left"]


def test_exec_process_is_in_every_hierarchy_without_a_procs_write(bundle, tmp_path, cgroup_host,
                                                                  monkeypatch):
    bundle.config["process"]["args"] = ["sleep", "60"]
    bundle.write()
    rt = Runtime(root=bundle.root)
    out = tmp_path / "exec.out"
    fd = os.open(out, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    saved = [os.dup(0), os.dup(1), os.dup(2)]
    for n in (0, 1, 2):  # the init keeps the stdio it was created with: a file
        os.dup2(fd, n)
    try:
        c = rt.create("join4", bundle.path)
        bundle.ids.append("join4")
        c.start()

        def no_add(self, pid, sub=None):
            raise AssertionError("the runtime wrote the exec'd pid to cgroup.procs")
        monkeypatch.setattr(common.Manager, "add", no_add)
        os.ftruncate(1, 0)
        os.lseek(1, 0, os.SEEK_SET)
        code = c.exec(["cat", "/proc/self/cgroup"])
    finally:
        for n, s in zip((0, 1, 2), saved):
            os.dup2(s, n)
            os.close(s)
        os.close(fd)
    monkeypatch.undo()
    c.kill("KILL")
    c.delete(force=True)
    assert code == 0
    seen = _cgroup_lines(out.read_text())
    assert seen and all(p == "/ocirun/join4" for p in seen.values()), seen
