"""The one compression calculator: per-layer and total parameter and storage ratios for every method.

Conventions (both are reported, and named wherever they are shown):

* `param_ratio` = dense parameters / stored parameters. Han et al. 2015 and Dynamic Network Surgery
  report this ("12x", "108x"). Stored parameters are the numbers a method keeps: nonzero weights, factor
  entries, hash buckets, codebook entries, reconstruction-network weights. Filler zeros of the sparse
  format are storage overhead, not parameters.
* `storage_ratio` = dense fp32 bits / stored bits. Deep Compression and soft weight-sharing report this
  ("40x", "64x"). Stored bits are values x value bits + relative-index bits (with filler entries) +
  codebooks + per-tensor metadata (shape, counts, flags), as written by the compact export.

A layer replaced by thinner ones (low-rank factors, removed units) is measured against the original
dense layer: its tensors carry `layer_dense_params`, which replaces the sum of their own sizes.

Buffers needed at inference (e.g. BatchNorm statistics) are stored and cost bits but are not parameters,
so they lower `storage_ratio` and leave `param_ratio` alone. Nothing is free unless it is recomputed at
load time (e.g. hash indices regenerated from a seed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workbench.core.encoding import Encoded

DENSE_VALUE_BITS = 32


@dataclass
class LayerReport:
    layer: str
    kind: str
    dense_params: int = 0
    stored_params: int = 0
    nonzeros: int = 0
    fillers: int = 0
    bits: int = 0
    tensors: list[Encoded] = field(default_factory=list)

    @property
    def param_ratio(self) -> float:
        return _ratio(self.dense_params, self.stored_params)

    @property
    def storage_ratio(self) -> float:
        return _ratio(self.dense_params * DENSE_VALUE_BITS, self.bits)

    @property
    def kept_fraction(self) -> float:
        return self.stored_params / self.dense_params if self.dense_params else 1.0


@dataclass
class Report:
    layers: list[LayerReport]

    @property
    def dense_params(self) -> int:
        return sum(layer.dense_params for layer in self.layers)

    @property
    def stored_params(self) -> int:
        return sum(layer.stored_params for layer in self.layers)

    @property
    def dense_bits(self) -> int:
        return self.dense_params * DENSE_VALUE_BITS

    @property
    def bits(self) -> int:
        return sum(layer.bits for layer in self.layers)

    @property
    def param_ratio(self) -> float:
        return _ratio(self.dense_params, self.stored_params)

    @property
    def storage_ratio(self) -> float:
        return _ratio(self.dense_bits, self.bits)

    def layer(self, name: str) -> LayerReport:
        return next(layer for layer in self.layers if layer.layer == name)

    def summary(self) -> dict:
        return {"dense_params": self.dense_params, "stored_params": self.stored_params,
                "dense_bits": self.dense_bits, "bits": self.bits,
                "param_ratio": self.param_ratio, "storage_ratio": self.storage_ratio}

    def table(self) -> str:
        rows = [f"{'layer':<20}{'kind':<6}{'dense':>10}{'stored':>10}{'kept%':>8}{'fillers':>9}"
                f"{'bits':>12}{'params x':>10}{'bits x':>9}"]
        for r in self.layers:
            rows.append(f"{r.layer:<20}{r.kind:<6}{r.dense_params:>10}{r.stored_params:>10}"
                        f"{100 * r.kept_fraction:>8.2f}{r.fillers:>9}{r.bits:>12}"
                        f"{r.param_ratio:>10.1f}{r.storage_ratio:>9.1f}")
        rows.append(f"{'total':<26}{self.dense_params:>10}{self.stored_params:>10}"
                    f"{100 * self.stored_params / max(self.dense_params, 1):>8.2f}"
                    f"{sum(r.fillers for r in self.layers):>9}{self.bits:>12}"
                    f"{self.param_ratio:>10.1f}{self.storage_ratio:>9.1f}")
        return "\n".join(rows)


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("inf")


def account(encoded: list[Encoded]) -> Report:
    """Group encoded tensors by layer and add up parameters and bits."""
    layers: dict[str, LayerReport] = {}
    original: dict[str, int] = {}
    for e in encoded:
        r = layers.setdefault(e.layer, LayerReport(e.layer, e.kind))
        if r.kind == "other" and e.kind != "other":
            r.kind = e.kind
        if e.layer_dense_params is not None:
            original[e.layer] = e.layer_dense_params
        r.dense_params += e.dense_params
        r.stored_params += e.stored_params
        r.nonzeros += e.nonzeros
        r.fillers += e.fillers
        r.bits += e.bits
        r.tensors.append(e)
    for name, dense in original.items():
        layers[name].dense_params = dense
    return Report(list(layers.values()))

