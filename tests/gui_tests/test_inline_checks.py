"""Every path and the data set are checked as they are typed: Run is disabled, with the reason next to
the field and in Run's tooltip, until the checkpoint, the model file, the data set and its folder can be
read."""

from __future__ import annotations

import os

import pytest
import torch

from workbench.data import find_dataset


def _run_blocked_by(window, text: str) -> bool:
    return not window.run_button.isEnabled() and text in window.run_button.toolTip()


def _type(qtbot, edit, text: str) -> None:
    edit.clear()
    qtbot.keyClicks(edit, text)          # no Return, no focus change: checked while typing


def test_checkpoint_path_missing_folder_pipe_then_a_file(qtbot, window, tmp_path):
    setup = window.setup
    assert window.run_button.isEnabled()
    missing = tmp_path / "weights.pt"
    _type(qtbot, setup.checkpoint, str(missing))
    expected = f"Checkpoint: {missing} does not exist"
    assert setup.checkpoint_status.text() == expected and setup.checkpoint_status.isVisibleTo(setup)
    assert _run_blocked_by(window, expected)
    _type(qtbot, setup.checkpoint, str(tmp_path))
    assert setup.checkpoint_status.text() == f"Checkpoint: {tmp_path} is a folder, not a file"
    assert not window.run_button.isEnabled()
    pipe = tmp_path / "pipe.pt"
    os.mkfifo(pipe)                       # opening it would block a reader: it is never read
    _type(qtbot, setup.checkpoint, str(pipe))
    assert _run_blocked_by(window, "is not a regular file")
    torch.save(torch.nn.Linear(2, 2).state_dict(), missing)
    _type(qtbot, setup.checkpoint, str(missing))
    assert setup.checkpoint_status.text() == "" and not setup.checkpoint_status.isVisibleTo(setup)
    qtbot.waitUntil(window.run_button.isEnabled, timeout=5000)   # after the pool's scan for code
    _type(qtbot, setup.checkpoint, "")
    assert window.run_button.isEnabled()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_an_unreadable_checkpoint_disables_run(qtbot, window, tmp_path):
    locked = tmp_path / "locked.pt"
    torch.save({}, locked)
    locked.chmod(0)
    _type(qtbot, window.setup.checkpoint, str(locked))
    assert _run_blocked_by(window, "cannot be read (permission denied)")


def test_a_model_file_is_checked_as_its_path_is_typed(qtbot, window, tmp_path):
    onnx = tmp_path / "net.onnx"
    onnx.write_bytes(b"\x08\x07")
    window.setup.set_parts({"model": str(onnx)})
    missing = tmp_path / "gone.onnx"
    _type(qtbot, window.setup.model_file, str(missing))
    expected = f"Model file: {missing} does not exist"
    assert window.setup.model_status.text() == expected
    assert _run_blocked_by(window, expected)


def test_data_set_not_found_then_its_folder_typed(qtbot, window, tmp_path, monkeypatch):
    shared = os.environ.get("WORKBENCH_DATA", "")
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "empty"))
    if find_dataset("mnist") is not None:
        pytest.skip("MNIST is installed in a system folder here")
    setup = window.setup
    setup.set_parts({"dataset": "mnist"})
    status = setup.data_status.text()
    assert status.startswith("MNIST not found: choose its folder as Data folder or press Download")
    assert f"(searched {tmp_path / 'empty'}, " in status              # where it looked
    assert _run_blocked_by(window, "MNIST not found") and setup.download_button.isVisibleTo(setup)
    _type(qtbot, setup.data_dir, str(tmp_path / "nowhere"))
    assert _run_blocked_by(window, f"Data folder: {tmp_path / 'nowhere'} does not exist")
    if not (shared and find_dataset("mnist", shared)):
        pytest.skip("no MNIST to point the Data folder at (WORKBENCH_DATA)")
    _type(qtbot, setup.data_dir, shared)
    assert setup.data_status.text() == f"found in {find_dataset('mnist', shared)}"
    assert window.run_button.isEnabled() and not setup.download_button.isVisibleTo(setup)


def test_data_set_paths_and_names(qtbot, window, tmp_path):
    setup = window.setup
    cases = {f"folder:{tmp_path / 'none'}": f"Data set: {tmp_path / 'none'} does not exist",
             f"arrays:{tmp_path}": f"Data set: {tmp_path} is a folder, not a file",
             "mnistt": "unknown data set 'mnistt'", "folder:": "needs a path after the colon"}
    for name, reason in cases.items():
        setup.dataset.setCurrentText("")
        qtbot.keyClicks(setup.dataset.lineEdit(), name)
        assert reason in setup.data_status.text(), name
        assert _run_blocked_by(window, reason), name
    setup.dataset.setCurrentText(f"folder:{tmp_path}")
    assert setup.error() == "" and window.run_button.isEnabled()
