"""Start the desktop app (optionally with runs loaded, or with the demo session queued)."""

from __future__ import annotations

import os
import sys

from workbench.core.config import RunConfig
from workbench.core.presets import get_preset, preset_stages
from workbench.engine.demo import DEMO_PRESETS


def has_display() -> bool:
    """Whether a window can be shown: a display server, or a Qt platform chosen explicitly."""
    if os.environ.get("QT_QPA_PLATFORM"):
        return True
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


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
    window = MainWindow()
    window.show()
    if runs:
        window.open_runs(runs)
    if demo_dataset:
        queue_demo(window, demo_dataset, data_dir)
    return app.exec()
