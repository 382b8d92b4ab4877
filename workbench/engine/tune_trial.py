"""One trial of a tuning study: an ordinary run (engine.runner.execute) whose per-epoch points are
reported to the study for pruning, in this process or in a Ray worker (engine.tune_ray).

A pruned trial's run is cancelled through its CancelToken, so its file is kept, closed and marked
`cancelled`, as any cancelled run's. The study's storage is an Optuna journal file (JournalStorage with
a file backend and open-locks, which work on shared network folders and leave a readable log when a
process is killed mid-write); a Ray worker opens the same file to report and ask whether to prune.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Callable

from workbench.core.config import RunConfig
from workbench.core.errors import WorkbenchError
from workbench.core.events import CancelToken, Evaluated, Finished
from workbench.engine.tune_objective import Objective, TrialResult


def open_storage(path: str | Path):
    """The study's journal storage at `path` (created on first use)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = str(path)
    return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))


class Reporter:
    """Per-epoch reports of one trial to its study, and the pruner's verdict."""

    def __init__(self, trial):
        self.trial = trial           # an optuna.trial.Trial

    def report(self, value: float, step: int) -> None:
        self.trial.report(value, step)

    def should_prune(self) -> bool:
        return self.trial.should_prune()

    @classmethod
    def from_storage(cls, storage_path: str, study_name: str, number: int, pruner) -> "Reporter":
        """The trial `number` of a study, reopened from its storage (in a Ray worker)."""
        import optuna

        storage = open_storage(storage_path)
        study = optuna.load_study(study_name=study_name, storage=storage, pruner=pruner)
        trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study_name),
                                                                   number)
        return cls(optuna.trial.Trial(study, trial_id))


class LinkedToken(CancelToken):
    """A trial's own token that also reads as cancelled when the whole study is: pruning cancels one run,
    cancelling the study cancels whichever run is going."""

    def __init__(self, parent: CancelToken | None):
        super().__init__()
        self.parent = parent

    @property
    def cancelled(self) -> bool:
        return super().cancelled or (self.parent is not None and self.parent.cancelled)

    def check(self) -> None:
        if self.parent is not None and self.parent.cancelled:
            self.cancel()
        super().check()


def run_trial(config: RunConfig, number: int, params: dict, objective: Objective,
              reporter: Reporter | None = None, cancel: CancelToken | None = None,
              events: Callable[[int, object], None] | None = None) -> TrialResult:
    """Run one trial's config to its end; the result says how it went (never raises for a failed run:
    a failed trial does not end the study). `events(number, event)` sees every run event (live views)."""
    from workbench.engine.runner import execute

    token = LinkedToken(cancel)
    result = TrialResult(number, dict(params), worker=f"{socket.gethostname()}:{os.getpid()}")
    started = time.perf_counter()
    pruned, step, finished = False, 0, None
    try:
        for event in execute(config, token):
            if events is not None:
                events(number, event)
            if isinstance(event, Evaluated):
                m = event.metrics
                if event.label == "reference":
                    result.reference_accuracy = m["test_accuracy"]
                    continue
                result.accuracy, result.storage_ratio = m["test_accuracy"], m["storage_ratio"]
                result.param_ratio = m["param_ratio"]
                if event.label == "epoch" and reporter is not None and not pruned:
                    step += 1          # epochs over the whole pipeline: a step means the same in every trial
                    reporter.report(objective.epoch_score(m["test_accuracy"], result.reference_accuracy,
                                                          m["storage_ratio"]), step)
                    if reporter.should_prune():
                        pruned = True
                        token.cancel()
            elif isinstance(event, Finished):
                finished = event
    except WorkbenchError as exc:      # refused before a run file existed (e.g. a cross-field rule)
        result.state, result.error = "failed", str(exc)
        result.seconds = time.perf_counter() - started
        return result
    result.seconds = time.perf_counter() - started
    result.run, result.run_status, result.error = finished.run_path, finished.status, finished.error
    s = finished.summary
    if finished.status == "completed":
        result.state = "complete"
        result.accuracy, result.reference_accuracy = s["test_accuracy"], s["reference_accuracy"]
        result.storage_ratio, result.param_ratio = s["storage_ratio"], s["param_ratio"]
        result.values = objective.values(result)
    elif finished.status == "cancelled" and pruned and not (cancel is not None and cancel.cancelled):
        result.state, result.error = "pruned", f"pruned after epoch {step}"
    else:
        result.state = "failed"
        result.error = result.error or "cancelled"
    return result
