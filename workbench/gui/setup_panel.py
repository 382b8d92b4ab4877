"""Model, data and run options: what a run starts from. Each field is checked as it is typed (paths by
stat on the GUI thread, whatever reads a file in the thread pool); `error()` is why Run is disabled and
the same reason stands next to the field."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from workbench.core import devices
from workbench.core.config import RunSettings
from workbench.core.errors import WorkbenchError
from workbench.gui.data_box import DataBox, path_row
from workbench.gui.file_checks import FileChecks
from workbench.gui.fit_label import FitLabel
from workbench.gui.forms import ParamForm, shrink_combo
from workbench.gui.input_checks import file_problem
from workbench.gui.messages import app_words
from workbench.gui.model_layers import dataset_shape, shape_text
from workbench.models import zoo
from workbench.models.architecture import GRAPH_SUFFIXES, is_model_file, parse_model_spec

RUN_BOX = ("device", "seed", "train_subset", "test_subset", "huffman")   # the Run box's settings
CHECKPOINT_FILTER = "Checkpoints (*.pt *.pth *.pt2 *.safetensors *.ckpt *.bin);;All files (*)"
MODEL_FILTER = "Model files (*.pt2 *.onnx *.py);;All files (*)"
MODEL_SUFFIXES = (*GRAPH_SUFFIXES, ".py")   # dropped files of these kinds go to the model field
MODEL_FILE = "\x00file"                      # the Architecture combo's data for "a model file"
TRUST_ASK = "tick Allow code only if you trust this file"
ERROR_COLOR = "#b00020"
MAX_REPEATS = 100


def _grey_out_absent_devices(combo) -> None:
    """Devices this machine does not have stay listed (a run file may name them) but cannot be chosen;
    the tooltip says why."""
    model = combo.model()
    for i in range(combo.count()):
        why = devices.unavailable(combo.itemText(i))
        if why:
            model.item(i).setEnabled(False)
            combo.setItemData(i, why, Qt.ToolTipRole)


class SetupPanel(QWidget):
    """Zoo model or model file (FILE.pt2, FILE.onnx, FILE.py:NAME), checkpoint, data set, device and seed."""

    changed = Signal()
    open_runs = Signal(list)       # run files dropped on the panel
    model_chosen = Signal(str)     # the user picked a model file (dialog or drop): its spec

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        self._inspection: tuple = ("", "", None, "")  # what the Layers tab found: see set_model_inspection
        self.files = FileChecks(self)                 # what the pool read from the user's files
        self.files.names_read.connect(self._fill_names)
        self.files.changed.connect(self._edited)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)

        model_box = QGroupBox("Model")
        form = QFormLayout(model_box)
        self.model = QComboBox()
        shrink_combo(self.model, 12)            # "Model file (.pt2, .onnx, .py)…" widened the dock
        for key in zoo.model_keys():
            info = zoo.model_info(key)
            self.model.addItem(f"{info.label} ({key})", key)
            self.model.setItemData(self.model.count() - 1, info.description, Qt.ToolTipRole)
        self.model.insertSeparator(self.model.count())
        self.model.addItem("Model file (.pt2, .onnx, .py)…", MODEL_FILE)
        self.model.setItemData(self.model.count() - 1, "Your own architecture: a torch.export .pt2 or ONNX file "
                               "(read without running it), or FILE.py:NAME (a class or function that returns "
                               "the module; runs the file, so only with Allow code).\nCLI: --model FILE",
                               Qt.ToolTipRole)
        form.addRow("Architecture", self.model)
        self.model_file = QLineEdit()
        self.model_file.setPlaceholderText(".pt2, .onnx or .py file (or drop one here)")
        self.model_file.setToolTip("A torch.export .pt2 or an ONNX file (its graph and weights, read without "
                                   "running any code), or a Python file with a class or function that "
                                   "returns the module.\nCLI: --model FILE.pt2 | FILE.onnx | FILE.py:NAME")
        self._file_row = form.rowCount()
        form.addRow("Model file", path_row(self.model_file, self._browse_model))
        self.model_name = QComboBox()
        self.model_name.setEditable(True)
        self.model_name.setInsertPolicy(QComboBox.NoInsert)
        shrink_combo(self.model_name)
        self.model_name.lineEdit().setPlaceholderText("class or function in the file")
        self.model_name.setToolTip("NAME in FILE.py:NAME: the class (or function) that builds the model. The list "
                                   "is what the file defines at module level, read without running it. Its "
                                   "input_shape / num_classes arguments, if any, get the data set's.")
        self._name_row = form.rowCount()
        form.addRow("Name", self.model_name)
        self.checkpoint = QLineEdit()
        self.checkpoint.setPlaceholderText("none: pretrained here (cached)")
        self.checkpoint.setToolTip("A trained model: state_dict, workbench reference, TorchScript or .pt2. "
                                   "Drop a file here too.")
        form.addRow("Checkpoint", path_row(self.checkpoint, self._browse_checkpoint))
        self.checkpoint_status = FitLabel(color=ERROR_COLOR)    # missing, a folder, unreadable
        self._checkpoint_row = form.rowCount()
        form.addRow("", self.checkpoint_status)
        self.trust = QCheckBox("Allow code (trusted files only)")
        self.trust.setToolTip("Some model files can only be loaded by running code stored in them: pickled "
                              "Python objects and TorchScript. Such code can do anything your account can, "
                              "so tick this only for files from a source you trust. Off: weights only, and "
                              "such files are refused with the reason.\nCLI: --trust-code")
        form.addRow("", self.trust)
        self.code_note = FitLabel()         # what "Allow code" would let run
        self._code_row = form.rowCount()
        form.addRow("", self.code_note)
        self.model_status = FitLabel(color=ERROR_COLOR)   # the model does not fit the data, or its file
        self._status_row = form.rowCount()
        form.addRow("", self.model_status)
        self._model_form = form
        # The run settings come from their one declaration (core.config.RunSettings), as the CLI's flags do.
        self.pretrain_form = ParamForm(RunSettings, fields=("pretrain_epochs",), flags=True)
        form.addRow(self.pretrain_form)
        layout.addWidget(model_box)

        self.data_box = DataBox()
        # The window's and tests' names for the box's parts.
        self.dataset, self.data_dir = self.data_box.dataset, self.data_box.data_dir
        self.data_status, self.download_button = self.data_box.status, self.data_box.download_button
        layout.addWidget(self.data_box)

        run_box = QGroupBox("Run")
        box = QVBoxLayout(run_box)
        self.run_form = ParamForm(RunSettings, fields=RUN_BOX, flags=True)
        _grey_out_absent_devices(self.run_form.editors["device"])
        # Repeats is how many runs Run queues, not a setting of a run: not in RunSettings (nor in a run
        # file), but placed under Seed in the form's own rows so that the labels line up.
        self.repeats_box = QSpinBox()
        self.repeats_box.setRange(1, MAX_REPEATS)
        self.repeats_box.setToolTip(
            "Run queues this many runs with seeds Seed, Seed+1, ...: the Compare tab shows them as one row "
            "(mean ± std) and the ratio plot their spread. A zoo model pretrains (and caches) a reference per "
            "seed.\nCLI: --repeats N --repeat-references")
        rows = self.run_form.layout().itemAt(0).layout()           # ParamForm's form of basic fields
        seed_row, _ = rows.getWidgetPosition(self.run_form.editors["seed"])
        rows.insertRow(seed_row + 1, "Repeats", self.repeats_box)
        box.addWidget(self.run_form)
        layout.addWidget(run_box)

        for form in (self.run_form, self.pretrain_form):
            form.changed.connect(self._edited)
        for w in (self.model, self.model_name):
            w.currentIndexChanged.connect(self._edited)
        self.data_box.changed.connect(self._edited)
        self.model.activated.connect(self._model_activated)
        # Paths are checked as they are typed (stat only; whatever reads a file goes to the pool).
        for w in (self.checkpoint, self.model_file):
            w.textChanged.connect(self._edited)
        self.model_name.lineEdit().editingFinished.connect(self._edited)
        self.model_file.editingFinished.connect(self._model_file_edited)
        self.trust.toggled.connect(self._edited)
        self._edited()

    # --- API ----------------------------------------------------------------------------------
    def model_spec(self) -> str:
        """What `--model` takes: a zoo key, FILE.pt2, FILE.onnx or FILE.py:NAME ('' for no file yet)."""
        key = self.model.currentData()
        if key != MODEL_FILE:
            return key
        path = self.model_file.text().strip()
        name = self.model_name.currentText().strip()
        return f"{path}:{name}" if path.endswith(".py") and name else path

    def set_model_spec(self, spec: str) -> None:
        """Show a zoo key or a model file spec (FILE.py:NAME split into the file and the name)."""
        spec = (spec or "").strip()
        if spec in zoo.model_keys():
            self.model.setCurrentIndex(self.model.findData(spec))
            return
        if not spec or not is_model_file(spec):
            return                   # e.g. a zoo key this version does not have: keep the current model
        file, sep, name = spec.rpartition(":")
        path, name = (file, name) if sep and file.endswith(".py") else (spec, "")
        for w in (self.model, self.model_name):
            w.blockSignals(True)
        try:
            self.model.setCurrentIndex(self.model.findData(MODEL_FILE))
            self.model_file.setText(path)
            self.model_name.setCurrentText(name)
        finally:
            for w in (self.model, self.model_name):
                w.blockSignals(False)
        self._fill_names(path)
        self.files.read_names(path)
        self._edited()

    def set_model_inspection(self, spec: str, built_for: str, input_shape, error: str) -> None:
        """What the Layers tab found building `spec` (for data set `built_for`; '' for a graph file, which
        brings its own shape, or a data set of unknown shape): a graph's own input shape, or why it failed."""
        self._inspection = (spec, built_for, tuple(input_shape) if input_shape else None, error or "")
        self._edited()

    def code_reason(self) -> str:
        """What Run would execute from the user's files, in one line ('' when nothing)."""
        lines = []
        spec = self.model_spec()
        if self.model.currentData() == MODEL_FILE and ".py:" in spec:
            try:
                arch = parse_model_spec(spec)
            except WorkbenchError:
                arch = None
            if arch is not None and arch.runs_code:
                lines.append(f"{arch.path.name} will be imported and {arch.name}() called")
        checkpoint = self.checkpoint.text().strip()
        if checkpoint:
            reason = self.files.checkpoint_code(checkpoint)
            if reason:
                lines.append(reason)
        return "; ".join(lines) + f": {TRUST_ASK}" if lines else ""

    def model_problem(self) -> str:
        """Why the chosen model cannot run on the chosen data set, in one line ('' when it can, or when
        that is known only once the data set is loaded)."""
        spec = self.model_spec()
        dataset = self.dataset.currentText().strip()
        seen, built_for, shape, error = self._inspection
        if self.model.currentData() != MODEL_FILE:     # a zoo model too small for the data set's images
            return error if error and seen == spec and built_for == dataset else ""
        if not spec:
            return "choose a model file: a .pt2, an .onnx, or a .py file and the class or function in it"
        unreadable = file_problem(self.model_file.text().strip(), "Model file")
        if unreadable:
            return unreadable
        if self.files.names_error(self.model_file.text().strip()):
            return self.files.names_error(self.model_file.text().strip())
        try:
            arch = parse_model_spec(spec)
        except WorkbenchError as exc:
            return str(exc)
        if seen != spec:
            return ""
        if error and (arch.kind in GRAPH_SUFFIXES.values() or built_for == dataset):
            return error if arch.path.name in error else f"{arch.path.name}: {error}"
        known = dataset_shape(dataset)
        if shape and known and tuple(shape) != tuple(known[0]):
            return (f"{arch.label} takes inputs of shape {shape_text(shape)} but {dataset} has "
                    f"{shape_text(known[0])}: choose a data set of that shape")
        return ""

    def repeats(self) -> int:
        """How many runs Run queues (seeds Seed, Seed+1, ...)."""
        return self.repeats_box.value()

    def config_parts(self) -> dict:
        return {"model": self.model_spec(), "checkpoint": self.checkpoint.text().strip() or None,
                "trust_code": self.trust.isChecked(), "dataset": self.dataset.currentText().strip(),
                "data_dir": self.data_dir.text().strip(), **self.run_form.values(),
                **self.pretrain_form.values()}

    def set_parts(self, parts: dict) -> None:
        if parts.get("model"):
            self.set_model_spec(parts["model"])
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

    def checkpoint_problem(self) -> str:
        """Why the checkpoint cannot be read ('' when there is none or it can): the file system's answer,
        or what the pool found reading it."""
        path = self.checkpoint.text().strip()
        if not path:
            return ""
        return file_problem(path, "Checkpoint") or self.files.unreadable(path)

    def error(self) -> str:
        """Why Run cannot start with these settings, in one line ('' when it can)."""
        for problem in (self.data_box.problem, self.model_problem, self.checkpoint_problem):
            if problem():
                return problem()
        if self.code_reason() and not self.trust.isChecked():
            return self.code_reason()
        for form in (self.run_form, self.pretrain_form):
            if form.error():
                return form.error()
        return ""

    # --- internals -------------------------------------------------------------------------------
    def _edited(self, *args) -> None:
        self._show_model()
        self.data_box.refresh()
        self.changed.emit()

    def _show_model(self) -> None:
        """The rows and lines that depend on the model: file and name rows, the code note, the problem."""
        file_mode = self.model.currentData() == MODEL_FILE
        path = self.model_file.text().strip()
        form = self._model_form
        form.setRowVisible(self._file_row, file_mode)
        form.setRowVisible(self._name_row, file_mode and path.endswith(".py"))
        if file_mode and path.endswith(".py"):
            self.files.read_names(path)
        kind = Path(path).suffix.lower() if file_mode else ""
        self.checkpoint.setPlaceholderText(
            "none: the file's own weights" if kind in GRAPH_SUFFIXES else
            "none: fresh weights, pretrained first" if kind == ".py" else "none: pretrained here (cached)")
        self.files.check_checkpoint(self.checkpoint.text().strip())
        checkpoint = app_words(self.checkpoint_problem())
        self.checkpoint_status.setText(checkpoint)
        form.setRowVisible(self._checkpoint_row, bool(checkpoint))
        reason = self.code_reason()
        if reason and self.trust.isChecked():
            self.code_note.setText("Allowed: " + reason.removesuffix(f": {TRUST_ASK}"))
            self.code_note.setStyleSheet("color: #555555;")
        else:
            self.code_note.setText(reason)
            self.code_note.setStyleSheet("color: #b00020;")
        form.setRowVisible(self._code_row, bool(reason))
        problem = app_words(self.model_problem()) if path or not file_mode else ""
        self.model_status.setText(problem)
        form.setRowVisible(self._status_row, bool(problem))

    def _model_activated(self, index: int) -> None:
        """The user chose "Model file…" with no file yet: ask for one."""
        if self.model.itemData(index) == MODEL_FILE and not self.model_file.text().strip():
            self._browse_model()

    def _model_file_edited(self) -> None:
        text = self.model_file.text().strip()
        file, sep, name = text.rpartition(":")
        if sep and file.endswith(".py"):           # FILE.py:NAME typed into the file field
            self.model_file.setText(file)
            self.model_name.setCurrentText(name)
        self._edited()

    def _fill_names(self, path: str) -> None:
        """The Name list from the file's parse; with no name chosen yet, its first model class."""
        names = self.files.names(path)
        if not names or self.model_file.text().strip() != path:
            return
        current = self.model_name.currentText().strip()
        self.model_name.blockSignals(True)
        try:
            self.model_name.clear()
            self.model_name.addItems(names)
            self.model_name.setCurrentText(current or names[0])
        finally:
            self.model_name.blockSignals(False)

    def _browse_model(self) -> None:
        start = str(Path(self.model_file.text().strip()).parent) if self.model_file.text().strip() else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open model file", start, MODEL_FILTER)
        if path:
            self._choose_model_file(path)
        elif not self.model_file.text().strip():
            self.model.setCurrentIndex(0)         # cancelled with no file: back to a zoo model

    def _choose_model_file(self, path: str) -> None:
        self.set_model_spec(path)        # a .py file: its first model class is offered as NAME
        self.model_chosen.emit(self.model_spec())

    def _browse_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open checkpoint", "", CHECKPOINT_FILTER)
        if path:
            self.checkpoint.setText(path)
            self._edited()

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt API
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        runs = [p for p in paths if p.endswith(".h5")]
        models = [p for p in paths if p.lower().endswith(MODEL_SUFFIXES)]
        others = [p for p in paths if not p.endswith(".h5") and p not in models]
        if models:
            self._choose_model_file(models[0])
        if others:
            self.checkpoint.setText(others[0])
            self._edited()
        if runs:
            self.open_runs.emit(runs)
