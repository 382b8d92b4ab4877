"""Dynamic Network Surgery (Guo, Yao, Chen, NIPS 2016).

Each layer k has a mask T_k; the forward pass uses W ⊙ T, and the gradient with respect to W ⊙ T updates
all of W (straight-through), so pruned weights keep learning and can be spliced back. Mask rule with
hysteresis (eq. 4): T = 0 where |w| < a_k, T = 1 where |w| >= b_k, unchanged in between. As in the
reference code, a_k and b_k are set once per layer from the initial weights: with mu = mean|w| and
sigma = std|w| over the nonzero entries, thr = max(mu + c * sigma, 0), a_k = 0.9 thr, b_k = 1.1 thr.
The masks are updated at iteration t with probability sigma(t) = (1 + gamma t)^(-power), never after
t_stop, which leaves the rest of the stage as fine-tuning with frozen masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from workbench.core.errors import ParamError
from workbench.core.params import LayerMap, knob
from workbench.methods import mask_update, per_layer
from workbench.methods.base import Method, RunContext
from workbench.methods.registry import register


@dataclass
class DNSParams:
    c_rate: float = knob(3.0, "c (all layers)",
                         "thr = mean|w| + c * std|w| per layer; a_k = low x thr, b_k = high x thr. "
                         "Reference default 3.", min=-5.0, max=20.0, step=0.1, tune="-1..6")
    c_rate_layers: LayerMap = knob({}, "Per-layer c", "Overrides, e.g. fc1=6.5,fc2=4,fc3=2.5.",
                                   min=-5.0, max=20.0)
    a_k: LayerMap = knob({}, "a_k (direct)", "Prune threshold per layer, overriding c: fc1=0.05,...",
                         min=0.0, max=100.0, advanced=True)
    b_k: LayerMap = knob({}, "b_k (direct)", "Splice threshold per layer (>= a_k).",
                         min=0.0, max=100.0, advanced=True)
    band_low: float = knob(0.9, "a_k / thr", "Hysteresis: a_k = this x thr.", min=0.0, max=10.0,
                           step=0.01, advanced=True)
    band_high: float = knob(1.1, "b_k / thr", "Hysteresis: b_k = this x thr.", min=0.0, max=10.0,
                            step=0.01, advanced=True)
    gamma: float = knob(1e-4, "gamma", "Mask-update probability (1 + gamma t)^(-power).",
                        min=0.0, max=1.0, log=True, tune="1e-5..1e-3:log")
    power: float = knob(1.0, "power", "Exponent of the mask-update probability.", min=0.0, max=10.0,
                        step=0.1, tune="0.5..2")
    t_stop: int = knob(14000, "t_stop (iterations)",
                       "No mask updates after this many iterations (reference 8000-14000).",
                       min=0, max=10_000_000)
    prune_bias: bool = knob(True, "Mask biases", "Mask biases with the layer's thresholds, as the "
                            "reference code does.")
    layers: str = knob("all", "Layers", "Which layers to operate on (the authors prune conv and FC in "
                       "separate phases on deep nets).", choices=("all", "fc", "conv"))

    def check(self) -> None:
        if self.band_low > self.band_high:
            raise ParamError(f"band_low: the a_k factor {self.band_low:g} exceeds the b_k factor "
                             f"{self.band_high:g} (band_high); DNS needs a_k <= b_k")
        if set(self.a_k) != set(self.b_k):
            odd = sorted(set(self.a_k) ^ set(self.b_k))
            raise ParamError(f"a_k and b_k must name the same layers (only one given for {', '.join(odd)})")
        for name in self.a_k:
            if self.a_k[name] > self.b_k[name]:
                raise ParamError(f"{name}: a_k {self.a_k[name]:g} > b_k {self.b_k[name]:g}; DNS needs "
                                 "a_k <= b_k")


@register
class DynamicNetworkSurgery(Method):
    key = "dns"
    label = "Dynamic Network Surgery (Guo 2016)"
    summary = "Prune and splice with a_k/b_k hysteresis; straight-through updates of all weights."
    paper = "Guo, Yao, Chen. Dynamic Network Surgery for Efficient DNNs. NIPS 2016"
    Params = DNSParams

    def __init__(self, params=None):
        super().__init__(params)
        self.layers: dict[str, nn.Module] = {}
        self.bounds: dict[str, tuple[float, float]] = {}
        self.names: tuple[str, ...] = ("weight",)
        # layer -> [entries changed, net entries gained] since the last epoch (pruned and spliced follow)
        self._flips: dict[str, torch.Tensor] = {}
        # every masked tensor's (W, T, W ⊙ T the forward reads, a_k, b_k, counts), updated in one pass a step
        self._updates = mask_update.MaskUpdates([])
        self.updates = 0
        self._draws: list[float] = []          # uniform draws not used yet, from `_draw_from`
        self._draw_from: torch.Generator | None = None
        self._next_draw = 0

    def prepare(self, model: nn.Module, ctx: RunContext) -> None:
        p = self.params
        chosen = per_layer.select_layers(model, p.layers)
        for what, mapping in (("c_rate_layers", p.c_rate_layers), ("a_k", p.a_k)):
            per_layer.check_layer_map(what, mapping, [n for n, _ in chosen])
        self.names = ("weight", "bias") if p.prune_bias else ("weight",)
        for name, module in chosen:
            names = [n for n in self.names if getattr(module, n, None) is not None]
            self.bounds[name] = self._thresholds(name, [getattr(module, n).detach() for n in names])
            for n in names:
                t = getattr(module, n).detach()
                # Entries already zero (an earlier stage) start pruned; the rest start kept. The mask is
                # held as bytes: the update reads and writes it every step (methods/mask_update.py).
                per_layer.attach_mask(module, n, t != 0, straight_through=True, mask_dtype=torch.uint8)
            self.layers[name] = module
            self._flips[name] = torch.zeros(2, dtype=torch.long, device=module.weight_orig.device)
        self._updates = mask_update.MaskUpdates(
            [(getattr(module, n + "_orig"), getattr(module, n + "_mask"), per_layer.masked_entry(module, n),
              *self.bounds[name], self._flips[name])
             for name, module in self.layers.items() for n in self.names if per_layer.has_mask(module, n)])

    def _thresholds(self, name: str, tensors: list[torch.Tensor]) -> tuple[float, float]:
        p = self.params
        if name in p.a_k:
            return p.a_k[name], p.b_k[name]
        w = torch.cat([t.reshape(-1) for t in tensors]).abs()
        w = w[w != 0]
        c = p.c_rate_layers.get(name, p.c_rate)
        thr = max(float(w.mean() + c * w.std()), 0.0) if w.numel() > 1 else 0.0
        return p.band_low * thr, p.band_high * thr

    def after_step(self, model: nn.Module, ctx: RunContext) -> None:
        p = self.params
        t = ctx.step
        update = False
        if t < p.t_stop:
            probability = (1.0 + p.gamma * t) ** (-p.power)
            update = self._draw(ctx.generator) < probability
        if update:
            self.updates += 1
        with torch.no_grad():
            # eq. (3)'s h_k and the W ⊙ T the next forward reads, in one pass where the native loop is
            # available. Without an update W still moved, so W ⊙ T is written anyway, here rather than left
            # to the forward's check of version counters (a fused optimizer's step does not count as a write).
            self._updates.run(update)

    def _draw(self, generator: torch.Generator) -> float:
        """The generator's next uniform draw. Drawn 64 at a time: CPU torch.rand fills a tensor serially,
        so these are the values one torch.rand(()) a step gave, in the same order (the equivalence tests
        check it), while a draw and .item() each step cost 15-20 us with the caches cold from the backward
        pass. A generator other than the last one starts afresh."""
        if generator is not self._draw_from or self._next_draw >= len(self._draws):
            self._draws = torch.rand(64, generator=generator).tolist()
            self._draw_from, self._next_draw = generator, 0
        self._next_draw += 1
        return self._draws[self._next_draw - 1]

    def epoch_stats(self, model: nn.Module) -> dict:
        out = {}
        for name, flips in self._flips.items():
            a, b = self.bounds[name]
            changed, gained = (int(v) for v in flips.tolist())
            pruned, spliced = (changed - gained) // 2, (changed + gained) // 2
            out[name] = {"a_k": a, "b_k": b, "mask_pruned": pruned, "mask_spliced": spliced}
            flips.zero_()
        return out

    def effective_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        state = {}
        for key, value in model.state_dict().items():
            if key.endswith("_mask"):
                continue
            if key.endswith("_orig"):
                owner, _, attr = key[: -len("_orig")].rpartition(".")
                module = model.get_submodule(owner)
                value = per_layer.masked_value(module, attr)
                key = key[: -len("_orig")]
            state[key] = value
        return state

    def finalize(self, model: nn.Module, ctx: RunContext) -> None:
        for module in self.layers.values():
            for n in self.names:
                if per_layer.has_mask(module, n):
                    per_layer.remove_mask(module, n)
        self.layers.clear()
        self._updates = mask_update.MaskUpdates([])
