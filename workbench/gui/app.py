"""Start the desktop app (optionally with runs loaded, or with the demo session queued)."""

from __future__ import annotations

import os
import sys
import time
from importlib import resources as _res
from pathlib import Path

from workbench.core.config import RunConfig
from workbench.core.presets import get_preset, preset_stages
from workbench.engine.demo import DEMO_PRESETS

_IMPORTED = time.monotonic()


def has_display() -> bool:
    """Whether a window can be shown: a display server, or a Qt platform chosen explicitly."""
    if os.environ.get("QT_QPA_PLATFORM"):
        return True
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def icon_path() -> Path | None:
    """The app icon (resources/icons/workbench.png): the installed package's data (wheel, desktop bundle),
    else the source tree's."""
    try:
        path = Path(str(_res.files("workbench.resources") / "icons" / "workbench.png"))
    except (ModuleNotFoundError, TypeError):       # a source checkout: `workbench.resources` is not a package
        path = None
    if path is None or not path.is_file():
        path = Path(__file__).resolve().parents[2] / "resources" / "icons" / "workbench.png"
    return path if path.is_file() else None


def queue_demo(window, dataset: str, data_dir: str | None = None) -> None:
    """The demo session: LeNet-300-100 on the default data set, both pruning papers queued."""
    window.setup.set_parts({"model": "lenet300", "dataset": dataset, "data_dir": data_dir})
    window.methods.set_stages(preset_stages(DEMO_PRESETS[0]))
    for name in DEMO_PRESETS:
        preset = get_preset(name)
        parts = window.setup.config_parts()
        parts.update(model=preset["model"], dataset=dataset, data_dir=data_dir)
        window.queue.enqueue(RunConfig(stages=preset_stages(name), preset=name,
                                       out_dir=window.settings.value("out_dir", "runs"), **parts))


def run_app(runs: list[str] | None = None, *, demo_dataset: str | None = None,
            data_dir: str | None = None) -> int:
    from PySide6.QtWidgets import QApplication

    from workbench.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Compression Workbench")
    app.setOrganizationName("compression-workbench")
    app.setDesktopFileName("compression-workbench")     # the desktop entry (packaging/): taskbar icon, grouping
    icon = icon_path()
    if icon is not None:
        from PySide6.QtGui import QIcon

        app.setWindowIcon(QIcon(str(icon)))
    window = MainWindow()
    window.show()
    if runs:
        window.open_runs(runs)
    if demo_dataset:
        queue_demo(window, demo_dataset, data_dir)
    failed: list[int] = []
    if os.environ.get("WORKBENCH_EXIT_AFTER_SHOWN"):
        _close_when_usable(window, list(runs or []), failed)
    code = app.exec()
    return failed[0] if failed else code


def _seconds_since_start() -> float:
    """Seconds since this process started (Linux /proc: the bundle's start-up counted from its loader);
    elsewhere since this module was imported."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])     # field 22: starttime
        return float(Path("/proc/uptime").read_text().split()[0]) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED


def _close_when_usable(window, runs: list[str], failed: list[int], timeout: float = 120.0) -> None:
    """WORKBENCH_EXIT_AFTER_SHOWN=1 (the desktop bundle's smoke check, packaging/smoke_bundle.py): once the
    event loop runs with the window shown and every run file given has been loaded into it, print the
    start-up time and close the window as a user would (the app ends cleanly); exit status 1 (`failed`)
    where the window shows an error or a run file is not loaded within `timeout` seconds."""
    from PySide6.QtCore import QTimer

    deadline = time.monotonic() + timeout
    timer = QTimer(window)

    def check() -> None:
        missing = [path for path in runs if path not in window.traces]
        error = window.run_bar.error_label.text()
        if missing and not error and time.monotonic() < deadline:
            return
        timer.stop()
        if missing or error:
            print(f"run file not loaded: {error or missing[0]}", file=sys.stderr, flush=True)
            failed.append(1)
        else:
            print(f"window shown, {len(runs)} run file(s) loaded: {_seconds_since_start():.2f} s after the "
                  f"process started", flush=True)
        window.close()

    timer.timeout.connect(check)
    timer.start(20)
