"""The run store: one HDF5 file per run, standard types only (no pickles), readable by any HDF5 tool.

Layout (DESIGN.md):
    /               attrs: schema_version, status, error, config (JSON), method, model, dataset, device,
                           started, finished, workbench_version, reference_accuracy, and `warnings`
                           (one line each, e.g. a stalled stage) where there were any
    /metrics/<name> 1-D float64, one entry per evaluation point (NaN where a metric was not measured)
    /layers/<layer> attrs: shape, kind, dense_params; datasets: hist_edges (B+1), hist_counts (E x B),
                    nonzeros (E), plus method-specific series (E) or (E x n)
    /summary        attrs: test_accuracy, param_ratio, storage_ratio, bits, wall_seconds, ...
    /model          the final (compressed, materialised) weights as float32 datasets, attrs: model key,
                    input_shape, num_classes, and `structure` (JSON, models/structure.py) where a method
                    replaced layers by thinner or low-rank ones; the source for `workbench export`

Only the run's worker writes its file, and it flushes after every evaluation point, so a killed process
leaves a readable file whose status says `running`. A run file is created exclusively: an existing file
is never truncated (RunFileExists), so two processes that chose the same name cannot destroy each other's
run. Every chunked dataset (/metrics, /layers, /model) carries a Fletcher-32 checksum; reading one that
fails it is a one-line error, never wrong numbers. Files from before the /metrics and /layers checksums
read as they are.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from workbench import __version__
from workbench.core.errors import WorkbenchError

SCHEMA_VERSION = 1
STATUSES = ("running", "completed", "cancelled", "failed")


class RunFileExists(WorkbenchError):
    """The run file's name was taken (by another process, since the name was chosen)."""


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def _append(group: h5py.Group, name: str, value, points: int) -> None:
    """Write `value` as entry `points - 1` of the series `name`, creating/padding it with NaN."""
    value = np.asarray(value, dtype=np.float64)
    if name not in group:
        group.create_dataset(name, shape=(0,) + value.shape, maxshape=(None,) + value.shape,
                             dtype=np.float64, chunks=(64,) + value.shape, fillvalue=np.nan, fletcher32=True)
    ds = group[name]
    if ds.shape[1:] != value.shape:
        raise ValueError(f"series {name} changed shape {ds.shape[1:]} -> {value.shape}")
    ds.resize(points, axis=0)
    ds[points - 1] = value


def _pad(group: h5py.Group, points: int) -> None:
    """Series not measured at this point get NaN, so every series has one entry per point."""
    for name, ds in group.items():
        if name != "hist_edges" and ds.shape[0] < points:
            ds.resize(points, axis=0)


class RunWriter:
    def __init__(self, path: str | os.PathLike, attrs: dict):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.f = h5py.File(self.path, "x")     # never truncate a file that is there (another run's)
        except FileExistsError:
            raise RunFileExists(f"run file {self.path} already exists") from None
        except OSError as exc:
            raise WorkbenchError(f"cannot write run file {self.path}: {exc.strerror or exc}") from None
        self.points = 0
        a = self.f.attrs
        a["schema_version"] = SCHEMA_VERSION
        a["workbench_version"] = __version__
        a["status"] = "running"
        a["error"] = ""
        a["started"] = now_iso()
        for k, v in attrs.items():
            a[k] = v if v is not None else ""
        self.f.create_group("metrics")
        self.f.create_group("layers")
        self.f.create_group("summary")
        self.f.flush()

    def set_attrs(self, **attrs) -> None:
        for k, v in attrs.items():
            self.f.attrs[k] = v if v is not None else ""

    def add_layer(self, name: str, *, shape, kind: str, dense_params: int, hist_edges: np.ndarray) -> None:
        g = self.f["layers"].require_group(name)
        g.attrs["shape"] = np.asarray(shape, dtype=np.int64)
        g.attrs["kind"] = kind
        g.attrs["dense_params"] = int(dense_params)
        if "hist_edges" in g:
            del g["hist_edges"]
        g.create_dataset("hist_edges", data=np.asarray(hist_edges, dtype=np.float64), fletcher32=True)

    def append_point(self, metrics: dict[str, float], layers: dict[str, dict]) -> None:
        """One evaluation point: scalars for /metrics, per-layer series (hist_counts, nonzeros, ...)."""
        self.points += 1
        for name, value in metrics.items():
            _append(self.f["metrics"], name, value, self.points)
        _pad(self.f["metrics"], self.points)
        for layer, series in layers.items():
            g = self.f["layers"].require_group(layer)
            for name, value in series.items():
                _append(g, name, value, self.points)
        for g in self.f["layers"].values():
            _pad(g, self.points)
        self.flush()

    def save_model(self, state: dict[str, np.ndarray], **attrs) -> None:
        if "model" in self.f:
            del self.f["model"]
        g = self.f.create_group("model")
        for k, v in attrs.items():
            g.attrs[k] = v
        for key, value in state.items():
            value = np.asarray(value)
            # Chunked storage (compression, Fletcher-32 checksums) needs at least one element in one
            # dimension; 0-d buffers such as BatchNorm's num_batches_tracked are stored as they are.
            chunked = dict(compression="gzip", compression_opts=4, shuffle=True, fletcher32=True)
            g.create_dataset(key.replace("/", "|"), data=value, **(chunked if value.ndim and value.size else {}))
        self.flush()

    def finish(self, status: str, summary: dict | None = None, error: str = "") -> None:
        if status not in STATUSES:
            raise ValueError(status)
        for k, v in (summary or {}).items():
            self.f["summary"].attrs[k] = v
        self.f.attrs["status"] = status
        self.f.attrs["error"] = error
        self.f.attrs["finished"] = now_iso()
        self.close()

    def flush(self) -> None:
        self.f.flush()

    def close(self) -> None:
        if self.f.id.valid:
            self.f.close()


