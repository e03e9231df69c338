"""`ocirun bench` for real: namespaces and full runs, JSON out."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from ocirun import kernel
from ocirun.bench import bundle as bench_bundle
from layout import need
from support import OCIRUN, REPO, need_root

NS_ROWS = ("fork + exit (baseline)", "network namespace create+destroy",
           "ipc namespace create+destroy", "mqueue mount (private mount ns)",
           "all namespaces (mnt uts ipc net pid+fork cgroup)")


def _timed(row):
    assert row["n"] >= 1, row
    assert 0 < row["min_ms"] <= row["median_ms"] <= row["max_ms"], row


def test_bench_ns_and_run_json(tmp_path):
    need_root()
    need("pids", why=" (the bench bundle sets a pids limit)")
    t0 = time.monotonic()
    before = set(os.listdir("/tmp"))
    r = subprocess.run([OCIRUN, "bench", "--runs", "3", "--only", "ns,run", "--json"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 60
    doc = json.loads(r.stdout)
    assert doc["version"] == 1
    assert doc["host"]["cpus"] >= 1
    assert list(doc["sections"]) == ["ns", "run"]
    # progress went to stderr, a line per phase
    assert "bench: ns:" in r.stderr and "bench: run: runs (blocks of" in r.stderr and "3/3" in r.stderr

    ns = doc["sections"]["ns"]
    assert [row["name"] for row in ns["rows"]] == list(NS_ROWS)
    for row in ns["rows"]:
        _timed(row)
        assert row["n"] == ns["iterations"]
    for row in ns["rows"][1:]:
        assert row["child_ms"] >= 0

    run = doc["sections"]["run"]
    assert run["runs"] == 3
    names = [row["name"] for row in run["rows"] if row["group"] == "no seccomp"]
    assert names[0] == "ocirun"
    expect = ["ocirun"]
    if shutil.which("runc"):
        expect.append("runc")
    if shutil.which("crun"):
        hybrid = doc["host"].get("cgroups") != "unified"
        expect.append("crun (private cgroup2)" if hybrid else "crun")
        if hybrid:
            expect.append("ocirun (private cgroup2)")
            assert any("private cgroup2" in n for n in run["notes"])
    # the interpreter the launcher starts, alone, in the same blocks
    expect += ["interpreter (-c pass)", "interpreter (start only)"]
    assert names == expect
    assert any("interpreter rows:" in n for n in run["notes"])
    for row in run["rows"]:
        if row["name"].startswith("ocirun"):
            assert "na" not in row, row
        if "na" in row:
            continue  # another runtime failing here is reported, not fatal
        _timed(row)
        assert row["n"] == 3
        assert row["user_ms"] >= 0 and row["sys_ms"] >= 0
    ratios = run["ratios"]["no seccomp"]
    timed = [row for row in run["rows"] if row["group"] == "no seccomp" and "median_ms" in row]
    if len(timed) > 1:
        a, b = timed[0], timed[1]
        assert abs(ratios[a["name"]][b["name"]] - a["median_ms"] / b["median_ms"]) < 0.01
    # ocirun's share: its median minus the interpreter's, next to the whole run of
    # the runtime it is compared with
    med = {row["name"]: row.get("median_ms") for row in timed}
    for share in run["shares"].get("no seccomp", []):
        assert share["row"].startswith("ocirun")
        assert abs(share["share_ms"] - (med[share["row"]] - med["interpreter (-c pass)"])) < 0.01
        assert share["against_ms"] == med[share["against"]]
    if "runc" in med:
        assert [s["against"] for s in run["shares"]["no seccomp"]][0] == "runc"
    # the temp bundle and state roots are gone
    assert not [n for n in set(os.listdir("/tmp")) - before if n.startswith("ocirun-bench-")]


def test_bench_usage_errors():
    for args, msg in ((["--only", "bogus"], "unknown section"),
                      (["--runs", "0"], "at least 1"),
                      (["--runtime", "nopath"], "NAME=PATH"),
                      (["--plot", "x.svg", "--only", "ns"], "include `run`")):
        r = subprocess.run([OCIRUN, "bench", *args], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        assert msg in r.stderr, r.stderr


@pytest.mark.skipif(kernel.clone_vm is None,
                    reason="scripts/floor.py needs ocirun._sys clone_vm (x86_64, glibc)")
def test_floor_script_runs_the_container(tmp_path):
    """scripts/floor.py, the README's lower bound, still runs a bench bundle's
    container: its /bin/true's exit status is the script's."""
    need_root()
    bench_bundle.make_rootfs(str(tmp_path / "rootfs"))
    bench_bundle.write_config(str(tmp_path), bench_bundle.config())
    floor = [sys.executable, "-I", "-S", f"{REPO}/scripts/floor.py"]
    r = subprocess.run(floor, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    # and its failures show: without /bin/true in the rootfs the execve fails
    (tmp_path / "rootfs" / "bin" / "true").unlink()
    r = subprocess.run(floor, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
