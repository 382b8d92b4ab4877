"""The main window end to end, offscreen: runs in the background, live plots, cancel, files, export."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import h5py  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402

from workbench.core.config import StageConfig  # noqa: E402
from workbench.gui.compare_view import COLUMNS  # noqa: E402
from workbench.gui.export_dialog import ExportDialog  # noqa: E402
from workbench.gui.main_window import MainWindow  # noqa: E402

WAIT_MS = 120_000


def _stage(method="dns", epochs=3, **params):
    return StageConfig(method, params, {"epochs": epochs})


def test_short_run_shows_progress_points_and_a_finished_row(qtbot, window):
    window.methods.set_stages([_stage(c_rate=0.0)])
    assert window.run_button.isEnabled()
    live = []

    def on_point(path, ev):   # the live histogram draws the point just added, on the run's fixed edges
        assert "histogram" in window.live_refresh.pending()     # drawn in a later pass, not now
        window.live_refresh.flush()
        trace = window.traces[path]
        window.histogram.select("fc1", -1)
        live.append((len(trace.hist_edges["fc1"]) - 1, list(window.histogram.hist.getOriginalDataset()[1]),
                     list(trace.layers["fc1"]["hist_counts"][-1])))

    window.queue.point.connect(on_point)
    with qtbot.waitSignal(window.queue.finished, timeout=WAIT_MS) as blocker:
        window.run_button.click()
    finished = blocker.args[0]
    assert len(live) == 5
    for bins, drawn, counts in live:
        assert bins == len(counts) and drawn == pytest.approx(counts)
    assert finished.status == "completed", finished.error
    qtbot.waitUntil(lambda: window.traces.get(finished.run_path) is not None
                    and window.traces[finished.run_path].status == "completed", timeout=WAIT_MS)
    trace = window.traces[finished.run_path]
    # reference + 3 epochs + finalized, and the plots hold the trace's numbers
    assert trace.points == 5
    assert window.progress.value() == window.progress.maximum()
    assert window.progress.format() == "completed"
    xs, ys = window.ratio_plot.trajectory_data(trace.path)
    assert list(xs) == pytest.approx(list(trace.series("param_ratio")))
    row = window.compare._row_of(finished.run_path)
    status = [name for name, _ in COLUMNS].index("Status")
    assert row >= 0 and window.compare.table.item(row, status).text() == "completed"
    assert window.compare_plot.trajectory_data(trace.path)[0] == pytest.approx(xs)   # overlaid there too


def test_a_finished_run_read_back_updates_its_views_in_staggered_passes(qtbot, window, monkeypatch):
    """At a run's end its file is read back; rebuilding every view at once there was the run's longest
    GUI-thread stall. Its views now take the file's trace one per pass, and nothing is rebuilt."""
    window.methods.set_stages([_stage(epochs=1, c_rate=0.0)])
    with qtbot.waitSignal(window.queue.finished, timeout=WAIT_MS) as blocker:
        window.run_button.click()
    path = blocker.args[0].run_path
    rebuilt, pending = [], []
    monkeypatch.setattr(window.ratio_plot, "set_traces", lambda traces: rebuilt.append(traces))
    real = window.refresh_run

    def refresh_run(p):
        real(p)
        pending.extend(window.live_refresh.pending())

    monkeypatch.setattr(window, "refresh_run", refresh_run)
    qtbot.waitUntil(lambda: window.traces[path].status == "completed", timeout=WAIT_MS)
    trace = window.traces[path]
    assert f"ratio:{path}" in pending and f"curves:{path}" in pending and "histogram" in pending
    qtbot.waitUntil(lambda: not window.live_refresh.pending(), timeout=5000)
    assert rebuilt == []
    assert window.ratio_plot._runs[path].trace is trace and window.histogram._trace is trace
    assert window.curves._curves[path][0] is trace


def test_cancel_marks_the_run_cancelled(qtbot, window):
    window.methods.set_stages([_stage(epochs=500)])
    with qtbot.waitSignal(window.queue.point, timeout=WAIT_MS):   # the reference point: running now
        window.run_button.click()
    assert window.cancel_button.isEnabled()
    with qtbot.waitSignal(window.queue.finished, timeout=WAIT_MS) as blocker:
        window.cancel_button.click()
    finished = blocker.args[0]
    assert finished.status == "cancelled", (finished.status, finished.error)
    with h5py.File(finished.run_path, "r", locking=False) as f:   # the app may be reading it too
        assert f.attrs["status"] == "cancelled"


def test_invalid_parameter_disables_run(qtbot, window):
    window.methods.set_stages([_stage(band_low=0.9, band_high=1.1)])
    assert window.run_button.isEnabled()
    window.methods.set_stages([_stage(band_low=1.5, band_high=1.1)])
    assert not window.run_button.isEnabled()
    assert "band" in window.run_button.toolTip() or "a_k" in window.run_button.toolTip()


def test_a_pipeline_preset_brings_its_stages_model_data_and_huffman(qtbot, window):
    assert window.setup.config_parts()["huffman"] is False
    window.methods.load_preset("deep-compression-lenet300")
    cfg = window.current_config()
    assert [s.method for s in cfg.stages] == ["magnitude", "kmeans"]
    assert cfg.huffman and cfg.model == "lenet300" and cfg.dataset == "mnist"
    assert cfg.stages[1].params["bits_fc"] == 5 and cfg.stages[0].train["epochs"] == 40


