"""Which parsed (not yet validated) configs start the network namespace helper
(birth.py asks_new_netns_only) and which plans let the init join what it made."""
import pytest

from ocirun.lifecycle.birth import asks_new_netns_only, init_unshares_netns
from ocirun.config.plan import Plan
from ocirun.kernel import CLONE_NEWNET, CLONE_NEWUSER


def spec(*namespaces):
    return {"linux": {"namespaces": list(namespaces)}}


def limited(resources):
    doc = spec({"type": "network"})
    doc["linux"]["resources"] = resources
    return doc


@pytest.mark.parametrize("doc,wanted", [
    (spec({"type": "network"}), True),
    (spec({"type": "pid"}, {"type": "network", "path": ""}), True),
    (spec({"type": "network", "path": "/proc/1/ns/net"}), False),
    (spec({"type": "pid"}), False),
    (spec({"type": "network"}, {"type": "user"}), False),
    (spec({"type": "network"}, {"type": "user", "path": "/proc/1/ns/user"}), False),
    # a memory limit: the namespace's memory must be charged inside it (the init makes it)
    (limited({"memory": {"limit": 1 << 26}}), False),
    (limited({"memory": {"swap": 1 << 26}}), False),
    (limited({"unified": {"memory.max": "67108864"}}), False),
    (limited({"memory": {"limit": -1}}), True), (limited({"unified": {"memory.max": "max"}}), True),
    (limited({"memory": 3}), False), (limited(7), False),
    # garbage before validation: never an exception, never a helper
    ({}, False), ({"linux": None}, False), ({"linux": {"namespaces": 3}}, False),
    (spec("network"), False), (spec({"path": "x"}), False), (spec(None), False),
    (spec({"type": ["network"]}), False), ([], False), (None, False),
])
def test_which_configs_start_the_helper(doc, wanted):
    assert asks_new_netns_only(doc) is wanted


def plan(ns_new=0, ns_join=(), userns_new=False):
    p = Plan()
    p.ns_new, p.ns_join, p.userns_new = ns_new, list(ns_join), userns_new
    return p


def test_the_plan_is_checked_again():
    assert init_unshares_netns(plan(CLONE_NEWNET))
    assert not init_unshares_netns(plan(0))
    assert not init_unshares_netns(plan(CLONE_NEWNET | CLONE_NEWUSER, userns_new=True))
    assert not init_unshares_netns(plan(CLONE_NEWNET, [("user", "/proc/1/ns/user", CLONE_NEWUSER)]))
