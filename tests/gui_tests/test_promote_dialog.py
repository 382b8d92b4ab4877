"""The Promote dialog (issue 17): a finished tiny run's settings shown read-only, the name checked as
typed (a shipped name refused in one line, Save off), Save writes the user preset and returns its name;
a file that is not a finished run shows why and offers no Save."""

from __future__ import annotations

import pytest
import torch
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from workbench.core.config import RunConfig, StageConfig
from workbench.core.events import Finished
from workbench.core.presets import get_preset, list_presets
from workbench.engine.runner import execute
from workbench.gui.promote_dialog import PromoteDialog, promote_run, suggested_name


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    """A finished magnitude run on mlp_tiny / tiny, 1 epoch, with its own reference cache."""
    root = tmp_path_factory.mktemp("promote-gui")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_CACHE", str(root / "cache"))
        config = RunConfig(dataset="tiny", stages=[StageConfig("magnitude", {"q_fc": 1.5}, {"epochs": 1})],
                           model="mlp_tiny", out_dir=str(root / "runs"), device="cpu", pretrain_epochs=2,
                           name="tiny run #1")
        fin = list(execute(config))[-1]
    torch.set_num_threads(threads)
    assert isinstance(fin, Finished) and fin.status == "completed", fin
    return fin.run_path



def test_save_writes_the_preset_and_lists_it(qtbot, folder, run_path):
    dialog = PromoteDialog(run_path)
    qtbot.addWidget(dialog)
    assert dialog.name.text() == suggested_name(run_path) == "tiny-run-1"
    summary = dialog.summary.toPlainText()
    for text in ("mlp_tiny on tiny: magnitude", "1. magnitude:", "q_fc=1.5", "train: batch_size=128 epochs=1",
                 "measured here (1 run on 1 reference)", "mlp_tiny, pretrained with seed 0, 2 epochs"):
        assert text in summary, text
    assert dialog.summary.isReadOnly() and dialog.save_button.isEnabled()

    dialog.name.setText("sws-lenet300")                         # a shipped name: refused as typed
    assert not dialog.save_button.isEnabled()
    assert dialog.status.text() == "'sws-lenet300' is the name of a shipped preset; choose another name"

    dialog.name.setText("my-tiny")
    dialog.description.setText("kept from the dialog")
    assert "description: kept from the dialog" in dialog.summary.toPlainText()
    with qtbot.waitSignal(dialog.saved) as saved:
        dialog.save_button.click()
    assert saved.args == ["my-tiny"] and dialog.saved_name == "my-tiny"
    assert dialog.saved_path == folder / "my-tiny.json" and dialog.saved_path.is_file()
    preset = get_preset("my-tiny")
    assert preset["description"] == "kept from the dialog" and preset["params"]["q_fc"] == 1.5
    assert "my-tiny" in {p["name"] for p in list_presets()}

    again = PromoteDialog(run_path)                              # the same name now needs Replace
    qtbot.addWidget(again)
    again.name.setText("my-tiny")
    assert not again.save_button.isEnabled() and "exists" in again.status.text()
    again.replace.setChecked(True)
    assert again.save_button.isEnabled() and again.status.text() == ""


def test_promote_run_returns_the_name(qtbot, folder, run_path):
    def save():
        dialog = QApplication.activeModalWidget()
        dialog.name.setText("by-function")
        dialog.save_button.click()

    QTimer.singleShot(0, save)
    assert promote_run(None, run_path) == "by-function"
    assert get_preset("by-function")["model"] == "mlp_tiny"

    QTimer.singleShot(0, lambda: QApplication.activeModalWidget().reject())
    assert promote_run(None, run_path) is None


def test_a_file_that_is_not_a_finished_run_shows_why(qtbot, folder, tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    dialog = PromoteDialog(str(junk))
    qtbot.addWidget(dialog)
    assert "is not a readable HDF5 run file" in dialog.status.text()
    assert not dialog.save_button.isEnabled() and dialog.summary.toPlainText() == ""
    dialog.save()                                               # even if called, nothing is written
    assert dialog.saved_name is None and not folder.exists()


def test_the_window_promotes_the_selected_run_and_lists_the_preset(qtbot, window, folder, run_path, monkeypatch):
    """File > Promote run to preset…: the dialog gets the selected run; once saved, the method panel lists
    the new preset (with its measured spread in the tooltip) without a restart."""
    import workbench.gui.main_window as mw
    from workbench.engine.promote import promote

    window.open_runs([run_path])
    qtbot.waitUntil(lambda: window.compare._row_of(run_path) >= 0, timeout=30000)
    window.compare.table.selectRow(window.compare._row_of(run_path))
    asked = []

    def fake_dialog(parent, path):           # what Save in the dialog does, without a modal loop
        asked.append(path)
        promote(path, "my-tiny-magnitude", "from the window")
        return "my-tiny-magnitude"

    monkeypatch.setattr(mw, "promote_run", fake_dialog)
    file_menu = window.menuBar().actions()[0].menu()
    action = next(a for a in file_menu.actions() if "Promote" in a.text().replace("&", ""))
    action.trigger()
    assert asked == [run_path]
    window.methods.set_stages([StageConfig("magnitude", {}, {})])
    combo = window.methods.preset_combo
    names = [combo.itemData(i) for i in range(combo.count())]
    assert "my-tiny-magnitude" in names
    tip = combo.itemData(names.index("my-tiny-magnitude"), 3)        # Qt.ToolTipRole
    assert "measured: 1 ref: " in tip and "% err" in tip and "from the window" in tip
