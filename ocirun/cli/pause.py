from ocirun.cli.create import one_id
from ocirun.cli.opts import parse

HELP = """\
usage: ocirun pause CONTAINER_ID

Freeze every process of a running container (cgroup freezer). `ocirun resume` thaws it.
"""


def main(g, args):
    _, pos = parse(args, {})
    from ocirun.lifecycle.cgroup_ops import pause
    pause(g.root, one_id(pos, "pause"))
    return 0
