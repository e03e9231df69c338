"""Faults, races and load: nothing leaked, clear errors (SECURITY.md "Reliability").

Long runs: OCIRUN_STRESS=1 raises the counts to the full bar (100 parallel, 1000
sequential)."""
import json
import os
import subprocess
import threading
import time

from layout import adapt_resources, leftovers
from support import OCIRUN

STRESS = bool(os.environ.get("OCIRUN_STRESS"))


def leaked_processes(bundle):
    """Container processes: root or cwd inside the bundle, or (an init that has not
    pivoted yet) the runtime's command line naming the bundle."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            links = [os.readlink(f"/proc/{p}/{link}") for link in ("root", "cwd")]
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{p}/stat", "rb") as f:
                state = f.read().rpartition(b")")[2].split()[0]
        except OSError:
            continue
        if state in (b"Z", b"X"):
            continue
        if any(l.startswith(bundle.path) for l in links) or bundle.path.encode() in cmd:
            out.append(int(p))
    return out


def leaked_cgroups(cid):
    """The container's cgroup, in any hierarchy of the layout in use."""
    return leftovers(f"/ocirun/{cid}")


def assert_clean(bundle, cid):
    assert not os.path.exists(f"{bundle.root}/{cid}"), "state directory left"
    assert leaked_cgroups(cid) == []
    deadline = time.time() + 3
    while leaked_processes(bundle) and time.time() < deadline:
        time.sleep(0.02)
    assert leaked_processes(bundle) == []


def _cli(bundle, verb, cid, env=None):
    """`ocirun VERB -b BUNDLE ID` with stderr in a file (a surviving init would hold a
    pipe open)."""
    with open(f"{bundle.path}/{verb}.err", "w+") as err:
        r = subprocess.run([OCIRUN, "--root", bundle.root, verb, "-b", bundle.path, cid],
                           env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=err, timeout=60)
        err.seek(0)
        r.stderr = err.read()
    return r


def _create(bundle, cid, env=None):
    return _cli(bundle, "create", cid, env)


def _phases(bundle):
    """Every phase `create` marks, from a --timings run."""
    tfile = f"{bundle.path}/timings.json"
    cid = bundle.new_id()
    r = _create(bundle, cid, dict(os.environ, OCIRUN_TIMINGS=tfile))
    assert r.returncode == 0, r.stderr
    bundle.ocirun("delete", "-f", cid)
    phases = [p["phase"] for p in json.load(open(tfile))]
    return [p for p in phases if not p.startswith("interpreter") and p != "exit"]


def test_sigkill_runtime_at_every_phase_of_create(bundle):
    bundle.config["process"]["args"] = ["sleep", "60"]
    bundle.config["linux"]["resources"] = adapt_resources({"pids": {"limit": 100}})
    bundle.write()
    phases = _phases(bundle)
    assert len(phases) >= 12, phases
    _kill_at_each(bundle, phases, _create)


def _kill_at_each(bundle, phases, verb):
    """`verb(bundle, cid, env)` SIGKILLed at each phase: `delete --force` then leaves
    nothing behind."""
    for phase in phases:
        cid = bundle.new_id()
        r = verb(bundle, cid, dict(os.environ, OCIRUN_FAULT=phase))
        assert r.returncode == -9, (phase, r.returncode, r.stderr)
        d = bundle.ocirun("delete", "--force", cid)
        assert d.returncode == 0 or "does not exist" in d.stderr, (phase, d.stderr)
        assert "Traceback" not in d.stderr
        assert_clean(bundle, cid)


def _run(bundle, cid, env):
    """`run` in the foreground (a surviving container holds its stdio)."""
    return _cli(bundle, "run", cid, env)


def test_sigkill_runtime_at_every_phase_of_run(bundle):
    """`run` starts its init in the runtime's memory (create.py _clone_vm): a runtime
    killed at any of its phases, the init's own marks included, leaves nothing that
    `delete --force` does not clean."""
    bundle.config["process"]["args"] = ["sh", "-c", "sleep 0.3"]
    bundle.config["linux"]["resources"] = adapt_resources({"pids": {"limit": 100}})
    bundle.write()
    tfile = f"{bundle.path}/run-timings.json"
    cid = bundle.new_id()
    r = _run(bundle, cid, dict(os.environ, OCIRUN_TIMINGS=tfile))
    assert r.returncode == 0, r.stderr
    phases = [p["phase"] for p in json.load(open(tfile))
              if not p["phase"].startswith("interpreter") and p["phase"] != "exit"]
    assert "execve (the runtime resumes)" in phases or "fork" in phases, phases
    assert len(phases) >= 15, phases
    _kill_at_each(bundle, phases, _run)


