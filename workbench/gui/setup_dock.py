"""The Setup dock: the setup and method panels in a vertical scroll area, the run bar pinned below it.

The run bar sits in the dock rather than in a tool bar of the window: at 1280x800 the plots need all
the window's height (a bottom tool bar would take ~120 px from them across the whole width, and give
the error text one line), and next to the settings it runs it stays in view when the dock is floated.

The panels shrink to the dock's width (no horizontal scroll bar): long drop-down items, titles and
messages wrap or elide instead of widening the panel. The dock keeps a useful minimum width, also when
a saved window state would squeeze it (one saved at 1280x800 and restored maximized on 1920x1080 once
left it ~40 px wide).
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QDockWidget, QFrame, QMainWindow, QScrollArea, QVBoxLayout, QWidget

from workbench.gui.run_bar import RunBar

MIN_WIDTH = 340          # narrowest dock in which every row of the panels is still usable
MAX_DEFAULT_WIDTH = 460


class _Body(QWidget):
    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        """The dock's width when no saved state says otherwise: a third of the window, within
        [MIN_WIDTH, MAX_DEFAULT_WIDTH]; the plots get the rest."""
        width = self.window().width() * 0.3 if self.window() is not self else MIN_WIDTH
        return QSize(int(min(MAX_DEFAULT_WIDTH, max(MIN_WIDTH, width))), super().sizeHint().height())


class SetupDock(QDockWidget):
    def __init__(self, window: QMainWindow, panels: list[QWidget]):
        super().__init__("Setup", window)
        self.setObjectName("setup-dock")
        self.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
        panel = QWidget()
        layout = QVBoxLayout(panel)
        layout.setContentsMargins(6, 6, 6, 6)
        for widget in panels:
            layout.addWidget(widget)
        layout.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)   # no width jump
        self.scroll.setWidget(panel)
        self.run_bar = RunBar()
        body = _Body()
        column = QVBoxLayout(body)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addWidget(self.scroll, 1)
        column.addWidget(self.run_bar)
        body.setMinimumWidth(MIN_WIDTH)
        self.setWidget(body)

    def panel(self) -> QWidget:
        return self.scroll.widget()
