"""Export a finished run's model (compact, dense, ONNX), showing the size on disk next to the accounted
size. The export itself runs in the thread pool."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from workbench.engine.export import ExportResult, export_run
from workbench.gui.messages import app_words
from workbench.gui.worker import TaskSignals, run_in_pool

SUFFIX = {"compact": ".cwbc", "dense": ".safetensors", "onnx": ".onnx"}
HELP = {
    "compact": "The small format: sparse values + relative indices (and, per method, codebooks, factors, "
               "buckets). Reload with workbench.engine.export.load_compact.",
    "dense": "A plain state_dict (safetensors + JSON config) for the original architecture; zeros "
             "materialised. Loads with stock PyTorch.",
    "onnx": "The materialised model for other runtimes.",
}


def describe_result(result: ExportResult) -> str:
    text = f"Wrote {result.path.name}: {result.size_bytes:,} bytes on disk; the accounting says " \
           f"{result.accounted_bytes:,.0f} bytes"
    if result.header_bytes:
        text += f" + {result.header_bytes:,} bytes of header"
    return text


class ExportDialog(QDialog):
    MIN_WIDTH = 560      # the help and result lines read as sentences, not as a column of words

    def __init__(self, run_path: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"Export {Path(run_path).stem}")
        self.setMinimumWidth(self.MIN_WIDTH)
        self.run_path = run_path
        self.result: ExportResult | None = None
        self.format = QComboBox()
        self.format.addItems(list(SUFFIX))
        self.path = QLineEdit()
        browse = QPushButton("…")
        browse.setFixedWidth(28)
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path)
        row.addWidget(browse)
        # Wrapping labels in a plain column: inside a QFormLayout row they were given one line's height
        # and cut (measured at 1280x800).
        self.help = QLabel()
        self.help.setWordWrap(True)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                            | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Close)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.AcceptRole)
        self.export_button.clicked.disconnect()
        self.export_button.clicked.connect(self.start)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        form.addRow("Format", self.format)
        form.addRow("File", row)
        layout.addLayout(form)
        layout.addWidget(self.help)
        layout.addWidget(self.status)
        layout.addStretch(1)
        layout.addWidget(self.buttons)
        self.format.currentTextChanged.connect(self._format_changed)
        self._format_changed(self.format.currentText())
        self._signals = TaskSignals(self)
        self._signals.done.connect(self._done)
        self._signals.failed.connect(self._failed)

    def _fit(self) -> None:
        """Grow to show the whole of a longer help or result text: a dialog keeps its size after it is
        shown, and its wrapped labels would be cut."""
        need = self.layout().heightForWidth(self.width())
        if need > self.height():
            self.resize(self.width(), need)

    def _format_changed(self, fmt: str) -> None:
        self.help.setText(HELP[fmt])
        self._fit()
        stem = Path(self.path.text() or Path(self.run_path).with_suffix("")).with_suffix("")
        self.path.setText(str(stem) + SUFFIX[fmt])

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export to", self.path.text())
        if path:
            self.path.setText(path)

    def start(self) -> None:
        self.export_button.setEnabled(False)
        self.status.setText("Exporting…")
        fmt, out = self.format.currentText(), self.path.text()
        run_in_pool(lambda: export_run(self.run_path, fmt, out), fmt, self._signals)

    def _done(self, key, result: ExportResult) -> None:
        self.result = result
        self.export_button.setEnabled(True)
        self.status.setStyleSheet("")
        self.status.setText(describe_result(result))
        self._fit()

    def _failed(self, key, message: str) -> None:
        self.export_button.setEnabled(True)
        self.status.setStyleSheet("color: #b00020;")
        self.status.setText(f"Export failed: {app_words(message)}")
        self._fit()
