"""Full `run` of /bin/true in the bench bundle: ocirun against every other runtime
found, in rounds of short blocks (5 runs of ocirun, 5 of runc, 5 of crun, then again)
so that the machine's noise falls on all of them alike. Not alternated run by run: on
the machines measured, a runtime started right after another program's process exited
was slower by up to 10 ms (crun's median went from 7.9 to 18 ms alternated with a bare
`python3 -c pass`), which flatters whichever runtime goes first. Each block starts with
one run that is not counted, so every counted run follows a run of the same runtime.
Each run is a subprocess: wall time around posix_spawn..wait4, user and sys time from
wait4's rusage (which includes the container's processes the runtime reaped).

crun 1.8 refuses hybrid cgroup hosts, so there it runs inside a private mount
namespace with cgroup2 mounted at /sys/fs/cgroup and --cgroup-manager=disabled;
ocirun gets a row in that same condition, so that one pair compares like with like.
That namespace is made once by a helper process, which spawns the runs it is sent;
its set-up is not in any figure.

The interpreter ocirun's launcher starts is measured alone in the same blocks, twice:
`-I -S -c pass` (its start and its finalization: the baseline the start-up target
names) and ending in `posix._exit(0)` (its start only: ocirun skips the finalization
the same way). ocirun's median minus the first is "ocirun's share", set next to the
whole run of the runtime it is compared with (shares())."""
import json
import os
import shutil
import struct
import tempfile
import time

from ocirun.bench import bundle as bench_bundle
from ocirun.bench.report import median, ratios, summarize

DEFAULT_RUNS = 30
BLOCK = 5               # runs of one runtime in a row (module docstring)
PRIVATE = "private cgroup2"
NO_CGROUP = "-nocgroup"  # our bundle's config without its pids limit, for PRIVATE rows


class Runtime:
    __slots__ = ("name", "path", "private", "label", "root", "failed", "samples", "ids")

    def __init__(self, name, path, private=False):
        self.name = name
        self.path = path
        self.private = private
        self.label = f"{name} ({PRIVATE})" if private else name
        self.root = None
        self.failed = None
        self.samples = {}  # variant -> [(wall ms, user ms, sys ms)]
        self.ids = []

    def argv(self, bundle, cid):
        g = [self.path, "--root", self.root]
        if self.private:
            g.append("--cgroup-manager=disabled")
            if os.path.isdir(bundle + NO_CGROUP):  # (_bundles)
                bundle += NO_CGROUP
        return g + ["run", "--bundle", bundle, cid]


class Interpreter(Runtime):
    """A row for the interpreter alone: a fixed command, no bundle, no container."""
    __slots__ = ("command",)

    def __init__(self, name, command):
        super().__init__(name, command[0])
        self.command = command

    def argv(self, bundle, cid):
        return list(self.command)


INTERPRETER_PASS = "interpreter (-c pass)"
INTERPRETER_START = "interpreter (start only)"


def launcher_interpreter(ocirun_path):
    """The interpreter named by the launcher's `#!` line; for ocirun's own interpreter
    (a program, not a script: install.sh --build-interpreter) the same program run as
    python3 (PREFIX/lib/ocirun/python3); or None (not a Python)."""
    try:
        with open(ocirun_path, "rb") as f:
            first = f.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        own = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(ocirun_path))),
                           "lib", "ocirun", "python3")
        return own if first.startswith(b"\x7fELF") and os.access(own, os.X_OK) else None
    words = first[2:].decode(errors="replace").split()
    if not words or not os.path.basename(words[0]).startswith("python"):
        return None
    return words[0] if os.access(words[0], os.X_OK) else None


def interpreter_rows(ocirun_path):
    interp = launcher_interpreter(ocirun_path)
    if interp is None:
        return []
    return [Interpreter(INTERPRETER_PASS, [interp, "-I", "-S", "-c", "pass"]),
            Interpreter(INTERPRETER_START,
                        [interp, "-I", "-S", "-c", "import posix; posix._exit(0)"])]


