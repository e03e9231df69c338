"""Property-based fuzzing of what ocirun reads through the real CLI: config.json (create),
process.json (exec --process), a linux.resources object (update --resources) and a
seccomp profile (seccomp compile). Every input ends in success or a one-line error, never
a traceback or an internal error, never a hang, and nothing is left behind.

Inputs start from a valid config and change one to three places, either anywhere in the
document or at a property path of the runtime-spec schema (tests/spec_schema.py: the
objects on the way are created, so every level is reached), to null, an empty container,
a huge or negative number, a string, a value of the schema's own type, or a random nest.

CI runs a short derandomized campaign with Debian's python3-hypothesis and again with
the current Hypothesis from PyPI (scripts/test.sh, .venv-fuzz); OCIRUN_FUZZ_EXAMPLES=N
runs N random examples per test. Every failure a campaign has found is an @example below."""
import copy
import json
import os
import subprocess

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="python3-hypothesis is not installed")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from spec_schema import PATHS, Schema, context, make  # noqa: E402
from support import OCIRUN, base_config  # noqa: E402

EXAMPLES = int(os.environ.get("OCIRUN_FUZZ_EXAMPLES", "60"))
RANDOM = bool(os.environ.get("OCIRUN_FUZZ_EXAMPLES"))
SCHEMA = Schema()

BOUNDARIES = [0, 1, -1, 0o7777, 65535, 65536, 2**31 - 1, 2**31, -2**31, -2**31 - 1,
              2**32 - 2, 2**32 - 1, 2**32, 2**63 - 1, 2**63, -2**63, -2**63 - 1, 2**64 - 1,
              2**64, 10**30, -10**30, 10**4000]
integers = st.one_of(st.sampled_from(BOUNDARIES), st.integers(-2**70, 2**70), st.integers())
strings = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "/", "..", "/proc", "proc", "/dev/null", "\x00", "\udc80",
                     "/proc/self/ns/net", "CAP_SYS_ADMIN", "RLIMIT_NOFILE", "rbind", "ro",
                     "SCMP_ACT_ALLOW", "SCMP_ACT_NOTIFY", "SCMP_CMP_MASKED_EQ", "network",
                     "user", "1.0.2", "a" * 300, "max", "0-3", "c", "a", "rwm", "2MB"]))
KEYS = sorted({p[-1] for p, _, _, _ in PATHS if p[-1] not in ("[]", "*")})
scalars = st.one_of(st.none(), st.booleans(), integers, st.floats(), strings)
# fresh objects each draw: a later change may write into one
empties = st.sampled_from([[], {}, "", [None], [[]], [{}], {"": None}]).map(copy.deepcopy)
values = st.recursive(
    st.one_of(scalars, empties),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner,
                        max_size=4)),
    max_leaves=12)


def typed(node, where, depth=0):
    """Values of the schema's own type for a node (enums, ranges and their neighbours,
    arrays and objects of such values): inputs that get past the type checks."""
    out, props, required = SCHEMA.resolve(node, where)
    if "enum" in out:
        return st.sampled_from(out["enum"][0])
    kind = out.get("type", (None,))[0]
    if kind == "integer":
        lo = out.get("minimum", (-2**64,))[0]
        hi = out.get("maximum", (2**64,))[0]
        return st.one_of(st.integers(lo, hi), st.sampled_from([lo - 1, lo, hi, hi + 1]))
    if kind == "string":
        return strings
    if kind == "boolean":
        return st.booleans()
    if depth > 2:
        return values
    if kind == "array" and "items" in out:
        items, w = out["items"]
        return st.lists(typed(items, w, depth + 1), max_size=3)
    if props:
        return st.fixed_dictionaries(
            {k: typed(props[k][0], props[k][1], depth + 1) for k in required if k in props},
            optional={k: typed(s, w, depth + 1) for k, (s, w) in props.items()
                      if k not in required})
    return values


_TYPED = {}


def value_for(path, node, where):
    if path not in _TYPED:
        _TYPED[path] = st.one_of(values, typed(node, where))
    return _TYPED[path]


def _paths(doc, prefix=()):
    """Every JSON path of a document."""
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


def _mutate(doc, path, action, value):
    if not path:
        return value if action == "replace" else doc
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    last = path[-1]
    if action == "delete":
        del parent[last]
    else:
        parent[last] = value
    return doc


def mutated(draw, doc, prefix):
    """doc after one to three changes; schema paths are those under `prefix`."""
    paths = [p for p in PATHS if p[0][:len(prefix)] == prefix and len(p[0]) > len(prefix)]
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            path, _, node, where = draw(st.sampled_from(paths))
            value = draw(value_for(path, node, where))
            top = doc  # make() walks from the document's top: wrap a part in its keys
            for key in reversed(prefix):
                top = {key: top}
            try:
                container, key = make(top, path, check=False)
                context(top, path)
                container[key] = value
            except (AttributeError, TypeError, IndexError, KeyError):
                pass  # an earlier change made a parent something else
        else:
            path = draw(st.sampled_from(list(_paths(doc))))
            doc = _mutate(doc, path, draw(st.sampled_from(["replace", "replace", "delete"])),
                          draw(values))
    return doc


@st.composite
def configs(draw):
    return mutated(draw, base_config(["true"]), ())


@st.composite
def processes(draw):
    return mutated(draw, base_config(["true"])["process"], ("process",))


@st.composite
def resources(draw):
    return mutated(draw, {"pids": {"limit": 100}}, ("linux", "resources"))


@st.composite
def profiles(draw):
    return mutated(draw, {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}, ("linux", "seccomp"))


def fuzz_settings(examples):
    return settings(max_examples=examples, deadline=None, derandomize=not RANDOM,
                    suppress_health_check=list(HealthCheck))