def test_concurrent_create_same_id_one_winner(bundle):
    bundle.config["process"]["args"] = ["sleep", "60"]
    bundle.write()
    cid = bundle.new_id()
    # stderr to files: the winner's init keeps its stdio open until it runs
    errs = [open(f"{bundle.path}/create{i}.err", "w+") for i in range(10)]
    procs = [subprocess.Popen([OCIRUN, "--root", bundle.root, "create", "-b", bundle.path, cid],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
             for err in errs]
    results = []
    for p, err in zip(procs, errs):
        rc = p.wait(60)
        err.seek(0)
        results.append((rc, err.read()))
        err.close()
    winners = [r for r in results if r[0] == 0]
    assert len(winners) == 1, results
    for rc, err in results:
        if rc:
            assert "already exists" in err and "Traceback" not in err, err
    assert bundle.state(cid)["status"] == "created"
    assert bundle.ocirun("delete", "-f", cid).returncode == 0
    assert_clean(bundle, cid)


def _lifecycle(bundle, cid):
    with open(f"{bundle.path}/{cid}.err", "w+") as err:
        r = subprocess.run([OCIRUN, "--root", bundle.root, "create", "-b", bundle.path, cid],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                           timeout=120)
        err.seek(0)
        r.stderr = err.read()
    if r.returncode:
        return f"create: {r.stderr}"
    for args in (("start", cid), ("delete", "--force", cid)):
        r = subprocess.run([OCIRUN, "--root", bundle.root, *args], capture_output=True, text=True,
                           timeout=120)
        if r.returncode:
            return f"{args[0]}: {r.stderr}"
    return None


def test_parallel_lifecycles(bundle):
    n = 100 if STRESS else 16
    bundle.config["process"]["args"] = ["sleep", "30"]
    bundle.write()
    ids = [bundle.new_id() for _ in range(n)]
    errors = []

    def worker(chunk):
        for cid in chunk:
            e = _lifecycle(bundle, cid)
            if e:
                errors.append(e)
    threads = [threading.Thread(target=worker, args=(ids[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for cid in ids:
        assert_clean(bundle, cid)


def test_sequential_lifecycles(bundle):
    n = 1000 if STRESS else 20
    bundle.config["process"]["args"] = ["true"]
    bundle.write()
    for _ in range(n):
        r = bundle.ocirun("run", "-b", bundle.path, bundle.new_id())
        assert r.returncode == 0, r.stderr
    assert [n for n in os.listdir(bundle.root) if not n.startswith(".")] == []
    assert leaked_processes(bundle) == []


def test_queries_racing_delete(bundle):
    for _ in range(5):
        cid = bundle.detach(["sleep", "30"])
        stop = threading.Event()
        errors = []

        def query():
            while not stop.is_set():
                for args in (("state", cid), ("list",), ("kill", cid, "0"), ("list", "--format", "json")):
                    r = bundle.ocirun(*args)
                    if "Traceback" in r.stderr or "internal error" in r.stderr:
                        errors.append(r.stderr)
        threads = [threading.Thread(target=query) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.1)
        r = bundle.ocirun("delete", "-f", cid)
        stop.set()
        for t in threads:
            t.join()
        assert r.returncode == 0, r.stderr
        assert errors == []
        assert_clean(bundle, cid)


def test_init_dying_during_create(bundle, tmp_path):
    hook = tmp_path / "kill-init.sh"
    hook.write_text("#!/bin/sh\npid=$(sed 's/.*\"pid\":\\([0-9]*\\).*/\\1/'); kill -9 $pid\n")
    hook.chmod(0o755)
    bundle.config["hooks"] = {"createRuntime": [{"path": str(hook)}]}
    cid, r = bundle.create()
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert_clean(bundle, cid)


def test_full_disk_under_root(bundle, tmp_path):
    root = tmp_path / "smallroot"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(root)],
                   check=True)
    try:
        with open(root / "fill", "wb") as f:
            try:
                f.write(b"\0" * (1 << 20))
            except OSError:
                pass
        bundle.write()
        r = subprocess.run([OCIRUN, "--root", str(root), "create", "-b", bundle.path, "full1"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, timeout=60)  # fails before any init exists
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert "No space left on device" in r.stderr or "ENOSPC" in r.stderr, r.stderr
        assert not os.path.exists(root / "full1")
        assert leaked_cgroups("full1") == []
    finally:
        subprocess.run(["umount", str(root)])


def test_garbage_state_file(bundle):
    bundle.config["process"]["args"] = ["true"]
    bundle.write()
    cid = bundle.new_id()
    r = bundle.ocirun("run", "--keep", "-b", bundle.path, cid)
    assert r.returncode == 0, r.stderr
    with open(f"{bundle.root}/{cid}/state.json", "w") as f:
        f.write('{"id": "x", "pid": ')
    r = bundle.ocirun("list")
    assert r.returncode == 0 and cid in r.stdout
    r = bundle.ocirun("kill", cid, "KILL")
    assert r.returncode == 1 and "not running" in r.stderr
    assert bundle.ocirun("delete", "--force", cid).returncode == 0
    assert_clean(bundle, cid)


def test_exit_codes_and_forwarded_signals(bundle):
    bundle.config["process"]["args"] = ["sh", "-c", "trap 'echo got-$SIG; exit 42' TERM; echo ready; while :; do sleep 0.05; done"]
    bundle.write()
    p = subprocess.Popen([OCIRUN, "--root", bundle.root, "run", "-b", bundle.path, bundle.new_id()],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    p.send_signal(15)
    assert p.wait(10) == 42
    for sig, name in ((1, "HUP"), (10, "USR1"), (12, "USR2"), (2, "INT")):
        bundle.config["process"]["args"] = ["sh", "-c", f"trap 'exit {sig}' {name}; echo ready; while :; do sleep 0.05; done"]
        bundle.write()
        p = subprocess.Popen([OCIRUN, "--root", bundle.root, "run", "-b", bundle.path, bundle.new_id()],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert p.stdout.readline() == "ready\n"
        p.send_signal(sig)
        assert p.wait(10) == sig, name
