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
  The straight-through variant keeps W ⊙ T from step to step (`MaskedValue`): DNS's mask update writes it
  in the same pass (methods/mask_update.py), so the forward multiplies nothing and the backward runs no
  Python; the hook only checks that W and T have not changed since (and writes W ⊙ T afresh if they have).
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


class MaskedValue:
    """W ⊙ T of one straight-through masked tensor, kept from step to step: the tensor the forward reads.

    It is a clone of W made once with autograd on (`torch.clone`'s backward passes the gradient through
    unchanged), whose contents are then overwritten with W ⊙ T in place, without autograd, each time W or
    T changes: the forward multiplies nothing and the backward runs no Python, yet the gradient with respect
    to W ⊙ T reaches every entry of W, pruned ones included. (A custom autograd Function doing the same
    cost about 15 us of Python per module and step, forward and backward, as much as the multiply it saved.)
    Reusing the one graph node across steps is sound because it saves no tensors.

    `stamp` holds the version counters and data pointers of W and T when W ⊙ T was last written: an in-place
    write through PyTorch (an optimizer step, load_state_dict, a test's edit) or new storage changes it,
    and the next forward writes W ⊙ T afresh. Writes PyTorch does not count (a fused optimizer's step, a
    native kernel) must be followed by `refresh`, or by `mark_fresh` once the writer has put W ⊙ T into
    `buffer(W)` itself. A rewrite between a forward and its backward is an error, as for any tensor the
    backward needs."""

    __slots__ = ("name", "orig_key", "mask_key", "value", "source", "stamp")

    def __init__(self, name: str):
        self.name, self.orig_key, self.mask_key = name, name + "_orig", name + "_mask"
        self.value: torch.Tensor | None = None
        self.source: torch.Tensor | None = None      # the W whose gradient `value`'s backward feeds
        self.stamp: tuple = ()

    def buffer(self, orig: torch.Tensor) -> torch.Tensor:
        """The tensor the forward reads, for a writer to fill with W ⊙ T; made anew (laid out like W, as
        the product W * T was) when W is another tensor, moved, laid out anew, or its requires_grad changed."""
        v = self.value
        if (v is None or self.source is not orig or v.shape != orig.shape or v.stride() != orig.stride()
                or v.device != orig.device or v.dtype != orig.dtype or v.requires_grad != orig.requires_grad):
            # not under inference mode, and with autograd on whatever the caller's mode: the clone is the
            # graph edge to W, made once
            with torch.inference_mode(False), torch.enable_grad():
                v = torch.clone(orig, memory_format=torch.preserve_format)
            self.value, self.source, self.stamp = v, orig, ()
        return v

    def current(self, orig: torch.Tensor, mask: torch.Tensor) -> bool:
        v = self.value
        return (self.stamp == _stamp(orig, mask) and self.source is orig
                and v.requires_grad == orig.requires_grad)

    def mark_fresh(self, orig: torch.Tensor, mask: torch.Tensor, orig_ptr: int | None = None,
                   mask_ptr: int | None = None) -> None:
        """W ⊙ T in `buffer` is current; the caller may pass W's and T's data pointers it just read."""
        if orig_ptr is None or mask_ptr is None:
            self.stamp = _stamp(orig, mask)
        else:
            self.stamp = (orig._version, mask._version, orig_ptr, mask_ptr)

    def refresh(self, orig: torch.Tensor, mask: torch.Tensor) -> None:
        out = self.buffer(orig)
        with torch.no_grad():
            torch.mul(orig, mask, out=out)
        self.stamp = _stamp(orig, mask)


def _stamp(orig: torch.Tensor, mask: torch.Tensor) -> tuple:
    return orig._version, mask._version, orig.data_ptr(), mask.data_ptr()


class _MaskHook:
    """The forward pre-hook of a module with masks: sets each masked attribute to W ⊙ T (one hook per
    module, however many of its tensors are masked)."""

    def __init__(self):
        self.straight: list[MaskedValue] = []      # straight-through: the forward reads the kept W ⊙ T
        self.plain: list[str] = []                 # torch.nn.utils.prune style: W * T computed here

    def entry(self, name: str) -> MaskedValue | None:
        return next((e for e in self.straight if e.name == name), None)

    def __call__(self, module: nn.Module, inputs) -> None:
        params, buffers, attrs = module._parameters, module._buffers, module.__dict__
        for name in self.plain:
            attrs[name] = params[name + "_orig"] * buffers[name + "_mask"]
        for e in self.straight:
            orig, mask = params[e.orig_key], buffers[e.mask_key]
            if not e.current(orig, mask):
                e.refresh(orig, mask)
            # the instance dict, not setattr: the name is no parameter or buffer any more (attach_mask
            # removed it), and nn.Module.__setattr__'s checks would cost more than the rest of this hook
            attrs[e.name] = e.value


def _hook_of(module: nn.Module) -> _MaskHook | None:
    return getattr(module, "_workbench_mask_hook", (None, None))[0]


def attach_mask(module: nn.Module, name: str, mask: torch.Tensor, *, straight_through: bool,
                mask_dtype: torch.dtype | None = None) -> None:
    """Reparametrise `module.<name>` as `<name>_orig` ⊙ `<name>_mask`; the mask is held in `mask_dtype`
    (default: the weight's dtype; DNS holds it as uint8 bytes, see methods/mask_update.py)."""
    param = getattr(module, name)
    del module._parameters[name]
    module.register_parameter(name + "_orig", nn.Parameter(param.detach()))
    module.register_buffer(name + "_mask", mask.to(param.device, mask_dtype or param.dtype))
    hook = _hook_of(module)
    if hook is None:
        hook = _MaskHook()
        module._workbench_mask_hook = (hook, module.register_forward_pre_hook(hook))
    if straight_through:
        hook.straight.append(MaskedValue(name))
    else:
        hook.plain.append(name)
    hook(module, None)


def has_mask(module: nn.Module, name: str) -> bool:
    return hasattr(module, name + "_mask")


def masked_entry(module: nn.Module, name: str) -> MaskedValue:
    """The kept W ⊙ T of a straight-through mask, for a mask update that writes it in the same pass."""
    hook = _hook_of(module)
    e = hook.entry(name) if hook is not None else None
    if e is None:
        raise KeyError(f"{name} of {type(module).__name__} has no straight-through mask")
    return e


def masked_value(module: nn.Module, name: str) -> torch.Tensor:
    """The weight that inference uses (W ⊙ T), detached and computed afresh."""
    if has_mask(module, name):
        return (getattr(module, name + "_orig") * getattr(module, name + "_mask")).detach()
    return getattr(module, name).detach()


def remove_mask(module: nn.Module, name: str) -> None:
    """Bake W ⊙ T into a plain parameter and drop the mask (the pruned entries become exact zeros)."""
    value = masked_value(module, name).clone()
    hook, handle = module._workbench_mask_hook
    hook.straight = [e for e in hook.straight if e.name != name]
    hook.plain = [n for n in hook.plain if n != name]
    if not hook.straight and not hook.plain:
        handle.remove()
        del module._workbench_mask_hook
    del module._parameters[name + "_orig"]
    del module._buffers[name + "_mask"]
    module.__dict__.pop(name, None)
    module.register_parameter(name, nn.Parameter(value))
