import sys

from ocirun.cli.opts import parse
from ocirun.errors import UsageError

HELP = """\
usage: ocirun ps [-f|--format table|json] CONTAINER_ID [PS_OPTIONS...]

List the processes of a container. json: an array of host pids. table: UID, PID, PPID
and command line of each process; with PS_OPTIONS the host's `ps` runs with them and
only the lines of the container's processes are kept (default table).
"""

OPTIONS = {"-f": ("format", "str"), "--format": ("format", "str")}


def main(g, args):
    o, pos = parse(args, OPTIONS, stop_after=1)
    if not pos:
        raise UsageError("ps needs a container id")
    cid, ps_args = pos[0], pos[1:]
    fmt = o.format or "table"
    if fmt not in ("table", "json"):
        raise UsageError(f"--format: unknown format `{fmt}` (table or json)")
    if fmt == "json" and ps_args:
        raise UsageError("ps options cannot be used with --format json")
    from ocirun.lifecycle import cgroup_ops
    pids = cgroup_ops.pids(g.root, cid)
    if fmt == "json":
        sys.stdout.write("[" + ",".join(str(p) for p in pids) + "]\n")
    elif ps_args:
        sys.stdout.write(cgroup_ops.ps_command(pids, ps_args))
    else:
        rows = cgroup_ops.process_table(pids)
        out = ["%-8s %7s %7s %s" % ("UID", "PID", "PPID", "CMD")]
        out.extend("%-8s %7d %7d %s" % row for row in rows)
        sys.stdout.write("\n".join(out) + "\n")
    return 0
