"""What the main window keeps between sessions (QSettings): its geometry and dock layout, the setup
panel's choices and the method in the form."""

from __future__ import annotations

import json

from PySide6.QtWidgets import QApplication


def restore_window(win) -> None:
    """Geometry (fitted to the screen as it is now), dock state, setup choices and method, as saved."""
    geometry = win.settings.value("geometry")
    if geometry is not None:
        win.restoreGeometry(geometry)
    else:
        win.resize(1500, 950)
    fit_to_screen(win)
    state = win.settings.value("window_state")
    if state is not None:
        win.restoreState(state)       # the dock's minimum width wins over a squeezed saved state
    try:   # JSON: QSettings cannot store a dict holding None
        parts = json.loads(str(win.settings.value("setup", "") or "{}"))
    except ValueError:
        parts = {}
    if isinstance(parts, dict) and parts:
        win.setup.set_parts(parts)
    method = win.settings.value("method")
    if method:
        try:
            win.methods.select_method(str(method))
        except KeyError:
            pass  # a method saved by another version that this one does not have


def save_window(win) -> None:
    win.settings.setValue("geometry", win.saveGeometry())
    win.settings.setValue("window_state", win.saveState())
    win.settings.setValue("setup", json.dumps(win.setup.config_parts()))
    win.settings.setValue("method", win.methods.current_method())


def fit_to_screen(win) -> None:
    """Sizes saved on a larger screen, and the first default size, are clamped to the screen the window
    opens on, so it never opens larger than the screen (measured: 1500x950 on 1280x800)."""
    screen = (win.screen() or QApplication.primaryScreen()).availableGeometry()
    frame = win.frameGeometry()
    width, height = min(win.width(), screen.width() - 16), min(win.height(), screen.height() - 40)
    if (width, height) != (win.width(), win.height()):
        win.resize(max(width, 320), max(height, 240))
    x = min(max(frame.x(), screen.x()), screen.right() - win.frameGeometry().width() + 1)
    y = min(max(frame.y(), screen.y()), screen.bottom() - win.frameGeometry().height() + 1)
    win.move(max(x, screen.x()), max(y, screen.y()))
