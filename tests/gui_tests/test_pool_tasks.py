"""run_in_pool: results come back as signals on the GUI thread, and a task whose asker was destroyed
while it ran neither crashes nor delivers (the asker's TaskSignals used to be emitted on from the worker
while the GUI thread destroyed it)."""

import threading

import shiboken6
from PySide6.QtCore import QObject

from workbench.gui.worker import TaskSignals, _Relay, run_in_pool


class Asker(QObject):
    def __init__(self):
        super().__init__()
        self.signals = TaskSignals(self)
        self.got = []
        self.signals.done.connect(lambda key, result: self.got.append(("done", key, result, threading.get_ident())))
        self.signals.failed.connect(lambda key, message: self.got.append(("failed", key, message)))


def _relays(qapp):
    return [r for r in qapp.findChildren(_Relay) if shiboken6.isValid(r)]


def test_results_and_errors_arrive_on_the_gui_thread_and_the_relays_go(qtbot, qapp):
    asker = Asker()
    run_in_pool(lambda: 42, "answer", asker.signals)

    def fails():
        raise ValueError("no such file\nsecond line")
    run_in_pool(fails, "broken", asker.signals)
    qtbot.waitUntil(lambda: len(asker.got) == 2, timeout=5000)
    by_kind = {g[0]: g for g in asker.got}
    assert by_kind["done"] == ("done", "answer", 42, threading.main_thread().ident)
    assert by_kind["failed"] == ("failed", "broken", "no such file")
    qtbot.waitUntil(lambda: not _relays(qapp), timeout=5000)       # each deleted once its task ended


def test_an_asker_destroyed_while_its_task_runs_gets_nothing_and_nothing_crashes(qtbot, qapp):
    asker = Asker()
    started, release = threading.Event(), threading.Event()

    def slow():
        started.set()
        release.wait(5)
        return "late"
    run_in_pool(slow, "slow", asker.signals)
    assert started.wait(5)
    got = asker.got
    shiboken6.delete(asker)                 # the window closed: its children go with it, on this thread
    release.set()
    qtbot.waitUntil(lambda: not _relays(qapp), timeout=5000)       # the task ended and its relay went
    qtbot.wait(50)
    assert got == []
