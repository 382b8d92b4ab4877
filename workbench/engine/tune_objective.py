"""What a tuning study optimises, and what a trial came to (plain Python: no Optuna, no torch).

Objectives (`--objective`):
  accuracy-ratio        two objectives, maximise test accuracy and maximise the storage ratio: the
                        study's answer is the Pareto front. Optuna cannot prune multi-objective
                        studies, so no trial is pruned.
  ratio-at-drop=X       maximise the storage ratio subject to a drop in test accuracy of at most X
                        points against the run's reference. A *constraint*, not a penalty: the value
                        Optuna sees is the ratio itself, the drop's excess is the trial's constraint
                        (Trial.set_constraint, from which TPE and GP learn where feasible trials are),
                        and the best trial is the largest ratio among the feasible ones.
  accuracy-at-ratio=R   maximise test accuracy subject to a storage ratio of at least R (the same way).
For pruning, a constrained objective's per-epoch report is its value where that epoch's point meets the
bound and 0 where it does not, so a trial far outside the bound falls below the median and is pruned.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from workbench.core.errors import ParamError

OBJECTIVES = ("accuracy-ratio", "ratio-at-drop=X", "accuracy-at-ratio=R")
INFEASIBLE = 1e9       # a trial's constraint when it never measured what the bound is about


@dataclass
class TrialResult:
    """One trial as the study keeps it (in the trial's user attributes), prints it and hands it over."""

    number: int
    params: dict
    state: str = "running"          # running | complete | pruned | failed
    run: str = ""                   # the run file ("" when the run never started)
    run_status: str = ""            # the run file's status: completed | cancelled | failed
    accuracy: float | None = None   # the last measured test accuracy (the final one when complete)
    reference_accuracy: float | None = None
    storage_ratio: float | None = None
    param_ratio: float | None = None
    error: str = ""
    seconds: float | None = None
    values: list = field(default_factory=list)     # the objective values told to the study
    worker: str = ""                # host:pid of the process that ran it

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "TrialResult":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    @property
    def drop_points(self) -> float | None:
        """Accuracy lost against the reference, in percentage points."""
        if self.accuracy is None or self.reference_accuracy is None:
            return None
        # rounded: 0.98 - 0.97 is 1.0000000000000009 points, and "a drop of at most 1" must take it
        return round(100.0 * (self.reference_accuracy - self.accuracy), 9)


@dataclass(frozen=True)
class Objective:
    kind: str                      # accuracy-ratio | ratio-at-drop | accuracy-at-ratio
    bound: float | None = None

    @property
    def text(self) -> str:
        return self.kind if self.bound is None else f"{self.kind}={self.bound:g}"

    @property
    def multi(self) -> bool:
        return self.kind == "accuracy-ratio"

    @property
    def directions(self) -> list[str]:
        return ["maximize", "maximize"] if self.multi else ["maximize"]

    def values(self, r: TrialResult) -> list[float]:
        if self.kind == "accuracy-ratio":
            return [r.accuracy, r.storage_ratio]
        return [r.storage_ratio] if self.kind == "ratio-at-drop" else [r.accuracy]

    def constraint(self, r: TrialResult) -> float | None:
        """<= 0 when the trial meets the bound (Optuna's convention); None without a bound."""
        if self.kind == "ratio-at-drop":
            drop = r.drop_points
            return INFEASIBLE if drop is None else drop - self.bound
        if self.kind == "accuracy-at-ratio":
            return INFEASIBLE if r.storage_ratio is None else self.bound - r.storage_ratio
        return None

    def feasible(self, r: TrialResult) -> bool:
        c = self.constraint(r)
        return c is None or c <= 0

    def epoch_score(self, accuracy: float, reference: float | None, ratio: float) -> float:
        """The value reported for pruning after an epoch (single objectives only)."""
        r = TrialResult(-1, {}, accuracy=accuracy, reference_accuracy=reference, storage_ratio=ratio)
        value = self.values(r)[0]
        return value if self.feasible(r) else 0.0

    def best(self, results: list[TrialResult]) -> list[TrialResult]:
        """The study's answer among complete trials: the Pareto front (by accuracy, then ratio), or the
        best feasible trial (ties: the higher accuracy); empty when no trial is complete and feasible."""
        done = [r for r in results if r.state == "complete" and r.accuracy is not None
                and r.storage_ratio is not None and self.feasible(r)]
        if self.multi:
            front = [r for r in done if not any(_dominates(o, r) for o in done)]
            return sorted(front, key=lambda r: (-r.accuracy, -r.storage_ratio, r.number))
        if not done:
            return []
        return [max(done, key=lambda r: (self.values(r)[0], r.accuracy, -r.number))]


def _dominates(a: TrialResult, b: TrialResult) -> bool:
    return (a.accuracy >= b.accuracy and a.storage_ratio >= b.storage_ratio
            and (a.accuracy > b.accuracy or a.storage_ratio > b.storage_ratio))


def parse_objective(text: str) -> Objective:
    """`accuracy-ratio`, `ratio-at-drop=0.5` (points), `accuracy-at-ratio=20`; one-line ParamError."""
    kind, sep, value = text.strip().partition("=")
    if kind == "accuracy-ratio" and not sep:
        return Objective(kind)
    if kind in ("ratio-at-drop", "accuracy-at-ratio"):
        try:
            bound = float(value)
        except ValueError:
            bound = float("nan")
        low = 0.0 if kind == "ratio-at-drop" else 1.0
        if not sep or not math.isfinite(bound) or bound < low:
            what = "accuracy points, e.g. ratio-at-drop=0.5" if kind == "ratio-at-drop" else \
                "a storage ratio of at least 1, e.g. accuracy-at-ratio=20"
            raise ParamError(f"--objective {text}: give the bound as {what}")
        return Objective(kind, bound)
    raise ParamError(f"--objective {text!r}: expected one of {', '.join(OBJECTIVES)}")
