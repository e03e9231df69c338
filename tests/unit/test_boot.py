"""The installed launcher's loader: every module from one bundle file."""
import json
import marshal
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

from support import REPO


@pytest.fixture
def installed(tmp_path):
    """The package copied as install.sh lays it out, with its bundle and launcher."""
    lib = tmp_path / "lib"
    shutil.copytree(f"{REPO}/ocirun", lib / "ocirun",
                    ignore=shutil.ignore_patterns("__pycache__", "bundle.marshal", "boot.code"))
    launcher = tmp_path / "ocirun"
    r = subprocess.run([sys.executable, "-X", "no_debug_ranges", f"{REPO}/scripts/build-bundle.py",
                        str(lib / "ocirun"), "--launcher", str(launcher)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return lib, launcher


def _run(launcher, *args):
    return subprocess.run([sys.executable, "-I", "-S", str(launcher), *args],
                          capture_output=True, text=True)


def _with_bundle(lib, body):
    """`body` (Python) run in a fresh interpreter whose imports come from the bundle
    of the package in `lib`; -> its stdout."""
    probe = (f"import sys\nsys.path.insert(0, {str(lib)!r})\nfrom ocirun import boot\n"
             f"assert boot.install()\n{body}")
    r = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_bundle_serves_the_commands(installed, tmp_path):
    lib, launcher = installed
    r = _run(launcher, "features")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["linux"]["seccomp"]["enabled"]
    r = _run(launcher, "--root", str(tmp_path / "root"), "state", "nope")
    assert r.returncode == 1 and "does not exist" in r.stderr


def test_modules_come_from_the_bundle(installed):
    lib, launcher = installed
    out = _with_bundle(lib, "import ocirun.lifecycle.create as c\n"
                            "print(type(sys.meta_path[0]).__name__, c.__file__, "
                            "c.__spec__.loader.__class__.__name__)")
    finder, path, loader = out.split()
    assert finder == loader == "BundleFinder"
    assert path == f"{lib}/ocirun/lifecycle/create.py"


def test_foreign_or_broken_bundle_falls_back(installed):
    lib, launcher = installed
    bundle = lib / "ocirun" / "bundle.marshal"
    header = marshal.dumps({"__hexversion__": 1, "base": 0, "index": {}})
    bundle.write_bytes(len(header).to_bytes(8, "little") + header)
    r = _run(launcher, "features")
    assert r.returncode == 0 and json.loads(r.stdout)
    bundle.write_bytes(b"garbage")
    r = _run(launcher, "features")
    assert r.returncode == 0 and json.loads(r.stdout)
    os.unlink(bundle)
    r = _run(launcher, "--version")
    assert r.returncode == 0 and r.stdout.startswith("ocirun version")


def _header(bundle):
    data = bundle.read_bytes()
    size = int.from_bytes(data[:8], "little")
    return marshal.loads(data[8:8 + size]), data[8 + size:]


def _rewrite_header(bundle, header, body):
    """A new header of the same layout (base moves with the header's length)."""
    while True:
        blob = marshal.dumps(header)
        if header["base"] == 8 + len(blob):
            break
        header["base"] = 8 + len(blob)
    bundle.write_bytes(len(blob).to_bytes(8, "little") + blob + body)


def test_extensions_load_from_recorded_paths(installed):
    """The C extensions the package imports are loaded from the paths the bundle
    recorded, without a search of sys.path."""
    lib, launcher = installed
    header, _ = _header(lib / "ocirun" / "bundle.marshal")
    ext = header["extensions"]
    import _json
    if getattr(_json, "__file__", None):
        assert ext["_json"] == _json.__file__
    built = [p for p in os.listdir(lib / "ocirun") if p.startswith("_sys.")]
    if built:
        assert ext["ocirun._sys"] == f"{lib}/ocirun/{built[0]}"
    assert not [n for n in ext if n in sys.builtin_module_names]
    # only the interpreter's own library and ours: a third-party module stays optional
    stdlib = sysconfig.get_path("platstdlib")
    assert all(p.startswith((f"{lib}/", f"{stdlib}/")) for p in ext.values()), ext
    out = _with_bundle(lib, "import _json, ocirun.kernel\n"
                            "print(_json.__spec__.loader.__class__.__name__, _json.__spec__.origin)")
    if "_json" in ext:
        assert out.split() == ["ExtensionFileLoader", ext["_json"]]


def test_extension_moved_since_install_is_searched_for(installed):
    lib, launcher = installed
    bundle = lib / "ocirun" / "bundle.marshal"
    header, body = _header(bundle)
    header["extensions"] = {name: "/nonexistent/" + name + ".so" for name in
                            ("_json", "ocirun._sys")}
    _rewrite_header(bundle, header, body)
    r = _run(launcher, "features")
    assert r.returncode == 0 and json.loads(r.stdout), r.stderr


def test_the_extension_for_this_interpreter_is_recorded(tmp_path):
    """A package directory holding builds for several interpreters records the one
    this interpreter would import (its first extension suffix), whatever the order."""
    import importlib.machinery
    pkg = tmp_path / "ocirun"
    shutil.copytree(f"{REPO}/ocirun", pkg,
                    ignore=shutil.ignore_patterns("__pycache__", "bundle.marshal", "*.so"))
    own = importlib.machinery.EXTENSION_SUFFIXES[0]
    for name in ("_sys.cpython-399-x86_64-linux-gnu.so", "_sys.abi3.so", "_sys" + own, "_sys.so"):
        (pkg / name).write_bytes(b"")
    r = subprocess.run([sys.executable, "-X", "no_debug_ranges", f"{REPO}/scripts/build-bundle.py",
                        str(pkg)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    header, _ = _header(pkg / "bundle.marshal")
    assert header["extensions"]["ocirun._sys"] == f"{pkg}/_sys{own}"


# What importlib sets on a module that the bundle's own load path must set the same.
_ATTRS_PROBE = """import sys
sys.path.insert(0, {lib!r})
from ocirun import boot
if {bundle}:
    assert boot.install()
import _frozen_importlib
assert "_struct" not in sys.modules and "_json" not in sys.modules
import ocirun.lifecycle.create, ocirun.cli.main, ocirun.linux, ocirun.seccomp
out = {{}}
for name in ("ocirun.lifecycle.create", "ocirun.lifecycle", "ocirun.cli.main", "ocirun.linux",
             "ocirun.seccomp", "ocirun.config.validate", "_struct", "_json", "ocirun._sys"):
    m = sys.modules[name]
    parent, _, child = name.rpartition(".")
    out[name] = dict(file=getattr(m, "__file__", None), package=m.__package__,
                     path=getattr(m, "__path__", None),
                     spec=(m.__spec__.name, m.__spec__.origin, m.__spec__.parent,
                           m.__spec__.submodule_search_locations, m.__spec__.has_location,
                           type(m.__spec__.loader).__name__ if name[0] == "_" else None),
                     loader=m.__loader__ is m.__spec__.loader,
                     bound=not parent or getattr(sys.modules[parent], child) is m)
out["hook"] = type(getattr(_frozen_importlib._find_and_load, "__self__", None)).__name__
print(repr(out))
"""


def test_bundle_load_sets_what_importlib_sets(installed):
    """A bundle module, a recorded C extension and a built-in module loaded by
    BundleFinder.find_and_load (importlib's generic path bypassed) have the attributes,
    spec and parent binding a normal import gives them."""
    import ast
    lib, _ = installed
    seen = {}
    for bundle in (True, False):
        r = subprocess.run([sys.executable, "-I", "-S", "-c",
                            _ATTRS_PROBE.format(lib=str(lib), bundle=bundle)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        seen[bundle] = ast.literal_eval(r.stdout)
    assert seen[True].pop("hook") == "BundleFinder"
    assert seen[False].pop("hook") != "BundleFinder"
    assert seen[True] == seen[False]


def test_a_failing_bundle_module_is_not_left_loaded(installed):
    """As with importlib: a module whose code raises is removed from sys.modules and not
    bound to its package, and importing it again runs it again."""
    lib, _ = installed
    (lib / "ocirun" / "boom.py").write_text("import sys\nsys.boom_runs = getattr(sys, 'boom_runs', 0) + 1\n"
                                            "raise RuntimeError('boom')\n")
    r = subprocess.run([sys.executable, "-X", "no_debug_ranges", f"{REPO}/scripts/build-bundle.py",
                        str(lib / "ocirun")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (lib / "ocirun" / "boom.py").unlink()  # only the bundle has it
    out = _with_bundle(lib, "import ocirun\n"
                            "for _ in range(2):\n"
                            "    try:\n"
                            "        import ocirun.boom\n"
                            "    except RuntimeError:\n"
                            "        pass\n"
                            "print(sys.boom_runs, 'ocirun.boom' in sys.modules, hasattr(ocirun, 'boom'))")
    assert out.split() == ["2", "False", "False"]


def test_launcher_runs_boot_from_its_compiled_code(installed):
    """The launcher takes ocirun.boot's code from boot.code: the command works with
    boot.py gone, and boot's module is the one the launcher made (no spec: not
    imported)."""
    lib, launcher = installed
    assert os.access(launcher, os.X_OK)
    assert launcher.read_text().startswith(f"#!{sys.executable} -IS\n")
    (lib / "ocirun" / "boot.py").unlink()
    r = _run(launcher, "--version")
    assert r.returncode == 0 and r.stdout.startswith("ocirun version"), r.stderr
    probe = launcher.read_text().replace("boot.main()", "print(boot.__spec__, boot.BUNDLE)")
    r = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["None", f"{lib}/ocirun/bundle.marshal"]


@pytest.mark.parametrize("damage", ["missing", "foreign", "garbage", "truncated", "empty"])
def test_launcher_imports_boot_when_its_code_does_not_fit(installed, damage):
    lib, launcher = installed
    code = lib / "ocirun" / "boot.code"
    if damage == "missing":
        code.unlink()
    elif damage == "foreign":
        code.write_bytes((sys.hexversion + 1).to_bytes(8, "little") + code.read_bytes()[8:])
    elif damage == "garbage":
        code.write_bytes(sys.hexversion.to_bytes(8, "little") + b"\xff garbage")
    elif damage == "truncated":
        code.write_bytes(code.read_bytes()[:200])
    else:
        code.write_bytes(b"")
    probe = launcher.read_text().replace("boot.main()", "print(boot.__spec__.origin)\nboot.main()")
    r = subprocess.run([sys.executable, "-I", "-S", "-c", probe, "--version"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    origin, first = r.stdout.splitlines()[:2]
    assert origin == f"{lib}/ocirun/boot.py"
    assert first.startswith("ocirun version")


def test_none_in_sys_modules_halts_the_import(installed):
    """As with importlib: a None entry in sys.modules makes the import fail."""
    lib, _ = installed
    out = _with_bundle(lib, "out = []\n"
                            "for name in ('ocirun.timings', '_json', '_struct'):\n"
                            "    sys.modules[name] = None\n"
                            "    try:\n"
                            "        __import__(name)\n"
                            "        out.append('imported')\n"
                            "    except ModuleNotFoundError as e:\n"
                            "        out.append('halted' if 'halted' in str(e) else str(e))\n"
                            "print(*out)")
    assert out.split() == ["halted"] * 3
