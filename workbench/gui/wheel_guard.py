"""Scrolling a panel never changes a setting: a wheel turn over a drop-down, a number box or a slider
that does not have the keyboard focus goes to the panel (which scrolls) instead of to the input.

Measured on the app before this guard: scrolling the Setup panel turned the device to `cuda` (the next
run failed), changed the architecture and loaded a preset. Click (or tab) into an input to use its wheel.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QEvent, QObject
from PySide6.QtWidgets import QAbstractScrollArea, QAbstractSlider, QAbstractSpinBox, QComboBox, QScrollBar

GUARDED = (QComboBox, QAbstractSpinBox, QAbstractSlider)


class WheelGuard(QObject):
    """Install on the application (QApplication.installEventFilter)."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if (event.type() != QEvent.Type.Wheel or not isinstance(obj, GUARDED) or isinstance(obj, QScrollBar)
                or obj.hasFocus()):        # a scroll bar is how the panel scrolls: never a setting
            return False
        area = obj.parentWidget()
        while area is not None and not isinstance(area, QAbstractScrollArea):
            area = area.parentWidget()
        if area is not None:          # a scroll area scrolls on wheel events that reach its viewport
            QCoreApplication.sendEvent(area.viewport(), event)
        return True
