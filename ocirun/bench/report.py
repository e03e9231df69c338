"""Statistics, the text table and the JSON document of `ocirun bench`.

A result is plain data (so --json is json.dumps of it):
  {"version": 1, "date": ..., "host": {...}, "command": ...,
   "sections": {NAME: {"title": ..., "rows": [ROW, ...], "notes": [...],
                       "skipped": REASON (only when the whole section is n/a)}}}
A ROW has "name" and either timing fields ("n", "median_ms", "min_ms", "max_ms", and
optionally "user_ms", "sys_ms", "child_ms", "per_op_ns", "group"), or "na": REASON, or
"value": TEXT for a figure that is not a time. The run section adds "ratios":
{group: {row: {row: median ratio}}}."""

VERSION = 1


def median(values):
    """The median (mean of the middle two for an even count); None for no values."""
    s = sorted(values)
    n = len(s)
    if not n:
        return None
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2


def summarize(name, samples_ms, **extra):
    """A timing row from samples in milliseconds."""
    row = {"name": name, "n": len(samples_ms)}
    if samples_ms:
        row["median_ms"] = round(median(samples_ms), 4)
        row["min_ms"] = round(min(samples_ms), 4)
        row["max_ms"] = round(max(samples_ms), 4)
    for k, v in extra.items():
        if v is not None:
            row[k] = round(v, 4) if isinstance(v, float) else v
    return row


def ratio(a, b):
    """a / b, or None when either is missing or b is zero."""
    if a is None or b is None or not b:
        return None
    return a / b


def ratios(rows):
    """{row name: {other row name: its median / other's median}} over rows with a median."""
    timed = [(r["name"], r["median_ms"]) for r in rows if r.get("median_ms") is not None]
    return {a: {b: round(ratio(ma, mb), 3) for b, mb in timed if b != a} for a, ma in timed}


def fmt_ms(v):
    """Milliseconds with about three significant digits."""
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def fmt_ns(v):
    if v is None:
        return "-"
    return f"{v:.0f} ns" if v < 10000 else f"{v / 1000:.1f} us"


def _columns(rows):
    cols = [("what", lambda r: r["name"])]
    cols.append(("median ms", lambda r: "n/a" if r.get("na")
                 else r.get("value") or fmt_ms(r.get("median_ms"))))
    if any("min_ms" in r for r in rows):
        cols.append(("min-max ms", lambda r: f"{fmt_ms(r['min_ms'])}-{fmt_ms(r['max_ms'])}"
                     if "min_ms" in r else ""))
    if any("n" in r for r in rows):
        cols.append(("n", lambda r: str(r["n"]) if "n" in r else ""))
    if any("user_ms" in r for r in rows):
        cols.append(("user ms", lambda r: fmt_ms(r.get("user_ms")) if "user_ms" in r else ""))
        cols.append(("sys ms", lambda r: fmt_ms(r.get("sys_ms")) if "sys_ms" in r else ""))
    if any("child_ms" in r for r in rows):
        cols.append(("syscall ms", lambda r: fmt_ms(r.get("child_ms")) if "child_ms" in r else ""))
    if any("per_op_ns" in r for r in rows):
        cols.append(("per lookup", lambda r: fmt_ns(r.get("per_op_ns")) if "per_op_ns" in r else ""))
    if any("note" in r or "na" in r for r in rows):
        cols.append(("note", lambda r: r.get("na") or r.get("note", "")))
    return cols


def table(rows):
    """Rows as an aligned text table (the first column left-aligned, the rest right,
    a trailing note column left-aligned)."""
    cols = _columns(rows)
    cells = [[h for h, _ in cols]] + [[f(r) or "" for _, f in cols] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(cols))]
    out = []
    for line in cells:
        parts = []
        for i, c in enumerate(line):
            left = i == 0 or cols[i][0] == "note"
            parts.append(c.ljust(widths[i]) if left else c.rjust(widths[i]))
        out.append("  ".join(parts).rstrip())
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def ratio_table(matrix):
    """The ratio matrix as text: each row's median divided by each column's."""
    names = list(matrix)
    if len(names) < 2:
        return ""
    w0 = max(len(n) for n in names)
    ws = [max(len(n), 6) for n in names]
    head = "row / column".ljust(w0) + "  " + "  ".join(n.rjust(w) for n, w in zip(names, ws))
    lines = [head]
    for a in names:
        cells = []
        for b, w in zip(names, ws):
            v = 1.0 if a == b else matrix[a].get(b)
            cells.append(("-" if v is None else f"{v:.2f}x").rjust(w))
        lines.append(a.ljust(w0) + "  " + "  ".join(cells))
    return "\n".join(lines)


def render(result):
    """The whole result as text, one block per section."""
    out = []
    host = result.get("host") or {}
    if host:
        out.append("ocirun bench  " + "  ".join(f"{k}: {v}" for k, v in host.items()))
    for name, sec in result.get("sections", {}).items():
        out.append("")
        out.append(f"== {sec.get('title', name)} ==")
        if sec.get("skipped"):
            out.append(f"n/a ({sec['skipped']})")
        groups = {}
        for r in sec.get("rows", []):
            groups.setdefault(r.get("group", ""), []).append(r)
        for g, rows in groups.items():
            if g:
                out.append(f"-- {g}")
            out.append(table(rows))
            rt = ratio_table((sec.get("ratios") or {}).get(g, {}))
            if rt:
                out.append("")
                out.append("ratios of medians:")
                out.append(rt)
        for k, v in (sec.get("extra") or {}).items():
            if not isinstance(v, dict):  # dicts are raw figures for --json; notes say them
                out.append(f"{k}: {v}")
        for n in sec.get("notes", []):
            out.append(f"note: {n}")
    return "\n".join(out) + "\n"


def to_json(result):
    import json
    return json.dumps(result, indent=2) + "\n"
