"""Watching a folder that runs fill (a tuning study's trials, `run --repeats`, another process's runs):
every run file in it, now and later, is read into the app; changed files are read again, deleted ones
leave.

How. A QFileSystemWatcher on the folder (files added, removed or renamed into it) and on each file in it
(a file written in place, e.g. by `cp`); any of its signals starts a debounce timer that is not restarted
by later signals, so a burst of writes (a run replaces its file after every point) is one scan at most
every DEBOUNCE_MS. A scan runs in the thread pool (run_in_pool, as File > Open reads): it lists the
folder's *.h5 files, stats them and reads, with the app's own reader (run_trace.load_trace), only those
whose signature (mtime, size, inode) changed since they were last read. One scan at a time; a change
during a scan is scanned after it.

Run files are never seen half written: the run store replaces a file by renaming a whole image over it
(core/file_image.py; its temporary `.NAME.h5.part` is not *.h5), so a running run is read as of its last
point and read again at each later one, until it ends. Other files may be: a file that cannot be read
(being copied, foreign HDF5, corrupt, not HDF5 at all) is skipped quietly and read again after RETRY_MS
and on its next change; one that still fails unchanged after that is named once in the status line (a
notice), never in a dialog, and stays skipped until it changes.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QEvent, QFileSystemWatcher, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget

from workbench.gui.run_trace import RunTrace, load_trace
from workbench.gui.worker import TaskSignals, run_in_pool

DEBOUNCE_MS = 700       # a burst of writes (one per run point) -> one scan
RETRY_MS = 2000         # a file that failed is read once more after this, before it is called unreadable


def signature(path: str) -> tuple[int, int, int] | None:
    """What tells a changed file: its mtime, size and inode (a run's new image is a new inode)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def run_files(folder: str) -> list[str]:
    """The folder's *.h5 files, not hidden ones (editors' and copiers' temporary files), by name."""
    with os.scandir(folder) as entries:
        return sorted(e.path for e in entries
                      if e.name.lower().endswith(".h5") and not e.name.startswith(".") and e.is_file())


@dataclass
class Scan:
    """What one scan found: every run file's signature, the traces of those read now, why others failed."""

    seen: dict[str, tuple] = field(default_factory=dict)
    read: dict[str, RunTrace] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    missing: str = ""               # why the folder itself could not be listed
    folder_gone: bool = False       # ... because it is no longer there (its runs are gone with it)
    thread: int = 0                 # the thread that read the files (never the GUI thread)


def scan_folder(folder: str, known: dict[str, tuple]) -> Scan:
    """List `folder` and read the run files whose signature is not the one in `known` (thread pool)."""
    scan = Scan(thread=threading.get_ident())
    try:
        paths = run_files(folder)
    except OSError as exc:
        scan.missing = exc.strerror or str(exc)
        scan.folder_gone = isinstance(exc, (FileNotFoundError, NotADirectoryError))
        return scan
    for path in paths:
        sig = signature(path)
        if sig is None:                     # deleted between the listing and now
            continue
        scan.seen[path] = sig               # taken before the read: a change during it is read next time
        if known.get(path) == sig:
            continue
        try:
            scan.read[path] = load_trace(path)
        except Exception as exc:  # noqa: BLE001 - any file may sit in the folder; none may stop the watch
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            scan.failed[path] = text.replace(path, Path(path).name)
    return scan


class FolderWatch(QObject):
    """One folder at a time. `loaded(path, trace)` for each run file read (new or changed), `gone(paths)`
    for run files that left the folder, `notice(text)` for the status line, `changed()` when the folder
    or its number of runs changed (the Compare tab's watch bar)."""

    loaded = Signal(str, object)
    gone = Signal(list)
    notice = Signal(str)
    changed = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.folder = ""
        self.read_threads: set[int] = set()       # the threads scans ran on (tests check: not the GUI's)
        self._runs: dict[str, tuple] = {}          # run files read, -> signature when read
        self._bad: dict[str, tuple] = {}           # files that failed, -> signature when they failed
        self._retried: set[str] = set()            # failed, read once more, failed again unchanged
        self._generation = 0                       # bumped by start/stop: late scans of an old watch drop
        self._scanning = self._again = False
        self._want_retry = False                   # the next scan reads failed files again, changed or not
        self._watcher: QFileSystemWatcher | None = None
        self._debounce = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._debounce.timeout.connect(self._scan)
        self._retry = QTimer(self, singleShot=True, interval=RETRY_MS)
        self._retry.timeout.connect(self._scan_retry)
        self._signals = TaskSignals(self)
        self._signals.done.connect(self._scanned)
        self._signals.failed.connect(lambda key, msg: self._scanned(key, Scan(missing=msg)))

    @property
    def runs(self) -> list[str]:
        """The run files of the watched folder read so far."""
        return list(self._runs)

    def start(self, folder: str) -> None:
        """Watch `folder` (instead of the one watched): its run files are read at once."""
        self.stop()
        self.folder = str(Path(folder).resolve())
        self._watcher = QFileSystemWatcher([self.folder], self)
        self._watcher.directoryChanged.connect(self._touched)
        self._watcher.fileChanged.connect(self._touched)
        self.changed.emit()
        self._scan()

    def stop(self) -> None:
        """Stop following the folder; what was read stays in the app."""
        if not self.folder:
            return
        self._generation += 1
        self._debounce.stop()
        self._retry.stop()
        if self._watcher is not None:
            self._watcher.deleteLater()
            self._watcher = None
        self.folder = ""
        self._runs.clear()
        self._bad.clear()
        self._retried.clear()
        self._scanning = self._again = self._want_retry = False
        self.changed.emit()

    # --- scanning -------------------------------------------------------------------------------------
    def _touched(self, _path: str = "") -> None:
        if not self._debounce.isActive():      # not restarted: a steady stream of writes still gets scans
            self._debounce.start()

    def _scan_retry(self) -> None:
        self._want_retry = True
        self._scan()

    def _scan(self) -> None:
        if not self.folder:
            return
        if self._scanning:
            self._again = True
            return
        self._scanning = True
        known = dict(self._runs)
        if not self._want_retry:     # unchanged failed files are not read again, except by the one retry
            known.update(self._bad)
        self._want_retry = False
        folder, key = self.folder, self._generation
        run_in_pool(lambda: scan_folder(folder, known), key, self._signals)

    def _scanned(self, key: int, scan: Scan) -> None:
        if key != self._generation:                # a scan of a watch since stopped or replaced
            return
        self._scanning = False
        self.read_threads.add(scan.thread)
        if scan.missing:
            folder, runs = self.folder, self.runs
            self.stop()
            if scan.folder_gone and runs:          # deleted with their folder; otherwise they stay, as after Stop
                self.gone.emit(runs)
            self.notice.emit(f"stopped watching {folder}: {scan.missing}")
            return
        left = [p for p in self._runs if p not in scan.seen]
        for path in left:
            del self._runs[path]
        for path in [p for p in self._bad if p not in scan.seen]:
            del self._bad[path]
            self._retried.discard(path)
        self._follow(scan.seen)
        if left:
            self.gone.emit(left)
        for path, trace in scan.read.items():
            self._runs[path] = scan.seen[path]
            self._bad.pop(path, None)
            self._retried.discard(path)
            self.loaded.emit(path, trace)
        self._failed(scan)
        self.changed.emit()
        if self._again:
            self._again = False
            self._touched()

    def _failed(self, scan: Scan) -> None:
        """A file that fails is read again once after RETRY_MS (it may have been half copied); failing again
        unchanged, it is named once in the status line and left alone until it changes."""
        newly, unreadable = False, []
        for path, why in scan.failed.items():
            # A run read before that fails now keeps its row (as last read) until it reads again.
            if self._bad.get(path) == scan.seen[path] and path not in self._retried:
                self._retried.add(path)
                name = Path(path).name      # the reader's messages begin with the file's name
                unreadable.append(why if why.startswith(name) else f"{name}: {why}")
            elif self._bad.get(path) != scan.seen[path]:
                self._bad[path] = scan.seen[path]
                self._retried.discard(path)
                newly = True
        if newly:
            self._retry.start()
        if unreadable:
            self.notice.emit("skipped in the watched folder: " + "; ".join(unreadable))

    def _follow(self, seen: dict[str, tuple]) -> None:
        """Watch the folder's files as they are now: a file replaced by a rename is a new inode, whose
        writes the old watch would miss."""
        if self._watcher is None:
            return
        if self._watcher.files():
            self._watcher.removePaths(self._watcher.files())
        if seen:
            self._watcher.addPaths(list(seen))


class WatchBar(QWidget):
    """ "Watching DIR (N runs) [Stop]" above the Compare table, hidden when no folder is watched; the
    folder is elided in the middle where the row is too narrow (whole in the tooltip)."""

    stop_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.folder, self.count = "", 0
        self.label = QLabel()
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.label.setMinimumWidth(120)
        self.label.installEventFilter(self)    # elided again whenever the label's width changes
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop watching the folder; its runs stay in the table")
        self.stop_button.clicked.connect(self.stop_requested)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label, 1)        # no wider than its text (_elide): Stop follows the text
        layout.addWidget(self.stop_button)
        layout.addStretch(0)
        self.setVisible(False)

    def show_state(self, folder: str, count: int) -> None:
        self.folder, self.count = folder, count
        self.setVisible(bool(folder))
        self.label.setToolTip(f"new and changed run files in {folder} are added to the table as they are "
                              "written; deleted ones leave it" if folder else "")
        self._elide()

    def text(self) -> str:
        """The whole text (the label may show the folder elided)."""
        return f"Watching {self.folder} ({self._runs()})" if self.folder else ""

    def _runs(self) -> str:
        return f"{self.count} run{'' if self.count == 1 else 's'}"

    def _elide(self) -> None:
        if not self.folder:
            self.label.setText("")
            return
        metrics = self.label.fontMetrics()
        self.label.setMaximumWidth(metrics.horizontalAdvance(self.text()) + 8)
        rest = metrics.horizontalAdvance(f"Watching  ({self._runs()})")
        folder = metrics.elidedText(self.folder, Qt.ElideMiddle, max(self.label.width() - rest, 40))
        self.label.setText(f"Watching {folder} ({self._runs()})")

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt API
        if watched is self.label and event.type() == QEvent.Type.Resize:
            self._elide()
        return False
