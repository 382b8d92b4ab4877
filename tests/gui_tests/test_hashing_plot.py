"""The Hashing tab draws the bucket statistics hashed layers record: a hand-made trace, one real run."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("pytestqt")

from workbench.core.config import StageConfig  # noqa: E402
from workbench.core.events import Evaluated  # noqa: E402
from workbench.gui.plots import HashingPlot, HistogramView  # noqa: E402
from workbench.gui.run_trace import RunTrace  # noqa: E402

HIST = {"fc1": np.array([1.0, 5.0, 9.0, 3.0]), "fc2": np.array([0.0, 2.0, 2.0, 1.0])}
COLLIDE = {"fc1": 0.75, "fc2": 0.5}
CROSS = {"fc1": 0.25, "fc2": 0.0}


def hashed_trace(stats=True):
    """Reference point without statistics (as a run records it), then two training points; conv1 is not
    hashed."""
    trace = RunTrace(path="/runs/h.h5", label="h", method="hashed", model="lenet300")
    for i, label in enumerate(("reference", "epoch", "finalized")):
        layers = {"conv1": {"kept_fraction": 1.0}}
        for name in ("fc1", "fc2"):
            layers[name] = {"kept_fraction": 1.0}
            if stats and i > 0:
                layers[name].update(occupancy_hist=HIST[name], collision_fraction=COLLIDE[name],
                                    cross_fraction=CROSS[name], members_mean=2.5, buckets=18.0)
        trace.add_point(Evaluated(stage=0, epoch=i, step=10 * i, label=label, layers=layers,
                                  metrics={"step": 10 * i, "epoch": i, "stage": 0, "test_accuracy": 0.9}))
    return trace


@pytest.fixture
def plot(qtbot):
    widget = HashingPlot()
    qtbot.addWidget(widget)
    return widget


def test_occupancy_of_the_selected_layer_and_collisions_per_layer(plot, qtbot):
    trace = hashed_trace()
    plot.set_trace(trace)
    assert plot.hashed_layers() == ["fc1", "fc2"] and plot.shown_layer() == "fc1"
    np.testing.assert_allclose(plot.occupancy_heights(), HIST["fc1"])
    np.testing.assert_allclose(plot.collision_heights(), [75.0, 50.0])
    np.testing.assert_allclose(plot.cross_bars.opts["height"], [25.0, 0.0])
    view = HistogramView()
    qtbot.addWidget(view)
    view.shown.connect(plot.follow)
    view.set_trace(trace)
    view.select("fc2", 0)             # the reference point has no statistics: the newest that has is shown
    assert plot.shown_layer() == "fc2"
    np.testing.assert_allclose(plot.occupancy_heights(), HIST["fc2"])
    view.select("conv1", 1)           # not hashed: falls back to the first hashed layer
    np.testing.assert_allclose(plot.occupancy_heights(), HIST["fc1"])


def test_note_for_a_run_without_hashed_layers(plot):
    plot.set_trace(hashed_trace(stats=False))
    assert not plot.note.isHidden() and plot.view.isHidden()
    assert plot.occupancy_heights().size == 0
    plot.grab()


def test_main_window_shows_a_hashed_runs_buckets(qtbot, window):
    window.side_tabs.setCurrentWidget(window.hashing)      # a tab not open is drawn when it is opened
    window.methods.set_stages([StageConfig("hashed", {"ratio": 0.125}, {"epochs": 1})])
    with qtbot.waitSignal(window.queue.finished, timeout=120_000) as blocker:
        window.run_button.click()
    finished = blocker.args[0]
    assert finished.status == "completed", finished.error
    qtbot.waitUntil(lambda: window.traces[finished.run_path].status == "completed", timeout=120_000)
    window.live_refresh.flush()
    trace = window.traces[finished.run_path]
    layer = window.hashing.shown_layer()
    assert layer and window.hashing.note.isHidden()
    recorded = [v for v in trace.layers[layer]["occupancy_hist"] if v is not None][-1]
    np.testing.assert_allclose(window.hashing.occupancy_heights(), recorded)
    assert recorded.sum() > 0
