#!/bin/sh
# For scripts/test.sh. In CI (CI set) or with OCIRUN_TEST_INTERPRETER=1: install ocirun
# with its own interpreter into a private prefix (install.sh --build-interpreter: built
# once, then cached under /var/cache/ocirun) and print the shell assignment
# OCIRUN_COMMAND=PREFIX/bin/ocirun, the command the tests then run
# (tests/support.py). Otherwise (or OCIRUN_TEST_INTERPRETER=0) print nothing: the
# tests run the development launcher, bin/ocirun, over /usr/bin/python3.
# OCIRUN_PGO=0 builds the variant without profile-guided optimisation (and LTO).
set -eu
cd "$(dirname "$0")/.."
want=${OCIRUN_TEST_INTERPRETER:-}
[ -z "$want" ] && [ -n "${CI:-}" ] && want=1
[ "$want" = 1 ] || exit 0
prefix=${OCIRUN_CACHE:-/var/cache/ocirun}/test-prefix
start=$(date +%s)
PREFIX=$prefix ./install.sh --no-demo --build-interpreter >&2
if [ "$(head -c 4 "$prefix/bin/ocirun" | od -An -c | tr -d ' ')" != '177ELF' ]; then
    echo "test-interpreter: the built interpreter was not installed (see above)" >&2
    exit 1
fi
echo "test-interpreter: installed in $(( $(date +%s) - start )) s; the tests run" \
    "$prefix/bin/ocirun" >&2
echo "OCIRUN_COMMAND=$prefix/bin/ocirun; export OCIRUN_COMMAND"
