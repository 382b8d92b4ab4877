"""The window opens inside the screen (whatever size was saved), has a Help menu and run shortcuts, and
says what "Copy CLI command" copied; the Setup dock fits its column and keeps a useful width; the export
dialog's text is readable."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QByteArray, QSettings, Qt
from PySide6.QtWidgets import QApplication


def _window(qtbot, tmp_path, geometry: QByteArray | None = None):
    from workbench.gui.main_window import MainWindow

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    if geometry is not None:
        settings.setValue("geometry", geometry)
    w = MainWindow(settings)
    qtbot.addWidget(w)
    return w


def test_the_first_window_and_a_saved_oversize_one_fit_the_screen(qtbot, tmp_path):
    screen = QApplication.primaryScreen().availableGeometry()
    first = _window(qtbot, tmp_path)                      # default 1500x950, larger than this screen
    assert first.width() <= screen.width() and first.height() <= screen.height()
    big = _window(qtbot, tmp_path)
    big.setGeometry(screen.x() + 500, screen.y() + 400, screen.width() * 2, screen.height() * 2)
    saved = big.saveGeometry()                            # saved on a screen twice this size
    again = _window(qtbot, tmp_path / "other", saved)
    frame = again.frameGeometry()
    assert again.width() <= screen.width() and again.height() <= screen.height()
    assert screen.contains(frame.topLeft())


def test_help_menu_and_run_shortcuts(qtbot, window):
    from workbench import __version__
    from workbench.gui.help_menu import about_text, shortcuts

    menus = {a.text().replace("&", ""): a.menu() for a in window.menuBar().actions()}
    assert {"File", "Run", "Help"} <= set(menus)
    assert [a.text().replace("&", "") for a in menus["Help"].actions()] == ["Documentation", "Keyboard shortcuts",
                                                                          "About"]
    keys = {a.shortcut().toString(): a for a in menus["Run"].actions()}
    assert set(keys) == {"F5", "Shift+F5", "F6"}
    assert {k for k, _ in shortcuts()} >= {"F5", "Shift+F5", "F6"}     # the shortcuts page lists what exists
    assert __version__ in about_text()


def test_copy_cli_command_says_what_it_copied(qtbot, window):
    messages = []
    window.compare.status.connect(messages.append)
    window.compare.copy_cli()                               # nothing selected
    assert messages[-1].startswith("select runs")


# --- the Setup dock fits its column -------------------------------------------------------------------


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)])
def test_the_setup_panel_fits_the_dock_without_a_horizontal_scroll_bar(qtbot, window, tmp_path, size):
    from workbench.gui.setup_dock import MIN_WIDTH

    window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    assert (window.width(), window.height()) == size
    scroll = window.setup_dock.scroll
    assert scroll.horizontalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff
    assert window.setup_dock.width() >= MIN_WIDTH
    long = str(tmp_path / ("a-long-folder-name-without-spaces" * 4) / "model.onnx")
    cases = [{}, {"data_dir": long}, {"model": long}, {"checkpoint": long}]
    for parts in cases:                       # long messages under the fields wrap instead of widening
        window.setup.set_parts(parts)
        for key in window.methods.method_forms:   # each method's form and group box title
            window.methods.select_method(key)
            window.methods.method_form().set_advanced_visible(True)
            QApplication.processEvents()
            panel, view = window.setup_dock.panel(), scroll.viewport()
            assert panel.minimumSizeHint().width() <= view.width(), (parts, key)
            assert panel.width() <= view.width(), (parts, key)


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)])
def test_the_histogram_point_slider_keeps_a_usable_width(qtbot, window, size):
    """At 1280x800 the slider was squeezed to its handle beside the point label and the log box."""
    window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    window.histogram.point_label.setText("finalized · epoch 12 (13/13)")   # the longest kind of point name
    QApplication.processEvents()
    assert window.histogram.slider.width() >= 100
    assert window.histogram.point_label.width() >= window.histogram.point_label.sizeHint().width()


def test_a_squeezed_saved_dock_is_restored_at_a_useful_width(qtbot, tmp_path):
    """A window state saved with the dock squeezed (once ~40 px, after a 1280x800 state was restored
    maximized on 1920x1080) opens with the dock at least its minimum width."""
    from workbench.gui.setup_dock import MIN_WIDTH

    first = _window(qtbot, tmp_path)
    first.resize(1280, 800)
    first.show()
    qtbot.waitExposed(first)
    dock = first.setup_dock
    dock.widget().setMinimumWidth(0)           # as a state saved without the minimum could have it
    first.resizeDocks([dock], [60], Qt.Orientation.Horizontal)
    QApplication.processEvents()
    squeezed = dock.width()
    assert squeezed < MIN_WIDTH
    first.close()                              # saves the state
    again = _window(qtbot, tmp_path)
    again.showMaximized()
    qtbot.waitExposed(again)
    assert again.setup_dock.width() >= MIN_WIDTH
    first.queue.shutdown()
    again.queue.shutdown()


def test_the_export_dialog_is_readable(qtbot, window):
    from workbench.gui.export_dialog import HELP, ExportDialog

    dialog = ExportDialog("/runs/20240101-000000-lenet300-dns-s0.h5", window)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert 520 <= dialog.width() <= 1280
    dialog._failed("key", "no such file /runs/20240101-000000-lenet300-dns-s0.h5; " + "more words " * 30)
    for fmt in HELP:
        dialog.format.setCurrentText(fmt)
        QApplication.processEvents()
        for label in (dialog.help, dialog.status):
            assert label.wordWrap()
            assert label.height() >= label.heightForWidth(label.width()), (fmt, label.text())
            assert label.width() <= dialog.width()
    assert dialog.status.textInteractionFlags() & Qt.TextInteractionFlag.TextSelectableByMouse


def test_a_window_saved_maximized_opens_maximized(qtbot, tmp_path):
    """Fitting a restored window to the screen sets its geometry: done to a maximized one it undid that."""
    big = _window(qtbot, tmp_path)
    big.showMaximized()
    qtbot.waitUntil(big.isMaximized, timeout=2000)
    again = _window(qtbot, tmp_path / "other", big.saveGeometry())
    assert again.isMaximized()
