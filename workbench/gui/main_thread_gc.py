"""Python's cyclic garbage collector runs on the GUI thread only.

Automatic collection runs in whichever thread happens to allocate. When that is a worker (a run, a
study, a file check) and the garbage holds Qt objects (a closed dialog's widgets in a reference cycle),
the worker destroys them: Qt objects may only be destroyed on their own thread, and PySide then waits
for the GIL inside ~QObject while the GUI thread waits for Qt's lock in its own deletions. Seen as a
hang of the GUI test suite: the study thread's `import optuna` collected a test's plot widgets (py-spy:
worker in gc_collect_main -> ~QObject -> GilState::acquire, GUI thread in ~QWidget ->
QBasicMutex::lockInternal). So automatic collection is switched off and a GUI-thread timer collects
instead, with the thresholds the automatic collector would use (the approach of
pyqtgraph.util.garbage_collector). Reference counting, which frees nearly everything, is unaffected.
Objects that exist when it is installed are frozen (gc.freeze) so that full collections stay short.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 500       # how often the GUI thread looks at the collector's counts


class MainThreadGC(QObject):
    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS):
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.check)
        gc.disable()
        # What exists now (modules, torch, the window) lives as long as the app: frozen, a full collection
        # on the GUI thread no longer walks it (measured after the main window: 125 ms -> 1 ms each).
        gc.collect()
        gc.freeze()
        self.timer.start(interval_ms)

    def check(self) -> None:
        """Collect the generations whose counts passed their thresholds, as gc would have on allocation."""
        # the oldest generation whose count, and every younger one's, passed its threshold
        passed = [count > limit for count, limit in zip(gc.get_count(), self.threshold)]
        if passed[0]:
            gc.collect(2 if all(passed) else 1 if passed[1] else 0)

    def stop(self) -> None:
        """Automatic collection back on (the application is going away)."""
        self.timer.stop()
        gc.unfreeze()
        gc.enable()


def collect_on_gui_thread(app) -> MainThreadGC:
    """Install once per application (it is parented to it); returns the installed collector."""
    existing = app.findChild(MainThreadGC)
    return existing if existing is not None else MainThreadGC(app)
