"""ocirun: an OCI container runtime.

The library is ocirun.api (Runtime, Container), ocirun.errors and ocirun.timings;
docs/api.md shows each call."""
import sys

# The one place the version is written (pyproject.toml reads it from here).
VERSION = "0.1.0"
COMMIT = "unknown"
# The runtime-spec release this runtime implements (config.md ociVersion).
SPEC_VERSION = "1.2.0"

# What the code needs, said once at import rather than as an error deep inside a
# call: CPython (ocirun._sys and the start-up path use its C modules), 3.11 or newer,
# Linux on a machine whose syscall numbers ocirun/kernel.py knows.
if (sys.implementation.name != "cpython" or sys.version_info < (3, 11)
        or sys.platform != "linux"
        or __import__("posix").uname().machine not in ("x86_64", "aarch64")):
    _here = {"cpython": "CPython", "pypy": "PyPy"}.get(sys.implementation.name,
                                                     sys.implementation.name)
    _here += f" {sys.version.split()[0]} on {sys.platform}"
    if sys.platform == "linux":
        _here += " " + __import__("posix").uname().machine
    raise ImportError(f"ocirun needs CPython 3.11 or newer on Linux x86_64 or aarch64; "
                      f"this is {_here}")
