"""A form made from a parameter declaration (`workbench.core.params`): every method gets its GUI for free.

Plain Qt widgets in a QFormLayout rather than pyqtgraph's ParameterTree: the tree's SpinBox shows floats
to a few significant digits (1.23456789e-7 displays as 1.23e-07, so the user cannot see the value that
will run), it has no per-layer map type, no place for one inline error line, and its tree look reads as
a property inspector rather than a settings form. Here every float shows exactly the value that runs.

Validation is not re-implemented: `error()` calls `params.build`, the same path as the CLI's `--set`, so
ranges and cross-field rules (`check()`) give the same one-line messages in both places; the form
shows them naming its labels ("Learning rate: 20 is above the maximum 10"). The number boxes are in
gui/number_boxes.py.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QToolButton,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from workbench.core import params as P
from workbench.core.errors import WorkbenchError
from workbench.gui.fit_label import FitLabel
from workbench.gui.messages import app_words
from workbench.gui.number_boxes import HARD_LIMIT, INT_LIMIT, FloatSpinBox, IntSpinBox

__all__ = ["FloatSpinBox", "IntSpinBox", "ParamForm", "shrink_combo"]

ERROR_COLOR = "#c0392b"
NOTICE_MS = 8000              # how long a refused keystroke's message stays


def shrink_combo(combo: QComboBox, chars: int = 8) -> None:
    """A drop-down as narrow as its column needs: by default Qt makes it as wide as its longest item,
    which widened the Setup dock past its column at 1280x800. The list still shows whole items."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(chars)
    combo.view().setTextElideMode(Qt.TextElideMode.ElideNone)


class _Combo(QComboBox):
    def __init__(self):
        super().__init__()
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        shrink_combo(self)

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt override: see _KnobSpin
        if self.hasFocus():
            super().wheelEvent(event)
        else:
            event.ignore()


def _tooltip(spec: P.Spec, flag: bool = False) -> str:
    k = spec.knob
    lines = [k.help] if k.help else []
    if k.min is not None or k.max is not None:
        lo = "-inf" if k.min is None else f"{k.min:g}"
        hi = "inf" if k.max is None else f"{k.max:g}"
        each = "each value " if spec.type is P.LayerMap else ""
        lines.append(f"Range: {each}{lo} to {hi}{' (log scale)' if k.log else ''}")
    if k.choices:
        lines.append("One of: " + ", ".join(k.choices))
    default = P.format_value(spec.default)
    lines.append(f"Default: {default if default != '' else '(none)'}")
    example = "fc1=6.5,fc2=4" if spec.type is P.LayerMap else "value"
    if flag:      # run settings are flags of their own (cli._common)
        option = "--" + spec.name.replace("_", "-")
        lines.append(f"CLI: {option}" + ("" if spec.type is bool else f" {example}"))
    else:
        lines.append(f"CLI: --set {spec.name}={example}")
    return "\n".join(lines)


