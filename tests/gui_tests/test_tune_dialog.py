"""The Tune dialog on mlp_tiny / tiny (1 epoch, 256 training samples): pre-filled space, a study run off
the GUI thread with its trials in the table (running rows with their progress first), the study's options
reaching the Tuner, cancel, the parallel-coordinates tab, and bad input refused in one line."""

from __future__ import annotations

import threading
from collections import defaultdict

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt

from workbench.core.config import RunConfig, StageConfig
from workbench.core.events import Evaluated
from workbench.core.store import read_run
from workbench.engine.tune import RayOptions
from workbench.engine.tune_space import build_space
from workbench.gui import tune_options
from workbench.gui.tune_dialog import TuneDialog
from workbench.gui.tune_options import NEEDS_RAY, NO_PRUNING, RAY_CLUSTER, RAY_LOCAL
from workbench.gui.window_state import fit_to_screen


def _config(tmp_path, epochs: int = 1) -> RunConfig:
    return RunConfig(dataset="tiny", stages=[StageConfig("magnitude", {}, {"epochs": epochs})], model="mlp_tiny",
                     device="cpu", pretrain_epochs=2, train_subset=256, out_dir=str(tmp_path / "runs"))


@pytest.fixture
def dialog(qtbot, tmp_path, monkeypatch, request):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    opened: list[list[str]] = []
    d = TuneDialog(_config(tmp_path, getattr(request, "param", 1)), opened.append)
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
    # Promote to preset… hands the selected trial's run file to the promote dialog, then tells the window
    import workbench.gui.tune_dialog as td

    asked, told = [], []
    monkeypatch.setattr(td, "promote_run", lambda parent, path: asked.append(path) or "my-trial")
    dialog.promoted = told.append
    dialog.promote_selected()
    assert asked == dialog.opened[0] and told == ["my-trial"] and "saved preset my-trial" in dialog.status_label.text()
    dialog.table.clearSelection()
    dialog.promote_selected()
    assert len(asked) == 1 and dialog.error_label.text() == "select one finished trial to promote"


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


