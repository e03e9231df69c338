"""`--timings` / OCIRUN_TIMINGS for every verb that starts or ends a container: the
phases of create, start, exec and delete, and of run, as JSON files."""
import json
import os
import subprocess

from support import OCIRUN


def _timed(bundle, name, *args):
    """Run `ocirun ARGS` with OCIRUN_TIMINGS=FILE; -> the phase names, in order."""
    tfile = f"{bundle.path}/{name}.json"
    with open(f"{bundle.path}/{name}.err", "w+") as err:
        r = subprocess.run([OCIRUN, "--root", bundle.root, *args],
                           env=dict(os.environ, OCIRUN_TIMINGS=tfile), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=err, timeout=60, cwd=bundle.path)
        err.seek(0)
        assert r.returncode == 0, err.read()
    rows = json.load(open(tfile))
    assert all(r["ms"] >= 0 for r in rows)
    assert [round(r["total_ms"], 3) for r in rows] == sorted(round(r["total_ms"], 3) for r in rows)
    return [r["phase"] for r in rows]


def test_each_verb_reports_its_phases(bundle):
    bundle.config["process"]["args"] = ["sleep", "30"]
    bundle.write()
    cid = bundle.new_id()
    create = _timed(bundle, "create", "create", "-b", bundle.path, cid)
    assert create[0] == "interpreter start (cpu time)" and create[-1] == "exit"
    assert {"config load", "config validate", "plan", "state dir", "state write",
            "init: namespaces", "init: pivot_root"} <= set(create), create
    # the init shares our memory and execs the waiter (linux/trampoline.py), or forks
    assert {"execve (the runtime resumes)", "init: user, caps, seccomp (the waiter next)"} \
        <= set(create) or "fork" in create, create

    start = _timed(bundle, "start", "start", cid)
    assert start[1:] == ["state load + status", "exec fifo written (the init goes on)",
                         "exec fifo removed", "exit"], start

    exec_ = _timed(bundle, "exec", "exec", cid, "true")
    assert exec_[1:] == ["state load + process validation", "the container's namespaces and root",
                         "fork", "cgroup join, the child's set-up and execve", "process exited",
                         "exit"], exec_

    delete = _timed(bundle, "delete", "delete", "-f", cid)
    assert delete[1:] == ["state load + status", "processes killed",
                          "cgroup, mounts, state directory removed", "exit"], delete
    assert bundle.ocirun("state", cid).returncode != 0


def test_run_reports_both_processes(bundle):
    bundle.write()
    run = _timed(bundle, "run", "run", "-b", bundle.path, bundle.new_id())
    assert {"execve (the runtime resumes)", "init: mounts (7)", "container exited",
            "delete"} <= set(run), run
