"""What several method families share about layers: choosing them, checking per-layer maps, masking.

* `select_layers` / `choose_layers`: which compressible layers a stage acts on (`all`, `fc`, `conv`, or
  names), used by DNS, k-means, low rank, SVD and hashing.
* `check_layer_map`: a per-layer knob (`fc1=6.5,fc2=4`) may only name layers the stage acts on;
  `check_named_layers`: names that are no layer of the model at all, found before the run starts.
* Masks on a module's weight, in the style of `torch.nn.utils.prune` (a `<name>_orig` parameter, a
  `<name>_mask` buffer, and a forward pre-hook that sets `<name>` before each forward). Unlike
  `torch.nn.utils.prune`, the straight-through variant lets the gradient of the loss with respect to
  W ⊙ T reach every entry of W, pruned ones included. Dynamic Network Surgery relies on this: a pruned
  weight keeps learning and can be spliced back when it grows past b_k (Guo et al. 2016, eq. 3).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from workbench.core.errors import ParamError
from workbench.models.layers import compressible_layers, layer_kind, layer_type


def select_layers(model: nn.Module, kind: str = "all") -> list[tuple[str, nn.Module]]:
    """The compressible layers of one kind: `all`, `fc` or `conv`."""
    return [(n, m) for n, m in compressible_layers(model) if kind == "all" or layer_kind(m) == kind]


def not_a_matrix(module: nn.Module) -> str | None:
    """Why a factorising or hashing stage leaves this layer dense (None: it can act on it). Low rank and
    hashing work on a plain Linear or a plain (groups = 1) Conv2d."""
    if isinstance(module, nn.Linear):
        return None
    if isinstance(module, nn.Conv2d):
        return None if module.groups == 1 else f"a {layer_type(module)} has no weight matrix to factorise or hash"
    return f"{layer_type(module)} layers are not supported by this method yet"


def choose_layers(model: nn.Module, which: str, log=None) -> list[str]:
    """Layers a factorising or hashing stage acts on: `all`, `fc`, `conv`, or names separated by commas.
    Layers it cannot act on (`not_a_matrix`) stay dense; `log` hears each one with the reason."""
    layers = [(n, m) for n, m in compressible_layers(model) if not_a_matrix(m) is None]
    which = which.strip()
    if which in ("all", "fc", "conv"):
        if log is not None:
            for n, m in compressible_layers(model):
                why = not_a_matrix(m)
                if why and (which == "all" or layer_kind(m) == which):
                    log(f"{n} stays dense: {why}")
        chosen = [n for n, m in layers if which == "all" or layer_kind(m) == which]
        if not chosen:
            raise ParamError(f"layers: {which!r} selects no layer of this model this method can act on")
        return chosen
    names = [s.strip() for s in which.split(",") if s.strip()]
    known = [n for n, _ in layers]
    refused = {n: not_a_matrix(m) for n, m in compressible_layers(model) if n in names and not_a_matrix(m)}
    if refused:
        name, why = next(iter(refused.items()))
        raise ParamError(f"layers: {name}: {why}")
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ParamError(f"layers: unknown layer(s) {', '.join(unknown) or which!r}; layers: {', '.join(known)}")
    return [n for n in known if n in names]


def check_layer_map(knob: str, mapping: dict, known: Iterable[str], what: str = "") -> None:
    """A per-layer knob may only name layers the stage acts on; the error lists the ones it may name."""
    known = list(known)
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        raise ParamError(f"{knob} names unknown {what}layer(s) {', '.join(unknown)}; "
                         f"{what}layers: {', '.join(known)}")


def check_named_layers(knob: str, names: Iterable[str], known: Iterable[str], *, replaced: bool = False,
                       where: str = "") -> None:
    """Layer names a stage's knob gives (a per-layer map's keys, a `layers` list) must be layers of the model,
    checked before the run starts (engine.configure.check_layer_names). `replaced`: a layer an earlier
    stage of the pipeline replaced (low-rank factors `fc1.0`, `fc1.1`) is named under the layer it
    replaced, so names below a known layer are taken too; the stage's own check refines this later."""
    known = list(known)
    unknown = [n for n in names if n not in known and not (replaced and any(n.startswith(k + ".") for k in known))]
    if unknown:
        raise ParamError(f"{where}{knob} names unknown layer(s) {', '.join(unknown)}; layers: {', '.join(known)}")


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
