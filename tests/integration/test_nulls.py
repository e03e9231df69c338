"""JSON null in config.json, process.json and `update --resources`: null means absent for
every optional field (as runc and crun read it), and a required field that is null is one
line naming it. The cases come from the runtime-spec schema (tests/spec_schema.py): every
property path of config.json, each set to null in a config that holds it, run as a real
container and compared with the same config without it (exit status, what the container
sees, what ocirun prints).

The container runs a probe that prints what the config decides: ids, caps, rlimits,
environment, mounts, devices, the cgroup limits it sees, the maps and time offsets, and
whether a seccomp rule stops mkdir."""
import json
import subprocess

from spec_schema import PATHS, REQUIRED_BY_SCHEMA, field, variants
from support import OCIRUN, base_config

PROBE = r"""
id; hostname; umask; pwd; env | sort
grep -E '^(Cap|NoNewPrivs|Seccomp|Groups|Uid|Gid)' /proc/self/status
ulimit -a
cat /proc/self/oom_score_adj /proc/self/uid_map /proc/self/gid_map /proc/self/timens_offsets 2>&1
cat /proc/self/mounts
stat -c '%n %F %t:%T %a %u:%g' /dev/* 2>&1
cd /sys/fs/cgroup && cat pids/pids.max memory/memory.limit_in_bytes memory/memory.swappiness \
    cpu/cpu.shares cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us blkio/blkio.weight \
    devices/devices.list cpuset/cpuset.cpus 2>&1; cd /
mkdir /tmp/probe-dir 2>&1 && rmdir /tmp/probe-dir; echo end
"""

class Runner:
    """Runs configs as containers in one bundle (one state root, so the seccomp cache is
    shared) and remembers outcomes by config, since many cases share their absent side."""

    def __init__(self, bundle):
        self.bundle = bundle
        self.seen = {}
        self.runs = 0

    def outcome(self, doc):
        text = json.dumps(doc, sort_keys=True)
        if text not in self.seen:
            self.seen[text] = self._run(text)
        return self.seen[text]

    def _run(self, text):
        b = self.bundle
        with open(f"{b.path}/config.json", "w") as f:
            f.write(text)
        cid = b.new_id()
        self.runs += 1
        r = subprocess.run([OCIRUN, "--root", b.root, "run", "-b", b.path, cid],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=60)
        d = subprocess.run([OCIRUN, "--root", b.root, "delete", "--force", cid],
                           capture_output=True, text=True, timeout=30)
        assert d.returncode == 0, d.stderr
        return r.returncode, r.stdout.replace(cid, "CID"), r.stderr.replace(cid, "CID")


def probe_config():
    return base_config(["/bin/sh", "-c", PROBE])


def test_schema_paths_cover_the_document():
    """The walk below is as wide as the schema: a check that it read the files."""
    optional = [p for p, req, _, _ in PATHS if not req]
    assert len(PATHS) > 300 and len(REQUIRED_BY_SCHEMA) > 60 and len(optional) > 250
    assert ("linux", "resources", "devices") in {p for p, _, _, _ in PATHS}


def test_null_optional_field_runs_as_absent(bundle):
    """Every optional property path of the schema: null runs exactly as absent."""
    runner = Runner(bundle)
    base = probe_config()
    differ, ran, refused = [], [], []
    for path, required, _, _ in PATHS:
        if required:
            continue
        absent, null = variants(path, base)
        a = runner.outcome(absent)
        b = runner.outcome(null)
        if a != b:
            differ.append((field(path), a, b))
        (ran if a[0] == 0 else refused).append(field(path))
    print(f"{len(ran) + len(refused)} optional paths, {runner.runs} containers; absent ran "
          f"for {len(ran)}, was refused for {len(refused)} (the same for null)")
    assert not differ, "\n".join(f"{p}:\n  absent {a}\n  null   {b}" for p, a, b in differ[:5])
    # The absent side runs for almost every path; the few refused are refused on this host
    # with or without the field (e.g. a cgroup controller it lacks), and must stay few.
    assert len(ran) > 0.8 * (len(ran) + len(refused)), refused


