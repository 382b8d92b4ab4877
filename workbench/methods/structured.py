"""Structured pruning: whole channels / filters / units removed, leaving a smaller dense model.

* `l1filter`: L1-norm filter pruning (Li, Kadav, Durdanovic, Samet, Graf, "Pruning Filters for Efficient
  ConvNets", ICLR 2017): rank each layer's filters (fc: units) by the L1 norm of their weights, remove
  the smallest, retrain.
* `slimming`: network slimming (Liu, Li, Shen, Huang, Yan, Zhang, "Learning Efficient Convolutional
  Networks through Network Slimming", ICCV 2017): an L1 penalty lambda sum |gamma| on BatchNorm scales
  while training (their lambda = 1e-4 on CIFAR VGG / ResNet, added to the mean loss as their code
  does), then remove the channels with the smallest |gamma| under one global ranking, retrain.

Channels that must go together (a residual addition, a concatenation, a depthwise convolution, a
BatchNorm after its conv) are found by tracing the model (models/channel_groups.py) and removed as one
group; channels the trace cannot resolve stay, and the run's messages say which and why. The trace
needs the model's input, so it runs at the stage's first training batch (a forward pre-hook); prunes
fall at the first batch of their epochs (`prune_points`). Until the stage ends the removed groups are
masked (their weight rows, biases and BatchNorm entries held at zero after every step, so the model
already computes what the thinned one will); `finalize` then removes them physically (models/thinning.py,
recorded in the structure spec so run files and exports are rebuilt smaller) and checks that the
thinned model's outputs equal the masked model's on that first batch.

Targets: a ratio of the channels, a fraction of the dense multiply-adds (`flops`), or a fraction of the
dense model's latency (`latency`): a per-layer latency table measured on this machine when the graph is
read (methods/latency_table.py, as NetAdapt, Yang et al. 2018), the same selection walk with the
table's predicted latency in place of multiply-adds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from workbench.core.errors import ParamError, WorkbenchError
from workbench.core.params import LayerMap, knob
from workbench.methods import channel_select as sel
from workbench.methods import latency_table as lat
from workbench.methods.base import Method, RunContext
from workbench.methods.per_layer import check_layer_map
from workbench.methods.registry import register
from workbench.models import structure
from workbench.models.channel_groups import ChannelAnalysis, analyse, in_size, out_size
from workbench.models.layers import count_params
from workbench.models.thinning import masks, thin


def _target():
    return knob("ratio", "Target", "ratio: remove prune_ratio of the channels; flops: keep flops_target of the "
                "dense model's multiply-adds (conv and linear layers, per sample); latency: keep latency_target "
                "of the dense model's latency, predicted from a table of its conv and linear layers timed on "
                "this machine.", choices=("ratio", "flops", "latency"))


def _scope(default: str):
    return knob(default, "Ranking", "layer: channels ranked within their layer (coupled layers together), the "
                "ratio per layer (Li et al.); global: one ranking over the whole model (slimming's global "
                "threshold; groups compared by their members' mean).", choices=("layer", "global"))


@dataclass
class L1FilterParams:
    target: str = _target()
    prune_ratio: float = knob(0.5, "Prune ratio", "Fraction of the channels (filters, units) to remove, "
                              "counted in coupled groups.", min=0.0, max=0.95, step=0.05, tune="0.2..0.8")
    flops_target: float = knob(0.5, "FLOPs kept", "With target = flops: fraction of the dense model's "
                               "multiply-adds to keep (0.5: 2x fewer).", min=0.05, max=1.0, step=0.05)
    latency_target: float = knob(0.5, "Latency kept", "With target = latency: fraction of the dense model's "
                                 "latency to keep. Measured when the run starts: each conv / linear layer timed "
                                 "alone in torch on the run's device and threads at 100/75/50/25 % (and 1) of "
                                 "its output and input channels (median of 5, a few seconds in all), "
                                 "interpolated; other layers are not counted.", min=0.05, max=1.0, step=0.05)
    latency_batch: int = knob(1, "Latency batch", "With target = latency: the batch size the layers are timed "
                              "at (1: one sample at a time, as served).", min=1, max=4096)
    scope: str = _scope("layer")
    min_keep: float = knob(0.1, "Min kept per layer", "Every layer keeps at least this fraction of its "
                           "outputs (and at least one).", min=0.0, max=1.0, step=0.05, tune="0.05..0.3")
    keep_layers: LayerMap = knob({}, "Per-layer min kept", "Overrides of min_keep for single layers, e.g. "
                                 "conv1=1 keeps conv1 whole.", min=0.0, max=1.0)
    steps: int = knob(1, "Prune steps", "1: one-shot; more: iterative, the target reached in equal steps.",
                      min=1, max=50, tune="1..5")
    prune_start: float = knob(0.0, "Prune start", "Fraction of the stage's epochs trained before the first "
                              "prune.", min=0.0, max=0.95, step=0.05)
    prune_span: float = knob(0.5, "Prune span", "Fraction of the stage's epochs the prune steps spread over; "
                             "the epochs after the last one retrain.", min=0.01, max=1.0, step=0.05)

    def check(self) -> None:
        if self.target == "ratio" and self.prune_ratio == 0:
            raise ParamError("prune_ratio is 0: nothing would be removed")
        if self.target == "flops" and self.flops_target >= 1:
            raise ParamError("flops_target is 1: nothing would be removed")
        if self.target == "latency" and self.latency_target >= 1:
            raise ParamError("latency_target is 1: nothing would be removed")


@dataclass
class SlimmingParams(L1FilterParams):
    scope: str = _scope("global")
    prune_start: float = knob(0.5, "Prune start", "Fraction of the stage's epochs trained with the sparsity "
                              "penalty before the first prune (the paper trains to convergence first).",
                              min=0.0, max=0.95, step=0.05, tune="0.2..0.8")
    sparsity_lambda: float = knob(1e-4, "Sparsity lambda", "L1 penalty lambda sum |gamma| on the BatchNorm "
                                  "scales of removable channels until the last prune (paper: 1e-4, 1e-5).",
                                  min=0.0, max=0.1, log=True, tune="1e-5..1e-3:log")


class _Structured(Method):
    Params = L1FilterParams

    def __init__(self, params=None):
        super().__init__(params)
        self.analysis: ChannelAnalysis | None = None
        self.example: tuple | None = None
        self.points: list[tuple[int, float]] = []
        self.due: float | None = None            # fraction of the target the next forward prunes to
        self.done = 0
        self.removed: set[int] = set()
        self.masked: list[tuple[nn.Parameter, torch.Tensor]] = []
        self.ctx: RunContext | None = None
        self.floor: dict[str, int] = {}
        self.dense_macs = 0
        self.latency: lat.LatencyTable | None = None
        self.latency_timer: lat.Timer | None = None     # None: timed for real (tests give a deterministic one)
        self._hook = None

    def scores(self) -> list:
        return sel.l1_scores(self.analysis)

    def prepare(self, model: nn.Module, ctx: RunContext) -> None:
        p = self.params
        if structure.structure_of(model) is not None:
            raise ParamError(f"{self.key}: the model's layers were already factorised, thinned or hashed by an "
                             "earlier stage")
        epochs = ctx.total_steps // max(ctx.steps_per_epoch, 1)
        if epochs < 1:
            raise ParamError(f"{self.key} needs at least 1 epoch: it reads the model's graph on the first "
                             "training batch, and the removed channels are retrained")
        check_layer_map("keep_layers", p.keep_layers,
                        [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))])
        self.points = sel.prune_points(epochs, p.steps, p.prune_start, p.prune_span)
        self.ctx = ctx
        self._hook = model.register_forward_pre_hook(self._before_forward)
        goal = {"ratio": f"remove {p.prune_ratio:g} of the channels",
                "flops": f"keep {p.flops_target:g} of the multiply-adds",
                "latency": f"keep {p.latency_target:g} of the latency at batch {p.latency_batch}"}[p.target]
        ctx.log(f"{self.key}: {goal}, ranked {'globally' if p.scope == 'global' else 'per layer'}, each layer keeping "
                f"at least {p.min_keep:g}; prunes at the start of epoch(s) "
                f"{', '.join(str(e + 1) for e, _ in self.points)}, then retraining")

    def on_epoch_start(self, model: nn.Module, ctx: RunContext) -> None:
        for epoch, fraction in self.points:
            if epoch == ctx.epoch:
                self.due = fraction

    def _before_forward(self, model: nn.Module, args) -> None:
        if not model.training:
            return
        if self.analysis is None:
            self._analyse(model, args)
        if self.due is not None:
            self._prune(self.due)
            self.due = None

    def _analyse(self, model: nn.Module, args) -> None:
        ctx = self.ctx
        self.analysis = a = analyse(model, tuple(args))
        self.example = tuple(args)
        self.dense_macs = a.macs()
        for message in a.messages():
            ctx.log(f"{self.key}: {message}")
        ctx.log(f"{self.key}: {len(a.groups)} removable channel groups in {len({g.family() for g in a.groups})} "
                f"families of coupled layers; {self.dense_macs:,} multiply-adds per sample")
        self.floor = sel.floors(a, self.params.min_keep, self.params.keep_layers)
        if self.params.target == "latency" and a.groups:
            self.latency = lat.build(model, a, self.example, batch=self.params.latency_batch,
                                     timer=self.latency_timer, check=ctx.check_cancelled)
            ctx.log(f"{self.key}: {self.latency.describe()}")

    def _prune(self, fraction: float) -> None:
        p, a = self.params, self.analysis
        self.done += 1
        table = self.latency
        cost = None
        if p.target == "flops":
            budget = self.dense_macs * (1 - (1 - p.flops_target) * fraction)
        elif p.target == "latency":
            if table is None:            # no removable channel: no table was measured, nothing to remove
                return
            budget = table.dense * (1 - (1 - p.latency_target) * fraction)
            cost = lambda outs, ins: table.predict(counts=(outs, ins))  # noqa: E731
        else:
            budget = None
        self.removed = sel.select(a, self.scores(), self.floor, scope=p.scope, keep_removed=self.removed,
                                  ratio=p.prune_ratio * fraction if p.target == "ratio" else None,
                                  budget=budget, cost=cost)
        self.masked = masks(a, self.removed)
        self._apply_masks()
        now = a.macs(self.removed)
        reached = now if cost is None else table.predict(self.removed)
        note = "" if budget is None or reached <= budget else " (the per-layer limits allow no more)"
        self.ctx.log(f"{self.key}: prune {self.done}/{len(self.points)} at epoch {self.ctx.epoch + 1}: "
                     f"{len(self.removed)} of {len(a.groups)} channel groups removed; multiply-adds per sample "
                     f"{self.dense_macs:,} -> {now:,} ({now / max(self.dense_macs, 1):.1%})"
                     f"{self._latency_note(self.removed)}{note}")

    def _latency_note(self, removed) -> str:
        t = self.latency
        if t is None:
            return ""
        now = t.predict(removed)
        return (f"; predicted latency (batch {t.batch}, {t.threads} threads) {lat.format_seconds(t.dense)} -> "
                f"{lat.format_seconds(now)} ({now / max(t.dense, 1e-12):.1%})")

    @torch.no_grad()
    def _apply_masks(self) -> None:
        for param, index in self.masked:
            param.index_fill_(0, index, 0.0)

    def after_step(self, model: nn.Module, ctx: RunContext) -> None:
        self._apply_masks()          # momentum and weight decay would revive removed channels

    def epoch_stats(self, model: nn.Module) -> dict:
        """Per layer: outputs kept and multiply-adds per sample (as masked; once thinned, the same)."""
        if self.analysis is None:
            return {}
        a = self.analysis
        outs, ins = a.removed_counts(self.removed)
        out = {}
        for use in a.uses:
            m = a.layers[use.name]
            kept = out_size(m) - outs[use.name]
            macs = use.coef * (1 if use.kind == "fixed" else kept if use.kind == "depthwise"
                               else kept * (in_size(m) - ins[use.name]))
            stats = out.setdefault(use.name, {"kept_units": float(kept), "macs": 0.0})
            stats["macs"] += float(macs)
        return out

    def finalize(self, model: nn.Module, ctx: RunContext) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self.analysis is None or not self.removed:
            ctx.log(f"{self.key}: no channel was removed")
            return
        self._apply_masks()
        before, params_before = _outputs(model, self.example), count_params(model)
        thin(model, self.analysis, self.removed)
        self.masked = []
        try:
            after = _outputs(model, self.example)
        except Exception as exc:  # noqa: BLE001 - a user model whose graph was misread: say so in one line
            raise WorkbenchError(f"{self.key}: the thinned model does not run ({type(exc).__name__}: "
                                 f"{(str(exc).splitlines() or [''])[0]})") from None
        diff = max((float((x - y).abs().max()) for x, y in zip(before, after)), default=0.0)
        scale = max((float(x.abs().max()) for x in before), default=1.0)
        if len(before) != len(after) or diff > 1e-4 * max(scale, 1.0):
            raise WorkbenchError(f"{self.key}: the thinned model's outputs differ from the masked model's by "
                                 f"{diff:.3g}: an operation's channels were misread")
        macs = self.analysis.macs(self.removed)
        ctx.log(f"{self.key}: thinned: parameters {params_before:,} -> {count_params(model):,}, multiply-adds "
                f"per sample {self.dense_macs:,} -> {macs:,} ({self.dense_macs / max(macs, 1):.2f}x fewer)"
                f"{self._latency_note(self.removed)}; outputs equal the masked model's (max |difference| {diff:.2g})")


@torch.no_grad()
def _outputs(model: nn.Module, example: tuple) -> list[torch.Tensor]:
    was_training = model.training
    model.eval()
    try:
        out = model(*example)
    finally:
        model.train(was_training)
    return [t for t in (out if isinstance(out, (tuple, list)) else [out]) if isinstance(t, torch.Tensor)]


@register
class L1FilterPruning(_Structured):
    key = "l1filter"
    label = "L1-norm filter pruning (Li 2017)"
    summary = ("Removes whole filters / units with the smallest L1 norms (coupled channels together) and "
               "retrains: a smaller dense model.")
    paper = "Li, Kadav, Durdanovic, Samet, Graf. Pruning Filters for Efficient ConvNets. ICLR 2017"
    Params = L1FilterParams


@register
class NetworkSlimming(_Structured):
    key = "slimming"
    label = "Network slimming (Liu 2017)"
    summary = ("L1 penalty on BatchNorm scales while training, then removes the channels with the smallest "
               "scales (coupled channels together) and retrains: a smaller dense model.")
    paper = ("Liu, Li, Shen, Huang, Yan, Zhang. Learning Efficient Convolutional Networks through Network "
             "Slimming. ICCV 2017")
    Params = SlimmingParams

    def __init__(self, params=None):
        super().__init__(params)
        self.scales: list[tuple[nn.Parameter, torch.Tensor]] = []

    def scores(self) -> list:
        return sel.bn_scores(self.analysis)

    def _analyse(self, model: nn.Module, args) -> None:
        super()._analyse(model, args)
        a = self.analysis
        channels: dict[str, set[int]] = {}
        for g in a.groups:
            for m in g.members:
                if m.role == "bn":
                    channels.setdefault(m.name, set()).add(m.index)
        self.scales = [(a.layers[name].weight, torch.tensor(sorted(idx), device=a.layers[name].weight.device))
                       for name, idx in channels.items()]
        if not self.scales and a.groups:
            self.ctx.log(f"{self.key}: no removable channel has a BatchNorm scale, so nothing is removed "
                         "(l1filter ranks channels by their weights instead)")

    def penalty(self, model: nn.Module, ctx: RunContext) -> torch.Tensor | None:
        lam = self.params.sparsity_lambda
        if not self.scales or lam == 0 or self.done >= len(self.points):
            return None          # fine-tuning after the last prune is without the penalty, as in the paper
        return lam * sum(w[idx].abs().sum() for w, idx in self.scales)
