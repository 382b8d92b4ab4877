"""The File menu's "Open recent": run files opened lately, newest first, kept in the app's settings."""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMenu

MAX_RECENT = 10


class RecentFiles:
    def __init__(self, settings: QSettings, menu: QMenu, open_paths: Callable[[list[str]], None]):
        self.settings, self.menu, self.open_paths = settings, menu, open_paths
        self._refresh()

    def paths(self) -> list[str]:
        value = self.settings.value("recent", [])
        return [value] if isinstance(value, str) else list(value or [])   # QSettings gives one as a str

    def add(self, path: str) -> None:
        rest = [p for p in self.paths() if p != path]
        self.settings.setValue("recent", [path] + rest[: MAX_RECENT - 1])
        self._refresh()

    def _refresh(self) -> None:
        self.menu.clear()
        for path in self.paths():
            act = self.menu.addAction(path)
            act.triggered.connect(lambda checked=False, p=path: self.open_paths([p]))
        self.menu.setEnabled(bool(self.paths()))
