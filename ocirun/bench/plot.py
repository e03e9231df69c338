"""--plot FILE: an SVG chart with no dependency: ocirun's per-phase waterfall (one
`run` with OCIRUN_TIMINGS) above the runtime comparison (medians with min-max)."""
from ocirun.bench.report import fmt_ms

W = 900
LABEL = 300
BAR = 18
GAP = 6
COLORS = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb")


def _esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _scale(vmax):
    """A round axis maximum and tick step for values up to vmax."""
    if vmax <= 0:
        return 1.0, 0.25
    mag = 10 ** len(str(int(vmax))) / 10 if vmax >= 1 else 0.1
    for step in (0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10):
        if vmax / (step * mag) <= 8:
            s = step * mag
            return s * -(-vmax // s), s
    return vmax, vmax / 4


def _axis(out, y, x0, width, top, vmax, step):
    v = 0.0
    while v <= vmax + 1e-9:
        x = x0 + width * v / vmax
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{y}" stroke="#ddd"/>')
        out.append(f'<text x="{x:.1f}" y="{y + 14}" text-anchor="middle">{fmt_ms(v)}</text>')
        v += step
    out.append(f'<text x="{x0 + width / 2:.1f}" y="{y + 30}" text-anchor="middle">ms</text>')


def waterfall(out, y, phases):
    """Each phase a bar from its start to its end on one time axis."""
    out.append(f'<text x="10" y="{y}" class="h">ocirun run: per-phase waterfall '
               f'(one run, OCIRUN_TIMINGS)</text>')
    y += 14
    total = max((p["total_ms"] for p in phases), default=1.0)
    vmax, step = _scale(total)
    width = W - LABEL - 30
    top = y
    for i, p in enumerate(phases):
        start = p["total_ms"] - p["ms"]
        x = LABEL + width * start / vmax
        w = max(1.0, width * p["ms"] / vmax)
        out.append(f'<text x="{LABEL - 6}" y="{y + BAR - 5}" text-anchor="end">'
                   f'{_esc(p["phase"])}</text>')
        out.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{BAR}" '
                   f'fill="{COLORS[i % len(COLORS)]}"><title>{_esc(p["phase"])}: '
                   f'{p["ms"]:.3f} ms</title></rect>')
        out.append(f'<text x="{x + w + 4:.1f}" y="{y + BAR - 5}">{fmt_ms(p["ms"])}</text>')
        y += BAR + GAP
    _axis(out, y, LABEL, width, top, vmax, step)
    return y + 50


def comparison(out, y, rows, title):
    """Medians as bars, min-max as a whisker."""
    timed = [r for r in rows if r.get("median_ms") is not None]
    out.append(f'<text x="10" y="{y}" class="h">{_esc(title)}</text>')
    y += 14
    if not timed:
        return y + 20
    vmax, step = _scale(max(r["max_ms"] for r in timed))
    width = W - LABEL - 30
    top = y
    for i, r in enumerate(timed):
        w = width * r["median_ms"] / vmax
        x1 = LABEL + width * r["min_ms"] / vmax
        x2 = LABEL + width * r["max_ms"] / vmax
        mid = y + BAR / 2
        out.append(f'<text x="{LABEL - 6}" y="{y + BAR - 5}" text-anchor="end">'
                   f'{_esc(r["name"])}</text>')
        out.append(f'<rect x="{LABEL}" y="{y}" width="{w:.1f}" height="{BAR}" '
                   f'fill="{COLORS[i % len(COLORS)]}"/>')
        out.append(f'<line x1="{x1:.1f}" y1="{mid}" x2="{x2:.1f}" y2="{mid}" stroke="#333"/>')
        for x in (x1, x2):
            out.append(f'<line x1="{x:.1f}" y1="{y + 4}" x2="{x:.1f}" y2="{y + BAR - 4}" '
                       'stroke="#333"/>')
        out.append(f'<text x="{x2 + 4:.1f}" y="{y + BAR - 5}">{fmt_ms(r["median_ms"])}</text>')
        y += BAR + GAP
    _axis(out, y, LABEL, width, top, vmax, step)
    return y + 50


def svg(result):
    sec = (result.get("sections") or {}).get("run") or {}
    out = []
    y = 30
    if sec.get("phases"):
        y = waterfall(out, y, sec["phases"])
    groups = {}
    for r in sec.get("rows", []):
        groups.setdefault(r.get("group", ""), []).append(r)
    for g, rows in groups.items():
        y = comparison(out, y, rows, f"full run of /bin/true, median and min-max ({g})")
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{y}" '
            f'viewBox="0 0 {W} {y}" font-family="sans-serif" font-size="12">\n'
            '<style>.h{font-weight:bold;font-size:14px}</style>\n'
            f'<rect width="{W}" height="{y}" fill="white"/>\n')
    return head + "\n".join(out) + "\n</svg>\n"


def write_svg(path, result):
    data = svg(result)
    with open(path, "w") as f:
        f.write(data)
