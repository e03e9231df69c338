#!/usr/bin/python3
"""ocirun with its own interpreter against Debian's python3, side by side: the figures of
docs/interpreter.md. Run as root from the checkout, on a quiet machine:

    scripts/measure-interpreter.py [--runs 100] [--out DIR] [--only SECTION,...]

It installs two prefixes under DIR (default /var/tmp/ocirun-measure): `debian`
(`./install.sh --no-demo`) and `built` (`./install.sh --no-demo --build-interpreter`,
cached), then measures with hyperfine -N (every command of a section in one hyperfine
run, --runs runs each after 10 warm-up runs, medians) and perf stat (page faults per
start, --runs runs):

  interp  the interpreters alone: `-I -S -c pass` and `-I -S` ending in posix._exit;
  steps   the floor of each step on the smallest verb (`state` of an unknown id):
          Debian's python3 with the bundle (today's launcher), the built interpreter
          with the same bundle and launcher, the built one with ocirun frozen in;
  run     `run` of /bin/true in the bench bundle inside a private cgroup2 mount
          namespace (--cgroup-manager=disabled): ocirun with podman's seccomp profile
          (its compiled program cached by the warm-up runs) against crun without seccomp;
  verbs   `create`+`start`, `state`, `delete` on the host's cgroups against runc
          (hyperfine --prepare makes the container each verb needs);
  podman  `podman run --rm /bin/true`, ocirun (built) against runc, 30 runs alternating
          (tests/engines/bench_engines.py --interleaved).
--variants pgo0-lto0-pie1,pgo0-lto0-pie0,pgo1-lto0-pie0 also installs those builds of
the interpreter (OCIRUN_PGO, OCIRUN_LTO, OCIRUN_PIE of interpreter/build.sh; each
cached in a tree of its own, the first build of each takes minutes) and adds their
rows to `interp` and `steps`: the floor of each step of the build.
Prints one table per section and writes DIR/results.json (and hyperfine's exports)."""
import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))
SHARED = os.environ.get("OCIRUN_SHARED", os.path.join(os.path.dirname(REPO), "shared"))
DEBIAN = "/usr/bin/python3"
START_ONLY = "import posix; posix._exit(0)"


def sh(*argv, **kw):
    return subprocess.run(argv, check=True, **kw)


def install(out, rebuild, variants=()):
    prefixes = {}
    builds = [("debian", [], {}), ("built", ["--build-interpreter"], {})]
    for v in variants:
        pgo, lto, pie = (part[-1] for part in v.split("-"))
        builds.append((v, ["--build-interpreter"],
                       {"OCIRUN_PGO": pgo, "OCIRUN_LTO": lto, "OCIRUN_PIE": pie}))
    for name, args, env in builds:
        prefix = os.path.join(out, name)
        if rebuild or not os.path.exists(f"{prefix}/bin/ocirun"):
            sh("./install.sh", "--no-demo", *args, cwd=REPO,
               env=dict(os.environ, PREFIX=prefix, **env), stdout=subprocess.DEVNULL)
        prefixes[name] = prefix
    with open(f"{prefixes['built']}/bin/ocirun", "rb") as f:
        if f.read(2) == b"#!":
            sys.exit("measure: the built interpreter was not installed (its self-check failed?)")
    return prefixes


def hyperfine(out, tag, cmds, runs, prepare=None, ignore=False, wrap=None):
    """cmds: [(name, argv)] -> {name: median ms}; one hyperfine run for all of them."""
    export = os.path.join(out, f"{tag}.json")
    argv = ["hyperfine", "-N", "-w", "10", "-r", str(runs), "--export-json", export,
            "--style", "basic"]
    if ignore:
        argv.append("-i")
    for name, cmd in cmds:
        argv += ["-n", name]
        if prepare:
            argv += ["--prepare", prepare[name]]
    argv += [shlex.join(cmd) for _, cmd in cmds]
    if wrap:
        argv = wrap(argv)
    sh(*argv, stdout=subprocess.DEVNULL)
    with open(export) as f:
        results = json.load(f)["results"]
    return {r["command"]: {"median": r["median"] * 1e3, "mean": r["mean"] * 1e3,
                           "q1": _q(r["times"], 0.25) * 1e3, "q3": _q(r["times"], 0.75) * 1e3,
                           "user": statistics.median([u * 1e3 for u in r.get("user_times", [r["user"]])]),
                           "system": statistics.median([s * 1e3 for s in r.get("system_times", [r["system"]])])}
            for r in results}


