"""Per-layer weight histogram at one evaluation point, with method overlays (DNS band, thresholds).

The histogram counts only nonzero weights (pruned ones would dwarf the rest), drawn as a filled step
curve from the stored edges. Graphics items are created once and pooled: moving the slider or a live
update only sets data, so scrubbing through 100 points stays instant.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from workbench.gui.plots.common import ViewNote, aligned, foreground, layer_value, show_values
from workbench.gui.plots.log_axis import LogAxis
from workbench.gui.plots.overlays import Band, Curve, VLine, overlay_shapes

NO_RUN = "No run yet: the weights of the run in focus appear here, layer by layer."


class HistogramView(QtWidgets.QWidget):
    selectionChanged = QtCore.Signal(str, int)     # layer, point: the user chose them
    # What the view now shows (trace, layer, point), whoever changed it: the user, a new run, or a live
    # point the slider followed. The side tabs follow this, so they show its run at its point even when
    # their own refresh comes later (the window redraws one plot per pass) or not at all.
    shown = QtCore.Signal(object, str, int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._trace = None
        self._announced: tuple = (None, -1, "", -1)    # (trace, its points, layer, point) last emitted
        self.layer_combo = QtWidgets.QComboBox()
        self.layer_combo.setMinimumContentsLength(8)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        # At 1280x800 the pane is about 430 px wide: with a 170 px label floor and "log counts" the slider
        # was squeezed to its handle. The slider keeps 100 px; the label and box take what their text needs.
        self.slider.setMinimumWidth(100)
        self.point_label = QtWidgets.QLabel("no run")
        self.log_check = QtWidgets.QCheckBox("log")
        self.log_check.setToolTip("Log scale for the counts")
        top = QtWidgets.QHBoxLayout()
        self.layer_combo.setToolTip("The layer whose weights are shown")   # no "Layer:" label: width
        top.addWidget(self.layer_combo)
        top.addWidget(self.slider, 1)
        top.addWidget(self.point_label)
        top.addWidget(self.log_check)

        self.plot_widget = pg.PlotWidget(axisItems={"left": LogAxis("left")})
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setLabel("bottom", "weight value")
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)   # "0.1", not "100 (x0.001)"
        self.plot.setLabel("left", "count (nonzero weights)")
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        fill = pg.mkColor(foreground())
        fill.setAlpha(90)
        self.hist = pg.PlotDataItem(stepMode="center", fillLevel=0, brush=fill,
                                    pen=pg.mkPen(foreground(), width=1))
        self.plot.addItem(self.hist)
        self._pools: dict[type, list] = {Band: [], VLine: [], Curve: []}
        self.note = ViewNote(self.plot, NO_RUN)
        show_values(self.plot, False)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.plot_widget)
        self.layer_combo.currentIndexChanged.connect(self._on_selection)
        self.slider.valueChanged.connect(self._on_selection)
        self.log_check.toggled.connect(lambda on: self.plot.setLogMode(x=False, y=on))

    # ---- public API -------------------------------------------------------------------------------
    def set_trace(self, trace) -> None:
        """Show another run: keep the layer if it has one of that name, go to its last point."""
        self._trace = trace
        self._sync_layers()
        self._sync_slider(to_last=True)
        self._redraw()

    def update_trace(self, trace) -> None:
        """Live update: the slider follows new points only if it was already at the last one."""
        at_last = self._trace is None or self.slider.value() == self.slider.maximum()
        self._trace = trace
        self._sync_layers()
        self._sync_slider(to_last=at_last)
        self._redraw()

    def select(self, layer: str, point: int) -> None:
        with QtCore.QSignalBlocker(self.layer_combo), QtCore.QSignalBlocker(self.slider):
            index = self.layer_combo.findText(layer)
            if index >= 0:
                self.layer_combo.setCurrentIndex(index)
            self.slider.setValue(point if point >= 0 else self.slider.maximum() + 1 + point)
        self._on_selection()

    def layer(self) -> str:
        return self.layer_combo.currentText()

    def point(self) -> int:
        return self.slider.value()

    def overlay_items(self, kind: type) -> list:
        """Visible pooled items of one shape kind (Band, VLine, Curve), for tests."""
        return [item for item in self._pools[kind] if item.isVisible()]

    def export_item(self):
        return self.plot

    # ---- internals --------------------------------------------------------------------------------
    def _sync_layers(self) -> None:
        layers = list(self._trace.layers) if self._trace else []
        current = [self.layer_combo.itemText(i) for i in range(self.layer_combo.count())]
        if layers == current:
            return
        keep = self.layer_combo.currentText()
        with QtCore.QSignalBlocker(self.layer_combo):
            self.layer_combo.clear()
            self.layer_combo.addItems(layers)
            if keep in layers:
                self.layer_combo.setCurrentIndex(layers.index(keep))

    def _sync_slider(self, to_last: bool) -> None:
        last = max(self._trace.points - 1, 0) if self._trace else 0
        with QtCore.QSignalBlocker(self.slider):
            self.slider.setMaximum(last)
            if to_last:
                self.slider.setValue(last)

    def _on_selection(self, *_):
        self._redraw()
        self.selectionChanged.emit(self.layer(), self.point())

    def _redraw(self) -> None:
        trace, layer, point = self._trace, self.layer(), self.point()
        if trace is None or not layer or trace.points == 0:
            self.point_label.setText("no run")
            self.hist.setData([], [])
            self._draw_shapes([])
            self.note.say(NO_RUN)
            show_values(self.plot, False)       # no run: no weight values or counts to read
            self._announce()
            return
        show_values(self.plot, True)
        epoch = aligned(trace, "epoch")[point]
        epoch_text = f"epoch {epoch:g}" if np.isfinite(epoch) else "epoch ?"
        kind = trace.point_labels[point]      # reference | epoch | finalized; "epoch 3 · epoch" said it twice
        what = epoch_text if kind == "epoch" else kind if kind == "reference" else f"{kind} · {epoch_text}"
        self.point_label.setText(f"{what} ({point + 1}/{trace.points})")
        series = trace.layers.get(layer, {})
        counts = layer_value(trace, layer, "hist_counts", point)
        edges = trace.hist_edges.get(layer)
        if counts is None or edges is None or len(edges) != len(counts) + 1:
            self.hist.setData([], [])
            self.note.say(f"no weight histogram of {layer} recorded at this point")
        else:
            self.hist.setData(np.asarray(edges, float), np.asarray(counts, float))
            self.note.say("")
        self._draw_shapes(overlay_shapes(series, lambda name: edges if name == "hist_edges"
                                         else layer_value(trace, layer, name, point)))
        self._announce()

    def _announce(self) -> None:
        trace, layer, point = self._trace, self.layer(), self.point()
        points = trace.points if trace is not None else 0
        last = self._announced
        if last[0] is trace and last[1:] == (points, layer, point):     # the trace by identity
            return
        self._announced = (trace, points, layer, point)
        self.shown.emit(trace, layer, point)

    def _draw_shapes(self, shapes) -> None:
        used = {Band: 0, VLine: 0, Curve: 0}
        for shape in shapes:
            kind = type(shape)
            item = self._pooled(kind, used[kind])
            used[kind] += 1
            if kind is Band:
                item.setRegion((shape.lo, shape.hi))
                item.setBrush(pg.mkBrush(shape.color))
            elif kind is VLine:
                style = QtCore.Qt.PenStyle.DashLine if shape.dashed else QtCore.Qt.PenStyle.SolidLine
                item.setPen(pg.mkPen(shape.color, width=1.5, style=style))
                item.setValue(shape.x)
                side = 1 if shape.side == "left" else 0
                item.label.anchors = [(side, 0.5), (side, 0.5)]
                item.label.setFormat(shape.label)
                item.label.setColor(shape.color)
                item.label.setVisible(bool(shape.label))
                item.label.updatePosition()
            else:
                item.setData(shape.x, shape.y, pen=pg.mkPen(shape.color, width=1.5))
            item.show()
        for kind, pool in self._pools.items():
            for item in pool[used[kind]:]:
                item.hide()

    def _pooled(self, kind: type, index: int):
        pool = self._pools[kind]
        if index < len(pool):
            return pool[index]
        if kind is Band:
            item = pg.LinearRegionItem(movable=False, pen=pg.mkPen(None))
            item.setZValue(-10)      # behind the histogram
        elif kind is VLine:
            item = pg.InfiniteLine(angle=90, movable=False, label=" ",
                                   labelOpts={"position": 0.92, "anchors": [(0, 0.5), (0, 0.5)]})
        else:
            item = pg.PlotDataItem()
        self.plot.addItem(item, ignoreBounds=kind is not Curve)
        pool.append(item)
        return item

