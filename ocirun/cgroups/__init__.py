"""Control groups: detect the host's layout and hand out a Manager for one container.

Cheap to import (posix only): `state`, `kill` and `list` import this package without
paying for the v1/v2 writers, which are imported when a manager is opened.

cgroupsPath (runtime-spec config-linux.md "Cgroups path"), as ocirun interprets it:
  - absent or "": `/ocirun/<container id>`;
  - absolute ("/a/b"): relative to the root of each hierarchy;
  - relative ("a/b"): also relative to the root of each hierarchy, i.e. the same as "/a/b".
    The spec lets the runtime choose the base and requires that one value always lands in
    the same place; the runtime's own cgroup depends on who invoked it (a shell, a shim,
    a systemd unit), so it would not satisfy that;
  - `..` components, NUL bytes and paths naming the hierarchy root itself are refused with
    ConfigError("linux.cgroupsPath", ...): a container owning the root cgroup would make
    `kill --all` and `delete --force` reach every process on the host.
The systemd form "slice:prefix:name" is, for cgroupfs, a relative path of one component
(as runc's cgroupfs driver reads it); with the systemd manager it names a transient scope
unit (cgroups/systemd.py).

Typical use by the lifecycle code (validation happens in open_manager, before anything is
created, so a bad config leaves nothing behind):

    m = open_manager("cgroupfs", spec_linux.get("cgroupsPath"), cid,
                     resources=spec_linux.get("resources"))
    m.create(); m.add(init_pid); m.apply(resources)   # on failure: m.destroy()
    state["cgroup"] = m.to_dict()
    ...
    m = from_dict(state["cgroup"]); m.freeze()
"""
from ocirun import fs

DEFAULT_ROOT = "/sys/fs/cgroup"
MOUNTINFO = "/proc/self/mountinfo"
KINDS = ("cgroupfs", "systemd")  # --cgroup-manager=disabled opens no manager at all
MODES = ("v1", "hybrid", "unified")
FIELD_PATH = "linux.cgroupsPath"


def _mount_entries(mountinfo):
    """[(mountpoint, fstype, super_options)] from a mountinfo file; [] if unreadable.
    `mountinfo` may also be such a list already (open_manager reads the file once)."""
    if isinstance(mountinfo, list):
        return mountinfo
    try:
        data = fs.read_bytes(mountinfo).decode("utf-8", "surrogateescape")
    except OSError:
        return []
    out = []
    for line in data.splitlines():
        # "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split(" ")
        rest = right.split(" ")
        if len(fields) < 5 or len(rest) < 3:
            continue
        mnt = fields[4].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
        out.append((mnt, rest[0], rest[2]))
    return out


def detect(root=DEFAULT_ROOT, mountinfo=MOUNTINFO):
    """"unified" (cgroup2 at root), "hybrid" (v1 controllers plus cgroup2 at root/unified)
    or "v1". Reads the mount table each call (nothing cached), and falls back to marker
    files when `root` is not a mount point, so tests can describe a layout in a temp dir."""
    root = fs.normpath(root)
    types = {}
    for mnt, fstype, _ in _mount_entries(mountinfo):
        types[mnt] = fstype  # later mounts hide earlier ones at the same point
    if types.get(root) == "cgroup2":
        return "unified"
    if root in types or any(m.startswith(root + "/") and t == "cgroup" for m, t in types.items()):
        return "hybrid" if types.get(root + "/unified") == "cgroup2" else "v1"
    if fs.exists(fs.join(root, "cgroup.controllers")):
        return "unified"
    if fs.exists(fs.join(root, "unified", "cgroup.controllers")):
        return "hybrid"
    return "v1"


def clean_path(cgroups_path, container_id):
    """The normalized absolute cgroup path ("/a/b") for a cgroupsPath value (see module doc)."""
    from ocirun.errors import ConfigError

    if cgroups_path is None or cgroups_path == "":
        if not isinstance(container_id, str) or not container_id or "/" in container_id \
                or container_id in (".", "..") or "\0" in container_id:
            raise ConfigError(FIELD_PATH, f"cannot derive a cgroup path from container id {container_id!r}")
        cgroups_path = "/ocirun/" + container_id
    if not isinstance(cgroups_path, str):
        raise ConfigError(FIELD_PATH, "must be a string")
    if "\0" in cgroups_path:
        raise ConfigError(FIELD_PATH, "must not contain NUL bytes")
    parts = []
    for comp in cgroups_path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            raise ConfigError(FIELD_PATH, f"{cgroups_path!r}: `..` is not allowed")
        if len(comp.encode("utf-8", "surrogateescape")) > 255:
            raise ConfigError(FIELD_PATH, f"{cgroups_path!r}: component too long")
        parts.append(comp)
    if not parts:
        raise ConfigError(FIELD_PATH, f"{cgroups_path!r} names the hierarchy root; "
                                      "a container needs a cgroup of its own")
    return "/" + "/".join(parts)


