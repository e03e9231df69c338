"""Manager.fork: which path puts the child in its cgroup (the kernel side is
tests/integration/test_cgroup_join.py)."""
import errno
import os

import pytest

from ocirun import kernel
from ocirun.cgroups.common import Manager


class FakeManager(Manager):
    def __init__(self, v2, v1):
        super().__init__("/sys/fs/cgroup", "/x", "x", "v1")
        self.targets = (v2, v1)

    def fork_targets(self):
        return self.targets


def _fork(manager):
    pid, join = manager.fork()
    if pid == 0:
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    return join


def test_a_manager_without_targets_leaves_the_add_to_the_runtime():
    assert _fork(FakeManager(None, [])) is None


def test_v1_only_the_child_joins_itself():
    assert _fork(FakeManager(None, ["/sys/fs/cgroup/pids/x"])) == ["/sys/fs/cgroup/pids/x"]


@pytest.mark.parametrize("err", [errno.ENOSYS, errno.EINVAL, errno.E2BIG, errno.EPERM])
def test_clone3_refused_falls_back_to_fork_and_the_runtime_adds(tmp_path, monkeypatch, err):
    def refuse(fd):
        raise OSError(err, os.strerror(err))
    monkeypatch.setattr(kernel, "fork_into_cgroup", refuse)
    assert _fork(FakeManager(str(tmp_path), ["/v1/dir"])) is None


def test_v2_directory_missing_falls_back(tmp_path):
    assert _fork(FakeManager(str(tmp_path / "gone"), [])) is None
