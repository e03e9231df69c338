"""The profile for the profile-guided build of ocirun's interpreter (interpreter/build.sh
passes it as PROFILE_TASK; CPython's default is its test suite): what the command
does on every start, many times over. Run by the instrumented build's ./python:
fresh interpreters start as the command does (-I -S, frozen modules) and run ocirun's
verbs that need no container: --version, --help, spec, features, state, list and
delete in a scratch root, bad command lines. (No `run`: the build's ./python, which
runs this, has not ocirun._sys built in, and the ctypes fallback is not built.) The
processes exit normally rather than through posix._exit, so that the profile counts
are written."""
import os
import subprocess
import sys
import tempfile

ROUNDS = 25
RUN = """
import posix, sys
def _exit(code):
    sys.stdout.flush()
    raise SystemExit(code)
posix._exit = _exit
sys.argv[0] = "ocirun"
import ocirun.boot
ocirun.boot.frozen_main()
"""


def main():
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "root")
        ocirun = [sys.executable, "-X", "frozen_modules=on", "-I", "-S", "-c", RUN]
        verbs = [["--version"], ["--help"], ["spec"], ["features"],
                 ["--root", root, "state", "nosuch"], ["--root", root, "list"],
                 ["--root", root, "list", "--format", "json"], ["--root", root, "delete", "x"],
                 ["run", "--bundle", "/nonexistent", "x"], ["nosuchverb"]]
        for _ in range(ROUNDS):
            for args in verbs:
                spec = os.path.join(tmp, "config.json")
                if os.path.exists(spec):
                    os.unlink(spec)
                subprocess.run([*ocirun, *args], cwd=tmp, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            subprocess.run([sys.executable, "-X", "frozen_modules=on", "-I", "-S", "-c", "pass"])


if __name__ == "__main__":
    main()