def _q(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def page_faults(cmd, runs):
    r = subprocess.run(["perf", "stat", "-x", ",", "-e", "page-faults", "-r", str(runs), "--", *cmd],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in r.stderr.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2].startswith("page-faults"):
            return float(fields[0])
    return None


def table(title, rows, faults=None):
    print(f"\n{title}")
    print(f"{'':46} {'median':>8} {'q1-q3':>13} {'user':>6} {'sys':>6}" + ("  faults" if faults else ""))
    for name, r in rows.items():
        line = (f"{name:46} {r['median']:8.2f} {r['q1']:6.2f}-{r['q3']:<6.2f} {r['user']:6.2f} "
                f"{r['system']:6.2f}")
        if faults and faults.get(name) is not None:
            line += f"  {faults[name]:6.0f}"
        print(line)


def bundles(out):
    from support import make_rootfs
    made = {}
    rootfs = os.path.join(out, "rootfs")
    if not os.path.isdir(rootfs):
        make_rootfs(rootfs)
    for name, fixture in (("seccomp", "bench-config.json"), ("noseccomp", "bench-config-noseccomp.json")):
        path = os.path.join(out, f"bundle-{name}")
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(SHARED, "fixtures", fixture)) as f:
            cfg = json.load(f)
        cfg["root"]["path"] = rootfs
        cfg["process"]["args"] = ["/bin/true"]
        cfg["process"]["terminal"] = False
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(cfg, f)
        made[name] = path
        # for --cgroup-manager=disabled (crun's only mode on this host): no limits, which
        # need a cgroup (ocirun refuses them there, crun drops them)
        res = cfg["linux"].get("resources", {})
        cfg["linux"]["resources"] = {"devices": res["devices"]} if "devices" in res else {}
        path = os.path.join(out, f"bundle-{name}-nocgroup")
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(cfg, f)
        made[name + "-nocgroup"] = path
    return made


def own_bundle(bundle, name):
    """A copy of bundle's config with an absolute cgroupsPath of its own: runc makes a
    relative one (or none) under its own cgroup, which may be a service's of the machine."""
    path = f"{bundle}-{name}"
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(bundle, "config.json")) as f:
        cfg = json.load(f)
    cfg["linux"]["cgroupsPath"] = f"/ocirun-measure-{name}"
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f)
    return path


