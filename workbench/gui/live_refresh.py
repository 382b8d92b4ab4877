"""Staggered redraws of the live plots: one plot per event-loop pass, so no single paint blocks the GUI.

Qt paints every dirty widget of a window in one pass. Updating all plots after each live point therefore
produced one paint of every plot at once (40-140 ms measured on 2 cores while training, mostly pyqtgraph
re-rendering axes whose range moved). Here each plot is updated in its own timer tick and painted before
the next one starts, so the longest stall is one plot's paint. Updates are keyed: a plot that has not been
redrawn yet when the next point arrives is redrawn once, with the newest data.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from PySide6.QtCore import QObject, QTimer

# Long enough for the previous step's paint (a posted event) to run before the next update.
STEP_MS = 15


class StaggeredRefresh(QObject):
    def __init__(self, parent: QObject | None = None, step_ms: int = STEP_MS):
        super().__init__(parent)
        self._pending: OrderedDict[str, Callable[[], None]] = OrderedDict()
        self._timer = QTimer(self)
        self._timer.setInterval(step_ms)
        self._timer.timeout.connect(self._step)

    def schedule(self, key: str, fn: Callable[[], None]) -> None:
        """Run `fn` in a later pass; a pending job with the same key is replaced (keeps its place)."""
        self._pending[key] = fn
        if not self._timer.isActive():
            self._timer.start()

    def pending(self) -> list[str]:
        return list(self._pending)

    def flush(self) -> None:
        """Run everything pending now (tests, and before a view is rebuilt from scratch)."""
        while self._pending:
            self._step()

    def discard(self, which: Callable[[str], bool] = lambda key: True) -> None:
        """Drop pending jobs whose key `which` accepts (all by default)."""
        for key in [k for k in self._pending if which(k)]:
            del self._pending[key]
        if not self._pending:
            self._timer.stop()

    def _step(self) -> None:
        if not self._pending:
            self._timer.stop()
            return
        _, fn = self._pending.popitem(last=False)
        try:
            fn()
        finally:
            if not self._pending:
                self._timer.stop()
