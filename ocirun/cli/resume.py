from ocirun.cli.create import one_id
from ocirun.cli.opts import parse

HELP = """\
usage: ocirun resume CONTAINER_ID

Thaw a container frozen by `ocirun pause`.
"""


def main(g, args):
    _, pos = parse(args, {})
    from ocirun.lifecycle.cgroup_ops import resume
    resume(g.root, one_id(pos, "resume"))
    return 0
