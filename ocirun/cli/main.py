"""Entry point: global flags, then one module per verb (imported on demand)."""
import posix
import sys

from ocirun import fs, log
from ocirun.cli import opts
from ocirun.errors import OciError, UsageError

GLOBAL = {
    "--root": ("root", "str"),
    "--log": ("log", "str"),
    "--log-format": ("log_format", "str"),
    "--log-level": ("log_level", "str"),
    "--debug": ("debug", "bool"),
    "--systemd-cgroup": ("systemd_cgroup", "bool"),
    "--cgroup-manager": ("cgroup_manager", "str"),
    "--rootless": ("rootless", "str"),
    "--criu": ("criu", "str"),
    "--timings": ("timings", "bool"),
    "-v": ("version", "bool"),
    "--version": ("version", "bool"),
    "-h": ("help", "bool"),
    "--help": ("help", "bool"),
}

# verb -> module under ocirun.cli (one thin module per verb)
VERBS = {
    "create": "create", "start": "start", "run": "run", "state": "state",
    "kill": "kill", "delete": "delete", "list": "list_", "spec": "spec",
    "features": "features", "exec": "exec_", "ps": "ps", "pause": "pause",
    "resume": "resume", "update": "update", "events": "events", "seccomp": "seccomp",
    "bench": "bench",
}

USAGE = """\
ocirun - an OCI container runtime

usage: ocirun [global options] COMMAND [options] [arguments]

commands:
  create    create a container from a bundle (init waits for `start`)
  start     run the user process of a created container
  run       create and start a container, wait for it (unless -d)
  exec      run a new process inside a running container
  state     print the state of a container as JSON
  list      list containers
  kill      send a signal to a container's init (or --all processes)
  delete    delete a container and everything it holds
  pause     freeze every process of a container
  resume    thaw a paused container
  update    change a container's resources
  ps        list the processes of a container
  events    print container events and statistics
  spec      write a default config.json
  features  print the features this runtime supports (JSON)
  seccomp   compile, disassemble and explain seccomp profiles
  bench     measure container start-up on this machine

global options:
  --root DIR              state directory (default /run/ocirun; rootless:
                          $XDG_RUNTIME_DIR/ocirun)
  --log FILE              log file (containerd reads errors from it)
  --log-format text|json  log format (default text)
  --log-level LEVEL       debug, info, warning, error
  --debug                 debug logging
  --systemd-cgroup        use the systemd cgroup manager
  --cgroup-manager NAME   cgroupfs, systemd or disabled
  --rootless VALUE        true, false or auto (default): run as a runtime without
                          privileges (no cgroup unless a cgroup v2 subtree is
                          delegated, devices bound from the host); auto: when not
                          root, or root of a user namespace (rootless podman)
  --timings               print per-phase timings to stderr
  -v, --version           print the version
  -h, --help              this help; `ocirun COMMAND --help` for a command
"""


class Globals:
    """Global options as the verbs see them."""

    __slots__ = ("root", "log", "log_format", "log_level", "debug", "cgroup_manager",
                 "rootless", "timings")


# verbs that keep no state under --root (its default is not worked out for them)
STATELESS = frozenset(("spec", "features", "seccomp", "bench"))


def _globals(o, verb=None):
    g = Globals()
    if o.rootless not in (None, "auto", "true", "false", "1", "0"):
        raise UsageError(f"--rootless: takes true, false or auto, not `{o.rootless}`")
    g.rootless = None if o.rootless in (None, "auto") else o.rootless in ("true", "1")
    if o.root or verb in STATELESS:
        g.root = o.root
    elif posix.geteuid() == 0 and not fs.getenv("XDG_RUNTIME_DIR"):
        g.root = "/run/ocirun"
    else:
        from ocirun.lifecycle.rootless import default_root
        g.root = default_root()
    g.log = o.log
    g.log_format = o.log_format or "text"
    if g.log_format not in ("text", "json"):
        raise UsageError(f"--log-format: unknown format `{g.log_format}`")
    if o.log_level and o.log_level not in ("debug", "info", "warning", "warn", "error"):
        raise UsageError(f"--log-level: unknown level `{o.log_level}`")
    g.log_level = o.log_level
    g.debug = o.debug
    manager = o.cgroup_manager or ("systemd" if o.systemd_cgroup else "cgroupfs")
    if manager not in ("cgroupfs", "systemd", "disabled"):
        raise UsageError(f"--cgroup-manager: unknown manager `{manager}`")
    g.cgroup_manager = manager
    g.timings = o.timings or bool(fs.getenv("OCIRUN_TIMINGS"))
    return g


def version_text():
    from ocirun import COMMIT, SPEC_VERSION, VERSION
    return f"ocirun version {VERSION}\ncommit: {COMMIT}\nspec: {SPEC_VERSION}\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        o, pos = opts.parse(argv, GLOBAL, stop_after=1)
        log.configure(o.log, o.log_format or "text", o.log_level, o.debug)
        if o.version:
            sys.stdout.write(version_text())
            return 0
        if not pos:
            sys.stdout.write(USAGE)
            return 0
        verb = pos[0]
        if verb == "help":
            sys.stdout.write(USAGE)
            return 0
        mod = VERBS.get(verb)
        if mod is None:
            raise UsageError(f"unknown command `{verb}` (see `ocirun --help`)")
        g = _globals(o, verb)
        if g.timings:
            from ocirun import timings
            env = fs.getenv("OCIRUN_TIMINGS", "")
            timings.enable(env if env not in ("", "1") else None)
        if fs.getenv("OCIRUN_FAULT"):
            from ocirun import timings
            timings.enable_fault(fs.getenv("OCIRUN_FAULT"))
        module = __import__("ocirun.cli." + mod, fromlist=["main"])
        args = pos[1:]
        if "--help" in args[:1] or "-h" in args[:1] or (args and args[-1] in ("--help", "-h")
                                                         and verb not in ("exec", "ps")):
            sys.stdout.write(module.HELP)
            return 0
        try:
            return module.main(g, args) or 0
        finally:
            if g.timings:
                from ocirun import timings
                timings.mark("exit")
                timings.report()
    except OciError as e:
        log.error(e.msg)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except OSError as e:
        log.error(f"{e.strerror or e}" + (f": {e.filename}" if e.filename else ""))
        return 1
    except Exception as e:  # never a traceback for the user; --debug shows one
        if o_debug(argv):
            import traceback
            traceback.print_exc()
        log.error(f"internal error: {type(e).__name__}: {e}")
        return 1


def o_debug(argv):
    return "--debug" in argv


def run_and_exit():
    """The command's entry: main(), flush, then _exit. Skipping the interpreter's
    teardown (module and object finalization) saves about a millisecond per command;
    nothing of ours needs it."""
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        code = code or 1
    posix._exit(code)
