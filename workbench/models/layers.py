"""Which layers the compression methods act on, and what kind each is.

Every weight matrix a method can prune, quantise or share: nn.Linear (attention's output projection
included: nn.MultiheadAttention.out_proj is one), nn.Conv1d and nn.Conv2d (grouped and depthwise too) and
nn.Embedding. Normalisation layers, biases and buffers stay dense and are counted as they are. A method
that cannot act on some of these (low rank and hashing need a plain matrix-like layer) leaves them dense
and says why (methods/per_layer.py).
"""

from __future__ import annotations

from torch import nn

COMPRESSIBLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Embedding)
FUSED = (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)


def compressible_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of every compressible layer, in definition order.

    Not the layers inside torch's fused attention modules (nn.MultiheadAttention, nn.Transformer*Layer):
    they read their layers' weights themselves (and in evaluation may take a fused fast path) instead of
    calling the layers, so a method's forward hook or replacement layer would not take effect there
    (measured: k-means training failed, a hashed layer broke the forward). A model brought as a graph
    (.pt2, ONNX) calls them as plain linear layers, which are compressed."""
    inside = {f"{name}.{sub}" if name else sub for name, m in model.named_modules() if isinstance(m, FUSED)
              for sub, _ in m.named_modules() if sub}
    return [(name, m) for name, m in model.named_modules() if isinstance(m, COMPRESSIBLE) and name not in inside]


def layer_kind(module: nn.Module) -> str:
    """"fc" or "conv": the accounting's index width (Deep Compression: 5 bits for fc, 8 for conv). An
    embedding table is a matrix read by rows, stored like an fc layer's."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        return "fc"
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return "conv"
    raise TypeError(f"not a compressible layer: {type(module).__name__}")


def layer_type(module: nn.Module) -> str:
    """What to call the layer in tables and messages: Linear, Conv1d, Conv2d, depthwise Conv2d, Embedding."""
    name = type(module).__name__ if type(module) in COMPRESSIBLE else next(
        t.__name__ for t in COMPRESSIBLE if isinstance(module, t))
    if isinstance(module, (nn.Conv1d, nn.Conv2d)) and module.groups != 1:
        return f"{'depthwise' if module.groups == module.in_channels else 'grouped'} {name}"
    return name


def count_params(model: nn.Module) -> int:
    """All parameters (trainable or not); buffers such as BatchNorm statistics are not counted."""
    return sum(p.numel() for p in model.parameters())