@dataclass
class RunData:
    """Everything small in a run file, as plain Python and numpy values."""

    path: Path
    attrs: dict
    metrics: dict[str, np.ndarray]
    layers: dict[str, dict]
    summary: dict
    has_model: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        return str(self.attrs.get("status", ""))

    @property
    def config(self) -> dict:
        return json.loads(self.attrs.get("config", "{}") or "{}")


def _plain(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _read(ds: h5py.Dataset, path) -> np.ndarray:
    try:
        return ds[()]
    except OSError as exc:
        # A Fletcher-32 mismatch reaches h5py as "filter returned failure during read".
        what = "fails its checksum" if "filter" in str(exc) else f"cannot be read ({exc})"
        raise WorkbenchError(f"{path} is damaged: {ds.name} {what}") from None


def read_run(path: str | os.PathLike) -> RunData:
    path = Path(path)
    try:
        with h5py.File(path, "r", locking=False) as f:
            if "schema_version" not in f.attrs:
                raise WorkbenchError(f"{path} is an HDF5 file but not a workbench run")
            attrs = {k: _plain(v) for k, v in f.attrs.items()}
            metrics = {k: _read(ds, path) for k, ds in f["metrics"].items()}
            layers = {}
            for name, g in f["layers"].items():
                entry = {k: _plain(v) for k, v in g.attrs.items()}
                entry.update({k: _read(ds, path) for k, ds in g.items()})
                layers[name] = entry
            summary = {k: _plain(v) for k, v in f["summary"].attrs.items()}
            return RunData(path, attrs, metrics, layers, summary, has_model="model" in f)
    except FileNotFoundError:
        raise WorkbenchError(f"no such run file: {path}") from None
    except KeyError as exc:
        raise WorkbenchError(f"{path} is a damaged run file (missing {exc})") from None
    except OSError as exc:
        raise WorkbenchError(f"{path} is not a readable HDF5 run file ({exc})") from None


def read_model(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """The final weights stored in a run file, and the attributes needed to rebuild the model."""
    run = read_run(path)
    if not run.has_model:
        raise WorkbenchError(f"{path} holds no final model (status {run.status}); only finished runs "
                             "can be exported")
    try:
        with h5py.File(path, "r", locking=False) as f:
            g = f["model"]
            state = {k.replace("|", "/"): _read(ds, path) for k, ds in g.items()}
            attrs = {k: _plain(v) for k, v in g.attrs.items()}
    except (OSError, KeyError, TypeError) as exc:       # a Group where a tensor belongs: TypeError
        raise WorkbenchError(f"{path} is damaged: its model cannot be read ({exc})".splitlines()[0]) from None
    return state, attrs
