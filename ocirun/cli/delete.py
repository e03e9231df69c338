from ocirun.cli.create import one_id
from ocirun.cli.opts import parse

HELP = """\
usage: ocirun delete [-f|--force] CONTAINER_ID

Delete a container and everything it holds. A running container needs --force, which
kills every process in it first.
"""

OPTIONS = {"-f": ("force", "bool"), "--force": ("force", "bool")}


def main(g, args):
    o, pos = parse(args, OPTIONS)
    from ocirun.lifecycle.delete import delete
    delete(g.root, one_id(pos, "delete"), o.force)
    return 0
