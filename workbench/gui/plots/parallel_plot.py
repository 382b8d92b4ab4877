"""The Tune dialog's "Knobs vs outcome" tab: a parallel-coordinates plot of a study's finished trials.

One vertical axis per searched knob (log knobs by their logarithm, choices evenly spaced), then test
accuracy and storage ratio (log); one line per complete trial, coloured by its accuracy (the colour bar
on the right), the best trials (the trial table's highlighted ones) thicker and on top. Pruned and failed
trials are left out (the note under the plot counts them): their numbers are of runs cut short. The
placing of every value is parallel_axes's (plain Python, unit-tested); this only draws it. Clicking a line
emits `trial_clicked(number)`.
"""

from __future__ import annotations

import html

import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from workbench.core import params as P
from workbench.engine.tune_objective import TrialResult
from workbench.engine.tune_space import Dim
from workbench.gui.plots.common import ViewNote, foreground
from workbench.gui.plots.parallel_axes import Axis, drawn, positions, study_axes

EMPTY_NOTE = "No finished trials yet: each complete trial adds a line here."
WIDTH, BEST_WIDTH = 1.5, 4.0
CROWDED = 6                # more axes than this: every other name over its axis


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
        self._texts: list[tuple] = []        # (x, y, anchor, TextItem): what _fit makes room for
        self._empty = ViewNote(self.plot, EMPTY_NOTE)
        self.plot.getViewBox().sigResized.connect(self._fit)

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
        self._texts = []
        self._draw_axes()
        self._fit()
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
        """A vertical line per axis; its lowest value and name under it, its highest over it; a choice axis
        labels each choice beside it. With many axes every other name goes over its axis, so that
        neighbouring names do not overlap."""
        fg = foreground()
        pen = pg.mkPen(fg, width=1)
        crowded = len(self.axes) > CROWDED
        for i, axis in enumerate(self.axes):
            line = pg.PlotCurveItem([i, i], [0, 1], pen=pen)
            line.setZValue(0)
            self.plot.addItem(line)
            ticks = axis.ticks()
            low = next((t for p, t in ticks if p == 0.0), "") if not axis.choices else ""
            high = next((t for p, t in ticks if p == 1.0), "") if not axis.choices else ""
            if axis.choices:
                for pos, text in ticks:
                    self._text([text], i, pos, (-0.08, 0.5), fg, size=8, on_lines=True)
            elif len(ticks) == 1:                               # every drawn trial at the same value
                self._text([ticks[0][1]], i, 0.5, (-0.08, 0.5), fg, size=8)
            title = axis.name + (" (log)" if axis.log else "")
            over = crowded and i % 2 == 1
            if low or not over:
                self._text([low] if over else [low, f"<b>{title}</b>"], i, 0, (0.5, 0), fg)
            if high or over:
                self._text([f"<b>{title}</b>", high] if over else [high], i, 1, (0.5, 1), fg)

    def _text(self, lines: list[str], x: float, y: float, anchor, colour, size: int = 9, on_lines=False) -> None:
        """Lines (rich text; empty ones left out), each centred over the others, at (x, y) by `anchor`;
        `on_lines`: over the trials' lines (a choice's name), on a shaded box so that it stays readable."""
        body = "<br>".join(html.escape(t) if not t.startswith("<b>") else f"<b>{html.escape(t[3:-4])}</b>"
                           for t in lines if t)
        background = pg.mkColor(pg.getConfigOption("background"))
        background.setAlpha(190)
        item = pg.TextItem(anchor=anchor, fill=pg.mkBrush(background) if on_lines else None)
        font = item.textItem.font()
        font.setPointSize(size)
        item.textItem.setFont(font)
        item.setHtml(f'<div style="color: {colour.name()}; text-align: center">{body}</div>')
        document = item.textItem.document()
        document.setTextWidth(document.idealWidth())     # centring needs the block's width
        item.updateTextPos()
        item.setPos(x, y)
        item.setZValue(3)           # over the lines
        self.plot.addItem(item, ignoreBounds=True)
        self._texts.append((x, y, anchor, item))

    def _fit(self, *_) -> None:
        """The view's range with room, in pixels, for the labels beyond the axes' ends (labels keep their
        size in pixels whatever the plot's size, so the room in axis units changes as the plot resizes)."""
        box = self.plot.getViewBox()
        width, height, n = box.width(), box.height(), len(self.axes)
        if n == 0 or width < 50 or height < 50:
            return
        room = {"left": 6.0, "right": 6.0, "top": 6.0, "bottom": 6.0}
        for x, y, (ax, ay), item in self._texts:
            rect = item.textItem.boundingRect()
            w, h = rect.width(), rect.height()
            if y <= 0:
                room["bottom"] = max(room["bottom"], (1 - ay) * h)
            if y >= 1:
                room["top"] = max(room["top"], ay * h)
            if x == 0:
                room["left"] = max(room["left"], ax * w)
            if x == n - 1:
                room["right"] = max(room["right"], (1 - ax) * w)
        per_x = max(width - room["left"] - room["right"], 10.0) / max(n - 1, 1)
        per_y = max(height - room["top"] - room["bottom"], 10.0)
        self.plot.setXRange(-room["left"] / per_x, n - 1 + room["right"] / per_x, padding=0)
        self.plot.setYRange(-room["bottom"] / per_y, 1 + room["top"] / per_y, padding=0)


def _tip(r: TrialResult, best: bool) -> str:
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={P.format_value(v)}"
                       for k, v in r.params.items())
    return (f"trial {r.number}{' (best)' if best else ''}: {100 * r.accuracy:.2f}%, {r.storage_ratio:.3g}x\n"
            f"{params}")
