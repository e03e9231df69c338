"""pause, resume, update, ps, stats/events: the operations that act on a running
container through its cgroup (the Manager persisted in state.json "cgroup")."""
import os

from ocirun.errors import OciError, StateError
from ocirun.lifecycle.state import status as status_of
from ocirun.state import load

NOT_RUNNING = "container not running"  # containerd and podman match this text


def _manager(st, what):
    """The container's cgroup manager; a clear error for a container created with
    --cgroup-manager=disabled, or rootless without a delegated cgroup v2 subtree (it
    has no cgroup of its own to act on)."""
    if not st.cgroup:
        raise OciError(f"cannot {what} container `{st.id}`: it has no cgroup "
                       "(created with --cgroup-manager=disabled, or rootless without a "
                       "delegated cgroup v2 subtree)")
    from ocirun.cgroups import from_dict
    return from_dict(st.cgroup)


def _live(root, cid):
    st = load(root, cid)
    status = status_of(st)
    if status in ("stopped", "creating"):
        raise StateError(NOT_RUNNING)
    return st, status


def pause(root, cid):
    """Freeze every process of the container (freezer.state on v1, cgroup.freeze on v2).
    A created container may be paused too: its init then stays frozen until resumed."""
    st, status = _live(root, cid)
    if status == "paused":
        raise StateError(f"container `{cid}` is already paused")
    _manager(st, "pause").freeze()


def resume(root, cid):
    st, status = _live(root, cid)
    if status != "paused":
        raise StateError(f"container `{cid}` is not paused (it is {status})")
    _manager(st, "resume").thaw()


def update(root, cid, resources):
    """Apply a partial linux.resources object; keys left out keep their values. The
    resources are validated before the container is looked at, and nothing is written
    unless the container runs."""
    from ocirun.cgroups import validate_resources
    from ocirun.config.nulls import RESOURCES, drop_nulls
    if not isinstance(resources, dict):
        raise OciError("linux.resources: must be a JSON object")
    drop_nulls(resources, RESOURCES, "linux.resources")  # null = absent, as in config.json
    validate_resources(resources)
    st, _ = _live(root, cid)
    _manager(st, "update").update(resources)


def pids(root, cid):
    """Host pids of every process in the container (init included). Without a cgroup,
    a container with a pid namespace of its own still has a well-defined process set."""
    st = load(root, cid)
    if st.cgroup:
        from ocirun.cgroups import from_dict
        return sorted(from_dict(st.cgroup).pids())
    if not st.alive():
        return []
    from ocirun.lifecycle.process import pidns_members
    if os.stat(f"/proc/{st.pid}/ns/pid").st_ino == os.stat("/proc/self/ns/pid").st_ino:
        raise OciError(f"cannot list processes of `{cid}`: it has neither a cgroup nor a "
                       "pid namespace of its own")
    return sorted(pidns_members(st.pid))


def process_table(pid_list):
    """[(uid, pid, ppid, cmd)] for `ps --format table`, read from /proc (a process that
    exits meanwhile is left out)."""
    rows = []
    for pid in pid_list:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{pid}/status", "rb") as f:
                status = f.read()
        except OSError:
            continue
        comm = stat[stat.index(b"(") + 1:stat.rindex(b")")].decode("utf-8", "replace")
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        uid = ""
        for line in status.splitlines():
            if line.startswith(b"Uid:"):
                uid = line.split()[1].decode()
                break
        cmd = cmdline.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace") or f"[{comm}]"
        rows.append((uid, pid, ppid, cmd))
    return rows


def ps_command(pid_list, ps_args):
    """Run the host's `ps` with the caller's options and keep the header and the lines of
    the container's processes (found by the PID column of the header)."""
    import subprocess
    try:
        r = subprocess.run(["ps", *ps_args], capture_output=True, text=True)
    except FileNotFoundError:
        raise OciError("ps: the `ps` command is not installed") from None
    if r.returncode != 0:
        raise OciError(f"ps {' '.join(ps_args)}: {r.stderr.strip() or 'failed'}")
    lines = r.stdout.splitlines()
    if not lines:
        return ""
    header = lines[0].split()
    if "PID" not in header:
        raise OciError(f"ps {' '.join(ps_args)}: the output has no PID column")
    col = header.index("PID")
    wanted = set(pid_list)
    out = [lines[0]]
    for line in lines[1:]:
        fields = line.split(None, col + 1)
        try:
            if int(fields[col]) in wanted:
                out.append(line)
        except (IndexError, ValueError):
            continue
    return "\n".join(out) + "\n"


def stats(root, cid):
    """The `events --stats` "data" object for a running container."""
    st, _ = _live(root, cid)
    return _manager(st, "read statistics of").stats()


def _wait(p, seconds):
    """poll() for up to `seconds`, in steps poll(2) accepts; True when ready."""
    import time
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if p.poll(max(1, int(min(left, 86400.0) * 1000))):
            return True
        if left <= 86400.0:
            return False


def watch(root, cid, interval, emit):
    """`events` without --stats: emit({"type": "stats", ...}) every `interval` seconds and
    {"type": "oom", ...} when the kernel OOM-killed a process of the container since the
    previous look, until the container stops. The wait is a poll on the init's pidfd, so
    the loop ends as soon as the container exits, not at the next tick."""
    import select

    from ocirun.lifecycle.process import open_init
    st, _ = _live(root, cid)
    m = _manager(st, "watch")
    fd = open_init(st)
    if fd is None:
        raise StateError(NOT_RUNNING)
    try:
        p = select.poll()
        p.register(fd, select.POLLIN)
        ooms = m.oom_kills()
        while True:
            now = m.oom_kills()
            if now > ooms:
                emit({"type": "oom", "id": cid})
            ooms = now
            emit({"type": "stats", "id": cid, "data": m.stats()})
            if _wait(p, interval):
                break  # init exited
        if m.oom_kills() > ooms:
            emit({"type": "oom", "id": cid})
    finally:
        os.close(fd)