def validate_resources(resources, mode=None, field="linux.resources"):
    """Raise ConfigError (naming the JSON path) for a malformed linux.resources object."""
    from ocirun.cgroups import validate

    validate.validate_resources(resources, mode, field)


def open_manager(kind, cgroups_path, container_id, root=DEFAULT_ROOT, mode=None,
                 resources=None, mountinfo=MOUNTINFO, annotations=None):
    """A Manager for the container's cgroup; nothing is created until create().

    kind: "cgroupfs" | "systemd" (a transient scope unit, cgroups/systemd.py; it reads
    the org.systemd.property.* `annotations`). mode: "v1" | "hybrid" | "unified", or
    None to detect it. When `resources` is given it is validated here, first."""
    from ocirun.errors import OciError

    if kind not in KINDS:
        raise OciError(f"unknown cgroup manager {kind!r} (expected one of {', '.join(KINDS)})")
    mountinfo = _mount_entries(mountinfo)  # once, for detect() and the v1 hierarchies
    if mode is None:
        mode = detect(root, mountinfo)
    elif mode not in MODES:
        raise OciError(f"unknown cgroup mode {mode!r}")
    if resources is not None:
        validate_resources(resources, mode)
    if kind == "systemd":
        from ocirun.cgroups import systemd
        return systemd.open_manager(cgroups_path, container_id, root, mode, mountinfo,
                                    annotations)
    # (the systemd form "slice:prefix:name" is, for cgroupfs, a relative path of one
    # component, as runc's cgroupfs driver reads it: containerd sends it in some set-ups)
    path = clean_path(cgroups_path, container_id)
    if mode == "unified":
        from ocirun.cgroups.v2 import V2Manager
        return V2Manager(root, path, container_id)
    from ocirun.cgroups.v1 import V1Manager
    return V1Manager(root, path, container_id, mode, mountinfo=mountinfo)


def paused(d):
    """Whether the cgroup of a record persisted with Manager.to_dict() is frozen, read
    straight from its freezer file: `state`, `start`, `kill` and `delete` ask on every
    call, and opening a manager (from_dict) costs the v1/v2 modules' import. The record
    is checked as from_dict checks it; OciError if it is corrupt."""
    from ocirun.errors import OciError

    if not isinstance(d, dict) or d.get("version") != 1:
        raise OciError("cgroup state: unsupported or corrupt record")
    kind, mode, root, path = d.get("kind"), d.get("mode"), d.get("root"), d.get("path")
    # (a systemd scope's record has the same root, path and hierarchies)
    if kind not in ("cgroupfs", "systemd") or mode not in ("v1", "hybrid", "unified"):
        return from_dict(d).state() == "paused"
    if (not isinstance(root, str) or not root.startswith("/") or not isinstance(path, str)
            or clean_path(path, None) != path):
        raise OciError("cgroup state: corrupt record (bad root or path)")
    if mode == "unified":
        return frozen_v2(root + path)
    base = (d.get("hierarchies") or {}).get("freezer")
    if base is None:
        return False
    if not isinstance(base, str) or fs.dirname(fs.normpath(base)) != fs.normpath(root):
        raise OciError(f"cgroup state: corrupt record (hierarchy {base!r} is not under {root})")
    return frozen_v1(base + path)


def frozen_v1(d):
    """The v1 freezer cgroup directory `d` says FROZEN (a missing file: not frozen)."""
    return _read_or_empty(d + "/freezer.state").strip() == "FROZEN"


def frozen_v2(d):
    """The v2 cgroup directory `d` has "frozen 1" in cgroup.events."""
    return "frozen 1" in _read_or_empty(d + "/cgroup.events").splitlines()


def _read_or_empty(path):
    try:
        return fs.read_bytes(path).decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def from_dict(d):
    """Reopen a manager persisted with Manager.to_dict() (state.json "cgroup")."""
    from ocirun.errors import OciError

    if not isinstance(d, dict) or d.get("version") != 1:
        raise OciError("cgroup state: unsupported or corrupt record")
    kind, mode = d.get("kind"), d.get("mode")
    try:
        if kind == "cgroupfs" and mode == "unified":
            from ocirun.cgroups.v2 import V2Manager
            return V2Manager.from_dict(d)
        if kind == "cgroupfs" and mode in ("v1", "hybrid"):
            from ocirun.cgroups.v1 import V1Manager
            return V1Manager.from_dict(d)
        if kind == "systemd" and mode in MODES:
            from ocirun.cgroups import systemd
            return systemd.from_dict(d)
    except (KeyError, TypeError, ValueError) as e:
        raise OciError(f"cgroup state: corrupt record ({e})") from None
    raise OciError(f"cgroup state: unknown manager kind={kind!r} mode={mode!r}")


__all__ = ["detect", "open_manager", "from_dict", "paused", "clean_path", "validate_resources"]
