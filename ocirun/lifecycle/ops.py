"""start, kill, delete, state, list: the operations on an existing container."""
import os

from ocirun.errors import NotFound, OciError, StateError
from ocirun.lifecycle import process
from ocirun.state import FIFO, list_ids, load, remove_dir


def start(root, cid):
    st = load(root, cid)
    status = st.status()
    if status != "created":
        raise StateError(f"cannot start container `{cid}`: it is {status}, not created")
    fifo = f"{st.dir}/{FIFO}"
    try:
        # Non-blocking: fails with ENXIO at once if no init holds the fifo.
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise StateError(f"cannot start container `{cid}`: {e.strerror}") from None
    try:
        os.write(fd, b"0")
    finally:
        os.close(fd)
    st.started = True
    st.save()
    try:
        os.unlink(fifo)
    except FileNotFoundError:
        pass
    if (st.config_hooks or {}).get("poststart"):
        _wait_exec(st.pid)  # poststart runs after the user process is executed
        run_poststart(st)
    return st


def _wait_exec(pid, timeout=2.0):
    """Wait until `pid` no longer runs this interpreter: it has exec'd the user's
    program (or died)."""
    import sys
    import time
    me = os.path.realpath(sys.executable)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.readlink(f"/proc/{pid}/exe") != me:
                return
        except OSError:
            return
        time.sleep(0.0005)


def run_poststart(st):
    hooks = (st.config_hooks or {}).get("poststart")
    if hooks:
        from ocirun.hooks import run_hooks
        # The state of a started container, even if its process already exited: the
        # hook is about the start, and a fast process must not turn it into "stopped".
        doc = st.oci_state()
        doc["status"] = "running"
        doc["pid"] = st.pid
        run_hooks("poststart", hooks, doc, warn_only=True)


def kill(root, cid, sig, all_procs=False):
    st = load(root, cid)
    status = st.status()
    if status in ("stopped", "creating"):
        raise StateError("container not running")
    if all_procs:
        process.signal_all(st, sig)
    else:
        process.signal_init(st, sig)
    if sig == 9 and status == "paused":
        # A frozen task cannot act on SIGKILL: thaw, or the kill (and a caller waiting
        # for the exit) would hang until someone resumes the container.
        from ocirun.cgroups import from_dict as open_saved
        open_saved(st.cgroup).thaw()


def delete(root, cid, force=False):
    try:
        st = load(root, cid)
    except NotFound:
        if force:
            return  # runc: `delete --force` of an unknown id succeeds (podman relies on it)
        raise
    if not st.pid and not st.cgroup:
        st.cgroup = husk_cgroup(cid)
    status = st.status()
    if status in ("running", "paused") and not force:
        raise StateError(f"cannot delete container `{cid}` that is not stopped: {status}")
    if status != "stopped":
        if status == "paused" and st.cgroup:
            from ocirun.cgroups import from_dict as open_saved
            open_saved(st.cgroup).thaw()
        process.kill_container(st)
    destroy(st)


def husk_cgroup(cid):
    """A container whose state was lost (runtime killed early, garbage state.json)
    may still own the default cgroup /ocirun/<id>: a record of its leaf directories,
    so that delete kills what runs there and removes them. None if there are none."""
    try:
        from ocirun import cgroups
        m = cgroups.open_manager("cgroupfs", None, cid)
        leaves = [d for d in m._leaf_dirs() if os.path.isdir(d)]
    except (OciError, OSError):
        return None
    if not leaves:
        return None
    d = m.to_dict()
    d["created"] = leaves
    return d


def destroy(st):
    """Remove what the container holds: cgroup, then the state directory. Poststop
    hooks run here (runtime.md: after the container is deleted)."""
    if st.cgroup:
        from ocirun.cgroups import from_dict as open_saved
        try:
            open_saved(st.cgroup).destroy()
        except OciError as e:
            from ocirun import log
            log.warning(f"remove cgroup of `{st.id}`: {e}")
    hooks = (st.config_hooks or {}).get("poststop")
    remove_dir(st.dir)
    if hooks:
        from ocirun import hooks as hooks_mod
        hooks_mod.run_hooks("poststop", hooks, st.oci_state(), warn_only=True)


def state(root, cid):
    return load(root, cid).oci_state()


def list_states(root):
    out = []
    for cid in list_ids(root):
        try:
            out.append(load(root, cid).oci_state())
        except OciError:
            continue
    return out
