"""Masks on a module's weight, in the style of `torch.nn.utils.prune` (a `<name>_orig` parameter, a
`<name>_mask` buffer, and a forward pre-hook that sets `<name>` before each forward).

Unlike `torch.nn.utils.prune`, the straight-through variant lets the gradient of the loss with respect to
W ⊙ T reach every entry of W, pruned ones included. Dynamic Network Surgery relies on this: a pruned
weight keeps learning and can be spliced back when it grows past b_k (Guo et al. 2016, eq. 3).
"""

from __future__ import annotations

import torch
from torch import nn


class _StraightThroughMask(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return weight * mask

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        return grad, None


class _MaskHook:
    def __init__(self, name: str, straight_through: bool):
        self.name = name
        self.straight_through = straight_through

    def __call__(self, module: nn.Module, inputs) -> None:
        orig = getattr(module, self.name + "_orig")
        mask = getattr(module, self.name + "_mask")
        if self.straight_through:
            value = _StraightThroughMask.apply(orig, mask)
        else:
            value = orig * mask
        setattr(module, self.name, value)


def attach_mask(module: nn.Module, name: str, mask: torch.Tensor, *, straight_through: bool) -> None:
    """Reparametrise `module.<name>` as `<name>_orig` ⊙ `<name>_mask`."""
    param = getattr(module, name)
    del module._parameters[name]
    module.register_parameter(name + "_orig", nn.Parameter(param.detach()))
    module.register_buffer(name + "_mask", mask.to(param.device, param.dtype))
    hook = _MaskHook(name, straight_through)
    handle = module.register_forward_pre_hook(hook)
    module._workbench_mask_hooks = getattr(module, "_workbench_mask_hooks", {})
    module._workbench_mask_hooks[name] = handle
    hook(module, None)


def has_mask(module: nn.Module, name: str) -> bool:
    return hasattr(module, name + "_mask")


def masked_value(module: nn.Module, name: str) -> torch.Tensor:
    """The weight that inference uses (W ⊙ T), detached."""
    if has_mask(module, name):
        return (getattr(module, name + "_orig") * getattr(module, name + "_mask")).detach()
    return getattr(module, name).detach()


def remove_mask(module: nn.Module, name: str) -> None:
    """Bake W ⊙ T into a plain parameter and drop the mask (the pruned entries become exact zeros)."""
    value = masked_value(module, name).clone()
    module._workbench_mask_hooks.pop(name).remove()
    del module._parameters[name + "_orig"]
    del module._buffers[name + "_mask"]
    if hasattr(module, name):
        delattr(module, name)
    module.register_parameter(name, nn.Parameter(value))
