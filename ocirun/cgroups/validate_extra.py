"""The checks of linux.resources fields a plain container does not have (blockIO,
hugepageLimits, network, rdma, unified), for validate.py: imported from it only when the
resources have one, so that a plain `run` does not read or unmarshal their code. Same
rules and messages as validate.py (whose helpers they use)."""
from ocirun.cgroups.validate import (
    UINT32_MAX, UINT64_MAX, _int, _items, _list, _obj, _show,
)
from ocirun.errors import ConfigError

# unified keys that would move processes or control the cgroup instead of limiting it
FORBIDDEN_UNIFIED = ("cgroup.procs", "cgroup.threads", "cgroup.kill", "cgroup.freeze",
                     "cgroup.subtree_control", "cgroup.type")


LEAF_WEIGHT = "leaf weights are not supported: they were the CFQ scheduler's, which " \
              "Linux 5.0 removed"


def validate_block_io(bio, field, mode):
    for key in ("weight", "leafWeight"):
        w = _int(bio, key, field, 0, 1000)
        if w is not None and 0 < w < 10:
            raise ConfigError(f"{field}.{key}", f"{w} is out of range [10, 1000]")
    if bio.get("leafWeight"):
        raise ConfigError(f"{field}.leafWeight", LEAF_WEIGHT)
    lst = _list(bio, "weightDevice", field)
    for f, item in _items(lst or (), f"{field}.weightDevice"):
        for key in ("major", "minor"):
            if key not in item:
                raise ConfigError(f"{f}.{key}", "is required")
            _int(item, key, f, 0, UINT32_MAX)
        for key in ("weight", "leafWeight"):
            w = _int(item, key, f, 0, 1000)
            if w is not None and 0 < w < 10:
                raise ConfigError(f"{f}.{key}", f"{w} is out of range [10, 1000]")
        if item.get("leafWeight"):
            raise ConfigError(f"{f}.leafWeight", LEAF_WEIGHT)
    for name in ("throttleReadBpsDevice", "throttleWriteBpsDevice",
                 "throttleReadIOPSDevice", "throttleWriteIOPSDevice"):
        lst = _list(bio, name, field)
        for f, item in _items(lst or (), f"{field}.{name}"):
            for key in ("major", "minor", "rate"):
                if key not in item:
                    raise ConfigError(f"{f}.{key}", "is required")
            _int(item, "major", f, 0, UINT32_MAX)
            _int(item, "minor", f, 0, UINT32_MAX)
            _int(item, "rate", f, 0, UINT64_MAX)


def check_page_size(size, field):
    """pageSize becomes part of a file name (hugetlb.<size>.limit_in_bytes): digits + KB/MB/GB."""
    if not isinstance(size, str):
        raise ConfigError(field, f"must be a string, got {_show(size)}")
    num, unit = size[:-2], size[-2:]
    if unit not in ("KB", "MB", "GB") or not num.isdigit() or not num.isascii() or num.startswith("0"):
        raise ConfigError(field, f"{size!r} is not a page size like \"2MB\" or \"1GB\"")


def validate_unified(uni, field, mode):
    if mode in ("v1", "hybrid"):
        raise ConfigError(field, "cgroup v2 (unified) keys need a cgroup v2 host; this host uses cgroup v1")
    for key, value in uni.items():
        f = f"{field}[{key!r}]"
        if not isinstance(key, str) or not key or "/" in key or "\0" in key or key.startswith(".") \
                or "." not in key.strip(".") or any(c.isspace() for c in key):
            raise ConfigError(f, "is not a cgroup v2 interface file name like \"memory.high\"")
        if key in FORBIDDEN_UNIFIED:
            raise ConfigError(f, "is managed by the runtime, not a resource setting")
        if not isinstance(value, str):
            raise ConfigError(f, f"must be a string, got {_show(value)}")
        if "\0" in value:
            raise ConfigError(f, "must not contain NUL bytes")


def _check_name(name, f, what):
    if not isinstance(name, str) or not name or any(c in name for c in " \t\n=\0/") or len(name) > 255:
        raise ConfigError(f, f"{_show(name)} is not a valid {what}")


def validate_io_and_network(res, field, mode):
    """blockIO, hugepageLimits and network (in validate_resources' order)."""
    bio = _obj(res, "blockIO", field)
    if bio is not None:
        validate_block_io(bio, f"{field}.blockIO", mode)
    huge = _list(res, "hugepageLimits", field)
    for f, item in _items(huge or (), f"{field}.hugepageLimits"):
        if "pageSize" not in item:
            raise ConfigError(f"{f}.pageSize", "is required")
        check_page_size(item["pageSize"], f"{f}.pageSize")
        if "limit" not in item:
            raise ConfigError(f"{f}.limit", "is required")
        _int(item, "limit", f, 0, UINT64_MAX)
    net = _obj(res, "network", field)
    if net is not None:
        nf = f"{field}.network"
        _int(net, "classID", nf, 0, UINT32_MAX)
        for f, item in _items(_list(net, "priorities", nf) or (), f"{nf}.priorities"):
            _check_name(item.get("name"), f"{f}.name", "network interface name")
            if "priority" not in item:
                raise ConfigError(f"{f}.priority", "is required")
            _int(item, "priority", f, 0, UINT32_MAX)
        if mode == "unified":
            # net_cls and net_prio are cgroup v1 controllers only (crun refuses them too)
            if net.get("classID") is not None:
                raise ConfigError(f"{nf}.classID", "net_cls does not exist on cgroup v2")
            if net.get("priorities"):
                raise ConfigError(f"{nf}.priorities", "net_prio does not exist on cgroup v2")


def validate_rdma_and_unified(res, field, mode):
    """rdma and unified (in validate_resources' order, after devices)."""
    rdma = _obj(res, "rdma", field)
    if rdma is not None:
        for name, lim in rdma.items():
            f = f"{field}.rdma[{name!r}]"
            _check_name(name, f, "RDMA device name")
            if not isinstance(lim, dict):
                raise ConfigError(f, f"must be an object, got {_show(lim)}")
            _int(lim, "hcaHandles", f, 0, UINT32_MAX)
            _int(lim, "hcaObjects", f, 0, UINT32_MAX)
    uni = _obj(res, "unified", field)
    if uni:
        validate_unified(uni, f"{field}.unified", mode)
