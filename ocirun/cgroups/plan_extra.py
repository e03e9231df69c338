"""The cgroup steps (common.py's step list) of linux.resources.blockIO, hugepageLimits,
network and rdma, for plan_v1 (v1.py) and plan_v2 (v2.py): imported only when the
resources have one of them, so that a plain `run` does not read their code."""
from ocirun.cgroups import convert
from ocirun.cgroups.common import step_write


def v1_steps(res, field):
    """v1: blkio, hugetlb, net_cls/net_prio, rdma (in plan_v1's order)."""
    steps = []
    bio = res.get("blockIO") or {}
    f = f"{field}.blockIO"
    if bio.get("weight"):
        w = str(bio["weight"])
        steps.append(step_write("blkio", [("blkio.weight", w), ("blkio.bfq.weight", w)], f"{f}.weight"))
    for i, wd in enumerate(bio.get("weightDevice") or ()):
        if wd.get("weight"):
            line = f"{convert.major_minor(wd)} {wd['weight']}"
            steps.append(step_write("blkio", [("blkio.weight_device", line), ("blkio.bfq.weight_device", line)],
                                    f"{f}.weightDevice[{i}].weight"))
    for key, name in (("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
                      ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
                      ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
                      ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device")):
        for i, t in enumerate(bio.get(key) or ()):
            steps.append(step_write("blkio", [(name, f"{convert.major_minor(t)} {t['rate']}")], f"{f}.{key}[{i}]"))

    for i, h in enumerate(res.get("hugepageLimits") or ()):
        steps.append(step_write("hugetlb", [(f"hugetlb.{h['pageSize']}.limit_in_bytes", str(h["limit"]))],
                                f"{field}.hugepageLimits[{i}]"))

    net = res.get("network") or {}
    if net.get("classID") is not None:
        steps.append(step_write("net_cls", [("net_cls.classid", str(net["classID"]))],
                                f"{field}.network.classID"))
    for i, p in enumerate(net.get("priorities") or ()):
        steps.append(step_write("net_prio", [("net_prio.ifpriomap", f"{p['name']} {p['priority']}")],
                                f"{field}.network.priorities[{i}]"))

    steps += rdma_steps(res, field)
    return steps


def v2_steps(res, field):
    """v2: io, hugetlb, rdma (in plan_v2's order)."""
    steps = []
    bio = res.get("blockIO") or {}
    f = f"{field}.blockIO"
    if bio.get("weight"):
        # io.bfq.weight keeps the blkio scale (1..1000); io.weight is 1..10000
        w = bio["weight"]
        steps.append(step_write("io", [("io.bfq.weight", str(w)),
                                       ("io.weight", f"default {convert.blkio_weight_to_io_weight(w)}")],
                                f"{f}.weight"))
    for i, wd in enumerate(bio.get("weightDevice") or ()):
        if wd.get("weight"):
            w = wd["weight"]
            steps.append(step_write("io", [("io.bfq.weight", f"{convert.major_minor(wd)} {w}"),
                                           ("io.weight", f"{convert.major_minor(wd)} {convert.blkio_weight_to_io_weight(w)}")],
                                    f"{f}.weightDevice[{i}].weight"))
    for key, io_key in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                        ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
        for i, t in enumerate(bio.get(key) or ()):
            # rate 0 means "no limit" in v1 throttle files; io.max spells it "max"
            rate = t["rate"] or "max"
            steps.append(step_write("io", [("io.max", f"{convert.major_minor(t)} {io_key}={rate}")], f"{f}.{key}[{i}]"))

    for i, h in enumerate(res.get("hugepageLimits") or ()):
        steps.append(step_write("hugetlb", [(f"hugetlb.{h['pageSize']}.max", str(h["limit"]))],
                                f"{field}.hugepageLimits[{i}]"))

    # (network: net_cls/net_prio do not exist on v2; validate.py refuses them)

    steps += rdma_steps(res, field)
    return steps


def rdma_steps(res, field):
    """linux.resources.rdma -> rdma.max writes (the same file on v1 and v2)."""
    steps = []
    for name, lim in (res.get("rdma") or {}).items():
        parts = [name]
        if lim.get("hcaHandles") is not None:
            parts.append(f"hca_handle={lim['hcaHandles']}")
        if lim.get("hcaObjects") is not None:
            parts.append(f"hca_object={lim['hcaObjects']}")
        if len(parts) > 1:
            steps.append(step_write("rdma", [("rdma.max", " ".join(parts))], f"{field}.rdma[{name!r}]"))
    return steps
