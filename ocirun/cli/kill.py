from ocirun.cli.opts import parse
from ocirun.errors import UsageError

HELP = """\
usage: ocirun kill [--all] CONTAINER_ID [SIGNAL]

Send SIGNAL (default TERM; a number or a name, with or without SIG) to the init of a
container, or with --all to every process in it.
"""

OPTIONS = {"-a": ("all", "bool"), "--all": ("all", "bool")}


def main(g, args):
    o, pos = parse(args, OPTIONS)
    if not 1 <= len(pos) <= 2:
        raise UsageError("kill needs a container id and optionally a signal")
    from ocirun.lifecycle.signals import parse_signal
    sig = parse_signal(pos[1] if len(pos) > 1 else "TERM")
    from ocirun.lifecycle.kill import kill
    kill(g.root, pos[0], sig, o.all)
    return 0
