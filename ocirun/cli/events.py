import sys

from ocirun.cli.create import one_id
from ocirun.cli.opts import parse
from ocirun.errors import UsageError

HELP = """\
usage: ocirun events [--stats] [--interval DURATION] CONTAINER_ID

Print container events as JSON lines: {"type":"stats","id":ID,"data":{...}} every
interval (default 5s; Go durations such as 500ms, 5s, 1m) and {"type":"oom","id":ID}
after the kernel OOM-killed a process, until the container stops.

options:
  --stats                print the statistics once and exit
  --interval DURATION    time between statistics lines (default 5s)
"""

OPTIONS = {"--stats": ("stats", "bool"), "--interval": ("interval", "str")}


def _emit(event):
    import _json
    enc = _json.make_encoder(None, None, _json.encode_basestring_ascii, None, ":", ",",
                             False, False, True)
    sys.stdout.write("".join(enc(event, 0)) + "\n")
    sys.stdout.flush()


def main(g, args):
    o, pos = parse(args, OPTIONS)
    cid = one_id(pos, "events")
    interval = 5.0
    if o.interval is not None:
        from ocirun.cli.units import parse_duration
        interval = parse_duration(o.interval, "--interval")
        if interval <= 0:
            raise UsageError("--interval: the duration must be greater than 0")
    from ocirun.lifecycle import cgroup_ops
    try:
        if o.stats:
            _emit({"type": "stats", "id": cid, "data": cgroup_ops.stats(g.root, cid)})
        else:
            cgroup_ops.watch(g.root, cid, interval, _emit)
    except BrokenPipeError:
        # the reader went away (`ocirun events ID | head -1`): not an error
        import os
        devnull = os.open("/dev/null", os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return 0
