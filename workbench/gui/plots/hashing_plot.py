"""Hashed layers' buckets: how many buckets hold 0, 1, 2, ... members (the selected layer's space), and per
layer the share of its members that collide with others (and, in a shared space, with other layers).

Collisions are what HashedNets trade for storage: at ratio 1/8 most buckets hold several virtual weights
(Poisson-like around the ratio's inverse), and functional hashing's U fetches per weight multiply that.
The hash is fixed by the seed, so these series are constant over a run; the space's RMS is not.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from workbench.gui.plots.common import SideTab, foreground, layer_value, plain_axes, run_color


class HashingPlot(SideTab):
    def __init__(self, parent=None):
        super().__init__("no hashed layers in this run (hashed and funhash record bucket statistics)", parent)
        self._layer = ""
        self._point = -1
        self.occupancy = self.view.addPlot(row=0, col=0)
        self.occupancy.setLabel("left", "buckets")
        self.occupancy.setLabel("bottom", "members per bucket")
        self.occupancy.showGrid(y=True, alpha=0.2)
        self.occupancy_bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush=run_color(0), pen=pg.mkPen(None))
        self.occupancy.addItem(self.occupancy_bars)
        self.collisions = self.view.addPlot(row=1, col=0)   # below: the side tab is narrow
        self.collisions.setLabel("left", "%")
        self.collisions.showGrid(y=True, alpha=0.2)
        self.collisions.setMouseEnabled(x=False, y=False)
        self.collision_bars = pg.BarGraphItem(x=[], height=[], width=0.35, brush=run_color(0), pen=pg.mkPen(None))
        self.cross_bars = pg.BarGraphItem(x=[], height=[], width=0.35, brush=run_color(1), pen=pg.mkPen(None))
        self.collisions.addItem(self.collision_bars)
        self.collisions.addItem(self.cross_bars)
        self.collisions.setTitle("members colliding: with any member (left bar), with other layers (right)", size="8pt",
                                 color=foreground())
        plain_axes(self.occupancy, self.collisions)
        self.view.ci.layout.setRowStretchFactor(0, 3)
        self.view.ci.layout.setRowStretchFactor(1, 2)

    def set_layer(self, layer: str, point: int = -1) -> None:
        self._layer, self._point = layer, point
        self._redraw()

    def hashed_layers(self) -> list[str]:
        trace = self._trace
        return [n for n, series in trace.layers.items() if "occupancy_hist" in series] if trace else []

    def shown_layer(self) -> str:
        layers = self.hashed_layers()
        return self._layer if self._layer in layers else (layers[0] if layers else "")

    @staticmethod
    def occupancy_bins(count: int, width: float) -> np.ndarray:
        """Bar centres: bin i holds buckets with i w ... (i + 1) w - 1 members."""
        return np.arange(count) * width + (width - 1) / 2

    def occupancy_centres(self) -> np.ndarray:
        return np.asarray(self.occupancy_bars.opts["x"], float)

    def occupancy_heights(self) -> np.ndarray:
        return np.asarray(self.occupancy_bars.opts["height"], float)

    def collision_heights(self) -> np.ndarray:
        return np.asarray(self.collision_bars.opts["height"], float)

    def _value(self, layer: str, name: str):
        trace = self._trace
        last = trace.points - 1
        point = self._point if 0 <= self._point <= last else last
        # the statistics are recorded at training points; fall back to the newest that has them
        for p in [point, *range(last, -1, -1)]:
            v = layer_value(trace, layer, name, p)
            if v is not None:
                return v
        return None

    def _redraw(self) -> None:
        layers = self.hashed_layers()
        self.note.setVisible(not layers)
        self.view.setVisible(bool(layers))
        if not layers:
            self.occupancy_bars.setOpts(x=[], height=[])
            self.collision_bars.setOpts(x=[], height=[])
            self.cross_bars.setOpts(x=[], height=[])
            return
        layer = self.shown_layer()
        hist = self._value(layer, "occupancy_hist")
        hist = np.zeros(0) if hist is None else np.asarray(hist, float)
        recorded = self._value(layer, "occupancy_bin")
        width = float(recorded) if recorded else 1.0
        self.occupancy_bars.setOpts(x=self.occupancy_bins(len(hist), width), height=hist, width=0.8 * width)
        # files from before occupancy_bin: bins of one member, the last one "32 or more"
        note = f" (bins of {width:g})" if width > 1 else "" if recorded else " (last bar: 32 or more)"
        self.occupancy.setLabel("bottom", "members per bucket" + note)
        mean = self._value(layer, "members_mean")
        buckets = self._value(layer, "buckets")
        self.occupancy.setTitle(f"{layer}: {int(buckets or 0):,} buckets, {float(mean or 0):.1f} members "
                                f"per reached bucket", size="9pt")
        x = np.arange(len(layers), dtype=float)
        coll = [100 * float(self._value(n, "collision_fraction") or 0) for n in layers]
        cross = [100 * float(self._value(n, "cross_fraction") or 0) for n in layers]
        self.collision_bars.setOpts(x=x - 0.2, height=coll, width=0.35,
                                    brushes=[run_color(0) if n == layer else run_color(9) for n in layers])
        self.cross_bars.setOpts(x=x + 0.2, height=cross, width=0.35)
        self.collisions.getAxis("bottom").setTicks([[(i, n) for i, n in enumerate(layers)]])
        self.collisions.setYRange(0, 100, padding=0.02)
        self.collisions.setXRange(-0.6, len(layers) - 0.4, padding=0)
