"""Range observers for int8 calibration: what range of a layer's input the uint8 quantizer covers.

* `minmax`: the smallest and largest value seen (torch.ao's MinMaxObserver; Jacob et al. 2018 use the
  range seen, smoothed over training). One outlier widens every step.
* `percentile`: the 0.01 % and 99.99 % quantiles (TensorRT's percentile calibration), so rare outliers are
  clipped instead of costing resolution.
* `mse`: the range, shrunk about its ends, that minimises the mean squared quantization error of the
  observed values (clipping error + rounding error), searched over a grid of shrink factors.

The quantiles and the error are taken over a uniform random sample of the observed values (up to
SAMPLE_PER_BATCH per batch, SAMPLE_MAX in all, drawn with the run's seeded generator), which keeps the
memory bounded on large activations; min and max are exact.
"""

from __future__ import annotations

import torch

from workbench.models.quantized import INPUT_QMAX, INPUT_QMIN, input_qparams

OBSERVERS = ("minmax", "percentile", "mse")
PERCENTILE = 0.9999
SAMPLE_PER_BATCH, SAMPLE_MAX = 1 << 16, 1 << 20
MSE_SHRINKS = torch.linspace(0.05, 1.0, 96)


def quantize_dequantize(v: torch.Tensor, low: float, high: float) -> torch.Tensor:
    scale, zero = input_qparams(low, high)
    return torch.fake_quantize_per_tensor_affine(v, scale, int(zero), INPUT_QMIN, INPUT_QMAX)


class RangeObserver:
    """Sees a layer's inputs batch by batch (`observe`), then gives the range to quantize (`range`)."""

    def __init__(self, how: str, generator: torch.Generator):
        if how not in OBSERVERS:
            raise ValueError(f"unknown observer {how!r}")
        self.how, self.generator = how, generator
        self.low, self.high = float("inf"), float("-inf")
        self.samples: list[torch.Tensor] = []
        self.kept = 0
        self.batches = 0

    def observe(self, x: torch.Tensor) -> None:
        v = x.detach().reshape(-1).float()
        if not v.numel():
            return
        self.batches += 1
        self.low, self.high = min(self.low, float(v.min())), max(self.high, float(v.max()))
        if self.how == "minmax" or self.kept >= SAMPLE_MAX:
            return
        take = min(v.numel(), SAMPLE_PER_BATCH, SAMPLE_MAX - self.kept)
        if take < v.numel():
            v = v[torch.randint(v.numel(), (take,), generator=self.generator).to(v.device)]
        self.samples.append(v.cpu())
        self.kept += take

    def range(self) -> tuple[float, float]:
        """(low, high); (0, 0) when nothing was seen."""
        if self.low > self.high:
            return 0.0, 0.0
        if self.how == "minmax" or not self.samples:
            return self.low, self.high
        v = torch.cat(self.samples)
        if self.how == "percentile":
            ends = torch.quantile(v, torch.tensor([1 - PERCENTILE, PERCENTILE]))
            return float(ends[0]), float(ends[1])
        low, high = min(self.low, 0.0), max(self.high, 0.0)
        errors = [float((quantize_dequantize(v, low * a, high * a) - v).square().mean()) for a in MSE_SHRINKS]
        best = float(MSE_SHRINKS[min(range(len(errors)), key=errors.__getitem__)])
        return low * best, high * best
