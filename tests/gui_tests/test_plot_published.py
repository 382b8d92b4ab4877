"""The papers' points on the ratio plot: only where a shown run has their network and data set (MNIST),
their labels inside the view wherever the points sit, and an empty plot that says what it is for."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("pytestqt")

from workbench.core.events import Evaluated  # noqa: E402
from workbench.gui.plots import PUBLISHED, RatioPlot, published_for  # noqa: E402
from workbench.gui.run_trace import RunTrace  # noqa: E402


def run(name, model="lenet300", dataset="mnist", ratios=(1, 10, 20), errors=(1.6, 1.8, 1.7), config=True):
    """A run as the app holds it: its config names the data set (older files: the root attributes)."""
    trace = RunTrace(path=f"/runs/{name}.h5", label=name, method="dns", model=model, status="completed",
                     config={"dataset": dataset, "model": model} if config else {},
                     attrs={} if config else {"dataset": dataset})
    for i, (r, e) in enumerate(zip(ratios, errors)):
        trace.add_point(Evaluated(stage=0, epoch=i, step=i, label="reference" if i == 0 else "epoch",
                                  metrics={"test_accuracy": 1 - e / 100, "param_ratio": r,
                                           "storage_ratio": max(r / 3, 1), "step": i}))
    return trace


def shown(plot):
    """(ratio, error) of the drawn paper points and their visible labels (after the view takes the
    range it would take at its next paint: labels of stars outside the view are hidden)."""
    plot.plot.getViewBox().updateAutoRange()
    x, y = plot.published.getOriginalDataset()
    points = [] if x is None else sorted(zip(np.round(x, 3), np.round(y, 3)))
    return points, sorted(item.toPlainText() for item in plot._published_labels if item.isVisible())


@pytest.fixture
def ratio(qtbot):
    plot = RatioPlot()
    qtbot.addWidget(plot)
    return plot


def test_every_paper_point_names_its_data_set():
    assert PUBLISHED and all(p.dataset == "mnist" for p in PUBLISHED)


def test_points_only_for_runs_of_their_net_on_mnist(ratio):
    ratio.set_traces([run("fashion", dataset="fashion-mnist")])
    assert shown(ratio) == ([], [])
    ratio.set_traces([run("tiny", dataset="tiny")])
    assert shown(ratio) == ([], [])
    ratio.set_traces([run("mnist", dataset="mnist")])
    assert shown(ratio) == ([(12, 1.59), (56, 1.99)], ["DNS 2016", "Han 2015"])
    ratio.set_traces([run("a", dataset="MNIST"), run("b", model="lenet5", dataset="fashion-mnist")])
    assert shown(ratio) == ([(12, 1.59), (56, 1.99)], ["DNS 2016", "Han 2015"])   # lenet5 ran on Fashion
    ratio.set_traces([run("old", dataset="mnist", config=False)])    # no config: the file's attribute
    assert len(shown(ratio)[0]) == 2
    assert published_for([("lenet5", "mnist")], "storage_ratio") == \
        [p for p in PUBLISHED if p.net == "lenet5" and p.convention == "storage_ratio"]
    assert published_for([("lenet5", "fashion-mnist"), ("resnet20", "mnist")], "param_ratio") == []


def test_a_live_run_on_mnist_brings_its_points(ratio):
    ratio.set_traces([run("f", dataset="fashion-mnist")])
    ratio.update_trace(run("live", model="lenet5", dataset="mnist"))
    assert shown(ratio)[1] == ["DNS 2016", "Han 2015"]
    assert [p for p, _ in zip(*ratio.published.getOriginalDataset())] == [12, 108]


def test_no_runs_no_points_but_a_message(ratio, qtbot):
    """With nothing loaded the plot used to show every paper's point, unasked; now it says what it shows."""
    ratio.show()
    qtbot.waitExposed(ratio)
    assert shown(ratio) == ([], [])
    assert ratio.empty_note.isVisible() and "run" in ratio.empty_note.toPlainText()
    ratio.set_traces([run("a")])
    assert not ratio.empty_note.isVisible()
    ratio.set_traces([])
    assert ratio.empty_note.isVisible()


def test_legend_lists_front_and_papers_only_when_drawn(ratio):
    def entries():
        return [label.text for _, label in ratio.legend.items]

    ratio.set_traces([run("fashion", dataset="fashion-mnist")])
    assert "published (paper)" not in entries() and entries()[-1] == "fashion"
    ratio.set_traces([run("mnist")])
    assert entries() == ["Pareto front (completed)", "published (paper)", "mnist"]


def inside(item, view) -> bool:
    box = view.sceneBoundingRect().adjusted(-0.5, -0.5, 0.5, 0.5)
    return box.contains(item.sceneBoundingRect())


@pytest.mark.parametrize("kind", ["param_ratio", "storage_ratio"])
def test_labels_stay_inside_the_view(ratio, qtbot, kind):
    ratio.resize(640, 420)
    ratio.show()
    qtbot.waitExposed(ratio)
    # The run lies right of and below the papers' points: Han 2015 (12x, 1.59 %) is the top-left corner.
    ratio.set_traces([run("a", ratios=(40, 60, 100), errors=(1.0, 1.2, 1.1)),
                      run("b", model="lenet5", ratios=(30, 150, 200), errors=(0.6, 0.7, 0.65))])
    ratio.set_ratio_kind(kind)
    view = ratio.plot.getViewBox()
    for x_range in (None, (1.05, 1.6), (1.75, 2.3)):     # autorange, then the points at the left / right edge
        if x_range:
            view.setXRange(*x_range, padding=0)
        qtbot.wait(20)
        labels = [item for item in ratio._published_labels if item.isVisible()]
        assert labels
        for item in labels:
            assert inside(item, view), (item.toPlainText(), x_range)
