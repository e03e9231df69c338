"""The sync protocol (linux/sync.py): every message kind the code sends is a Msg name,
drawn in the protocol's diagram, and no module spells a tag as a string."""
import ast
import os

import pytest

from ocirun.linux import sync
from ocirun.linux.sync import KINDS, Channel, Msg, ProtocolError, pair
from support import REPO


def sources():
    """The modules on both sides of the channel: lifecycle/ and linux/."""
    for dirpath, _, files in [w for d in ("lifecycle", "linux")
                              for w in os.walk(os.path.join(REPO, "ocirun", d))]:
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                yield path, ast.parse(open(path).read())


def sent_kinds():
    """(path, first argument) of every `<channel>.send(...)` or `.tell(...)` call."""
    for path, tree in sources():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("send", "tell") and node.args
                    and "chan" in ast.unparse(node.func.value)):
                yield path, node.args[0]


def test_every_send_names_a_kind():
    found = set()
    for path, arg in sent_kinds():
        assert isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name) \
            and arg.value.id == "Msg", f"{path}: send({ast.unparse(arg)}) is not a Msg kind"
        found.add(getattr(Msg, arg.attr))
    assert found == KINDS - {Msg.EOF}, "kinds never sent, or sent and not declared"


def test_every_kind_is_in_the_diagram():
    diagram = sync.__doc__
    for kind in KINDS:
        assert f" {kind}" in diagram, f"{kind} is not drawn in linux/sync.py's diagram"


def test_no_tag_is_spelled_as_a_string():
    literal = []
    for path, tree in sources():
        if path.endswith("linux/sync.py"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and all(
                    isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
                for side in [node.left, *node.comparators]:
                    if isinstance(side, ast.Constant) and side.value in KINDS:
                        literal.append(f"{path}:{node.lineno}: {side.value!r}")
    assert not literal, literal


def test_expect_raises_on_anything_else():
    parent, child = pair()
    try:
        child.send(Msg.ERROR, "mount `proc` on `/proc`: EPERM")
        with pytest.raises(ProtocolError) as e:
            parent.expect(Msg.READY)
        assert (e.value.kind, e.value.payload) == (Msg.ERROR, "mount `proc` on `/proc`: EPERM")
        child.send(Msg.GO, "42")
        assert parent.expect(Msg.GO) == "42"
        child.close()
        assert parent.recv() == (Msg.EOF, "")
    finally:
        parent.close()
        child.close()


def test_a_payload_stays_one_line():
    parent, child = pair()
    try:
        child.send(Msg.ERROR, "two\nlines")
        assert parent.recv() == (Msg.ERROR, "two lines")
    finally:
        parent.close()
        child.close()


def test_channel_is_small():
    assert Channel.__slots__ == ("rfd", "wfd", "buf")


def test_tell_to_a_peer_that_has_gone_leaves_its_last_words_to_recv():
    """The init writes an ERROR and exits before the runtime's GO: the runtime's write
    meets EPIPE, which tell() leaves to the recv() that reads the ERROR."""
    ours, theirs = sync.pair()
    theirs.send(sync.Msg.ERROR, "join cgroup /x/missing: ENOENT")
    theirs.close()
    with pytest.raises(BrokenPipeError):
        ours.send(sync.Msg.GO, "1")
    ours.tell(sync.Msg.GO, "1")
    assert ours.recv() == (sync.Msg.ERROR, "join cgroup /x/missing: ENOENT")
    assert ours.recv() == (sync.Msg.EOF, "")
    ours.close()
