"""A small getopt for runc-style command lines (argparse costs ~10 ms to import).

A verb declares its options as a dict: flag spelling -> (dest, kind) where kind is
"bool", "str", "int" or "list" (repeatable). Long flags may be written with one dash
or two and with `=value` (Go's flag package accepts all of these, and callers use
them: containerd passes `-no-subreaper`). Parsing stops at the first positional
argument once `stop_at_positional` positionals are seen, so `exec ID sh -c ...`
keeps the command's own flags.
"""
from ocirun.errors import UsageError


class Options:
    """Attribute bag for parsed options."""

    def __init__(self, defaults):
        self.__dict__.update(defaults)


def parse(argv, spec, stop_after=None):
    """Return (Options, positionals). `stop_after`: stop parsing flags after this many
    positionals have been seen (the rest are taken verbatim)."""
    defaults = {}
    for dest, kind in spec.values():
        defaults.setdefault(dest, [] if kind == "list" else (False if kind == "bool" else None))
    opts = Options(defaults)
    pos = []
    i = 0
    n = len(argv)
    while i < n:
        arg = argv[i]
        i += 1
        if stop_after is not None and len(pos) >= stop_after:
            pos.append(arg)
            pos.extend(argv[i:])
            break
        if arg == "--":
            pos.extend(argv[i:])
            break
        if len(arg) < 2 or arg[0] != "-":
            pos.append(arg)
            continue
        name, eq, value = arg.partition("=")
        entry = spec.get(name)
        if entry is None and not name.startswith("--"):
            entry = spec.get("-" + name)  # Go-style single-dash long flag
        if entry is None:
            raise UsageError(f"unknown flag `{name}`")
        dest, kind = entry
        if kind == "bool":
            if eq:
                if value not in ("true", "false", "1", "0"):
                    raise UsageError(f"flag `{name}` takes true or false, not `{value}`")
                setattr(opts, dest, value in ("true", "1"))
            else:
                setattr(opts, dest, True)
            continue
        if not eq:
            if i >= n:
                raise UsageError(f"flag `{name}` needs a value")
            value = argv[i]
            i += 1
        if kind == "int":
            try:
                value = int(value, 10)
            except ValueError:
                raise UsageError(f"flag `{name}` takes a number, not `{value}`") from None
        if kind == "list":
            getattr(opts, dest).append(value)
        else:
            setattr(opts, dest, value)
    return opts, pos