def test_open_existing_run_file_and_export(qtbot, window, tmp_path):
    window.methods.set_stages([_stage(epochs=1, c_rate=0.0)])
    with qtbot.waitSignal(window.queue.finished, timeout=WAIT_MS) as blocker:
        window.run_button.click()
    path = blocker.args[0].run_path
    other = MainWindow(QSettings(str(tmp_path / "other.ini"), QSettings.IniFormat))
    qtbot.addWidget(other)
    other.open_runs([path])
    qtbot.waitUntil(lambda: path in other.traces, timeout=WAIT_MS)
    assert other.compare._row_of(path) >= 0
    assert other.traces[path].status == "completed"
    # nothing was shown before, so the opened run fills the per-layer plots without a click in Compare
    assert other.focus_path == path and other.histogram._trace is other.traces[path]
    qtbot.waitUntil(lambda: other.kept._trace is other.traces[path], timeout=5000)    # the open side tab
    other.queue.shutdown()

    dialog = ExportDialog(path, window)
    qtbot.addWidget(dialog)
    dialog.format.setCurrentText("compact")
    dialog.path.setText(str(tmp_path / "model.cwbc"))
    with qtbot.waitSignal(dialog._signals.done, timeout=WAIT_MS):
        dialog.export_button.click()
    assert (tmp_path / "model.cwbc").stat().st_size == dialog.result.size_bytes
    assert "bytes on disk" in dialog.status.text()
    dialog.show()
    qtbot.waitExposed(dialog)
    status = dialog.status                    # the whole result is shown, not cut to one line
    assert status.height() >= status.heightForWidth(status.width()) and status.width() <= dialog.width()


def test_side_tabs_follow_the_histogram_in_their_own_pass_and_a_closed_tab_when_opened(qtbot, window):
    """The open side tab redraws in a pass after the histogram's, the others not until they are opened:
    all four redrawn in the histogram's pass made the longest GUI-thread stalls of a run."""
    window.methods.set_stages([_stage(epochs=1, c_rate=0.0)])
    with qtbot.waitSignal(window.queue.finished, timeout=WAIT_MS):
        window.run_button.click()
    window.live_refresh.flush()
    redrawn = []
    for name in ("kept", "mixture", "spectrum", "hashing"):
        plot = getattr(window, name)
        plot._redraw = lambda name=name, real=plot._redraw: (redrawn.append(name), real())[1]
    layers = list(window.histogram._trace.layers)
    window.histogram.layer_combo.setCurrentText(layers[-1])          # the user picks another layer
    assert redrawn == [] and "follow:kept" in window.live_refresh.pending()
    window.live_refresh.flush()
    assert redrawn == ["kept"] and window.kept._selected == layers[-1]
    window.side_tabs.setCurrentWidget(window.spectrum)             # opened: drawn once, for that layer
    window.live_refresh.flush()
    assert redrawn == ["kept", "spectrum"] and window.spectrum._layer == layers[-1]
    window.side_tabs.setCurrentWidget(window.kept)                 # nothing changed since: not redrawn
    window.live_refresh.flush()
    assert redrawn == ["kept", "spectrum"]


def test_setup_and_method_persist_between_sessions(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "persist.ini"), QSettings.IniFormat)
    first = MainWindow(settings)
    qtbot.addWidget(first)
    first.setup.set_parts({"model": "cnn_tiny", "dataset": "tiny", "data_dir": str(tmp_path)})
    first.methods.select_method("magnitude")
    first.close()
    second = MainWindow(QSettings(str(tmp_path / "persist.ini"), QSettings.IniFormat))
    qtbot.addWidget(second)
    parts = second.setup.config_parts()
    assert (parts["model"], parts["dataset"], parts["data_dir"]) == ("cnn_tiny", "tiny", str(tmp_path))
    assert second.methods.current_method() == "magnitude"
    second.queue.shutdown()


def test_a_stalled_stage_stays_on_screen(qtbot, window, monkeypatch):
    """The runner's stall notice is a warning: it stays in the window (not an 8-second status line)."""
    from workbench.engine import runner
    real, calls = runner.evaluate, []

    def at_chance_after_the_reference(model, x, y):
        calls.append(1)
        return real(model, x, y) if len(calls) == 1 else (0.0, 2.3)

    monkeypatch.setattr(runner, "evaluate", at_chance_after_the_reference)
    window.methods.set_stages([_stage("plain", epochs=2)])
    with qtbot.waitSignal(window.queue.finished, timeout=WAIT_MS) as blocker:
        window.run_button.click()
    finished = blocker.args[0]
    assert finished.status == "completed"
    assert "stage 1 (plain): test accuracy 0.0% after epoch 1" in window.error_label.text()
    assert "training has stalled" in window.error_label.text()
    assert window.statusBar().currentMessage().startswith("run completed with a warning: stage 1 (plain)")
    status = [name for name, _ in COLUMNS].index("Status")    # and the comparison table marks the run
    qtbot.waitUntil(lambda: window.compare.table.item(window.compare._row_of(finished.run_path), status)
                    .text() == "completed (warning)", timeout=WAIT_MS)
    item = window.compare.table.item(window.compare._row_of(finished.run_path), status)
    assert "training has stalled" in item.toolTip()
