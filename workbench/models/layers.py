"""Which layers the compression methods act on."""

from __future__ import annotations

from torch import nn


def compressible_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of every nn.Linear and nn.Conv2d, in definition order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def layer_kind(module: nn.Module) -> str:
    if isinstance(module, nn.Linear):
        return "fc"
    if isinstance(module, nn.Conv2d):
        return "conv"
    raise TypeError(f"not a compressible layer: {type(module).__name__}")


def count_params(model: nn.Module) -> int:
    """All parameters (trainable or not); buffers such as BatchNorm statistics are not counted."""
    return sum(p.numel() for p in model.parameters())
