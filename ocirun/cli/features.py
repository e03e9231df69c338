import sys

HELP = """\
usage: ocirun features

Print the runtime-spec features document: what this runtime implements.
"""


def main(g, args):
    from ocirun.features import features
    from ocirun.cli.state import pretty
    sys.stdout.write(pretty(features()) + "\n")
    return 0
