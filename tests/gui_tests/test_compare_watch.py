"""Compare > Watch folder…: the run files of a folder, now and later, are read in the thread pool into the
table; a file replaced by another run is read again, a deleted one leaves; repeats group; files that are
not runs (garbage, foreign HDF5, a run still being copied) are skipped, named once in the status line
when they stay unreadable; Stop ends it. Real runs: mlp_tiny on tiny, one epoch, made once per module."""

from __future__ import annotations

import os
import shutil
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QApplication, QFileDialog, QPushButton  # noqa: E402

from workbench.core.config import RunConfig, StageConfig  # noqa: E402
from workbench.core.store import read_run  # noqa: E402
from workbench.engine.runner import execute  # noqa: E402
from workbench.gui.compare_view import COLUMNS  # noqa: E402
from workbench.gui.folder_watch import DEBOUNCE_MS, RETRY_MS  # noqa: E402

WAIT_MS = 20_000
KEYS, ACC = ([name for name, _ in COLUMNS].index(n) for n in ("Key parameters", "Acc %"))
# Stamped as the runner names run files, so that each has its own label (run_trace.run_label)
A, B, C = ("20260101-100001-mlp_tiny-magnitude-s0.h5", "20260101-100002-mlp_tiny-magnitude-s1.h5",
           "20260101-100003-mlp_tiny-magnitude-s0.h5")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Four finished runs: a, its repeats b and d (seeds 1, 2), c (another knob); the cache of their references."""
    base = tmp_path_factory.mktemp("watch-runs")
    out = {"cache": base / "cache"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_CACHE", str(out["cache"]))
        for key, seed, params in (("a", 0, {}), ("b", 1, {}), ("d", 2, {}), ("c", 0, {"q_fc": 2.0})):
            config = RunConfig(dataset="tiny", model="mlp_tiny", out_dir=str(base / "out"), device="cpu",
                               pretrain_epochs=1, seed=seed, stages=[StageConfig("magnitude", params, {"epochs": 1})])
            fin = list(execute(config))[-1]
            assert fin.status == "completed", fin.error
            out[key] = fin.run_path
    return out


@pytest.fixture
def watched(tmp_path, runs, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(runs["cache"]))
    folder = tmp_path / "watched"
    folder.mkdir()
    return folder


def _shown(window, path) -> bool:
    return path in window.traces and window.compare._row_of(path) >= 0


def _replace(src, dst) -> None:
    """Put `src` at `dst` in one rename, as the run store writes (never half a file under the name)."""
    part = dst.with_name(f".{dst.name}.part")
    shutil.copy(src, part)
    os.replace(part, dst)


def test_watch_adds_rereads_groups_and_removes(qtbot, window, runs, watched, monkeypatch):
    a, b = watched / A, watched / B
    shutil.copy(runs["a"], a)                                    # there before the watch starts
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args: str(watched))
    (act,) = [x for x in window.menuBar().actions()[0].menu().actions() if x.text() == "&Watch folder…"]
    act.trigger()                                                # File > Watch folder…
    qtbot.waitUntil(lambda: _shown(window, str(a)), timeout=WAIT_MS)
    bar = window.compare.watch_bar
    assert not bar.isHidden() and bar.text() == f"Watching {watched} (1 run)"
    assert window.tabs.currentWidget() is window.compare.parentWidget()

    shutil.copy(runs["b"], b)                                    # a repeat written later: appears, groups
    qtbot.waitUntil(lambda: _shown(window, str(b)), timeout=WAIT_MS)
    assert window.compare.groups() == [[str(a), str(b)]]
    assert bar.text() == f"Watching {watched} (2 runs)"
    _replace(runs["d"], b)                  # a repeat replaced by another: still a group, its figures anew
    qtbot.waitUntil(lambda: window.traces[str(b)].config["seed"] == 2, timeout=WAIT_MS)
    (row,) = [r for r in range(window.compare.table.rowCount()) if window.compare._members(r)]
    acc = 100 * np.array([read_run(p).summary["test_accuracy"] for p in (runs["a"], runs["d"])])
    assert window.compare.table.item(row, ACC).text() == f"{acc.mean():.2f}\n±{acc.std(ddof=1):.2f}"

    assert "q_fc" not in window.compare.table.item(window.compare._row_of(str(a)), KEYS).text()
    _replace(runs["c"], a)                                       # the file becomes another run: read again
    qtbot.waitUntil(lambda: window.traces[str(a)].config["stages"][0]["params"].get("q_fc") == 2.0,
                    timeout=WAIT_MS)
    assert "q_fc=2" in window.compare.table.item(window.compare._row_of(str(a)), KEYS).text()
    assert window.compare.groups() == []                         # no longer b's repeat

    b.unlink()                                                   # deleted: its row leaves
    qtbot.waitUntil(lambda: str(b) not in window.traces, timeout=WAIT_MS)
    assert window.compare._row_of(str(b)) < 0 and str(b) not in window.compare.traces
    assert bar.text() == f"Watching {watched} (1 run)"
    assert "left the watched folder" in window.statusBar().currentMessage()

    notices = []
    window.watch.notice.connect(notices.append)
    shutil.rmtree(watched)                                       # the folder itself goes: the watch stops
    qtbot.waitUntil(lambda: window.watch.folder == "", timeout=WAIT_MS)
    assert str(a) not in window.traces and window.compare.table.rowCount() == 0 and bar.isHidden()
    assert notices == [f"stopped watching {watched}: No such file or directory"]

    threads = window.watch.read_threads                          # read in the pool, never on the GUI thread
    assert threads and threading.main_thread().ident not in threads
    assert window.recent.paths() == []                           # a study's trials do not flood Open recent


def test_unreadable_files_are_skipped_and_named_once(qtbot, window, runs, watched):
    (watched / "garbage.h5").write_bytes(b"not HDF5 at all " * 64)
    with h5py.File(watched / "foreign.h5", "w") as f:            # HDF5, but not ours
        f["x"] = np.arange(5)
    (watched / "study.journal").write_text("{}\n")               # a study's journal and lock: not *.h5
    (watched / "study.lock").write_text("")
    shutil.copy(runs["a"], watched / A)
    notices = []
    window.watch.notice.connect(notices.append)
    window.files.watch_folder(str(watched))
    qtbot.waitUntil(lambda: _shown(window, str(watched / A)), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: bool(notices), timeout=WAIT_MS)        # after the one retry
    (notice,) = notices
    assert "garbage.h5 is not a readable HDF5 run file" in notice
    assert "foreign.h5 is an HDF5 file but not a workbench run" in notice
    assert "garbage.h5" in window.statusBar().currentMessage()

    # a run file still being copied: half of it fails quietly; whole, it is read
    late = watched / B
    data = open(runs["b"], "rb").read()
    with open(late, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        qtbot.waitUntil(lambda: str(late) in window.watch._bad, timeout=WAIT_MS)
        f.write(data[len(data) // 2:])
    qtbot.waitUntil(lambda: _shown(window, str(late)), timeout=WAIT_MS)
    qtbot.wait(RETRY_MS + 2 * DEBOUNCE_MS)                       # another retry and scans come and go
    assert notices == [notice]                                   # named once, not on every scan
    assert QApplication.activeModalWidget() is None               # no error dialog
    assert sorted(window.traces) == sorted([str(watched / A), str(late)])
    assert window.compare.table.rowCount() == 3                  # a and b, and their group row
    assert window.compare.groups() == [[str(watched / A), str(late)]]


def test_stop_watching(qtbot, window, runs, watched, monkeypatch):
    shutil.copy(runs["a"], watched / A)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args: str(watched))
    (button,) = [b for b in window.compare.findChildren(QPushButton) if b.text() == "Watch folder…"]
    button.click()                                               # the Compare tab's button
    qtbot.waitUntil(lambda: _shown(window, str(watched / A)), timeout=WAIT_MS)
    window.compare.watch_bar.stop_button.click()
    assert window.compare.watch_bar.isHidden() and window.watch.folder == ""
    shutil.copy(runs["b"], watched / B)
    (watched / A).unlink()
    qtbot.wait(3 * DEBOUNCE_MS)
    assert list(window.traces) == [str(watched / A)]             # what was read stays; nothing new comes


def test_runs_are_listed_in_the_order_they_were_opened(qtbot, window, runs, monkeypatch):
    """The pool reads files in parallel: the first file finishing last was listed (and coloured) last."""
    import time

    from workbench.gui import run_files

    real = run_files.load_trace

    def slow_first(path):
        if path == runs["a"]:
            time.sleep(0.8)
        return real(path)

    monkeypatch.setattr(run_files, "load_trace", slow_first)
    monkeypatch.setenv("WORKBENCH_CACHE", str(runs["cache"]))
    arrived = []
    window.compare.add_or_update = lambda trace, add=window.compare.add_or_update: (arrived.append(trace.path),
                                                                                    add(trace))
    opened = [runs["a"], runs["b"], runs["c"]]
    window.open_runs(opened)
    qtbot.waitUntil(lambda: all(p in window.traces for p in opened), timeout=WAIT_MS)
    assert arrived[-1] == runs["a"]                               # it did arrive last
    assert list(window.traces) == opened
    assert [key for key in window.curves._curves] == opened       # the plots' order (and colours) too
    table = window.compare

    def rows():                                                   # the runs' own rows, not a group's
        return [p for p in map(table._path, range(table.table.rowCount())) if p]

    assert rows() == opened                                       # and the table's rows
    table.table.sortByColumn(0, Qt.DescendingOrder)               # until a column is clicked
    assert rows() == sorted(opened, key=lambda p: window.traces[p].label, reverse=True) != opened
