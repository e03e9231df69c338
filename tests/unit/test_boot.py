"""The installed launcher's loader: every module from one bundle file."""
import json
import marshal
import os
import shutil
import subprocess
import sys

import pytest

from support import REPO

LAUNCHER = """import sys
sys.path.insert(0, {lib!r})
from ocirun.boot import main
main()
"""


@pytest.fixture
def installed(tmp_path):
    """The package copied as install.sh lays it out, with its bundle."""
    lib = tmp_path / "lib"
    shutil.copytree(f"{REPO}/ocirun", lib / "ocirun",
                    ignore=shutil.ignore_patterns("__pycache__", "bundle.marshal"))
    r = subprocess.run([sys.executable, "-X", "no_debug_ranges", f"{REPO}/scripts/build-bundle.py",
                        str(lib / "ocirun")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    launcher = tmp_path / "ocirun"
    launcher.write_text(LAUNCHER.format(lib=str(lib)))
    return lib, launcher


def _run(launcher, *args):
    return subprocess.run([sys.executable, "-I", "-S", str(launcher), *args],
                          capture_output=True, text=True)


def test_bundle_serves_the_commands(installed, tmp_path):
    lib, launcher = installed
    r = _run(launcher, "features")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["linux"]["seccomp"]["enabled"]
    r = _run(launcher, "--root", str(tmp_path / "root"), "state", "nope")
    assert r.returncode == 1 and "does not exist" in r.stderr


def test_modules_come_from_the_bundle(installed):
    lib, launcher = installed
    probe = ("import sys; sys.path.insert(0, %r); from ocirun import boot; "
             "assert boot.install(); import ocirun.lifecycle.create as c; "
             "print(type(sys.meta_path[0]).__name__, c.__file__, c.__spec__.loader.__class__.__name__)"
             % str(lib))
    r = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    finder, path, loader = r.stdout.split()
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
