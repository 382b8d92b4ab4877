"""Test error against compression ratio: one trajectory per run, the Pareto front, the papers' points.

Error (%) on a log y axis against ratio on a log x axis is the view the papers use: it spreads 0.7% vs
0.9% error apart and 12x vs 100x ratio evenly. Which ratio is shown is a user choice, because the two
conventions in the literature (parameters vs storage bits) differ by several times for the same model.

Repeats (completed runs that differ only in their seed: engine.compare.repeat_sets) get a cross at the
mean of their final points with error bars of one sample std of the ratio and of the error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from workbench.engine.compare import config_key, repeat_sets
from workbench.engine.repeats import spread
from workbench.gui.plots.common import (
    LEGEND_RUNS,
    ViewNote,
    aligned,
    error_pct,
    foreground,
    legend_runs,
    run_color,
)
from workbench.gui.plots.log_axis import LogAxis
from workbench.gui.plots.published import published_for

RATIO_KINDS = {
    "param_ratio": "parameters (Han 2015, DNS)",
    "storage_ratio": "storage bits (Deep Compression, SWS)",
}
LEGEND_MARGIN = 10      # pixels between the legend and the view's edge
LEGEND_ROW_PX = 22      # one legend line at 9 pt (measured: LegendItem rows are 20-22 px)
LEGEND_SHARE = 0.4      # of the view's height the legend may take
EMPTY_NOTE = ("No runs to show: start a run or open run files.\n"
              "The papers' results appear beside runs of LeNet-300-100 or LeNet-5 on MNIST.")
AXIS_LABELS = {
    "param_ratio": "compression ratio: dense / stored parameters (Han 2015, DNS)",
    "storage_ratio": "compression ratio: dense fp32 bits / stored bits (Deep Compression, SWS)",
}


def final_point(ratio: np.ndarray, error: np.ndarray):
    """The last point where both values exist (a run's result), or None."""
    ok = np.flatnonzero(np.isfinite(ratio) & np.isfinite(error))
    return (float(ratio[ok[-1]]), float(error[ok[-1]])) if len(ok) else None


def pareto_indices(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated (ratio, error) points: no other point has ratio >= and error <=
    with one of the two strictly better. Sorted by ratio, ascending."""
    keep = [i for i, (r, e) in enumerate(points)
            if not any(r2 >= r and e2 <= e and (r2 > r or e2 < e) for r2, e2 in points)]
    return sorted(keep, key=lambda i: points[i])


def front_steps(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """Staircase through front points sorted by ratio: the best error reachable at a ratio >= x steps
    up at each point (vertical at r_i to e_{i+1}, then across to r_{i+1})."""
    xs, ys = [], []
    for i, (r, e) in enumerate(points):
        if i:
            xs.append(points[i - 1][0])
            ys.append(e)
        xs.append(r)
        ys.append(e)
    return xs, ys


@dataclass
class Spread:
    """A group of repeats as drawn: its runs and the mean and sample std of their final points."""

    paths: list[str]
    ratio: float
    ratio_std: float
    error: float
    error_std: float


def bar_segments(groups: list[Spread]) -> tuple[np.ndarray, np.ndarray]:
    """Each group's two error bars as pairs of points (x: the ratio ± its std at the mean error; y: the
    error ± its std at the mean ratio). A bar reaching zero or below stops at a hundredth of its mean:
    a log axis has no zero (the std says the rest)."""
    xs, ys = [], []
    for g in groups:
        low_r, low_e = max(g.ratio - g.ratio_std, g.ratio / 100), max(g.error - g.error_std, g.error / 100)
        xs += [low_r, g.ratio + g.ratio_std, g.ratio, g.ratio]
        ys += [g.error, g.error, low_e, g.error + g.error_std]
    return np.asarray(xs, float), np.asarray(ys, float)


@dataclass
class _Run:
    trace: object
    curve: pg.PlotDataItem      # the trajectory, points in order
    latest: pg.PlotDataItem     # the newest point, drawn larger
    reference: pg.PlotDataItem  # the uncompressed model: a ring, not joined to the trajectory
    group_key: str = ""         # engine.compare.config_key of its config, computed once


class RatioPlot(QtWidgets.QWidget):
    ratioKindChanged = QtCore.Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._kind = "param_ratio"
        self._runs: dict[str, _Run] = {}
        fg = foreground()

        self.kind_combo = QtWidgets.QComboBox()
        for key, text in RATIO_KINDS.items():
            self.kind_combo.addItem(text, key)
        self.kind_combo.currentIndexChanged.connect(
            lambda i: self.set_ratio_kind(self.kind_combo.itemData(i)))
        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel("Compression ratio counts:"))
        top.addWidget(self.kind_combo)
        top.addStretch(1)

        self.plot_widget = pg.PlotWidget(axisItems={"bottom": LogAxis("bottom", suffix="x"),
                                                    "left": LogAxis("left")})
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setLogMode(x=True, y=True)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setLabel("left", "test error (%)")
        # The legend goes to the corner of the view with the fewest points under it (_place_legend): top
        # left is usually emptiest (high error at low ratio), but a study's runs at 1280x800 filled it.
        # A translucent backing keeps the legend readable where a trajectory still passes under it.
        backing = pg.mkColor(pg.getConfigOption("background"))
        backing.setAlpha(200)
        self.legend = self.plot.addLegend(offset=(LEGEND_MARGIN, LEGEND_MARGIN), labelTextSize="9pt", brush=backing)
        self.legend_corner = (0, 0)

        # One item holds every model's front, NaN-separated: fronts of different nets are never joined.
        front_pen = pg.mkPen(fg, width=1.5, style=QtCore.Qt.PenStyle.DashLine)
        self.front = pg.PlotDataItem(pen=front_pen, connect="finite", name="Pareto front (completed)")
        self.front.setZValue(-5)
        self.plot.addItem(self.front)
        # PlotDataItem (not ScatterPlotItem) because only it follows the plot's log mode.
        marker = pg.mkColor(fg)
        marker.setAlpha(160)
        self.published = pg.PlotDataItem(pen=None, symbol="star", symbolSize=15, symbolBrush=marker,
                                          symbolPen=pg.mkPen(fg), name="published (paper)")
        self.plot.addItem(self.published)
        # Repeats: the mean of their final points (a cross) and one std each way (bars, as point pairs,
        # so that they follow the log mode as the trajectories do).
        self.spread_means = pg.PlotDataItem(pen=None, symbol="+", symbolSize=16, symbolPen=pg.mkPen(fg, width=2),
                                            name="repeats: mean ± std")
        self.spread_bars = pg.PlotDataItem(pen=pg.mkPen(fg, width=1.5), connect="pairs")
        for item in (self.spread_means, self.spread_bars):
            item.setZValue(5)
            self.plot.addItem(item)
        self._spreads: list[Spread] = []
        self._more_runs = pg.PlotDataItem(pen=None)    # the legend's "N earlier runs" line (drawn nowhere)
        self._published_labels: list[pg.TextItem] = []
        self._published_points = []
        self._front_runs: list[tuple[str, float, float]] = []
        # Without runs the plot would be a bare grid: it says what it is for instead.
        self.empty_note = ViewNote(self.plot, EMPTY_NOTE)
        self.plot.getViewBox().sigRangeChanged.connect(self._place_labels)
        self.plot.getViewBox().sigRangeChanged.connect(self._place_legend)
        self.plot.getViewBox().sigResized.connect(self._resized)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.plot_widget)
        self._update_axis_label()
        self._refresh_overlays()

    # ---- public API -------------------------------------------------------------------------------
    def set_traces(self, traces) -> None:
        """Replace all runs (rare: the selection changed). Colours follow list order, like CurvesPlot."""
        for run in self._runs.values():
            for item in (run.curve, run.latest, run.reference):
                self.plot.removeItem(item)
                self.legend.removeItem(item)
        self._runs.clear()
        for trace in traces:
            self._add_run(trace)
        self._refresh_overlays()

    def update_trace(self, trace) -> None:
        """Fast path during a live run: new data into the existing items, nothing rebuilt."""
        key = self._key(trace)
        known = key in self._runs
        if known:
            self._runs[key].trace = trace
            self._draw_run(self._runs[key])
        else:
            self._add_run(trace)
        self._update_front()
        if not known:   # a new model may bring new published points
            self._update_published()
        self._sync_legend()

    def set_ratio_kind(self, kind: str) -> None:
        if kind not in RATIO_KINDS:
            raise ValueError(f"unknown ratio kind {kind!r}: use one of {list(RATIO_KINDS)}")
        if kind == self._kind:
            return
        self._kind = kind
        self.kind_combo.setCurrentIndex(self.kind_combo.findData(kind))
        self._update_axis_label()
        for run in self._runs.values():
            self._draw_run(run)
        self._refresh_overlays()
        self.ratioKindChanged.emit(kind)

    def ratio_kind(self) -> str:
        return self._kind

    def pareto_front(self) -> list[tuple[str, float, float]]:
        """(label, ratio, error %) of the front's runs, as drawn."""
        return list(self._front_runs)

    def repeat_spreads(self) -> list[Spread]:
        """The groups of repeats drawn with error bars (ratios of the kind shown, error in %)."""
        return list(self._spreads)

    def trajectory_data(self, trace_or_key):
        """The (x, y) data drawn for one run (raw values, before the log transform)."""
        key = trace_or_key if isinstance(trace_or_key, str) else self._key(trace_or_key)
        return self._runs[key].curve.getOriginalDataset()

    def export_item(self):
        return self.plot

    # ---- drawing ----------------------------------------------------------------------------------
    @staticmethod
    def _key(trace) -> str:
        return trace.path or trace.label

    def _add_run(self, trace) -> None:
        color = run_color(len(self._runs))
        curve = pg.PlotDataItem(pen=pg.mkPen(color, width=2), symbol="o", symbolSize=5,
                                symbolBrush=color, symbolPen=None, connect="finite", name=trace.label)
        latest = pg.PlotDataItem(pen=None, symbol="o", symbolSize=12, symbolBrush=color,
                                 symbolPen=pg.mkPen(foreground(), width=1.5))
        reference = pg.PlotDataItem(pen=None, symbol="o", symbolSize=10, symbolBrush=None,
                                    symbolPen=pg.mkPen(color, width=2))
        for item in (curve, latest, reference):
            self.plot.addItem(item)
        run = _Run(trace, curve, latest, reference, config_key(trace.config))
        self._runs[self._key(trace)] = run
        self._draw_run(run)

    def _draw_run(self, run: _Run) -> None:
        x, y = aligned(run.trace, self._kind), error_pct(run.trace)
        # The jump from the reference model (1x) to the first pruned point is not a path the run took;
        # a line there would be the longest, most prominent stroke of the plot. Missing values break too.
        finite = np.isfinite(x) & np.isfinite(y)
        is_ref = np.array([label == "reference" for label in run.trace.point_labels], bool)
        connect = np.zeros(len(x), np.int32)
        if len(x) > 1:
            connect[:-1] = finite[:-1] & finite[1:] & ~is_ref[:len(x) - 1]
        run.curve.setData(x, y, connect=connect)
        ref = is_ref[:len(x)] & finite
        run.reference.setData(x[ref], y[ref])
        last = final_point(x, y)
        run.latest.setData(*(([last[0]], [last[1]]) if last else ([], [])))

    def _refresh_overlays(self) -> None:
        self._update_front()
        self._update_published()
        self._sync_legend()

    def _sync_legend(self) -> None:
        """The legend names what is drawn: the front and the papers only while they have points, then the
        runs in plot order. Rebuilt only when that list changes (not on every live point)."""
        wanted = [(item, name) for item, name, shown in (
            (self.front, "Pareto front (completed)", bool(self._front_runs)),
            (self.spread_means, "repeats: mean ± std", bool(self._spreads)),
            (self.published, "published (paper)", bool(self._published_points))) if shown]
        rows = self._legend_rows()
        wanted += legend_runs([(run.curve, run.trace.label) for run in self._runs.values()], self._more_runs,
                              LEGEND_RUNS if rows is None else min(LEGEND_RUNS, rows - len(wanted)))
        if [(sample.item, label.text) for sample, label in self.legend.items] != wanted:
            self.legend.clear()
            for item, name in wanted:
                self.legend.addItem(item, name)
        self.empty_note.setVisible(not self._runs)
        self._place_legend()

    def _legend_rows(self) -> int | None:
        """Legend lines that fit in LEGEND_SHARE of the view's height (None before the view has a size):
        at 1280x800 eight lines took two thirds of the plot."""
        height = self.plot.getViewBox().height()
        return int(LEGEND_SHARE * height / LEGEND_ROW_PX) if height >= 1 else None

    def _resized(self, *_) -> None:
        self._sync_legend()         # the lines that fit may have changed; it places the legend too

    def _place_legend(self, *_) -> None:
        """Anchor the legend in the view corner that covers the fewest drawn points; a tie keeps the
        corner it has (the legend does not hop while a live run adds points), then top left."""
        box = self.plot.getViewBox()
        width, height = box.width(), box.height()
        if width <= 0 or height <= 0 or not self.legend.items:
            return
        (x0, x1), (y0, y1) = box.viewRange()
        points = [item.getData() for item in self._drawn_items()]
        xs = np.concatenate([np.asarray(x, float) for x, _ in points if x is not None] or [np.zeros(0)])
        ys = np.concatenate([np.asarray(y, float) for _, y in points if y is not None] or [np.zeros(0)])
        # the points in the view's pixels, origin top left (display data: already log10 in log mode)
        px = (xs - x0) / max(x1 - x0, 1e-12) * width
        py = (y1 - ys) / max(y1 - y0, 1e-12) * height
        rect = self.legend.boundingRect()
        w, h = rect.width() + LEGEND_MARGIN, rect.height() + LEGEND_MARGIN

        def covered(corner):
            inx = px <= w if corner[0] == 0 else px >= width - w
            iny = py <= h if corner[1] == 0 else py >= height - h
            return int(np.sum(inx & iny & np.isfinite(px) & np.isfinite(py)))

        corners = [self.legend_corner] + [c for c in ((0, 0), (1, 0), (0, 1), (1, 1)) if c != self.legend_corner]
        best = min(corners, key=covered)        # min keeps the first of equals: the current corner
        if best != self.legend_corner:
            self.legend_corner = best
            offset = (LEGEND_MARGIN if best[0] == 0 else -LEGEND_MARGIN,
                      LEGEND_MARGIN if best[1] == 0 else -LEGEND_MARGIN)
            self.legend.anchor(itemPos=best, parentPos=best, offset=offset)

    def _drawn_items(self) -> list:
        """Every item whose points the legend should not cover."""
        items = [self.front, self.published, self.spread_means]
        for run in self._runs.values():
            items += [run.curve, run.latest, run.reference]
        return items

    def _update_front(self) -> None:
        by_model: dict[str, list] = {}
        for run in self._runs.values():
            if run.trace.status != "completed":
                continue
            last = final_point(aligned(run.trace, self._kind), error_pct(run.trace))
            if last:
                by_model.setdefault(run.trace.model, []).append((run.trace.label, *last))
        xs, ys, front = [], [], []
        for entries in by_model.values():
            pts = [(r, e) for _, r, e in entries]
            members = [entries[i] for i in pareto_indices(pts)]
            fx, fy = front_steps([(r, e) for _, r, e in members])
            if xs:
                xs.append(np.nan)
                ys.append(np.nan)
            xs += fx
            ys += fy
            front += members
        self._front_runs = front
        self.front.setData(np.asarray(xs, float), np.asarray(ys, float))
        self._update_spreads()

    def _update_spreads(self) -> None:
        """Error bars for each group of completed repeats (with the front: both follow completions)."""
        finals = {}
        for key, run in self._runs.items():
            last = final_point(aligned(run.trace, self._kind), error_pct(run.trace))
            if run.trace.status == "completed" and last:
                finals[key] = last
        sets = repeat_sets(list(finals), lambda k: self._runs[k].group_key,
                           lambda k: self._runs[k].trace.config.get("seed"))
        self._spreads = []
        for keys in (s for s in sets if len(s) > 1):
            r, e = spread(finals[k][0] for k in keys), spread(finals[k][1] for k in keys)
            self._spreads.append(Spread(keys, r["mean"], r["std"], e["mean"], e["std"]))
        self.spread_means.setData([g.ratio for g in self._spreads], [g.error for g in self._spreads])
        self.spread_bars.setData(*bar_segments(self._spreads))

    def _update_published(self) -> None:
        points = published_for([(run.trace.model, run.trace.dataset) for run in self._runs.values()],
                               self._kind)
        self._published_points = points
        self.published.setData([p.ratio for p in points], [p.error for p in points])
        several_nets = len({p.net for p in points}) > 1
        while len(self._published_labels) < len(points):     # grow the label pool, never rebuild it
            label = pg.TextItem(color=foreground())
            self.plot.addItem(label, ignoreBounds=True)
            self._published_labels.append(label)
        for i, label in enumerate(self._published_labels[:len(points)]):
            p = points[i]
            label.setText(f"{p.short} ({p.net})" if several_nets else p.short)
            label.setToolTip(f"{p.method} on {p.net} (MNIST): {p.error}% error at {p.ratio:g}x, "
                             f"{p.kept}% weights kept")
            # TextItems sit in view coordinates, which are log10 of the data on log axes.
            label.setPos(math.log10(p.ratio), math.log10(p.error))
        self._place_labels()

    def _place_labels(self, *_) -> None:
        """Each paper's label on the side of its star facing the middle of the view (left of a star in
        the right half, below one in the top half), so no label runs out of the view wherever the
        star sits; a star outside the view takes its label with it."""
        (x0, x1), (y0, y1) = self.plot.getViewBox().viewRange()
        for i, label in enumerate(self._published_labels):
            if i >= len(self._published_points):
                label.hide()
                continue
            x, y = label.pos().x(), label.pos().y()
            if not (x0 <= x <= x1 and y0 <= y <= y1):
                label.hide()
                continue
            fx = (x - x0) / (x1 - x0) if x1 > x0 else 0.5
            fy = (y - y0) / (y1 - y0) if y1 > y0 else 0.5
            label.setAnchor((1 if fx > 0.5 else 0, 0 if fy > 0.5 else 1))
            label.show()

    def _update_axis_label(self) -> None:
        self.plot.setLabel("bottom", AXIS_LABELS[self._kind])
