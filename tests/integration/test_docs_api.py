"""docs/api.md's examples, run as written: its bundle block in a shell, then its
Python blocks in order as one script, with /tmp/bb and /run/ocirun moved to a
temporary directory. An example that stops working fails here."""
import os
import re
import subprocess
import sys

from support import REPO

DOC = os.path.join(REPO, "docs", "api.md")


def _blocks(lang):
    with open(DOC) as f:
        return re.findall(rf"```{lang}\n(.*?)```", f.read(), re.S)


def test_every_call_has_an_example():
    code = "\n".join(_blocks("python"))
    for call in ("rt.run(", "rt.create(", ".start()", ".exec_output(", ".exec(", ".kill(",
                 ".wait(", ".delete(", "rt.state(", "rt.list()", "record_timings()"):
        assert call in code, f"docs/api.md has no example of {call}"


def test_examples_run(tmp_path, rootfs_template):
    bundle, root = str(tmp_path / "bb"), str(tmp_path / "root")

    def moved(text):
        return text.replace("/tmp/bb", bundle).replace("/run/ocirun", root)

    (make_bundle,) = [b for b in _blocks("sh") if "busybox --list" in b]
    r = subprocess.run(["sh", "-e", "-c", moved(make_bundle)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    script = tmp_path / "examples.py"
    script.write_text(moved("\n".join(_blocks("python"))))
    env = dict(os.environ, PYTHONPATH=REPO)
    # Files, not pipes: the created container's init holds our stdout while it runs.
    with open(tmp_path / "out", "w+") as out, open(tmp_path / "err", "w+") as err:
        r = subprocess.run([sys.executable, str(script)], stdin=subprocess.DEVNULL, stdout=out,
                           stderr=err, env=env, cwd=str(tmp_path), timeout=300)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    assert r.returncode == 0, stderr
    lines = stdout.splitlines()
    assert lines[0] == "hello from ocirun"
    assert "from env: hi" in lines
    assert 'exec: "no-such-program": executable file not found in $PATH' in lines
    phases = [line for line in lines if line.endswith(" ms")]
    assert any(line.startswith("init: pivot_root") for line in phases), stdout
    assert [n for n in os.listdir(root) if not n.startswith(".")] == []
