"""start, kill, delete, state, list: the operations on an existing container."""
import posix
import sys

from ocirun import fs
from ocirun.errors import NotFound, OciError, StateError
from ocirun.lifecycle import process
from ocirun.state import CGROUP_RECORD, FIFO, list_ids, load, remove_dir


def _mark(name):
    """A --timings mark without importing ocirun.timings on the paths that do not time
    themselves (state, list, kill): when timings are on, the CLI has loaded it."""
    t = sys.modules.get("ocirun.timings")
    if t is not None:
        t.mark(name)


def start(root, cid):
    st = load(root, cid)
    status = st.status()
    if status != "created":
        raise StateError(f"cannot start container `{cid}`: it is {status}, not created")
    _mark("state load + status")
    fifo = f"{st.dir}/{FIFO}"
    try:
        # Non-blocking: fails with ENXIO at once if no init holds the fifo.
        fd = posix.open(fifo, posix.O_WRONLY | posix.O_NONBLOCK | posix.O_CLOEXEC)
    except OSError as e:
        raise StateError(f"cannot start container `{cid}`: {e.strerror}") from None
    try:
        posix.write(fd, b"0")
    finally:
        posix.close(fd)
    _mark("exec fifo written (the init goes on)")
    st.started = True
    st.save()
    try:
        posix.unlink(fifo)
    except FileNotFoundError:
        pass
    _mark("state write")
    if (st.config_hooks or {}).get("poststart"):
        _wait_exec(st.pid)  # poststart runs after the user process is executed
        run_poststart(st)
        _mark("poststart hooks")
    return st


def _wait_exec(pid, timeout=2.0):
    """Wait until `pid` no longer runs this program (the interpreter) nor the waiter
    (linux/trampoline.py, a memfd): it has exec'd the user's program (or died)."""
    import time
    me = posix.readlink("/proc/self/exe")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            exe = posix.readlink(f"/proc/{pid}/exe")
            if exe != me and not exe.startswith("/memfd:ocirun-exec"):
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
    if all_procs and status == "stopped" and st.cgroup:
        # The init is gone but, without a pid namespace, its children may not be:
        # containerd's shim sends `kill --all ID 9` for exactly that (runc: exit 0).
        process.signal_all(st, sig)
        return
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
    if not st.cgroup:
        st.cgroup = cgroup_record(st)
    status = st.status()
    # "creating": another create may be at work, or one was killed: only --force.
    if status in ("running", "paused", "creating") and not force:
        raise StateError(f"cannot delete container `{cid}` that is not stopped: {status}")
    _mark("state load + status")
    if status == "paused" and st.cgroup:
        from ocirun.cgroups import from_dict as open_saved
        open_saved(st.cgroup).thaw()
    if status != "stopped":
        process.kill_container(st)
    elif st.cgroup and not _had_own_pid_namespace(st):
        # The init has exited, but without a pid namespace of its own its children
        # outlive it in the cgroup: they go too, or the cgroup could never be removed.
        # (With one, the kernel killed them and waited for them before the init's
        # exit completed: nothing is left to signal, as runc also reasons.)
        try:
            process.signal_all(st, 9)
        except OciError:
            pass
    _mark("processes killed")
    destroy(st)
    _mark("cgroup, mounts, state directory removed")


def _had_own_pid_namespace(st):
    return any(isinstance(ns, dict) and ns.get("type") == "pid" and not ns.get("path")
               for ns in st.namespaces or ())


def cgroup_record(st):
    """The cgroup that `create` recorded next to the state (cgroup.json) before it
    wrote state.json: what a killed create or a damaged state.json left behind."""
    try:
        data = fs.read_bytes(f"{st.dir}/{CGROUP_RECORD}")
        from ocirun.config.load import parse_config
        return parse_config(data.decode(), CGROUP_RECORD)
    except (OSError, ValueError, OciError):
        return None


def destroy(st):
    """Remove what the container holds: its cgroup, mounts it made in the runtime's
    mount namespace (when it had none of its own), then the state directory; then the
    poststop hooks (runtime.md: after the container is deleted). A cgroup that cannot
    be removed keeps the state directory, so that `delete --force` can try again."""
    if st.cgroup:
        from ocirun.cgroups import from_dict as open_saved
        try:
            open_saved(st.cgroup).destroy()
        except OciError as e:
            raise OciError(f"remove cgroup of `{st.id}`: {e}") from None
    # (only for a state that says so: a husk's namespaces are unknown)
    if st.pid and not any(n.get("type") == "mount" for n in st.namespaces or ()):
        _unmount_shared_ns_mounts(st)
    hooks = (st.config_hooks or {}).get("poststop")
    remove_dir(st.dir)
    if hooks:
        from ocirun import hooks as hooks_mod
        hooks_mod.run_hooks("poststop", hooks, st.oci_state(), warn_only=True)


def _unmount_shared_ns_mounts(st):
    """A container without a mount namespace mounted into the runtime's: undo those
    mounts (deepest first), resolved inside its rootfs as they were made."""
    from ocirun.config.load import load_config
    try:
        mounts = load_config(f"{st.dir}/config.json", "container config").get("mounts") or ()
    except OciError:
        return
    if not mounts or not st.rootfs:
        return
    from ocirun import kernel
    from ocirun.linux.paths import fd_path, open_in_root
    rootfd = posix.open(st.rootfs, posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
    try:
        for m in reversed(mounts):
            try:
                fd = open_in_root(rootfd, m["destination"])
            except OSError:
                continue
            try:
                while True:  # a destination may hold a stack (tmpfs + binds)
                    kernel.umount2(fd_path(fd), kernel.MNT_DETACH)
                    posix.close(fd)
                    fd = open_in_root(rootfd, m["destination"])
            except OSError:
                pass
            finally:
                posix.close(fd)
    finally:
        posix.close(rootfd)


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
