"""Scrolling the Setup panel never changes a setting (the wheel over an unfocused drop-down or number
box scrolls the panel), and devices this machine lacks cannot be chosen."""

from __future__ import annotations

import pytest
import torch
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QScrollArea


def _wheel(widget, steps: int = -3) -> None:
    pos = QPointF(widget.rect().center())
    event = QWheelEvent(pos, QPointF(widget.mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, 120 * steps),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                        False)
    QApplication.sendEvent(widget, event)


def test_the_wheel_over_unfocused_inputs_scrolls_the_panel_instead(qtbot, window):
    window.resize(1000, 600)
    window.show()
    qtbot.waitExposed(window)
    combo = window.setup.model
    seed = window.setup.run_form.editors["seed"]
    scroll = next(a for a in window.findChildren(QScrollArea) if a.isAncestorOf(combo))
    bar = scroll.verticalScrollBar()
    assert bar.maximum() > 0                        # the panel is taller than the window: it scrolls
    before = (combo.currentIndex(), seed.value(), bar.value())
    window.run_button.setFocus()
    _wheel(combo)
    _wheel(seed)
    assert (combo.currentIndex(), seed.value()) == before[:2]
    assert bar.value() > before[2]                  # the panel scrolled instead
    combo.hasFocus = lambda: True                   # clicked into (offscreen windows take no focus)
    _wheel(combo, steps=-1)
    assert combo.currentIndex() != before[0]


def test_devices_this_machine_lacks_cannot_be_chosen(qtbot, window):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    combo = window.setup.run_form.editors["device"]
    cuda = combo.findText("cuda")
    assert not combo.model().item(cuda).isEnabled()
    assert "no usable CUDA device" in combo.itemData(cuda, Qt.ItemDataRole.ToolTipRole)
    assert combo.model().item(combo.findText("cpu")).isEnabled()
