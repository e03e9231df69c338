"""Idmapped mounts (config.md "Mounts": idmap, ridmap, mounts[].uidMappings): the
runtime makes a user namespace holding the mount's mapping, clones the bind source into
a detached tree, sets the mount's attributes and then MOUNT_ATTR_IDMAP on it, and hands
the tree to the init, which attaches it (rootfs.mount_one). The runtime does it, not the
init, because an idmapping needs CAP_SYS_ADMIN in the user namespace of the source's
filesystem, which an init in a user namespace of its own no longer has (crun does the
same). A user namespace with given maps needs a process in it while the maps are
written: a short-lived child that unshares one and waits, whose namespace the runtime
keeps by fd until the trees hold it."""
import posix

from ocirun import kernel
from ocirun.errors import OciError
from ocirun.linux import procfs


def userns_fd(proc_fd, uid_map, gid_map, field):
    """An fd of a new user namespace with these maps (uid_map/gid_map text)."""
    ready_r, ready_w = posix.pipe2(posix.O_CLOEXEC)
    go_r, go_w = posix.pipe2(posix.O_CLOEXEC)
    pid = posix.fork()
    if pid == 0:
        code = 1
        try:
            posix.close(ready_r)
            posix.close(go_w)
            kernel.unshare(kernel.CLONE_NEWUSER)
            posix.write(ready_w, b"1")
            posix.read(go_r, 1)  # until the runtime has the namespace (it closes go_w)
            code = 0
        finally:
            posix._exit(code)
    posix.close(ready_w)
    posix.close(go_r)
    try:
        if posix.read(ready_r, 1) != b"1":
            raise OciError(f"{field}: cannot make a user namespace for the idmapped mount")
        k = kernel.KERNEL
        try:
            procfs.write(k, proc_fd, f"{pid}/uid_map", uid_map)
            procfs.write(k, proc_fd, f"{pid}/gid_map", gid_map)
            # (a namespace file is a magic link, which the handle's lookups refuse: the
            # runtime's own /proc, on the host, before any container exists)
            return posix.open(f"/proc/{pid}/ns/user", posix.O_RDONLY | posix.O_CLOEXEC)
        except OSError as e:
            raise OciError(f"{field}: the mount's id mapping: {e.strerror}") from None
    finally:
        posix.close(ready_r)
        posix.close(go_w)
        posix.waitpid(pid, 0)


def trees(plan, proc_fd):
    """{mounts index: fd of the detached, idmapped tree} for the Plan's idmapped mounts
    (one user namespace per distinct mapping). The caller closes them."""
    from ocirun.linux import rootfs
    k = kernel.KERNEL
    namespaces = {}
    out = {}
    try:
        for i, (uid_map, gid_map, recursive_idmap) in plan.idmaps.items():
            key = (uid_map, gid_map)
            if key not in namespaces:
                namespaces[key] = userns_fd(proc_fd, uid_map, gid_map, f"mounts[{i}]")
            m, mo = plan.mounts[i]
            try:
                out[i] = rootfs.detached_bind(k, m["source"], mo, bool(mo.flags & kernel.MS_REC),
                                              (namespaces[key], recursive_idmap))
            except OSError as e:
                raise OciError(f"mounts[{i}]: idmapped bind of `{m['source']}`: "
                               f"{e.strerror}") from None
    except BaseException:
        for fd in out.values():
            posix.close(fd)
        raise
    finally:
        for fd in namespaces.values():
            posix.close(fd)
    return out
