import os

from ocirun.cli.opts import parse
from ocirun.errors import OciError

HELP = """\
usage: ocirun spec [-b|--bundle DIR] [--rootless]

Write a default config.json into the bundle directory (a shell in ./rootfs).

options:
  -b, --bundle DIR   where to write it (default: the current directory)
  --rootless         a config an ordinary user can run: a user namespace that maps
                     the caller's uid and gid to root, no network namespace, no
                     linux.resources, /sys bound from the host, no gid= for devpts
                     (`ocirun run` as that user keeps its state under
                     $XDG_RUNTIME_DIR/ocirun)
"""

OPTIONS = {"-b": ("bundle", "str"), "--bundle": ("bundle", "str"),
           "--rootless": ("rootless", "bool")}


def main(g, args):
    o, _ = parse(args, OPTIONS)
    from ocirun.config.default import default_spec
    spec = default_spec(rootless=o.rootless)
    path = os.path.join(o.bundle or ".", "config.json")
    if os.path.lexists(path):
        raise OciError(f"file `{path}` exists: remove it first")
    import json
    try:
        with open(path, "x") as f:
            json.dump(spec, f, indent=2)
            f.write("\n")
    except OSError as e:
        raise OciError(f"write `{path}`: {e.strerror}") from None
    return 0
