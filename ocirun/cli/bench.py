"""bench: measure container start-up on this machine (see docs/benchmark.md)."""
import os
import sys

from ocirun.cli import opts
from ocirun.errors import UsageError

HELP = """\
usage: ocirun bench [options]

Measure what container start-up costs on this machine and print a table:
  ns       network/ipc namespace create+destroy, an mqueue mount, all namespaces at once
  names    syscall-name resolution (ocirun's tables, libseccomp's if installed)
  seccomp  seccomp profile compile, cold and from the cache (and libseccomp's)
  run      a full `run` of /bin/true: ocirun against runc and crun, in rounds of blocks

options:
  --runs N                runs per runtime in the run section (default 30)
  --only SECTION[,...]    ns, names, seccomp, run (default: all)
  --json                  print the results as JSON
  --plot FILE             also write an SVG chart: ocirun's per-phase waterfall and
                          the runtime comparison
  --bundle DIR            run this bundle instead of a generated busybox one
  --profile FILE          seccomp profile (or a config.json with linux.seccomp)
  --runtime NAME=PATH     another runtime to compare (repeatable)
  --ocirun PATH           the ocirun to measure (default: this one)
  --iterations N          iterations per namespace measurement (default 200)
  --passes N              passes of the syscall-name resolution (default 1000)
  -q, --quiet             no progress lines on stderr
"""

OPTS = {
    "--runs": ("runs", "int"),
    "--only": ("only", "str"),
    "--json": ("json", "bool"),
    "--plot": ("plot", "str"),
    "--bundle": ("bundle", "str"),
    "--profile": ("profile", "str"),
    "--runtime": ("runtime", "list"),
    "--ocirun": ("ocirun", "str"),
    "--iterations": ("iterations", "int"),
    "--passes": ("passes", "int"),
    "-q": ("quiet", "bool"),
    "--quiet": ("quiet", "bool"),
}


def main(g, args):
    o, pos = opts.parse(args, OPTS)
    if pos:
        raise UsageError(f"bench takes no arguments (got `{pos[0]}`)")
    from ocirun.bench import SECTIONS, Progress, collect
    only = SECTIONS
    if o.only:
        only = tuple(s.strip() for s in o.only.split(",") if s.strip())
        bad = [s for s in only if s not in SECTIONS]
        if bad or not only:
            raise UsageError(f"--only: unknown section `{bad[0] if bad else o.only}` "
                             f"(choose from {', '.join(SECTIONS)})")
    for name in ("runs", "iterations", "passes"):
        v = getattr(o, name)
        if v is not None and v < 1:
            raise UsageError(f"--{name} must be at least 1")
    extra = []
    for spec in o.runtime:
        name, eq, path = spec.partition("=")
        if not eq or not name or not path:
            raise UsageError(f"--runtime takes NAME=PATH, not `{spec}`")
        extra.append((name, os.path.abspath(path) if "/" in path else path))
    if o.bundle and not os.path.isfile(os.path.join(o.bundle, "config.json")):
        raise UsageError(f"--bundle: no config.json in {o.bundle}")
    if o.plot and "run" not in only:
        raise UsageError("--plot draws the run section: include `run` in --only")
    result = collect(only, Progress(quiet=o.quiet), runs=o.runs, iterations=o.iterations,
                     passes=o.passes, bundle=o.bundle, profile=o.profile, extra=extra,
                     ocirun=o.ocirun, argv0=sys.argv[0], plot=bool(o.plot))
    from ocirun.bench import report
    if o.plot:
        from ocirun.bench import plot
        plot.write_svg(o.plot, result)
        result["plot"] = os.path.abspath(o.plot)
    sys.stdout.write(report.to_json(result) if o.json else report.render(result))
    return 0
