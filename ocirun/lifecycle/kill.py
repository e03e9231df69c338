"""kill: a signal to the container's init, or with --all to every process of it."""
import _signal

from ocirun.errors import StateError
from ocirun.lifecycle import process
from ocirun.lifecycle.state import status
from ocirun.state import load

SIGKILL = _signal.SIGKILL


def kill(root, cid, sig, all_procs=False):
    st = load(root, cid)
    now = status(st)
    if all_procs and now == "stopped" and st.cgroup:
        # The init is gone but, without a pid namespace, its children may not be:
        # containerd's shim sends `kill --all ID 9` for exactly that (runc: exit 0).
        process.signal_all(st, sig)
        return
    if now in ("stopped", "creating"):
        raise StateError("container not running")
    if all_procs:
        process.signal_all(st, sig)
    else:
        process.signal_init(st, sig)
    if sig == SIGKILL and now == "paused":
        # A frozen task cannot act on SIGKILL: thaw, or the kill (and a caller waiting
        # for the exit) would hang until someone resumes the container.
        from ocirun.cgroups import from_dict as open_saved
        open_saved(st.cgroup).thaw()
