"""What the main window keeps between sessions (QSettings): its geometry and dock layout, the setup
panel's choices and the method in the form."""

from __future__ import annotations

import json


def restore_window(win) -> None:
    """Geometry (fitted to the screen as it is now), dock state, setup choices and method, as saved."""
    geometry = win.settings.value("geometry")
    if geometry is not None:
        win.restoreGeometry(geometry)
    else:
        win.resize(1500, 950)
    win._fit_to_screen()
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
