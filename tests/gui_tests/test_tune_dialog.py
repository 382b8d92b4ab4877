"""The Tune dialog on mlp_tiny / tiny (1 epoch, 256 training samples): pre-filled space, a study run off
the GUI thread with its trials in the table, cancel, and a bad range refused in one line."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt

from workbench.core.config import RunConfig, StageConfig
from workbench.core.store import read_run
from workbench.engine.tune_space import build_space
from workbench.gui.tune_dialog import TuneDialog


def _config(tmp_path) -> RunConfig:
    return RunConfig(dataset="tiny", stages=[StageConfig("magnitude", {}, {"epochs": 1})], model="mlp_tiny",
                     device="cpu", pretrain_epochs=2, train_subset=256, out_dir=str(tmp_path / "runs"))


@pytest.fixture
def dialog(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    opened: list[list[str]] = []
    d = TuneDialog(_config(tmp_path), opened.append)
    d.opened = opened
    qtbot.addWidget(d)
    yield d
    assert d.shutdown(), "the study's thread did not stop"


def test_opens_prefilled_with_the_methods_default_space(dialog):
    dims = build_space(dialog.config).dims
    assert dialog.space.knobs() == [d.name for d in dims]
    assert "q_fc" in dialog.space.knobs() and "lr" in dialog.space.knobs()
    # every row checked: the entries read back are the default space itself
    assert dialog.space.entries() == [d.text() for d in dims]
    # unchecking a row leaves it out of the study
    dialog.space.set_checked("iterations", False)
    assert "iterations" not in [d.name for d in build_space(dialog.config, dialog.space.entries(),
                                                            defaults=False).dims]
    assert not dialog.isModal()
    assert dialog.out.text().endswith("tune")


def test_start_runs_trials_off_the_gui_thread(dialog, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    dialog.trials.setValue(2)
    dialog.objective.setCurrentText("accuracy-ratio")
    dialog.out.setText(str(tmp_path / "study"))
    dialog.start()
    assert dialog.running and not dialog.start_button.isEnabled()
    qtbot.waitUntil(lambda: not dialog.running, timeout=240_000)
    assert dialog.error_label.text() == ""
    assert dialog.worker.thread_ident not in (None, threading.main_thread().ident)
    assert dialog.table.rowCount() == 2
    for number, r in dialog.table.results.items():
        assert r.state == "complete"
        summary = read_run(r.run).summary
        assert r.accuracy == pytest.approx(summary["test_accuracy"])
        row = dialog.table.row_of(number)
        assert dialog.table.item(row, 2).text() == f"{100 * summary['test_accuracy']:.2f}%"
    # the Pareto front is highlighted, the others are not
    assert dialog.table.best
    for number in dialog.table.results:
        shaded = dialog.table.item(dialog.table.row_of(number), 0).background().style() != Qt.NoBrush
        assert shaded == (number in dialog.table.best)
    # Open in Compare hands the selected trials' run files to the window
    dialog.table.selectionModel().select(dialog.table.model().index(0, 0),
                                         QItemSelectionModel.Select | QItemSelectionModel.Rows)
    dialog.open_selected()
    assert dialog.opened == [[dialog.table.results[min(dialog.table.results)].run]]


def test_cancel_mid_study_keeps_the_journal_and_the_dialog_usable(dialog, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    dialog.trials.setValue(20)
    dialog.objective.setCurrentText("accuracy-ratio")
    dialog.out.setText(str(tmp_path / "study"))
    dialog.start()
    qtbot.waitUntil(lambda: dialog.table.rowCount() >= 1, timeout=240_000)
    dialog.cancel()
    qtbot.waitUntil(lambda: not dialog.running, timeout=120_000)
    assert dialog.tuner.storage_path.exists()
    assert dialog.result is not None and len(dialog.result.trials) < 20
    assert dialog.start_button.isEnabled() and not dialog.cancel_button.isEnabled()
    assert dialog.space.isEnabled()
    assert dialog.error_label.text() == ""
    # usable: Start again resumes the same study from its journal and runs more trials
    before = len(dialog.result.trials)
    dialog.trials.setValue(before + 1)
    dialog.start()
    qtbot.waitUntil(lambda: not dialog.running, timeout=240_000)
    assert dialog.error_label.text() == ""
    assert dialog.result.ran >= 1 and len(dialog.result.trials) == before + dialog.result.ran
    assert dialog.result.trials[-1].state == "complete"
    assert dialog.table.rowCount() == len(dialog.result.trials)      # earlier trials shown too


def test_a_bad_range_is_one_line_and_starts_nothing(dialog, tmp_path):
    dialog.out.setText(str(tmp_path / "study"))
    dialog.space.set_cell("q_fc", "low", "3")
    dialog.space.set_cell("q_fc", "high", "1")
    dialog.start()
    text = dialog.error_label.text()
    assert "q_fc" in text and "empty" in text and "\n" not in text
    assert not dialog.running and dialog.tuner is None
    assert not (tmp_path / "study").exists()


def test_tune_button_opens_the_dialog_with_the_current_setup(window, qtbot):
    qtbot.mouseClick(window.tune_button, Qt.LeftButton)
    d = window.tune_dialog
    assert d is not None and d.isVisible()
    assert d.config.model == "mlp_tiny" and d.config.dataset == "tiny"
    assert d.space.knobs() == [x.name for x in build_space(window.current_config()).dims]
    assert window.tune_button.parentWidget() is window.run_bar
    d.shutdown()
