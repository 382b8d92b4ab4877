"""Parallel coordinates of a study's trials, as numbers: one axis per searched knob, then test accuracy and
storage ratio; each trial a polyline through its value on every axis, every value placed in [0, 1].

Plain Python (no Qt): the plot widget (parallel_plot) only draws what `study_axes` and `positions` give.
A knob's axis spans its searched range (not the trials' values, so a line's height says where in the
range the sampler went); a log knob is placed by its logarithm; choices sit evenly spaced, in the order
the space lists them. The outcome axes span what the drawn trials reached: accuracy linearly, the storage
ratio by its logarithm (ratios differ by orders of magnitude between trials).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from workbench.core import params as P
from workbench.engine.tune_objective import TrialResult
from workbench.engine.tune_space import Dim

ACCURACY, RATIO = "accuracy", "storage ratio"


@dataclass(frozen=True)
class Axis:
    name: str
    low: float | None = None         # a range axis: its ends (values, not logarithms)
    high: float | None = None
    log: bool = False
    choices: tuple = ()              # a choice axis: its values, bottom to top
    unit: str = ""                   # how its tick labels are written: "" (the knob's value), "%" or "x"

    def position(self, value) -> float:
        """`value` on this axis in [0, 1] (clipped); NaN where it has no place (missing, not a choice)."""
        if self.choices:
            hits = [i for i, c in enumerate(self.choices)          # True == 1, but not as a choice
                    if c == value and isinstance(c, bool) == isinstance(value, bool)]
            if not hits:
                return math.nan
            return 0.5 if len(self.choices) == 1 else hits[0] / (len(self.choices) - 1)
        if value is None or isinstance(value, (bool, str)):
            return math.nan
        v = float(value)
        if not math.isfinite(v) or (self.log and v <= 0):
            return math.nan
        lo, hi, v = (math.log10(self.low), math.log10(self.high), math.log10(v)) if self.log else \
            (self.low, self.high, v)
        if hi == lo:                                     # every drawn trial reached the same value
            return 0.5
        return min(1.0, max(0.0, (v - lo) / (hi - lo)))

    def ticks(self) -> list[tuple[float, str]]:
        """(position, label): every choice; a range's two ends."""
        if self.choices:
            return [(self.position(c), P.format_value(c)) for c in self.choices]
        if self.low is None:
            return []
        ends = [(0.0, self.low), (1.0, self.high)] if self.high != self.low else [(0.5, self.low)]
        return [(pos, self.label(v)) for pos, v in ends]

    def label(self, value: float) -> str:
        if self.unit == "%":
            return f"{100 * value:.2f}%"
        if self.unit == "x":
            return f"{value:.3g}x" if value < 1000 else f"{value:.0f}x"
        return P.format_value(value)          # a range's ends as the space gives them (0.9995, not 1)


def drawn(results: list[TrialResult]) -> list[TrialResult]:
    """The trials drawn: complete ones. A pruned or failed trial is left out: its numbers are of a run cut
    short (or none), not an outcome of its knobs."""
    return [r for r in results if r.state == "complete" and r.accuracy is not None and r.storage_ratio]


def study_axes(dims: list[Dim], results: list[TrialResult]) -> list[Axis]:
    """The knobs' axes (their searched ranges or choices), then accuracy and storage ratio over the drawn
    trials' values."""
    axes = [Axis(d.name, choices=tuple(d.choices)) if d.choices else Axis(d.name, d.low, d.high, d.log)
            for d in dims]
    done = drawn(results)
    acc = [r.accuracy for r in done]
    ratio = [r.storage_ratio for r in done if r.storage_ratio > 0]
    axes.append(Axis(ACCURACY, min(acc), max(acc), unit="%") if acc else Axis(ACCURACY, unit="%"))
    axes.append(Axis(RATIO, min(ratio), max(ratio), log=True, unit="x") if ratio else Axis(RATIO, unit="x"))
    return axes


def positions(axes: list[Axis], result: TrialResult) -> list[float]:
    """One trial's polyline: its place on each axis, in the axes' order (NaN: no value there)."""
    out = []
    for axis in axes:
        if axis.name == ACCURACY and axis.unit == "%":
            value = result.accuracy
        elif axis.name == RATIO and axis.unit == "x":
            value = result.storage_ratio
        else:
            value = result.params.get(axis.name)
        out.append(math.nan if axis.low is None and not axis.choices else axis.position(value))
    return out