def log(what, code, err):
    """OCIRUN_FUZZ_LOG=FILE: one line per example (test, status, the error's last line)."""
    if os.environ.get("OCIRUN_FUZZ_LOG"):
        last = (err.strip().splitlines() or [""])[-1][:160]
        with open(os.environ["OCIRUN_FUZZ_LOG"], "a") as f:
            f.write(f"{what}\t{code}\t{last}\n")


def one_line(code, err):
    """A failure is one line; warnings (`ocirun: warning: ...`) may come before it."""
    assert "Traceback" not in err and "internal error" not in err, err
    assert code in (0, 1), (code, err)
    lines = [line for line in err.strip().splitlines() if not line.startswith("ocirun: warning:")]
    assert len(lines) == (1 if code == 1 else 0), err


def write_json(path, doc):
    """False for a document JSON cannot hold (json.dumps refuses it)."""
    try:
        text = json.dumps(doc)
    except (ValueError, UnicodeEncodeError):
        return False
    with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
        f.write(text)
    return True


def _config(**changes):
    """The base config with changes at paths spelled a__b__c (for @example)."""
    doc = base_config(["true"])
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = doc
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return doc


@fuzz_settings(EXAMPLES)
@given(doc=configs())
# internal TypeError in device_rules before null = absent
@example(doc=_config(linux__resources__devices=None))
# found by campaigns with Hypothesis from PyPI:
# internal ValueError from posix_spawn: an empty argv[0]
@example(doc=_config(hooks={"prestart": [{"path": "/bin/true", "args": [""]}]}))
# create hung: the init, sharing the runtime's memory, spun once exit_group was refused
@example(doc=_config(linux__seccomp={"defaultAction": "SCMP_ACT_ERRNO"}))
def test_fuzz_config(bundle_factory, doc):
    bundle = bundle_factory()
    if not write_json(f"{bundle.path}/config.json", doc):
        return
    cid = bundle.new_id()
    with open(f"{bundle.path}/err", "w+") as err:
        r = subprocess.run([OCIRUN, "--root", bundle.root, "create", "-b", bundle.path, cid],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                           timeout=30)
        err.seek(0)
        text = err.read()
        log("create", r.returncode, text)
        one_line(r.returncode, text)
    d = subprocess.run([OCIRUN, "--root", bundle.root, "delete", "--force", cid],
                       capture_output=True, text=True, timeout=30)
    assert d.returncode == 0 and "Traceback" not in d.stderr, d.stderr
    left = [n for n in os.listdir(bundle.root) if not n.startswith(".")] \
        if os.path.isdir(bundle.root) else []
    assert left == [], left


@fuzz_settings(EXAMPLES // 2)
@given(proc=st.one_of(values, processes()))
def test_fuzz_exec_process(running_container, proc):
    bundle, cid = running_container
    if not write_json(f"{bundle.path}/process.json", proc):
        return
    r = subprocess.run([OCIRUN, "--root", bundle.root, "exec", "--process",
                        f"{bundle.path}/process.json", cid], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    log("exec", r.returncode, r.stderr)
    # Any other status is the process's own (it may be `false`, or not exist: 127).
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    if r.returncode == 1 and r.stderr:
        one_line(1, r.stderr)
    assert bundle.state(cid)["status"] == "running"


@fuzz_settings(EXAMPLES // 2)
@given(res=st.one_of(values, resources()))
def test_fuzz_update_resources(running_container, res):
    bundle, cid = running_container
    if not write_json(f"{bundle.path}/resources.json", res):
        return
    r = subprocess.run([OCIRUN, "--root", bundle.root, "update", "--resources",
                        f"{bundle.path}/resources.json", cid], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    log("update", r.returncode, r.stderr)
    one_line(r.returncode, r.stderr)


@fuzz_settings(EXAMPLES)
@given(profile=st.one_of(values, profiles()))
@example(profile={"linux": True})  # internal AttributeError
# a warning that str.splitlines() broke in two: the name was a record separator
@example(profile={"defaultAction": "SCMP_ACT_ALLOW",
                  "syscalls": [{"names": ["\x1e"], "action": "SCMP_ACT_ERRNO"}]})
def test_fuzz_seccomp_profile(tmp_path, profile):
    path = tmp_path / "profile.json"
    if not write_json(path, profile):
        return
    r = subprocess.run([OCIRUN, "seccomp", "compile", str(path)], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    log("seccomp", r.returncode, r.stderr)
    one_line(r.returncode, r.stderr)


@pytest.fixture
def bundle_factory(tmp_path, rootfs_template):
    from support import Bundle
    made = []

    def make_bundle():
        b = Bundle(str(tmp_path / f"b{len(made)}"), str(tmp_path / f"s{len(made)}"),
                   rootfs_template)
        made.append(b)
        return b
    yield make_bundle
    for b in made:
        b.cleanup()


@pytest.fixture
def running_container(bundle):
    cid = bundle.detach(["sleep", "300"])
    return bundle, cid


@pytest.mark.parametrize("allowed", [[], ["execveat"]])
def test_profile_refusing_every_syscall_ends(bundle, allowed):
    """A profile whose default refuses every syscall, exit_group included, goes on
    before the capabilities are dropped (no noNewPrivileges): the init cannot report or
    exit, and must still end (it dies of SIGILL) rather than hold the runtime forever.
    (With execveat allowed too, a runtime that checks the profile for it still lets the
    init start.)"""
    bundle.config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": allowed, "action": "SCMP_ACT_ALLOW"}] if allowed else []}
    cid, r = bundle.create()
    one_line(r.returncode, r.stderr)
    assert r.returncode == 1, r.stderr
    r = bundle.run(["true"], timeout=30)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
