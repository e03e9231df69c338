"""Write bundle.marshal: the compiled code of every module of the ocirun package in
DIR, for ocirun.boot, and boot.code: ocirun.boot's own code, for the command's
launcher. Run with the interpreter the command will use, with `-X no_debug_ranges` (no
column tables: code objects a third smaller):
    python3 -X no_debug_ranges scripts/build-bundle.py STAGING/ocirun [FINAL/ocirun]
        [--launcher FILE]
(one command line); --launcher also writes the command (see LAUNCHER).

Layout: 8 bytes of header length, the header marshal({"__hexversion__", "base",
"index": {name: (is_pkg, offset, size, path)}}), then the modules' marshalled code;
the launcher reads the header, then each module it imports with one pread. Docstrings are dropped
(optimize=2): nothing reads them at run time.

The header also names the file of every C extension the package imports, ours
(ocirun._sys) and the interpreter's that are not built in (e.g. _json on Debian):
importing one by path skips the search of each sys.path directory (~0.1 ms each).
"""
import ast
import importlib.machinery
import importlib.util
import marshal
import os
import sys
import sysconfig

# The installed command. ocirun.boot's code is read from boot.code (8 bytes of
# sys.hexversion, then the marshalled code) instead of being imported: an import would
# search sys.path and read the package's __init__ and boot's .pyc (~0.2 ms). Anything
# amiss (no file, another interpreter, bad data) falls back to that import.
LAUNCHER = """#!{python} -IS
# ocirun. -I -S: no site processing, no user site, no cwd on sys.path.
import posix
import sys
sys.path.insert(0, {lib!r})
try:
    fd = posix.open({code!r}, posix.O_RDONLY | posix.O_CLOEXEC)
    code = posix.read(fd, 1 << 16)
    posix.close(fd)
    if code[:8] != sys.hexversion.to_bytes(8, "little"):
        raise ValueError("boot.code of another interpreter")
    boot = type(sys)("ocirun.boot")
    boot.__file__ = {source!r}
    exec(__import__("marshal").loads(code[8:]), boot.__dict__)
    sys.modules["ocirun.boot"] = boot
except (OSError, ValueError, EOFError):
    import ocirun.boot as boot
boot.main()
"""


def main(pkg_dir, final_dir=None, launcher=None):
    """final_dir: where the package will live once installed (file names in the
    code objects and __file__ must name that, not the staging directory); launcher:
    where to write the command."""
    pkg_dir = os.path.abspath(pkg_dir)
    final_dir = os.path.abspath(final_dir or pkg_dir)
    base = os.path.dirname(pkg_dir)
    blobs = {}
    imported = set()
    for dirpath, dirnames, filenames in os.walk(pkg_dir):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for fn in filenames:
            if not fn.endswith(".py"):
                continue
            path = os.path.join(dirpath, fn)
            rel = os.path.relpath(path, base)[:-3].split(os.sep)
            is_pkg = rel[-1] == "__init__"
            if is_pkg:
                rel = rel[:-1]
            final = final_dir + path[len(pkg_dir):]
            with open(path, "rb") as f:
                code = compile(f.read(), final, "exec", dont_inherit=True, optimize=2)
            blobs[".".join(rel)] = (is_pkg, marshal.dumps(code), final)
            imported |= _top_level_imports(path)
    extensions = _extension_files(pkg_dir, final_dir, imported)
    index = {}
    offset = 0
    for name, (is_pkg, blob, path) in blobs.items():
        index[name] = (is_pkg, offset, len(blob), path)
        offset += len(blob)
    # The header's own size shifts every offset: fix it up after measuring it.
    header = marshal.dumps({"__hexversion__": sys.hexversion, "base": 0, "index": index,
                            "extensions": extensions})
    while True:
        new = marshal.dumps({"__hexversion__": sys.hexversion, "base": 8 + len(header),
                             "index": index, "extensions": extensions})
        if len(new) == len(header):
            break
        header = new
    out = os.path.join(pkg_dir, "bundle.marshal")
    _write(out, len(new).to_bytes(8, "little") + new
           + b"".join(blob for _, blob, _ in blobs.values()))
    with open(os.path.join(pkg_dir, "boot.py"), "rb") as f:
        boot = compile(f.read(), final_dir + "/boot.py", "exec", dont_inherit=True, optimize=2)
    _write(os.path.join(pkg_dir, "boot.code"),
           sys.hexversion.to_bytes(8, "little") + marshal.dumps(boot))
    if launcher:
        _write(launcher, LAUNCHER.format(python=sys.executable, lib=os.path.dirname(final_dir),
                                         code=final_dir + "/boot.code",
                                         source=final_dir + "/boot.py").encode(), mode=0o755)
    print(f"bundled {len(blobs)} modules ({offset} bytes) and {len(extensions)} extension "
          f"paths into {out}")


def _write(path, data, mode=0o644):
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.chmod(path + ".tmp", mode)
    os.replace(path + ".tmp", path)


def _top_level_imports(path):
    """Names of the top-level modules a source file imports (absolute imports)."""
    with open(path, "rb") as f:
        tree = ast.parse(f.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.partition(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.partition(".")[0])
    return names


def _extension_files(pkg_dir, final_dir, imported):
    """{module name: installed path} of the C extensions: the package's own, and the
    interpreter's among `imported` that live in a file rather than in the binary
    (its standard library only: an optional third-party module, such as libseccomp's
    binding for the benchmark, stays found or not found as sys.path says)."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    stdlib = sysconfig.get_path("platstdlib").rstrip("/") + "/"
    found = {}
    # the first suffix this interpreter would try wins (a directory may hold builds
    # for several interpreters: _sys.cpython-311-....so next to _sys.cpython-312-....so)
    for suffix in suffixes:
        for fn in sorted(os.listdir(pkg_dir)):
            name = "ocirun." + fn[:-len(suffix)]
            if fn.endswith(suffix) and "." not in fn[:-len(suffix)] and name not in found:
                found[name] = f"{final_dir}/{fn}"
    for name in sorted(imported):
        if name == "ocirun" or name in sys.builtin_module_names:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if (spec is not None and spec.origin and spec.origin.endswith(suffixes)
                and spec.origin.startswith(stdlib)):
            found[name] = spec.origin
    return found


if __name__ == "__main__":
    args = sys.argv[1:]
    launcher = None
    if "--launcher" in args:
        i = args.index("--launcher")
        launcher = args[i + 1]
        del args[i:i + 2]
    main(*args, launcher=launcher)
