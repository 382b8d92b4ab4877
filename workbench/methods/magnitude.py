"""Magnitude pruning with retraining (Han, Pool, Tran, Dally, NIPS 2015).

Per layer, weights with |w| < q * std(layer's weights) are pruned; the network is retrained with the mask
held (re-applied after every optimizer step, since momentum and weight decay would otherwise revive
pruned weights), and prune/retrain repeats `iterations` times with q growing linearly to its final value,
so each prune removes a little more. The paper leaves open when the std is taken: by default at each
prune over the whole tensor, pruned zeros included (as Distiller's sensitivity pruner does), so the
threshold follows the weights when weight decay shrinks them; `std_at=start` fixes it at the stage start.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from workbench.core.errors import ParamError
from workbench.core.params import LayerMap, knob
from workbench.methods.base import Method, RunContext
from workbench.methods.per_layer import check_layer_map
from workbench.methods.registry import register
from workbench.models.layers import compressible_layers, layer_kind


@dataclass
class MagnitudeParams:
    q_fc: float = knob(1.0, "Quality q (FC)",
                       "Prune |w| < q x std of the layer's weights, for fully connected layers.",
                       min=0.0, max=20.0, step=0.05, tune="0.5..3")
    q_conv: float = knob(1.0, "Quality q (conv)", "The same for convolutional layers.",
                         min=0.0, max=20.0, step=0.05, tune="0.5..3")
    q_layers: LayerMap = knob({}, "Per-layer q", "Overrides for single layers, e.g. fc1=2.2,fc3=1.0.",
                              min=0.0, max=20.0)
    iterations: int = knob(3, "Prune/retrain cycles",
                           "Prunes spread evenly over the first prune_span of the stage's epochs; q grows "
                           "linearly to its final value.", min=1, max=100, tune="1..5")
    prune_span: float = knob(1.0, "Prune span", "Fraction of the stage's epochs over which the prunes are "
                             "spread; the rest retrains the final mask.", min=0.01, max=1.0, step=0.05, tune="0.3..1")
    std_at: str = knob("prune", "Std taken at", "prune: at each prune, over the whole tensor (zeros "
                       "included); start: once, at the start of the stage.", choices=("prune", "start"),
                       advanced=True)
    prune_bias: bool = knob(False, "Prune biases", "Han 2015 prunes weights only.", advanced=True)

    def check(self) -> None:
        if self.q_fc == 0 and self.q_conv == 0 and not any(self.q_layers.values()):
            raise ParamError("every quality factor is 0: nothing would be pruned")


@register
class MagnitudePruning(Method):
    key = "magnitude"
    label = "Magnitude pruning (Han 2015)"
    summary = "Iterative magnitude pruning with retraining; masks re-applied after each step."
    paper = "Han, Pool, Tran, Dally. Learning both Weights and Connections for Efficient Neural Networks. NIPS 2015"
    Params = MagnitudeParams

    def __init__(self, params=None):
        super().__init__(params)
        self.masks: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}   # layer -> [(param, mask)]
        self.std: dict[str, float] = {}
        self.q_final: dict[str, float] = {}
        self.threshold: dict[str, float] = {}    # in force since the last prune
        self.pruned_at: list[int] = []

    def _tensors(self, module: nn.Module) -> list[torch.Tensor]:
        ts = [module.weight]
        bias = getattr(module, "bias", None)       # nn.Embedding has none
        if self.params.prune_bias and bias is not None:
            ts.append(bias)
        return ts

    def prepare(self, model: nn.Module, ctx: RunContext) -> None:
        p = self.params
        check_layer_map("q_layers", p.q_layers, [name for name, _ in compressible_layers(model)])
        epochs = max(ctx.total_steps // max(ctx.steps_per_epoch, 1), 1)
        span = max(int(round(epochs * p.prune_span)), 1)
        self.pruned_at = sorted({(i * span) // p.iterations for i in range(p.iterations)})
        for name, module in compressible_layers(model):
            q = p.q_layers.get(name, p.q_fc if layer_kind(module) == "fc" else p.q_conv)
            self.q_final[name] = q
            self.std[name] = float(module.weight.detach().std())
            # Already-zero weights (an earlier pruning stage) stay pruned.
            self.masks[name] = [(t, (t.detach() != 0).to(t.dtype)) for t in self._tensors(module)]

    def on_epoch_start(self, model: nn.Module, ctx: RunContext) -> None:
        if ctx.epoch not in self.pruned_at:
            return
        i = self.pruned_at.index(ctx.epoch) + 1
        with torch.no_grad():
            for name, pairs in self.masks.items():
                if self.params.std_at == "prune":
                    self.std[name] = float(pairs[0][0].detach().std())
                threshold = self.q_final[name] * i / len(self.pruned_at) * self.std[name]
                self.threshold[name] = threshold
                for t, mask in pairs:
                    mask.mul_((t.abs() >= threshold).to(mask.dtype))
                    t.mul_(mask)
        ctx.log(f"pruning {i}/{len(self.pruned_at)} at epoch {ctx.epoch}")

    def after_step(self, model: nn.Module, ctx: RunContext) -> None:
        with torch.no_grad():
            for pairs in self.masks.values():
                for t, mask in pairs:
                    t.mul_(mask)

    def epoch_stats(self, model: nn.Module) -> dict:
        return {name: {"threshold": value} for name, value in self.threshold.items()}

    def finalize(self, model: nn.Module, ctx: RunContext) -> None:
        self.after_step(model, ctx)
        self.masks.clear()

