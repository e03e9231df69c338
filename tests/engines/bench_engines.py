#!/usr/bin/python3
"""Start-up through the engines, ocirun vs runc, side by side in one hyperfine run each:

    podman run --rm IMG /bin/true      (--runtime ocirun / --runtime runc)
    ctr run --rm IMG ID /bin/true      (--runc-binary ocirun / --runc-binary runc)

Uses the same private podman storage and private containerd as the engine tests
(tests/engine_support.py), prints the exact commands and the medians, and leaves nothing
behind. Needs root, hyperfine, podman, containerd.

With --interleaved the commands alternate run by run (time.perf_counter around each
subprocess), which spreads the noise of a shared machine evenly over both runtimes.

usage: tests/engines/bench_engines.py [-r RUNS] [-w WARMUP] [--json DIR] [--interleaved]"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from engine_support import IMAGE, RUNC, RUNTIME, Containerd, Podman, make_oci_archive  # noqa: E402
from support import make_rootfs  # noqa: E402


def interleaved(cmds, runs, warmup, export, env):
    times = {name: [] for name, _ in cmds}
    for i in range(warmup + runs):
        for name, cmd in cmds:
            t0 = time.perf_counter()
            r = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            dt = time.perf_counter() - t0
            if r.returncode != 0:
                raise SystemExit(f"{name} failed: {r.stderr.decode()}")
            if i >= warmup:
                times[name].append(dt * 1000)
    with open(export, "w") as f:
        json.dump(times, f)
    return [(name, statistics.median(t), statistics.mean(t), statistics.stdev(t))
            for name, t in times.items()]


def hyperfine(cmds, runs, warmup, export, env):
    argv = ["hyperfine", "-N", "-w", str(warmup), "-r", str(runs), "--export-json", export]
    for name, cmd in cmds:
        argv += ["-n", name, shlex.join(cmd)]
    subprocess.run(argv, env=env, check=True)
    with open(export) as f:
        res = json.load(f)["results"]
    return [(r["command"], r["median"] * 1000, r["mean"] * 1000, r["stddev"] * 1000) for r in res]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-r", "--runs", type=int, default=30)
    ap.add_argument("-w", "--warmup", type=int, default=3)
    ap.add_argument("--json", default=None, help="keep hyperfine's JSON exports here")
    ap.add_argument("--interleaved", action="store_true",
                    help="alternate the commands run by run instead of hyperfine")
    a = ap.parse_args()
    bench = interleaved if a.interleaved else hyperfine
    base = tempfile.mkdtemp(prefix="ocirun-bench-engines-")
    out = a.json or base
    rows = []
    try:
        make_rootfs(os.path.join(base, "rootfs"))
        p = Podman(os.path.join(base, "podman"))
        try:
            r = p.import_image(os.path.join(base, "rootfs"))
            assert r.returncode == 0, r.stderr
            run = ["run", "--rm", *p.run_args(), IMAGE, "/bin/true"]
            cmds = [("podman+ocirun", p.argv(*run, runtime="ocirun")),
                    ("podman+runc", p.argv(*run, runtime=RUNC))]
            for name, cmd in cmds:
                print(f"{name}: CONTAINERS_CONF={p.conf} CONTAINERS_STORAGE_CONF={p.storage_conf} "
                      f"{shlex.join(cmd)}")
            rows += bench(cmds, a.runs, a.warmup, os.path.join(out, "podman.json"), p.env)
        finally:
            p.teardown()
        c = Containerd(os.path.join(base, "containerd"))
        try:
            err = c.start()
            assert err is None, err
            archive = make_oci_archive(os.path.join(base, "rootfs"), os.path.join(base, "bb.tar"))
            r = c.ctr("images", "import", archive)
            assert r.returncode == 0, r.stderr
            cmds = [("ctr+ocirun", c.run_argv(RUNTIME, "--rm", IMAGE, "bench-o", "/bin/true")),
                    ("ctr+runc", c.run_argv(RUNC, "--rm", IMAGE, "bench-r", "/bin/true"))]
            for name, cmd in cmds:
                print(f"{name}: {shlex.join(cmd)}")
            rows += bench(cmds, a.runs, a.warmup, os.path.join(out, "ctr.json"), None)
        finally:
            c.teardown()
    finally:
        subprocess.run(["rm", "-rf", base])
    print(f"\n{'what':16} {'median ms':>10} {'mean ms':>10} {'stddev':>8}")
    for name, med, mean, sd in rows:
        print(f"{name:16} {med:10.1f} {mean:10.1f} {sd:8.1f}")


if __name__ == "__main__":
    main()
