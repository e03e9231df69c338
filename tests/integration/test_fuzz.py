"""Property-based fuzzing of config.json and process.json through the real CLI:
every input ends in success or a one-line error, never a traceback, never a hang,
and nothing is left behind.

CI runs a short campaign; OCIRUN_FUZZ_EXAMPLES=5000 runs a long one."""
import json
import os
import subprocess

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="python3-hypothesis is not installed")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from support import OCIRUN, base_config  # noqa: E402

EXAMPLES = int(os.environ.get("OCIRUN_FUZZ_EXAMPLES", "60"))

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**65, 2**65),
                    st.floats(allow_nan=False), st.text(max_size=12),
                    st.sampled_from(["", "/", "..", "/proc", "proc", "/dev/null", "\x00",
                                     "\udc80", "CAP_SYS_ADMIN", "RLIMIT_NOFILE", "rbind",
                                     "SCMP_ACT_ALLOW", "network", "1.0.2"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


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


@st.composite
def configs(draw):
    doc = base_config(["true"])
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "replace", "delete"]))
        doc = _mutate(doc, path, action, draw(values))
    return doc


def _check(bundle, r, cid):
    err = r.stderr
    assert "Traceback" not in err and "internal error" not in err, err
    assert r.returncode in (0, 1), (r.returncode, err)
    if r.returncode == 1:
        assert len(err.strip().splitlines()) == 1, err
    d = subprocess.run([OCIRUN, "--root", bundle.root, "delete", "--force", cid],
                       capture_output=True, text=True, timeout=30)
    assert d.returncode == 0 and "Traceback" not in d.stderr, d.stderr
    left = [n for n in os.listdir(bundle.root) if not n.startswith(".")] \
        if os.path.isdir(bundle.root) else []
    assert left == [], left


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("OCIRUN_FUZZ_EXAMPLES"),
          suppress_health_check=list(HealthCheck))
@given(doc=configs())
def test_fuzz_config(bundle_factory, doc):
    bundle = bundle_factory()
    try:
        text = json.dumps(doc)
    except (ValueError, UnicodeEncodeError):
        return
    with open(f"{bundle.path}/config.json", "w", encoding="utf-8", errors="surrogatepass") as f:
        f.write(text)
    cid = bundle.new_id()
    with open(f"{bundle.path}/err", "w+") as err:
        r = subprocess.run([OCIRUN, "--root", bundle.root, "create", "-b", bundle.path, cid],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                           timeout=30)
        err.seek(0)
        r.stderr = err.read()
    _check(bundle, r, cid)


@settings(max_examples=EXAMPLES // 2, deadline=None, derandomize=not os.environ.get("OCIRUN_FUZZ_EXAMPLES"),
          suppress_health_check=list(HealthCheck))
@given(proc=st.one_of(values, st.fixed_dictionaries(
    {"args": st.one_of(values, st.lists(st.text(max_size=6), max_size=3)),
     "cwd": st.one_of(values, st.just("/")), "user": values, "env": values,
     "capabilities": values, "rlimits": values})))
def test_fuzz_exec_process(running_container, proc):
    bundle, cid = running_container
    try:
        text = json.dumps(proc)
    except (ValueError, UnicodeEncodeError):
        return
    with open(f"{bundle.path}/process.json", "w", encoding="utf-8", errors="surrogatepass") as f:
        f.write(text)
    r = subprocess.run([OCIRUN, "--root", bundle.root, "exec", "--process",
                        f"{bundle.path}/process.json", cid], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    if r.returncode == 1 and r.stderr:
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert bundle.state(cid)["status"] == "running"


@pytest.fixture
def bundle_factory(tmp_path, rootfs_template):
    from support import Bundle
    made = []

    def make():
        b = Bundle(str(tmp_path / f"b{len(made)}"), str(tmp_path / f"s{len(made)}"), rootfs_template)
        made.append(b)
        return b
    yield make
    for b in made:
        b.cleanup()


@pytest.fixture
def running_container(bundle):
    cid = bundle.detach(["sleep", "300"])
    return bundle, cid
