"""When `run` may start the init in the runtime's memory (create.py _can_share_memory):
only when the init needs nothing from the runtime before its execve, joins no
existing pid namespace and sets no oom_score_adj; otherwise it forks."""
import types

import pytest

from ocirun import kernel
from ocirun.kernel import CLONE_NEWNET, CLONE_NEWPID
from ocirun.lifecycle.create import _can_share_memory


def plan(**kw):
    p = dict(userns_new=False, hooks={}, seccomp=None, oom_score_adj=None, ns_join=[])
    p.update(kw)
    return types.SimpleNamespace(**p)


@pytest.fixture(autouse=True)
def have_clone_vm(monkeypatch):
    monkeypatch.setattr(kernel, "clone_vm", lambda fn, fd: 0)


def test_a_plain_container_shares():
    assert _can_share_memory(plan())
    assert _can_share_memory(plan(ns_join=[("network", "/proc/1/ns/net", CLONE_NEWNET)]))
    assert _can_share_memory(plan(hooks={"poststart": [{"path": "/bin/true"}]}))


@pytest.mark.parametrize("why", [
    dict(userns_new=True),
    dict(hooks={"prestart": [{"path": "/bin/true"}]}),
    dict(hooks={"createRuntime": [{"path": "/bin/true"}]}),
    dict(hooks={"createContainer": [{"path": "/bin/true"}]}),
    dict(hooks={"startContainer": [{"path": "/bin/true"}]}),
    dict(seccomp=types.SimpleNamespace(notify=True)),
    dict(oom_score_adj=0),
    dict(ns_join=[("pid", "/proc/1/ns/pid", CLONE_NEWPID)]),
])
def test_these_fork(why):
    assert not _can_share_memory(plan(**why))


def test_without_the_extension_it_forks(monkeypatch):
    monkeypatch.setattr(kernel, "clone_vm", None)
    assert not _can_share_memory(plan())