class ParamForm(QWidget):
    """Editor for one params dataclass; `values()` is what `params.to_dict` gives for the same settings."""

    changed = Signal()

    def __init__(self, params_cls: type, parent=None, *, fields: tuple[str, ...] | None = None,
                 flags: bool = False):
        """`fields`: only these of the declaration (in this order); `flags`: tooltips name CLI flags of
        their own (`--seed N`, the run settings) instead of `--set name=value`."""
        super().__init__(parent)
        self.params_cls = params_cls
        declared = {s.name: s for s in P.specs(params_cls)}
        self.specs = {n: declared[n] for n in fields} if fields is not None else declared
        self.editors: dict[str, QWidget] = {}
        self.labels: dict[str, QLabel] = {}
        self._bad: dict[str, str] = {}            # field -> parse error of text that is not a value yet
        self._good_maps: dict[str, dict] = {}     # last parsable value of each per-layer field
        self._quiet = False                       # set_values emits one `changed`, not one per field

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        basic = QFormLayout()
        outer.addLayout(basic)
        self.advanced_button = QToolButton(text="Advanced", checkable=True)
        self.advanced_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_button.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_button.setAutoRaise(True)
        self.advanced_box = QWidget()
        advanced = QFormLayout(self.advanced_box)
        advanced.setContentsMargins(12, 0, 0, 0)
        outer.addWidget(self.advanced_button)
        outer.addWidget(self.advanced_box)
        self.advanced_button.toggled.connect(self.set_advanced_visible)
        self.set_advanced_visible(False)
        if not any(s.knob.advanced for s in self.specs.values()):
            self.advanced_button.hide()
        if not self.specs:
            basic.addRow(QLabel("No parameters."))

        for spec in self.specs.values():
            editor = self._make_editor(spec)
            unit = f" ({spec.knob.unit})" if spec.knob.unit else ""
            label = QLabel(spec.knob.label + unit)
            tip = _tooltip(spec, flags)
            label.setToolTip(tip)
            editor.setToolTip(tip)
            label.setBuddy(editor)
            (advanced if spec.knob.advanced else basic).addRow(label, editor)
            self.editors[spec.name], self.labels[spec.name] = editor, label

        # Red, wrapped to the panel's width (never widening it), the full text also as tooltip.
        self.error_label = FitLabel(max_lines=3, color=ERROR_COLOR)
        self.error_label.hide()
        outer.addWidget(self.error_label)
        # What a number box refused (letters typed into it), for a few seconds: the value is unchanged,
        # so Run stays as it was, but the user sees why the keystroke did nothing.
        self.notice_label = FitLabel(max_lines=3, color=ERROR_COLOR)
        self.notice_label.hide()
        outer.addWidget(self.notice_label)
        self._notice_timer = QTimer(self, singleShot=True, interval=NOTICE_MS)
        self._notice_timer.timeout.connect(self.notice_label.hide)
        self.reset()

    def display_labels(self) -> dict[str, str]:
        """Each field's label by name: messages about a field name it by its label (gui.messages)."""
        return {name: spec.knob.label for name, spec in self.specs.items()}

    def _refused(self, spec: P.Spec, message: str) -> None:
        text = f"{spec.knob.label}: {message}"
        self.notice_label.setText(text)
        self.notice_label.show()
        self._notice_timer.start()
        editor = self.editors[spec.name]
        QToolTip.showText(editor.mapToGlobal(editor.rect().bottomLeft()), text, editor)

    def _make_editor(self, spec: P.Spec) -> QWidget:
        t, k = spec.type, spec.knob
        if t is bool:
            w = QCheckBox()
            w.toggled.connect(self._edited)
        elif k.choices:
            w = _Combo()
            w.addItems(list(k.choices))
            w.currentIndexChanged.connect(self._edited)
        elif t is float:
            w = FloatSpinBox(spec)
            w.valueChanged.connect(self._edited)
            w.refused.connect(lambda message, s=spec: self._refused(s, message))
        elif t is int:
            w = IntSpinBox(spec)
            w.valueChanged.connect(self._edited)
            w.refused.connect(lambda message, s=spec: self._refused(s, message))
        else:
            w = QLineEdit()
            if t is P.LayerMap:
                w.setPlaceholderText("e.g. fc1=6.5,fc2=4 (empty: none)")
                w.textChanged.connect(lambda text, s=spec: self._map_edited(s, text))
            else:
                w.textChanged.connect(self._edited)
        return w

    def set_advanced_visible(self, visible: bool) -> None:
        self.advanced_button.setChecked(visible)
        self.advanced_button.setArrowType(Qt.ArrowType.DownArrow if visible else Qt.ArrowType.RightArrow)
        self.advanced_box.setVisible(visible)

    # -- values ----------------------------------------------------------------------------------------

    def values(self) -> dict:
        out = {}
        for name, spec in self.specs.items():
            w = self.editors[name]
            if spec.type is bool:
                out[name] = w.isChecked()
            elif spec.knob.choices:
                out[name] = w.currentText()
            elif spec.type is float:
                out[name] = float(w.value())
            elif spec.type is int:
                out[name] = int(w.value())
            elif spec.type is P.LayerMap:
                out[name] = dict(self._good_maps[name])   # unparsable text: error() says so
            else:
                out[name] = w.text()
        return out

    def set_values(self, values: dict) -> None:
        """Set some or all fields from typed, JSON or CLI-text values; unknown names raise KeyError.

        Types are checked first (ParamError, nothing changed); ranges are not: an out-of-range value is
        shown and reported by `error()`, as a run file or preset with one would be on the CLI.
        """
        unknown = sorted(set(values) - set(self.specs))
        if unknown:
            raise KeyError(f"{self.params_cls.__name__} has no parameter {unknown[0]!r}")
        typed = {name: P.coerce(self.specs[name], v) for name, v in values.items()}
        for name, v in typed.items():
            k = self.specs[name].knob
            if k.choices and v not in k.choices:
                raise P.ParamError(f"{name}: {v!r} is not one of {', '.join(k.choices)}")
            limit = {int: INT_LIMIT, float: HARD_LIMIT}.get(self.specs[name].type)
            if limit is not None and not abs(v) <= limit:    # also NaN: a spin box cannot show it
                raise P.ParamError(f"{name}: {v} cannot be shown in a spin box")
        self._quiet = True
        try:
            for name, v in typed.items():
                self._show(self.specs[name], v)
        finally:
            self._quiet = False
        self._edited()

    def _show(self, spec: P.Spec, v) -> None:
        w = self.editors[spec.name]
        if spec.type is bool:
            w.setChecked(v)
        elif spec.knob.choices:
            w.setCurrentIndex(spec.knob.choices.index(v))
        elif spec.type in (int, float):
            w.setValue(v)
        elif spec.type is P.LayerMap:
            w.setText(P.format_layer_map(v))
            self._good_maps[spec.name] = dict(v)
            self._bad.pop(spec.name, None)
        else:
            w.setText(v)

    def reset(self) -> None:
        self.set_values({name: s.default for name, s in self.specs.items()})

    def _map_edited(self, spec: P.Spec, text: str) -> None:
        if self._quiet:
            return    # set_values stored the exact value already
        try:
            self._good_maps[spec.name] = dict(P.parse_layer_map(text))
            self._bad.pop(spec.name, None)
        except (ValueError, TypeError, AttributeError):   # bad number, bad JSON, JSON not an object
            self._bad[spec.name] = (f"{spec.name}: cannot read {text.strip()!r}; write per-layer values "
                                    "like fc1=6.5,fc2=4")
        self._edited()

    def _edited(self, *_args) -> None:
        if self._quiet:
            return
        self._show_error(self.error())
        self.changed.emit()

    # -- validation ------------------------------------------------------------------------------------

    def error(self) -> str:
        """'' when valid, else the one-line message the CLI would print for the same values."""
        if self._bad:
            return next(iter(self._bad.values()))
        try:
            P.build(self.params_cls, self.values())   # fields left out of the form keep their defaults
        except (WorkbenchError, ValueError, TypeError) as e:   # check() of a later method may raise these
            return str(e) or type(e).__name__
        return ""

    def _show_error(self, message: str) -> None:
        self.error_label.setText(app_words(message, self.display_labels()))
        self.error_label.setVisible(bool(message))
        # Messages about one field start with its name ("lr: 20 is above ..."): mark that label. Open
        # the Advanced section unless the culprit is a basic field: cross-field messages (DNS: "a_k
        # factor exceeds b_k factor") name no field and may well be about a hidden one.
        culprit = next((n for n in self.labels if message.startswith(f"{n}:")), None)
        for name, label in self.labels.items():
            label.setStyleSheet("color: #c0392b;" if name == culprit else "")
        if message and (culprit is None or self.specs[culprit].knob.advanced):
            if not self.advanced_button.isHidden():
                self.set_advanced_visible(True)
