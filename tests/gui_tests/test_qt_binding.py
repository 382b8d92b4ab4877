"""The Qt binding keeps Python's reference counts straight across signal emission: PySide6 6.12.0 drops a
reference to emit()'s return value (True/False) and to a slot's None on every emission, so after a few
thousand progress signals a run aborted with "Fatal Python error: bool_dealloc" (pyproject.toml pins
below it). Emitting through the same kinds of connections the app uses must leave the counts unchanged."""

from __future__ import annotations

import gc
import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    plain = Signal()
    payload = Signal(object)


def _counts() -> tuple[int, int, int]:
    gc.collect()
    return sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)


def test_signal_emission_keeps_reference_counts(qtbot):
    emitter, got = _Emitter(), [0]

    def count(*_value) -> None:        # keeps no reference to what it receives
        got[0] += 1

    emitter.plain.connect(count)
    emitter.payload.connect(count)
    results = []
    before = _counts()
    for i in range(60):
        results.append(emitter.plain.emit())
        results.append(emitter.payload.emit(None))
        results.append(emitter.payload.emit(i))
    results.clear()
    after = _counts()
    assert got[0] == 180
    # 60 x 3 emissions: a binding that drops a reference per emission is off by 60 or more.
    assert all(abs(a - b) < 30 for a, b in zip(after, before)), (before, after)
