"""Number boxes for the forms: every double shown and kept exactly, stepping along the declared range
(log knobs on a 1-2-5 grid), and nothing the user types vanishing silently.

Spin boxes accept values outside the declared range (the arrows stop at the range): `params.build`
reports them, so a typed 20 for a maximum of 10 shows "lr: 20 is above the maximum 10" instead of
silently snapping back. A refused keystroke (a letter) or a half-typed number dropped when editing ends
is announced by the box's `refused` signal; the form shows it next to the field.
"""

from __future__ import annotations

import math
import re

from PySide6.QtCore import QLocale, Qt, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QAbstractSpinBox, QDoubleSpinBox, QSpinBox

from workbench.core import params as P

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_NUMBER_PREFIX = re.compile(r"[+-]?\d*\.?\d*([eE][+-]?\d*)?")   # what may still become a number
HARD_LIMIT = 1e300           # spin box range; the declared range is checked by build(), not clamped
INT_LIMIT = 2**31 - 1        # QSpinBox holds a C int
_LOG_FLOOR = 1e-6             # log stepping up from 0 starts here (and stepping below it reaches 0)


def _log_step(value: float, steps: int, lo: float | None) -> float:
    """Step along the 1-2-5 grid (..., 1e-3, 2e-3, 5e-3, 1e-2, ...): three steps per decade."""
    positive_min = lo is not None and lo > 0
    floor = lo if positive_min else _LOG_FLOOR
    for _ in range(abs(steps)):
        if value <= 0:
            value = floor if steps > 0 else value
            continue
        e = math.floor(math.log10(value))
        # Decimal literals, so the grid points are the doubles a user would type (2e-3, not 0.002000..1).
        grid = [float(f"{m}e{k}") for k in (e - 1, e, e + 1) for m in (1, 2, 5)]
        if steps > 0:
            value = min(g for g in grid if g > value * (1 + 1e-9))
        else:
            below = max((g for g in grid if g < value * (1 - 1e-9)), default=0.0)
            value = below if below >= floor else (floor if positive_min else 0.0)
    return value


class _KnobSpin:
    """Shared by both spin boxes: arrows and their enabled state follow the declared range (typed values
    may leave it, and build() reports them); the wheel only acts on a focused box, so scrolling the
    dock never changes a value by accident.

    A keystroke the box refuses (a letter in a number) and a half-typed number dropped when editing ends
    ("5e" keeps the previous value) would vanish silently: each is reported by `refused` (a message for
    the user) instead."""

    knob: P.Knob
    WHAT = "a number"

    def _watch_typing(self) -> None:
        self._typed = None           # text the user typed since editing last ended
        self.lineEdit().textEdited.connect(self._remember)
        self.editingFinished.connect(self._check_kept)

    def _remember(self, text: str) -> None:
        self._typed = text

    def _refuse(self, text: str) -> None:
        self.refused.emit(f"“{text}” is not {self.WHAT}: {self.EXAMPLE}")

    def _check_kept(self) -> None:
        typed, self._typed = self._typed, None
        if typed is not None and typed.strip() != self.text().strip() \
                and self.validate(typed, len(typed))[0] != QValidator.State.Acceptable:
            self.refused.emit(f"“{typed}” is not {self.WHAT}; kept {self.text()}")

    def _clamp(self, v):
        k = self.knob
        v = max(v, type(v)(k.min)) if k.min is not None else v
        return min(v, type(v)(k.max)) if k.max is not None else v

    def stepEnabled(self):  # noqa: N802 - Qt override
        k, v, flags = self.knob, self.value(), QAbstractSpinBox.StepEnabledFlag
        up = flags.StepUpEnabled if k.max is None or v < k.max else flags.StepNone
        down = flags.StepDownEnabled if k.min is None or v > k.min else flags.StepNone
        return up | down

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self.hasFocus():
            super().wheelEvent(event)
        else:
            event.ignore()


class FloatSpinBox(_KnobSpin, QDoubleSpinBox):
    """Shows and accepts scientific notation and keeps every double exactly (5e-4 stays 5e-4)."""

    refused = Signal(str)      # a message: what the user typed that the box did not take
    EXAMPLE = "type digits, a point and an exponent, e.g. 0.01 or 5e-4"

    def __init__(self, spec: P.Spec, parent=None):
        super().__init__(parent)
        self._watch_typing()
        self.setLocale(QLocale.c())        # '.' as on the CLI and in run files, whatever the desktop locale
        self.setDecimals(323)              # Qt rounds to `decimals` digits; 323 is its maximum: no rounding
        self.setRange(-HARD_LIMIT, HARD_LIMIT)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.knob = spec.knob
        self.setSingleStep(self.knob.step or self._default_step())

    def _default_step(self) -> float:
        k = self.knob
        if k.min is not None and k.max is not None and k.max > k.min:
            return 10.0 ** (math.floor(math.log10(k.max - k.min)) - 2)   # ~1/100 of the range
        return 0.1

    def textFromValue(self, value: float) -> str:  # noqa: N802 - Qt override
        return P.format_number(value)

    def valueFromText(self, text: str) -> float:  # noqa: N802 - Qt override
        return float(text)

    def validate(self, text: str, pos: int):
        t = text.strip()
        if _NUMBER.fullmatch(t) and abs(float(t)) <= HARD_LIMIT:
            return QValidator.State.Acceptable, text, pos
        if _NUMBER_PREFIX.fullmatch(t):
            return QValidator.State.Intermediate, text, pos   # '5e', '-', '' while typing
        self._refuse(text)
        return QValidator.State.Invalid, text, pos

    def stepBy(self, steps: int) -> None:  # noqa: N802 - Qt override
        v = self.value()
        if self.knob.log:
            v = _log_step(v, steps, self.knob.min)
        else:
            v = float(f"{v + steps * self.singleStep():.12g}")   # drop float noise: 0.9 + 0.01 -> 0.91
        self.setValue(self._clamp(v))
        self.selectAll()


class IntSpinBox(_KnobSpin, QSpinBox):
    refused = Signal(str)
    WHAT = "a whole number"

    def __init__(self, spec: P.Spec, parent=None):
        super().__init__(parent)
        self._watch_typing()
        self.setLocale(QLocale.c())
        self.setRange(-INT_LIMIT, INT_LIMIT)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.knob = spec.knob
        self.setSingleStep(int(self.knob.step or 1))
        if self.knob.special and self.knob.min is not None:
            # Qt shows the special text at the range's minimum, so the minimum is the declared one here.
            self.setMinimum(int(self.knob.min))
            self.setSpecialValueText(self.knob.special)
        special = f" ({self.knob.min:g} for {self.knob.special})" if self.knob.special else ""
        self.EXAMPLE = f"type digits only{special}"

    def validate(self, text: str, pos: int):
        state, text, pos = super().validate(text, pos)
        if state == QValidator.State.Invalid and text.strip() != self.specialValueText():
            self._refuse(text)
        return state, text, pos

    def stepBy(self, steps: int) -> None:  # noqa: N802 - Qt override
        v = self.value()
        if self.knob.log:
            new = int(round(_log_step(float(v), steps, max(self.knob.min or 1, 1))))
            v = new if new != v else v + (1 if steps > 0 else -1)
        else:
            v += steps * self.singleStep()
        self.setValue(self._clamp(int(v)))
        self.selectAll()
