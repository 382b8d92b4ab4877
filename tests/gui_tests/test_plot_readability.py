"""What the plots looked like with real runs in them (PNGs read back): empty plots that said nothing, the
curves' legend over the loss curves, weights printed as "400 (x0.001)". Each fixed, each checked here."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("pytestqt")

from PySide6 import QtCore, QtGui  # noqa: E402

from workbench.core.events import Evaluated  # noqa: E402
from workbench.gui.plots import CurvesPlot, HistogramView, KeptBars, MixturePlot, SpectrumPlot  # noqa: E402
from workbench.gui.run_trace import RunTrace  # noqa: E402

EDGES = np.linspace(-0.5, 0.5, 5)


def run(name, losses, accs, layers=None):
    trace = RunTrace(path=f"/runs/{name}.h5", label=f"{name} cnn_tiny tiny s0 12:00:00", method="sws",
                     model="cnn_tiny", status="completed")
    for i, (loss, acc) in enumerate(zip(losses, accs)):
        trace.add_point(Evaluated(stage=0, epoch=i, step=4 * i, label="reference" if i == 0 else "epoch",
                                  metrics={"step": 4 * i, "train_loss": loss, "test_accuracy": acc},
                                  layers=(layers or {}).get(i, {})))
    trace.hist_edges = {name: EDGES for name in trace.layers}
    return trace


def shown(widget, qtbot, size=(700, 500)):
    widget.resize(*size)
    widget.show()
    qtbot.waitExposed(widget)
    qtbot.wait(20)


def test_empty_plots_say_what_they_wait_for(qtbot):
    curves, kept, hist = CurvesPlot(), KeptBars(), HistogramView()
    for widget in (curves, kept, hist):
        qtbot.addWidget(widget)
        assert widget.note.isVisible() and widget.note.toPlainText(), type(widget).__name__
    trace = run("a", [np.nan, 0.9, 0.5], [0.9, 0.8, 0.85],
                layers={i: {"fc1": {"kept_fraction": 1 / (i + 1), "hist_counts": np.ones(4)}} for i in range(3)})
    curves.set_traces([trace])
    kept.set_trace(trace)
    hist.set_trace(trace)
    assert not any(w.note.isVisible() for w in (curves, kept, hist))
    empty = RunTrace(path="/runs/new.h5", label="new", method="dns")       # a run with no point yet
    curves.set_traces([])
    kept.set_trace(empty)
    hist.set_trace(empty)
    assert all(w.note.isVisible() for w in (curves, kept, hist))


def test_the_histogram_says_when_a_layer_recorded_no_histogram(qtbot):
    hist = HistogramView()
    qtbot.addWidget(hist)
    trace = run("a", [np.nan, 0.9], [0.9, 0.8],
                layers={0: {"fc1": {"kept_fraction": 1.0}}, 1: {"fc1": {"hist_counts": np.ones(4)}}})
    hist.set_trace(trace)
    assert not hist.note.isVisible()
    hist.select("fc1", 0)
    assert hist.note.isVisible() and "fc1" in hist.note.toPlainText()


def scene_points(plot, x, y):
    view = plot.getViewBox()
    log_y = plot.ctrl.logYCheck.isChecked()
    ok = np.isfinite(x) & np.isfinite(y)
    return [view.mapViewToScene(QtCore.QPointF(a, np.log10(b) if log_y else b)) for a, b in zip(x[ok], y[ok])]


def test_the_curves_legend_leaves_the_curves_visible(qtbot):
    """Two runs, one whose loss stays high to the end (a hashed net): the legend at the loss plot's top
    right sat on that curve. Every drawn point of both plots must lie outside the legend."""
    curves = CurvesPlot()
    qtbot.addWidget(curves)
    steps = 8
    flat = run("hashed", [np.nan] + [1.5 - 0.02 * i for i in range(steps)],
               [0.99] + [0.3 + 0.06 * i for i in range(steps)])
    falling = run("dns", [np.nan] + [0.9 / (i + 1) for i in range(steps)],
                  [0.99] + [0.5 + 0.06 * i for i in range(steps)])
    curves.set_traces([flat, falling])
    shown(curves, qtbot)
    box = curves.legend.sceneBoundingRect()
    assert box.width() > 0
    for trace in (flat, falling):
        loss, acc = curves.curves(trace)
        for plot, item in ((curves.loss_plot, loss), (curves.acc_plot, acc)):
            x, y = item.getOriginalDataset()
            for p in scene_points(plot, np.asarray(x, float), np.asarray(y, float)):
                assert not box.contains(p), (trace.label, p, box)


def drawn_labels(axis) -> list[str]:
    image = QtGui.QImage(10, 10, QtGui.QImage.Format.Format_ARGB32)
    painter = QtGui.QPainter(image)
    try:
        _, _, texts = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [text for _, _, text in texts if text]


def test_weights_are_printed_as_they_are(qtbot):
    """Mixture means of +-0.4 read "400" with "(x0.001)" in the axis title."""
    means = [None, np.array([0.0, -0.4, 0.4]), np.array([0.0, -0.39, 0.38])]
    layers = {i: {"conv1": {"mix_mean": means[i], "mix_var": None if i == 0 else np.full(3, 0.01),
                            "mix_weight": None if i == 0 else np.array([0.9, 0.05, 0.05]),
                            "scatter_initial": None if i < 2 else np.array([-0.35, 0.0, 0.3]),
                            "scatter_final": None if i < 2 else np.array([-0.39, 0.0, 0.38])}} for i in range(3)}
    plot = MixturePlot()
    qtbot.addWidget(plot)
    plot.set_trace(run("s", [np.nan, 0.5, 0.4], [0.9, 0.9, 0.9], layers))
    shown(plot, qtbot)
    for axis in (plot.means_plot.getAxis("left"), plot.scatter_plot.getAxis("left"),
                 plot.scatter_plot.getAxis("bottom")):
        texts = drawn_labels(axis)
        assert texts and all(abs(float(t.replace("\u2212", "-"))) <= 0.5 for t in texts), texts
        assert "x0.001" not in axis.labelString()
    spectrum = SpectrumPlot()
    qtbot.addWidget(spectrum)
    for item in (spectrum.sigma_plot, spectrum.energy_plot, spectrum.bars_plot):
        assert all(not item.getAxis(name).autoSIPrefix for name in ("left", "bottom"))
