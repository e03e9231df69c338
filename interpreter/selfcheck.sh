#!/bin/sh
# The self-check of a built ocirun interpreter before it becomes the command
# (install.sh --build-interpreter):
#   interpreter/selfcheck.sh PREFIX/bin/PROGRAM PREFIX/lib/ocirun
# The program must be the one this checkout froze in (ocirun's modules, the syscall
# extension built in), run as python3, and give the same `--version` as the launcher
# over Debian's python3 without falling back to it.
set -eu
bin=$1
lib=$2
dir=$(dirname "$bin")
# run by a name starting with "python", the program is python3 (interpreter/main.c)
py="$dir/python3.ocirun-check"
ln -sf "$(basename "$bin")" "$py"
trap 'rm -f "$py"' EXIT
fail() { echo "selfcheck: $*" >&2; exit 1; }
"$py" -I -S -c '
import sys, _imp
assert sys.version_info[:3] == (3, 11, 2), sys.version
for name in ("ocirun", "ocirun.boot", "ocirun.cli.main", "encodings.utf_8"):
    assert _imp.is_frozen(name), name + " is not frozen in"
assert "ocirun._sys" in sys.builtin_module_names, "ocirun._sys is not built in"
import os, json, subprocess  # the standard library, frozen in or beside the program
' || fail "$bin: not the interpreter this checkout builds"
want=$("$lib/launcher" --version) || fail "$lib/launcher --version failed"
got=$(OCIRUN_INTERPRETER_DEBUG=1 "$bin" --version 2>"$py.err") || fail "$bin --version failed"
err=$(cat "$py.err"); rm -f "$py.err"
[ -z "$err" ] || fail "$bin --version: $err"
[ "$got" = "$want" ] || fail "$bin --version: \"$got\", the launcher's: \"$want\""
