#!/bin/sh
# Install ocirun for this machine and run a first container.
#   ./install.sh            install to /usr/local, then run the demo container
#   PREFIX=/opt/x ./install.sh --no-demo
set -eu
cd "$(dirname "$0")"
PREFIX=${PREFIX:-/usr/local}
PYTHON=${PYTHON:-/usr/bin/python3}
LIB="$PREFIX/lib/ocirun"

need() { command -v "$1" >/dev/null 2>&1 || [ -x "$1" ]; }
apt_install() {
    [ "$(id -u)" = 0 ] || { echo "install.sh: run as root to install $*" >&2; exit 1; }
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

need "$PYTHON" || apt_install python3
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    { echo "install.sh: ocirun needs Python >= 3.11 at $PYTHON" >&2; exit 1; }

# The package, compiled once here: the command never writes bytecode at run time.
rm -rf "$LIB.new"
mkdir -p "$LIB.new"
cp -r ocirun "$LIB.new/"
find "$LIB.new" \( -name __pycache__ -o -name '*.so' \) -prune -exec rm -rf {} +
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
sed -i "s/^COMMIT = .*/COMMIT = \"$commit\"/" "$LIB.new/ocirun/__init__.py"
# The syscall extension (optional: ctypes otherwise, ~2 ms slower per command).
./scripts/build-ext.sh "$PYTHON" "$LIB.new/ocirun" || true
"$PYTHON" -m compileall -q -j 0 -s "$LIB.new" -p "$LIB" "$LIB.new/ocirun"
# Every module's code in one file, for the launcher (see ocirun/boot.py), and the
# launcher itself: the command, -I -S (no site processing, no user site, no cwd on
# sys.path), reading ocirun.boot's code from boot.code.
mkdir -p "$PREFIX/bin"
"$PYTHON" -X no_debug_ranges scripts/build-bundle.py "$LIB.new/ocirun" "$LIB/ocirun" \
    --launcher "$PREFIX/bin/ocirun.new" >/dev/null
rm -rf "$LIB.old"
[ -d "$LIB" ] && mv "$LIB" "$LIB.old"
mv "$LIB.new" "$LIB"
rm -rf "$LIB.old"

mv "$PREFIX/bin/ocirun.new" "$PREFIX/bin/ocirun"
echo "installed: $("$PREFIX/bin/ocirun" --version | head -1) -> $PREFIX/bin/ocirun"

[ "${1:-}" = "--no-demo" ] && exit 0
exec ./scripts/demo.sh "$PREFIX/bin/ocirun"
