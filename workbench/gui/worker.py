"""Background work: the run queue (one run or deployment measurement at a time in a worker thread) and
file loading.

The GUI thread never trains, evaluates or reads HDF5: the worker consumes the core's event generator
and re-emits each event as a Qt signal (queued across threads); run files are read in a thread pool.
Deployment measurements (gui/deploy_job.py) go through the same queue, so that a measurement never
runs beside a compression run: each would disturb the other's timing, and `deploy` sets torch's
process-wide thread count.
"""

from __future__ import annotations

import sys
import traceback
from collections import deque

from PySide6.QtCore import QCoreApplication, QObject, QRunnable, QThread, QThreadPool, Signal, Slot

from workbench.core.config import RunConfig
from workbench.core.errors import WorkbenchError
from workbench.core.events import CancelToken, Evaluated, Finished, Message, Progress, RunStarted
from workbench.engine.runner import execute
from workbench.gui.deploy_job import DeployJob, measure


class _RunWorker(QObject):
    """Lives in the worker thread; runs one config at a time."""

    event = Signal(object)
    done = Signal(object)          # Finished (also for runs that failed before a file existed)
    measure_progress = Signal(int, int, str)
    measured = Signal(object)      # DeployOutcome

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

    @Slot(object, object)
    def measure(self, job: DeployJob, token: CancelToken) -> None:
        self.measured.emit(measure(job, token, self.measure_progress.emit))


class RunQueue(QObject):
    """Runs queued configs and deployment jobs one after another in a background thread; cancel stops the
    current one."""

    started = Signal(object)       # RunStarted
    progress = Signal(object)      # Progress
    point = Signal(object, object)  # run path, Evaluated
    message = Signal(str)
    warning = Signal(str, str)     # run path, a Message marked warning: shown until the next run is queued
    finished = Signal(object)      # Finished
    queue_changed = Signal()
    measure_started = Signal(object)             # DeployJob
    measure_progress = Signal(int, int, str)     # done, total, what was just done
    measured = Signal(object)                    # DeployOutcome
    _submit = Signal(object, object)
    _submit_job = Signal(object, object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._pending: deque[RunConfig | DeployJob] = deque()
        self._token: CancelToken | None = None
        self._current: RunConfig | DeployJob | None = None
        self._path = ""
        self._thread = QThread(self)
        self._thread.setObjectName("workbench-runs")
        self._worker = _RunWorker()
        self._worker.moveToThread(self._thread)
        self._submit.connect(self._worker.run)
        self._submit_job.connect(self._worker.measure)
        self._worker.event.connect(self._on_event)
        self._worker.done.connect(self._on_done)
        self._worker.measure_progress.connect(self.measure_progress)
        self._worker.measured.connect(self._on_measured)
        self._thread.start()

    # --- queue ------------------------------------------------------------------------------
    def enqueue(self, item: RunConfig | DeployJob) -> None:
        """Queue a run, or a deployment measurement (DeployJob): either waits for the one running."""
        self._pending.append(item)
        self.queue_changed.emit()
        self._next()

    def pending(self) -> list[RunConfig | DeployJob]:
        return list(self._pending)

    @property
    def busy(self) -> bool:
        return self._current is not None

    @property
    def current(self) -> RunConfig | DeployJob | None:
        return self._current

    @property
    def measuring(self) -> bool:
        """The current item is a deployment measurement."""
        return isinstance(self._current, DeployJob)

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
        if isinstance(self._current, DeployJob):
            self.measure_started.emit(self._current)
            self._submit_job.emit(self._current, self._token)
        else:
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

    @Slot(object)
    def _on_measured(self, outcome) -> None:
        self._current = None
        self._token = None
        self.measured.emit(outcome)
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
        path = self._path or (self._current.describe() if isinstance(self._current, DeployJob) else
                              "the current run")
        print(f"workbench: {path} is still finishing after {wait_ms / 1000:g} s of cancelling; waiting for "
              "it to close its file", file=sys.stderr, flush=True)
        self._thread.wait()
        return False


class _Task(QRunnable):
    def __init__(self, fn, relay: "_Relay", key):
        super().__init__()
        self.fn, self.relay, self.key = fn, relay, key

    def run(self) -> None:
        try:
            result = self.fn()
        except Exception as exc:  # noqa: BLE001 - reported to the window, never fatal
            outcome = (self.relay.failed, self.key, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        else:
            outcome = (self.relay.done, self.key, result)
        try:
            outcome[0].emit(*outcome[1:])
        finally:
            self.relay.deleteLater()    # on the GUI thread, after the queued result it carries


class TaskSignals(QObject):
    done = Signal(object, object)     # key, result
    failed = Signal(object, str)      # key, one-line message


class _Relay(TaskSignals):
    """One task's own sender, owned by the application and deleted on the GUI thread when the task ends.

    The task emitted on its asker's TaskSignals, a child of a widget: a widget closed while the task
    ran was destroyed on the GUI thread in the middle of the worker's emit (a segfault in the GUI test
    suite). The relay outlives the task; its results reach the asker through a signal-to-signal
    connection, which Qt drops when the asker is destroyed."""


def run_in_pool(fn, key, signals: TaskSignals) -> None:
    """Run `fn()` in the global thread pool; the result (or a one-line error) comes back as a signal
    of `signals` (dropped if `signals` is gone by then). Call from the GUI thread."""
    relay = _Relay(QCoreApplication.instance())     # C++-owned: a worker dropping it never deletes it
    relay.done.connect(signals.done)
    relay.failed.connect(signals.failed)
    QThreadPool.globalInstance().start(_Task(fn, relay, key))
