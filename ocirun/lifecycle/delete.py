"""delete: kill what is left of a container, then remove its cgroup, the mounts it
made in the runtime's mount namespace, its state directory; then the poststop hooks."""
import posix

import _signal

from ocirun import fs
from ocirun.errors import NotFound, OciError, StateError
from ocirun.lifecycle import process
from ocirun.lifecycle.state import mark, oci_state, status
from ocirun.state import CGROUP_RECORD, load, remove_dir

SIGKILL = _signal.SIGKILL


def delete(root, cid, force=False):
    try:
        st = load(root, cid)
    except NotFound:
        if force:
            return  # runc: `delete --force` of an unknown id succeeds (podman relies on it)
        raise
    if not st.cgroup:
        st.cgroup = cgroup_record(st)
    now = status(st)
    # "creating": another create may be at work, or one was killed: only --force.
    if now in ("running", "paused", "creating") and not force:
        raise StateError(f"cannot delete container `{cid}` that is not stopped: {now}")
    mark("state load + status")
    if now != "stopped":
        # a frozen task (paused, or on its way: FREEZING reads as running) cannot act
        # on SIGKILL
        process.thaw(st)
        process.kill_container(st)
    elif st.cgroup and not _had_own_pid_namespace(st):
        # The init has exited, but without a pid namespace of its own its children
        # outlive it in the cgroup: they go too, or the cgroup could never be removed.
        # (With one, the kernel killed them and waited for them before the init's
        # exit completed: nothing is left to signal, as runc also reasons.)
        try:
            process.signal_all(st, SIGKILL)
        except OciError:
            pass
    mark("processes killed")
    destroy(st)
    mark("cgroup, mounts, state directory removed")


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
    for d in st.intel_rdt or ():  # resctrl groups of ours, innermost first
        try:
            posix.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise OciError(f"remove resctrl group `{d}`: {e.strerror}") from None
    hooks = (st.config_hooks or {}).get("poststop")
    remove_dir(st.dir)
    if hooks:
        from ocirun import hooks as hooks_mod
        hooks_mod.run_hooks("poststop", hooks, oci_state(st), warn_only=True)


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
    k = kernel.KERNEL
    rootfd = posix.open(st.rootfs, posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
    try:
        for m in reversed(mounts):
            try:
                fd = open_in_root(k, rootfd, m["destination"])
            except OSError:
                continue
            try:
                while True:  # a destination may hold a stack (tmpfs + binds)
                    kernel.umount2(fd_path(fd), kernel.MNT_DETACH)
                    posix.close(fd)
                    fd = None
                    fd = open_in_root(k, rootfd, m["destination"])
            except OSError:
                pass
            finally:
                if fd is not None:
                    posix.close(fd)
    finally:
        posix.close(rootfd)
