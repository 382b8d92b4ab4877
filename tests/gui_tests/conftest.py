"""GUI tests run without a display: Qt's offscreen platform, chosen before anything imports Qt."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _gc_on_gui_thread(qapp):
    """As the app does (run_app): cyclic garbage holding Qt objects is collected on the GUI thread only.
    Without it a study thread's allocation collected earlier tests' widgets and the suite hung."""
    from workbench.gui.main_thread_gc import collect_on_gui_thread

    collector = collect_on_gui_thread(qapp)
    yield
    collector.stop()


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    """A main window with its own settings, cache and run folder, set up for the tiny model and data."""
    from PySide6.QtCore import QSettings

    from workbench.gui.main_window import MainWindow

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    settings.setValue("out_dir", str(tmp_path / "runs"))
    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.setup.set_parts({"model": "mlp_tiny", "dataset": "tiny"})
    w.setup.set_parts({"pretrain_epochs": 2})
    yield w
    w.queue.shutdown()