@pytest.mark.parametrize("dialog", [3], indirect=True)          # three epochs per trial
def test_rows_appear_running_with_their_progress_then_their_result(dialog, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    dialog.trials.setValue(2)
    dialog.objective.setCurrentText("accuracy-ratio")
    dialog.out.setText(str(tmp_path / "study"))
    seen: dict[int, list[str]] = defaultdict(list)
    accuracy_cell: dict[int, str] = {}
    run_cell: dict[int, str] = {}
    threads = set()
    shown = defaultdict(threading.Event)

    def on_state(number: int, text: str) -> None:
        threads.add(threading.get_ident())
        seen[number].append(text)
        if "epoch 2/3" in text:
            row = dialog.table.row_of(number)
            accuracy_cell[number] = dialog.table.item(row, 2).text()
            run_cell[number] = dialog.table.item(row, 5).text()
            shown[number].set()

    dialog.table.state_shown.connect(on_state)
    # Each trial waits after its second epoch's evaluation until the table shows it (at most 30 s), so the
    # test sees the running row whatever the machine's speed; the events are the trial's real run events.
    record = dialog.live.event

    def held(number, event):
        record(number, event)
        if isinstance(event, Evaluated) and event.label == "epoch" and event.epoch == 2:
            shown[number].wait(30)

    dialog.live.event = held
    dialog.start()
    qtbot.waitUntil(lambda: not dialog.running, timeout=240_000)
    assert dialog.error_label.text() == ""
    assert threads == {threading.main_thread().ident}       # the GUI thread fills every row
    assert sorted(seen) == [0, 1]
    for number, states in seen.items():
        assert states[0] == "running"                       # the row appears when the trial is launched
        live = [s for s in states if s.startswith("running, epoch")]
        assert "running, epoch 2/3" in " ".join(live), states
        assert all(s.endswith("% done") for s in live)
        assert accuracy_cell[number].endswith("%") and accuracy_cell[number] != "--"
        assert run_cell[number].endswith(f"trial-{number:04d}.h5")     # the run file being written
        assert states[-1] == "complete"
        final = dialog.table.results[number]
        assert dialog.table.item(dialog.table.row_of(number), 4).text() == "complete"
        assert dialog.table.item(dialog.table.row_of(number), 2).text() == f"{100 * final.accuracy:.2f}%"
    # the parallel-coordinates tab: one line per finished trial, through its knobs and outcomes
    dialog.tabs.setCurrentWidget(dialog.plot)
    curves = dialog.plot.curves()
    assert sorted(curves) == [0, 1]
    assert all(len(ys) == len(dialog.tuner.space.dims) + 2 for ys, _ in curves.values())


def test_options_reach_the_tuner(dialog, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    dialog.trials.setValue(2)
    dialog.objective.setCurrentText("ratio-at-drop=100")
    assert dialog.options.pruner.isEnabled() and dialog.options.note.text() == ""
    dialog.options.sampler.setCurrentText("gp")
    dialog.options.pruner.setCurrentText("none")
    dialog.out.setText(str(tmp_path / "study"))
    dialog.start()
    assert (dialog.tuner.sampler_name, dialog.tuner.pruner_spec, dialog.tuner.ray) == ("gp", "none", None)
    assert not dialog.options.sampler.isEnabled()           # options are fixed while the study runs
    qtbot.waitUntil(lambda: not dialog.running, timeout=240_000)
    assert dialog.error_label.text() == ""
    assert [t.state for t in dialog.result.trials] == ["complete", "complete"]
    assert dialog.options.sampler.isEnabled()


def test_two_objectives_say_that_pruning_does_not_apply(dialog):
    dialog.objective.setCurrentText("accuracy-ratio")
    assert not dialog.options.pruner.isEnabled()
    assert dialog.options.note.text() == NO_PRUNING and "\n" not in NO_PRUNING
    assert dialog.options.tuner_args()["pruner"] == "none"
    dialog.objective.setCurrentText("accuracy-at-ratio=10")
    assert dialog.options.pruner.isEnabled() and dialog.options.note.text() == ""
    assert dialog.options.tuner_args()["pruner"] == "median"


def test_ray_without_ray_installed_is_one_line_and_starts_nothing(dialog, tmp_path, monkeypatch):
    monkeypatch.setattr(tune_options, "ray_available", lambda: False)
    dialog.out.setText(str(tmp_path / "study"))
    for where in (RAY_LOCAL, RAY_CLUSTER):
        dialog.options.where.setCurrentIndex(where)
        assert NEEDS_RAY in dialog.options.note.text()
        dialog.options.address.setText("head:6379")
        dialog.start()
        assert dialog.error_label.text() == NEEDS_RAY
        assert not dialog.running and dialog.tuner is None
    assert not (tmp_path / "study").exists()
    dialog.options.where.setCurrentIndex(0)
    assert NEEDS_RAY not in dialog.options.note.text()


def test_ray_choices_become_ray_options(dialog, monkeypatch):
    monkeypatch.setattr(tune_options, "ray_available", lambda: True)
    o = dialog.options
    assert o.tuner_args()["ray"] is None and not o.workers.isEnabled() and not o.address.isEnabled()
    o.where.setCurrentIndex(RAY_LOCAL)
    o.workers.setValue(2)
    assert o.workers.isEnabled() and not o.address.isEnabled() and o.gpus.isEnabled()
    assert o.tuner_args()["ray"] == RayOptions("local", workers=2, gpus_per_trial=0.0)
    o.where.setCurrentIndex(RAY_CLUSTER)
    dialog.start()                                           # no address: one line, nothing started
    assert "address" in dialog.error_label.text() and dialog.tuner is None
    o.address.setText(" ray://head:10001 ")
    o.gpus.setValue(0.5)
    assert o.tuner_args()["ray"] == RayOptions("ray://head:10001", workers=0, gpus_per_trial=0.5)


def test_choice_knobs_round_trip_through_the_space_table(qtbot, tmp_path):
    config = RunConfig(dataset="tiny", stages=[StageConfig("kmeans", {}, {"epochs": 1})], model="mlp_tiny",
                       out_dir=str(tmp_path))
    d = TuneDialog(config, lambda runs: None)
    qtbot.addWidget(d)
    dims = build_space(config).dims
    assert any(x.choices for x in dims)
    assert d.space.entries() == [x.text() for x in dims]     # init=linear|density|random stays a choice
    assert d.shutdown()


def test_the_dialog_keeps_its_title_bar_on_the_screen(dialog):
    """Centred over the window at 1280x800 its frame began above the screen (no title bar to drag)."""
    avail = dialog.screen().availableGeometry()
    dialog.setGeometry(avail.x() + 100, avail.y() - 20, 900, avail.height() + 100)
    fit_to_screen(dialog)
    geo = dialog.geometry()
    assert geo.y() >= avail.y() + 30 and geo.bottom() <= avail.bottom()
    assert geo.x() >= avail.x() and geo.right() <= avail.right()
