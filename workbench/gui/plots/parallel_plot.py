"""The Tune dialog's "Knobs vs outcome" tab: a parallel-coordinates plot of a study's finished trials.

One vertical axis per searched knob (log knobs by their logarithm, choices evenly spaced), then test
accuracy and storage ratio (log); one line per complete trial, coloured by its accuracy (the colour bar
on the right), the best trials (the trial table's highlighted ones) thicker and on top. Pruned and failed
trials are left out (the note under the plot counts them): their numbers are of runs cut short. The
placing of every value is parallel_axes's (plain Python, unit-tested); this only draws it. Clicking a line
emits `trial_clicked(number)`.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from workbench.core import params as P
from workbench.engine.tune_objective import TrialResult
from workbench.engine.tune_space import Dim
from workbench.gui.plots.common import ViewNote, foreground
from workbench.gui.plots.parallel_axes import Axis, drawn, positions, study_axes

EMPTY_NOTE = "No finished trials yet: each complete trial adds a line here."
WIDTH, BEST_WIDTH = 1.5, 4.0
LABEL_ROOM = 0.16          # below 0 and above 1, in axis units: room for the ends' values and the names


class ParallelPlot(QtWidgets.QWidget):
    trial_clicked = QtCore.Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.view = pg.GraphicsLayoutWidget()
        # its size hint (480 high) with the word-wrapped note below would squeeze the widgets above this
        # one in a layout: the plot takes the room it is given
        self.view.setSizePolicy(QtWidgets.QSizePolicy.Expanding, QtWidgets.QSizePolicy.Ignored)
        self.plot = self.view.addPlot(row=0, col=0)
        for side in ("left", "bottom"):
            self.plot.hideAxis(side)
        self.plot.setMouseEnabled(False, False)       # fixed axes: dragging would only lose the labels
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.cmap = pg.colormap.get("viridis")
        self.bar = pg.ColorBarItem(values=(0, 100), colorMap=self.cmap, interactive=False, width=14,
                                   label="accuracy (%)")
        self.view.addItem(self.bar, row=0, col=1)
        self.note = QtWidgets.QLabel("")
        self.note.setWordWrap(True)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.note)
        self.axes: list[Axis] = []
        self._curves: dict[int, pg.PlotCurveItem] = {}
        self._pending: tuple | None = None
        self._empty = ViewNote(self.plot, EMPTY_NOTE)

    # --- API ----------------------------------------------------------------------------------------------
    def set_study(self, dims: list[Dim], results: list[TrialResult], best: list[int]) -> None:
        """Show these trials (drawn now when visible, else when next shown: a hidden tab costs nothing)."""
        self._pending = (list(dims), list(results), list(best))
        if self.isVisible():
            self._redraw()

    def curves(self) -> dict[int, tuple[list[float], float]]:
        """What is drawn: trial number -> (its y on each axis, its line width)."""
        self._flush()
        return {n: ([float(y) for y in c.yData], c.opts["pen"].widthF()) for n, c in self._curves.items()}

    def labels(self) -> list[str]:
        """Every text on the plot (axis names and tick values), for tests and readers."""
        self._flush()
        return [item.toPlainText() for item in self.plot.items if isinstance(item, pg.TextItem)]

    # --- drawing ------------------------------------------------------------------------------------------
    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._flush()

    def _flush(self) -> None:
        if self._pending is not None:
            self._redraw()

    def _redraw(self) -> None:
        dims, results, best = self._pending
        self._pending = None
        self.plot.clear()
        self._curves.clear()
        self.axes = study_axes(dims, results)
        done = drawn(results)
        n = len(self.axes)
        self.plot.setXRange(-0.35, n - 0.35, padding=0)   # room for the last axis's name
        self.plot.setYRange(-LABEL_ROOM, 1 + LABEL_ROOM * 0.6, padding=0)
        self._draw_axes()
        accuracy = self.axes[-2]
        lo, hi = (accuracy.low, accuracy.high) if accuracy.low is not None else (0.0, 1.0)
        self.bar.setLevels((100 * lo, 100 * hi) if hi > lo else (100 * lo - 0.5, 100 * hi + 0.5))
        for r in sorted(done, key=lambda r: r.number in best):          # the best drawn last: on top
            ys = positions(self.axes, r)
            is_best = r.number in best
            colour = self.cmap.map(accuracy.position(r.accuracy), mode="qcolor")
            curve = pg.PlotCurveItem(list(range(n)), ys, connect="finite",
                                     pen=pg.mkPen(colour, width=BEST_WIDTH if is_best else WIDTH))
            curve.setZValue(2 if is_best else 1)
            curve.setClickable(True, width=8)
            curve.sigClicked.connect(lambda _item, *_, number=r.number: self.trial_clicked.emit(number))
            curve.setToolTip(_tip(r, is_best))
            self.plot.addItem(curve)
            self._curves[r.number] = curve
        self.plot.addItem(self._empty, ignoreBounds=True)          # clear() took it off the plot
        self._empty.say("" if done else EMPTY_NOTE)
        left_out = [r for r in results if r.state in ("pruned", "failed")]
        self.note.setText(
            f"{len(done)} complete trial{'s' * (len(done) != 1)} drawn, coloured by accuracy; the best thicker. "
            + (f"Left out: {sum(r.state == 'pruned' for r in left_out)} pruned, "
               f"{sum(r.state == 'failed' for r in left_out)} failed (runs cut short)." if left_out else "")
            + " Click a line to select its trial.")

    def _draw_axes(self) -> None:
        """A vertical line per axis; its name and lowest value under it, its highest over it; a choice axis
        labels each choice beside it. Crowded names alternate between two rows so none overlaps."""
        fg = foreground()
        pen = pg.mkPen(fg, width=1)
        crowded = len(self.axes) > 7
        for i, axis in enumerate(self.axes):
            line = pg.PlotCurveItem([i, i], [0, 1], pen=pen)
            line.setZValue(0)
            self.plot.addItem(line)
            ticks = axis.ticks()
            low = next((t for p, t in ticks if p == 0.0), "") if not axis.choices else ""
            high = next((t for p, t in ticks if p == 1.0), "") if not axis.choices else ""
            if axis.choices:
                for pos, text in ticks:
                    self._text(text, i, pos, (-0.08, 0.5), fg, size=8)
            elif len(ticks) == 1:                               # every drawn trial at the same value
                self._text(ticks[0][1], i, 0.5, (-0.08, 0.5), fg, size=8)
            title = axis.name + (" (log)" if axis.log else "")
            under = f"{low}\n{title}" if low else title
            if crowded and i % 2:
                under = "\n\n" + under if low else "\n" + under
            self._text(under, i, 0, (0.5, 0), fg, bold=True)
            if high:
                self._text(high, i, 1, (0.5, 1), fg)

    def _text(self, text: str, x: float, y: float, anchor, colour, size: int = 9, bold: bool = False) -> None:
        item = pg.TextItem(text, color=colour, anchor=anchor)
        font = item.textItem.font()
        font.setPointSize(size)
        font.setBold(bold)
        item.setFont(font)
        item.setPos(x, y)
        item.setZValue(3)
        self.plot.addItem(item, ignoreBounds=True)


def _tip(r: TrialResult, best: bool) -> str:
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={P.format_value(v)}"
                       for k, v in r.params.items())
    return (f"trial {r.number}{' (best)' if best else ''}: {100 * r.accuracy:.2f}%, {r.storage_ratio:.3g}x\n"
            f"{params}")
