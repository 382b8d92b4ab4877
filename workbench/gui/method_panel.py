"""Choose a method, set its knobs and the training knobs, load presets, and build a pipeline of stages.

The forms come from the declarations (`ParamForm`), so this panel knows nothing about any one method.
Validation is `params.build` (through the forms and `_stage_error`), the same rules as the CLI.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from workbench.core import params as P
from workbench.core.config import StageConfig, TrainParams
from workbench.core.errors import WorkbenchError
from workbench.core.preset_text import spread_text
from workbench.core.presets import list_presets
from workbench.gui.forms import ParamForm, shrink_combo
from workbench.methods import get_method, method_keys

_PICK = "Load a preset…"


def _ordered_keys() -> list[str]:
    # Plain training is the baseline, not a choice among compression methods: list it last.
    keys = method_keys()
    return [k for k in keys if k != "plain"] + [k for k in keys if k == "plain"]


def _stage_error(stage: StageConfig) -> str:
    """What the run loop would refuse in this stage, as one line ('' when it would run)."""
    try:
        P.build(get_method(stage.method).Params, stage.params)
        P.build(TrainParams, stage.train)
    except (WorkbenchError, ValueError, TypeError) as e:
        return str(e)
    return ""


def _changes(cls: type, values: dict) -> str:
    """`name=value` for the values that differ from the declared defaults (what makes a stage itself)."""
    return " ".join(f"{k}={P.format_value(v)}" for k, v in P.changed(cls, values).items())


def stage_summary(stage: StageConfig) -> str:
    """One line: the method and the knobs it changes, e.g. `dns: gamma=0.001 | epochs=60 lr=0.02`."""
    try:
        method = _changes(get_method(stage.method).Params, stage.params)
    except WorkbenchError:
        method = " ".join(f"{k}={v}" for k, v in stage.params.items())
    train = _changes(TrainParams, stage.train)
    return f"{stage.method}: {method or 'defaults'} | {train or 'default training'}"


class MethodPanel(QWidget):
    changed = Signal()
    validity_changed = Signal(bool, str)   # (valid, one-line error): the Run button follows it
    preset_chosen = Signal(dict)           # the whole preset, so the window can take its model/dataset

    def __init__(self, parent=None):
        super().__init__(parent)
        self._pipeline: list[StageConfig] = []
        self._loading = False                 # one validity/changed emission per load, not per field
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)

        self.method_list = QListWidget()
        for key in _ordered_keys():
            cls = get_method(key)
            item = QListWidgetItem(cls.label)
            item.setData(Qt.ItemDataRole.UserRole, key)
            item.setToolTip("\n".join(t for t in (cls.summary, cls.paper) if t))
            self.method_list.addItem(item)
        self.method_list.setMaximumHeight(self.method_list.sizeHintForRow(0) * (self.method_list.count()
                                                                                 + 1) + 8)
        layout.addWidget(QLabel("Method"))
        layout.addWidget(self.method_list)

        row = QHBoxLayout()
        self.preset_combo = QComboBox()
        shrink_combo(self.preset_combo)           # long preset names must not widen the dock
        self.all_presets = QCheckBox("all methods")
        self.all_presets.setToolTip("List the presets of every method, not only the selected one.")
        row.addWidget(self.preset_combo, 1)
        row.addWidget(self.all_presets)
        layout.addLayout(row)

        # One form per method, kept while another is shown: switching back keeps the user's edits.
        self.method_forms: dict[str, ParamForm] = {}
        self.method_stack = QStackedWidget()
        for key in _ordered_keys():
            form = ParamForm(get_method(key).Params)
            form.changed.connect(self._refresh)
            self.method_forms[key] = form
            self.method_stack.addWidget(form)
        self.method_box = QGroupBox("Method parameters")
        QVBoxLayout(self.method_box).addWidget(self.method_stack)
        layout.addWidget(self.method_box)

        self.train_form = ParamForm(TrainParams)
        self.train_form.changed.connect(self._refresh)
        train_box = QGroupBox("Training")
        QVBoxLayout(train_box).addWidget(self.train_form)
        layout.addWidget(train_box)

        pipe_box = QGroupBox("Pipeline")
        pipe = QVBoxLayout(pipe_box)
        self.pipeline_hint = QLabel()
        self.pipeline_hint.setWordWrap(True)
        self.pipeline_list = QListWidget()
        self.pipeline_list.setMaximumHeight(110)   # the panel sits in a scrolled dock: no need to grow
        buttons = QHBoxLayout()
        self.add_button = QPushButton("Add stage")
        self.add_button.setToolTip("Append the method and values above as the next stage.")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected stage.")
        # Arrows rather than four text buttons: the row set the dock's minimum width.
        self.up_button = QToolButton(arrowType=Qt.ArrowType.UpArrow, toolTip="Move the selected stage up.")
        self.down_button = QToolButton(arrowType=Qt.ArrowType.DownArrow,
                                       toolTip="Move the selected stage down.")
        for b in (self.add_button, self.remove_button):
            buttons.addWidget(b, 1)
        for b in (self.up_button, self.down_button):
            buttons.addWidget(b)
        pipe.addWidget(self.pipeline_hint)
        pipe.addWidget(self.pipeline_list)
        pipe.addLayout(buttons)
        layout.addWidget(pipe_box)
        layout.addStretch(1)

        self.method_list.currentRowChanged.connect(self._method_row_changed)
        self.preset_combo.activated.connect(self._preset_activated)
        self.all_presets.toggled.connect(self._fill_presets)
        self.add_button.clicked.connect(self.add_stage)
        self.remove_button.clicked.connect(lambda: self.remove_stage(self.pipeline_list.currentRow()))
        self.up_button.clicked.connect(lambda: self.move_stage(self.pipeline_list.currentRow(), -1))
        self.down_button.clicked.connect(lambda: self.move_stage(self.pipeline_list.currentRow(), +1))
        self.pipeline_list.currentRowChanged.connect(self._update_buttons)
        self.method_list.setCurrentRow(0)

    # -- method ----------------------------------------------------------------------------------------

    def current_method(self) -> str:
        item = self.method_list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else ""

    def select_method(self, key: str) -> None:
        if key not in self.method_forms:
            raise KeyError(f"unknown method {key!r}; known: {', '.join(self.method_forms)}")
        self.method_list.setCurrentRow(list(self.method_forms).index(key))

    def method_form(self, key: str | None = None) -> ParamForm:
        return self.method_forms[key or self.current_method()]

    def _method_row_changed(self, _row: int) -> None:
        key = self.current_method()
        self.method_stack.setCurrentWidget(self.method_forms[key])
        # The key, not the label: a group box is at least as wide as its title ("Compression-aware low
        # rank (Alvarez 2017): parameters" widened the dock past 1280x800's column).
        self.method_box.setTitle(f"Parameters: {key}")
        self.method_box.setToolTip(f"{get_method(key).label}: its parameters")
        self._fill_presets()
        self._refresh()

    # -- presets ---------------------------------------------------------------------------------------

    def refresh_presets(self) -> None:
        """Re-list the presets (after a user preset was saved)."""
        self._fill_presets()

    def _fill_presets(self, *_args) -> None:
        key = self.current_method()
        self.preset_combo.clear()
        self.preset_combo.addItem(_PICK, None)
        for preset in list_presets():
            if not self.all_presets.isChecked() and key not in preset["method"].split("+"):
                continue
            self.preset_combo.addItem(preset["name"], preset["name"])
            tip = "\n".join(str(t) for t in (preset.get("description"), preset.get("source"),
                                              f"{preset.get('model')} on {preset.get('dataset')}",
                                              spread_text(preset) and f"measured: {spread_text(preset)}",
                                              preset.get("needs_reference")
                                              and f"needs its reference: {preset['needs_reference']}") if t)
            self.preset_combo.setItemData(self.preset_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)

    def _preset_activated(self, index: int) -> None:
        name = self.preset_combo.itemData(index)
        if name:
            self.load_preset(name)

    def load_preset(self, name: str) -> None:
        """Fill the forms from a single-stage preset, or make a multi-stage preset the pipeline."""
        preset = next(p for p in list_presets() if p["name"] == name)
        stages = [StageConfig(s["method"], dict(s.get("params", {})), dict(s.get("train", {})))
                  for s in preset["stages"]]
        if len(stages) == 1:
            # A single-stage preset leaves the pipeline alone: the user may be building one from presets.
            self._load_stage(stages[0])
        else:
            self.set_stages(stages)
        combo = self.preset_combo.findData(name)
        self.preset_combo.setCurrentIndex(max(combo, 0))
        self.preset_chosen.emit(preset)

    def _load_stage(self, stage: StageConfig) -> None:
        """Show a stage in the forms: defaults first, so nothing of the previous settings leaks in."""
        self._loading = True
        try:
            self.select_method(stage.method)
            form = self.method_forms[stage.method]
            form.reset()
            form.set_values(stage.params)
            self.train_form.reset()
            self.train_form.set_values(stage.train)
        finally:
            self._loading = False
        self._refresh()

    # -- pipeline --------------------------------------------------------------------------------------

    def current_stage(self) -> StageConfig:
        return StageConfig(self.current_method(), self.method_form().values(), self.train_form.values())

    def stages(self) -> list[StageConfig]:
        if self._pipeline:
            return [StageConfig(s.method, dict(s.params), dict(s.train)) for s in self._pipeline]
        return [self.current_stage()]

    def set_stages(self, stages: list[StageConfig]) -> None:
        """One stage goes into the forms; several become the pipeline (first one also in the forms)."""
        stages = [StageConfig(s.method, dict(s.params), dict(s.train)) for s in stages]
        if len(stages) == 1:
            try:
                self._pipeline = []
                self._load_stage(stages[0])
                return self._pipeline_changed()
            except (KeyError, WorkbenchError):
                pass   # cannot be shown in the forms: keep it as a stage so error() explains why
        self._pipeline = stages
        if stages:
            try:
                self._load_stage(stages[0])
            except (KeyError, WorkbenchError):
                pass   # an unknown method or a bad type: the stage's error line says so
        self._pipeline_changed()

    def add_stage(self) -> None:
        if self.current_error():
            return
        self._pipeline.append(self.current_stage())
        self._pipeline_changed(len(self._pipeline) - 1)

    def remove_stage(self, row: int) -> None:
        if 0 <= row < len(self._pipeline):
            del self._pipeline[row]
            self._pipeline_changed(min(row, len(self._pipeline) - 1))

    def move_stage(self, row: int, delta: int) -> None:
        new = row + delta
        if 0 <= row < len(self._pipeline) and 0 <= new < len(self._pipeline):
            p = self._pipeline
            p[row], p[new] = p[new], p[row]
            self._pipeline_changed(new)

    def _pipeline_changed(self, select: int = -1) -> None:
        self.pipeline_list.clear()
        for i, stage in enumerate(self._pipeline, 1):
            text = f"{i}. {stage_summary(stage)}"
            item = QListWidgetItem(text)
            problem = _stage_error(stage)
            item.setToolTip(text + (f"\nError: {problem}" if problem else ""))
            if problem:
                item.setForeground(Qt.GlobalColor.red)
            self.pipeline_list.addItem(item)
        self.pipeline_list.setCurrentRow(select)
        n = len(self._pipeline)
        self.pipeline_hint.setText(
            f"Run uses these {n} stage(s); the forms above set the next stage to add." if n else
            "Empty: Run uses the method and values above. Add stages to chain methods.")
        self._refresh()

    def _update_buttons(self, *_args) -> None:
        row, n = self.pipeline_list.currentRow(), len(self._pipeline)
        self.add_button.setEnabled(not self.current_error())
        self.remove_button.setEnabled(0 <= row < n)
        self.up_button.setEnabled(0 < row < n)
        self.down_button.setEnabled(0 <= row < n - 1)

    # -- validity --------------------------------------------------------------------------------------

    def current_error(self) -> str:
        """Error of the forms alone (the stage that "Add stage" would append)."""
        return self.method_form().error() or self.train_form.error()

    def error(self) -> str:
        """'' when what Run would use is valid: the pipeline if it has stages, else the forms."""
        if not self._pipeline:
            return self.current_error()
        for i, stage in enumerate(self._pipeline, 1):
            problem = _stage_error(stage)
            if problem:
                return f"stage {i} ({stage.method}): {problem}"
        return ""

    def _refresh(self) -> None:
        if self._loading or not self.current_method():
            return
        self._update_buttons()
        message = self.error()
        self.validity_changed.emit(not message, message)
        self.changed.emit()
