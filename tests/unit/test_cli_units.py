"""Go-style sizes and durations, and `update` flags turned into linux.resources."""
import pytest

from ocirun.cli.opts import parse
from ocirun.cli.units import parse_duration, ram_in_bytes
from ocirun.cli import update
from ocirun.errors import UsageError

K, M, G = 1 << 10, 1 << 20, 1 << 30


@pytest.mark.parametrize("text,want", [
    ("0", 0), ("100", 100), ("10b", 10), ("1k", K), ("1kb", K), ("1KiB", K), ("1K", K),
    ("512m", 512 * M), ("512M", 512 * M), ("32 MiB", 32 * M), ("1g", G), ("1.5g", 3 * G // 2),
    ("2t", 2 << 40), ("1p", 1 << 50),
])
def test_ram_in_bytes(text, want):
    assert ram_in_bytes(text) == want


@pytest.mark.parametrize("text", ["", "x", "-1", "-5m", "1x", "1.", ".5m", "1.2.3m", "1gg", "m",
                                  "1  m", "1mbb", "1e3"])
def test_ram_in_bytes_refuses(text):
    with pytest.raises(UsageError, match="--memory: invalid size"):
        ram_in_bytes(text, "--memory")


@pytest.mark.parametrize("text,want", [
    ("5s", 5.0), ("100ms", 0.1), ("1m", 60.0), ("1h30m", 5400.0), ("1.5s", 1.5),
    ("300us", 0.0003), ("300\u00b5s", 0.0003), ("10ns", 1e-8), ("0", 0.0), ("-2s", -2.0),
    (".5s", 0.5),
])
def test_parse_duration(text, want):
    assert parse_duration(text) == pytest.approx(want)


@pytest.mark.parametrize("text,msg", [("", "empty"), ("5", "missing unit"), ("s", "expected a number"),
                                      ("1x", "unknown unit"), ("1.2.3s", "expected a number"),
                                      ("-", "no number")])
def test_parse_duration_refuses(text, msg):
    with pytest.raises(UsageError, match=msg):
        parse_duration(text, "--interval")


def test_update_flags_to_resources():
    o, pos = parse(["--memory", "64m", "--memory-swap", "-1", "--cpu-share", "256",
                    "--cpu-quota", "-1", "--cpuset-cpus", "0-1", "--pids-limit", "50",
                    "--blkio-weight=500", "--cpu-rt-runtime", "950000", "--kernel-memory-tcp", "1g",
                    "c1"], update.OPTIONS)
    assert pos == ["c1"]
    assert update.resources_from_flags(o) == {
        "memory": {"limit": 64 * M, "swap": -1, "kernelTCP": G},
        "cpu": {"shares": 256, "quota": -1, "cpus": "0-1", "realtimeRuntime": 950000},
        "pids": {"limit": 50},
        "blockIO": {"weight": 500},
    }


@pytest.mark.parametrize("argv,msg", [
    (["--cpu-share", "x"], "--cpu-share: `x` is not an integer"),
    (["--cpu-period", "-5"], "--cpu-period: -5 is out of range"),
    (["--blkio-weight", "65536"], "--blkio-weight: 65536 is out of range"),
    (["--memory", "lots"], "--memory: invalid size `lots`"),
])
def test_update_flag_errors(argv, msg):
    o, _ = parse(argv + ["c1"], update.OPTIONS)
    with pytest.raises(UsageError, match=msg):
        update.resources_from_flags(o)
