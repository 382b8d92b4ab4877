"""What the plots show of one run, filled live from run events or at once from a run file.

Plain Python and numpy (no Qt), so the worker thread can build points and the GUI thread only appends
them; plots read a trace, never the HDF5 file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench.core.errors import WorkbenchError
from workbench.core.events import Evaluated, RunStarted
from workbench.core.store import RunData, read_run
from workbench.engine.deploy_report import DeployReport, read_report
from workbench.engine.runner import POINT_KINDS

_STAMPED = re.compile(r"(?P<date>\d{8})-(?P<h>\d\d)(?P<m>\d\d)(?P<s>\d\d)-")


def run_label(config: dict, path: str) -> str:
    """A run's name in legends and the table, the same while it runs and once its file is read back:
    what ran, on what, with which seed, and when it started (runner.run_path_for's time stamp), so a
    sweep's runs differing only in a knob stay apart; "#2" for a second file of the same second.
    A run given its own name (RunConfig.name) goes by its file's name; a file without config as well."""
    stem = Path(path).stem
    stages = config.get("stages") or []
    if not stages or config.get("name"):
        return stem
    method = "+".join(str(s.get("method", "?")) for s in stages)
    model = Path(config["model"]).name if config.get("model") else \
        Path(config.get("checkpoint") or "model").stem
    label = f"{method} {model} {config.get('dataset', '?')} s{config.get('seed', 0)}"
    stamp = _STAMPED.match(stem)
    if stamp:
        label += f" {stamp['h']}:{stamp['m']}:{stamp['s']}"
        again = re.search(r"-s\d+-(\d+)$", stem)     # NAME-2.h5: the name was taken (run_path_for)
        if again:
            label += f" #{again[1]}"
    return label


@dataclass
class RunTrace:
    path: str
    label: str                     # run_label: e.g. "dns lenet300 mnist s0 17:58:12"
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
    deploy: DeployReport | None = None             # the deployment report stored in the run file, if any
    deploy_error: str = ""                         # why a stored report could not be read

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
    def started(cls, event: RunStarted) -> "RunTrace":
        """The live trace of a run that has just started, from its RunStarted event alone (its config
        is the one the run file holds)."""
        config = json.loads(event.config.get("config") or "{}")
        return cls(path=event.run_path, label=run_label(config, event.run_path),
                   method="+".join(s["method"] for s in config.get("stages", [])),
                   model=config.get("model") or "", attrs={"device": event.device}, config=config,
                   hist_edges=dict(event.hist_edges))

    @classmethod
    def from_run(cls, run: RunData) -> "RunTrace":
        a = run.attrs
        n = len(next(iter(run.metrics.values()), []))
        config = run.config
        trace = cls(path=str(run.path), label=run_label(config, str(run.path)), method=str(a.get("method", "")),
                    model=str(a.get("model", "")), status=run.status, summary=dict(run.summary),
                    config=config, attrs={k: v for k, v in a.items() if k != "config"})
        trace.metrics = {k: [float(x) for x in v] for k, v in run.metrics.items()}
        for layer, entry in run.layers.items():
            if "hist_edges" in entry:
                trace.hist_edges[layer] = np.asarray(entry["hist_edges"])
            trace.layers[layer] = {k: list(v) for k, v in entry.items()
                                   if isinstance(v, np.ndarray) and k != "hist_edges" and len(v) == n}
        kinds = trace.metrics.get("point_kind") or [0] + [1] * max(n - 2, 0) + [2] * (n > 1)
        trace.point_labels = [POINT_KINDS[int(k)] if np.isfinite(k) else "epoch" for k in kinds]
        return trace


def load_trace(path: str) -> RunTrace:
    """A run file as the app shows it: its trace and the deployment report it holds (read in the thread
    pool, never on the GUI thread). A report that cannot be read leaves the run readable and says why."""
    trace = RunTrace.from_run(read_run(path))
    try:
        trace.deploy = read_report(path)
    except WorkbenchError as exc:
        trace.deploy_error = str(exc)
    return trace
