from ocirun.cli.opts import parse
from ocirun.errors import UsageError

HELP = """\
usage: ocirun exec [options] CONTAINER_ID COMMAND [ARG...]
       ocirun exec [options] --process FILE CONTAINER_ID

Run a new process inside a running container.

options:
  -p, --process FILE        process.json (runtime-spec "process") instead of COMMAND
  -d, --detach              return once the process runs
  --pid-file FILE           write the process's pid to FILE
  --console-socket PATH     unix socket receiving the pty master (with --tty)
  -t, --tty                 allocate a pseudo-terminal
  --cwd DIR                 working directory in the container
  -e, --env KEY=VALUE       set an environment variable (repeatable)
  -u, --user UID[:GID]      user to run as
  -g, --additional-gids GID additional group (repeatable)
  -c, --cap CAP             add a capability (repeatable)
  --no-new-privs            set no_new_privs
  --preserve-fds N          pass N extra fds
  --apparmor PROFILE        accepted
  --process-label LABEL     accepted
  --cgroup PATH             sub-cgroup to join (v2: a path under the container's cgroup)
"""

OPTIONS = {
    "-p": ("process", "str"), "--process": ("process", "str"),
    "-d": ("detach", "bool"), "--detach": ("detach", "bool"),
    "--pid-file": ("pid_file", "str"), "--console-socket": ("console_socket", "str"),
    "-t": ("tty", "bool"), "--tty": ("tty", "bool"), "--cwd": ("cwd", "str"),
    "-e": ("env", "list"), "--env": ("env", "list"), "-u": ("user", "str"),
    "--user": ("user", "str"), "-g": ("gids", "list"), "--additional-gids": ("gids", "list"),
    "-c": ("cap", "list"), "--cap": ("cap", "list"), "--no-new-privs": ("nnp", "bool"),
    "--preserve-fds": ("preserve_fds", "int"), "--apparmor": ("apparmor", "str"),
    "--process-label": ("label", "str"), "--cgroup": ("cgroup", "list"),
    "--ignore-paused": ("ignore_paused", "bool"),
}


def main(g, args):
    o, pos = parse(args, OPTIONS, stop_after=1)
    if not pos:
        raise UsageError("exec needs a container id")
    cid, cmd = pos[0], pos[1:]
    from ocirun.lifecycle import exec as ex
    if o.process:
        if cmd:
            raise UsageError("exec: give either --process or a command, not both")
        from ocirun.config.load import load_config
        proc = load_config(o.process, "process.json")
    else:
        if not cmd:
            raise UsageError("exec needs a command (or --process FILE)")
        from ocirun.state import load
        base = ex.load_container_config(load(g.root, cid)).get("process") or {}
        gids = [x for g_ in o.gids for x in g_.split(",") if x]
        proc = ex.process_from_args(base, cmd, o.env, o.cwd, o.user, gids, o.cap, o.nnp, o.tty)
    if o.preserve_fds is not None and o.preserve_fds < 0:
        raise UsageError("--preserve-fds must not be negative")
    # --cgroup PATH (every controller) or --cgroup CTRL[,CTRL]:PATH, repeatable
    sub = {}
    for c in o.cgroup:
        ctrls, sep, path = c.rpartition(":")
        for ctrl in (ctrls.split(",") if sep else [""]):
            sub[ctrl] = path
    return ex.exec_process(g.root, cid, proc, detach=o.detach, pid_file=o.pid_file,
                           console_socket=o.console_socket, preserve_fds=o.preserve_fds or 0,
                           cgroup_sub=sub or None)
