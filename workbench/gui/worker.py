"""Background work: the run queue (one run at a time in a worker thread) and file loading.

The GUI thread never trains, evaluates or reads HDF5: the worker consumes the core's event generator
and re-emits each event as a Qt signal (queued across threads); run files are read in a thread pool.
"""

from __future__ import annotations

import sys
import traceback
from collections import deque

from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal, Slot

from workbench.core.config import RunConfig
from workbench.core.errors import WorkbenchError
from workbench.core.events import CancelToken, Evaluated, Finished, Message, Progress, RunStarted
from workbench.engine.runner import execute


class _RunWorker(QObject):
    """Lives in the worker thread; runs one config at a time."""

    event = Signal(object)
    done = Signal(object)          # Finished (also for runs that failed before a file existed)

    @Slot(object, object)
    def run(self, config: RunConfig, token: CancelToken) -> None:
        finished = None
        try:
            for ev in execute(config, token):
                if isinstance(ev, Finished):
                    finished = ev
                else:
                    self.event.emit(ev)
        except WorkbenchError as exc:   # bad input found before a run file existed
            finished = Finished("", "failed", {}, str(exc))
        except Exception as exc:  # noqa: BLE001 - the app stays up; the message says what broke
            traceback.print_exc()
            finished = Finished("", "failed", {}, f"{type(exc).__name__}: {exc}".splitlines()[0])
        self.done.emit(finished)


class RunQueue(QObject):
    """Runs queued configs one after another in a background thread; cancel stops the current one."""

    started = Signal(object)       # RunStarted
    progress = Signal(object)      # Progress
    point = Signal(object, object)  # run path, Evaluated
    message = Signal(str)
    warning = Signal(str, str)     # run path, a Message marked warning: shown until the next run is queued
    finished = Signal(object)      # Finished
    queue_changed = Signal()
    _submit = Signal(object, object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._pending: deque[RunConfig] = deque()
        self._token: CancelToken | None = None
        self._current: RunConfig | None = None
        self._path = ""
        self._thread = QThread(self)
        self._thread.setObjectName("workbench-runs")
        self._worker = _RunWorker()
        self._worker.moveToThread(self._thread)
        self._submit.connect(self._worker.run)
        self._worker.event.connect(self._on_event)
        self._worker.done.connect(self._on_done)
        self._thread.start()

    # --- queue ------------------------------------------------------------------------------
    def enqueue(self, config: RunConfig) -> None:
        self._pending.append(config)
        self.queue_changed.emit()
        self._next()

    def pending(self) -> list[RunConfig]:
        return list(self._pending)

    @property
    def busy(self) -> bool:
        return self._current is not None

    @property
    def current(self) -> RunConfig | None:
        return self._current

    def cancel(self) -> None:
        """Cancel the running run (it ends as `cancelled` after the current batch)."""
        if self._token is not None:
            self._token.cancel()

    def cancel_all(self) -> None:
        self._pending.clear()
        self.queue_changed.emit()
        self.cancel()

    def _next(self) -> None:
        if self._current is not None or not self._pending:
            return
        self._current = self._pending.popleft()
        self._token = CancelToken()
        self._path = ""
        self.queue_changed.emit()
        self._submit.emit(self._current, self._token)

    # --- events from the worker thread (delivered on the GUI thread) --------------------------
    @Slot(object)
    def _on_event(self, ev) -> None:
        if isinstance(ev, RunStarted):
            self._path = ev.run_path
            self.started.emit(ev)
        elif isinstance(ev, Progress):
            self.progress.emit(ev)
        elif isinstance(ev, Evaluated):
            self.point.emit(self._path, ev)
        elif isinstance(ev, Message):
            if ev.warning:
                self.warning.emit(self._path, ev.text)
            else:
                self.message.emit(ev.text)

    @Slot(object)
    def _on_done(self, finished: Finished) -> None:
        self._current = None
        self._token = None
        self.finished.emit(finished)
        self.queue_changed.emit()
        self._next()

    def shutdown(self, wait_ms: int = 10000) -> bool:
        """Cancel everything and stop the thread; True when it stopped within `wait_ms`.

        A run notices the cancel between batches and in long hooks (RunContext.check_cancelled), then
        closes its file as `cancelled`. One that is still finishing after `wait_ms` (a hook that cannot
        stop midway) is reported on stderr and waited for: destroying a running QThread would abort the
        process and leave the file marked `running`. The window avoids this wait (closeEvent).
        """
        self.cancel_all()
        self._thread.quit()
        if self._thread.wait(wait_ms):
            return True
        path = self._path or "the current run"
        print(f"workbench: {path} is still finishing after {wait_ms / 1000:g} s of cancelling; waiting for "
              "it to close its file", file=sys.stderr, flush=True)
        self._thread.wait()
        return False


class _Task(QRunnable):
    def __init__(self, fn, signals: "TaskSignals", key):
        super().__init__()
        self.fn, self.signals, self.key = fn, signals, key

    def run(self) -> None:
        try:
            result = self.fn()
        except Exception as exc:  # noqa: BLE001 - reported to the window, never fatal
            outcome = (self.signals.failed, self.key, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        else:
            outcome = (self.signals.done, self.key, result)
        try:
            outcome[0].emit(*outcome[1:])
        except RuntimeError:
            pass  # the window that asked was closed meanwhile


class TaskSignals(QObject):
    done = Signal(object, object)     # key, result
    failed = Signal(object, str)      # key, one-line message


def run_in_pool(fn, key, signals: TaskSignals) -> None:
    """Run `fn()` in the global thread pool; the result (or a one-line error) comes back as a signal."""
    QThreadPool.globalInstance().start(_Task(fn, signals, key))
