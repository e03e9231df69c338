#!/bin/sh
# Build ocirun/_sys*.so (raw syscalls without ctypes) for PYTHON. Optional: without
# a C compiler and Python headers ocirun uses ctypes instead.
#   scripts/build-ext.sh [PYTHON] [OUTDIR]
set -eu
cd "$(dirname "$0")/.."
PYTHON=${1:-/usr/bin/python3}
OUT=${2:-ocirun}
inc=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
suffix=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
if ! command -v cc >/dev/null 2>&1 || [ ! -f "$inc/Python.h" ]; then
    echo "build-ext: no C compiler or Python headers; ocirun will use ctypes" >&2
    exit 1
fi
cc -O2 -shared -fPIC -Wall -Werror -I"$inc" -o "$OUT/_sys$suffix" ocirun/_sys.c
echo "built $OUT/_sys$suffix"
