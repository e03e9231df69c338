from ocirun.cli.create import one_id
from ocirun.cli.opts import parse

HELP = """\
usage: ocirun start CONTAINER_ID

Run the user process of a created container.
"""


def main(g, args):
    _, pos = parse(args, {})
    from ocirun.lifecycle.start import start
    start(g.root, one_id(pos, "start"))
    return 0
