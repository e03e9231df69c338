from ocirun.cli.create import OPTIONS as CREATE_OPTIONS
from ocirun.cli.create import create_args, one_id
from ocirun.cli.opts import parse

HELP = """\
usage: ocirun run [options] CONTAINER_ID

Create and start a container. Without --detach, wait for it, forward signals to it,
exit with its exit code (128+N if signal N killed it) and delete it.

options:
  -b, --bundle DIR          bundle directory (default: current directory)
  -f, --config FILE         config file (default: BUNDLE/config.json)
  -d, --detach              return once the container runs
  --keep                    do not delete the container when it exits
  --pid-file FILE           write the init's pid to FILE
  --console-socket PATH     unix socket receiving the pty master (process.terminal)
  --no-pivot                MS_MOVE + chroot instead of pivot_root
  --no-new-keyring          accepted
  --preserve-fds N          pass N extra fds to the container
"""

OPTIONS = dict(CREATE_OPTIONS)
OPTIONS.update({"-d": ("detach", "bool"), "--detach": ("detach", "bool"),
                "--keep": ("keep", "bool")})


def main(g, args):
    o, pos = parse(args, OPTIONS)
    cid = one_id(pos, "run")
    from ocirun.lifecycle.run import run
    return run(g.root, cid, detach=o.detach, keep=o.keep, **create_args(o, g))
