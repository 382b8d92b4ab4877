"""How a model's tensors are stored, for the accounting calculator and the compact export.

`encode_state`: every compressible layer in its cheapest form (dense, sparse, or codebook when few
distinct values remain; integer streams Huffman coded when asked), other tensors dense. Layers a method
replaced (models/structure.py: factors `fc1.0`, `fc1.1`, thinned layers) are accounted under their
original name and measured against the original dense layer.

`encode_state` hands a model with int8 layers (an `int8` stage, models/quantized.py) to
methods/int8_storage.py whichever stage comes last, so its weights are counted (and exported) as the
8-bit codes they are, not as fp32 values; the rest of such a model is stored as below.

`encode_hashed`: a model with hashed layers stores buckets, reconstruction networks, dense biases and
the seed, whichever stage comes after the hashing one. What the accounting counts is what the compact
file holds (nothing is free unless recomputed at load time): each space's buckets (fp32), g's
parameters (fp32), biases that are not hashed, and the 32-bit seed. Hash indices are free: they are
recomputed from the seed. A hashed layer is measured against the original dense layer (its weight and
bias); the shared space, dual space and g of the `hashing` root belong to no single layer, so they are
reported as their own row `hashing` with no dense parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from workbench.core.encoding import Encoded, encode_auto, encode_dense, encode_integers
from workbench.methods.int8_storage import encode_quantized
from workbench.models import quantized, structure
from workbench.models.hashed import layers as hashed_layers
from workbench.models.layers import compressible_layers, layer_kind

SEED_BITS = 32


def encode_hashed(model: nn.Module, state: dict[str, torch.Tensor], huffman: bool = False) -> list[Encoded]:
    spec = structure.structure_of(model)
    layers = spec["layers"]
    prefixes = {name + ".": name for name in layers}
    plain = {name: layer_kind(m) for name, m in compressible_layers(model)}
    params = {name for name, _ in model.named_parameters()}
    root = hashed_layers.ROOT
    out = []
    for key, tensor in state.items():
        t = tensor.detach().cpu()
        owner = key.rpartition(".")[0]
        if key == f"{root}.seed":
            out.append(encode_integers(key, root, "other", t.numpy(), bits=SEED_BITS))
            continue
        if not t.is_floating_point():
            continue
        values = t.float().numpy()
        layer = next((name for prefix, name in prefixes.items() if key.startswith(prefix)), None)
        if layer is not None:
            entry = layers[layer]
            e = encode_auto(key, layer, entry["kind"], values, huffman=huffman)
            e.layer_dense_params = structure.dense_params(entry)
        elif key.startswith(root + "."):
            e = encode_auto(key, root, "other", values, huffman=huffman)
            e.dense_params = 0             # shared by all layers: each layer's dense size counts once
        elif owner in plain:               # layers left unhashed
            e = encode_auto(key, owner, plain[owner], values, huffman=huffman)
        else:
            e = encode_dense(key, owner or key, "other", values, is_param=key in params)
        out.append(e)
    # A hashed layer without a bias in a shared space keeps no tensor of its own: its dense size is
    # counted on the shared space's row, so the model's dense total stays whole (the ratio is honest).
    missing = [name for name in layers if not any(e.layer == name for e in out)]
    shared = next((e for e in out if e.layer == root and e.name != f"{root}.seed"), None)
    if missing and shared is not None:
        shared.dense_params += sum(structure.dense_params(layers[name]) for name in missing)
    return out


def layer_index(model: nn.Module) -> dict[str, str]:
    """Qualified module name -> kind ("fc"/"conv") for every compressible layer."""
    return {name: layer_kind(module) for name, module in compressible_layers(model)}


def parameter_names(model: nn.Module) -> set[str]:
    """Names of learnable parameters, with the `_orig` suffix of attached masks removed."""
    return {name.replace("_orig", "") for name, _ in model.named_parameters()}


def encode_state(model: nn.Module, state: dict[str, torch.Tensor], huffman: bool = False) -> list[Encoded]:
    """Layers a method replaced (structure.py: factors `fc1.0`, `fc1.1`, thinned layers, hashed layers)
    are accounted under their original name and measured against the original dense layer; int8 layers
    as their codes and scales (int8_storage), whichever method asks."""
    if structure.hashed_spec(model) is not None:      # buckets, g and the seed
        return encode_hashed(model, state, huffman=huffman)
    if quantized.quantized_modules(model):
        return encode_quantized(model, state, encode_plain, huffman=huffman)
    return encode_plain(model, state, huffman=huffman)


def encode_plain(model: nn.Module, state: dict[str, torch.Tensor], huffman: bool = False) -> list[Encoded]:
    """`encode_state` for a model without hashed or int8 layers (or the rest of an int8 model)."""
    kinds = layer_index(model)
    params = parameter_names(model)
    owners = structure.tensor_owners(model)
    out = []
    for key, tensor in state.items():
        if not tensor.is_floating_point():
            continue  # counters such as BatchNorm's num_batches_tracked are not needed for inference
        owner = key.rpartition(".")[0]
        t = tensor.detach().cpu().float().numpy()
        if owner in kinds:
            layer, dense = owners.get(owner, (owner, None))
            e = encode_auto(key, layer, kinds[owner], t, huffman=huffman)
            e.layer_dense_params = dense
            out.append(e)
        else:
            e = encode_dense(key, owner or key, "other", t, is_param=key in params)
            if owner in owners:          # a thinned BatchNorm: measured against its original size
                e.layer_dense_params = owners[owner][1]
            out.append(e)
    return out
