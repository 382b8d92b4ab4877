"""Small helpers shared by the plot widgets: run colours and NaN-safe access to a trace's series.

Kept Qt-light (only pyqtgraph colour helpers) so every plot colours the same run the same way and
reads a trace the same way.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

# Tableau-10: distinct, colour-blind friendlier than the rainbow, readable on dark and light backgrounds.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
           "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")

# Log axes cannot show 0: a run at 100% accuracy is drawn at this error floor instead of vanishing.
ERROR_FLOOR_PCT = 0.01


def run_color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def foreground() -> pg.QtGui.QColor:
    """The axis/text colour of the current pyqtgraph theme, so labels stay readable on dark or light."""
    return pg.mkColor(pg.getConfigOption("foreground"))


def aligned(trace, name: str) -> np.ndarray:
    """Metric `name` as floats, exactly one per point of the trace.

    A metric recorded at fewer points (e.g. train_loss absent at the finalized point) is padded with NaN
    at the end, so x and y arrays always have the same length and NaNs are simply not drawn.
    """
    n = trace.points
    values = trace.metrics.get(name)
    if values is None:
        return np.full(n, np.nan)
    out = np.full(n, np.nan)
    m = min(n, len(values))
    if m:
        out[:m] = np.asarray(values[:m], dtype=float)
    return out


def error_pct(trace) -> np.ndarray:
    """Test error in percent, floored so a log axis can show it."""
    err = (1.0 - aligned(trace, "test_accuracy")) * 100.0
    return np.where(np.isfinite(err), np.maximum(err, ERROR_FLOOR_PCT), np.nan)


def layer_value(trace, layer: str, name: str, point: int):
    """One layer series at one point, or None where it was not recorded (absent, None or NaN)."""
    values = trace.layers.get(layer, {}).get(name)
    if values is None or not 0 <= point < len(values):
        return None
    v = values[point]
    if v is None:
        return None
    if np.ndim(v) == 0:
        v = float(v)
        return v if math.isfinite(v) else None
    return np.asarray(v)


def plain_axes(*plot_items) -> None:
    """Tick labels as the values are: pyqtgraph would print weights of +-0.4 as "400" and put "(x0.001)"
    into the axis title, which reads as a different quantity."""
    for plot_item in plot_items:
        for name in ("left", "bottom", "right", "top"):
            plot_item.getAxis(name).enableAutoSIPrefix(False)


LEGEND_RUNS = 6         # runs a legend names (the latest; beyond, one line says how many it leaves out)


def legend_runs(runs: list, more_item, limit: int = LEGEND_RUNS) -> list:
    """(item, name) of the runs a legend lists: all of them up to `limit`, else the latest
    `limit` - 1 and `more_item` named for the rest (a study's or a watched folder's dozens of runs
    covered the ratio plot and squeezed the curves to nothing). Names are shortened by what they all
    share (short_names)."""
    runs = list(zip([item for item, _ in runs], short_names([name for _, name in runs])))
    limit = max(limit, 2)
    if len(runs) <= limit:
        return runs
    hidden = len(runs) - (limit - 1)
    return runs[-(limit - 1):] + [(more_item, f"... {hidden} earlier runs (see Compare)")]


def legend_columns(widths: list[float], room: float) -> int:
    """The most columns whose widths fit in `room` pixels, entries filled row by row as LegendItem lays
    them out (each column as wide as its widest entry: one long "... earlier runs" line no longer made
    every column that wide)."""
    for n in range(len(widths), 1, -1):
        if sum(max(widths[j::n]) for j in range(n)) <= room:
            return n
    return 1


_NAME_PARTS = re.compile(r"[^-_ .]+[-_ .]*")


def short_names(names: list[str]) -> list[str]:
    """Names without the leading parts they all share, the last shared part kept for context:
    lenet300-sws-mnist-trial-0009 and -0010 become "...trial-0009" and "...trial-0010". A study's trial
    names were 30 characters alike but for the number, which made the legends one entry wide."""
    if len(names) < 2:
        return list(names)
    parts = [_NAME_PARTS.findall(n) for n in names]
    shared = 0
    while all(len(p) > shared + 1 for p in parts) and len({p[shared] for p in parts}) == 1:
        shared += 1
    if shared < 2:      # one shared part ("lenet300-") says too little to be worth an ellipsis
        return list(names)
    return ["..." + "".join(p[shared - 1:]) for p in parts]


def show_values(plot_item, shown: bool, axes: tuple[str, ...] = ("bottom", "left")) -> None:
    """Tick values on these axes, or none: an empty plot showed pyqtgraph's 0.2 ... 0.8 under its titles
    (training steps, weight value, count), numbers that belong to no run."""
    for name in axes:
        axis = plot_item.getAxis(name)
        if axis.style["showValues"] != shown:
            axis.setStyle(showValues=shown)


class ViewNote(pg.TextItem):
    """A line of text in the middle of a plot's view, wherever the view has been moved: what an empty
    plot is waiting for. Kept out of the auto-range, so it never changes what the data would show."""

    def __init__(self, plot_item, text: str = ""):
        super().__init__(text, color=foreground(), anchor=(0.5, 0.5))
        plot_item.addItem(self, ignoreBounds=True)
        self._view = plot_item.getViewBox()
        self._view.sigRangeChanged.connect(self._centre)
        self._view.sigResized.connect(self._wrap)
        self._wrap()

    def say(self, text: str) -> None:
        """Show `text`, or hide the note when it is empty."""
        if text != self.toPlainText():
            self.setText(text)
            self._wrap()
        self.setVisible(bool(text))

    def _wrap(self, *_) -> None:
        """Wrapped to the view's width (a narrow plot, 1280x800 with the side panel open, cut the text off
        at both edges); laid out again only when the view's size or the text changes, not on every range
        change of a live plot."""
        self.textItem.setTextWidth(-1)
        room = self._view.width() - 16
        if 40 < room < self.textItem.boundingRect().width():
            self.setTextWidth(room)
        self._centre()

    def _centre(self, *_) -> None:
        (x0, x1), (y0, y1) = self._view.viewRange()
        self.setPos((x0 + x1) / 2, (y0 + y1) / 2)


class SideTab(QtWidgets.QWidget):
    """A tab beside the histogram: one pyqtgraph layout (`view`) for what a run recorded, and a `note`
    shown in its place when the run recorded nothing of the kind. Subclasses fill `view` and `_redraw`."""

    def __init__(self, note: str, parent=None):
        super().__init__(parent)
        self._trace = None
        self.note = QtWidgets.QLabel(note)
        self.view = pg.GraphicsLayoutWidget()
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.note)
        layout.addWidget(self.view)

    def set_trace(self, trace) -> None:
        self._trace = trace
        self._redraw()

    def update_trace(self, trace) -> None:
        self.set_trace(trace)

    def follow(self, trace, layer: str, point: int) -> None:
        """Show what a HistogramView shows (its `shown` signal): the main window calls it for the open tab
        (MainWindow._histogram_shown)."""
        self._trace = trace
        self.set_layer(layer, point)

    def set_layer(self, layer: str, point: int = -1) -> None:
        raise NotImplementedError

    def _redraw(self) -> None:
        raise NotImplementedError
