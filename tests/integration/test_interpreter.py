"""ocirun's own interpreter (interpreter/, `./install.sh --build-interpreter`): the
program installed as PREFIX/bin/ocirun. Runs where the command under test is that
program (CI: scripts/test-interpreter.sh sets OCIRUN_COMMAND); the rest of the suite
then runs through it as well."""
import json
import os
import shutil
import subprocess

import pytest

from support import DEV_LAUNCHER, OCIRUN, REPO


def _is_program(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    not _is_program(OCIRUN),
    reason="the command under test is not ocirun's own interpreter "
           "(OCIRUN_TEST_INTERPRETER=1 ./scripts/test.sh builds it; CI does)")

PREFIX = os.path.dirname(os.path.dirname(OCIRUN))
PYTHON3 = f"{PREFIX}/lib/ocirun/python3"


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)


def test_it_is_python_3_11_with_ocirun_frozen_in():
    probe = ("import sys, _imp, json\n"
             "print(json.dumps({'version': list(sys.version_info[:3]),"
             " 'frozen': [n for n in ('ocirun', 'ocirun.cli.main', 'ocirun.lifecycle.create',"
             " 'ocirun.seccomp.cache', 'encodings.utf_8') if _imp.is_frozen(n)],"
             " 'builtin': 'ocirun._sys' in sys.builtin_module_names,"
             " 'executable': sys.executable}))")
    r = run([PYTHON3, "-I", "-S", "-c", probe])
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["version"] == [3, 11, 2]
    assert got["frozen"] == ["ocirun", "ocirun.cli.main", "ocirun.lifecycle.create",
                             "ocirun.seccomp.cache", "encodings.utf_8"]
    assert got["builtin"] and got["executable"] == PYTHON3


def test_same_command_as_the_launcher():
    ours = run([OCIRUN, "--version"])
    dev = run([DEV_LAUNCHER, "--version"])
    assert ours.returncode == dev.returncode == 0, ours.stderr + dev.stderr
    assert ours.stdout.splitlines()[0] == dev.stdout.splitlines()[0]
    assert ours.stderr == ""
    bad = run([OCIRUN, "nosuchverb"])
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert bad.stderr == run([DEV_LAUNCHER, "nosuchverb"]).stderr


def test_python_environment_variables_are_ignored(tmp_path):
    """As `python3 -I -S`: PYTHONPATH, PYTHONHOME, PYTHONSTARTUP, PYTHONINSPECT have no
    effect on the command."""
    (tmp_path / "ocirun").mkdir()
    (tmp_path / "ocirun" / "__init__.py").write_text("raise SystemExit('imported from PYTHONPATH')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path), PYTHONHOME=str(tmp_path),
               PYTHONSTARTUP=str(tmp_path / "x.py"), PYTHONINSPECT="1")
    r = run([OCIRUN, "--version"], env=env)
    assert r.returncode == 0 and r.stdout.startswith("ocirun version"), r.stderr


def test_hot_verbs_need_no_file_of_the_package(tmp_path, bundle):
    """The program alone, with no package and no standard library beside it, runs
    containers: everything `run`, `create`, `start`, `state`, `delete` import is
    frozen or built in."""
    prefix = tmp_path / "p"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "lib" / "ocirun").mkdir(parents=True)
    shutil.copy2(os.path.realpath(OCIRUN), prefix / "bin" / "ocirun")
    bundle.command = str(prefix / "bin" / "ocirun")
    r = bundle.run(["/bin/sh", "-c", "echo hello"])
    assert r.returncode == 0 and r.stdout == "hello\n", r.stderr
    bundle.config["process"]["args"] = ["sleep", "30"]
    cid, r = bundle.create()
    assert r.returncode == 0, r.stderr
    assert bundle.state(cid)["status"] == "created"
    assert bundle.ocirun("start", cid).returncode == 0
    assert bundle.state(cid)["status"] == "running"
    r = bundle.ocirun("delete", "--force", cid)
    assert r.returncode == 0, r.stderr


def test_falls_back_to_the_launcher(tmp_path):
    env = dict(os.environ, OCIRUN_INTERPRETER="python3", OCIRUN_INTERPRETER_DEBUG="1")
    r = run([OCIRUN, "--version"], env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == run([OCIRUN, "--version"]).stdout
    assert f"running {PREFIX}/lib/ocirun/launcher" in r.stderr
    # no launcher to fall back to: one line, exit 127
    (tmp_path / "bin").mkdir()
    shutil.copy2(os.path.realpath(OCIRUN), tmp_path / "bin" / "ocirun")
    r = run([str(tmp_path / "bin" / "ocirun"), "--version"], env=env)
    assert r.returncode == 127 and r.stdout == ""
    assert len(r.stderr.splitlines()) == 2  # the debug line, then the error
    assert r.stderr.splitlines()[1].startswith("ocirun: OCIRUN_INTERPRETER=python3, and ")


def test_selfcheck_refuses_another_program(tmp_path):
    """install.sh installs the built program only if interpreter/selfcheck.sh passes."""
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "ocirun.check"
    fake.write_text("#!/bin/sh\necho 'ocirun version 0'\n")
    fake.chmod(0o755)
    r = run([f"{REPO}/interpreter/selfcheck.sh", str(fake), f"{PREFIX}/lib/ocirun"])
    assert r.returncode != 0 and "selfcheck:" in r.stderr
    assert sorted(os.listdir(tmp_path / "bin")) == ["ocirun.check"]  # nothing left behind
