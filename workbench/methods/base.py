"""The method interface every compression method implements (one small class per method).

Modelled on `torch.nn.utils.prune`: a method is a small object holding its parameters and the state it
attaches to the model (masks, mixture parameters, factors); it does no file I/O and holds no GUI state.
The run loop (`workbench.engine.runner`) calls the hooks in this order:

    prepare -> [param_groups] -> per epoch: on_epoch_start, per step: penalty, (optimizer step),
            after_step; on_epoch_end -> epoch_stats (at evaluation points) -> finalize -> encode

A hook that runs long (fitting hash tables, SVDs over every layer) calls `ctx.check_cancelled()` between
pieces of work: a cancelled run then ends as `cancelled` without waiting for the hook to finish.

* weight sharing adds optimizer parameter groups (mixture means with their own learning rate) and a
  loss penalty (the negative log prior);
* low rank acts after each optimizer step (nuclear-norm proximal step) and replaces layers in finalize;
* hashing replaces layers in prepare and encodes buckets (+ seed) instead of weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator

import numpy as np
import torch
from torch import nn

from workbench.core import params as P
from workbench.core.encoding import Encoded
from workbench.core.events import CancelToken
from workbench.methods.storage import encode_state


@dataclass
class RunContext:
    """What a method may know about the run: counters, the device and a seeded generator."""

    device: torch.device
    steps_per_epoch: int
    total_steps: int
    num_train: int                # training samples this run trains on
    # The training split's size where num_train is a quick-look subset of it (`train_subset`), else 0. A term
    # defined once per data set (soft weight-sharing's prior / N) uses it, so that the subset previews the
    # balance of a run on the whole set.
    num_train_full: int = 0
    stage: int = 0
    step: int = 0                 # optimizer steps taken in this stage
    epoch: int = 0                # the current epoch of this stage, from 0 (= epochs completed before it)
    lr: float = 0.0
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))
    log: Callable[[str], None] = lambda message: None
    cancel: CancelToken = field(default_factory=CancelToken)
    # Training batches (x, y) on the device, shuffled by their own seeded generator, for hooks that need
    # data before or without training (int8's calibration in a 0-epoch stage, tracing a model); None where
    # the caller has no data. Reading them does not move the training order.
    train_batches: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]] | None = None

    def check_cancelled(self) -> None:
        """Raise `Cancelled` if the user cancelled the run: long hooks call it between pieces of work."""
        self.cancel.check()


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

    def on_epoch_end(self, model: nn.Module, ctx: RunContext) -> None:
        """Act after an epoch's last step, before it is evaluated (`ctx.epoch` is the epoch just done)."""

    def epoch_stats(self, model: nn.Module) -> dict[str, dict[str, float | np.ndarray]]:
        """Method-specific per-layer series for the run file: {layer: {series: value}}."""
        return {}

    def finalize(self, model: nn.Module, ctx: RunContext) -> None:
        """Leave a plain model behind: bake masks, snap to codebooks, cut ranks."""

    def finalize_hint(self) -> str:
        """What to change when finalize costs much accuracy (runner.finalize_notice); "" says nothing."""
        return ""

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