def private_cgroup2(argv):
    script = ("umount -R /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec "
              + shlex.join(argv))
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--out", default="/var/tmp/ocirun-measure")
    ap.add_argument("--only", default="interp,steps,run,verbs,podman")
    ap.add_argument("--reinstall", action="store_true", help="install the prefixes again")
    ap.add_argument("--variants", default="",
                    help="more builds to compare, e.g. pgo0-lto0-pie0,pgo1-lto0-pie0")
    a = ap.parse_args()
    only = set(a.only.split(","))
    variants = [v for v in a.variants.split(",") if v]
    os.makedirs(a.out, exist_ok=True)
    p = install(a.out, a.reinstall, variants)
    deb, built = p["debian"], p["built"]
    built_py = f"{built}/lib/ocirun/python3"
    results = {}
    root = os.path.join(a.out, "root")
    runs = a.runs

    if "interp" in only:
        cmds = [("debian python3 -I -S -c pass", [DEBIAN, "-I", "-S", "-c", "pass"]),
                ("built python3 -I -S -c pass", [built_py, "-I", "-S", "-c", "pass"]),
                ("debian python3 -I -S, posix._exit", [DEBIAN, "-I", "-S", "-c", START_ONLY]),
                ("built python3 -I -S, posix._exit", [built_py, "-I", "-S", "-c", START_ONLY])]
        for v in variants:
            cmds += [(f"{v} python3 -I -S -c pass", [f"{p[v]}/lib/ocirun/python3", "-I", "-S", "-c", "pass"]),
                     (f"{v} python3 -I -S, posix._exit", [f"{p[v]}/lib/ocirun/python3", "-I", "-S",
                                                           "-c", START_ONLY])]
        rows = hyperfine(a.out, "interp", cmds, runs)
        faults = {name: page_faults(cmd, runs) for name, cmd in cmds}
        table("interpreter start (ms; page faults per start)", rows, faults)
        results["interp"] = {"times": rows, "page_faults": faults}

    if "steps" in only:
        state = ["--root", root, "state", "nosuch"]
        cmds = [("debian python3 + bundle (launcher)", [f"{deb}/bin/ocirun", *state]),
                ("built python3 + the same bundle", [built_py, "-I", "-S", f"{deb}/bin/ocirun", *state]),
                ("built, ocirun frozen in", [f"{built}/bin/ocirun", *state])]
        cmds += [(f"{v}, ocirun frozen in", [f"{p[v]}/bin/ocirun", *state]) for v in variants]
        rows = hyperfine(a.out, "steps", cmds, runs, ignore=True)
        faults = {name: page_faults(cmd, runs) for name, cmd in cmds}
        table("`state <unknown id>`, step by step (ms; page faults)", rows, faults)
        results["steps"] = {"times": rows, "page_faults": faults}

    b = bundles(a.out) if only & {"run", "verbs"} else None
    if "run" in only:
        cr, orr = os.path.join(a.out, "crun-root"), os.path.join(a.out, "ocirun-root")
        cmds = [("crun, no seccomp", ["crun", "--root", cr, "--cgroup-manager=disabled", "run",
                                      "-b", b["noseccomp-nocgroup"], "c1"]),
                ("ocirun (debian), seccomp cached", [f"{deb}/bin/ocirun", "--root", orr,
                                                     "--cgroup-manager=disabled", "run", "-b",
                                                     b["seccomp-nocgroup"], "o1"]),
                ("ocirun (built), seccomp cached", [f"{built}/bin/ocirun", "--root", orr,
                                                    "--cgroup-manager=disabled", "run", "-b",
                                                    b["seccomp-nocgroup"], "o2"]),
                ("ocirun (built), no seccomp", [f"{built}/bin/ocirun", "--root", orr,
                                                "--cgroup-manager=disabled", "run", "-b",
                                                b["noseccomp-nocgroup"], "o3"])]
        rows = hyperfine(a.out, "run", cmds, runs, wrap=private_cgroup2)
        table("`run` /bin/true, private cgroup2 namespace (ms)", rows)
        crun = rows["crun, no seccomp"]["median"]
        for name in rows:
            if name.startswith("ocirun"):
                print(f"  {name} / crun: {rows[name]['median'] / crun:.2f}x")
        results["run"] = {"times": rows}

    if "verbs" in only:
        rr, orr = os.path.join(a.out, "runc-root"), os.path.join(a.out, "verbs-root")
        rt = {"runc": ["runc", "--root", rr], "ocirun (debian)": [f"{deb}/bin/ocirun", "--root", orr],
              "ocirun (built)": [f"{built}/bin/ocirun", "--root", orr]}
        results["verbs"] = {}
        for verb in ("start", "state", "delete"):
            cmds, prepare = [], {}
            for name, base in rt.items():
                cid = f"v-{name.split()[0]}-{name.split()[-1].strip('()')}"
                bundle = own_bundle(b["noseccomp"], cid)
                q = shlex.join
                make = f"{q(base)} delete -f {cid} >/dev/null 2>&1; {q(base)} create -b {bundle} {cid}"
                if verb == "delete":
                    make += f" && {q(base)} start {cid} && sleep 0.01"
                prepare[name] = shlex.join(["sh", "-c", make])
                cmds.append((name, [*base, verb, cid]))
            rows = hyperfine(a.out, f"verb-{verb}", cmds, runs, prepare=prepare)
            table(f"`{verb}` (host cgroups, ms)", rows)
            results["verbs"][verb] = rows
            for name, base in rt.items():
                cid = f"v-{name.split()[0]}-{name.split()[-1].strip('()')}"
                subprocess.run([*base, "delete", "-f", cid], capture_output=True)

    if "podman" in only:
        env = dict(os.environ, OCIRUN_COMMAND=f"{built}/bin/ocirun")
        r = subprocess.run([DEBIAN, os.path.join(REPO, "tests", "engines", "bench_engines.py"),
                            "--interleaved", "-r", "30", "--json", a.out], env=env,
                           capture_output=True, text=True)
        print("\npodman run --rm /bin/true and ctr run --rm, 30 runs alternating (ms)")
        print(r.stdout.rsplit("\n\n", 1)[-1] if r.returncode == 0 else r.stderr)
        results["podman"] = r.stdout

    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"\nresults: {a.out}/results.json")


if __name__ == "__main__":
    main()
