import sys

from ocirun.cli.create import one_id
from ocirun.cli.opts import parse

HELP = """\
usage: ocirun state CONTAINER_ID

Print the OCI state of a container as JSON.
"""


def pretty(obj, indent="  ", level=0):
    """Indented JSON like runc's, with the C encoder for scalars (no `json` import)."""
    import _json
    enc = _json.encode_basestring_ascii
    pad = indent * (level + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad}{enc(str(k))}: {pretty(v, indent, level + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent * level + "}"
    if isinstance(obj, list):
        if not obj:
            return "[]"
        items = [pad + pretty(v, indent, level + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + indent * level + "]"
    if isinstance(obj, str):
        return enc(obj)
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    return str(obj)


def main(g, args):
    _, pos = parse(args, {})
    from ocirun.lifecycle.state import state
    sys.stdout.write(pretty(state(g.root, one_id(pos, "state"))) + "\n")
    return 0
