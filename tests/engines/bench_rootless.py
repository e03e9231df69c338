#!/usr/bin/python3
"""Rootless podman start-up, ocirun vs runc, as an ordinary user:

    podman --runtime ocirun run --rm IMG /bin/true
    podman --runtime runc   run --rm IMG /bin/true

in the rootless session of the tests (tests/rootless_support.py: the user `ocirun-rl`,
ocirun installed by install.sh into the session's directory, vfs storage, no network,
podman's default seccomp profile). The runs alternate one by one (interleaved), timed by
a loop that runs as the user itself (time.perf_counter around each podman command), so
that the noise of a shared machine falls on both runtimes alike. Prints the medians,
means and standard deviations, and removes the session at the end. Needs root (to make
the user), podman, runc, uidmap.

usage: tests/engines/bench_rootless.py [-r RUNS] [-w WARMUP] [--json FILE]"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from rootless_support import IMAGE, RUNC, Session, ensure_user, missing_tools  # noqa: E402

LOOP = """\
import json, statistics, subprocess, sys, time
cmds, runs, warmup = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
times = {name: [] for name, _ in cmds}
for i in range(warmup + runs):
    for name, cmd in cmds:
        t0 = time.perf_counter()
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
        dt = time.perf_counter() - t0
        if r.returncode != 0:
            sys.exit(f"{name} failed: {r.stderr.decode()}")
        if i >= warmup:
            times[name].append(dt * 1000)
print(json.dumps(times))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-r", "--runs", type=int, default=30)
    ap.add_argument("-w", "--warmup", type=int, default=3)
    ap.add_argument("--json", help="write every time (ms) there")
    a = ap.parse_args()
    missing = missing_tools()
    if missing:
        sys.exit(f"not installed: {', '.join(missing)}")
    got = ensure_user()
    if isinstance(got, str):
        sys.exit(got)
    s = Session(*got, ocirun=os.environ.get("OCIRUN_UNDER_TEST"))
    try:
        tar = subprocess.Popen(["tar", "-C", s.rootfs, "-c", "."], stdout=subprocess.PIPE)
        r = subprocess.run(s.argv(["podman", "import", "-q", "-", IMAGE]), stdin=tar.stdout,
                           env=s.env, cwd=s.home, capture_output=True, text=True)
        tar.stdout.close()
        tar.wait()
        if r.returncode != 0:
            sys.exit(f"podman import: {r.stderr}")
        cmds = [(name, ["podman", "--runtime", path, "run", "--rm", IMAGE, "/bin/true"])
                for name, path in (("ocirun", s.ocirun), ("runc", RUNC))]
        for name, cmd in cmds:
            print(f"{name}: setpriv --reuid={s.uid} ... {' '.join(cmd)}")
        r = s.run(["/usr/bin/python3", "-c", LOOP, json.dumps(cmds), str(a.runs),
                   str(a.warmup)], timeout=3600)
        if r.returncode != 0:
            sys.exit(r.stderr)
        times = json.loads(r.stdout)
    finally:
        s.teardown()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(times, f)
    import statistics
    print(f"\n{a.runs} interleaved runs each (after {a.warmup} warm-up rounds), ms:")
    print("| runtime | median | mean | stddev | min | max |")
    print("|---|---|---|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {statistics.median(t):.1f} | {statistics.mean(t):.1f} | "
              f"{statistics.stdev(t):.1f} | {min(t):.1f} | {max(t):.1f} |")
    o, rc = statistics.median(times["ocirun"]), statistics.median(times["runc"])
    print(f"\nocirun's median / runc's: {o / rc:.3f} ({(o - rc):+.1f} ms)")


if __name__ == "__main__":
    main()
