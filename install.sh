#!/bin/sh
# Install ocirun for this machine and run a first container.
#   ./install.sh            install to /usr/local, then run the demo container
#   PREFIX=/opt/x ./install.sh --no-demo
#   ./install.sh --build-interpreter [--no-demo]
#                           also build ocirun's own interpreter (docs/interpreter.md:
#                           minutes the first time, cached in /var/cache/ocirun) and
#                           make it the command; Debian's python3 stays the fallback
set -eu
cd "$(dirname "$0")"
PREFIX=${PREFIX:-/usr/local}
demo=1
build=""
for arg in "$@"; do
    case $arg in
        --no-demo) demo="" ;;
        --build-interpreter) build=1 ;;
        *) echo "install.sh: unknown option $arg (--no-demo, --build-interpreter)" >&2; exit 2 ;;
    esac
done
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
    --launcher "$LIB.new/launcher" >/dev/null
if [ -n "$build" ]; then
    # ocirun's interpreter (interpreter/build.sh): the program, and the standard
    # library's modules beside the package; PREFIX/lib/ocirun/python3 runs it as python3
    out=${OCIRUN_CACHE:-/var/cache/ocirun}/interpreter/out
    if ./interpreter/build.sh --package "$LIB.new/ocirun" "$out"; then
        cp -a "$out/python" "$LIB.new/python"
        ln -s ../../bin/ocirun "$LIB.new/python3"
    else
        echo "install.sh: the interpreter did not build; the command runs $PYTHON" >&2
        build=""
    fi
fi
rm -rf "$LIB.old"
[ -d "$LIB" ] && mv "$LIB" "$LIB.old"
mv "$LIB.new" "$LIB"
rm -rf "$LIB.old"

cp "$LIB/launcher" "$PREFIX/bin/ocirun.new"
if [ -n "$build" ]; then
    # The built program becomes the command only once it has passed its self-check
    # (interpreter/selfcheck.sh); otherwise the launcher over Debian's python3 stays.
    install -m 755 "$out/ocirun" "$PREFIX/bin/ocirun.check"
    if ./interpreter/selfcheck.sh "$PREFIX/bin/ocirun.check" "$LIB"; then
        mv "$PREFIX/bin/ocirun.check" "$PREFIX/bin/ocirun.new"
        # bytecode for the standard library's modules that are not frozen in
        ln -sf ocirun.new "$PREFIX/bin/python3.ocirun-compile"
        "$PREFIX/bin/python3.ocirun-compile" -I -S -m compileall -q -j 0 "$LIB/python" >/dev/null
        rm -f "$PREFIX/bin/python3.ocirun-compile"
    else
        rm -f "$PREFIX/bin/ocirun.check"
        echo "install.sh: the built interpreter failed its self-check; the command runs $PYTHON" >&2
    fi
fi
mv "$PREFIX/bin/ocirun.new" "$PREFIX/bin/ocirun"
echo "installed: $("$PREFIX/bin/ocirun" --version | head -1) -> $PREFIX/bin/ocirun" \
    "($(head -c 2 "$PREFIX/bin/ocirun" | grep -q '#!' && echo "$PYTHON" || echo "its own interpreter"))"

[ -n "$demo" ] || exit 0
exec ./scripts/demo.sh "$PREFIX/bin/ocirun"
