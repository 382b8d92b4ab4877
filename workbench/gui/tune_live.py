"""Where each running trial of a study is, from its run events: written by the study's thread, read by the
Tune dialog's timer.

Tuner.run(events=...) hands every run event of a trial run in this process to `LiveTrials.event` on the
study's thread; it only notes the newest numbers under a lock (cheap: the trial's training waits for it).
The dialog reads `take()` a few times a second on the GUI thread and fills the rows that changed, so the
table's refresh rate does not depend on how often a run reports (every 0.25 s per running trial, and an
evaluation per epoch). Trials on Ray send no events here: their rows say "running" until they end.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass, field

from workbench.core.events import Evaluated, Progress, RunStarted


@dataclass
class Live:
    """One running trial as last reported."""

    started: bool = False            # its run file exists (before: the reference model is being made)
    run: str = ""                    # that file
    epochs: list[int] = field(default_factory=list)     # each stage's epochs, from the run's config
    stage: int = 0
    epoch: int = 0                   # the epoch under way in `stage` (1-based; 0 before the first)
    step: int = 0
    total_steps: int = 0
    accuracy: float | None = None    # the last evaluated test accuracy of the run (not the reference's)
    storage_ratio: float | None = None

    def text(self) -> str:
        """The state cell of a running trial: "running, epoch 3/10, 25% done" (of the run's training steps)."""
        if not self.started:
            return "running, preparing the reference model" if self.epoch else "running"
        parts = ["running"]
        if self.epochs and self.epoch:
            done_before = sum(self.epochs[:self.stage])
            parts.append(f"epoch {done_before + min(self.epoch, self.epochs[self.stage])}/{sum(self.epochs)}")
        if self.total_steps:
            parts.append(f"{100 * self.step / self.total_steps:.0f}% done")
        return ", ".join(parts)


class LiveTrials:
    def __init__(self):
        self._lock = threading.Lock()
        self._live: dict[int, Live] = {}
        self._changed: set[int] = set()

    def event(self, number: int, event) -> None:
        """One run event of trial `number` (the study's thread)."""
        with self._lock:
            live = self._live.setdefault(number, Live())
            if isinstance(event, RunStarted):
                live.started, live.total_steps, live.stage, live.epoch, live.step = True, event.total_steps, 0, 0, 0
                live.run = event.run_path
                live.epochs = _stage_epochs(event.config.get("config", ""))
            elif isinstance(event, Progress):
                # before RunStarted a Progress is the reference model's pretraining
                live.stage, live.epoch, live.step = event.stage, event.epoch + 1, event.step
                if live.started:
                    live.total_steps = event.total_steps
            elif isinstance(event, Evaluated) and event.label != "reference":
                live.stage, live.step = event.stage, event.step
                live.epoch = max(live.epoch, event.epoch)
                live.accuracy = event.metrics.get("test_accuracy")
                live.storage_ratio = event.metrics.get("storage_ratio")
            else:
                return                        # messages; Finished: the trial's result says the rest
            self._changed.add(number)

    def take(self) -> dict[int, Live]:
        """The trials whose state changed since the last call, as copies (the GUI thread)."""
        with self._lock:
            out = {n: dataclasses.replace(self._live[n]) for n in self._changed}
            self._changed.clear()
            return out

    def clear(self) -> None:
        """A new study: nothing running yet."""
        with self._lock:
            self._live.clear()
            self._changed.clear()

    def forget(self, number: int) -> None:
        """A trial that ended: its result replaces the live state."""
        with self._lock:
            self._live.pop(number, None)
            self._changed.discard(number)


def _stage_epochs(config_json: str) -> list[int]:
    """Each stage's epochs from a run's (completed) config JSON; [] when it cannot be read."""
    try:
        return [int(s["train"]["epochs"]) for s in json.loads(config_json)["stages"]]
    except (ValueError, KeyError, TypeError):
        return []