def test_null_required_field_is_one_line(bundle):
    """Every required property path of the schema: null is one line naming the field,
    exit status 1, nothing left behind."""
    runner = Runner(bundle)
    base = probe_config()
    wrong = []
    for path, required, _, _ in PATHS:
        if not required:
            continue
        _, null = variants(path, base)
        code, out, err = runner.outcome(null)
        want = f"ocirun: {field(path)}: must not be null"
        if code != 1 or err.strip() != want:
            wrong.append((field(path), code, err))
    assert not wrong, wrong


PROCESS_PATHS = [(p[1:], req) for p, req, _, _ in PATHS if p[0] == "process" and len(p) > 1]


def test_null_in_exec_process_json_runs_as_absent(bundle):
    """exec --process: every property path of process, null against absent (optional) or
    one line naming it (required), in a running container."""
    cid = bundle.detach(["sleep", "300"])
    base = probe_config()["process"]
    seen = {}

    def execute(proc):
        text = json.dumps(proc, sort_keys=True)
        if text not in seen:
            with open(f"{bundle.path}/process.json", "w") as f:
                f.write(text)
            r = subprocess.run([OCIRUN, "--root", bundle.root, "exec", "--process",
                                f"{bundle.path}/process.json", cid],
                               stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=60)
            seen[text] = (r.returncode, r.stdout, r.stderr)
        return seen[text]

    differ, wrong, ran = [], [], 0
    for path, required in PROCESS_PATHS:
        absent, null = variants(("process",) + path, {"process": base})
        b = execute(null["process"])
        if required:
            want = f"ocirun: process.{field(path)}: must not be null"
            if b[0] != 1 or b[2].strip() != want:
                wrong.append((field(path), b))
            continue
        a = execute(absent["process"])
        if a != b:
            differ.append((field(path), a, b))
        ran += a[0] == 0
    print(f"{len(PROCESS_PATHS)} process paths, {len(seen)} execs, absent ran for {ran}")
    assert ran > 0.8 * sum(1 for _, req in PROCESS_PATHS if not req)
    assert not differ, "\n".join(f"{p}:\n  absent {a}\n  null   {b}" for p, a, b in differ[:5])
    assert not wrong, wrong
    assert bundle.state(cid)["status"] == "running"


RESOURCE_PATHS = [(p[2:], req) for p, req, _, _ in PATHS
                  if p[:2] == ("linux", "resources") and len(p) > 2]
CGROUP_FILES = ("pids/pids.max", "memory/memory.limit_in_bytes", "memory/memory.swappiness",
                "cpu/cpu.shares", "cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us",
                "blkio/blkio.weight", "devices/devices.list", "cpuset/cpuset.cpus")


def test_null_in_update_resources_as_absent(bundle):
    """update --resources: every property path of linux.resources, null against absent
    (the same exit status, message and cgroup values seen from inside) or one line naming
    it (required)."""
    cid = bundle.detach(["sleep", "300"])

    def update(res):
        r = subprocess.run([OCIRUN, "--root", bundle.root, "update", "--resources", "-", cid],
                           input=json.dumps(res), capture_output=True, text=True, timeout=60)
        look = subprocess.run([OCIRUN, "--root", bundle.root, "exec", cid, "sh", "-c",
                               "cd /sys/fs/cgroup && cat " + " ".join(CGROUP_FILES) + " 2>&1"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60)
        return r.returncode, r.stderr, look.stdout

    differ, wrong, ran = [], [], 0
    for path, required in RESOURCE_PATHS:
        absent, null = variants(("linux", "resources") + path, {"linux": {"resources": {}}})
        b = update(null["linux"]["resources"])
        if required:
            want = f"ocirun: linux.resources.{field(path)}: must not be null"
            if b[0] != 1 or b[1].strip() != want:
                wrong.append((field(path), b))
            continue
        a = update(absent["linux"]["resources"])
        b = update(null["linux"]["resources"])  # after the absent one: the same state
        if a != b:
            differ.append((field(path), a, b))
        ran += a[0] == 0
    print(f"{len(RESOURCE_PATHS)} resources paths, absent updated for {ran}")
    assert ran > 0.8 * sum(1 for _, req in RESOURCE_PATHS if not req)
    assert not differ, "\n".join(f"{p}:\n  absent {a}\n  null   {b}" for p, a, b in differ[:5])
    assert not wrong, wrong
    assert bundle.state(cid)["status"] == "running"
