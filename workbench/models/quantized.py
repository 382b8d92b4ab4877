"""int8 layers: stock Linear / Conv1d / Conv2d / Embedding that compute as an int8 engine would.

Jacob et al., CVPR 2018 ("Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-
Only Inference"), with the usual post-training recipe: per-output-channel symmetric int8 weights (scale =
max|w_c| / 127, zero point 0) and each layer's input quantized per tensor to uint8 with a scale and zero
point set from calibration. The layers compute in float with fake quantization (quantize, then dequantize:
`torch.fake_quantize_per_channel_affine` / `_per_tensor_affine`), which gives the int8 engine's values up to
its int32 accumulation order, trains straight-through for quantization-aware fine-tuning, and exports to
ONNX as QuantizeLinear / DequantizeLinear pairs (opset >= 13).

A layer becomes quantized in place (`quantize_module`: its class is swapped for the subclass below and
buffers are added), so its parameters keep their names (`fc1.weight`, `fc1.bias`) and every method and
exporter still sees an nn.Linear / nn.Conv2d. Buffers (in the state dict):
    weight_scale       (out,) float32: the per-channel scales (all equal for a per-tensor layer)
    input_scale        (1,) float32, only where the layer quantizes its input
    input_zero_point   (1,) float32 holding an integer in [0, 255] (a float buffer, so that whatever stores
                       floating tensors stores it too; the fake-quantize ops take it as it is)
The structure spec (models/structure.py, member "quantized") names the quantized layers, so a run file's
or compact file's model is rebuilt with them before its state dict is loaded.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

WEIGHT_LEVELS = 127                  # symmetric: codes in [-127, 127], so -w is as representable as w
WEIGHT_QMIN, WEIGHT_QMAX = -128, 127  # the int8 range ONNX's QuantizeLinear takes; never reached below -127
INPUT_QMIN, INPUT_QMAX = 0, 255      # uint8 activations, asymmetric (ONNX Runtime's default for activations)
BUFFERS = ("weight_scale", "input_scale", "input_zero_point")


def weight_scales(weight: torch.Tensor, per_channel: bool = True) -> torch.Tensor:
    """max|w_c| / 127 per output channel (or one max over the tensor, repeated per channel). An all-zero
    channel (a pruned unit) gets scale 1: its codes are 0 whatever the scale, and 0 would divide by zero."""
    w = weight.detach().reshape(weight.shape[0], -1).abs()
    top = w.amax(1) if per_channel else w.amax().expand(weight.shape[0])
    scale = top.float() / WEIGHT_LEVELS
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def input_qparams(low: float, high: float) -> tuple[float, float]:
    """(scale, zero point) of a uint8 affine quantizer covering [low, high], widened to hold 0 exactly
    (zero padding and ReLU zeros must stay exact: Jacob et al. sec. 2.1)."""
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    if not high - low > 1e-12:                      # an input that was always 0
        return 1.0, 0.0
    scale = (high - low) / (INPUT_QMAX - INPUT_QMIN)
    zero = min(max(round(INPUT_QMIN - low / scale), INPUT_QMIN), INPUT_QMAX)
    return scale, float(zero)


class QuantMixin:
    """What the quantized layers share. Plain attributes (not in the state dict; the structure spec carries
    them): `per_channel`, `quantize_input`; a method's transient state: `track_weights` (quantization-aware
    training: the weight scales follow the weights every forward), `observer` (calibration: sees each
    input and leaves it unquantized)."""

    def quantized_weight(self) -> torch.Tensor:
        if self.track_weights:
            with torch.no_grad():
                self.weight_scale.copy_(weight_scales(self.weight, self.per_channel))
        return torch.fake_quantize_per_channel_affine(self.weight, self.weight_scale, self.weight_zero_point, 0,
                                                      WEIGHT_QMIN, WEIGHT_QMAX)

    def quantized_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.observer is not None:
            self.observer.observe(x.detach())
            return x
        if not self.quantize_input:
            return x
        return torch.fake_quantize_per_tensor_affine(x, self.input_scale, self.input_zero_point,
                                                     INPUT_QMIN, INPUT_QMAX)


class QuantLinear(QuantMixin, nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.quantized_input(x), self.quantized_weight(), self.bias)


class QuantConv1d(QuantMixin, nn.Conv1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.quantized_input(x), self.quantized_weight(), self.bias)


class QuantConv2d(QuantMixin, nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.quantized_input(x), self.quantized_weight(), self.bias)


class QuantEmbedding(QuantMixin, nn.Embedding):
    """Rows quantized per row (a row is an output channel); its input is token ids, never quantized."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.embedding(x, self.quantized_weight(), self.padding_idx, self.max_norm, self.norm_type,
                           self.scale_grad_by_freq, self.sparse)


