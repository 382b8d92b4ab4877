"""The Tune dialog's parallel-coordinates plot: one line per complete trial, the best thicker, readable axis
labels, and a click on a line names its trial."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPointF, Qt

from workbench.engine.tune_objective import TrialResult
from workbench.engine.tune_space import Dim
from workbench.gui.plots.parallel_axes import positions
from workbench.gui.plots.parallel_plot import BEST_WIDTH, WIDTH, ParallelPlot

DIMS = [Dim("tau", 0, "params", "tau", float, 1e-4, 1e-1, log=True),
        Dim("init", 0, "params", "init", str, choices=("linear", "density", "random"))]
TRIALS = [TrialResult(0, {"tau": 1e-3, "init": "linear"}, "complete", accuracy=0.91, storage_ratio=20.0),
          TrialResult(1, {"tau": 1e-2, "init": "random"}, "complete", accuracy=0.97, storage_ratio=8.0),
          TrialResult(2, {"tau": 1e-4, "init": "density"}, "pruned", accuracy=0.30, storage_ratio=50.0),
          TrialResult(3, {"tau": 1e-1, "init": "density"}, "failed", error="boom"),
          TrialResult(4, {"tau": 1e-1, "init": "density"})]                  # still running


@pytest.fixture
def plot(qtbot):
    p = ParallelPlot()
    qtbot.addWidget(p)
    p.resize(800, 400)
    p.show()
    qtbot.waitExposed(p)
    return p


def test_one_line_per_complete_trial_the_best_thicker(plot):
    plot.set_study(DIMS, TRIALS, best=[1])
    curves = plot.curves()
    assert sorted(curves) == [0, 1]                # pruned, failed and running trials are left out
    assert curves[1][1] == BEST_WIDTH and curves[0][1] == WIDTH
    assert curves[0][0] == pytest.approx(positions(plot.axes, TRIALS[0]))
    assert curves[0][0] == pytest.approx([1 / 3, 0.0, 0.0, 1.0])      # tau 1e-3 a third up 1e-4..1e-1 (log)
    assert plot._curves[1].zValue() > plot._curves[0].zValue()        # drawn on top
    text = " ".join(plot.labels())
    for word in ("tau (log)", "init", "accuracy", "storage ratio (log)", "0.0001", "0.1", "linear", "random",
                 "91.00%", "97.00%", "8x", "20x"):
        assert word in text
    assert "1 pruned, 1 failed" in plot.note.text()
    # an update as trials end redraws from scratch: still one line each
    plot.set_study(DIMS, TRIALS + [TrialResult(5, {"tau": 1e-2, "init": "linear"}, "complete", accuracy=0.5,
                                               storage_ratio=3.0)], best=[1])
    assert sorted(plot.curves()) == [0, 1, 5]


def test_no_finished_trial_says_so(plot):
    plot.set_study(DIMS, TRIALS[2:], best=[])
    assert plot.curves() == {}
    assert plot._empty.isVisible()


def test_clicking_a_line_names_its_trial(plot, qtbot):
    plot.set_study(DIMS, TRIALS, best=[1])
    plot.curves()
    qtbot.wait(50)
    # on the first axis, trial 1's line is at tau=1e-2 (2/3 up), away from trial 0's (1/3 up)
    scene = plot.plot.getViewBox().mapViewToScene(QPointF(0.0, 2 / 3))
    pos = plot.view.mapFromScene(scene)
    with qtbot.waitSignal(plot.trial_clicked, timeout=2000) as clicked:
        qtbot.mouseClick(plot.view.viewport(), Qt.LeftButton, pos=pos)
    assert clicked.args == [1]
