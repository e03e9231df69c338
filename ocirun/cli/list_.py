import sys

from ocirun.cli.opts import parse
from ocirun.errors import UsageError

HELP = """\
usage: ocirun list [-q] [--format table|json]

List the containers under --root.
"""

OPTIONS = {"-q": ("quiet", "bool"), "--quiet": ("quiet", "bool"),
           "-f": ("format", "str"), "--format": ("format", "str")}


def main(g, args):
    o, pos = parse(args, OPTIONS)
    fmt = o.format or "table"
    if fmt not in ("table", "json") or pos:
        raise UsageError(f"list: unknown format `{fmt}`" if pos == [] else "list takes no arguments")
    from ocirun.lifecycle.state import list_states
    states = list_states(g.root)
    if o.quiet:
        sys.stdout.write("".join(s["id"] + "\n" for s in states))
    elif fmt == "json":
        from ocirun.cli.state import pretty
        sys.stdout.write(pretty(states) + "\n" if states else "null\n")
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"] or "root")
                 for s in states]
        widths = [max(len(r[i]) for r in rows) for i in range(6)]
        for r in rows:
            sys.stdout.write("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")
    return 0
