"""ocirun as a pip package: the README's install command, run as written in a copy of
the checkout, makes a fresh virtual environment and pip-installs ocirun into it; then
the README's library section, the API and the installed `ocirun` command run
containers from it. Also: `pip wheel`, an install where the C extension cannot be
built (ctypes, and one line saying so), and the seccomp benchmark's data outside a
checkout.

No network: pip builds with setuptools and wheel from Debian's
python3-setuptools-whl and python3-wheel-whl (/usr/share/python-wheels, which
scripts/test.sh installs). Those fit Debian's /usr/bin/python3 only; the other
CPythons on the machine are tried when a package index may be used
(OCIRUN_TEST_PIP_INDEX=1)."""
import glob
import json
import os
import re
import shutil
import subprocess
import zipfile

import pytest

from support import REPO, SHARED, need_root

WHEELS = "/usr/share/python-wheels"
README = os.path.join(REPO, "README.md")
# What the README's commands name, moved into each test's temporary directory.
VENV_IN_README = "/opt/ocirun-venv"
BUNDLE_IN_README = "/tmp/bb"
ROOT_IN_README = "/run/ocirun"
WITHOUT_EXTENSION = "building without the ocirun._sys extension"


def _env(**extra):
    """The environment of a user's shell: nothing of this test run's Python."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def _offline():
    missing = [w for w in ("setuptools", "wheel") if not glob.glob(f"{WHEELS}/{w}-*.whl")]
    if missing:
        pytest.skip(f"no {' and '.join(missing)} wheel in {WHEELS} for an offline build "
                    "(apt-get install python3-setuptools-whl python3-wheel-whl; "
                    "scripts/test.sh does)")
    r = subprocess.run(["/usr/bin/python3", "-c", "import ensurepip, venv"], capture_output=True)
    if r.returncode:
        pytest.skip("no venv/ensurepip for /usr/bin/python3 (apt-get install python3-venv)")
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": WHEELS}


def _copy_checkout(dst):
    """The checkout as a fresh clone has it: no build output, no built extension."""
    shutil.copytree(REPO, dst, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", "*.so", ".pytest_cache",
        ".hypothesis", "bundle.marshal"))
    return dst


def readme_blocks():
    """The shell blocks of the README's "Python library" section: [install, library]."""
    with open(README) as f:
        text = f.read()
    section = text[text.index("## Python library\n"):]
    section = section[:section.index("\n## ", 1)]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) == 2, "the README's library section: an install block, then a library block"
    return blocks


def _site_packages(venv):
    (sp,) = glob.glob(f"{venv}/lib/python3*/site-packages")
    return sp


