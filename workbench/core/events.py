"""Events of the run loop: plain numbers and numpy arrays only, never live tensors, so that the CLI can
print them and the GUI can pass them across threads as they are."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np


class Cancelled(Exception):
    """Raised where a cancelled run is noticed (between batches, or inside a long method hook); the run
    loop ends the run as `cancelled`, its file closed and readable."""


class CancelToken:
    """Checked by the run loop every batch and by long method hooks (`RunContext.check_cancelled`);
    cancelling ends the run normally as `cancelled`."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise Cancelled if the run was cancelled."""
        if self._event.is_set():
            raise Cancelled


@dataclass
class RunStarted:
    run_path: str
    config: dict
    device: str
    total_steps: int
    layers: list[str]
    hist_edges: dict[str, np.ndarray] = field(default_factory=dict)   # layer -> fixed histogram edges


@dataclass
class Message:
    text: str
    warning: bool = False   # something the user should act on (a stalled stage): kept on screen


@dataclass
class Progress:
    stage: int
    epoch: int
    step: int               # steps done over the whole run
    total_steps: int
    train_loss: float
    lr: float
    elapsed: float
    eta: float


@dataclass
class Evaluated:
    """An evaluation point (before compression, every eval_every epochs, after each finalize)."""

    stage: int
    epoch: int
    step: int
    metrics: dict[str, float]
    layers: dict[str, dict[str, np.ndarray | float]] = field(default_factory=dict)
    label: str = "epoch"    # "reference", "epoch", "finalized"


@dataclass
class Finished:
    run_path: str
    status: str             # completed | cancelled | failed
    summary: dict
    error: str = ""
