"""HashedNets (Chen, Wilson, Tyree, Weinberger, Bengio; ICML 2015).

Every chosen layer's virtual weight V_ij = xi(i, j) w[h(i, j)]: h hashes into the layer's K_l buckets, xi
is a +-1 sign hash, and a bucket's gradient is the sum of its members' sign-corrected gradients. K_l =
ratio x the layer's weights, so a ratio of 1/8 stores 8x fewer values; biases stay dense as in the paper
(or are hashed too). Indices are recomputed from the seed, never stored (models/hashed/index.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.core.params import LayerMap, knob
from workbench.methods.hashing.base import HashConfig, HashingMethod
from workbench.methods.registry import register


def ratio_knob(help_text: str):
    return knob(0.125, "Ratio", help_text, min=1e-5, max=1.0, log=True, step=0.005, tune="0.02..0.5:log")


def common_config(p) -> dict:
    """HashConfig fields from the knobs both hashing methods have (shared_knobs, ratio, ratio_layers)."""
    return dict(ratio=p.ratio, ratio_layers=dict(p.ratio_layers), layers=p.layers, hash_bias=p.bias == "hashed",
                init=p.init, seed=p.seed, cache_indices=p.cache_indices, kernel=p.kernel)


def shared_knobs():
    """Knobs both hashing methods declare the same way (fresh fields per dataclass)."""
    return dict(
        layers=knob("all", "Layers", "all, fc, conv, or layer names separated by commas (e.g. fc1,fc2)."),
        init=knob("pretrained", "Initialisation", "pretrained: buckets from the sign-corrected mean of "
                  "their members' pretrained weights (a mean over m members keeps about 1/m of their "
                  "energy); scratch: random buckets (+-1/sqrt(fan_in)), the reference model's weights "
                  "unused. funhash on LeNet-300-100: pretrained better at 1/8, scratch at 1/64 (README).",
                  choices=("pretrained", "scratch")),
        bias=knob("dense", "Biases", "dense: stored as they are (the papers); hashed: part of each layer's "
                  "virtual weights.", choices=("dense", "hashed")),
        seed=knob(-1, "Hash seed", "Seed of the hash functions (stored, 32 bits); -1 draws one from the "
                  "run's seed.", min=-1, max=2**32 - 1),
        cache_indices=knob(False, "Cache indices", "Keep each layer's bucket indices (int32, 4 bytes per "
                           "weight and hash function) instead of recomputing them: faster on the PyTorch "
                           "path (GPU), more memory. The native CPU kernel always recomputes (faster there).",
                           advanced=True),
        kernel=knob("auto", "Kernel", "auto: the native CPU kernel where a C compiler builds it, else "
                    "PyTorch; torch: always the PyTorch path.", choices=("auto", "torch"), advanced=True),
    )


_S = shared_knobs()


@dataclass
class HashedNetsParams:
    ratio: float = ratio_knob("Buckets per virtual weight in each layer: the compression factor "
                              "(0.125 = 1/8 stores 8x fewer weights).")
    ratio_layers: LayerMap = knob({}, "Per-layer ratios", "Overrides, e.g. fc1=0.05,fc3=0.5.", min=1e-5, max=1.0)
    layers: str = _S["layers"]
    init: str = _S["init"]
    bias: str = _S["bias"]
    seed: int = _S["seed"]
    cache_indices: bool = _S["cache_indices"]
    kernel: str = _S["kernel"]


@register
class HashedNets(HashingMethod):
    key = "hashed"
    label = "HashedNets (Chen 2015)"
    summary = ("Random weight sharing: each virtual weight is a sign-hashed bucket of its layer; buckets + "
               "seed stored, indices recomputed.")
    paper = ("Chen, Wilson, Tyree, Weinberger, Chen. Compressing Neural Networks with the Hashing Trick. "
             "ICML 2015")
    Params = HashedNetsParams

    def hash_config(self) -> HashConfig:
        return HashConfig(**common_config(self.params))
