"""Write bundle.marshal: the compiled code of every module of the ocirun package in
DIR, for ocirun.boot. Run with the interpreter the command will use, with
`-X no_debug_ranges` (no column tables: code objects a third smaller):
    python3 -X no_debug_ranges scripts/build-bundle.py STAGING/ocirun [FINAL/ocirun]

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


def main(pkg_dir, final_dir=None):
    """final_dir: where the package will live once installed (file names in the
    code objects and __file__ must name that, not the staging directory)."""
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
    with open(out + ".tmp", "wb") as f:
        f.write(len(new).to_bytes(8, "little"))
        f.write(new)
        for _, blob, _ in blobs.values():
            f.write(blob)
    os.replace(out + ".tmp", out)
    print(f"bundled {len(blobs)} modules ({offset} bytes) and {len(extensions)} extension "
          f"paths into {out}")


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
    main(*sys.argv[1:3])
