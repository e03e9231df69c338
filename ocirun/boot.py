"""Start-up of the installed command: every ocirun module from one file.

Importing ~35 small modules the usual way costs ~8 syscalls each (stat the
directory, stat, open, fstat, read the .pyc, ...): ~600 syscalls, several
milliseconds of `ocirun run`. install.sh writes `bundle.marshal` next to the package:
the compiled code of every module, keyed by name. This finder serves imports from it,
one file read for all. C extensions (ours, and the interpreter's that are not built
in) are loaded from the paths the bundle records, without searching sys.path. Anything
not in the bundle, and any bundle that does not match this interpreter, falls back to
the normal import system.

A module is also loaded without most of importlib: CPython's import statement, for a
name not yet in sys.modules, calls `_find_and_load` of the frozen importlib, looked up
on that module at each call. Its generic path (module locks, the meta path, a spec,
`_init_module_attrs` with `__cached__` worked out from the file name) costs 15-20 us a
module here; the command imports ~45 of ours. `BundleFinder.find_and_load` stands in
for it: for a bundle module, a recorded C extension or a built-in one, it makes the
module, sets what importlib would set (`__spec__`, `__loader__`, `__file__`,
`__package__`, `__path__`), runs it and binds it to its parent package, in ~3 us plus
the module's own cost; any other name goes to importlib's own. No module locks: the
command imports on its one thread.

The launcher (scripts/build-bundle.py LAUNCHER) runs this module's code from boot.code
rather than importing it.

ocirun's own interpreter (interpreter/, `./install.sh --build-interpreter`) has these
modules frozen in as static code objects: its main calls `frozen_main`, which serves
them through the same `find_and_load` without reading or unmarshalling anything.
"""
import marshal
import sys

import posix

BUNDLE = __file__.rpartition("/")[0] + "/bundle.marshal"
_importlib = sys.modules["_frozen_importlib"]
_ModuleSpec = _importlib.ModuleSpec
_ExtensionFileLoader = sys.modules["_frozen_importlib_external"].ExtensionFileLoader
_BuiltinImporter = _importlib.BuiltinImporter
_BUILTIN = frozenset(sys.builtin_module_names)
_Module = type(sys)


class BundleFinder:
    """A meta path finder and loader over the bundle's index
    {name: (is_package, offset, size, path)}, reading code from the open file `fd`,
    and over {name: path} of C extensions."""

    def __init__(self, index, fd, extensions=None):
        self.modules = index
        self.fd = fd
        self.extensions = extensions or {}
        self.default_find_and_load = getattr(_importlib, "_find_and_load", None)

    def find_spec(self, name, path=None, target=None):
        entry = self.modules.get(name)
        if entry is None:
            return self._extension_spec(name)
        return self._spec(name, entry)

    def _spec(self, name, entry):
        spec = _ModuleSpec(name, self, origin=entry[3], is_package=entry[0])
        if entry[0]:
            # the package's directory stays searchable (for the C extension)
            spec.submodule_search_locations = [entry[3].rpartition("/")[0]]
        spec.has_location = True
        return spec

    def _extension_spec(self, name):
        so = self.extensions.get(name)
        if so is None or name in _BUILTIN:  # built into this interpreter: that one
            return None
        try:
            posix.stat(so)
        except OSError:  # gone since install: let the import system look for it
            return None
        spec = _ModuleSpec(name, _ExtensionFileLoader(name, so), origin=so)
        spec.has_location = True
        return spec

    def find_and_load(self, name, import_):
        """importlib's `_find_and_load(name, import_)` (see the module's docstring)."""
        entry = self.modules.get(name)
        if (entry is None and name not in self.extensions and name not in _BUILTIN
                or sys.modules.get(name, 0) is None):  # (importlib halts that import)
            return self.default_find_and_load(name, import_)
        parent, _, child = name.rpartition(".")
        if parent:
            if parent not in sys.modules:
                import_(parent)
            if name in sys.modules:  # the parent's own code imported it
                return sys.modules[name]
        if entry is not None:
            spec = self._spec(name, entry)
            module = _Module(name)
        else:
            spec = _ModuleSpec(name, _BuiltinImporter, origin="built-in") \
                if name in _BUILTIN else self._extension_spec(name)
            if spec is None:  # the recorded file is gone
                return self.default_find_and_load(name, import_)
            module = spec.loader.create_module(spec)
        module.__spec__ = spec
        module.__loader__ = spec.loader
        if spec.submodule_search_locations is not None:
            module.__path__ = spec.submodule_search_locations
            module.__package__ = name
        else:
            module.__package__ = parent
        if spec.has_location:
            module.__file__ = spec.origin
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        module = sys.modules[name]  # as importlib: a module may replace itself
        if parent:
            setattr(sys.modules[parent], child, module)
        return module

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        _, offset, size, path = self.modules[module.__name__]
        module.__file__ = path
        exec(marshal.loads(posix.pread(self.fd, size, offset)), module.__dict__)


class FrozenFinder(BundleFinder):
    """BundleFinder over the modules frozen into ocirun's interpreter: ocirun's and
    the standard library's it imports, as listed by the build in ocirun._frozen.
    `__file__` names where the module's source is installed (the package in `lib`,
    the standard library's directory)."""

    def __init__(self, lib):
        import _imp
        self.frozen = _imp
        listing = {}  # its code run here: an import would cost ~0.1 ms
        exec(_imp.get_frozen_object("ocirun._frozen"), listing)
        super().__init__(_FrozenIndex(listing["FROZEN"], lib,
                                      getattr(sys, "_stdlib_dir", None) or ""), -1)

    def exec_module(self, module):
        exec(self.frozen.get_frozen_object(module.__name__), module.__dict__)


class _FrozenIndex(dict):
    """The bundle index's entries (is_package, -, -, path) of the frozen modules, each
    made when first asked for."""

    def __init__(self, frozen, lib, stdlib):
        super().__init__()
        self.names = frozen
        self.lib = lib
        self.stdlib = stdlib

    def get(self, name, default=None):
        entry = dict.get(self, name)
        if entry is None:
            ispkg = self.names.get(name)
            if ispkg is None:
                return default
            base = self.lib if name.startswith("ocirun") else self.stdlib
            path = base + "/" + name.replace(".", "/") + ("/__init__.py" if ispkg else ".py")
            entry = self[name] = (ispkg, 0, 0, path)
        return entry


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
    finder = BundleFinder(index, fd, extensions)
    sys.meta_path.insert(0, finder)
    if finder.default_find_and_load is not None:
        _importlib._find_and_load = finder.find_and_load
    return True


def main():
    # A command lives for milliseconds and makes few cycles: collections during the
    # imports would only cost time (~0.3 ms measured on `run`).
    import gc
    gc.disable()
    install()
    from ocirun.cli.main import run_and_exit
    run_and_exit()


def frozen_main():
    """The command's entry in ocirun's interpreter (interpreter/main.c): ocirun's
    package is installed beside sys.executable (PREFIX/lib/ocirun/python3)."""
    import gc
    gc.disable()
    lib = sys.executable.rpartition("/")[0]
    finder = FrozenFinder(lib)
    sys.meta_path.insert(0, finder)
    _importlib._find_and_load = finder.find_and_load
    package = sys.modules["ocirun"]  # imported by main.c, through importlib
    package.__file__ = lib + "/ocirun/__init__.py"
    package.__path__ = [lib + "/ocirun"]
    from ocirun.cli.main import run_and_exit
    run_and_exit()
