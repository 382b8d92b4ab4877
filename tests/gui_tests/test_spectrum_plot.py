"""The Spectrum tab draws what low-rank runs record: hand-made spectra with known energies, real runs (one
through the main window, one read back from its file, and that file with the energy series removed, as an
older run file has it)."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import shutil  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("pytestqt")


from workbench.core.config import RunConfig, StageConfig  # noqa: E402
from workbench.core.events import Evaluated, Finished  # noqa: E402
from workbench.core.store import read_run  # noqa: E402
from workbench.engine.runner import execute  # noqa: E402
from workbench.gui.plots import HistogramView, SpectrumPlot  # noqa: E402
from workbench.gui.run_trace import RunTrace  # noqa: E402

# Per point (reference, epoch 1, finalized): fc1 is 4 x 6 (full rank 4), fc2 is 3 x 5 (full rank 3).
SIGMA = {"fc1": [np.array([4.0, 3.0, 2.0, 1.0]), np.array([4.0, 2.0, 1.0, 1.0]), np.array([4.0, 2.0, 1.0, 0.0])],
         "fc2": [np.array([3.0, 2.0, 1.0]), np.array([3.0, 1.0, 0.5]), np.array([3.0, 1.0, 0.0])]}
RANK = {"fc1": [4.0, 3.0, 3.0], "fc2": [3.0, 2.0, 2.0]}
NUMERICAL = {"fc1": [4.0, 4.0, 3.0], "fc2": [3.0, 3.0, 2.0]}
LABELS = ("reference", "epoch", "finalized")
ENERGY_SERIES = ("energy_threshold", "energy_power", "cumulative_energy", "energy_rank")


def energy_series(sigma, threshold, power):
    """What lowrank records of the threshold at one point (methods/lowrank.py, layer_spectra)."""
    e = np.asarray(sigma, float) ** power
    curve = np.cumsum(e) / e.sum()
    return {"energy_threshold": threshold, "energy_power": float(power), "cumulative_energy": curve,
            "energy_rank": float(np.argmax(curve >= threshold - 1e-9) + 1)}


def lowrank_trace(energy=0.9, power=1, spectra=True, method="lowrank", points=3, params=None):
    """A trace built through add_point as the live GUI builds it; conv1 records no spectrum. `energy`: the
    threshold recorded at every point, or one per point; None: no energy series (an older run file).
    `params` only fills the config, which the plot must not read."""
    trace = RunTrace(path=f"/runs/{method}.h5", label=method, method=method, model="lenet300")
    trace.config = {"stages": [{"method": method, "params": dict(params or {}), "train": {"epochs": 1}}]}
    thresholds = energy if isinstance(energy, (list, tuple)) else [energy] * points
    for i in range(points):
        layers = {"conv1": {"kept_fraction": 1.0}}
        for name in ("fc1", "fc2"):
            layers[name] = {"kept_fraction": 1.0}
            if spectra:
                layers[name].update(singular_values=SIGMA[name][i], rank=RANK[name][i],
                                    numerical_rank=NUMERICAL[name][i])
                if thresholds[i] is not None:
                    layers[name].update(energy_series(SIGMA[name][i], thresholds[i], power))
        trace.add_point(Evaluated(stage=0, epoch=i, step=10 * i, label=LABELS[i], layers=layers,
                                  metrics={"step": 10 * i, "epoch": i, "stage": 0, "test_accuracy": 0.9}))
    return trace


@pytest.fixture
def plot(qtbot):
    widget = SpectrumPlot()
    qtbot.addWidget(widget)
    return widget


def test_draws_the_chosen_points_spectrum_with_the_first_behind(plot):
    trace = lowrank_trace()
    plot.set_trace(trace)                                    # the last point of the first spectral layer
    assert plot.spectrum_layer() == "fc1" and plot.shown_point() == 2
    x, y = plot.sigma_curve.getData()
    np.testing.assert_allclose(x, [1, 2, 3, 4])
    np.testing.assert_allclose(y, SIGMA["fc1"][2])
    np.testing.assert_allclose(plot.first_curve.getData()[1], SIGMA["fc1"][0])
    assert plot.first_curve.isVisible() and plot.note.isHidden()
    view = HistogramView()
    view.shown.connect(plot.follow)
    view.set_trace(trace)
    view.select("fc2", 1)
    assert plot.spectrum_layer() == "fc2"
    np.testing.assert_allclose(plot.sigma_curve.getData()[1], SIGMA["fc2"][1])
    assert len(plot.energy_curve.getData()[0]) == 3
    view.select("conv1", 1)                                  # no spectrum there: the first layer with one
    assert plot.spectrum_layer() == "fc1"
    np.testing.assert_allclose(plot.sigma_curve.getData()[1], SIGMA["fc1"][1])
    view.select("fc1", 0)                                    # the first point: nothing drawn behind it
    assert not plot.first_curve.isVisible()
    view.deleteLater()


def test_threshold_and_energy_rank_are_the_points_recorded_series(plot):
    # the config says 0.5 (and would default to 0.9): the plot reads the series, never the config
    plot.set_trace(lowrank_trace([0.7, 0.8, 0.95], params={"energy": 0.5}))
    assert plot.shown_point() == 2 and plot.threshold_line.isVisible()
    assert plot.threshold_line.value() == pytest.approx(0.95)
    # fc1 at point 2: sigma 4, 2, 1, 0 -> 4/7, 6/7, 1, 1 reaches 0.95 at 3
    np.testing.assert_allclose(plot.energy_curve.getData()[1], [4 / 7, 6 / 7, 1, 1])
    assert plot.energy_rank_line.value() == 3 and plot.energy_rank_line.isVisible()
    assert plot.rank_line.value() == 3 and plot.numerical_line.value() == 3
    plot.set_layer("fc1", 1)                                 # sigma 4, 2, 1, 1 -> .5, .75, .875, 1 at 0.8
    assert plot.threshold_line.value() == pytest.approx(0.8)
    np.testing.assert_allclose(plot.energy_curve.getData(), [[1, 2, 3, 4], [0.5, 0.75, 0.875, 1]])
    assert plot.energy_rank_line.value() == 3 and plot.rank_line.value() == 3
    assert plot.numerical_line.value() == 4
    plot.set_layer("fc2", 0)                                 # sigma 3, 2, 1 -> .5, .833, 1 at 0.7
    assert plot.threshold_line.value() == pytest.approx(0.7)
    assert plot.energy_rank_line.value() == 2                # where the threshold cuts; the recorded rank: 3
    assert plot.rank_line.value() == 3 and plot.numerical_line.value() == 3


def test_energy_power_labels_the_recorded_cumulative_curve(plot):
    plot.set_trace(lowrank_trace(power=1))
    plot.set_layer("fc1", 1)                                 # sigma 4, 2, 1, 1
    np.testing.assert_allclose(plot.energy_curve.getData()[1], np.array([4, 6, 7, 8]) / 8)
    assert "Σσ)" in plot.energy_plot.getAxis("left").labelText
    plot.set_trace(lowrank_trace(power=2), point=1)
    np.testing.assert_allclose(plot.energy_curve.getData()[1], np.array([16, 20, 21, 22]) / 22)
    assert "Σσ²" in plot.energy_plot.getAxis("left").labelText
    assert plot.energy_rank_line.value() == 2                # 20/22 >= 0.9


def test_a_trace_without_energy_series_draws_the_spectrum_and_ranks_only(plot):
    plot.set_trace(lowrank_trace(energy=None))               # as an older run file has it
    assert plot.note.isHidden() and not plot.view.isHidden()
    np.testing.assert_allclose(plot.sigma_curve.getData()[1], SIGMA["fc1"][2])
    assert plot.rank_line.isVisible() and plot.rank_line.value() == 3
    assert plot.numerical_line.isVisible() and plot.numerical_line.value() == 3
    assert not plot.threshold_line.isVisible() and not plot.energy_rank_line.isVisible()
    x, _ = plot.energy_curve.getData()
    assert x is None or len(x) == 0
    assert plot.energy_plot.getAxis("left").labelText == "energy kept"
    assert plot.energy_plot.titleLabel.isVisible() and "not recorded" in plot.energy_plot.titleLabel.text
    np.testing.assert_allclose(plot.bar_heights(), [100 * 3 / 4, 100 * 2 / 3])
    plot.grab()                                              # paints without error
    plot.set_trace(lowrank_trace([None, 0.8, None]), point=1)   # recorded at one point only
    assert plot.threshold_line.isVisible() and not plot.energy_plot.titleLabel.isVisible()
    plot.set_layer("fc1", 2)
    assert not plot.threshold_line.isVisible() and not plot.energy_rank_line.isVisible()


def test_bars_are_rank_over_full_rank_per_spectral_layer(plot):
    trace = lowrank_trace()
    plot.set_trace(trace)
    assert plot.bar_layers() == ["fc1", "fc2"]                # conv1 records no spectrum
    np.testing.assert_allclose(plot.bar_heights(), [100 * 3 / 4, 100 * 2 / 3])
    assert plot.bar_texts() == ["3/4", "2/3"]
    ticks = plot.bars_plot.getAxis("bottom")._tickLevels[0]
    assert [name for _, name in ticks] == ["fc1", "fc2"]
    plot.set_layer("fc2", 0)
    np.testing.assert_allclose(plot.bar_heights(), [100, 100])
    assert plot.bar_texts() == ["4/4", "3/3"]


def test_live_update_follows_the_newest_point_only_when_there(plot):
    trace = lowrank_trace(points=2)
    plot.set_trace(trace)
    trace.add_point(Evaluated(stage=0, epoch=2, step=20, label="finalized", metrics={"step": 20, "epoch": 2},
                              layers={"fc1": {"singular_values": SIGMA["fc1"][2], "rank": 3.0}}))
    plot.update_trace(trace)
    assert plot.shown_point() == 2
    plot.set_layer("fc1", 2)                                 # the histogram at the last point, explicitly
    trace.add_point(Evaluated(stage=0, epoch=3, step=30, label="epoch", metrics={"step": 30, "epoch": 3},
                              layers={"fc1": {"singular_values": np.ones(4), "rank": 4.0}}))
    plot.update_trace(trace)
    assert plot.shown_point() == 3 and plot.rank_line.value() == 4
    plot.set_layer("fc1", 1)
    trace.add_point(Evaluated(stage=0, epoch=4, step=40, label="epoch", metrics={"step": 40, "epoch": 4}))
    plot.update_trace(trace)
    assert plot.shown_point() == 1
    plot.set_layer("fc1", 4)                                 # no spectrum at point 4: the nearest earlier
    assert plot.shown_point() == 3


def test_note_for_runs_without_spectra(plot):
    plot.set_trace(lowrank_trace(spectra=False))
    assert not plot.note.isHidden() and plot.view.isHidden()
    assert plot.sigma_curve.getData()[0] is None or len(plot.sigma_curve.getData()[0]) == 0
    plot.set_trace(lowrank_trace())
    assert plot.note.isHidden() and not plot.view.isHidden()
    empty = RunTrace(path="/runs/empty.h5", label="empty", method="lowrank")
    plot.set_trace(empty)
    plot.update_trace(empty)
    assert not plot.note.isHidden()
    plot.grab()                                              # paints without error


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    """A real lowrank run on `tiny` (energy of sigma^2 at 0.85), its file written by the runner."""
    root = tmp_path_factory.mktemp("spectrum-run")
    config = RunConfig(dataset="tiny", model="mlp_tiny", out_dir=str(root / "runs"), device="cpu",
                       pretrain_epochs=1, stages=[StageConfig("lowrank", {"tau": 0.05, "energy": 0.85,
                                                                          "energy_of": "sigma2"}, {"epochs": 1})])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_CACHE", str(root / "cache"))
        events = list(execute(config))
    fin = events[-1]
    assert isinstance(fin, Finished) and fin.status == "completed", fin
    return fin.run_path


def test_a_real_run_files_energy_series_are_what_is_drawn(plot, run_file):
    run = read_run(run_file)
    plot.set_trace(RunTrace.from_run(run))
    layer = plot.spectrum_layer()
    recorded = run.layers[layer]
    for point in (plot.shown_point(), 0):                    # the finalized point, then the reference
        plot.set_layer(layer, point)
        assert plot.shown_point() == point
        np.testing.assert_allclose(plot.sigma_curve.getData()[1], recorded["singular_values"][point])
        np.testing.assert_allclose(plot.energy_curve.getData()[1], recorded["cumulative_energy"][point])
        assert plot.threshold_line.value() == pytest.approx(0.85) == recorded["energy_threshold"][point]
        assert plot.energy_rank_line.value() == recorded["energy_rank"][point]
        assert plot.rank_line.value() == recorded["rank"][point]
        assert "Σσ²" in plot.energy_plot.getAxis("left").labelText


def test_a_run_file_without_the_energy_series_still_draws(plot, run_file, tmp_path):
    old = tmp_path / "old.h5"
    shutil.copy(run_file, old)
    with h5py.File(old, "r+") as f:                          # as written before these series existed
        for group in f["layers"].values():
            for name in ENERGY_SERIES:
                if name in group:
                    del group[name]
    run = read_run(old)
    assert not any(name in entry for entry in run.layers.values() for name in ENERGY_SERIES)
    trace = RunTrace.from_run(run)
    plot.set_trace(trace)
    layer, point = plot.spectrum_layer(), plot.shown_point()
    assert layer and point == trace.points - 1 and plot.note.isHidden()
    np.testing.assert_allclose(plot.sigma_curve.getData()[1], run.layers[layer]["singular_values"][point])
    assert plot.rank_line.value() == run.layers[layer]["rank"][point]
    assert not plot.threshold_line.isVisible() and not plot.energy_rank_line.isVisible()
    assert plot.bar_layers() == [n for n in run.layers if "singular_values" in run.layers[n]]
    plot.grab()


def test_main_window_feeds_the_spectrum_tab_during_a_lowrank_run(qtbot, window):
    side = window.spectrum.parentWidget().parentWidget()
    assert [side.tabText(i) for i in range(side.count())] == ["Kept per layer", "Mixture", "Spectrum", "Hashing"]
    window.setup.set_parts({"pretrain_epochs": 1})
    window.methods.set_stages([StageConfig("lowrank", {"tau": 0.05, "energy": 0.8}, {"epochs": 1})])
    side.setCurrentWidget(window.spectrum)                 # a tab not open is drawn when it is opened
    seen = []

    def on_point(path, ev):
        assert "histogram" in window.live_refresh.pending()
        window.live_refresh.flush()                        # the histogram, then the spectrum following it
        trace = window.traces[path]
        layer = window.spectrum.spectrum_layer()
        seen.append((window.spectrum.shown_point(), trace.points - 1,
                     list(window.spectrum.sigma_curve.getData()[1]),
                     list(trace.layers[layer]["singular_values"][-1])))

    window.queue.point.connect(on_point)
    with qtbot.waitSignal(window.queue.finished, timeout=120_000) as blocker:
        window.run_button.click()
    finished = blocker.args[0]
    assert finished.status == "completed", finished.error
    assert len(seen) == 3                                # reference, epoch 1, finalized
    for shown, last, drawn, recorded in seen:
        assert shown == last and drawn == pytest.approx(recorded)
    # The finished run is read back from its file and shown again from there.
    qtbot.waitUntil(lambda: window.traces[finished.run_path].status == "completed", timeout=120_000)
    trace = window.traces[finished.run_path]
    qtbot.waitUntil(lambda: window.spectrum._trace is trace, timeout=5000)     # in the staggered passes
    assert window.spectrum.note.isHidden()
    assert window.spectrum.threshold_line.value() == pytest.approx(0.8)
    layer = window.spectrum.spectrum_layer()
    assert window.spectrum.rank_line.value() == trace.layers[layer]["rank"][-1]
    assert window.spectrum.bar_layers() == [n for n in trace.layers if "singular_values" in trace.layers[n]]
