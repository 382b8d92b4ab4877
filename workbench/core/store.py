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

How a run file is written, and why. Only the run's worker writes its file. It builds the file in memory
(HDF5's core driver) and after every evaluation point (and the final model, and the end) puts the whole
image on disk by writing a temporary file and renaming it over the run file (core/file_image.py). So:
- any reader (h5py with default locking, `h5dump`, another process, the app) can open a run file while
  it is written, and always sees a complete file as of the last point; one it keeps open stays as it was;
- a process killed at any moment (kill -9) leaves the last complete image, status `running`, which the
  reader reports as `interrupted` once no live writer holds it;
- running out of disk (or over `ulimit -f`) is noticed before writing (a free-space check with room for
  one more image, so the end can still be recorded) or, if another process fills the disk in between,
  by the failed write, which leaves the previous image untouched: the run ends `failed` with one line
  ("disk full: could not write RUN.h5 (...); the N points so far are kept").
The alternatives were worse. HDF5's SWMR needs every dataset created before readers may open the file,
but series appear mid-run (each layer's series at the first point, method-specific ones later, /model at
the end), and files written with libver='latest' refuse plain readers. Writing in place without locking
and flushing after each point lets a reader meet metadata half-flushed, and a write that fails on a full
disk leaves HDF5 in an undefined state: files that no longer open ("truncated file") and crashes at exit.
Run files are small (histograms per point, one compressed model), so rewriting them per point is cheap.

A run file is created exclusively: an existing file is never truncated (RunFileExists), so two
processes that chose the same name cannot destroy each other's run. Every chunked dataset (/metrics,
/layers, /model) carries a Fletcher-32 checksum; reading one that fails it is a one-line error, never
wrong numbers. Files from before the /metrics and /layers checksums read as they are.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from workbench import __version__
from workbench.core import file_image
from workbench.core.errors import WorkbenchError

SCHEMA_VERSION = 1
STATUSES = ("running", "completed", "cancelled", "failed")   # as stored; read_run adds "interrupted"


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


class DiskFull(WorkbenchError):
    """The run file could not be written for want of room: a full disk, a quota, the file size limit."""


def _memory_file(path: Path, image: bytes | None = None) -> h5py.File:
    """An HDF5 file held in memory only (empty, or opened from an image); the disk is written by _save."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_fapl_core(backing_store=False)
    name = f"{path}#memory".encode()
    if image is None:
        return h5py.File(h5py.h5f.create(name, h5py.h5f.ACC_TRUNC, fapl=fapl))
    fapl.set_file_image(image)
    return h5py.File(h5py.h5f.open(name, h5py.h5f.ACC_RDWR, fapl=fapl))


_OUT_OF_ROOM = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EFBIG: "file too large"}


def _write_error(exc: OSError, path: Path, points: int | None) -> WorkbenchError:
    """One line for a failed write; `points` None: the file was being created (and is not there)."""
    what, reason = _OUT_OF_ROOM.get(exc.errno, "write failed"), exc.strerror or str(exc)
    error = DiskFull if exc.errno in _OUT_OF_ROOM else WorkbenchError
    if points is None:
        return error(f"{what}: could not create {path} ({reason}); no run file was written")
    kept = "the 1 point so far is kept" if points == 1 else f"the {points} points so far are kept"
    return error(f"{what}: could not write {path} ({reason}); {kept}")


class RunWriter:
    """Writes one run file (see the module docstring: built in memory, put on disk whole per point)."""

    def __init__(self, path: str | os.PathLike, attrs: dict):
        self.path = Path(path)
        self.points = 0             # points recorded (in memory)
        self.saved_points = 0       # points in the image on disk
        self._fd: int | None = None
        self._unsaved = False       # the last write failed: memory holds more than the disk
        self.f = _memory_file(self.path)
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
        image = self._image()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:      # outside the next try: a file in the way is not "the run file exists"
            self.f.close()
            raise WorkbenchError(f"cannot make the run folder {self.path.parent}: {exc.strerror or exc}") from None
        try:
            file_image.check_room(self.path.parent, 2 * len(image), len(image))
            self._fd = file_image.create(self.path, image)   # never truncate a file that is there
        except FileExistsError:
            self.f.close()
            raise RunFileExists(f"run file {self.path} already exists") from None
        except OSError as exc:
            self.f.close()
            if exc.errno in _OUT_OF_ROOM:
                raise _write_error(exc, self.path, None) from None
            raise WorkbenchError(f"cannot write run file {self.path}: {exc.strerror or exc}") from None
        self._saved = image

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
        """Record the end and close. After a failed write the end is recorded on what the disk holds (the
        points so far); if even that cannot be written, the file stays as it was (`running`, which the
        reader reports as `interrupted`) and this raises the one-line error."""
        if status not in STATUSES:
            raise ValueError(status)
        try:
            if self._unsaved:
                self.f.close()
                self.f, self.points = _memory_file(self.path, self._saved), self.saved_points
            for k, v in (summary or {}).items():
                self.f["summary"].attrs[k] = v
            self.f.attrs["status"] = status
            self.f.attrs["error"] = error
            self.f.attrs["finished"] = now_iso()
            self._save(final=True)
        finally:
            self.close()

    def flush(self) -> None:
        """Put what is recorded so far on disk (raises DiskFull / WorkbenchError with one line)."""
        self._save(final=False)

    def _image(self) -> bytes:
        self.f.flush()
        return self.f.id.get_file_image()

    def _save(self, final: bool) -> None:
        image = self._image()
        try:
            # Before the end, room for this image and one more: whatever happens next, the run's end
            # (status, error) can still be written over it.
            file_image.check_room(self.path.parent, len(image) * (1 if final else 2), len(image))
            self._fd = file_image.replace(self.path, image, self._fd, sync=final)
        except OSError as exc:
            self._unsaved = True
            raise _write_error(exc, self.path, self.saved_points) from None
        self._saved, self.saved_points, self._unsaved = image, self.points, False

    def close(self) -> None:
        if self.f.id.valid:
            self.f.close()
        if self._fd is not None:
            os.close(self._fd)      # drops the writer's lock: readers no longer see a live writer
            self._fd = None


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
    writer_alive: bool | None = None     # for a `running` file: is a live process still writing it?

    @property
    def status(self) -> str:
        """The stored status, except `interrupted` for a file still marked `running` whose writer is gone
        (killed, crashed, or out of disk before it could record its end)."""
        stored = str(self.attrs.get("status", ""))
        return "interrupted" if stored == "running" and self.writer_alive is False else stored

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
    """A run file's small parts; a file marked `running` is checked for a live writer (see RunData.status)."""
    if Path(path).is_dir():
        raise WorkbenchError(f"{path} is a folder, not a run file")
    run = _read_run(Path(path))
    if run.attrs.get("status") == "running":
        run.writer_alive = file_image.writer_alive(path)
        if run.writer_alive is False:
            # Gone, or it recorded its end between the read and the check (its lock goes only after the
            # last image is in place): read again; a file that still says `running` was interrupted.
            run = _read_run(Path(path))
            run.writer_alive = False if run.attrs.get("status") == "running" else None
    return run


def _read_run(path: Path) -> RunData:
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
