"""The method interface every compression method implements (one small class per method).

Modelled on `torch.nn.utils.prune`: a method is a small object holding its parameters and the state it
attaches to the model (masks, mixture parameters, factors); it does no file I/O and holds no GUI state.
The run loop (`workbench.core.runner`) calls the hooks in this order:

    prepare -> [param_groups] -> per step: penalty, (optimizer step), after_step
            -> per epoch: on_epoch_start ... epoch_stats -> finalize -> encode (accounting, export)

* weight sharing adds optimizer parameter groups (mixture means with their own learning rate) and a
  loss penalty (the negative log prior);
* low rank acts after each optimizer step (nuclear-norm proximal step) and replaces layers in finalize;
* hashing replaces layers in prepare and encodes buckets (+ seed) instead of weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import nn

from ..core import params as P
from ..core.encoding import Encoded, encode_auto, encode_dense
from ..models.layers import compressible_layers, layer_kind
from ..models.structure import hashed_spec, tensor_owners
from .hash_encode import encode_hashed


@dataclass
class RunContext:
    """What a method may know about the run: counters, the device and a seeded generator."""

    device: torch.device
    steps_per_epoch: int
    total_steps: int
    num_train: int
    stage: int = 0
    step: int = 0                 # optimizer steps taken in this stage
    epoch: int = 0                # epochs completed in this stage
    lr: float = 0.0
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))
    log: Callable[[str], None] = lambda message: None


class Method:
    key: ClassVar[str] = ""
    label: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    Params: ClassVar[type]

    def __init__(self, params: Any = None):
        self.params = P.validate(params) if params is not None else P.build(self.Params, {})

    @classmethod
    def from_values(cls, values: dict | None = None) -> "Method":
        return cls(P.build(cls.Params, values or {}))

    # --- hooks, all optional -------------------------------------------------------------------
    def prepare(self, model: nn.Module, ctx: RunContext) -> None:
        """Attach masks / replace layers / build own parameters before training."""

    def param_groups(self, model: nn.Module) -> list[dict] | None:
        """Optimizer parameter groups; None means one group of all trainable model parameters."""
        return None

    def penalty(self, model: nn.Module, ctx: RunContext) -> torch.Tensor | None:
        """A term added to the task loss (already scaled as the method's paper defines it)."""
        return None

    def after_step(self, model: nn.Module, ctx: RunContext) -> None:
        """Act after each optimizer step (re-apply masks, proximal steps)."""

    def on_epoch_start(self, model: nn.Module, ctx: RunContext) -> None:
        """Schedules that act at epoch boundaries (e.g. iterative pruning)."""

    def epoch_stats(self, model: nn.Module) -> dict[str, dict[str, float | np.ndarray]]:
        """Method-specific per-layer series for the run file: {layer: {series: value}}."""
        return {}

    def finalize(self, model: nn.Module, ctx: RunContext) -> None:
        """Leave a plain model behind: bake masks, snap to codebooks, cut ranks."""

    def stall_hint(self) -> str:
        """What to change when this stage's accuracy sits at chance (runner.stall_notice)."""
        return "a lower learning rate usually helps"

    # --- what is stored --------------------------------------------------------------------------
    def effective_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The tensors inference uses, under the plain architecture's names."""
        return model.state_dict()

    def encode(self, model: nn.Module, huffman: bool = False) -> list[Encoded]:
        """How each tensor is stored: compressible layers in their cheapest form (dense, sparse, or
        codebook when few distinct values remain), integer streams Huffman coded when asked."""
        return encode_state(model, self.effective_state(model), huffman=huffman)


def layer_index(model: nn.Module) -> dict[str, str]:
    """Qualified module name -> kind ("fc"/"conv") for every compressible layer."""
    return {name: layer_kind(module) for name, module in compressible_layers(model)}


def parameter_names(model: nn.Module) -> set[str]:
    """Names of learnable parameters, with the `_orig` suffix of attached masks removed."""
    return {name.replace("_orig", "") for name, _ in model.named_parameters()}


def encode_state(model: nn.Module, state: dict[str, torch.Tensor], huffman: bool = False) -> list[Encoded]:
    """Layers a method replaced (structure.py: factors `fc1.0`, `fc1.1`, thinned layers, hashed layers)
    are accounted under their original name and measured against the original dense layer."""
    if hashed_spec(model) is not None:      # buckets, g and the seed (hash_encode.py)
        return encode_hashed(model, state, huffman=huffman)
    kinds = layer_index(model)
    params = parameter_names(model)
    owners = tensor_owners(model)
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
            out.append(encode_dense(key, owner or key, "other", t, is_param=key in params))
    return out
