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
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from workbench import data as data_mod
from workbench.models import zoo

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
        self.trust = QCheckBox("Allow code in checkpoint")
        self.trust.setToolTip("Loading a file that holds Python objects runs code from it: only for files "
                              "you trust. Off by default (weights only).")
        form.addRow("", self.trust)
        self.pretrain_epochs = QSpinBox()
        self.pretrain_epochs.setRange(0, 1000)
        self.pretrain_epochs.setSpecialValueText("recipe")
        self.pretrain_epochs.setToolTip("Epochs to pretrain the architecture when no checkpoint is given "
                                        "(0: the model's recipe). The reference is cached and reused.")
        form.addRow("Pretrain epochs", self.pretrain_epochs)
        layout.addWidget(model_box)

        data_box = QGroupBox("Data")
        form = QFormLayout(data_box)
        self.dataset = QComboBox()
        self.dataset.setEditable(True)
        self.dataset.addItems(data_mod.dataset_names())
        self.dataset.setToolTip("mnist, fashion-mnist, cifar10, tiny, folder:PATH or arrays:PATH")
        form.addRow("Data set", self.dataset)
        self.data_dir = QLineEdit()
        self.data_dir.setPlaceholderText("search WORKBENCH_DATA, cache, /usr/share/datasets")
        form.addRow("Data folder", _path_row(self.data_dir, self._browse_data_dir))
        self.data_status = QLabel()
        self.data_status.setWordWrap(True)
        form.addRow("", self.data_status)
        layout.addWidget(data_box)

        run_box = QGroupBox("Run")
        form = QFormLayout(run_box)
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda"])
        self.device.setToolTip("auto: CUDA when present, else CPU")
        form.addRow("Device", self.device)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        form.addRow("Seed", self.seed)
        self.train_subset = QSpinBox()
        self.train_subset.setRange(0, 10_000_000)
        self.train_subset.setSpecialValueText("all")
        self.train_subset.setSingleStep(1000)
        self.train_subset.setToolTip("Use only N training samples, for a quick look")
        form.addRow("Train samples", self.train_subset)
        self.huffman = QCheckBox("Huffman-code indices and codes")
        self.huffman.setToolTip("Storage ratio and compact export count Huffman-coded relative indices and "
                                "codebook indices (Deep Compression, stage 3). Off: fixed-width codes.")
        form.addRow("Storage", self.huffman)
        layout.addWidget(run_box)

        for w in (self.model, self.dataset, self.device):
            w.currentIndexChanged.connect(self._edited)
        self.dataset.editTextChanged.connect(self._edited)
        for w in (self.checkpoint, self.data_dir):
            w.editingFinished.connect(self._edited)
        self._edited()

    # --- API ----------------------------------------------------------------------------------
    def config_parts(self) -> dict:
        return {"model": self.model.currentData(), "checkpoint": self.checkpoint.text().strip() or None,
                "trust_checkpoint": self.trust.isChecked(), "dataset": self.dataset.currentText().strip(),
                "data_dir": self.data_dir.text().strip() or None, "device": self.device.currentText(),
                "seed": self.seed.value(), "train_subset": self.train_subset.value() or None,
                "pretrain_epochs": self.pretrain_epochs.value(), "huffman": self.huffman.isChecked()}

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
        if "huffman" in parts:
            self.huffman.setChecked(bool(parts["huffman"]))
        self._edited()

    def error(self) -> str:
        parts = self.config_parts()
        if not parts["dataset"]:
            return "choose a data set"
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
