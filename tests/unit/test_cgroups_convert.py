import pytest

from ocirun.cgroups import convert


@pytest.mark.parametrize("shares,weight", [
    (0, 0), (2, 1), (1024, 39), (262144, 10000), (1, 1), (10 ** 9, 10000), (512, 20),
])
def test_shares_to_weight(shares, weight):
    assert convert.shares_to_weight(shares) == weight


@pytest.mark.parametrize("w,io", [(0, 0), (10, 1), (1000, 10000), (500, 4950), (100, 910)])
def test_blkio_weight_to_io_weight(w, io):
    assert convert.blkio_weight_to_io_weight(w) == io


def test_weights_are_monotonic_and_in_range():
    prev = 0
    for s in range(2, 262145, 997):
        w = convert.shares_to_weight(s)
        assert 1 <= w <= 10000 and w >= prev
        prev = w


@pytest.mark.parametrize("swap,limit,expected", [
    (0, 0, None),
    (0, 100, None),
    (0, -1, "max"),          # lifting memory lifts swap too
    (-1, 100, "max"),
    (-1, -1, "max"),
    (300, 100, "200"),       # OCI swap is memory+swap
    (100, 100, "0"),         # no swap at all
])
def test_swap_v2(swap, limit, expected):
    assert convert.swap_v2(swap, limit) == expected


@pytest.mark.parametrize("swap,limit", [(50, 100), (100, 0), (100, -1)])
def test_swap_v2_rejects(swap, limit):
    with pytest.raises(ValueError):
        convert.swap_v2(swap, limit)


@pytest.mark.parametrize("quota,period,expected", [
    (0, 0, None), (50000, 0, "50000"), (50000, 100000, "50000 100000"),
    (-1, 0, "max"), (-1, 250000, "max 250000"), (0, 100000, "max 100000"),
])
def test_cpu_max(quota, period, expected):
    assert convert.cpu_max(quota, period) == expected


def test_int_or_max_and_device_numbers():
    assert convert.int_or_max(-1) == "max"
    assert convert.int_or_max(4096) == "4096"
    assert convert.device_number(None) == "*"
    assert convert.device_number(-1) == "*"
    assert convert.device_number(136) == "136"
