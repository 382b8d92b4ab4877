"""The side tabs linked to the histogram show its run at its point: "Kept per layer" said 4/4 while the
histogram's slider said 5/5 when a live point reached the histogram before the kept bars' own refresh
(the window redraws one plot per event-loop pass and skips the side tabs while the histogram waits)."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import re  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("pytestqt")

from workbench.core.events import Evaluated  # noqa: E402
from workbench.gui.plots import HashingPlot, HistogramView, KeptBars, MixturePlot, SpectrumPlot  # noqa: E402
from workbench.gui.run_trace import RunTrace  # noqa: E402

EDGES = np.linspace(-1, 1, 5)


def point(trace, kept):
    """One evaluation point; layer fcJ keeps kept / J of its weights."""
    i = trace.points
    trace.add_point(Evaluated(stage=0, epoch=i, step=10 * i, label="reference" if i == 0 else "epoch",
                              metrics={"step": 10 * i, "epoch": i},
                              layers={f"fc{j}": {"kept_fraction": kept / j, "hist_counts": np.ones(4) * i}
                                      for j in (1, 2)}))


def trace_with(kepts, name="a"):
    trace = RunTrace(path=f"/runs/{name}.h5", label=name, method="dns", model="mlp_tiny", status="running")
    trace.hist_edges = {"fc1": EDGES, "fc2": EDGES}
    for kept in kepts:
        point(trace, kept)
    return trace


def fraction(text):
    """The "i/n" a plot shows of its point."""
    found = re.findall(r"(\d+)/(\d+)", text)
    assert len(found) == 1, text
    return tuple(int(v) for v in found[0])


@pytest.fixture
def linked(qtbot):
    hist, kept = HistogramView(), KeptBars()
    for widget in (hist, kept):
        qtbot.addWidget(widget)
    hist.shown.connect(kept.follow)
    return hist, kept


def agree(hist, kept):
    shown = fraction(kept.plot.titleLabel.text)
    assert shown == fraction(hist.point_label.text()), (kept.plot.titleLabel.text, hist.point_label.text())
    return shown


def test_kept_bars_follow_a_live_point_the_histogram_drew_first(linked):
    hist, kept = linked
    trace = trace_with([1.0, 0.5, 0.4, 0.3])
    hist.set_trace(trace)
    kept.set_trace(trace)
    assert agree(hist, kept) == (4, 4)
    point(trace, 0.2)                        # a fifth point; the window redraws the histogram first
    hist.update_trace(trace)
    assert agree(hist, kept) == (5, 5)
    np.testing.assert_allclose(kept.heights(), [20.0, 10.0])
    kept.update_trace(trace)                 # its own refresh, later: still the same point
    assert agree(hist, kept) == (5, 5)


def test_a_point_chosen_on_the_slider_stays_while_the_run_grows(linked):
    hist, kept = linked
    trace = trace_with([1.0, 0.5, 0.4])
    hist.set_trace(trace)
    kept.set_trace(trace)
    hist.slider.setValue(1)                  # the user goes back to point 2 of 3
    assert agree(hist, kept) == (2, 3)
    np.testing.assert_allclose(kept.heights(), [50.0, 25.0])
    point(trace, 0.3)
    hist.update_trace(trace)
    assert agree(hist, kept) == (2, 4)       # the same point, of four now
    kept.update_trace(trace)
    assert agree(hist, kept) == (2, 4)
    np.testing.assert_allclose(kept.heights(), [50.0, 25.0])


def test_a_new_run_reaches_the_side_tabs_with_the_histogram(linked, qtbot):
    hist, kept = linked
    tabs = [MixturePlot(), SpectrumPlot(), HashingPlot()]
    for tab in tabs:
        qtbot.addWidget(tab)
        hist.shown.connect(tab.follow)
    old, new = trace_with([1.0, 0.5, 0.4, 0.3, 0.2], "old"), trace_with([1.0, 0.8], "new")
    for plot in (hist, kept, *tabs):
        plot.set_trace(old)
    hist.set_trace(new)                      # the other plots' own set_trace still to come
    assert agree(hist, kept) == (2, 2)
    np.testing.assert_allclose(kept.heights(), [80.0, 40.0])
    assert all(tab._trace is new for tab in tabs)
    hist.set_trace(None)                     # nothing shown: nothing left of the old run beside it
    assert len(kept.heights()) == 0 and not kept.plot.titleLabel.isVisible()
