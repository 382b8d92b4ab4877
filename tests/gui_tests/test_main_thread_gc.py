"""Cyclic garbage is collected on the GUI thread only (main_thread_gc): a worker thread that allocates
must not destroy Qt objects that ended up in a reference cycle."""

import gc
import threading
import weakref

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QApplication

from workbench.gui.main_thread_gc import MainThreadGC, collect_on_gui_thread


class Holder:
    pass


def _qt_garbage():
    """A Qt object only a reference cycle keeps: what a closed widget with a connected lambda leaves."""
    h = Holder()
    h.obj, h.me = QObject(), h
    destroyed_in = []
    h.obj.destroyed.connect(lambda *_: destroyed_in.append(threading.get_ident()))
    return weakref.ref(h), destroyed_in


def test_installed_once_with_automatic_collection_off(qapp):
    collector = collect_on_gui_thread(qapp)
    assert collect_on_gui_thread(qapp) is collector and isinstance(collector, MainThreadGC)
    assert not gc.isenabled() and collector.timer.isActive()


def test_a_worker_allocating_leaves_qt_garbage_to_the_gui_thread(qtbot, qapp):
    collect_on_gui_thread(qapp)
    ref, destroyed_in = _qt_garbage()
    assert ref() is not None

    def allocate():                  # far past gen-0's threshold: automatic gc would run in this thread
        junk = []
        for _ in range(20):
            junk = [[i] for i in range(20_000)]
            for item in junk:
                item.append(item)    # cycles, so the counts grow
    worker = threading.Thread(target=allocate)
    worker.start()
    worker.join()
    assert ref() is not None, "the worker's allocations collected the Qt garbage in the worker"
    qtbot.waitUntil(lambda: ref() is None, timeout=10_000)          # the GUI thread's timer did
    assert destroyed_in == [threading.main_thread().ident]


def test_what_exists_at_install_is_frozen_and_stop_turns_automatic_collection_back_on(qapp):
    """Frozen objects are left out of every collection: a full one on the GUI thread took 125 ms with
    the main window open, 1 ms with what existed then frozen."""
    before = Holder()
    collector = MainThreadGC(QApplication.instance())
    try:
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0 and not any(o is before for o in gc.get_objects())
        collector.stop()
        assert gc.isenabled() and not collector.timer.isActive()
        assert gc.get_freeze_count() == 0 and any(o is before for o in gc.get_objects())
    finally:
        collector.setParent(None)
        gc.disable()                # the session's collector (conftest) is still in charge
        gc.freeze()
