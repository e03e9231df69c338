"""The package's metadata and its import-time requirements."""
import glob
import os
import re
import subprocess
import tomllib

import pytest

from support import REPO

IMPORT_ERROR = re.compile(r"ImportError: ocirun needs CPython 3\.11 or newer on Linux x86_64 "
                          r"or aarch64; this is (.*)")


def test_version_from_one_place():
    """pyproject.toml reads the version from ocirun/__init__.py (VERSION) and writes
    none of its own."""
    with open(f"{REPO}/pyproject.toml", "rb") as f:
        project = tomllib.load(f)
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "ocirun.VERSION"}
    assert project["project"]["scripts"] == {"ocirun": "ocirun.cli.main:run_and_exit"}
    assert project["project"]["requires-python"] == ">=3.11"
    with open(f"{REPO}/ocirun/__init__.py") as f:
        assert len(re.findall(r'^VERSION = "\d+\.\d+\.\d+"$', f.read(), re.M)) == 1


def _import(python, before=""):
    code = f"import sys; sys.path.insert(0, {REPO!r}); {before}import ocirun.api"
    return subprocess.run([python, "-I", "-S", "-c", code], capture_output=True, text=True)


def _one_import_error(r):
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if re.match(r"^\w+(Error|Exception)\b", line)]
    assert len(errors) == 1 and "During handling" not in r.stderr, r.stderr
    m = IMPORT_ERROR.fullmatch(errors[0])
    assert m, r.stderr
    return m.group(1)


def test_import_on_another_platform():
    r = _import("/usr/bin/python3", "sys.platform = 'darwin'; ")
    assert _one_import_error(r).endswith(" on darwin")


def test_import_on_another_machine():
    r = _import("/usr/bin/python3", "import posix; u = posix.uname(); "
                "posix.uname = lambda: type(u)((u[0], u[1], u[2], u[3], 's390x')); ")
    assert _one_import_error(r).endswith(" on linux s390x")


def test_import_with_an_older_python():
    old = sorted(p for p in glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3"))
                 if re.search(r"/versions/3\.([6-9]|10)\.", p))
    if not old:
        pytest.skip("no CPython older than 3.11 under ~/.pyenv/versions to import with")
    for python in old:
        version = re.search(r"/versions/([\d.]+)/", python).group(1)
        assert _one_import_error(_import(python)) == f"CPython {version} on linux x86_64"