def shares(group):
    """[(ocirun row, its share: its median minus the interpreter's -c pass, the row
    compared with, that row's median)] of one variant's rows: ocirun with runc,
    ocirun (private cgroup2) with crun in the same condition (or crun, on a host
    where crun runs like ocirun)."""
    med = {r["name"]: r["median_ms"] for r in group if r.get("median_ms") is not None}
    base = med.get(INTERPRETER_PASS)
    if base is None:
        return []
    pairs = (("ocirun", "runc"), ("ocirun", "crun"),
             (f"ocirun ({PRIVATE})", f"crun ({PRIVATE})"))
    return [(ours, round(med[ours] - base, 4), other, med[other])
            for ours, other in pairs if ours in med and other in med]


def spawn_timed(argv, env, err_path):
    """Run argv with stdin/stdout on /dev/null and stderr to err_path; returns
    (wall ns, user s, sys s, wait status)."""
    fa = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
          (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
          (os.POSIX_SPAWN_OPEN, 2, err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)]
    t0 = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=fa)
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter_ns() - t0
    return wall, ru.ru_utime, ru.ru_stime, status


class HostSpawner:
    def run(self, argv, env, err_path):
        return spawn_timed(argv, env, err_path)

    def close(self):
        pass


class PrivateCgroup2Spawner:
    """A forked helper in a private mount namespace where /sys/fs/cgroup is a fresh
    cgroup2 mount; it spawns what it is sent and sends back the timings."""

    def __init__(self):
        from ocirun import kernel
        req_r, self._req_w = os.pipe()
        self._res_r, res_w = os.pipe()
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the helper: never returns into the caller's code
            code = 1
            try:
                os.close(self._req_w)
                os.close(self._res_r)
                os.close(ready_r)
                try:
                    kernel.unshare(kernel.CLONE_NEWNS)
                    kernel.mount(None, "/", None, kernel.MS_REC | kernel.MS_PRIVATE)
                    kernel.umount2("/sys/fs/cgroup", kernel.MNT_DETACH)
                    kernel.mount("none", "/sys/fs/cgroup", "cgroup2")
                except OSError as e:
                    os.write(ready_w, f"{e.strerror}".encode())
                    raise
                os.write(ready_w, b"ok")
                os.close(ready_w)
                self._serve(req_r, res_w)
                code = 0
            finally:
                os._exit(code)
        os.close(req_r)
        os.close(res_w)
        os.close(ready_w)
        self.pid = pid
        msg = os.read(ready_r, 256)
        os.close(ready_r)
        if msg != b"ok":
            self.close()
            raise OSError(0, f"private cgroup2 namespace: {msg.decode() or 'helper died'}")

    @staticmethod
    def _serve(req_r, res_w):
        while True:
            head = os.read(req_r, 4)
            if len(head) < 4:
                return
            n, = struct.unpack("I", head)
            data = b""
            while len(data) < n:
                chunk = os.read(req_r, n - len(data))
                if not chunk:
                    return
                data += chunk
            req = json.loads(data)
            try:
                out = spawn_timed(req["argv"], req["env"], req["err"])
            except OSError as e:
                out = (0, 0.0, 0.0, -(e.errno or 1))
            os.write(res_w, struct.pack("qddq", *out))

    def run(self, argv, env, err_path):
        data = json.dumps({"argv": argv, "env": env, "err": err_path}).encode()
        os.write(self._req_w, struct.pack("I", len(data)) + data)
        res = b""
        while len(res) < 32:
            chunk = os.read(self._res_r, 32 - len(res))
            if not chunk:
                raise OSError(0, "private cgroup2 helper died")
            res += chunk
        wall, user, sys_, status = struct.unpack("qddq", res)
        if status < 0:
            raise OSError(-status, os.strerror(-status))
        return wall, user, sys_, status

    def close(self):
        if self._req_w is not None:
            os.close(self._req_w)
            os.close(self._res_r)
            self._req_w = None
            os.waitpid(self.pid, 0)


def default_ocirun(argv0):
    """The launcher that is running, if it is an executable file; else `ocirun` on PATH."""
    if argv0 and not argv0.endswith(".py") and os.path.isfile(argv0) and os.access(argv0, os.X_OK):
        return os.path.abspath(argv0)
    return shutil.which("ocirun")