QUANTIZED = {nn.Linear: QuantLinear, nn.Conv1d: QuantConv1d, nn.Conv2d: QuantConv2d, nn.Embedding: QuantEmbedding}
TYPE_NAMES = {cls.__name__: cls for cls in QUANTIZED}


def base_type(module: nn.Module) -> type | None:
    """The stock layer type a module is (or was before quantization); None for anything else."""
    return next((t for t in QUANTIZED if type(module) in (t, QUANTIZED[t])), None)


def is_quantized(module: nn.Module) -> bool:
    return isinstance(module, QuantMixin)


def quantized_modules(model: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in model.named_modules() if is_quantized(m)}


def quantize_module(module: nn.Module, *, per_channel: bool = True, quantize_input: bool = True) -> nn.Module:
    """Make a stock layer quantized in place (its parameters untouched); returns it. The scales start at
    the weights' own (max|w| / 127) and the input at scale 1, zero point 0 until calibrated."""
    base = base_type(module)
    if base is None or is_quantized(module):
        raise TypeError(f"cannot quantize a {type(module).__name__}")
    w = module.weight
    module.__class__ = QUANTIZED[base]
    module.per_channel = bool(per_channel)
    module.quantize_input = bool(quantize_input) and base is not nn.Embedding
    module.track_weights = False
    module.observer = None
    module.register_buffer("weight_scale", weight_scales(w, per_channel).to(w.device))
    module.register_buffer("weight_zero_point", torch.zeros(w.shape[0], dtype=torch.int32, device=w.device),
                           persistent=False)          # symmetric: always 0, so not stored
    if module.quantize_input:
        module.register_buffer("input_scale", torch.ones(1, device=w.device))
        module.register_buffer("input_zero_point", torch.zeros(1, device=w.device))
    return module


def set_input_qparams(module: nn.Module, scale: float, zero_point: float) -> None:
    with torch.no_grad():
        module.input_scale.fill_(scale)
        module.input_zero_point.fill_(zero_point)


@torch.no_grad()
def snap(module: nn.Module) -> None:
    """Fix the scales at the weights' current max|w| / 127 and put the weights on that int8 grid, so the
    stored weights are the dequantized int8 values (the forward then changes nothing)."""
    module.weight_scale.copy_(weight_scales(module.weight, module.per_channel))
    module.track_weights = False
    module.weight.copy_(module.quantized_weight())


def spec_entry(module: nn.Module) -> dict:
    """What the structure spec records of a quantized layer to rebuild it."""
    return {"type": base_type(module).__name__, "shape": list(module.weight.shape),
            "per_channel": module.per_channel, "activations": module.quantize_input}


def replay(model: nn.Module, entries: dict) -> None:
    """Quantize the layers a spec's "quantized" member names (a freshly built model: load the state dict
    afterwards). ValueError naming the layer on a misfit."""
    for name, entry in entries.items():
        try:
            module = model.get_submodule(name)
        except AttributeError:
            raise ValueError(f"it names layer {name!r}, which the model lacks") from None
        base = base_type(module)
        if base is None or base.__name__ != entry.get("type") or is_quantized(module):
            raise ValueError(f"it quantizes {name} as a {entry.get('type')}, the model has a {type(module).__name__}")
        if list(module.weight.shape) != list(entry.get("shape", [])):
            raise ValueError(f"it expects {name} of shape {tuple(entry.get('shape', []))}, the model has "
                             f"{tuple(module.weight.shape)}")
        quantize_module(module, per_channel=bool(entry.get("per_channel", True)),
                        quantize_input=bool(entry.get("activations", False)))


def strip_buffers(state: dict, model: nn.Module) -> dict:
    """`state` without the quantized layers' scales and zero points: what a float model of the same
    shapes loads (the weights are already on the int8 grid)."""
    drop = {f"{name}.{b}" for name in quantized_modules(model) for b in BUFFERS}
    return {k: v for k, v in state.items() if k not in drop}


@contextmanager
def float_activations(model: nn.Module):
    """Inside the block the quantized layers take their inputs unquantized (the model a dense export of
    the weights computes)."""
    layers = [m for m in quantized_modules(model).values() if m.quantize_input]
    for m in layers:
        m.quantize_input = False
    try:
        yield model
    finally:
        for m in layers:
            m.quantize_input = True
