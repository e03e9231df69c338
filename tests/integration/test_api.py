"""The library API drives the same code as the CLI."""
import os

import pytest

from ocirun.api import Runtime
from ocirun.errors import OciError


def test_api_run_and_lifecycle(bundle, tmp_path):
    rt = Runtime(root=bundle.root)
    bundle.config["process"]["args"] = ["sh", "-c", "exit 9"]
    bundle.write()
    assert rt.run("api-run", bundle.path) == 9
    assert rt.list() == []
    bundle.config["process"]["args"] = ["sleep", "60"]
    bundle.write()
    devnull = os.open(os.devnull, os.O_RDWR)
    saved = [os.dup(0), os.dup(1), os.dup(2)]
    for fd in (0, 1, 2):  # the init keeps the stdio it was created with
        os.dup2(devnull, fd)
    try:
        c = rt.create("api-c", bundle.path)
    finally:
        for fd, s in zip((0, 1, 2), saved):
            os.dup2(s, fd)
            os.close(s)
        os.close(devnull)
    bundle.ids.append("api-c")
    assert c.status == "created"
    c.start()
    assert c.status == "running"
    assert c.exec(["sh", "-c", "exit 3"]) == 3
    c.kill("KILL")
    c.delete(force=True)
    with pytest.raises(OciError, match="does not exist"):
        rt.state("api-c")


def test_api_errors_are_one_line(bundle):
    rt = Runtime(root=bundle.root)
    bundle.config["process"]["args"] = ["nosuch"]
    bundle.write()
    with pytest.raises(OciError) as e:
        rt.run("api-bad", bundle.path)
    assert "executable file not found" in str(e.value) and "\n" not in str(e.value)
    assert rt.list() == []