class Installed:
    def __init__(self, venv, src, log):
        self.venv = venv
        self.src = src
        self.log = log
        self.python = f"{venv}/bin/python"
        self.command = f"{venv}/bin/ocirun"

    def py(self, code, *args, env=None, timeout=120):
        with open(f"{self.venv}/py.out", "w+") as out, open(f"{self.venv}/py.err", "w+") as err:
            r = subprocess.run([self.python, "-c", code, *args], stdin=subprocess.DEVNULL,
                               stdout=out, stderr=err, env=env or _env(), cwd=self.venv,
                               timeout=timeout)
            out.seek(0)
            err.seek(0)
            r.stdout, r.stderr = out.read(), err.read()
        return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    offline = _offline()
    work = tmp_path_factory.mktemp("pip")
    src = _copy_checkout(str(work / "checkout"))
    venv = str(work / "venv")
    install = readme_blocks()[0].replace(VENV_IN_README, venv)
    assert "pip install" in install
    r = subprocess.run(["bash", "-e", "-c", install], cwd=src, env=_env(**offline),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return Installed(venv, src, r.stdout + r.stderr)


def test_readme_library_section(installed, tmp_path, rootfs_template):
    """The README's library block, pasted into a shell after its install block."""
    block = (readme_blocks()[1].replace(VENV_IN_README, installed.venv)
             .replace(BUNDLE_IN_README, str(tmp_path / "bb"))
             .replace(ROOT_IN_README, str(tmp_path / "root")))
    with open(tmp_path / "out", "w+") as out, open(tmp_path / "err", "w+") as err:
        r = subprocess.run(["bash", "-c", block], stdin=subprocess.DEVNULL, stdout=out,
                           stderr=err, env=_env(), cwd=str(tmp_path), timeout=120)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    assert r.returncode == 0, stderr
    assert stdout.splitlines() == ["0 hello from ocirun", "137"], stdout + stderr
    assert stderr == ""
    assert [n for n in os.listdir(tmp_path / "root") if not n.startswith(".")] == []


API_CHECK = r"""
import importlib.metadata, json, os, sys
import ocirun
from ocirun.api import Runtime, record_timings
import ocirun.kernel
import ocirun.seccomp.tables.x86_64 as x86_64
bundle, root = sys.argv[1], sys.argv[2]
rt = Runtime(root=root)
with record_timings() as t:
    code = rt.run("pip-run", bundle)
c = rt.create("pip-svc", bundle, config="sleep.json")
c.start()
out = c.exec_output(["sh", "-c", "hostname; exit 5"])
c.kill("KILL")
waited = c.wait(timeout=10)
c.delete()
print(json.dumps({
    "file": ocirun.__file__, "version": ocirun.VERSION,
    "dist_version": importlib.metadata.version("ocirun"),
    "ext": "ocirun._sys" in sys.modules, "ctypes": "ctypes" in sys.modules,
    "typed": os.path.exists(os.path.join(os.path.dirname(ocirun.__file__), "py.typed")),
    "tables": x86_64.NAMES["openat2"], "code": code,
    "phases": [p.name for p in t.phases],
    "exec": [out.returncode, out.stdout.decode()], "waited": waited, "left": rt.list(),
}))
"""


def _api_bundle(bundle):
    bundle.config["process"]["args"] = ["sh", "-c", "exit 7"]
    bundle.write()
    sleeper = json.loads(json.dumps(bundle.config))
    sleeper["process"]["args"] = ["sleep", "60"]
    with open(f"{bundle.path}/sleep.json", "w") as f:
        json.dump(sleeper, f)


def test_api_from_the_environment(installed, bundle):
    """The installed package (not the checkout) runs containers through the API,
    with the C extension, its seccomp tables and py.typed."""
    _api_bundle(bundle)
    r = installed.py(API_CHECK, bundle.path, bundle.root)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    from ocirun import VERSION
    assert got["file"].startswith(_site_packages(installed.venv) + "/ocirun/"), got["file"]
    assert got["version"] == got["dist_version"] == VERSION
    assert got["ext"] and not got["ctypes"] and got["typed"]
    assert got["tables"] == 437
    assert got["code"] == 7
    assert "config load" in got["phases"] and "init: pivot_root" in got["phases"]
    assert got["exec"] == [5, bundle.config["hostname"] + "\n"]
    assert got["waited"] == 137 and got["left"] == []


def test_console_command(installed, bundle):
    """`ocirun` from the environment's bin/: pip's console script."""
    bundle.command = installed.command
    r = subprocess.run([installed.command, "--version"], capture_output=True, text=True,
                       env=_env())
    from ocirun import VERSION
    assert r.returncode == 0 and r.stdout.splitlines()[0] == f"ocirun version {VERSION}"
    assert len(r.stdout.splitlines()) == 3
    r = bundle.run(["sh", "-c", "echo hello from $(hostname); exit 3"])
    assert r.returncode == 3, r.stderr
    assert r.stdout == f"hello from {bundle.config['hostname']}\n"
    r = bundle.ocirun("state", "no-such-id")
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "ocirun: container `no-such-id` does not exist"], r.stderr
    cid = bundle.detach(["sleep", "60"])
    assert bundle.state(cid)["status"] == "running"
    r = bundle.ocirun("exec", cid, "hostname")
    assert r.returncode == 0 and r.stdout.strip() == bundle.config["hostname"], r.stderr
    assert bundle.ocirun("delete", "-f", cid).returncode == 0


