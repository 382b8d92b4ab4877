"""Model, data and run options: what a run starts from."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from workbench import data as data_mod
from workbench.core import params as P
from workbench.core.config import RunSettings
from workbench.gui.forms import ParamForm
from workbench.models import zoo

RUN_BOX = ("device", "seed", "train_subset", "test_subset", "huffman")   # the Run box's settings
CHECKPOINT_FILTER = "Checkpoints (*.pt *.pth *.pt2 *.safetensors *.ckpt *.bin);;All files (*)"


def _path_row(edit: QLineEdit, browse) -> QHBoxLayout:
    """A path field with a "…" button that opens a dialog."""
    button = QPushButton("…")
    button.setFixedWidth(28)
    button.clicked.connect(browse)
    row = QHBoxLayout()
    row.addWidget(edit)
    row.addWidget(button)
    return row


class SetupPanel(QWidget):
    """Zoo model or user checkpoint, data set, device and seed."""

    changed = Signal()
    open_runs = Signal(list)       # run files dropped on the panel

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)

        model_box = QGroupBox("Model")
        form = QFormLayout(model_box)
        self.model = QComboBox()
        for key in zoo.model_keys():
            info = zoo.model_info(key)
            self.model.addItem(f"{info.label} ({key})", key)
            self.model.setItemData(self.model.count() - 1, info.description, Qt.ToolTipRole)
        form.addRow("Architecture", self.model)
        self.checkpoint = QLineEdit()
        self.checkpoint.setPlaceholderText("none: pretrain the architecture (cached)")
        self.checkpoint.setToolTip("A trained model: state_dict, workbench reference, TorchScript or .pt2. "
                                   "Drop a file here too.")
        form.addRow("Checkpoint", _path_row(self.checkpoint, self._browse_checkpoint))
        self.trust = QCheckBox("Allow code (trusted files only)")
        self.trust.setToolTip("Some model files can only be loaded by running code stored in them: pickled "
                              "Python objects and TorchScript. Such code can do anything your account can, "
                              "so tick this only for files from a source you trust. Off: weights only, and "
                              "such files are refused with the reason.\nCLI: --trust-code")
        form.addRow("", self.trust)
        # The run settings come from their one declaration (core.config.RunSettings), as the CLI's flags do.
        self.pretrain_form = ParamForm(RunSettings, fields=("pretrain_epochs",), flags=True)
        form.addRow(self.pretrain_form)
        layout.addWidget(model_box)

        data_box = QGroupBox("Data")
        form = QFormLayout(data_box)
        self.dataset = QComboBox()
        self.dataset.setEditable(True)
        self.dataset.addItems(data_mod.dataset_names())
        self.dataset.setToolTip("mnist, fashion-mnist, cifar10, tiny, folder:PATH or arrays:PATH")
        form.addRow("Data set", self.dataset)
        data_dir = next(s for s in P.specs(RunSettings) if s.name == "data_dir")
        self.data_dir = QLineEdit()
        self.data_dir.setPlaceholderText("search WORKBENCH_DATA, cache, /usr/share/datasets")
        self.data_dir.setToolTip(f"{data_dir.knob.help}\nCLI: --data-dir PATH")
        form.addRow(data_dir.knob.label, _path_row(self.data_dir, self._browse_data_dir))
        self.data_status = QLabel()
        self.data_status.setWordWrap(True)
        form.addRow("", self.data_status)
        layout.addWidget(data_box)

        run_box = QGroupBox("Run")
        box = QVBoxLayout(run_box)
        self.run_form = ParamForm(RunSettings, fields=RUN_BOX, flags=True)
        box.addWidget(self.run_form)
        layout.addWidget(run_box)

        for form in (self.run_form, self.pretrain_form):
            form.changed.connect(self._edited)
        for w in (self.model, self.dataset):
            w.currentIndexChanged.connect(self._edited)
        self.dataset.editTextChanged.connect(self._edited)
        for w in (self.checkpoint, self.data_dir):
            w.editingFinished.connect(self._edited)
        self._edited()

    # --- API ----------------------------------------------------------------------------------
    def config_parts(self) -> dict:
        return {"model": self.model.currentData(), "checkpoint": self.checkpoint.text().strip() or None,
                "trust_code": self.trust.isChecked(), "dataset": self.dataset.currentText().strip(),
                "data_dir": self.data_dir.text().strip(), **self.run_form.values(),
                **self.pretrain_form.values()}

    def set_parts(self, parts: dict) -> None:
        if parts.get("model"):
            i = self.model.findData(parts["model"])
            if i >= 0:
                self.model.setCurrentIndex(i)
        if parts.get("dataset"):
            self.dataset.setCurrentText(parts["dataset"])
        if "checkpoint" in parts:
            self.checkpoint.setText(parts.get("checkpoint") or "")
        if "data_dir" in parts:
            self.data_dir.setText(parts.get("data_dir") or "")
        for form in (self.run_form, self.pretrain_form):
            given = {k: v for k, v in parts.items() if k in form.specs and v is not None}
            if given:
                form.set_values(given)
        self._edited()

    def error(self) -> str:
        parts = self.config_parts()
        if not parts["dataset"]:
            return "choose a data set"
        for form in (self.run_form, self.pretrain_form):
            if form.error():
                return form.error()
        if parts["checkpoint"] and not Path(parts["checkpoint"]).is_file():
            return f"checkpoint not found: {parts['checkpoint']}"
        return ""

    # --- internals -------------------------------------------------------------------------------
    def _edited(self, *args) -> None:
        name = self.dataset.currentText().strip()
        if name in data_mod.dataset_names() and name != "tiny":
            where = data_mod.find_dataset(name, self.data_dir.text().strip() or None)
            text = (f"found in {where}" if where else
                    f"not found here: choose its folder above (searched "
                    f"{', '.join(str(d) for d in data_mod.search_dirs(self.data_dir.text().strip() or None))})")
            self.data_status.setText(text)
            self.data_status.setStyleSheet("" if where else "color: #b00020;")
        else:
            self.data_status.setText("")
        self.changed.emit()

    def _browse_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open checkpoint", "", CHECKPOINT_FILTER)
        if path:
            self.checkpoint.setText(path)
            self._edited()

    def _browse_data_dir(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Data folder")
        if path:
            self.data_dir.setText(path)
            self._edited()

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt API
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        runs = [p for p in paths if p.endswith(".h5")]
        others = [p for p in paths if not p.endswith(".h5")]
        if others:
            self.checkpoint.setText(others[0])
            self._edited()
        if runs:
            self.open_runs.emit(runs)
