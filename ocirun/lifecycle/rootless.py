"""Rootless: ocirun without privileges.

Two ways to get here: a non-root user runs ocirun on a config with a user namespace of
its own (`ocirun spec --rootless` writes one), or rootless podman runs it as root of the
user namespace podman made over the user's /etc/subuid range (newuidmap). Either way the
runtime cannot make cgroups it was not given, make device nodes, mount cgroup v1
hierarchies, raise hard rlimits, or clear the flags of the host mounts it binds (the
kernel locks them). The mechanisms that differ live where they act (linux/rootfs.py keeps
locked flags, linux/init.py skips a denied setgroups); lifecycle/create.py asks this
module, and only for a rootless container:

  - default_root(): --root's default, $XDG_RUNTIME_DIR/ocirun, as runc and crun choose;
  - check(): what the config asks that this user cannot have, refused with one line
    naming the field before anything exists;
  - cgroup_manager(): the delegated cgroup v2 subtree when there is one, else no cgroup
    (a limit is then refused, other resources draw a warning);
  - write_maps(): the maps of the container's user namespace, written by the caller
    (its own uid and gid, with setgroups denied as the kernel requires) or through
    newuidmap/newgidmap (anything more, within its /etc/subuid and /etc/subgid ranges).
"""
import posix

from ocirun import fs
from ocirun.errors import ConfigError, OciError

CGROUP_ROOT = "/sys/fs/cgroup"


# --- who we are ------------------------------------------------------------------------------

def detect(flag):
    """--rootless: True or False as given, else (None, "auto") whether the runtime lacks
    privileges: not root, or root of a user namespace other than the initial one."""
    if flag is not None:
        return flag
    if posix.geteuid() != 0:
        return True
    from ocirun import kernel
    return kernel.in_user_namespace()


def unprivileged():
    """Not root at all: the maps of a new user namespace, and what may go in them, are
    then the kernel's rules for an ordinary user (user_namespaces(7))."""
    return posix.geteuid() != 0


def default_root():
    """--root's default for a caller that is not plain root: $XDG_RUNTIME_DIR/ocirun,
    as runc and crun choose theirs, when XDG_RUNTIME_DIR is set and the caller is not
    root, or is root of a user namespace and not the user `root` (rootless podman runs
    the runtime so, with XDG_RUNTIME_DIR set); /run/user/UID/ocirun when that directory
    is the caller's; /run/ocirun otherwise (root)."""
    euid = posix.geteuid()
    xdg = fs.getenv("XDG_RUNTIME_DIR") or ""
    if xdg.startswith("/"):
        if euid != 0:
            return xdg.rstrip("/") + "/ocirun"
        from ocirun import kernel
        if kernel.in_user_namespace() and fs.getenv("USER") != "root":
            return xdg.rstrip("/") + "/ocirun"
    if euid == 0:
        return "/run/ocirun"
    run_user = f"/run/user/{euid}"
    try:
        if posix.stat(run_user).st_uid == euid:
            return run_user + "/ocirun"
    except OSError:
        pass
    from ocirun.errors import UsageError
    raise UsageError(f"--root: not given, and XDG_RUNTIME_DIR is not set for this user "
                     f"(uid {euid}): set it to a directory of yours (mode 0700), or give "
                     f"--root")


# --- what the config may ask ----------------------------------------------------------------

def check(spec, plan, linux):
    """Refuse, naming the field, what this rootless runtime cannot give the container,
    before anything exists (lifecycle/create.py _validate)."""
    if unprivileged():
        _check_user_namespace(spec, plan, linux)
    _check_devices(linux)
    _check_bind_sources(plan)
    _check_rlimits(spec.get("process") or {})