def test_pip_wheel(installed, tmp_path):
    """`pip wheel .`: one wheel with the package, the extension, every generated
    seccomp table, py.typed and the console command."""
    r = subprocess.run([installed.python, "-m", "pip", "wheel", "--no-deps", "-w",
                        str(tmp_path), installed.src], env=_env(**_offline()),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = glob.glob(f"{tmp_path}/ocirun-*.whl")
    from ocirun import VERSION
    assert os.path.basename(wheel).startswith(f"ocirun-{VERSION}-cp3")
    names = set(zipfile.ZipFile(wheel).namelist())
    tables = {f"ocirun/seccomp/tables/{n}" for n in os.listdir(f"{REPO}/ocirun/seccomp/tables")
              if n.endswith(".py")}
    assert len(tables) > 16 and tables <= names
    assert "ocirun/py.typed" in names and "ocirun/api.py" in names
    assert any(re.fullmatch(r"ocirun/_sys\.cpython-3\d+-.*\.so", n) for n in names), names
    assert not any(n.startswith("tests/") for n in names)
    meta = zipfile.ZipFile(wheel)
    info = f"ocirun-{VERSION}.dist-info"
    assert "ocirun = ocirun.cli.main:run_and_exit" in meta.read(f"{info}/entry_points.txt").decode()
    assert f"\nVersion: {VERSION}\n" in meta.read(f"{info}/METADATA").decode()
    print(f"wheel: {os.path.basename(wheel)}, {os.path.getsize(wheel)} bytes")


def test_install_without_a_compiler(tmp_path, bundle):
    """Where the extension cannot be built, the install still works, on ctypes, and
    says so in one line."""
    offline = _offline()
    src = _copy_checkout(str(tmp_path / "checkout"))
    venv = str(tmp_path / "venv")
    subprocess.run(["/usr/bin/python3", "-m", "venv", venv], check=True, env=_env())
    r = subprocess.run([f"{venv}/bin/pip", "install", "-v", src], capture_output=True, text=True,
                       env=_env(CC="/nonexistent/cc", **offline), timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    said = [line.strip() for line in (r.stdout + r.stderr).splitlines()
            if WITHOUT_EXTENSION in line]
    assert said == ["ocirun: no C compiler (`/nonexistent/cc` not found): building without "
                    "the ocirun._sys extension (ocirun uses ctypes, about 2 ms slower per "
                    "command)"], said
    assert not glob.glob(f"{_site_packages(venv)}/ocirun/_sys*")
    probe = subprocess.run([f"{venv}/bin/python", "-c", "import sys, ocirun.kernel; "
                            "print('ctypes' in sys.modules, 'ocirun._sys' in sys.modules)"],
                           capture_output=True, text=True, env=_env(), cwd=venv)
    assert probe.stdout.split() == ["True", "False"], probe.stderr
    bundle.command = f"{venv}/bin/ocirun"
    r = bundle.run(["sh", "-c", "echo on ctypes"])
    assert r.returncode == 0 and r.stdout == "on ctypes\n", r.stderr


def test_benchmark_data_outside_a_checkout(installed):
    """ocirun.seccomp.benchmark finds the shared data through OCIRUN_SHARED, and says
    so in one line when it is not set (an installed package has no ../shared)."""
    r = subprocess.run([installed.python, "-m", "ocirun.seccomp.benchmark"], capture_output=True,
                       text=True, env=_env(), cwd=installed.venv, timeout=60)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        "ocirun.seccomp.benchmark: no seccomp profile: pass one, or set OCIRUN_SHARED to the "
        "shared data directory (it holds fixtures/seccomp-podman-default.json)"], r.stderr
    probe = "from ocirun.seccomp.benchmark import default_profile; print(default_profile())"
    r = subprocess.run([installed.python, "-c", probe], capture_output=True, text=True,
                       env=_env(OCIRUN_SHARED=SHARED), cwd=installed.venv)
    assert r.stdout.strip() == os.path.join(SHARED, "fixtures", "seccomp-podman-default.json")


def _other_cpythons():
    out = []
    for exe in sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/*/bin/python3"))):
        m = re.search(r"/versions/(\d+)\.(\d+)\.", exe)
        if m and (int(m.group(1)), int(m.group(2))) >= (3, 11):
            out.append(exe)
    return out


@pytest.mark.parametrize("python", _other_cpythons() or ["(none found)"])
def test_other_cpython(python, tmp_path, bundle):
    """`pip install .` with another CPython >= 3.11 (setuptools from the package index)."""
    if not os.path.exists(python):
        pytest.skip("no other CPython >= 3.11 under ~/.pyenv/versions")
    if os.environ.get("OCIRUN_TEST_PIP_INDEX") != "1":
        pytest.skip("needs setuptools from a package index for this interpreter (Debian's "
                    "wheels fit /usr/bin/python3 only): set OCIRUN_TEST_PIP_INDEX=1")
    need_root()
    src = _copy_checkout(str(tmp_path / "checkout"))
    venv = str(tmp_path / "venv")
    subprocess.run([python, "-m", "venv", venv], check=True, env=_env())
    r = subprocess.run([f"{venv}/bin/pip", "install", src], capture_output=True, text=True,
                       env=_env(), timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    _api_bundle(bundle)
    r = Installed(venv, src, "").py(API_CHECK, bundle.path, bundle.root)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["ext"] and got["code"] == 7 and got["waited"] == 137 and got["left"] == []
    bundle.command = f"{venv}/bin/ocirun"
    r = bundle.run(["sh", "-c", "echo hi"])
    assert r.returncode == 0 and r.stdout == "hi\n", r.stderr
