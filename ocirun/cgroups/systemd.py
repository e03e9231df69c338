"""--systemd-cgroup / --cgroup-manager=systemd.

With systemd, the container's cgroup is a transient scope unit created over D-Bus
(cgroupsPath "slice:prefix:name" -> unit "prefix-name.scope" in "slice"). This machine
class runs no systemd, and ocirun does not implement the D-Bus client yet, so the manager
refuses clearly instead of silently falling back to cgroupfs (which would put the
container somewhere the caller's systemd does not expect).
"""
import os

from ocirun.errors import OciError

RUN_DIR = "/run/systemd/system"


def check_available(run_dir=RUN_DIR):
    if not os.path.isdir(run_dir):
        raise OciError(f"systemd cgroup manager unavailable: systemd is not running "
                       f"({run_dir} does not exist); use --cgroup-manager=cgroupfs")
    raise OciError("systemd cgroup manager unavailable: transient scope units over D-Bus "
                   "are not implemented by ocirun; use --cgroup-manager=cgroupfs")