def _check_user_namespace(spec, plan, linux):
    if not plan.userns_new and not any(typ == "user" for typ, _, _ in plan.ns_join):
        raise ConfigError("linux.namespaces", f"ocirun run by a non-root user (uid "
                          f"{posix.geteuid()}) needs a user namespace: add {{\"type\": "
                          f"\"user\"}} with uidMappings and gidMappings (`ocirun spec "
                          f"--rootless` writes such a config)")
    if not plan.userns_new:
        return
    own_gid_only = False
    for kind, own, maps in (("uid", posix.geteuid(), linux.get("uidMappings") or ()),
                            ("gid", posix.getegid(), linux.get("gidMappings") or ())):
        if _own_id_only(maps, own):
            own_gid_only = kind == "gid"
            continue
        field = f"linux.{kind}Mappings"
        ranges = subordinate_ranges(kind)
        for i, m in enumerate(maps):
            lo, size = m["hostID"], m["size"]
            if size == 1 and lo == own:
                continue
            if not any(start <= lo and lo + size <= start + count for start, count in ranges):
                have = ", ".join(f"{s}-{s + c - 1}" for s, c in ranges) or "none"
                raise ConfigError(f"{field}[{i}]", f"host {kind}s {lo}-{lo + size - 1} are "
                                  f"neither this user's own {kind} ({own}) nor in its "
                                  f"/etc/sub{kind} ranges ({have})")
        if find_helper(f"new{kind}map") is None:
            raise ConfigError(field, f"mapping more than this user's own {kind} needs "
                              f"new{kind}map (Debian: apt-get install uidmap)")
    gids = ((spec.get("process") or {}).get("user") or {}).get("additionalGids")
    if own_gid_only and gids:
        # The kernel lets an ordinary user write a gid map of its own gid only once
        # setgroups(2) is denied in the namespace (user_namespaces(7)).
        raise ConfigError("process.user.additionalGids", "setgroups is denied in a user "
                          "namespace that maps only the caller's own gid: map a "
                          "/etc/subgid range in linux.gidMappings, or leave them out")


def _own_id_only(maps, own):
    return len(maps) == 1 and maps[0]["hostID"] == own and maps[0]["size"] == 1


