"""Parallel coordinates of a study (gui/plots/parallel_axes): where each trial's values land on the axes."""

from __future__ import annotations

import math

import pytest

from workbench.engine.tune_objective import TrialResult
from workbench.engine.tune_space import Dim
from workbench.gui.plots.parallel_axes import drawn, positions, study_axes

DIMS = [
    Dim("lr", None, "train", "lr", float, 1e-3, 1e-1, log=True),
    Dim("q_fc", 0, "params", "q_fc", float, 0.5, 2.5),
    Dim("iterations", 0, "params", "iterations", int, 1, 5),
    Dim("init", 0, "params", "init", str, choices=("linear", "density", "random")),
    Dim("prune_bias", 0, "params", "prune_bias", bool, choices=(False, True)),
]


def _trial(n, lr, q_fc, iterations, init, bias, accuracy, ratio, state="complete") -> TrialResult:
    params = {"lr": lr, "q_fc": q_fc, "iterations": iterations, "init": init, "prune_bias": bias}
    return TrialResult(n, params, state, accuracy=accuracy, storage_ratio=ratio)


TRIALS = [
    _trial(0, 1e-2, 1.0, 4, "random", True, 0.90, 100.0),
    _trial(1, 1e-3, 2.5, 1, "linear", False, 0.95, 1000.0),
    _trial(2, 1e-1, 0.5, 5, "density", True, 0.80, 10.0),
    # pruned: its numbers are of a run cut short, so it neither is drawn nor widens the outcome axes
    _trial(3, 1e-2, 1.0, 3, "linear", False, 0.10, 5000.0, state="pruned"),
    _trial(4, 1e-2, 1.0, 3, "linear", False, None, None, state="failed"),
]


def test_each_value_lands_where_its_axis_puts_it():
    axes = study_axes(DIMS, TRIALS)
    assert [a.name for a in axes] == ["lr", "q_fc", "iterations", "init", "prune_bias", "accuracy", "storage ratio"]
    # lr log 1e-3..1e-1: 1e-2 halfway; q_fc linear 0.5..2.5: 1.0 a quarter; iterations 1..5: 4 at 3/4;
    # choices evenly spaced in the space's order; accuracy linear over 0.80..0.95; ratio log over 10..1000
    assert positions(axes, TRIALS[0]) == pytest.approx([0.5, 0.25, 0.75, 1.0, 1.0, 2 / 3, 0.5])
    assert positions(axes, TRIALS[1]) == pytest.approx([0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0])
    assert positions(axes, TRIALS[2]) == pytest.approx([1.0, 0.0, 1.0, 0.5, 1.0, 0.0, 0.0])


def test_outcome_axes_span_the_drawn_trials_only():
    assert [t.number for t in drawn(TRIALS)] == [0, 1, 2]
    axes = study_axes(DIMS, TRIALS)
    accuracy, ratio = axes[-2], axes[-1]
    assert (accuracy.low, accuracy.high, accuracy.log) == (0.80, 0.95, False)
    assert (ratio.low, ratio.high, ratio.log) == (10.0, 1000.0, True)
    assert accuracy.ticks() == [(0.0, "80.00%"), (1.0, "95.00%")]
    assert ratio.ticks() == [(0.0, "10x"), (1.0, "1000x")]
    assert axes[0].ticks() == [(0.0, "0.001"), (1.0, "0.1")]
    assert axes[3].ticks() == [(0.0, "linear"), (0.5, "density"), (1.0, "random")]


def test_one_trial_or_equal_outcomes_sit_mid_axis_and_odd_values_have_no_place():
    one = [_trial(0, 1e-2, 1.0, 4, "random", True, 0.90, 100.0)]
    axes = study_axes(DIMS, one)
    assert positions(axes, one[0])[-2:] == [0.5, 0.5]
    assert axes[-2].ticks() == [(0.5, "90.00%")]
    # a value outside the range is clipped to its end; a value that is not a choice has no place (NaN)
    odd = _trial(1, 1.0, 0.0, 3, "kmeans++", 1, 0.9, 100.0)
    got = positions(axes, odd)
    assert got[0] == 1.0 and got[1] == 0.0
    assert math.isnan(got[3]) and math.isnan(got[4])      # 1 is not the choice True
    # no finished trial: the outcome axes have no range and nothing is placed on them
    empty = study_axes(DIMS, [])
    assert all(math.isnan(v) for v in positions(empty, one[0])[-2:])
