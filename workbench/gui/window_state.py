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


TITLE_PX_GUESS = 30     # a title bar's height where the window manager has not framed the window yet


def fit_to_screen(win) -> None:
    """Keeps a top-level window, title bar included, on the screen it opens on.

    Sizes saved on a larger screen, and the first default size, are clamped to the screen (measured: the
    main window's 1500x950 on 1280x800), and the title bar stays on it: centred over the main window at
    1280x800 the 720 px Tune dialog's frame began 20 px above the screen (Xvfb + openbox), so it could
    not be dragged. The client area is placed below a title bar's height; the frame is drawn by the
    window manager after the first show, so TITLE_PX_GUESS is assumed where it is not known yet."""
    if win.isMaximized() or win.isFullScreen():
        return                       # restored so: the window manager places it, and a geometry would undo it
    avail = (win.screen() or QApplication.primaryScreen()).availableGeometry()
    geo, frame = win.geometry(), win.frameGeometry()
    title = max(geo.y() - frame.y(), TITLE_PX_GUESS)
    side = max(geo.x() - frame.x(), 0)
    w = max(min(geo.width(), avail.width() - 2 * side - 16), 320)
    h = max(min(geo.height(), avail.height() - title - side - 10), 240)
    x = max(min(geo.x(), avail.right() - w - side - 8), avail.x() + side)
    y = max(min(geo.y(), avail.bottom() - h - side - 5), avail.y() + title)
    win.setGeometry(x, y, w, h)