def subordinate_ranges(kind):
    """[(start, count)] of this user's lines in /etc/subuid (kind "uid") or /etc/subgid,
    by name or by number, as newuidmap reads them."""
    import pwd
    euid = posix.geteuid()
    try:
        names = {pwd.getpwuid(euid).pw_name, str(euid)}
    except KeyError:
        names = {str(euid)}
    try:
        text = fs.read_bytes(f"/etc/sub{kind}").decode("utf-8", "replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in names and parts[1].isdigit() and parts[2].isdigit():
            out.append((int(parts[1]), int(parts[2])))
    return out


def find_helper(name):
    """newuidmap/newgidmap: on PATH, or where Debian's uidmap puts them."""
    dirs = (fs.getenv("PATH") or "").split(":") + ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
    for d in dirs:
        if d.startswith("/") and posix.access(f"{d}/{name}", posix.X_OK):
            return f"{d}/{name}"
    return None


def _check_devices(linux):
    """linux.devices: in a user namespace a device is the host's node bound in (nothing
    can be made), so it must exist on the host as the config describes it, and this
    user must be allowed to open it."""
    import _stat
    kinds = {"c": _stat.S_IFCHR, "u": _stat.S_IFCHR, "b": _stat.S_IFBLK, "p": _stat.S_IFIFO}
    for i, d in enumerate(linux.get("devices") or ()):
        path = d["path"]
        field = f"linux.devices[{i}]"
        try:
            st = posix.stat(path)
        except OSError as e:
            raise ConfigError(field, f"`{path}`: {e.strerror} on the host: a rootless "
                              f"container can only bind the host's device nodes") from None
        kind = d.get("type", "c")
        if _stat.S_IFMT(st.st_mode) != kinds.get(kind) or (kind != "p" and (
                posix.major(st.st_rdev), posix.minor(st.st_rdev))
                != (d.get("major"), d.get("minor"))):
            raise ConfigError(field, f"`{path}` on the host is not the {kind} "
                              f"{d.get('major')}:{d.get('minor')} the config describes: a "
                              f"rootless container binds the host's node")
        if not (posix.access(path, posix.R_OK) or posix.access(path, posix.W_OK)):
            raise ConfigError(field, f"`{path}`: this user may not open the host's device "
                              f"(mode {st.st_mode & 0o7777:04o}, owner uid {st.st_uid})")


def _check_bind_sources(plan):
    """A bind mount of a host path this user cannot read would give the container
    nothing it could use (and reveal what exists there): refused."""
    import _stat
    for i, (m, mo) in enumerate(plan.mounts):
        if not mo.bind:
            continue
        src = m.get("source") or ""
        try:
            st = posix.stat(src)
        except OSError as e:
            raise ConfigError(f"mounts[{i}].source", f"`{src}`: {e.strerror}") from None
        need = posix.R_OK | (posix.X_OK if _stat.S_ISDIR(st.st_mode) else 0)
        if not posix.access(src, need):
            raise ConfigError(f"mounts[{i}].source", f"`{src}`: this user cannot read it "
                              f"(mode {st.st_mode & 0o7777:04o}, owner uid {st.st_uid})")


def _check_rlimits(process):
    """A hard limit above the current one needs CAP_SYS_RESOURCE in the initial user
    namespace, which a rootless runtime never has: refused here, with the limit it may
    have, rather than by setrlimit's EPERM in the init."""
    from ocirun import kernel
    from ocirun.tables import RLIMITS
    for i, r in enumerate(process.get("rlimits") or ()):
        _, hard = kernel.getrlimit(RLIMITS[r["type"]])
        if r["hard"] > hard:
            raise ConfigError(f"process.rlimits[{i}]", f"{r['type']} hard limit {r['hard']} "
                              f"is above this process's hard limit ({hard}), which only a "
                              f"privileged process can raise")


# --- cgroups -----------------------------------------------------------------------------------

def cgroup_manager(kind, linux, cid):
    """The container's cgroup manager when rootless: cgroupfs in the delegated cgroup v2
    subtree when the caller has one (delegated_path), else None: no cgroup, the
    container stays in the runtime's. Without a cgroup a limit in linux.resources is
    refused (naming it) and device rules draw a warning: in a user namespace the
    container's devices are the host's nodes this user may open anyway."""
    from ocirun import cgroups
    resources = linux.get("resources")
    if kind == "systemd":
        return cgroups.open_manager(kind, linux.get("cgroupsPath"), cid, resources=resources)
    path = None
    if cgroups.detect() == "unified":
        path = delegated_path(linux.get("cgroupsPath"), cid)
    if path is not None:
        return cgroups.open_manager(kind, path, cid, resources=resources)
    if resources:
        cgroups.validate_resources(resources, None)
        field = first_limit(resources)
        if field is not None:
            raise ConfigError(field, "a rootless container has no cgroup here (no "
                              "delegated cgroup v2 subtree for this user), so no limit "
                              "can apply: leave it out, or run where the user has one")
        if any(rule.get("allow") or rule.get("type", "a") != "a"
               for rule in resources.get("devices") or ()):
            from ocirun import log
            log.warning("linux.resources.devices: not applied: a rootless container has "
                        "no device cgroup here (its devices are the host's nodes this "
                        "user may open)")
    return None


def first_limit(resources, field="linux.resources"):
    """The JSON path of the first value in linux.resources that sets something
    (device rules aside), or None: `{}` and empty sections set nothing."""
    for key, value in resources.items():
        if key == "devices" and field == "linux.resources":
            continue
        f = f"{field}.{key}"
        if isinstance(value, dict):
            sub = first_limit(value, f)
            if sub is not None:
                return sub
        elif isinstance(value, list):
            if value:
                return f
        elif value is not None and value is not False:
            return f
    return None


def own_cgroup(mountinfo_root=CGROUP_ROOT):
    """This process's cgroup v2 path ("0::/a/b" in /proc/self/cgroup), or None."""
    try:
        text = fs.read_bytes("/proc/self/cgroup").decode("utf-8", "replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:] or "/"
    return None


def delegated_path(cgroups_path, cid, root=CGROUP_ROOT):
    """The container's cgroup v2 path when the caller may make it: an absolute
    cgroupsPath as it is; a relative one, or none (`ocirun-<id>`), below the parent of
    the runtime's own cgroup (where a delegated subtree gives the user's processes
    theirs: the runtime's own cgroup has processes, so it cannot have children with
    controllers; runc reads a relative path the same way). The caller may make it
    when the deepest existing directory of that path is writable by it, and so is the
    cgroup.procs of the closest cgroup above both its own and that one (the kernel's
    rule for moving a process, cgroup-v2.rst "Delegation Containment"). -> the path,
    or None where this user has no such subtree."""
    from ocirun.cgroups import clean_path
    own = own_cgroup()
    if own is None:
        return None
    if cgroups_path and cgroups_path.startswith("/"):
        path = cgroups_path
    else:
        parent = own.rstrip("/").rpartition("/")[0]
        path = f"{parent}/{cgroups_path or 'ocirun-' + cid}"
    path = clean_path(path, cid)
    probe = root + path
    while not fs.isdir(probe):
        probe = fs.dirname(probe)
    if probe == root or not posix.access(probe, posix.W_OK | posix.X_OK):
        return None
    a = [c for c in own.split("/") if c]
    b = [c for c in path.split("/") if c]
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    common = root + "".join("/" + c for c in a[:n])
    if common == root or not posix.access(common + "/cgroup.procs", posix.W_OK):
        return None
    return path


# --- the user namespace's maps ----------------------------------------------------------------

def write_maps(pid, plan):
    """The maps of the init's new user namespace, written by an unprivileged caller:
    a map of its own id alone directly (a gid map then needs setgroups denied first,
    user_namespaces(7)), anything else through newuidmap/newgidmap, which check the
    caller's /etc/subuid and /etc/subgid ranges (check() did so already, to name the
    field). The init is dumpable while we write (linux/init.py), or neither we nor the
    helpers could open its /proc files."""
    from ocirun import kernel
    from ocirun.linux import procfs
    proc_fd = procfs.open_root(kernel.KERNEL)
    try:
        for kind, text, own in (("uid", plan.uid_map, posix.geteuid()),
                                ("gid", plan.gid_map, posix.getegid())):
            if not text:
                continue
            entries = [line.split() for line in text.splitlines() if line]
            try:
                if len(entries) == 1 and entries[0][1:] == [str(own), "1"]:
                    if kind == "gid":
                        procfs.write(kernel.KERNEL, proc_fd, f"{pid}/setgroups", "deny")
                    procfs.write(kernel.KERNEL, proc_fd, f"{pid}/{kind}_map", text)
                    continue
            except OSError as e:
                raise OciError(f"linux.{kind}Mappings: write {kind}_map `{text.strip()}`: "
                               f"{e.strerror}") from None
            _run_helper(f"new{kind}map", pid, [x for e in entries for x in e],
                        f"linux.{kind}Mappings")
    finally:
        posix.close(proc_fd)


def _run_helper(name, pid, args, field):
    """newuidmap/newgidmap PID ID HOSTID COUNT...: its complaint, if any, in our one
    line."""
    helper = find_helper(name)
    if helper is None:
        raise OciError(f"{field}: {name} is not installed (Debian: apt-get install uidmap)")
    r, w = posix.pipe2(posix.O_CLOEXEC)
    try:
        child = posix.posix_spawn(helper, [name, str(pid), *args], {"LC_ALL": "C"},
                                  file_actions=[
                                      (posix.POSIX_SPAWN_OPEN, 0, "/dev/null", posix.O_RDONLY, 0),
                                      (posix.POSIX_SPAWN_DUP2, w, 1),
                                      (posix.POSIX_SPAWN_DUP2, w, 2)])
    except OSError as e:
        posix.close(r)
        posix.close(w)
        raise OciError(f"{field}: run {helper}: {e.strerror}") from None
    posix.close(w)
    out = b""
    try:
        while True:
            chunk = posix.read(r, 4096)
            if not chunk:
                break
            out += chunk
    finally:
        posix.close(r)
    _, status = posix.waitpid(child, 0)
    if status != 0:
        said = " ".join(out.decode("utf-8", "replace").split()) or f"exit status {status >> 8}"
        raise OciError(f"{field}: {name} {' '.join(args)}: {said}")
