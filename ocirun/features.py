"""The runtime-spec features document (features.md), built from the tables the
runtime actually uses, so it cannot claim what the code does not do."""
from ocirun import SPEC_VERSION, VERSION


def features():
    from ocirun.tables import (CAPS, EXTENSIONS, FLAGS, MPOL_FLAG, MPOL_MODE, NAMESPACES,
                               PROPAGATION, RECURSIVE, UNSUPPORTED_OPTIONS)
    linux = {
        "namespaces": list(NAMESPACES),
        "capabilities": list(CAPS),
        "cgroup": _cgroup(),
        "seccomp": _seccomp(),
        # applied where the host has them (linux/init.py: attr/apparmor/exec and
        # attr/exec; linux/rootfs.py: mountLabel as context=); a warning where not
        "apparmor": {"enabled": True},
        "selinux": {"enabled": True},
        "memoryPolicy": {"modes": sorted(MPOL_MODE), "flags": sorted(MPOL_FLAG)},
        # applied where resctrl is mounted, refused where not (config/host.py)
        "intelRdt": {"enabled": True, "schemata": True, "monitoring": True},
        "mountExtensions": {"idmap": {"enabled": True}},
        "netDevices": {"enabled": True},
    }
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": sorted(set(FLAGS) | set(PROPAGATION) | set(RECURSIVE)
                               | (set(EXTENSIONS) - set(UNSUPPORTED_OPTIONS))),
        "linux": linux,
        "annotations": {"org.opencontainers.runtime-spec.features.version": SPEC_VERSION,
                        "run.oci.ocirun.version": VERSION,
                        # run by a non-root user, or as root of rootless podman's user
                        # namespace (lifecycle/rootless.py): a cgroup only in a delegated
                        # cgroup v2 subtree, devices bound from the host, maps beyond the
                        # caller's own ids through newuidmap/newgidmap
                        "run.oci.ocirun.rootless": "true",
                        "run.oci.ocirun.rootless.cgroup": "delegated-v2",
                        "run.oci.ocirun.rootless.idmap": "newuidmap"},
    }


def _cgroup():
    # systemd: transient scopes over D-Bus (cgroups/systemd.py); not the user manager
    return {"v1": True, "v2": True, "systemd": True, "systemdUser": False, "rdma": True}


def _seccomp():
    from ocirun.seccomp import consts
    from ocirun.seccomp.arches import ARCHES
    flags = sorted(consts.FLAGS)
    return {
        "enabled": True,
        "actions": sorted(consts.ACTIONS),
        "operators": sorted(consts.OPERATORS),
        "archs": sorted("SCMP_ARCH_" + name.upper() for name in ARCHES),
        "knownFlags": flags,
        "supportedFlags": flags,
    }
