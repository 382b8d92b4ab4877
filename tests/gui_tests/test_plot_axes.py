"""Log axes label several readable ticks whatever the range: inside one decade (errors of 1.4-1.7 %),
across decades (1-30 %), on the ratio axis (5-200x), and on the plots as they are drawn."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import math  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("pytestqt")

from PySide6 import QtGui  # noqa: E402

from workbench.core.events import Evaluated  # noqa: E402
from workbench.gui.plots import CurvesPlot, KeptBars, RatioPlot  # noqa: E402
from workbench.gui.run_trace import RunTrace  # noqa: E402


def labelled(axis, lo, hi, size):
    """(value, text) of every labelled tick the axis gives for data range lo..hi over `size` pixels."""
    out = []
    for spacing, values in axis.tickValues(math.log10(lo), math.log10(hi), size):
        for value, text in zip(values, axis.tickStrings(values, 1.0, spacing)):
            if text:
                out.append((10 ** value, text))
    return sorted(out)


def number(text, suffix=""):
    assert text.endswith(suffix), text
    return float(text[:len(text) - len(suffix)] if suffix else text)


@pytest.fixture
def ratio(qtbot):
    plot = RatioPlot()
    qtbot.addWidget(plot)
    return plot


def check_readable(ticks, lo, hi, size, min_gap_px, suffix=""):
    """At least three labels, inside the range, each text naming its own value, distinct, apart enough."""
    values = [v for v, _ in ticks]
    assert len(ticks) >= 3, ticks
    assert all(lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9) for v in values), ticks
    for value, text in ticks:
        assert number(text, suffix) == pytest.approx(value, rel=1e-6), (value, text)
    assert len({t for _, t in ticks}) == len(ticks)
    px_per_decade = size / math.log10(hi / lo)
    gaps = np.diff(np.log10(values)) * px_per_decade
    assert gaps.min() >= min_gap_px, (ticks, gaps)


@pytest.mark.parametrize("lo, hi, expected", [
    (1.4, 1.7, [1.4, 1.5, 1.6, 1.7]),        # a run near the papers' LeNet-300-100 error
    (0.7, 0.9, [0.7, 0.8, 0.9]),             # LeNet-5
    (1.0, 30.0, [1, 2, 5, 10, 20]),          # several decades: 1-2-5
])
def test_error_axis_labels_several_ticks(ratio, lo, hi, expected):
    axis = ratio.plot.getAxis("left")
    axis.setLogMode(True)
    ticks = labelled(axis, lo, hi, 300)
    check_readable(ticks, lo, hi, 300, min_gap_px=18)
    assert set(expected) <= {round(v, 6) for v, _ in ticks}


@pytest.mark.parametrize("lo, hi, expected", [
    (5.0, 200.0, [5, 10, 20, 50, 100, 200]),
    (12.0, 15.0, [12, 13, 14, 15]),           # one run's trajectory near the end
    (1.0, 2000.0, [1, 10, 100, 1000]),
])
def test_ratio_axis_labels_several_ticks(ratio, lo, hi, expected):
    axis = ratio.plot.getAxis("bottom")
    axis.setLogMode(True)
    ticks = labelled(axis, lo, hi, 600)
    check_readable(ticks, lo, hi, 600, min_gap_px=40, suffix="x")
    assert set(expected) <= {round(v, 6) for v, _ in ticks}


def test_the_crowded_top_of_a_decade_is_labelled_at_a_coarser_step(ratio):
    """1x..9.5x (runs of a few times): 6, 7, 8, 9 are too close for labels, but 6 and 8 are not; the
    stretch from 5x to the right edge (a quarter of the axis) was left without any."""
    axis = ratio.plot.getAxis("bottom")
    axis.setLogMode(True)
    ticks = labelled(axis, 0.9, 9.5, 840)
    check_readable(ticks, 0.9, 9.5, 840, min_gap_px=40, suffix="x")
    values = [round(v, 6) for v, _ in ticks]
    assert {1, 2, 5} <= set(values) and any(5 < v <= 9.5 for v in values), values
    assert set(values) <= {1, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9}           # nice steps only


def test_a_narrow_range_still_gets_two_labels(ratio):
    axis = ratio.plot.getAxis("left")
    axis.setLogMode(True)
    ticks = labelled(axis, 1.502, 1.508, 200)
    assert len(ticks) >= 2 and len({t for _, t in ticks}) == len(ticks)


def drawn_labels(axis) -> list[str]:
    """The texts the axis paints at its current range and size (pyqtgraph's own draw specs)."""
    image = QtGui.QImage(10, 10, QtGui.QImage.Format.Format_ARGB32)
    painter = QtGui.QPainter(image)
    try:
        _, _, texts = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [text for _, _, text in texts if text]


def one_run(errors_pct, ratios):
    trace = RunTrace(path="/runs/a.h5", label="a", method="dns", model="cnn_tiny", status="completed")
    for i, (e, r) in enumerate(zip(errors_pct, ratios)):
        trace.add_point(Evaluated(stage=0, epoch=i, step=i, label="epoch",
                                  metrics={"test_accuracy": 1 - e / 100, "param_ratio": r, "step": i,
                                           "train_loss": 0.5 + 0.4 * i}))
    return trace


def test_the_drawn_ratio_plot_labels_a_narrow_error_range(ratio, qtbot):
    ratio.resize(700, 450)
    ratio.show()
    qtbot.waitExposed(ratio)
    ratio.set_traces([one_run([1.45, 1.55, 1.65], [10, 12, 14])])
    ratio.plot.getViewBox().autoRange()
    qtbot.wait(10)
    left = [number(t) for t in drawn_labels(ratio.plot.getAxis("left"))]
    bottom = [number(t, "x") for t in drawn_labels(ratio.plot.getAxis("bottom"))]
    assert len(left) >= 3 and 1.5 in left and 1.6 in left, left
    assert len(bottom) >= 3, bottom


def test_the_drawn_loss_axis_labels_values_above_one(qtbot):
    """Train loss from 0.5 to 1.7: the decade's labels 1-2-5 alone would leave only '1' and '0.5'."""
    curves = CurvesPlot()
    qtbot.addWidget(curves)
    curves.resize(700, 500)
    curves.show()
    qtbot.waitExposed(curves)
    curves.set_traces([one_run([2, 2, 2, 2], [1, 2, 3, 4])])
    curves.loss_plot.getViewBox().autoRange()
    qtbot.wait(10)
    left = [number(t) for t in drawn_labels(curves.loss_plot.getAxis("left"))]
    assert len(left) >= 3 and any(v > 1 for v in left), left


def shown(qtbot, *widgets) -> None:
    """The widgets on screen at 600x400, so that their axes lay out and draw."""
    for w in widgets:
        qtbot.addWidget(w)
        w.resize(600, 400)
        w.show()
        qtbot.waitExposed(w)


def test_empty_percent_axes_read_0_to_100_and_a_run_ranges_them(qtbot):
    """Before any run pyqtgraph's default 0-1 stood under a '%' label (accuracy, kept weights)."""
    curves, kept = CurvesPlot(), KeptBars()
    shown(qtbot, curves, kept)
    assert curves.acc_plot.viewRange()[1] == [0.0, 100.0]
    assert kept.plot.viewRange()[1] == [0.0, 100.0]
    assert drawn_labels(kept.plot.getAxis("bottom")) == []     # no layers: no 0.1 ... 0.9 under the bars
    kept.set_trace(None)                                        # the run closed: back to empty, not 0-1.2
    assert kept.plot.viewRange()[1] == [0.0, 100.0]
    curves.set_traces([one_run([8, 6, 5, 4], [1, 2, 3, 4])])     # accuracy 92-96 %
    curves.acc_plot.getViewBox().updateAutoRange()
    low, high = curves.acc_plot.viewRange()[1]
    assert 85 < low < 92 and 96 < high < 100, (low, high)


def test_empty_plots_show_no_tick_values_that_belong_to_no_run(qtbot):
    """Empty, the curves' step and loss axes and the histogram's axes showed 0.2 ... 0.8; a run brings
    them back, and closing it (the histogram) takes them away again."""
    from workbench.gui.plots import HistogramView

    curves, hist = CurvesPlot(), HistogramView()
    shown(qtbot, curves, hist)
    assert drawn_labels(curves.acc_plot.getAxis("bottom")) == []
    assert drawn_labels(curves.loss_plot.getAxis("left")) == []
    assert drawn_labels(curves.acc_plot.getAxis("left"))           # the percent axis keeps its 0-100
    assert drawn_labels(hist.plot.getAxis("bottom")) == [] and drawn_labels(hist.plot.getAxis("left")) == []
    run = one_run([8, 6, 5, 4], [1, 2, 3, 4])
    curves.set_traces([run])
    assert drawn_labels(curves.acc_plot.getAxis("bottom")) and drawn_labels(curves.loss_plot.getAxis("left"))
    curves.set_traces([])
    assert drawn_labels(curves.acc_plot.getAxis("bottom")) == []
    weights = RunTrace(path="/runs/w.h5", label="w", method="dns", model="mlp_tiny", status="completed")
    weights.hist_edges = {"fc1": np.linspace(-1, 1, 5)}
    weights.add_point(Evaluated(stage=0, epoch=0, step=0, label="reference", metrics={"step": 0},
                                layers={"fc1": {"kept_fraction": 1.0, "hist_counts": np.arange(1.0, 5.0)}}))
    hist.set_trace(weights)
    hist.plot.getViewBox().autoRange()
    qtbot.wait(10)
    assert drawn_labels(hist.plot.getAxis("bottom")) and drawn_labels(hist.plot.getAxis("left"))
    hist.set_trace(None)
    assert drawn_labels(hist.plot.getAxis("bottom")) == []
