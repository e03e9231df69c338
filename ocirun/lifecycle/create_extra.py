"""The steps of create (create.py) that only some containers take: the prestart and
createRuntime hooks, the uid/gid maps of a new user namespace, the intelRdt group, the
refusal of limits without a cgroup manager. create.py runs on every `create`/`run` and
imports this module only when a container needs one (import cost)."""
import posix

from ocirun import fs, kernel
from ocirun.errors import OciError
from ocirun.linux import procfs
from ocirun.state import proc_start_time


def run_create_hooks(st, init_pid, hooks):
    """prestart and createRuntime, in the runtime's namespaces, before pivot_root.
    prestart (deprecated) sees "created", as it did when it ran at `start`;
    createRuntime sees "creating". Returns the state for the init's own hooks."""
    from ocirun.hooks import encode_state, run_hooks
    from ocirun.lifecycle.state import oci_state
    st.pid = init_pid
    st.pid_start = proc_start_time(init_pid)
    doc = oci_state(st)
    doc["pid"] = init_pid
    doc["status"] = "created"
    created = encode_state(doc)
    if hooks.get("prestart"):
        run_hooks("prestart", hooks["prestart"], created)
    if hooks.get("createRuntime"):
        doc["status"] = "creating"
        run_hooks("createRuntime", hooks["createRuntime"], encode_state(doc))
    return created


def write_maps(pid, plan):
    """The init's uid_map and gid_map, through the runtime's verified procfs (by the
    rules for an ordinary user when we are not root: lifecycle/rootless.py)."""
    if posix.geteuid() != 0:
        from ocirun.lifecycle import rootless
        return rootless.write_maps(pid, plan)
    proc_fd = procfs.open_root(kernel.KERNEL)
    try:
        for name, text in (("uid_map", plan.uid_map), ("gid_map", plan.gid_map)):
            if not text:
                continue
            try:
                procfs.write(kernel.KERNEL, proc_fd, f"{pid}/{name}", text)
            except OSError as e:
                raise OciError(f"write {name} `{text.strip()}`: {e.strerror}") from None
    finally:
        posix.close(proc_fd)


def join_intel_rdt(rdt, cid, pid):
    """linux.intelRdt (config-linux.md "IntelRdt"): the resctrl group closID (or one of
    the container's own, named after it), its schemata, and the init in its tasks; with
    enableMonitoring, a monitoring group of the container's in it too. -> the
    directories we made, innermost first (delete removes them)."""
    base, clos, lines, monitoring = rdt
    d = f"{base}/{clos or cid}"
    made = []
    try:
        try:
            posix.mkdir(d, 0o755)
            made.append(d)
        except FileExistsError:
            if not clos:
                raise
        for line in lines:
            fs.write_file(f"{d}/schemata", line + "\n")
        fs.write_file(f"{d}/tasks", str(pid))
        if monitoring:
            mon = f"{d}/mon_groups/{cid}"
            posix.mkdir(mon, 0o755)
            made.insert(0, mon)
            fs.write_file(f"{mon}/tasks", str(pid))
    except OSError as e:
        for m in made:
            posix.rmdir(m)
        raise OciError(f"linux.intelRdt: resctrl group `{d}`: {e.strerror}") from None
    return made


def no_limits_without_cgroups(resources):
    """Without a cgroup only device rules that grant or deny all of rwm mean something
    (the runtime makes the device nodes itself); anything else is a limit."""
    for key, value in resources.items():
        if key == "devices":
            for i, rule in enumerate(value or ()):
                if set(rule.get("access") or "rwm") != set("rwm"):
                    raise OciError(f"linux.resources.devices[{i}].access: cannot apply "
                                   f"without cgroups (the cgroup manager is disabled)")
        elif value:
            raise OciError(f"linux.resources.{key}: cannot apply without cgroups (the cgroup "
                           f"manager is disabled)")