def find_runtimes(ocirun_path, extra=(), cgroup_mode=None):
    """The runtimes to compare, in the order their blocks run."""
    if cgroup_mode is None:
        from ocirun.cgroups import detect
        cgroup_mode = detect()
    hybrid = cgroup_mode != "unified"
    out = [Runtime("ocirun", ocirun_path)]
    runc = shutil.which("runc")
    crun = shutil.which("crun")
    if runc:
        out.append(Runtime("runc", runc))
    if crun:
        out.append(Runtime("crun", crun, private=hybrid))
    if crun and hybrid:
        out.append(Runtime("ocirun", ocirun_path, private=True))
    for name, path in extra:
        out.append(Runtime(name, path))
    return out + interpreter_rows(ocirun_path)


def _last_line(path):
    try:
        with open(path, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def measure(runs=DEFAULT_RUNS, ocirun_path=None, extra=(), bundle_dir=None, profile=None,
            progress=None, waterfall=False):
    """The run section; with `waterfall`, also the per-phase timings of one ocirun run
    (OCIRUN_TIMINGS) under the key "phases"."""
    if not ocirun_path:
        raise OSError(0, "no ocirun to measure (pass --ocirun PATH)")
    runtimes = find_runtimes(ocirun_path, extra)
    work = tempfile.mkdtemp(prefix="ocirun-bench-")
    notes = []
    spawners = {False: HostSpawner()}
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    try:
        variants = _bundles(work, bundle_dir, profile, notes, progress)
        if any(r.private for r in runtimes):
            try:
                spawners[True] = PrivateCgroup2Spawner()
            except OSError as e:
                for r in runtimes:
                    if r.private:
                        r.failed = e.strerror
            notes.append(f"hybrid cgroups: crun refuses them, so `crun` runs in a {PRIVATE} "
                         "mount namespace with --cgroup-manager=disabled; "
                         f"`ocirun ({PRIVATE})` runs the same way for a like-for-like row")
        interp = [r for r in runtimes if isinstance(r, Interpreter)]
        if interp:
            notes.append(f"interpreter rows: {interp[0].path} -I -S, `-c pass` and "
                         "`-c 'import posix; posix._exit(0)'`, the interpreter ocirun's "
                         "launcher starts (its #! line)")
        for i, r in enumerate(runtimes):
            r.root = f"{work}/root{i}"
            os.makedirs(r.root, mode=0o700)
        err = f"{work}/stderr"
        seq = [0]

        def once(r, variant, path):
            seq[0] += 1
            cid = f"ocirun-bench-{os.getpid()}-{seq[0]}"
            r.ids.append(cid)
            wall, user, sys_, status = spawners[r.private].run(r.argv(path, cid), env, err)
            if status != 0:
                raise OSError(0, f"exit status {os.waitstatus_to_exitcode(status)}: "
                                 f"{_last_line(err)}")
            return wall / 1e6, user * 1e3, sys_ * 1e3

        # One warm-up run each (page cache, the seccomp cache): not counted.
        if progress:
            progress.phase("run: warm-up, one run per runtime")
        for variant, path in variants:
            for r in runtimes:
                if r.failed is None:
                    try:
                        once(r, variant, path)
                    except OSError as e:
                        r.failed = f"{variant}: {e.strerror}"
        done = 0
        while done < runs:
            n = min(BLOCK, runs - done)
            for variant, path in variants:
                for r in runtimes:
                    if r.failed is None:
                        try:
                            once(r, variant, path)  # the block's lead-in, not counted
                            for _ in range(n):
                                r.samples.setdefault(variant, []).append(once(r, variant, path))
                        except OSError as e:
                            r.failed = f"{variant}: {e.strerror}"
            done += n
            if progress:
                progress.count("run: runs (blocks of " + ", ".join(r.label for r in runtimes)
                               + ")", done, runs)
        phases = None
        if waterfall and runtimes[0].failed is None:
            phases = _phases(runtimes[0], variants[-1][1], env, work, notes)
        rows, ratio_groups, share_groups = [], {}, {}
        for variant, _ in variants:
            group = []
            for r in runtimes:
                s = r.samples.get(variant, [])
                if r.failed and len(s) < runs:
                    group.append({"name": r.label, "group": variant, "path": r.path,
                                  "na": f"failed: {r.failed}"})
                    continue
                group.append(summarize(r.label, [w for w, _, _ in s], group=variant,
                                       user_ms=median([u for _, u, _ in s]),
                                       sys_ms=median([k for _, _, k in s]), path=r.path))
            rows += group
            ratio_groups[variant] = ratios(group)
            for ours, share, other, whole in shares(group):
                share_groups.setdefault(variant, []).append(
                    {"row": ours, "share_ms": share, "against": other, "against_ms": whole})
                notes.append(f"{variant}: {ours} minus the interpreter (-c pass): "
                             f"{share:.2f} ms, against {other}'s whole run {whole:.2f} ms")
        what = f"of bundle {bundle_dir}" if bundle_dir else "of /bin/true (busybox bundle)"
        sec = {"title": f"full `run` {what}: {runs} runs each, in rounds of blocks of "
                        f"{BLOCK}; wall time per run",
               "runs": runs, "rows": rows, "ratios": ratio_groups, "shares": share_groups,
               "notes": notes}
        if phases is not None:
            sec["phases"] = phases
        return sec
    finally:
        _cleanup(runtimes, spawners, env, work)


def _bundles(work, bundle_dir, profile, notes, progress):
    """[(variant name, bundle path)]: the user's bundle, or ours without and (when the
    seccomp package and a profile are there) with the seccomp profile."""
    if bundle_dir:
        notes.append(f"bundle: {bundle_dir} (its own config.json)")
        return [("bundle " + os.path.basename(os.path.abspath(bundle_dir)),
                 os.path.abspath(bundle_dir))]
    if progress:
        progress.phase("run: building the busybox bundle")
    # A rootfs per bundle: runc refuses a rootfs that is a symlink.
    out = []
    plain = f"{work}/b-noseccomp"
    bench_bundle.make_rootfs(f"{plain}/rootfs")
    _write_configs(plain, None)
    out.append(("no seccomp", plain))
    import importlib.util
    if profile is None:
        notes.append("seccomp variant skipped: no seccomp profile (pass --profile FILE)")
    elif importlib.util.find_spec("ocirun.seccomp") is None:
        notes.append("seccomp variant skipped: ocirun's seccomp package is not installed")
    else:
        with_sc = f"{work}/b-seccomp"
        bench_bundle.make_rootfs(f"{with_sc}/rootfs")
        _write_configs(with_sc, profile)
        out.append(("seccomp profile", with_sc))
    notes.append(f"the {PRIVATE} rows run the same config without its pids limit: there is "
                 "no cgroup there to apply it (ocirun refuses a limit it cannot apply)")
    return out


def _write_configs(path, profile):
    """The bundle's config, and beside it (path + NO_CGROUP) the same without limits,
    whose root is the bundle's rootfs."""
    bench_bundle.write_config(path, bench_bundle.config(seccomp=profile))
    cfg = bench_bundle.config(seccomp=profile, limits=False)
    cfg["root"]["path"] = f"{path}/rootfs"
    os.makedirs(path + NO_CGROUP)
    bench_bundle.write_config(path + NO_CGROUP, cfg)


def _phases(r, path, env, work, notes):
    """One ocirun run with OCIRUN_TIMINGS=FILE: its per-phase table."""
    dest = f"{work}/timings.json"
    env = dict(env, OCIRUN_TIMINGS=dest)
    cid = f"ocirun-bench-{os.getpid()}-timings"
    r.ids.append(cid)
    try:
        _, _, _, status = spawn_timed(r.argv(path, cid), env, f"{work}/stderr")
        with open(dest) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        notes.append(f"per-phase timings not available: {e}")
        return None


def _cleanup(runtimes, spawners, env, work):
    """Delete what a failed run may have left, then the state roots and the bundle."""
    for r in runtimes:
        if r.root and os.path.isdir(r.root):
            left = [n for n in os.listdir(r.root) if n in r.ids]
            for cid in left:
                g = [r.path, "--root", r.root] + (["--cgroup-manager=disabled"] if r.private else [])
                try:
                    spawners.get(r.private, spawners[False]).run(
                        g + ["delete", "-f", cid], env, os.devnull)
                except OSError:
                    pass
    for s in spawners.values():
        s.close()
    shutil.rmtree(work, ignore_errors=True)
