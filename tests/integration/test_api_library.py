"""What the library does to the calling process (docs/api.md, last table): signal
handlers, children, fds; captured output of any size; calls from a second thread.
Each case runs in a fresh interpreter, whose threads and children are its own."""
import json
import subprocess
import sys

from support import REPO

PRELUDE = r"""
import json, os, signal, sys, threading
sys.path.insert(0, %(repo)r)
from ocirun.api import Runtime, UsageError
bundle, root = sys.argv[1], sys.argv[2]
rt = Runtime(root=root)
def handlers():
    return [str(signal.getsignal(s)) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP,
                                               signal.SIGUSR1, signal.SIGWINCH)]
def children():
    try:
        return os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return None
"""


def _script(bundle, body):
    with open(f"{bundle.path}/sleep.json", "w") as f:
        cfg = json.loads(json.dumps(bundle.config))
        cfg["process"]["args"] = ["sleep", "60"]
        json.dump(cfg, f)
    bundle.write()
    code = PRELUDE % {"repo": REPO} + body
    with open(f"{bundle.path}/lib.out", "w+") as out, open(f"{bundle.path}/lib.err", "w+") as err:
        r = subprocess.run([sys.executable, "-c", code, bundle.path, bundle.root],
                           stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=120)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    assert r.returncode == 0, stderr
    return json.loads(stdout.splitlines()[-1])


def test_handlers_children_and_fds_are_left_as_they_were(bundle):
    got = _script(bundle, r"""
before, fds = handlers(), sorted(os.listdir("/proc/self/fd"))
c = rt.create("lib-svc", bundle, config="sleep.json")
c.start()
out = c.exec_output(["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x; echo done >&2"])
plain = c.exec(["true"])
after_exec = handlers()
signal.signal(signal.SIGUSR1, lambda *a: None)
mine = handlers()
code = rt.run("lib-run", bundle, forward_signals=True)
after_forwarding = handlers()
rt.run("lib-bg", bundle, config="sleep.json", detach=True)
rt.delete("lib-bg", force=True)
c.kill("KILL")
waited = c.wait(timeout=10)
c.delete()
print(json.dumps({"same": after_exec == before, "restored": after_forwarding == mine,
                  "out": [out.returncode, len(out.stdout), set(out.stdout.decode()) == {"x"},
                          out.stderr.decode()],
                  "plain": plain, "code": code, "waited": waited, "children": children(),
                  "fds": sorted(os.listdir("/proc/self/fd")) == fds, "left": rt.list()}))
""")
    assert got["same"] and got["restored"]
    assert got["out"] == [0, 300000, True, "done\n"]
    assert got["plain"] == 0 and got["code"] == 0 and got["waited"] == 137
    assert got["children"] is None, "a container's init was left unreaped"
    assert got["fds"] and got["left"] == []


def test_exec_to_files_and_from_a_second_thread(bundle):
    got = _script(bundle, r"""
c = rt.create("lib-t", bundle, config="sleep.json")
c.start()
with open(bundle + "/exec.out", "w+") as f:
    code = c.exec(["hostname"], stdout=f)
    f.seek(0)
    to_file = f.read()
result = {}
def worker():
    try:
        result["out"] = c.exec_output(["sh", "-c", "exit 6"]).returncode
        rt.exec(c.id, ["true"], forward_signals=True)
    except UsageError as e:
        result["error"] = str(e)
t = threading.Thread(target=worker)
t.start()
t.join()
try:
    rt.exec(c.id, ["true"], stdin=1234)
except UsageError as e:
    result["bad fd"] = str(e)
try:
    Runtime(root=root, cgroup_manager="nosuch")
except UsageError as e:
    result["manager"] = str(e)
c.delete(force=True)
print(json.dumps({"code": code, "to_file": to_file, **result, "left": rt.list()}))
""")
    assert got["code"] == 0 and got["to_file"] == bundle.config["hostname"] + "\n"
    assert got["out"] == 6
    assert got["error"] == "forward_signals: only from the main thread (signal handlers)"
    assert got["bad fd"] == "stdin: fd 1234 is not open"
    assert got["manager"] == ("cgroup_manager: unknown manager `nosuch` "
                              "(cgroupfs, systemd or disabled)")
    assert got["left"] == []


def test_wait_on_a_container_another_process_created(bundle):
    """The init is the CLI's child (reparented when the CLI exited), not ours: wait
    waits for it and returns None."""
    bundle.config["process"]["args"] = ["sleep", "60"]
    cid, r = bundle.create()
    assert r.returncode == 0, r.stderr
    assert bundle.ocirun("start", cid).returncode == 0
    got = _script(bundle, f"cid = {cid!r}\n" + r"""
rt.kill(cid, "KILL")
waited = rt.wait(cid, timeout=10)
status = rt.state(cid)["status"]
rt.delete(cid)
print(json.dumps({"waited": waited, "status": status, "left": rt.list()}))
""")
    assert got == {"waited": None, "status": "stopped", "left": []}
