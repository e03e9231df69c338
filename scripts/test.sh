#!/bin/sh
# Run the whole test suite (as root: integration tests create real containers).
# Installs what the tests need from Debian when it is missing.
set -eu
cd "$(dirname "$0")/.."
missing=""
[ -x /bin/busybox ] || missing="$missing busybox-static"
command -v cc >/dev/null 2>&1 || missing="$missing gcc"
[ -f /usr/include/python3.11/Python.h ] || missing="$missing python3-dev"
/usr/bin/python3 -c 'import pytest' 2>/dev/null || missing="$missing python3-pytest"
/usr/bin/python3 -c 'import seccomp' 2>/dev/null || missing="$missing python3-seccomp"
/usr/bin/python3 -c 'import hypothesis' 2>/dev/null || missing="$missing python3-hypothesis"
for tool in runc crun hyperfine podman containerd tmux; do
    command -v $tool >/dev/null 2>&1 || missing="$missing $tool"
done
# a systemd to boot in a container of its own (tests/systemd_machine.py) and its bus
[ -x /lib/systemd/systemd ] && command -v busctl >/dev/null 2>&1 || missing="$missing systemd"
command -v dbus-daemon >/dev/null 2>&1 || missing="$missing dbus"
if [ -n "$missing" ] && [ "$(id -u)" = 0 ]; then
    echo "test.sh: installing$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
# The syscall extension, as install.sh builds it (the tests cover the fallback too).
./scripts/build-ext.sh /usr/bin/python3 ocirun || true
exec /usr/bin/python3 -m pytest -q -rs tests "$@"
