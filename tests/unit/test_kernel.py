"""Both syscall back ends (the C extension and the ctypes fallback) behave alike."""
import os
import subprocess
import sys

import pytest

from support import REPO

PROBE = r"""
import os, sys
sys.path.insert(0, %(repo)r)
if %(block)r:
    sys.modules["ocirun._sys"] = None   # as if the extension were not built
from ocirun import kernel
print("ctypes" if "ctypes" in sys.modules else "ext")
print(kernel.prctl(kernel.PR_CAPBSET_READ, 0) in (0, 1))
fd = kernel.openat2(-100, "/", os.O_PATH | os.O_DIRECTORY, 0, kernel.RESOLVE_IN_ROOT)
print(os.path.samestat(os.fstat(fd), os.stat(".")))  # "/" is the dirfd under RESOLVE_IN_ROOT
print(kernel.mount_id(fd) > 0)  # a syscall that fills a buffer
try:
    kernel.pivot_root("/nonexistent-a", "/nonexistent-b")
except OSError as e:
    print(e.errno)
try:
    kernel.mount_setattr(-100, "/nonexistent", 0, kernel.MOUNT_ATTR_RDONLY)
except OSError as e:
    print(e.errno)
"""


def _backends():
    built = any(n.startswith("_sys") and n.endswith(".so") for n in os.listdir(f"{REPO}/ocirun"))
    return [("ctypes", True)] + ([("ext", False)] if built else [])


@pytest.mark.parametrize("name,block", _backends(), ids=lambda v: str(v))
def test_backend(name, block):
    out = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE % {"repo": REPO, "block": block}],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert lines == [name, "True", "True", "True", "2", "2"], lines


def test_extension_is_built_where_a_compiler_exists():
    import shutil
    if not shutil.which("cc"):
        pytest.skip("no C compiler here: ocirun runs on the ctypes fallback")
    assert len(_backends()) == 2, "scripts/build-ext.sh did not build ocirun/_sys*.so"
