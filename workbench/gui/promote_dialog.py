"""Promote a finished run (a tune trial's too) to a user preset: a name, a description, and a read-only
summary of what will be saved (method, knobs, accuracy, storage ratio, the reference it was measured
on). The preset lands in the user presets folder and is listed with the shipped ones from then on.

All of this runs on the GUI thread, which is right here: the dialog reads only a run file's root and
/summary attributes (engine.promote.read_header: a few hundred bytes of metadata, never the series or
the model, whatever the run's length) and writes one small JSON file. Nothing is computed.
"""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from workbench.core.errors import WorkbenchError
from workbench.core.preset_text import describe
from workbench.core.presets import check_new_name, save_user_preset
from workbench.engine.promote import preset_from_run
from workbench.gui.messages import app_words

ERROR_STYLE = "color: #b00020;"


def suggested_name(run_path: str | Path) -> str:
    """The run's file name made into a preset name (letters, digits, '.', '_', '-')."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(run_path).stem).lstrip("._-")
    return name[:80] or "my-preset"


class PromoteDialog(QDialog):
    saved = Signal(str)                 # the new preset's name
    MIN_WIDTH = 620                     # the summary's knob lines read whole at 1280x800

    def __init__(self, run_path: str | Path, parent: QWidget | None = None):
        super().__init__(parent)
        self.run_path = str(run_path)
        self.saved_name: str | None = None
        self.saved_path: Path | None = None
        self.setWindowTitle(f"Promote {Path(run_path).stem} to a preset")
        self.setMinimumWidth(self.MIN_WIDTH)
        self.name = QLineEdit(suggested_name(run_path))
        self.description = QLineEdit()
        self.replace = QCheckBox("Replace my preset of this name")
        self.replace.setToolTip("Overwrite a preset you saved before under the same name (shipped presets are "
                                "never replaced).")
        self.summary = QPlainTextEdit()
        self.summary.setReadOnly(True)
        self.summary.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Cancel)
        self.save_button = self.buttons.addButton("Save preset", QDialogButtonBox.AcceptRole)
        self.save_button.clicked.disconnect()
        self.save_button.clicked.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Description", self.description)
        form.addRow("", self.replace)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel("What will be saved:"))
        layout.addWidget(self.summary, 1)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        self.resize(self.MIN_WIDTH, 460)
        self.preset: dict | None = None
        try:
            self.preset = preset_from_run(self.run_path, self.name.text())
        except WorkbenchError as exc:           # a failed or unfinished run: say why, nothing to save
            self._error(str(exc))
            self.summary.setPlainText("")
            for widget in (self.name, self.description, self.replace, self.save_button):
                widget.setEnabled(False)
            return
        self.description.setPlaceholderText(self.preset["description"])
        self.summary.setPlainText(self._summary_text())
        self.name.textChanged.connect(self._check_name)
        self.replace.toggled.connect(self._check_name)
        self.description.textChanged.connect(lambda _text: self.summary.setPlainText(self._summary_text()))
        self._check_name()

    def _summary_text(self) -> str:
        shown = {**self.preset, "name": self.name.text() or "?"}
        if self.description.text().strip():
            shown["description"] = self.description.text().strip()
        lines = describe(shown).splitlines()[1:]            # the name is in the field above
        return "\n".join(line[2:] for line in lines)

    def _error(self, text: str) -> None:
        self.status.setStyleSheet(ERROR_STYLE)
        self.status.setText(app_words(text))

    def _check_name(self, *_args) -> bool:
        """The name as typed: one line saying what is wrong with it, and Save only for a good one."""
        try:
            check_new_name(self.name.text().strip(), self.replace.isChecked())
        except WorkbenchError as exc:
            self._error(str(exc))
            self.save_button.setEnabled(False)
            return False
        self.status.setStyleSheet("")
        self.status.setText("")
        self.save_button.setEnabled(True)
        return True

    def save(self) -> None:
        if self.preset is None or not self._check_name():
            return
        name = self.name.text().strip()
        preset = {**self.preset, "name": name}
        if self.description.text().strip():
            preset["description"] = self.description.text().strip()
        try:
            self.saved_path = save_user_preset(preset, replace=self.replace.isChecked())
        except WorkbenchError as exc:           # e.g. the folder cannot be written: the dialog stays open
            self._error(str(exc))
            return
        self.saved_name = name
        self.saved.emit(name)
        self.accept()


def promote_run(parent: QWidget | None, run_path: str | Path) -> str | None:
    """Ask for a name and save the run as a user preset; the preset's name, or None when cancelled. The
    preset lists refresh from the next list_presets(); a window that shows them refills its list then."""
    dialog = PromoteDialog(run_path, parent)
    dialog.exec()
    return dialog.saved_name
