"""Plot widgets draw exactly what the traces hold: synthetic traces with known values, one real run."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


import numpy as np
import pytest

pytest.importorskip("pytestqt")

from workbench.core.events import Evaluated  # noqa: E402
from workbench.gui.plots import CurvesPlot, HistogramView, KeptBars, MixturePlot, RatioPlot, export_plot  # noqa: E402
from workbench.gui.plots.overlays import Band, Curve, VLine  # noqa: E402
from workbench.gui.plots.published import published_for  # noqa: E402
from workbench.gui.plots.ratio_plot import front_steps, pareto_indices  # noqa: E402
from workbench.gui.run_trace import RunTrace  # noqa: E402

EDGES = np.linspace(-1.0, 1.0, 5)          # 4 bins


def make_trace(label, model="lenet300", method="dns", status="completed", param=(1, 10, 20),
               storage=None, acc=(0.98, 0.97, 0.975), layers=("fc1", "fc2"), extra=None, dataset="mnist"):
    """A trace built through the same add_point path the live GUI uses."""
    trace = RunTrace(path=f"/runs/{label}.h5", label=label, method=method, model=model, status=status,
                     config={"dataset": dataset})
    storage = storage or [r / 3 if r > 1 else 1 for r in param]
    n = len(param)
    for i in range(n):
        kind = "reference" if i == 0 else "finalized" if i == n - 1 else "epoch"
        layer_data = {}
        for j, layer in enumerate(layers):
            entry = {"hist_counts": np.arange(4) + 10 * i + j, "kept_fraction": 1.0 / (i + j + 1)}
            for name, values in (extra or {}).items():
                entry[name] = None if values[i] is None else values[i] * (j + 1)
            layer_data[layer] = entry
        trace.add_point(Evaluated(stage=0, epoch=i, step=100 * i, label=kind, layers=layer_data,
                                  metrics={"step": 100 * i, "epoch": i, "test_accuracy": acc[i],
                                           "train_loss": 1.0 / (i + 1), "param_ratio": param[i],
                                           "storage_ratio": storage[i]}))
    for layer in layers:
        trace.hist_edges[layer] = EDGES
    return trace


def shown(qtbot, widget, width, height):
    """`widget` on screen at that size (legends and notes fit what the view really measures)."""
    qtbot.addWidget(widget)
    widget.resize(width, height)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def err(acc):
    return (1 - np.asarray(acc, float)) * 100


@pytest.fixture
def ratio(qtbot):
    plot = RatioPlot()
    qtbot.addWidget(plot)
    return plot


def test_trajectory_is_the_traces_ratio_and_error(ratio):
    a = make_trace("a", param=(1, 10, 20), acc=(0.98, 0.97, 0.975))
    b = make_trace("b", param=(1, 5, 8), acc=(0.99, 0.985, 0.98))
    ratio.set_traces([a, b])
    for trace in (a, b):
        x, y = ratio.trajectory_data(trace)
        np.testing.assert_allclose(x, trace.metrics["param_ratio"])
        np.testing.assert_allclose(y, err(trace.metrics["test_accuracy"]))
    run = ratio._runs[a.path]
    np.testing.assert_allclose(run.latest.getOriginalDataset()[0], [20])   # latest point emphasised
    assert run.curve.opts["pen"].color().name() != ratio._runs[b.path].curve.opts["pen"].color().name()
    assert [label.text for _, label in ratio.legend.items][-2:] == ["a", "b"]


def test_convention_toggle_switches_x_to_storage_ratio(ratio):
    a = make_trace("a", param=(1, 10, 20), storage=(1, 4, 7))
    ratio.set_traces([a])
    ratio.kind_combo.setCurrentIndex(ratio.kind_combo.findData("storage_ratio"))   # as a user would
    assert ratio.ratio_kind() == "storage_ratio"
    np.testing.assert_allclose(ratio.trajectory_data(a)[0], [1, 4, 7])
    assert "bits" in ratio.plot.getAxis("bottom").labelText
    ratio.set_ratio_kind("param_ratio")
    np.testing.assert_allclose(ratio.trajectory_data(a)[0], [1, 10, 20])
    assert "parameters" in ratio.plot.getAxis("bottom").labelText
    with pytest.raises(ValueError):
        ratio.set_ratio_kind("bogus")


def test_pareto_front_is_the_non_dominated_finished_runs(ratio):
    # final points (ratio, error %): A (10, 1.5), B (50, 2.0), C (20, 2.5) dominated by B,
    # D (100, 1.0) would dominate all but is still running, E (5, 1.5) dominated by A (same error).
    runs = [make_trace("A", param=(1, 8, 10), acc=(0.99, 0.98, 0.985)),
            make_trace("B", param=(1, 40, 50), acc=(0.99, 0.97, 0.98)),
            make_trace("C", param=(1, 30, 20), acc=(0.99, 0.97, 0.975)),
            make_trace("D", param=(1, 90, 100), acc=(0.99, 0.98, 0.99), status="running"),
            make_trace("E", param=(1, 4, 5), acc=(0.99, 0.98, 0.985))]
    ratio.set_traces(runs)
    front = ratio.pareto_front()
    assert [label for label, _, _ in front] == ["A", "B"]
    np.testing.assert_allclose([(r, e) for _, r, e in front], [(10, 1.5), (50, 2.0)])
    x, y = ratio.front.getOriginalDataset()         # staircase: up at A's ratio, across to B
    np.testing.assert_allclose(x, [10, 10, 50])
    np.testing.assert_allclose(y, [1.5, 2.0, 2.0])
    assert pareto_indices([(1, 1), (2, 2), (2, 3), (0.5, 1)]) == [0, 1]
    assert front_steps([(1, 1), (2, 2), (4, 3)]) == ([1, 1, 2, 2, 4], [1, 2, 2, 3, 3])


def test_fronts_of_different_models_are_not_joined(ratio):
    ratio.set_traces([make_trace("a", model="lenet300"), make_trace("b", model="lenet5")])
    x, _ = ratio.front.getOriginalDataset()
    assert np.isnan(x).sum() == 1 and len(ratio.pareto_front()) == 2


def _published(ratio):
    ratio.plot.getViewBox().updateAutoRange()              # the range of its next paint: labels placed
    x, y = ratio.published.getOriginalDataset()
    x, y = ([], []) if x is None else (x, y)               # pyqtgraph gives None for no data
    labels = [item.toPlainText() for item in ratio._published_labels if item.isVisible()]
    return sorted(zip(np.round(x, 3), np.round(y, 3))), sorted(labels)


def test_published_points_follow_models_and_convention(ratio):
    ratio.set_traces([make_trace("a", model="lenet300")])
    assert _published(ratio) == ([(12, 1.59), (56, 1.99)], ["DNS 2016", "Han 2015"])
    ratio.set_ratio_kind("storage_ratio")
    assert _published(ratio) == ([(40, 1.58), (64, 1.94)], ["DC 2016", "SWS 2017"])
    ratio.set_traces([make_trace("b", model="resnet20")])    # no published numbers for it
    assert _published(ratio) == ([], [])
    ratio.set_traces([make_trace("c", model="lenet5")])
    assert _published(ratio)[1] == ["DC 2016", "SWS 2017"]
    ratio.set_traces([make_trace("a", model="lenet300"), make_trace("c", model="lenet5")])
    points, labels = _published(ratio)
    assert len(points) == 4 and "SWS 2017 (lenet5)" in labels
    ratio.set_traces([])                                     # nothing loaded: no paper (the plot says so)
    assert _published(ratio) == ([], [])


def test_update_trace_extends_the_curve(ratio, qtbot):
    live = make_trace("live", status="running", param=(1, 10), acc=(0.98, 0.97))
    ratio.set_traces([live])
    live.add_point(Evaluated(stage=0, epoch=2, step=200, label="epoch",
                             metrics={"step": 200, "test_accuracy": 0.975, "param_ratio": 15,
                                      "storage_ratio": 5}))
    ratio.update_trace(live)
    x, y = ratio.trajectory_data(live)
    np.testing.assert_allclose(x, [1, 10, 15])
    np.testing.assert_allclose(y, err([0.98, 0.97, 0.975]))
    np.testing.assert_allclose(ratio._runs[live.path].latest.getOriginalDataset()[0], [15])
    other = make_trace("new", model="lenet5")                # an unknown run is added, not rebuilt
    ratio.update_trace(other)
    assert len(ratio._runs) == 2 and "DNS 2016 (lenet5)" in _published(ratio)[1]


def test_curves_plot_steps_loss_accuracy(qtbot):
    plot = CurvesPlot()
    qtbot.addWidget(plot)
    a = make_trace("a")
    plot.set_traces([a, make_trace("b")])
    loss, acc = plot.curves(a)
    np.testing.assert_allclose(acc.getOriginalDataset()[0], [0, 100, 200])
    np.testing.assert_allclose(acc.getOriginalDataset()[1], [98, 97, 97.5])
    np.testing.assert_allclose(loss.getOriginalDataset()[1], [1, 1 / 2, 1 / 3])
    a.add_point(Evaluated(stage=1, epoch=3, step=300, metrics={"step": 300, "test_accuracy": 0.99}))
    plot.update_trace(a)
    x, y = acc.getOriginalDataset()
    assert len(x) == 4 and x[-1] == 300 and y[-1] == pytest.approx(99)
    assert np.isnan(loss.getOriginalDataset()[1][-1])      # not recorded at that point: not drawn


@pytest.fixture
def hist(qtbot):
    view = HistogramView()
    qtbot.addWidget(view)
    return view


def test_histogram_shows_the_selected_points_counts(hist):
    trace = make_trace("a", layers=("conv1", "fc1", "fc2"))
    hist.set_trace(trace)
    assert [hist.layer_combo.itemText(i) for i in range(hist.layer_combo.count())] == \
        ["conv1", "fc1", "fc2"]
    assert hist.point() == 2 and hist.slider.maximum() == 2          # starts at the last point
    hist.select("fc1", 1)
    x, y = hist.hist.getOriginalDataset()
    np.testing.assert_allclose(x, EDGES)
    np.testing.assert_allclose(y, trace.layers["fc1"]["hist_counts"][1])
    assert "epoch 1" in hist.point_label.text() and "epoch" in hist.point_label.text()
    hist.slider.setValue(0)                                          # the user drags the slider
    np.testing.assert_allclose(hist.hist.getOriginalDataset()[1], trace.layers["fc1"]["hist_counts"][0])
    assert "reference" in hist.point_label.text()
    hist.log_check.setChecked(True)
    assert hist.plot.getViewBox().state["logMode"][1]


def _lines(view):
    return sorted(round(line.value(), 6) for line in view.overlay_items(VLine))


def test_dns_band_sits_at_a_k_b_k_of_the_selected_point(hist):
    trace = make_trace("d", extra={"a_k": [np.nan, 0.1, 0.2], "b_k": [np.nan, 0.15, 0.3]})
    hist.set_trace(trace)
    hist.select("fc1", 1)
    assert _lines(hist) == [-0.15, -0.1, 0.1, 0.15]
    regions = sorted(tuple(np.round(b.getRegion(), 6)) for b in hist.overlay_items(Band))
    assert regions == [(-0.15, -0.1), (0.1, 0.15)]
    hist.select("fc2", 2)                                            # fc2 values are doubled
    assert _lines(hist) == [-0.6, -0.4, 0.4, 0.6]
    hist.select("fc2", 0)                                            # NaN at the reference: no overlay
    assert _lines(hist) == [] and hist.overlay_items(Band) == []


def test_magnitude_threshold_lines(hist):
    trace = make_trace("m", method="magnitude", extra={"threshold": [None, 0.05, 0.08]})
    hist.set_trace(trace)
    hist.select("fc1", 2)
    assert _lines(hist) == [-0.08, 0.08]
    assert hist.overlay_items(Band) == []
    hist.select("fc1", 0)
    assert _lines(hist) == []


MIX = {"mix_mean": [None, np.array([0.0, -0.5, 0.5]), np.array([0.0, -0.4, np.nan])],
       "mix_var": [None, np.array([0.01, 0.02, 0.02]), np.array([0.01, 0.01, np.nan])],
       "mix_weight": [None, np.array([0.9, 0.05, 0.05]), np.array([0.95, 0.05, np.nan])]}


def test_mixture_components_drawn_over_the_histogram_in_counts(hist):
    trace = make_trace("s", method="sws", extra=MIX)
    hist.set_trace(trace)
    hist.select("fc1", 1)
    assert _lines(hist) == [-0.5, 0.0, 0.5]                       # a line at each mean
    curves = hist.overlay_items(Curve)
    assert len(curves) == 3
    counts = trace.layers["fc1"]["hist_counts"][1]
    total, width = counts.sum(), EDGES[1] - EDGES[0]
    peak = total * 0.05 * width / np.sqrt(2 * np.pi * 0.02)       # component at -0.5, not capped
    assert max(curves[1].getOriginalDataset()[1]) == pytest.approx(peak, rel=1e-3)
    assert max(curves[0].getOriginalDataset()[1]) == pytest.approx(1.5 * counts.max())   # pi_0 capped
    hist.select("fc1", 2)                                          # a merged (NaN) slot draws nothing
    assert _lines(hist) == [-0.4, 0.0] and len(hist.overlay_items(Curve)) == 2
    hist.select("fc1", 0)
    assert hist.overlay_items(Curve) == [] and _lines(hist) == []


def test_kmeans_centroid_lines(hist):
    trace = make_trace("k", method="kmeans", extra={"centroids": [None, np.array([-0.2, 0.1, np.nan]),
                                                                  np.array([-0.25, 0.15, np.nan])]})
    hist.set_trace(trace)
    hist.select("fc1", 2)
    assert _lines(hist) == [-0.25, 0.15]


def test_mixture_plot_paths_and_final_scatter(qtbot):
    extra = dict(MIX)
    extra["scatter_initial"] = [None, None, np.array([0.1, -0.3, 0.02])]
    extra["scatter_final"] = [None, None, np.array([0.0, -0.4, 0.0])]
    trace = make_trace("s", method="sws", extra=extra)
    plot = MixturePlot()
    qtbot.addWidget(plot)
    plot.set_trace(trace)
    paths = plot.component_paths()
    assert paths.shape == (3, 3) and np.isnan(paths[0]).all()
    np.testing.assert_allclose(paths[1], [0.0, -0.5, 0.5])
    plot.set_layer("fc2")                                          # fc2's recorded values are doubled
    x, y = plot.scatter.getData()
    np.testing.assert_allclose(x, [0.2, -0.6, 0.04])
    np.testing.assert_allclose(y, [0.0, -0.8, 0.0])
    assert plot.note.isHidden()
    assert plot.tau_text() == "" and plot.tau_label.text == ""           # a run that kept no tau
    plot.set_trace(make_trace("d"))                                # a run without a mixture says so
    assert not plot.note.isHidden() and plot.component_paths().size == 0


def test_mixture_plot_says_how_the_snap_budget_raised_tau(qtbot):
    plot = MixturePlot()
    qtbot.addWidget(plot)
    plot.set_trace(make_trace("s", method="sws", extra={**MIX, "tau": [None, 0.005, 0.005]}))
    assert plot.tau_text() == "tau 0.005" and plot.tau_label.text == "tau 0.005"
    trace = make_trace("s", method="sws", param=(1, 10, 20, 30), acc=(0.98, 0.97, 0.975, 0.97),
                       extra={"mix_mean": MIX["mix_mean"] + [MIX["mix_mean"][2]], "tau": [None, 0.005, 0.01, 0.02]})
    plot.set_trace(trace)
    assert plot.tau_text() == "tau 0.005 -> 0.02 (snap budget; raised after epoch 2, 3)"
    assert plot.tau_label.text == plot.tau_text() and plot.steps_text() == ""     # no gradual snap kept
    steps = {"mix_mean": MIX["mix_mean"] + [MIX["mix_mean"][2]] * 2, "snap_held": [None, 0.0, 0.0, 0.5, 0.75]}
    acc = (0.98, 0.97, 0.975, 0.97, 0.97)
    plot.set_trace(make_trace("s", method="sws", param=(1, 10, 20, 30, 40), acc=acc,
                              extra={**steps, "tau": [None, 0.005, 0.01, 0.0, 0.0]}))
    assert plot.tau_text() == ("tau 0.005 -> 0.01 (snap budget; raised after epoch 2); the prior off for the "
                               "snap steps")
    plot.set_trace(make_trace("s", method="sws", param=(1, 10, 20, 30, 40), acc=acc,
                              extra={**steps, "tau": [None, 0.005, 0.01, 0.005, 0.005]}))
    assert plot.tau_text() == "tau 0.005 -> 0.01 (snap budget; raised after epoch 2); 0.005 for the snap steps"


def test_mixture_plot_says_where_the_gradual_snap_acted(qtbot):
    plot = MixturePlot()
    qtbot.addWidget(plot)
    trace = make_trace("s", method="sws", param=(1, 10, 20, 30), acc=(0.98, 0.97, 0.975, 0.97),
                       extra={"mix_mean": MIX["mix_mean"] + [MIX["mix_mean"][2]], "tau": [None, 0.01, 0.01, 0.01],
                              "snap_held": [None, 0.0, 0.5, 0.75]})
    plot.set_trace(trace)
    assert plot.steps_text() == "snapped in steps from epoch 2 (75% of fc1 held)"
    assert plot.tau_label.text == "tau 0.01<br>snapped in steps from epoch 2 (75% of fc1 held)"
    plot.set_trace(make_trace("s", method="sws", extra={**MIX, "snap_held": [None, 0.0, 0.0]}))
    assert plot.steps_text() == "" and plot.tau_label.text == ""               # the steps never acted


def test_mixture_plots_share_the_tab_width_equally(qtbot):
    """At the size the tab has at 1280x800 the scatter's title set its column's minimum width and the
    means plot got a third of the tab, its step ticks run together; now each gets half, at any width."""
    extra = dict(MIX)
    extra["scatter_initial"] = [None, None, np.array([0.1, -0.3, 0.02])]
    extra["scatter_final"] = [None, None, np.array([0.0, -0.4, 0.0])]
    plot = shown(qtbot, MixturePlot(), 440, 330)
    plot.set_trace(make_trace("s", method="sws", extra=extra))
    plot.set_layer("fc2")
    assert plot.scatter_plot.titleLabel.text == "fc2 (a sample)"

    def halves():
        a, b = plot.means_plot.geometry().width(), plot.scatter_plot.geometry().width()
        return abs(a - b) <= 2 and a + b >= 0.9 * plot.view.width()

    qtbot.waitUntil(halves, timeout=2000)
    plot.resize(900, 330)
    qtbot.waitUntil(halves, timeout=2000)


def test_histogram_update_follows_last_point_only_when_there(hist):
    trace = make_trace("live", status="running")
    hist.set_trace(trace)
    trace.add_point(Evaluated(stage=0, epoch=3, step=300, metrics={"step": 300},
                              layers={"fc1": {"hist_counts": np.array([9, 9, 9, 9])}}))
    hist.update_trace(trace)
    assert hist.point() == 3 and hist.slider.maximum() == 3
    np.testing.assert_allclose(hist.hist.getOriginalDataset()[1], [9, 9, 9, 9])
    hist.select("fc1", 1)
    trace.add_point(Evaluated(stage=0, epoch=4, step=400, metrics={"step": 400}))
    hist.update_trace(trace)
    assert hist.point() == 1 and hist.slider.maximum() == 4


def test_kept_bars_heights_are_kept_fraction_percent(qtbot):
    bars = KeptBars()
    qtbot.addWidget(bars)
    trace = make_trace("a", layers=("conv1", "fc1", "fc2"))
    bars.set_trace(trace)                                            # last point (2)
    np.testing.assert_allclose(bars.heights(), [100 / 3, 100 / 4, 100 / 5])
    ticks = bars.plot.getAxis("bottom")._tickLevels[0]
    assert [name for _, name in ticks] == ["conv1", "fc1", "fc2"]
    view = HistogramView()
    qtbot.addWidget(view)
    view.shown.connect(bars.follow)
    view.set_trace(trace)
    view.select("fc1", 1)
    np.testing.assert_allclose(bars.heights(), [50, 100 / 3, 25])


def test_kept_bars_follow_a_live_trace_that_grows_in_place(qtbot):
    """The live trace is one object that grows: bars on the last point move on with it, bars on an
    earlier point picked by the user stay there."""
    bars = KeptBars()
    qtbot.addWidget(bars)
    trace = make_trace("live", status="running", layers=("fc1",))
    bars.set_trace(trace, point=2)                                   # the user picked the last point
    trace.add_point(Evaluated(stage=0, epoch=3, step=300, metrics={"step": 300},
                              layers={"fc1": {"kept_fraction": 0.1}}))
    bars.update_trace(trace)
    np.testing.assert_allclose(bars.heights(), [10.0])
    bars.set_point(1)
    trace.add_point(Evaluated(stage=0, epoch=4, step=400, metrics={"step": 400},
                              layers={"fc1": {"kept_fraction": 0.05}}))
    bars.update_trace(trace)
    np.testing.assert_allclose(bars.heights(), [50.0])                # point 1: 1 / 2 kept


def test_export_png_and_svg(ratio, tmp_path):
    ratio.set_traces([make_trace("a"), make_trace("b", model="lenet5")])
    ratio.resize(600, 400)
    for name in ("ratio.png", "ratio.svg"):
        path = export_plot(ratio, tmp_path / name)
        assert path == tmp_path / name and path.stat().st_size > 1000
    assert (tmp_path / "ratio.png").read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in (tmp_path / "ratio.svg").read_bytes()[:2000]
    assert export_plot(ratio.plot_widget, tmp_path / "w.PNG").stat().st_size > 0
    with pytest.raises(ValueError, match="unknown format"):
        export_plot(ratio, tmp_path / "ratio.jpg")


def _no_data(item) -> bool:
    x, _ = item.getOriginalDataset()
    return x is None or len(x) == 0                          # pyqtgraph gives None for no data


def test_widgets_accept_empty_traces(qtbot):
    """A run with no points yet (one just started) replaces what the previous run drew: each widget shows
    nothing of the old run and nothing invented for the new one, through set and live update alike."""
    full = make_trace("full", method="sws", extra={**MIX, "scatter_initial": [None, None, np.array([0.1, -0.3])],
                                                   "scatter_final": [None, None, np.array([0.0, -0.4])]})
    empty = RunTrace(path="/runs/empty.h5", label="empty", method="dns")

    ratio = RatioPlot()
    ratio.set_traces([full])
    assert len(ratio.trajectory_data(full)[0]) == 3 and ratio.pareto_front()
    curves = CurvesPlot()
    curves.set_traces([full])
    hist = HistogramView()
    hist.set_trace(full)
    hist.select("fc1", 1)                                    # mixture overlays drawn at point 1
    assert hist.overlay_items(Curve) and hist.layer_combo.count() == 2
    bars = KeptBars()
    bars.set_trace(full)
    assert len(bars.heights()) == 2 and bars.plot.titleLabel.isVisible()
    mixture = MixturePlot()
    mixture.set_trace(full)
    assert mixture.note.isHidden() and len(mixture.scatter.getData()[0]) == 2

    for widget in (ratio, curves, hist, bars, mixture):
        qtbot.addWidget(widget)
        if hasattr(widget, "set_traces"):
            widget.set_traces([empty])
        else:
            widget.set_trace(empty)
        widget.update_trace(empty)
        widget.grab()                                        # paints without error

    with pytest.raises(KeyError):                            # the old run's items are gone
        ratio.trajectory_data(full)
    assert _no_data(ratio._runs["/runs/empty.h5"].curve) and _no_data(ratio._runs["/runs/empty.h5"].latest)
    assert ratio.pareto_front() == [] and _no_data(ratio.front)
    assert published_for([("", "")], "param_ratio") == []
    assert _published(ratio) == ([], [])                     # no model named: no paper's point

    with pytest.raises(KeyError):
        curves.curves(full)
    assert all(_no_data(item) for item in curves.curves(empty))
    assert len(curves.legend.items) == 1                     # the empty run's entry only

    assert hist.layer_combo.count() == 0 and hist.layer() == ""
    assert hist.slider.maximum() == 0 and hist.point_label.text() == "no run"
    assert _no_data(hist.hist)
    assert all(hist.overlay_items(kind) == [] for kind in (Band, VLine, Curve))

    assert len(bars.heights()) == 0 and bars.plot.getAxis("bottom")._tickLevels[0] == []
    assert not any(label.isVisible() for label in bars._labels)         # no stale "33%" labels
    assert not bars.plot.titleLabel.isVisible()                         # nor the old run's point title

    assert not mixture.note.isHidden() and mixture.view.isHidden()      # the placeholder note instead
    assert mixture.component_paths().size == 0 and len(mixture.scatter.getData()[0]) == 0
    assert not any(line.isVisible() for line in mixture._lines)


def test_ratio_legend_names_the_latest_runs_and_counts_the_rest(ratio):
    from workbench.gui.plots.common import LEGEND_RUNS
    traces = [make_trace(f"t{i}", param=(1, 5 + i, 10 + i)) for i in range(LEGEND_RUNS)]
    ratio.set_traces(traces)
    names = [label.text for _, label in ratio.legend.items]
    assert [n for n in names if n.startswith("t")] == [f"t{i}" for i in range(LEGEND_RUNS)]
    more = traces + [make_trace(f"t{i}", param=(1, 5 + i, 10 + i)) for i in range(LEGEND_RUNS, LEGEND_RUNS + 3)]
    ratio.set_traces(more)
    names = [label.text for _, label in ratio.legend.items]
    runs = [n for n in names if n.startswith("t")]
    assert runs == [f"t{i}" for i in range(4, LEGEND_RUNS + 3)]              # the latest five
    assert names[-1] == "... 4 earlier runs (see Compare)"
    assert len(ratio._runs) == LEGEND_RUNS + 3                                # every run still drawn
    ratio.update_trace(make_trace("t99", param=(1, 30, 40)))                  # a live trial arrives
    assert [label.text for _, label in ratio.legend.items][-2:] == ["t99", "... 5 earlier runs (see Compare)"]


def test_curves_legend_names_the_latest_runs_and_counts_the_rest(qtbot):
    from workbench.gui.plots.common import LEGEND_RUNS
    curves = CurvesPlot()
    qtbot.addWidget(curves)
    traces = [make_trace(f"t{i}") for i in range(LEGEND_RUNS + 4)]
    curves.set_traces(traces)
    names = [label.text for _, label in curves.legend.items]
    assert names == [f"t{i}" for i in range(5, LEGEND_RUNS + 4)] + ["... 5 earlier runs (see Compare)"]
    assert len(curves._curves) == LEGEND_RUNS + 4
    curves.set_traces(traces[:2])
    assert [label.text for _, label in curves.legend.items] == ["t0", "t1"]


def test_curves_legend_puts_a_studys_runs_side_by_side(qtbot):
    curves = shown(qtbot, CurvesPlot(), 200, 330)
    curves.set_traces([make_trace(f"lenet300-sws-mnist-trial-{i:04d}") for i in range(14)])
    assert curves.legend.columnCount == 1
    curves.resize(460, 330)                 # the Live tab's curves at 1280x800
    qtbot.waitUntil(lambda: curves.legend.columnCount > 1)
    names = [label.text for _, label in curves.legend.items]
    assert names[0] == "...trial-0009" and names[-1] == "... 9 earlier runs (see Compare)"
    assert curves.legend.columnCount >= 2 and curves.legend.rowCount <= 3     # one column took six rows
    layout = curves.legend.layout              # row by row, in the runs' order
    placed = [layout.itemAt(r, 2 * c + 1).text for r in range(layout.rowCount())
              for c in range(curves.legend.columnCount) if layout.itemAt(r, 2 * c + 1) is not None]
    assert placed == names


def test_empty_note_wraps_to_a_narrow_plot(qtbot):
    plot = shown(qtbot, RatioPlot(), 300, 300)
    view = plot.plot.getViewBox()
    qtbot.waitUntil(lambda: 0 < view.width() < 420)            # as narrow as the panel allows
    note = plot.empty_note
    assert note.isVisible()
    assert note.textItem.boundingRect().width() <= view.width()          # cut off at both edges before
    plot.resize(1400, 400)
    qtbot.waitUntil(lambda: view.width() > 1000)
    assert note.textItem.textWidth() == -1                               # room again: one line each


def test_legend_names_drop_the_parts_all_runs_share():
    from workbench.gui.plots.common import short_names
    assert short_names(["lenet300-sws-mnist-trial-0009", "lenet300-sws-mnist-trial-0010"]) == \
        ["...trial-0009", "...trial-0010"]
    assert short_names(["lenet5_dns_s1", "lenet5_dns_s2"]) == ["...dns_s1", "...dns_s2"]
    # one shared part is not worth an ellipsis; a lone run keeps its name; the last part always stays
    assert short_names(["lenet300-dns-mnist", "lenet300-sws-mnist"]) == ["lenet300-dns-mnist", "lenet300-sws-mnist"]
    assert short_names(["lenet300-sws-mnist-trial-0009"]) == ["lenet300-sws-mnist-trial-0009"]
    assert short_names(["a-b-c", "a-b"]) == ["a-b-c", "a-b"]


def test_ratio_legend_moves_to_the_emptiest_corner(qtbot):
    plot = shown(qtbot, RatioPlot(), 600, 420)
    # a study's trials crowd the top left (low ratio, high error); one run reaches the bottom right
    crowd = [make_trace(f"lenet300-sws-mnist-trial-{i:04d}", param=(1, 1.1 + 0.05 * i, 1.3 + 0.05 * i),
                        acc=(0.5, 0.45 + 0.01 * i, 0.5 + 0.01 * i)) for i in range(8)]
    far = make_trace("lenet300-sws-mnist-trial-0099", param=(1, 60, 100), acc=(0.5, 0.985, 0.99))
    plot.set_traces(crowd + [far])
    plot.plot.getViewBox().autoRange()
    names = [label.text for _, label in plot.legend.items]
    assert "...trial-0099" in names                                         # shortened by the shared parts
    box = plot.plot.getViewBox()
    assert plot.legend_corner != (0, 0)
    legend = plot.legend.mapRectToItem(box, plot.legend.boundingRect())
    right, bottom = plot.legend_corner
    assert (legend.left() > box.width() / 2) == bool(right) and (legend.top() > box.height() / 3) == bool(bottom)
    # a run later fills that corner too: the legend moves on, to a corner with fewer points
    before = plot.legend_corner
    plot.update_trace(make_trace("lenet300-sws-mnist-trial-0100", param=(1, 50, 90, 99),
                                 acc=(0.5, 0.51, 0.5, 0.52) if before[1] == 0 else (0.5, 0.99, 0.989, 0.99)))
    plot.plot.getViewBox().autoRange()
    assert before == (1, 0) and plot.legend_corner == (0, 1)           # top right, then bottom left


def test_legend_columns_fit_the_widest_entry_of_each_column():
    from workbench.gui.plots.common import legend_columns
    # row by row: with 3 columns the long last entry sits alone in the second column
    assert legend_columns([50, 50, 50, 50, 200], 320) == 3      # 50 + 200 + 50
    assert legend_columns([50, 50, 50, 50, 200], 250) == 2      # 200 + 50: the long entry in the first
    assert legend_columns([50, 50, 50, 50, 200], 249) == 1
    assert legend_columns([50, 50], 1000) == 2 and legend_columns([300, 300], 100) == 1


def test_ratio_legend_names_fewer_runs_in_a_short_plot(qtbot):
    from workbench.gui.plots.common import LEGEND_RUNS
    plot = shown(qtbot, RatioPlot(), 600, 700)
    plot.set_traces([make_trace(f"t{i}", param=(1, 5 + i, 10 + i)) for i in range(12)])
    tall = [label.text for _, label in plot.legend.items if label.text.startswith("t")]
    assert len(tall) == LEGEND_RUNS - 1
    plot.resize(600, 260)
    qtbot.waitUntil(lambda: plot.plot.getViewBox().height() < 200)
    short = [label.text for _, label in plot.legend.items]
    assert len(short) * 22 <= 0.4 * plot.plot.getViewBox().height() + 22
    runs = [n for n in short if n.startswith("t")]
    assert short[-1].startswith("... ") and 1 <= len(runs) < len(tall) and runs == tall[-len(runs):]
