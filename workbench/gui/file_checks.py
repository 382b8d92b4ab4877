"""What the Setup panel needs to know from the user's files, read in the thread pool and cached by the
file's modification time: the names a .py model file defines (parsed, not run), what loading a
checkpoint would run (its pickle opcodes scanned), and why a file could not be read. The GUI thread only
stats paths (a pipe or a device would hang a reader)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from workbench.gui.input_checks import checkpoint_code, file_problem, python_names
from workbench.gui.worker import TaskSignals, run_in_pool


def stamp(path: str) -> tuple:
    """(path, mtime in ns), mtime None where the file cannot be stat'ed: the cache key of what was read."""
    try:
        return (path, Path(path).stat().st_mtime_ns)
    except OSError:
        return (path, None)


class FileChecks(QObject):
    changed = Signal()             # something new is known
    names_read = Signal(str)       # a .py file's names are in (its path)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._names: dict[str, list[str]] = {}        # .py path -> its classes and functions (ast)
        self._names_error: dict[str, str] = {}        # .py path -> why it does not parse
        self._names_read: dict[str, int] = {}         # .py path -> the mtime its names were read at
        self._checkpoint_code: dict[tuple, str] = {}  # (path, mtime) -> what loading it would run
        self._unreadable: dict[tuple, str] = {}       # (path, mtime) -> why the pool could not read it
        self._tasks = TaskSignals(self)
        self._tasks.done.connect(self._task_done)
        self._tasks.failed.connect(self._task_failed)

    # --- what is known ---------------------------------------------------------------------------
    def names(self, path: str) -> list[str] | None:
        return self._names.get(path)

    def names_error(self, path: str) -> str:
        return self._names_error.get(path, "")

    def checkpoint_code(self, path: str) -> str:
        """What loading the checkpoint would run ('' when nothing, or not known yet)."""
        return self._checkpoint_code.get(stamp(path), "")

    def unreadable(self, path: str) -> str:
        return self._unreadable.get(stamp(path), "")

    # --- reading ---------------------------------------------------------------------------------
    def read_names(self, path: str) -> None:
        """Parse the .py file (once per modification) for its module-level classes and functions."""
        if not path.endswith(".py"):
            return
        mtime = stamp(path)[1]
        if mtime is None or self._names_read.get(path) == mtime or file_problem(path, ""):
            return
        self._names_read[path] = mtime
        self._names_error.pop(path, None)
        run_in_pool(lambda: python_names(path), ("names", path), self._tasks)

    def check_checkpoint(self, path: str) -> None:
        """Scan the checkpoint (once per modification) for code its loading would run."""
        key = stamp(path) if path else None
        if key is None or key[1] is None or key in self._checkpoint_code or file_problem(path, ""):
            return
        self._checkpoint_code[key] = ""
        run_in_pool(lambda: checkpoint_code(path), ("checkpoint", *key), self._tasks)

    def _task_done(self, key, result) -> None:
        if key[0] == "names":
            self._names[key[1]] = result
            self.names_read.emit(key[1])
        else:
            self._checkpoint_code[tuple(key[1:])] = result
        self.changed.emit()

    def _task_failed(self, key, message: str) -> None:
        if key[0] == "names":
            self._names_error[key[1]] = message
        else:                                          # the checkpoint could not be read
            self._unreadable[tuple(key[1:])] = f"Checkpoint: cannot read {Path(key[1]).name}: {message}"
        self.changed.emit()
