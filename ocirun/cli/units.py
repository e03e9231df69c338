"""Values written the way Go tools write them on the command line: byte sizes with binary
suffixes ("512m", "1g", docker/go-units RAMInBytes) and durations ("5s", "100ms", "1m30s",
time.ParseDuration). Hand-written scanners: importing `re` would cost more than the verb."""
from ocirun.errors import UsageError

_RAM_MULT = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text, flag="size"):
    """"512m" -> 536870912. A decimal number, an optional blank, then optionally one of
    k/m/g/t/p (any case), an "i" and a "b": 1k == 1kb == 1KiB == 1024. A fraction ("1.5g")
    is truncated to whole bytes. Negative sizes are refused; callers that take -1 for
    "unlimited" check for it first."""
    s = text if isinstance(text, str) else ""
    i = 0
    while i < len(s) and s[i] in "0123456789.":
        i += 1
    num, rest = s[:i], s[i:]
    if rest[:1] == " ":
        rest = rest[1:]
    unit = rest[:1].lower() if rest[:1].lower() in ("k", "m", "g", "t", "p") else ""
    rest = rest[len(unit):]
    if rest[:1] in ("i", "I"):
        rest = rest[1:]
    if rest[:1] in ("b", "B"):
        rest = rest[1:]
    whole, dot, frac = num.partition(".")
    if whole.isdigit() and (not dot or frac.isdigit()) and not rest:
        if dot:
            return int(float(num) * _RAM_MULT[unit])
        return int(whole) * _RAM_MULT[unit]
    raise UsageError(f"{flag}: invalid size `{text}` (bytes with an optional k, m, g, t or p "
                     "suffix, e.g. 512m)")


_DUR_UNITS = {"ns": 1, "us": 1000, "\u00b5s": 1000, "\u03bcs": 1000, "ms": 10**6,
              "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def parse_duration(text, flag="duration"):
    """Go duration syntax -> seconds (float): a sequence of decimal numbers, each with a unit
    (ns, us/µs, ms, s, m, h), e.g. "300ms", "1.5h", "2h45m". "0" needs no unit."""
    def bad(why):
        return UsageError(f"{flag}: invalid duration `{text}`: {why}")

    s = text if isinstance(text, str) else ""
    if s in ("0", "+0", "-0"):
        return 0.0
    if not s:
        raise bad("empty")
    sign = 1
    if s[0] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    total_ns = 0.0
    i = 0
    if not s:
        raise bad("no number")
    while i < len(s):
        j = i
        while j < len(s) and (s[j].isdigit() or s[j] == ".") and s[j].isascii():
            j += 1
        num = s[i:j]
        if not num or num == "." or num.count(".") > 1:
            raise bad("expected a number")
        k = j
        while k < len(s) and not (s[k].isdigit() or s[k] == "."):
            k += 1
        unit = s[j:k]
        if not unit:
            raise bad("missing unit (ns, us, ms, s, m or h)")
        mult = _DUR_UNITS.get(unit)
        if mult is None:
            raise bad(f"unknown unit `{unit}`")
        total_ns += float(num) * mult
        i = k
    if total_ns > (1 << 63) - 1:  # Go's time.Duration is an int64 of nanoseconds
        raise bad("out of range")
    return sign * total_ns / 1e9
