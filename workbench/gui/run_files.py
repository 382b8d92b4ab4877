"""The main window's run files: opened (File > Open, Open recent, dropped on the Setup panel, a study's
trials) or found in a watched folder (File > Watch folder…, the Compare tab's button), read in the thread
pool (run_trace.load_trace) and handed to every view. The File menu's entries for them are made here.

A watched folder's files are not added to Open recent (a study of 200 trials would push everything else
out). Watching is not resumed when the app starts again: the table itself starts empty each time, and
what a watch adds is that table's rows; the last watched folder is where the folder dialog opens.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu

from workbench.gui.folder_watch import FolderWatch
from workbench.gui.recent_files import RecentFiles
from workbench.gui.run_trace import RunTrace, load_trace
from workbench.gui.worker import TaskSignals, run_in_pool


class RunFiles(QObject):
    def __init__(self, window, file_menu: QMenu):
        """`window`: the main window (not imported here: the window imports this module)."""
        super().__init__(window)
        self.window = window
        self._from_files: dict[str, RunTrace] = {}     # path -> the trace last read from its file
        self._opened: dict[str, int] = {}               # path -> when it was asked for (open order)
        self._loader = TaskSignals(self)
        self._loader.done.connect(lambda path, trace: self._loaded(path, trace, recent=True))
        self._loader.failed.connect(lambda key, msg: window.show_error(f"{Path(key).name}: {msg}"))
        self.watch = FolderWatch(self)
        self.watch.loaded.connect(self._watched)
        self.watch.gone.connect(self._gone)
        self.watch.notice.connect(window.show_status)
        self.watch.changed.connect(self._watch_changed)
        bar = window.compare.watch_bar
        bar.stop_requested.connect(self.watch.stop)
        window.compare.watch_requested.connect(self.watch_dialog)
        window.compare.open_requested.connect(self.open_dialog)

        act = QAction("&Open runs…", window, shortcut=QKeySequence.Open)
        act.triggered.connect(self.open_dialog)
        file_menu.addAction(act)
        self.recent = RecentFiles(window.settings, file_menu.addMenu("Open &recent"), self.open)
        act = QAction("&Watch folder…", window)
        act.setToolTip("Add every run file of a folder to Compare, and those written there later")
        act.triggered.connect(self.watch_dialog)
        file_menu.addAction(act)
        self.stop_action = QAction("&Stop watching", window, enabled=False)
        self.stop_action.triggered.connect(self.watch.stop)
        file_menu.addAction(self.stop_action)

    # --- opening --------------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self.window, "Open run files",
                                                self.window.settings.value("out_dir", ""),
                                                "Run files (*.h5);;All files (*)")
        self.open(paths)

    def open(self, paths: list[str]) -> None:
        for path in paths:
            self.load(path)

    def load(self, path: str) -> None:
        self._opened.setdefault(path, len(self._opened))
        run_in_pool(lambda: load_trace(path), path, self._loader)      # with its deployment report

    def _loaded(self, path: str, trace: RunTrace, recent: bool = False) -> None:
        w = self.window
        # a live row update still pending holds the run's live trace ("running"): the file is newer
        w.live_refresh.discard(lambda key: key == f"table:{path}")
        old = w.traces.get(path)
        if trace.deploy is None and old is not None and old.deploy is not None:
            trace.deploy = old.deploy     # measured here but not (or not yet, when this was read) in the file
        self._from_files[path] = trace
        self._place(path, trace)
        if w.focus_path not in w.traces:
            w.focus_path = path      # nothing shown yet: the opened run fills the per-layer plots
        w.compare.add_or_update(trace)
        if recent:
            self.recent.add(path)
        if old is not None:
            w.refresh_run(path)      # read again (a run's end): its views only, staggered
        else:
            w.refresh_views()

    def _place(self, path: str, trace: RunTrace) -> None:
        """A run new to the window goes before the runs opened after it: the pool reads files in parallel
        and a large one arrived last, so a study's trials were listed (and coloured) in the order their
        files finished loading, not the order they were opened in. Other runs (live ones) stay put."""
        traces = self.window.traces
        mine = self._opened.get(path)
        if path in traces or mine is None:
            traces[path] = trace
            return
        items = list(traces.items())
        at = next((i for i, (p, _) in enumerate(items) if self._opened.get(p, -1) > mine), len(items))
        items.insert(at, (path, trace))
        traces.clear()
        traces.update(items)

    # --- watching -------------------------------------------------------------------------------------
    def watch_dialog(self) -> None:
        start = self.window.settings.value("watch_folder", "") or self.window.settings.value("out_dir", "")
        folder = QFileDialog.getExistingDirectory(self.window, "Watch a folder of run files", str(start))
        if folder:
            self.watch_folder(folder)

    def watch_folder(self, folder: str) -> None:
        self.window.settings.setValue("watch_folder", folder)
        self.watch.start(folder)
        self.window.tabs.setCurrentWidget(self.window.compare.parentWidget())

    def _live(self, path: str) -> bool:
        """The run queue's run writing `path` now: its live trace gets every point already, and a trace
        read from its file would have those points added twice. Its file is read when it finishes."""
        trace = self.window.traces.get(path)
        return trace is not None and trace is not self._from_files.get(path) and trace.status == "running"

    def _watched(self, path: str, trace: RunTrace) -> None:
        if not self._live(path):
            self._loaded(path, trace)

    def _gone(self, paths: list[str]) -> None:
        gone = [p for p in paths if not self._live(p)]
        if not gone:
            return
        for path in gone:
            self.window.traces.pop(path, None)
            self._from_files.pop(path, None)
        self.window.compare.remove_paths(gone)
        self.window.refresh_views()
        self.window.show_status(f"{len(gone)} run file{'s' if len(gone) != 1 else ''} left the watched "
                                f"folder: {', '.join(Path(p).name for p in gone)}")

    def _watch_changed(self) -> None:
        self.window.compare.watch_bar.show_state(self.watch.folder, len(self.watch.runs))
        self.stop_action.setEnabled(bool(self.watch.folder))
