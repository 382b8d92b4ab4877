"""Functional hashing: FunHashNN (Shi, Feng, Zhu. Functional Hashing for Compressing Neural Networks.
arXiv:1605.06560, 2016) and its homological version HFH (the same authors, Homologically Functional
Hashing for Compressing Deep Neural Networks, ICLR 2017 submission, 2016).

Each virtual weight fetches U signed values from a compression space with U hash functions and a small
reconstruction network g maps them to the weight: V_ij = g([xi_1 w[h_1(i,j)], ..., xi_U w[h_U(i,j)]]; alpha)
(the paper's full text; g sees the U values in a fixed order). Defaults follow the paper: U = 4 and g of
widths 4 -> 2 -> 1 with tanh hidden units. `space=shared` is HFH: one table serves every layer, so one
global ratio sets its size; `per_layer` is FunHashNN. Whether g is shared across layers is not stated (a
knob). Dual-space hashing (an extension the paper discusses): each fetched value is scaled by a per-weight
parameter of g hashed from a second table, V = g([d[h'_k] xi_k w[h_k]]_k). g's parameters, the dual
space and the seed all count as stored. U = 1 with no g (`g_widths=none`) is HashedNets exactly.
The paper gives no training settings (optimizer, learning rate, epochs): the stage's training knobs apply.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.core.errors import ParamError
from workbench.core.params import LayerMap, knob
from workbench.methods.hashing.base import HashConfig, HashingMethod, parse_widths
from workbench.methods.hashing.hashednets import common_config, ratio_knob, shared_knobs
from workbench.methods.registry import register

_S = shared_knobs()


@dataclass
class FunHashParams:
    ratio: float = ratio_knob("Stored values per virtual weight over all hashed layers, g and the dual "
                              "space included (0.125 = 1/8).")
    space: str = knob("shared", "Compression space", "shared: one table for all layers (HFH, one global "
                      "ratio); per_layer: one table per layer (FunHashNN).", choices=("shared", "per_layer"))
    u: int = knob(4, "Hash functions U", "Values fetched per virtual weight (paper: 4).", min=1, max=16, tune="1..8")
    g_widths: str = knob("4,2,1", "g widths", "Widths of the reconstruction network's layers after its U "
                         "inputs, ending in 1 (paper: 4,2,1; 1 = a learned weighted sum; none = the plain sum).")
    activation: str = knob("tanh", "g activation", "Between g's layers (paper: tanh).",
                           choices=("tanh", "relu", "linear"), tune="tanh|relu|linear")
    shared_g: bool = knob(True, "Share g", "One reconstruction network for all layers (else one per layer; "
                          "the paper does not say). With a shared space, one g was better where it trained "
                          "but stalled at high learning rates where per-layer g trained (README).")
    dual_space: bool = knob(False, "Dual-space hashing", "Scale each fetched value by a per-weight parameter "
                            "of g hashed from a second table.")
    dual_fraction: float = knob(0.25, "Dual space share", "Part of the budget given to the dual space.",
                                min=0.01, max=0.9, step=0.05, advanced=True)
    ratio_layers: LayerMap = knob({}, "Per-layer ratios", "With space=per_layer: overrides, e.g. fc1=0.05.",
                                  min=1e-5, max=1.0)
    g_grad_scale: float = knob(-1.0, "g gradient scale", "Factor on g's gradient, which sums over every "
                               "weight g produces: -1 (auto) scales it to a bucket's size, U / buckets; 1 is "
                               "the plain gradient (with SGD, g then diverged on LeNet-300-100).", min=-1.0,
                               max=1e6, advanced=True)
    fit_steps: int = knob(200, "Fit steps", "With init=pretrained: Adam steps fitting spaces and g to the "
                          "pretrained weights before training (0: the member means only).", min=0,
                          max=100_000, advanced=True)
    layers: str = _S["layers"]
    init: str = _S["init"]
    bias: str = _S["bias"]
    seed: int = _S["seed"]
    cache_indices: bool = _S["cache_indices"]
    kernel: str = _S["kernel"]

    def check(self) -> None:
        # g_widths is free text (like lowrank's `layers`) and is read when the stage starts (hash_config)
        if self.ratio_layers and self.space == "shared":
            raise ParamError("ratio_layers: a shared space has one global ratio; use space=per_layer")


@register
class FunctionalHashing(HashingMethod):
    key = "funhash"
    label = "Functional hashing (FunHashNN / HFH)"
    summary = ("U hash functions fetch signed values from a compression space (shared by all layers or per "
               "layer); a small reconstruction network maps them to each weight.")
    paper = ("Shi, Feng, Zhu. Functional Hashing for Compressing Neural Networks. arXiv 1605.06560, 2016; "
             "HFH: Homologically Functional Hashing for Compressing Deep Neural Networks, 2016")
    Params = FunHashParams

    def hash_config(self) -> HashConfig:
        p = self.params
        widths = parse_widths(p.g_widths)
        return HashConfig(**common_config(p), u=p.u, widths=widths,
                          activation=p.activation if widths else "linear", shared_g=p.shared_g,
                          shared_space=p.space == "shared", dual=p.dual_space, dual_fraction=p.dual_fraction,
                          fit_steps=p.fit_steps, g_grad_scale=p.g_grad_scale)

    def stall_hint(self) -> str:
        p = self.params
        if p.space == "shared" and p.shared_g and parse_widths(p.g_widths):
            # one table and one g cannot give each layer its own weight scale (measured in README)
            return ("one space and one g for all layers stall at high learning rates: lower it (LeNet-300-100 "
                    "at 1/64: two of three seeds stalled at 0.02, none at 0.01) or turn off 'Share g' (all "
                    "three trained at 0.02)")
        return super().stall_hint()
