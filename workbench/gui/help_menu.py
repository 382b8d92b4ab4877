"""The Help menu: the documentation, the keyboard shortcuts and About."""

from __future__ import annotations

from pathlib import Path

import torch
from PySide6.QtCore import QUrl, qVersion
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMessageBox

from workbench import __version__

README = Path(__file__).resolve().parents[2] / "README.md"      # in a source checkout


def about_text() -> str:
    return (f"<b>Compression Workbench</b> {__version__}<br>Compress neural networks and compare compression "
            "methods side by side: magnitude pruning, Dynamic Network Surgery, k-means weight sharing, soft "
            "weight-sharing, compression-aware low rank, HashedNets and functional hashing, on the zoo or "
            "your own .pt2, ONNX or Python model.<br><br>"
            f"PyTorch {torch.__version__}, Qt {qVersion()}. Every run is one HDF5 file that any HDF5 tool "
            f"reads. The README explains every control: {README}")


def shortcuts() -> list[tuple[str, str]]:
    return [(QKeySequence(QKeySequence.StandardKey.Open).toString(), "open run files"),
            ("F5", "run the current settings"),
            ("Shift+F5", "cancel the running run (it ends as cancelled, its file kept)"),
            ("F6", "measure the deployment of the current run (Deploy tab)"),
            (QKeySequence(QKeySequence.StandardKey.Quit).toString(), "quit (asks first while a run is going)"),
            ("Wheel", "scrolls a panel; click into a box or a list first to change it with the wheel")]


def shortcuts_text() -> str:
    return "<table>" + "".join(f"<tr><td><b>{k}</b>&nbsp;&nbsp;</td><td>{v}</td></tr>" for k, v in shortcuts()) \
        + "</table>"


def add_help_menu(window: QMainWindow) -> None:
    menu = window.menuBar().addMenu("&Help")

    def docs() -> None:
        if not (README.is_file() and QDesktopServices.openUrl(QUrl.fromLocalFile(str(README)))):
            window.statusBar().showMessage(f"the documentation is the README: {README}", 15000)

    for text, slot in (("&Documentation", docs),
                       ("&Keyboard shortcuts", lambda: QMessageBox.information(window, "Keyboard shortcuts",
                                                                               shortcuts_text())),
                       ("&About", lambda: QMessageBox.about(window, "About Compression Workbench", about_text()))):
        act = QAction(text, window)
        act.triggered.connect(slot)
        menu.addAction(act)
