#!/bin/sh
# Build ocirun's own interpreter (docs/interpreter.md): CPython 3.11.2 from its upstream
# source, linked statically into one program whose main is interpreter/main.c, with
# ocirun's modules (and the standard library's it imports) frozen in as static code
# objects and ocirun/_sys.c built in.
#   interpreter/build.sh [--package DIR] DEST
# writes DEST/ocirun (the program) and DEST/python/lib/python3.11 (the standard
# library's Python modules, for what is not frozen in). install.sh --build-interpreter
# runs it and installs the result, with --package naming the package it installs
# (the checkout's ocirun/ by default).
#
# Cached under $OCIRUN_CACHE (default /var/cache/ocirun): the source tarball (fetched
# once with apt-get from Debian's source package of python3.11, which ships the upstream
# tarball unchanged: its sha256 is checked) and the configured build tree. A second
# build recompiles only the frozen modules that changed and links again.
#
# Environment: OCIRUN_PGO=1|0 (default 1: profile-guided, trained on ocirun's own
# start-up by interpreter/train.py), OCIRUN_LTO=0|1 (default 0: link-time optimisation
# saves ~0.1 ms a start here but makes every rebuild a whole-program link of minutes),
# OCIRUN_PIE=0|1 (default 0: a position-dependent executable), OCIRUN_STATIC=1|0
# (default 1: libc linked in too, so that no dynamic loader runs at start: ~0.5 ms),
# JOBS (default: CPUs).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
PACKAGE=$repo/ocirun
if [ "${1:-}" = --package ] && [ $# -ge 2 ]; then
    PACKAGE=$2
    shift 2
fi
[ $# = 1 ] || { echo "usage: interpreter/build.sh [--package DIR] DEST" >&2; exit 2; }
DEST=$1
VERSION=3.11.2
TARBALL=python3.11_$VERSION.orig.tar.gz
SHA256=2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849
PGO=${OCIRUN_PGO:-1}
LTO=${OCIRUN_LTO:-0}
PIE=${OCIRUN_PIE:-0}
STATIC=${OCIRUN_STATIC:-1}
JOBS=${JOBS:-$(nproc)}
CACHE=${OCIRUN_CACHE:-/var/cache/ocirun}/interpreter
TREE=$CACHE/pgo$PGO-lto$LTO-pie$PIE/Python-$VERSION
PY=/usr/bin/python3

say() { echo "build-interpreter: $*" >&2; }
fail() { say "$*"; exit 1; }

missing=""
command -v cc >/dev/null 2>&1 || missing="$missing gcc"
command -v make >/dev/null 2>&1 || missing="$missing make"
[ -x $PY ] || missing="$missing python3"
if [ -n "$missing" ]; then
    [ "$(id -u)" = 0 ] || fail "needs$missing"
    say "installing$missing"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = $SHA256 ]; }

# The source: Debian's source package of python3.11 through apt (only the upstream
# tarball is used), with the machine's own apt sources turned into deb-src ones in a
# scratch directory (the system's apt configuration is not changed).
fetch_source() {
    mkdir -p "$CACHE"
    sha_ok "$CACHE/$TARBALL" && return 0
    tmp=$(mktemp -d)
    mkdir -p "$tmp/etc" "$tmp/lists/partial" "$tmp/get"
    found=""
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        sed 's/^Types: deb$/Types: deb-src/' "$f" >"$tmp/etc/$(basename "$f")"
        found=1
    done
    if [ -f /etc/apt/sources.list ]; then
        sed -n 's/^deb /deb-src /p' /etc/apt/sources.list >"$tmp/etc/list.list"
        [ -s "$tmp/etc/list.list" ] && found=1
    fi
    [ -n "$found" ] || { rm -rf "$tmp"; fail "no apt sources to fetch python3.11's source from"; }
    set -- -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$tmp/etc" \
        -o Dir::State::Lists="$tmp/lists" -o APT::Sandbox::User=root
    say "fetching python3.11's source package (upstream tarball only)"
    apt-get "$@" -qq update >&2 || true
    # the Debian part may be missing on a mirror: only the upstream tarball is needed
    (cd "$tmp/get" && apt-get "$@" -qq source --download-only python3.11 >&2) || true
    if sha_ok "$tmp/get/$TARBALL"; then
        mv "$tmp/get/$TARBALL" "$CACHE/$TARBALL"
    fi
    rm -rf "$tmp"
    sha_ok "$CACHE/$TARBALL" || fail "could not fetch $TARBALL (sha256 $SHA256) with apt-get source"
}

# configure's arguments: a tree configured otherwise is extracted anew
set -- CFLAGS_NODIST=-Wno-error=coverage-mismatch
# position-dependent: LDFLAGS, not LDFLAGS_NODIST, which some of the build's own
# programs are linked without
[ "$PIE" = 0 ] && set -- "$@" CFLAGS=-fno-pie LDFLAGS=-no-pie
[ "$PGO" = 1 ] && set -- "$@" --enable-optimizations
[ "$LTO" = 1 ] && set -- "$@" --with-lto
fetch_source
mkdir -p "$(dirname "$TREE")"
echo "$*" >"$(dirname "$TREE")/configure-args.new"
if [ ! -f "$TREE/.ocirun-extracted" ] ||
        ! cmp -s "$(dirname "$TREE")/configure-args.new" "$TREE/.ocirun-configure"; then
    say "extracting $TARBALL into $TREE"
    rm -rf "$TREE"
    tar -C "$(dirname "$TREE")" -xzf "$CACHE/$TARBALL"
    touch "$TREE/.ocirun-extracted"
