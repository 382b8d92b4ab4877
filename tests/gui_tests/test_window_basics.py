"""The window opens inside the screen (whatever size was saved), has a Help menu and run shortcuts, and
says what "Copy CLI command" copied."""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings
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
    assert set(keys) == {"F5", "Shift+F5"}
    assert {k for k, _ in shortcuts()} >= {"F5", "Shift+F5"}     # the shortcuts page lists what exists
    assert __version__ in about_text()


def test_copy_cli_command_says_what_it_copied(qtbot, window):
    messages = []
    window.compare.status.connect(messages.append)
    window.compare.copy_cli()                               # nothing selected
    assert messages[-1].startswith("select runs")
