#!/bin/sh
# Run the whole test suite (as root: integration tests create real containers).
# Installs what the tests need from Debian when it is missing.
# With no arguments it then runs the fuzz tests again with the current Hypothesis from
# PyPI (in .venv-fuzz); arguments are passed to pytest and run only what they name.
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
# rootless podman and ocirun as an ordinary user (tests/integration/test_rootless.py)
command -v newuidmap >/dev/null 2>&1 || missing="$missing uidmap"
command -v slirp4netns >/dev/null 2>&1 || missing="$missing slirp4netns"
# (systemd and dbus for tests/integration/test_systemd.py are not installed here: the
# package's own scripts would run systemd-tmpfiles over this machine; without them those
# tests skip, saying so)
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
if [ $# -gt 0 ]; then
    exec /usr/bin/python3 -m pytest -q -rs tests "$@"
fi
status=0
/usr/bin/python3 -m pytest -q -rs tests || status=$?
# Again on a pure cgroup v2 layout, the default of stock Debian 12, Fedora and Ubuntu.
./scripts/test-cgroup2.sh || status=$?
# Debian's python3-hypothesis is older than PyPI's, whose generator finds other inputs:
# the fuzz tests run with both. The virtual environment sees the system's packages
# (pytest) and has its own hypothesis, upgraded on every run.
venv=.venv-fuzz
if [ ! -x $venv/bin/python ]; then
    /usr/bin/python3 -m venv --system-site-packages $venv
fi
if ! $venv/bin/python -m pip install -q --disable-pip-version-check --upgrade hypothesis; then
    echo "test.sh: cannot install hypothesis from PyPI into $venv" >&2
    exit 1
fi
echo "test.sh: fuzz tests with hypothesis $($venv/bin/python -c 'import hypothesis; print(hypothesis.__version__)') from PyPI"
$venv/bin/python -m pytest -q -rs -p no:cacheprovider tests/integration/test_fuzz.py || status=$?
exit $status
