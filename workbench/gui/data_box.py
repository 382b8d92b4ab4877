"""The setup panel's Data box: the data set, the folder searched first, and a line saying where the set
was found or why it cannot be loaded (checked as the user types; a named set that can be fetched gets a
Download button, the download running in the thread pool)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLineEdit, QPushButton

from workbench import data as data_mod
from workbench.core import params as P
from workbench.core.config import RunSettings
from workbench.data import download as data_download
from workbench.gui.fit_label import FitLabel
from workbench.gui.forms import shrink_combo
from workbench.gui.input_checks import dataset_problem, downloadable
from workbench.gui.messages import app_words
from workbench.gui.worker import TaskSignals, run_in_pool

ERROR_COLOR = "#b00020"


def path_row(edit: QLineEdit, browse) -> QHBoxLayout:
    """A path field with a "…" button that opens a dialog."""
    button = QPushButton("…")
    button.setFixedWidth(28)
    button.clicked.connect(browse)
    row = QHBoxLayout()
    row.addWidget(edit)
    row.addWidget(button)
    return row


class DataBox(QGroupBox):
    changed = Signal()

    def __init__(self, parent=None):
        super().__init__("Data", parent)
        self._downloads: dict[str, str] = {}          # data set -> "" while fetching, else why it failed
        self._tasks = TaskSignals(self)
        self._tasks.done.connect(self._fetched)
        self._tasks.failed.connect(self._fetch_failed)
        form = QFormLayout(self)
        self.dataset = QComboBox()
        self.dataset.setEditable(True)
        self.dataset.addItems(data_mod.dataset_names())
        shrink_combo(self.dataset)
        self.dataset.setToolTip("mnist, fashion-mnist, cifar10, tiny, folder:PATH or arrays:PATH")
        form.addRow("Data set", self.dataset)
        data_dir = next(s for s in P.specs(RunSettings) if s.name == "data_dir")
        self.data_dir = QLineEdit()
        self.data_dir.setPlaceholderText("none: the usual places (see tooltip)")
        self.data_dir.setToolTip(f"{data_dir.knob.help}\nCLI: --data-dir PATH")
        form.addRow(data_dir.knob.label, path_row(self.data_dir, self._browse))
        self.status = FitLabel()              # where the set was found, or why it cannot be loaded
        self.download_button = QPushButton("Download")
        self.download_button.setToolTip("Fetch the data set into the cache (checksums checked)")
        self.download_button.clicked.connect(self.download)
        self.download_button.hide()
        row = QHBoxLayout()
        row.addWidget(self.status, 1)
        row.addWidget(self.download_button, 0, Qt.AlignmentFlag.AlignTop)
        form.addRow("", row)
        self.dataset.currentIndexChanged.connect(self._edited)
        self.dataset.editTextChanged.connect(self._edited)
        self.data_dir.textChanged.connect(self._edited)    # stat only: cheap enough for every keystroke

    def name(self) -> str:
        return self.dataset.currentText().strip()

    def folder(self) -> str:
        return self.data_dir.text().strip()

    def problem(self) -> str:
        """Why the data set cannot be loaded as chosen, in one line ('' when, as far as the file system
        tells, it can)."""
        return dataset_problem(self.name(), self.folder())[0]

    def refresh(self) -> None:
        problem, where = dataset_problem(self.name(), self.folder())
        key = downloadable(self.name()) if problem else ""
        fetching = self._downloads.get(key) == ""
        if fetching:
            text = f"downloading {self.name()}…"
        elif self._downloads.get(key):
            text = f"{app_words(problem)}; the download failed: {self._downloads[key]}"
        else:
            text = app_words(problem) or (f"found in {where}" if where else "")
        self.status.setText(text)
        self.status.setStyleSheet(f"color: {ERROR_COLOR};" if problem and not fetching else "")
        self.status.setVisible(bool(text))
        self.download_button.setVisible(bool(key))
        self.download_button.setEnabled(not fetching)

    def download(self) -> None:
        key = downloadable(self.name())
        if key and self._downloads.get(key) != "":
            self._downloads[key] = ""
            run_in_pool(lambda: str(data_download.download(key)), key, self._tasks)
            self._edited()

    def _fetched(self, key, _folder) -> None:
        self._downloads.pop(key, None)              # found now: the status line says where
        self._edited()

    def _fetch_failed(self, key, message: str) -> None:
        self._downloads[key] = message
        self._edited()

    def _edited(self, *_args) -> None:
        self.refresh()
        self.changed.emit()

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Data folder")
        if path:
            self.data_dir.setText(path)
