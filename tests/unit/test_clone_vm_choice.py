"""When `run` and `create` may start the init in the runtime's memory (birth.py
can_share_memory): only when the init needs nothing from the runtime before its
execve, joins no existing pid namespace, sets no oom_score_adj, memory limit or time
namespace, and its process stays root (another uid could signal it); otherwise it
forks."""
import types

import pytest

from ocirun import kernel
from ocirun.kernel import CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWTIME
from ocirun.lifecycle.birth import can_share_memory


def plan(**kw):
    p = dict(userns_new=False, hooks={}, oom_score_adj=None, ns_join=[], ns_new=0, uid=0,
             net_devices=[],
             gid=0)
    seccomp = kw.pop("seccomp", None)
    p.update(kw)
    return types.SimpleNamespace(**p), types.SimpleNamespace(seccomp=seccomp)


def share(p, linux=None):
    plan_, ctx = p
    return can_share_memory(plan_, ctx, linux or {})


@pytest.fixture(autouse=True)
def have_clone_vm(monkeypatch):
    monkeypatch.setattr(kernel, "clone_vm", lambda fn, fd, errfd: 0)


def test_a_plain_container_shares():
    assert share(plan())
    assert share(plan(ns_join=[("network", "/proc/1/ns/net", CLONE_NEWNET)]))
    assert share(plan(hooks={"poststart": [{"path": "/bin/true"}]}))
    assert share(plan(), {"resources": {"memory": {"limit": -1, "reservation": 1 << 20},
                                        "pids": {"limit": 10},
                                        "unified": {"memory.max": "max"}}})


@pytest.mark.parametrize("why", [
    dict(userns_new=True),
    dict(hooks={"prestart": [{"path": "/bin/true"}]}),
    dict(hooks={"createRuntime": [{"path": "/bin/true"}]}),
    dict(hooks={"createContainer": [{"path": "/bin/true"}]}),
    dict(hooks={"startContainer": [{"path": "/bin/true"}]}),
    dict(seccomp=types.SimpleNamespace(notify=True)),
    dict(oom_score_adj=0),
    dict(ns_join=[("pid", "/proc/1/ns/pid", CLONE_NEWPID)]),
    dict(ns_join=[("time", "/proc/1/ns/time", CLONE_NEWTIME)]),
    dict(ns_new=CLONE_NEWTIME),
    dict(uid=1000),
    dict(gid=1000),
    dict(uid=65534, gid=65534),
])
def test_these_fork(why):
    assert not share(plan(**why))


@pytest.mark.parametrize("resources", [
    {"memory": {"limit": 32 << 20}},
    {"memory": {"swap": 64 << 20}},
    {"memory": {"kernel": 8 << 20}},
    {"unified": {"memory.max": "33554432"}},
])
def test_a_memory_limit_forks(resources):
    assert not share(plan(), {"resources": resources})


def test_without_the_extension_it_forks(monkeypatch):
    monkeypatch.setattr(kernel, "clone_vm", None)
    assert not share(plan())
