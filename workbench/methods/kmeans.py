"""Trained quantization (Deep Compression, Han, Mao, Dally, ICLR 2016, sec. 3).

Per layer, the surviving (nonzero) weights are clustered by 1-D k-means into 2^b clusters, b per layer
type (8 conv, 5 FC in the paper), with linear initialisation (centroids evenly spaced between the
smallest and largest weight: the paper's best choice, since it keeps the rare large weights represented).
Every weight then reads its cluster's centroid; during fine-tuning the centroids are the trainable
parameters and each receives the sum of its members' gradients (the paper's eq. 3), which is what the
gather's backward computes. A layer whose nonzero weights already hold at most 2^b distinct values (after
soft weight-sharing, say) keeps exactly those as its centroids, so a stage after it fine-tunes the shared
values without re-clustering them. Pruned weights (exact zeros, e.g. from an earlier pruning stage) stay zero:
they point at a fixed zero slot that is not trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from workbench.core.params import LayerMap, knob
from workbench.methods.base import Method, RunContext
from workbench.methods.per_layer import check_layer_map, select_layers
from workbench.methods.registry import register
from workbench.models.layers import layer_kind


@dataclass
class KMeansParams:
    bits_fc: int = knob(5, "Bits (FC)", "2^b shared weights per fully connected layer (paper: 5).",
                        min=1, max=8, tune="2..6")
    bits_conv: int = knob(8, "Bits (conv)", "2^b shared weights per convolutional layer (paper: 8).",
                          min=1, max=8, tune="3..8")
    bits_layers: LayerMap = knob({}, "Per-layer bits", "Overrides, e.g. fc1=4,fc2=5.", min=1, max=8)
    init: str = knob("linear", "Centroid init",
                     "linear: evenly spaced over [min, max] (paper's choice); density: at quantiles of "
                     "the weights; random: at randomly chosen weights.",
                     choices=("linear", "density", "random"), tune="linear|density|random")
    kmeans_iters: int = knob(50, "k-means iterations", "Lloyd iterations (stops early when stable).",
                             min=0, max=1000, advanced=True)
    train_centroids: bool = knob(True, "Fine-tune centroids",
                                 "Train the shared values with their members' summed gradients.")
    layers: str = knob("all", "Layers", "Which layers to quantize.", choices=("all", "fc", "conv"))


def init_centroids(w: torch.Tensor, k: int, how: str, generator: torch.Generator) -> torch.Tensor:
    if how == "linear":
        return torch.linspace(float(w.min()), float(w.max()), k, device=w.device)
    if how == "density":
        q = (torch.arange(k, device=w.device, dtype=w.dtype) + 0.5) / k
        # torch.quantile refuses inputs above 16M entries; sorting gives the same quantiles at any size.
        ranks = (q * (w.numel() - 1)).round().long()
        return w.sort().values[ranks]
    pick = torch.randperm(w.numel(), generator=generator)[:k].to(w.device)
    return w[pick].sort().values


def lloyd_1d(w: torch.Tensor, centroids: torch.Tensor, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """1-D k-means: nearest centroid by the sorted midpoints, means by bincount. Returns (c, assign)."""
    c = centroids.clone()
    k = len(c)
    assign = torch.zeros(w.numel(), dtype=torch.long, device=w.device)
    for i in range(iters + 1):
        c, order = c.sort()
        new = torch.bucketize(w, (c[1:] + c[:-1]) / 2)
        if i and torch.equal(new, assign):
            break
        assign = new
        if i == iters:
            break
        counts = torch.bincount(assign, minlength=k).to(w.dtype)
        sums = torch.zeros(k, dtype=w.dtype, device=w.device).index_add_(0, assign, w)
        c = torch.where(counts > 0, sums / counts.clamp(min=1), c)   # an empty cluster keeps its place
    return c, assign


class _SharedWeight:
    """Forward pre-hook: weight = [centroids, 0][assign] (the zero slot holds pruned entries)."""

    def __call__(self, module: nn.Module, inputs) -> None:
        c = module.weight_centroids
        table = torch.cat([c, c.new_zeros(1)])
        module.weight = table[module.weight_assign]


@register
class TrainedQuantization(Method):
    key = "kmeans"
    label = "Trained quantization (Deep Compression)"
    summary = "Per-layer k-means weight sharing (2^b values), centroids fine-tuned; zeros stay pruned."
    paper = ("Han, Mao, Dally. Deep Compression: Compressing Deep Neural Networks with Pruning, Trained "
             "Quantization and Huffman Coding. ICLR 2016")
    Params = KMeansParams

    def __init__(self, params=None):
        super().__init__(params)
        self.layers: dict[str, nn.Module] = {}
        self.slots: dict[str, int] = {}
        self.pruned_bias: dict[str, torch.Tensor] = {}   # biases pruned by an earlier stage stay zero

    def bits_for(self, name: str, module: nn.Module) -> int:
        p = self.params
        return p.bits_layers.get(name, p.bits_conv if layer_kind(module) == "conv" else p.bits_fc)

    def prepare(self, model: nn.Module, ctx: RunContext) -> None:
        p = self.params
        chosen = select_layers(model, p.layers)
        check_layer_map("bits_layers", p.bits_layers, [n for n, _ in chosen])
        for name, module in chosen:
            weight = module.weight.detach()
            flat = weight.reshape(-1)
            kept = flat != 0
            k = 1 << self.bits_for(name, module)
            alive = flat[kept]
            k = max(min(k, alive.numel()), 1)
            shared = torch.unique(alive) if alive.numel() else alive
            if 0 < shared.numel() <= k:
                # Already shared (soft weight-sharing, an earlier k-means): its values are the centroids.
                # Lloyd from `init` could put two of them in one cluster and move weights a fine-tuning
                # stage meant to keep.
                centroids, member = shared, torch.searchsorted(shared, alive)
                k = shared.numel()
            elif alive.numel():
                c0 = init_centroids(alive, k, p.init, ctx.generator)
                centroids, member = lloyd_1d(alive, c0, p.kmeans_iters)
            else:
                centroids, member = weight.new_zeros(1), torch.zeros(0, dtype=torch.long, device=weight.device)
            assign = torch.full_like(flat, k, dtype=torch.long)       # slot k: the fixed zero
            assign[kept] = member
            del module._parameters["weight"]
            module.weight_centroids = nn.Parameter(centroids, requires_grad=p.train_centroids)
            module.register_buffer("weight_assign", assign.reshape(weight.shape))
            module._workbench_kmeans_hook = module.register_forward_pre_hook(_SharedWeight())
            _SharedWeight()(module, None)
            self.layers[name] = module
            self.slots[name] = 1 << self.bits_for(name, module)
            bias = getattr(module, "bias", None)
            if bias is not None and bool((bias == 0).any()):
                self.pruned_bias[name] = bias.detach() == 0
            ctx.log(f"{name}: {k} shared weights for {int(kept.sum())} kept of {flat.numel()}")

    def after_step(self, model: nn.Module, ctx: RunContext) -> None:
        # Momentum would otherwise revive biases an earlier stage (e.g. DNS) pruned.
        with torch.no_grad():
            for name, zero in self.pruned_bias.items():
                self.layers[name].bias.masked_fill_(zero, 0.0)

    def epoch_stats(self, model: nn.Module) -> dict:
        out = {}
        for name, module in self.layers.items():
            if not hasattr(module, "weight_centroids"):
                continue
            c = module.weight_centroids.detach().cpu().double()
            padded = torch.full((self.slots[name],), float("nan"), dtype=torch.float64)
            padded[: len(c)] = c
            out[name] = {"centroids": padded.numpy()}     # fixed length per layer (2^b, NaN-padded)
        return out

    def effective_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        state = {}
        for key, value in model.state_dict().items():
            if key.endswith(".weight_assign"):
                continue
            if key.endswith(".weight_centroids"):
                owner = key[: -len(".weight_centroids")]
                module = model.get_submodule(owner)
                _SharedWeight()(module, None)             # the current centroids, not the last forward's
                key, value = owner + ".weight", module.weight.detach()
            state[key] = value
        return state

    def finalize(self, model: nn.Module, ctx: RunContext) -> None:
        """Leave plain layers whose weights hold at most 2^b distinct nonzero values."""
        for module in self.layers.values():
            with torch.no_grad():
                _SharedWeight()(module, None)
                value = module.weight.detach().clone()
            module._workbench_kmeans_hook.remove()
            del module._workbench_kmeans_hook
            del module.weight
            del module._parameters["weight_centroids"]
            del module._buffers["weight_assign"]
            module.weight = nn.Parameter(value)
        self.layers.clear()
        self.pruned_bias.clear()
