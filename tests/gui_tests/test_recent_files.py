"""File > Open recent: newest first, no repeats, at most MAX_RECENT, kept in the settings, and a click
opens that run."""

from __future__ import annotations


def test_recent_files_order_cap_persistence_and_click(qtbot, tmp_path):
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QMenu

    from workbench.gui.recent_files import MAX_RECENT, RecentFiles

    settings = QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat)
    opened = []
    menu = QMenu()
    recent = RecentFiles(settings, menu, opened.append)
    assert recent.paths() == [] and not menu.isEnabled()
    for i in range(MAX_RECENT + 3):
        recent.add(f"run{i}.h5")
    recent.add("run5.h5")                                 # opened again: moves to the top, once
    assert recent.paths()[:2] == ["run5.h5", f"run{MAX_RECENT + 2}.h5"]
    assert len(recent.paths()) == MAX_RECENT and recent.paths().count("run5.h5") == 1
    assert [a.text() for a in menu.actions()] == recent.paths() and menu.isEnabled()
    menu.actions()[1].trigger()
    assert opened == [[f"run{MAX_RECENT + 2}.h5"]]
    again = RecentFiles(QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat), QMenu(), opened.append)
    assert again.paths() == recent.paths()                # kept between sessions
