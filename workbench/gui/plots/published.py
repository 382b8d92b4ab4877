"""The papers' published results on the reference networks, each from its paper's Table 1: Han, Pool,
Tran, Dally (NIPS 2015); Han, Mao, Dally, Deep Compression (ICLR 2016); Guo, Yao, Chen, Dynamic Network
Surgery (NIPS 2016); Ullrich, Meeds, Welling, soft weight-sharing (ICLR 2017).

Data only, so the ratio plot can show where a run stands against the literature. `convention` says which
ratio the paper reported: "param_ratio" (dense / stored parameters: Han 2015, DNS) or "storage_ratio"
(dense fp32 bits / stored bits: Deep Compression, soft weight-sharing). A paper's point is only drawn
under its own convention, since the two ratios of one model differ by several times.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Published:
    net: str            # model key as in the zoo
    method: str         # full method name
    short: str          # marker label, e.g. "DNS 2016"
    ref_error: float    # the paper's uncompressed error (%)
    error: float        # compressed test error (%)
    kept: float         # kept weights (%)
    ratio: float
    convention: str     # "param_ratio" | "storage_ratio"


PUBLISHED: tuple[Published, ...] = (
    Published("lenet300", "Han 2015 pruning", "Han 2015", 1.64, 1.59, 8.3, 12, "param_ratio"),
    Published("lenet300", "Deep Compression", "DC 2016", 1.64, 1.58, 8.0, 40, "storage_ratio"),
    Published("lenet300", "Dynamic Network Surgery", "DNS 2016", 2.28, 1.99, 1.8, 56, "param_ratio"),
    Published("lenet300", "Soft weight-sharing", "SWS 2017", 1.89, 1.94, 4.3, 64, "storage_ratio"),
    Published("lenet5", "Han 2015 pruning", "Han 2015", 0.80, 0.77, 8.0, 12, "param_ratio"),
    Published("lenet5", "Deep Compression", "DC 2016", 0.80, 0.74, 8.0, 39, "storage_ratio"),
    Published("lenet5", "Dynamic Network Surgery", "DNS 2016", 0.91, 0.91, 0.9, 108, "param_ratio"),
    Published("lenet5", "Soft weight-sharing", "SWS 2017", 0.88, 0.97, 0.5, 162, "storage_ratio"),
)


def published_for(models, convention: str) -> list[Published]:
    """Published points for these models (all models when none is given) under one ratio convention."""
    wanted = {m for m in models if m}
    return [p for p in PUBLISHED
            if p.convention == convention and (not wanted or p.net in wanted)]
