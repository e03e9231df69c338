#!/bin/sh
# The test suite on a pure cgroup v2 layout (the default of stock Debian 12, Fedora,
# Ubuntu), whatever the host's own: in a private mount namespace whose /sys/fs/cgroup is
# a fresh cgroup2 mount. Nothing of it reaches the host: the namespace's mounts are
# private and go with it; the tests remove every cgroup they make (their leak checks
# look at this layout). Arguments go to pytest. scripts/test.sh runs this after the
# first pass; it is a no-op where the host is pure v2 already (the first pass was that).
set -eu
cd "$(dirname "$0")/.."
if [ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ]; then
    echo "test-cgroup2.sh: /sys/fs/cgroup is cgroup2 already: the first pass ran on it"
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! grep -qw cgroup2 /proc/filesystems; then
    echo "test-cgroup2.sh: skipped (needs root and a kernel with cgroup2)"
    exit 0
fi
before=$(grep ' /sys/fs/cgroup' /proc/self/mountinfo | cut -d' ' -f5 | sort)
rc=0
unshare -m --propagation private sh -c '
    umount -R /sys/fs/cgroup &&
    mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup &&
    echo "test-cgroup2.sh: /sys/fs/cgroup is cgroup2 (controllers: $(cat /sys/fs/cgroup/cgroup.controllers))" &&
    exec /usr/bin/python3 -m pytest -q -rs -p no:cacheprovider tests "$@"' sh "$@" || rc=$?
after=$(grep ' /sys/fs/cgroup' /proc/self/mountinfo | cut -d' ' -f5 | sort)
if [ "$before" != "$after" ]; then
    echo "test-cgroup2.sh: the host's cgroup mounts changed" >&2
    rc=1
fi
exit $rc
