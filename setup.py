"""What pyproject.toml cannot say for this setuptools (Debian 12 has 66): the optional C
extension ocirun._sys, and the commit stamped into the built package.

ocirun._sys (ocirun/_sys.c) makes raw syscalls without ctypes. Where no C compiler or
no Python headers are installed, or the file does not compile, the package is built
without it, with one line saying so on stderr (`pip install -v` shows the build's
output): ocirun/kernel.py then uses ctypes, about 2 ms slower per command."""
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
WITHOUT = ("ocirun: {why}: building without the ocirun._sys extension "
           "(ocirun uses ctypes, about 2 ms slower per command)\n")


class OptionalBuildExt(build_ext):
    """build_ext that never fails the install: a missing compiler or header, or a
    compile error, leaves the extension out and says so in one line."""

    def build_extension(self, ext):
        why = self._missing() or self._build_quietly(ext)
        if why:
            sys.stderr.write(WITHOUT.format(why=why))
            # an earlier build's output in the same build directory must not ship
            stale = self.get_ext_fullpath(ext.name)
            if os.path.exists(stale):
                os.unlink(stale)

    def _missing(self):
        cc = getattr(self.compiler, "compiler_so", None) or ()
        if cc and not shutil.which(cc[0]):
            return f"no C compiler (`{cc[0]}` not found)"
        include = sysconfig.get_paths()["include"]
        if not os.path.exists(os.path.join(include, "Python.h")):
            return f"no Python headers (`{include}/Python.h` not found)"
        return None

    def _build_quietly(self, ext):
        """Compile with the compiler's output in a file: shown as usual when it
        succeeds, reduced to its first error line when it fails."""
        with tempfile.TemporaryFile() as log:
            sys.stdout.flush()
            sys.stderr.flush()
            saved = os.dup(1), os.dup(2)
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            failure = None
            try:
                super().build_extension(ext)
            except Exception as e:  # CompileError, LinkError, DistutilsExecError, OSError
                failure = e
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                for fd, copy in zip((1, 2), saved):
                    os.dup2(copy, fd)
                    os.close(copy)
            log.seek(0)
            text = log.read().decode(errors="replace")
        if failure is None:
            sys.stdout.write(text)
            return None
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        first = next((line for line in lines if "error:" in line), None)
        return f"_sys.c did not compile ({first or failure})"


class StampCommit(build_py):
    """As install.sh does: the built package's ocirun.COMMIT names the checkout's
    commit (`ocirun --version`), when the source is a git checkout."""

    def run(self):
        super().run()
        try:
            commit = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                                    capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            commit = ""
        path = os.path.join(self.build_lib, "ocirun", "__init__.py")
        if not commit or not os.path.exists(path):
            return
        with open(path) as f:
            lines = f.read().split("\n")
        lines = [f'COMMIT = "{commit}"' if line.startswith("COMMIT = ") else line
                 for line in lines]
        with open(path, "w") as f:
            f.write("\n".join(lines))


setup(
    # optional: an editable install copies the extension into the tree only if built
    ext_modules=[Extension("ocirun._sys", ["ocirun/_sys.c"], extra_compile_args=["-Wall"],
                           extra_link_args=["-s"], optional=True)],
    cmdclass={"build_ext": OptionalBuildExt, "build_py": StampCommit},
)
