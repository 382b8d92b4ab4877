"""Closing the window, or shutting the run queue down, while a run is still finishing: the run is
cancelled and waited for (its file gets closed), never torn down mid-write, and the wait is reported."""

from __future__ import annotations

import threading
import time

import pytest

from workbench.core.config import RunConfig, StageConfig
from workbench.core.events import Finished, RunStarted


def _slow_execute(release: threading.Event, seen_cancel: list):
    """A run whose last step cannot stop midway (like a long finalize): it notices the cancel only when
    `release` is set, then ends as cancelled."""
    def execute(config, token):
        yield RunStarted("slow.h5", {}, "cpu", 10, [], {})
        while not release.wait(0.01):
            pass
        seen_cancel.append(token.cancelled)
        yield Finished("slow.h5", "cancelled", {}, "")
    return execute


def _config() -> RunConfig:
    return RunConfig(dataset="tiny", model="mlp_tiny", stages=[StageConfig("plain")])


@pytest.fixture
def queue(qtbot):
    """A run queue owned by a widget, as in the window: the owner is held for the whole test, so Qt
    deletes the queue and its thread with the owner and not from under a live Python wrapper."""
    from PySide6.QtWidgets import QWidget

    from workbench.gui import worker

    owner = QWidget()
    qtbot.addWidget(owner)
    q = worker.RunQueue(owner)
    yield q
    q.shutdown()
    del q, owner


def test_shutdown_reports_and_waits_for_a_run_still_finishing(qtbot, queue, monkeypatch, capfd):
    from workbench.gui import worker

    release, seen = threading.Event(), []
    monkeypatch.setattr(worker, "execute", _slow_execute(release, seen))
    with qtbot.waitSignal(queue.started, timeout=5000):
        queue.enqueue(_config())
    threading.Timer(0.5, release.set).start()      # the run finishes 0.5 s into the shutdown
    t0 = time.perf_counter()
    stopped_in_time = queue.shutdown(wait_ms=100)
    waited = time.perf_counter() - t0
    assert stopped_in_time is False
    assert waited >= 0.4                             # it waited for the run instead of abandoning it
    assert queue._thread.isFinished()
    assert seen == [True]                            # the run saw the cancel
    assert "still finishing" in capfd.readouterr().err


def test_shutdown_of_an_idle_queue_is_immediate(qtbot, queue):
    assert queue.shutdown(wait_ms=2000) is True
    assert queue._thread.isFinished()


def _answer(monkeypatch, answer):
    """Stand in for the 'A run is in progress' question; returns the list of questions asked."""
    from PySide6.QtWidgets import QMessageBox

    asked = []

    def question(parent, title, text, *args):
        asked.append(text)
        return getattr(QMessageBox.StandardButton, answer)

    monkeypatch.setattr(QMessageBox, "question", question)
    return asked


def _running_window(qtbot, window, monkeypatch, answer: str):
    """The window showing, a run started that only ends when `release` is set, and the close question
    answered `answer`: (release, what the run saw of the cancel, the questions asked)."""
    from workbench.gui import worker

    release, seen = threading.Event(), []
    monkeypatch.setattr(worker, "execute", _slow_execute(release, seen))
    asked = _answer(monkeypatch, answer)
    window.show()
    with qtbot.waitSignal(window.queue.started, timeout=5000):
        window.queue.enqueue(_config())
    return release, seen, asked


def test_closing_the_window_during_a_run_asks_and_no_keeps_it_running(qtbot, window, monkeypatch):
    release, seen, asked = _running_window(qtbot, window, monkeypatch, "No")
    window.close()
    assert len(asked) == 1 and "Cancel it and close?" in asked[0]
    assert window.isVisible() and window.queue.busy and not window.queue._token.cancelled
    release.set()
    qtbot.waitUntil(lambda: not window.queue.busy, timeout=5000)
    assert seen == [False]                           # the run was never cancelled
    window.close()                                   # idle now: closes without asking
    assert len(asked) == 1 and not window.isVisible()


def test_closing_the_window_during_a_run_waits_for_its_file(qtbot, window, monkeypatch):
    release, seen, asked = _running_window(qtbot, window, monkeypatch, "Yes")
    window.close()
    assert len(asked) == 1
    assert window.isVisible()                        # still open: the run is being cancelled
    assert "closes once its file is closed" in window.statusBar().currentMessage()
    assert window.queue.busy
    release.set()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5000)
    assert seen == [True] and not window.queue.busy
