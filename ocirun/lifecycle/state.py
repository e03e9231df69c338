"""state and list, and the status every verb asks for: created, running, paused,
stopped (runtime.md "State"), or creating while a create is at work."""
import sys

from ocirun.errors import OciError
from ocirun.state import list_ids, load


def status(st):
    if not st.pid:
        return "creating"
    if not st.alive():
        return "stopped"
    # frozen before created: a created container can be paused as well
    if st.cgroup:
        from ocirun.cgroups import paused
        try:
            if paused(st.cgroup):
                return "paused"
        except OciError:
            pass
    if st.waits_for_start():
        return "created"
    return "running"


def oci_state(st, status_now=None):
    """The OCI state document (runtime.md "State")."""
    from ocirun import SPEC_VERSION
    s = status_now or status(st)
    return {
        "ociVersion": SPEC_VERSION,
        "id": st.id,
        "pid": st.pid if s not in ("stopped", "creating") else 0,
        "status": s,
        "bundle": st.bundle,
        "rootfs": st.rootfs,
        "created": st.created,
        "owner": "",
        "annotations": st.annotations or {},
    }


def state(root, cid):
    return oci_state(load(root, cid))


def list_states(root):
    out = []
    for cid in list_ids(root):
        try:
            out.append(oci_state(load(root, cid)))
        except OciError:
            continue
    return out


def mark(name):
    """A --timings mark without importing ocirun.timings on the paths that do not time
    themselves (state, list, kill): when timings are on, the CLI has loaded it."""
    t = sys.modules.get("ocirun.timings")
    if t is not None:
        t.mark(name)
