"""How a model with int8 layers is stored, for the accounting calculator and the compact export.

Each int8 layer's weight is one `int8` / `sparse_int8` record (core/encoding_int8.py: 8-bit codes of every
entry, or of the kept entries with their relative indices, plus one fp32 scale and one int8 zero point
per output channel); the record restores the layer's `weight_scale` buffer, so the scales are counted
and written once. A layer that quantizes its input stores that quantizer as a small header: its scale
(fp32) and zero point (8 bits). Everything else (biases, other layers, BatchNorm) is stored as
methods/storage.encode_plain stores it (passed in by storage.encode_state, which calls this for every
model with int8 layers, so this module does not import it back), so "magnitude -> int8" counts the kept weights' 8-bit codes plus
their sparse indices, "lowrank -> int8" both factors at 8 bits, a thinned layer its thinner weights.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from workbench.core.encoding import Encoded, encode_dense, encode_integers
from workbench.core.encoding_int8 import encode_int8
from workbench.models import quantized, structure
from workbench.models.layers import layer_kind

ZERO_POINT_BITS = 8


def encode_quantized(model: nn.Module, state: dict[str, torch.Tensor],
                     encode_rest: Callable[..., list[Encoded]], huffman: bool = False) -> list[Encoded]:
    """The int8 layers' tensors as int8 records; the other tensors as `encode_rest(model, state, huffman=)`
    stores them."""
    layers = quantized.quantized_modules(model)
    owners = structure.tensor_owners(model)        # a factor `fc1.0` is accounted under `fc1`
    own = {f"{name}.{leaf}": name for name in layers for leaf in ("weight", *quantized.BUFFERS)}
    others = {e.name: e for e in encode_rest(model, {k: v for k, v in state.items() if k not in own},
                                               huffman=huffman)}
    out = []
    for key, tensor in state.items():
        if key in others:
            out.append(others[key])
            continue
        name = own.get(key)
        if name is None:
            continue                                 # integer counters encode_state leaves out
        module, leaf = layers[name], key[len(name) + 1:]
        layer, dense = owners.get(name, (name, None))
        t = tensor.detach().cpu().float().numpy()
        if leaf == "weight":
            scales = state[f"{name}.weight_scale"].detach().cpu().float().numpy()
            e = encode_int8(key, layer, layer_kind(module), t, scales if module.per_channel else scales[:1],
                            scale_tensor=f"{name}.weight_scale", huffman=huffman)
            e.layer_dense_params = dense
        elif leaf == "input_scale":
            e = encode_dense(key, layer, "other", t, is_param=False)
        elif leaf == "input_zero_point":
            e = encode_integers(key, layer, "other", t.round().astype("int64"), bits=ZERO_POINT_BITS)
        else:
            continue                                 # weight_scale: restored from the weight's record
        out.append(e)
    return out
