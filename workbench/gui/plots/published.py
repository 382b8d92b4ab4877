"""The papers' published results on the reference networks, each from its paper's Table 1: Han, Pool,
Tran, Dally (NIPS 2015); Han, Mao, Dally, Deep Compression (ICLR 2016); Guo, Yao, Chen, Dynamic Network
Surgery (NIPS 2016); Ullrich, Meeds, Welling, soft weight-sharing (ICLR 2017).

Data only, so the ratio plot can show where a run stands against the literature. `convention` says which
ratio the paper reported: "param_ratio" (dense / stored parameters: Han 2015, DNS) or "storage_ratio"
(dense fp32 bits / stored bits: Deep Compression, soft weight-sharing). A paper's point is only drawn
under its own convention, since the two ratios of one model differ by several times. All were measured
on MNIST, so a point is drawn only beside a run of its network on MNIST: a LeNet-300-100 run on
Fashion-MNIST or on the tiny set errs several times more and is no match for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from workbench.data.locate import canonical


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
    dataset: str        # data set key as workbench.data names it


PUBLISHED: tuple[Published, ...] = (
    Published("lenet300", "Han 2015 pruning", "Han 2015", 1.64, 1.59, 8.3, 12, "param_ratio", "mnist"),
    Published("lenet300", "Deep Compression", "DC 2016", 1.64, 1.58, 8.0, 40, "storage_ratio", "mnist"),
    Published("lenet300", "Dynamic Network Surgery", "DNS 2016", 2.28, 1.99, 1.8, 56, "param_ratio", "mnist"),
    Published("lenet300", "Soft weight-sharing", "SWS 2017", 1.89, 1.94, 4.3, 64, "storage_ratio", "mnist"),
    Published("lenet5", "Han 2015 pruning", "Han 2015", 0.80, 0.77, 8.0, 12, "param_ratio", "mnist"),
    Published("lenet5", "Deep Compression", "DC 2016", 0.80, 0.74, 8.0, 39, "storage_ratio", "mnist"),
    Published("lenet5", "Dynamic Network Surgery", "DNS 2016", 0.91, 0.91, 0.9, 108, "param_ratio", "mnist"),
    Published("lenet5", "Soft weight-sharing", "SWS 2017", 0.88, 0.97, 0.5, 162, "storage_ratio", "mnist"),
)


def published_for(runs: Iterable[tuple[str, str]], convention: str) -> list[Published]:
    """Published points under one ratio convention for these (model, data set) pairs: a paper's point
    only where a run has its network and its data set. No runs, no points."""
    wanted = {(model, canonical(dataset)) for model, dataset in runs if model and dataset}
    return [p for p in PUBLISHED if p.convention == convention and (p.net, p.dataset) in wanted]
