from ocirun.cli.opts import parse
from ocirun.errors import UsageError

HELP = """\
usage: ocirun create [options] CONTAINER_ID

Create a container from a bundle. The init process is set up and waits; `ocirun start`
runs the user process.

options:
  -b, --bundle DIR          bundle directory (default: current directory)
  -f, --config FILE         config file (default: BUNDLE/config.json)
  --pid-file FILE           write the init's pid to FILE
  --console-socket PATH     unix socket receiving the pty master (process.terminal)
  --no-pivot                move the rootfs with MS_MOVE + chroot instead of pivot_root
  --no-new-keyring          do not create a session keyring (accepted)
  --preserve-fds N          pass N extra fds (3..3+N-1) to the container
"""

OPTIONS = {
    "-b": ("bundle", "str"), "--bundle": ("bundle", "str"),
    "-f": ("config", "str"), "--config": ("config", "str"),
    "--pid-file": ("pid_file", "str"), "--console-socket": ("console_socket", "str"),
    "--no-pivot": ("no_pivot", "bool"), "--no-new-keyring": ("no_new_keyring", "bool"),
    "--preserve-fds": ("preserve_fds", "int"), "--no-subreaper": ("no_subreaper", "bool"),
}


def one_id(pos, verb):
    if len(pos) != 1:
        raise UsageError(f"{verb} needs exactly one container id")
    return pos[0]


def create_args(o, g):
    if o.preserve_fds is not None and o.preserve_fds < 0:
        raise UsageError("--preserve-fds must not be negative")
    return dict(bundle=o.bundle, config_path=o.config, pid_file=o.pid_file,
                console_socket=o.console_socket, no_pivot=o.no_pivot,
                preserve_fds=o.preserve_fds or 0, cgroup_manager=g.cgroup_manager,
                rootless=g.rootless)


def main(g, args):
    o, pos = parse(args, OPTIONS)
    cid = one_id(pos, "create")
    from ocirun.lifecycle.create import create
    create(g.root, cid, **create_args(o, g))
    return 0
