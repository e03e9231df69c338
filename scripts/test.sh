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
# pip installs of the checkout into a fresh venv, offline (tests/integration/test_pip_install.py)
/usr/bin/python3 -c 'import ensurepip' 2>/dev/null || missing="$missing python3-venv"
ls /usr/share/python-wheels/setuptools-*.whl >/dev/null 2>&1 || missing="$missing python3-setuptools-whl"
ls /usr/share/python-wheels/wheel-*.whl >/dev/null 2>&1 || missing="$missing python3-wheel-whl"
for tool in runc crun hyperfine podman containerd tmux; do
    command -v $tool >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ] && [ "$(id -u)" = 0 ]; then
    echo "test.sh: installing$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
# The syscall extension, as install.sh builds it (the tests cover the fallback too).
./scripts/build-ext.sh /usr/bin/python3 ocirun || true
# CI: the tests run ocirun with its own interpreter, built once (scripts/test-interpreter.sh)
vars=$(./scripts/test-interpreter.sh)
eval "$vars"
exec /usr/bin/python3 -m pytest -q -rs tests "$@"
