"""int8 quantization as a pipeline stage: post-training static quantization, and with epochs
quantization-aware fine-tuning (Jacob, Kligys, Chen, Zhu, Tang, Howard, Adam, Kalenichenko, CVPR 2018;
the standard PTQ recipe of torch.ao, TensorRT and ONNX Runtime).

* Weights: per output channel, symmetric int8, scale = max|w_c| / 127, zero point 0 (`per_channel` off:
  one scale per layer). Per-channel scales also make folding a following BatchNorm into the weights
  exact (a positive or negative factor per channel moves into the scale), so BatchNorm stays as it is.
* Activations (`quantize_activations`): each chosen layer's input, per tensor, uint8 with a scale and a
  zero point (0 exactly representable) calibrated on `calibration_batches` training batches with the
  `observer`'s range (methods/int8_observers.py), the model in evaluation mode and its weights already
  int8. An Embedding's input is token ids and stays as it is.
* epochs = 0: post-training quantization only. epochs > 0: quantization-aware fine-tuning, straight
  through the fake-quantize ops (their gradient passes inside the range); the weight scales follow the
  weights, the activation ranges stay as calibrated. Weights an earlier stage pruned stay zero.
* At the end the weights are put on their int8 grid (models/quantized.snap): the stored model computes
  with the dequantized int8 weights and fake-quantized inputs, so its accuracy is the int8 accuracy.

A stage after int8 must leave every weight on its int8 grid, or the stored model is no longer int8
(`check_pipeline`, from what the methods do): a stage with epochs trains the float weights while the
scales stay fixed, so they leave the grid (the forward fake-quantizes them; the stored weights, the
accounting and a dense export would not); kmeans and sws move weights to their own codebooks; low rank,
structured pruning, hashing and a second int8 stage refuse an int8 model in their `prepare`. What keeps
them: plain, magnitude and dns with 0 epochs (nothing changes, or weights become 0, which every grid
holds); their accounting is the int8 one (methods/storage.py hands int8 layers to int8_storage whatever
stage comes last).

Calibration reads training batches in `prepare` from `ctx.train_batches` (the run loop gives them). A
caller without data (a RunContext without `train_batches`) gets the first `calibration_batches` steps of
fine-tuning observed instead (in training mode), the ranges fixed after them or at the first epoch's end,
whichever comes first; with 0 epochs as well, nothing could calibrate, which it says.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice

import torch
from torch import nn

from workbench.core.config import TrainParams
from workbench.core.errors import ParamError
from workbench.core.params import knob
from workbench.methods.base import Method, RunContext
from workbench.methods.int8_observers import OBSERVERS, RangeObserver
from workbench.methods.registry import register
from workbench.models import quantized, structure
from workbench.models.layers import compressible_layers, layer_kind


@dataclass
class Int8Params:
    calibration_batches: int = knob(32, "Calibration batches", "Training batches whose layer inputs set the "
                                    "activation ranges (fewer when the training set has fewer).", min=1,
                                    max=100_000, tune="4..64:log")
    observer: str = knob("minmax", "Range observer", "minmax: the whole range seen; percentile: 0.01-99.99 % "
                         "of the values (outliers clipped); mse: the range with the least squared error.",
                         choices=OBSERVERS, tune="minmax|percentile|mse")
    per_channel: bool = knob(True, "Per-channel weights", "One scale per output channel (off: one per layer).")
    quantize_activations: bool = knob(True, "Quantize activations", "Each layer's input to uint8 with a "
                                      "calibrated scale and zero point (off: weights only).")
    layers: str = knob("all", "Layers", "all, fc, conv, or layer names separated by commas (e.g. fc1,fc2; "
                       "a factorised layer's name takes both factors).")


AFTER_INT8 = ("plain", "magnitude", "dns")       # with 0 epochs: they leave the int8 weights as they are


def check_pipeline(stages) -> None:
    """One ParamError line for the first stage after an int8 stage that cannot keep the weights int8
    (see the module's docstring); `stages`: the config's StageConfig list (method, train)."""
    keys = [s.method for s in stages]
    if "int8" not in keys:
        return
    first = keys.index("int8")
    default_epochs = TrainParams().epochs
    for i, stage in enumerate(stages[first + 1:], start=first + 2):
        epochs = (stage.train or {}).get("epochs", default_epochs)
        where = f"stage {i} ({stage.method}) after int8"
        if stage.method not in AFTER_INT8:
            raise ParamError(f"{where}: it would change the int8 weights (only plain, magnitude or dns with "
                             f"0 epochs may follow int8); put it before the int8 stage")
        if epochs:
            raise ParamError(f"{where}: {epochs} epoch{'s' * (epochs != 1)} of training would move the weights "
                             f"off their int8 grid; fine-tune in the int8 stage (its epochs) instead")


def choose(model: nn.Module, which: str) -> list[tuple[str, nn.Module]]:
    """The layers a `layers` knob names: all, fc, conv, or names (a name also takes the layers below it,
    the factors `fc1.0`, `fc1.1` of a factorised `fc1`). ParamError listing the layers when none fits."""
    layers = compressible_layers(model)
    which = which.strip()
    if which in ("all", "fc", "conv"):
        chosen = [(n, m) for n, m in layers if which == "all" or layer_kind(m) == which]
        if not chosen:
            raise ParamError(f"layers: {which!r} selects no layer of this model")
        return chosen
    names = [s.strip() for s in which.split(",") if s.strip()]
    hits = {name: [(n, m) for n, m in layers if n == name or n.startswith(name + ".")] for name in names}
    unknown = [name for name, found in hits.items() if not found]
    if unknown or not names:
        raise ParamError(f"layers: unknown layer(s) {', '.join(unknown) or which!r}; layers: "
                         f"{', '.join(n for n, _ in layers)}")
    picked = {n for found in hits.values() for n, _ in found}
    return [(n, m) for n, m in layers if n in picked]


@register
class Int8Quantization(Method):
    key = "int8"
    label = "int8 quantization (PTQ / QAT)"
    summary = ("Per-channel symmetric int8 weights, uint8 activations calibrated on training batches; "
               "0 epochs: post-training, more: quantization-aware fine-tuning.")
    paper = ("Jacob et al. Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only "
             "Inference. CVPR 2018")
    Params = Int8Params

    def __init__(self, params=None):
        super().__init__(params)
        self.layers: dict[str, nn.Module] = {}
        self.zeros: list[tuple[torch.Tensor, torch.Tensor]] = []     # (tensor, where an earlier stage pruned)
        self.observing = 0            # batches still to observe while fine-tuning (no data in prepare)
        self.ctx: RunContext | None = None

    def prepare(self, model: nn.Module, ctx: RunContext) -> None:
        p = self.params
        if structure.hashed_spec(model) is not None:
            raise ParamError("int8: hashed layers (an earlier hashing stage) are not supported: their weights are "
                             "a shared table of buckets, not per-channel matrices")
        if quantized.quantized_modules(model):
            raise ParamError("int8: the model's layers are int8 already (an earlier int8 stage)")
        chosen = choose(model, p.layers)
        self.ctx = ctx
        for name, module in chosen:
            for t in (module.weight, getattr(module, "bias", None)):
                if t is not None and bool((t == 0).any()):
                    self.zeros.append((t, t.detach() == 0))
            quantized.quantize_module(module, per_channel=p.per_channel, quantize_input=p.quantize_activations)
            module.track_weights = True
            self.layers[name] = module
        structure.record_quantized(model, list(self.layers))
        inputs = [m for m in self.layers.values() if m.quantize_input]
        ctx.log(f"int8: {len(self.layers)} layers, weights int8 {'per channel' if p.per_channel else 'per layer'}"
                + (f", inputs of {len(inputs)} uint8 ({p.observer})" if inputs else ", inputs float"))
        if not inputs:
            return
        for m in inputs:
            m.observer = RangeObserver(p.observer, ctx.generator)
        if ctx.train_batches is not None:
            self._calibrate(model, ctx.train_batches(), ctx)
        elif ctx.total_steps > 0:
            self.observing = p.calibration_batches
            ctx.log(f"int8: calibrating on the first {p.calibration_batches} fine-tuning batches")
        else:
            raise ParamError("int8: calibrating the activations needs training batches, and this caller gives "
                             "none: give the stage at least 1 epoch, or set quantize_activations=false")

    @torch.no_grad()
    def _calibrate(self, model: nn.Module, batches, ctx: RunContext) -> None:
        was_training = model.training
        model.eval()                       # BatchNorm's running statistics, as at inference
        seen = 0
        for xb, _ in islice(batches, self.params.calibration_batches):
            ctx.check_cancelled()
            model(xb.to(ctx.device))
            seen += 1
        model.train(was_training)
        self._fix_ranges(seen)

    def _fix_ranges(self, seen: int) -> None:
        for module in self.layers.values():
            if module.observer is not None:
                quantized.set_input_qparams(module, *quantized.input_qparams(*module.observer.range()))
                module.observer = None
        self.observing = 0
        if self.ctx is not None:
            self.ctx.log(f"int8: activation ranges set from {seen} training batches")

    def after_step(self, model: nn.Module, ctx: RunContext) -> None:
        with torch.no_grad():
            for t, zero in self.zeros:
                t.masked_fill_(zero, 0.0)
        if self.observing and ctx.step + 1 >= self.observing:     # ctx.step counts the steps before this one
            self._fix_ranges(ctx.step + 1)

    def on_epoch_end(self, model: nn.Module, ctx: RunContext) -> None:
        if self.observing:                 # an epoch shorter than the calibration: fix before evaluating
            self._fix_ranges(ctx.step)

    def epoch_stats(self, model: nn.Module) -> dict:
        return {name: {"input_scale": float(m.input_scale), "input_zero_point": float(m.input_zero_point)}
                for name, m in self.layers.items() if m.quantize_input}

    def stall_hint(self) -> str:
        return ("quantization-aware fine-tuning wants a small learning rate (about 1/10 to 1/100 of training's); "
                "0 epochs is plain post-training quantization")

    def effective_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """While fine-tuning, the weights as the forward uses them (on the grid of the current scales)."""
        state = model.state_dict()
        for name, module in quantized.quantized_modules(model).items():
            if module.track_weights:
                with torch.no_grad():
                    state[f"{name}.weight"] = module.quantized_weight().detach()
                state[f"{name}.weight_scale"] = module.weight_scale.detach().clone()
        return state

    def finalize(self, model: nn.Module, ctx: RunContext) -> None:
        if self.observing:
            self._fix_ranges(ctx.step)
        for module in self.layers.values():
            quantized.snap(module)
        self.after_step(model, ctx)
        self.layers.clear()
        self.zeros.clear()