fi
mv "$(dirname "$TREE")/configure-args.new" "$TREE/.ocirun-configure.new"

# ocirun's modules into the tree, listed as frozen modules (before configure: the
# generated Makefile.pre.in is configure's input).
$PY "$here/freeze.py" "$PACKAGE" "$TREE"

if [ ! -f "$TREE/config.status" ] || ! cmp -s "$TREE/.ocirun-configure" "$TREE/.ocirun-configure.new"; then
    say "configuring $TREE ($*)"
    (cd "$TREE" && MODULE_BUILDTYPE=static PYTHON_FOR_REGEN=$PY \
        ./configure -q --disable-shared --without-ensurepip "$@") >&2
    mv "$TREE/.ocirun-configure.new" "$TREE/.ocirun-configure"
fi

# Every extension module of the standard library built in: on Linux, 3.11 builds them
# as shared objects with setup.py and reads Modules/Setup.stdlib (which configure writes
# with each module's flags) only for WebAssembly. Setup.local: interpreter/Setup.local
# (its rules come first and win), then Setup.stdlib's rules, all *static*.
{
    cat "$here/Setup.local"
    echo
    echo "# Modules/Setup.stdlib, as configure wrote it, built in"
    sed 's/^\*shared\*$/*static*/' "$TREE/Modules/Setup.stdlib"
} >"$TREE/Modules/Setup.local.new"
if ! cmp -s "$TREE/Modules/Setup.local.new" "$TREE/Modules/Setup.local"; then
    mv "$TREE/Modules/Setup.local.new" "$TREE/Modules/Setup.local"
else
    rm "$TREE/Modules/Setup.local.new"
fi

start=$(date +%s)
# The frozen modules (but the import system's own three) are compiled, and deepfreeze.py
# is run, by Debian's python3.11 rather than the build's bootstrap python, which lacks
# struct (deepfreeze.py reads float constants with it; CPython's own frozen modules have
# none, ocirun's do); without column tables (smaller code, as the bundle's)
set -- "PYTHON_FOR_FREEZE=$PY -X no_debug_ranges"
# The profile for PGO: ocirun's start-up, not CPython's test suite (the default).
train="$here/train.py"
use=""
if [ "$PGO" = 1 ]; then
    # the last line only: make first remakes its Makefile when Makefile.pre.in or
    # Setup.local changed (new frozen modules), and config.status says so on stdout
    use=$(make -C "$TREE" -s -f Makefile -f - print-pgo-use <<'EOF' | tail -n 1
print-pgo-use:
	@echo $(PGO_PROF_USE_FLAG)
EOF
)
fi
if [ -f "$TREE/ocirun-bin" ] && { [ "$PGO" = 0 ] || [ -f "$TREE/profile-run-stamp" ]; }; then
    # built before: what changed (the frozen modules, the library they are in) and the
    # program; CPython's own programs in the tree are not needed again
    say "rebuilding what changed"
elif [ "$PGO" = 1 ]; then
    say "building with profile-guided optimisation (make -j$JOBS profile-opt)"
    make -C "$TREE" -j"$JOBS" -s profile-opt PROFILE_TASK="$train" "$@" >&2
else
    say "building (make -j$JOBS)"
    make -C "$TREE" -j"$JOBS" -s "$@" >&2
fi
# the program: CPython's objects, interpreter/main.c and ocirun/_sys.c (linked anew: a
# few seconds, a whole-program optimisation with LTO)
link=""
[ "$STATIC" = 1 ] && link=-static
# main.c and _sys.c are compiled anew every time (two files, a few seconds): make judges
# them by mtime, and a checkout whose files are older than the objects (another
# worktree, an older commit) would otherwise link the objects of other sources
rm -f "$TREE/ocirun-bin" "$TREE/Programs/ocirun.o" "$TREE/Modules/ocirun_sys.o"
make -C "$TREE" -j"$JOBS" -s -f Makefile -f "$here/ocirun.mk" OCIRUN_SRC="$repo" ocirun-bin \
    "$@" CFLAGS_NODIST="$use" OCIRUN_LINKFLAGS="$link" >&2
say "built in $(( $(date +%s) - start )) s"

mkdir -p "$DEST"
install -m 755 -s "$TREE/ocirun-bin" "$DEST/ocirun.new"
mv "$DEST/ocirun.new" "$DEST/ocirun"
# The standard library's Python modules (without CPython's tests, IDLE, tkinter, ...
# and without the copy of ocirun the tree holds for freezing)
rm -rf "$DEST/python.new"
mkdir -p "$DEST/python.new/lib/python3.11"
(cd "$TREE/Lib" && tar -c --exclude=__pycache__ --exclude=test --exclude=tests \
    --exclude=idlelib --exclude=tkinter --exclude=turtledemo --exclude=lib2to3 \
    --exclude=ensurepip --exclude=./ocirun --exclude='*.exe' .) |
    tar -C "$DEST/python.new/lib/python3.11" -x
rm -rf "$DEST/python"
mv "$DEST/python.new" "$DEST/python"
say "wrote $DEST/ocirun ($(stat -c %s "$DEST/ocirun") bytes) and $DEST/python"
