"""Start-up of the installed command: every ocirun module from one file.

Importing ~35 small modules the usual way costs ~8 syscalls each (stat the
directory, stat, open, fstat, read the .pyc, ...): ~600 syscalls, several
milliseconds of `ocirun run`. install.sh writes `bundle.marshal` next to the package:
the compiled code of every module, keyed by name. This finder serves imports from it,
one file read for all. C extensions (ours, and the interpreter's that are not built
in) are loaded from the paths the bundle records, without searching sys.path. Anything
not in the bundle, and any bundle that does not match this interpreter, falls back to
the normal import system.
"""
import marshal
import sys

import posix

BUNDLE = __file__.rpartition("/")[0] + "/bundle.marshal"
_ModuleSpec = sys.modules["_frozen_importlib"].ModuleSpec
_ExtensionFileLoader = sys.modules["_frozen_importlib_external"].ExtensionFileLoader


class BundleFinder:
    """A meta path finder and loader over the bundle's index
    {name: (is_package, offset, size, path)}, reading code from the open file `fd`,
    and over {name: path} of C extensions."""

    def __init__(self, index, fd, extensions=None):
        self.modules = index
        self.fd = fd
        self.extensions = extensions or {}

    def find_spec(self, name, path=None, target=None):
        entry = self.modules.get(name)
        if entry is None:
            return self._extension_spec(name)
        spec = _ModuleSpec(name, self, origin=entry[3], is_package=entry[0])
        if entry[0]:
            # the package's directory stays searchable (for the C extension)
            spec.submodule_search_locations = [entry[3].rpartition("/")[0]]
        spec.has_location = True
        return spec

    def _extension_spec(self, name):
        so = self.extensions.get(name)
        if so is None:
            return None
        try:
            posix.stat(so)
        except OSError:  # gone since install: let the import system look for it
            return None
        spec = _ModuleSpec(name, _ExtensionFileLoader(name, so), origin=so)
        spec.has_location = True
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        _, offset, size, path = self.modules[module.__name__]
        module.__file__ = path
        exec(marshal.loads(posix.pread(self.fd, size, offset)), module.__dict__)


def install(path=BUNDLE):
    fd = -1
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
        size = int.from_bytes(posix.pread(fd, 8, 0), "little")
        if size > 1 << 24:
            raise ValueError("not a bundle")
        header = marshal.loads(posix.pread(fd, size, 8))
        if header.get("__hexversion__") != sys.hexversion:
            raise ValueError("bytecode of another interpreter")
        index = {name: (pkg, header["base"] + off, n, p)
                 for name, (pkg, off, n, p) in header["index"].items()}
        extensions = header.get("extensions")
    except (OSError, ValueError, EOFError, TypeError, AttributeError, KeyError, MemoryError):
        if fd >= 0:
            posix.close(fd)
        return False
    sys.meta_path.insert(0, BundleFinder(index, fd, extensions))
    return True


def main():
    # A command lives for milliseconds and makes few cycles: collections during the
    # imports would only cost time (~0.3 ms measured on `run`).
    import gc
    gc.disable()
    install()
    from ocirun.cli.main import run_and_exit
    run_and_exit()
