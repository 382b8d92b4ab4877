"""What the plots show of one run, filled live from run events or at once from a run file.

Plain Python and numpy (no Qt), so the worker thread can build points and the GUI thread only appends
them; plots read a trace, never the HDF5 file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from workbench.core.events import Evaluated
from workbench.core.store import RunData
from workbench.engine.runner import POINT_KINDS


@dataclass
class RunTrace:
    path: str
    label: str                     # e.g. "dns lenet300 s0"
    method: str
    model: str = ""
    status: str = "running"
    metrics: dict[str, list[float]] = field(default_factory=dict)        # name -> one value per point
    layers: dict[str, dict[str, list]] = field(default_factory=dict)     # layer -> series -> values
    hist_edges: dict[str, np.ndarray] = field(default_factory=dict)      # layer -> B+1 edges
    point_labels: list[str] = field(default_factory=list)                # reference | epoch | finalized
    summary: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)      # the run file's root attributes (device, dataset, ...)

    @property
    def points(self) -> int:
        return len(self.point_labels)

    @property
    def dataset(self) -> str:
        """The data set the run used, as its config names it (older files: the root attribute)."""
        return str(self.config.get("dataset") or self.attrs.get("dataset") or "")

    def series(self, name: str) -> np.ndarray:
        return np.asarray(self.metrics.get(name, [np.nan] * self.points), dtype=float)

    def layer_series(self, layer: str, name: str) -> list:
        return self.layers.get(layer, {}).get(name, [])

    def add_point(self, event: Evaluated) -> None:
        """Append one evaluation point; series missing at this point get NaN, so all stay aligned."""
        n = self.points
        for name in set(self.metrics) | set(event.metrics):
            values = self.metrics.setdefault(name, [np.nan] * n)
            values.append(float(event.metrics.get(name, np.nan)))
        for layer, entry in event.layers.items():
            series = self.layers.setdefault(layer, {})
            for name in set(series) | set(entry):
                values = series.setdefault(name, [None] * n)
                values.append(entry.get(name))
        self.point_labels.append(event.label)

    @classmethod
    def from_run(cls, run: RunData) -> "RunTrace":
        a = run.attrs
        n = len(next(iter(run.metrics.values()), []))
        trace = cls(path=str(run.path), label=run.path.stem, method=str(a.get("method", "")),
                    model=str(a.get("model", "")), status=run.status, summary=dict(run.summary),
                    config=run.config, attrs={k: v for k, v in a.items() if k != "config"})
        trace.metrics = {k: [float(x) for x in v] for k, v in run.metrics.items()}
        for layer, entry in run.layers.items():
            if "hist_edges" in entry:
                trace.hist_edges[layer] = np.asarray(entry["hist_edges"])
            trace.layers[layer] = {k: list(v) for k, v in entry.items()
                                   if isinstance(v, np.ndarray) and k != "hist_edges" and len(v) == n}
        kinds = trace.metrics.get("point_kind") or [0] + [1] * max(n - 2, 0) + [2] * (n > 1)
        trace.point_labels = [POINT_KINDS[int(k)] if np.isfinite(k) else "epoch" for k in kinds]
        return trace
