"""A deployment measurement's report: its JSON form, its table, and its place in the run file.

Stored under /deploy in the run file: attrs `report` (the JSON) and `measured` (ISO time); a report too
large for an HDF5 attribute (64 KiB) goes into a uint8 dataset `report_json` (Fletcher-32) instead. A new
measurement is written as a new group first and renamed to /deploy only after the old one is deleted, so
an interruption leaves either report readable (read_report also finds the new group under its temporary
name). The store's reader (core/store.py) reads /metrics, /layers, /summary and /model only.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np

from workbench.core.errors import WorkbenchError
from workbench.core.store import now_iso, read_run

FORMAT, VERSION = "workbench-deploy", 1
GROUP, PENDING = "deploy", "deploy-new-"
ATTR_LIMIT = 60_000           # HDF5's compact attribute storage holds 64 KiB
CHANGED_POINTS = 0.1          # a form whose accuracy differs from dense's by more says so


@dataclass
class FormResult:
    name: str                                    # e.g. "dense", "csr", "onnxruntime", "dense@cuda"
    runtime: str                                 # "pytorch" | "onnxruntime"
    device: str                                  # "cpu" | "cuda"
    description: str = ""
    samples_ms: dict[int, list[float]] = field(default_factory=dict)   # batch -> ms per call, each repeat
    file_bytes: int | None = None                # the file this form runs from
    memory: dict | None = None                   # {"resident_mb", "peak_mb"}: see the report's memory_note
    accuracy: float | None = None                # on the report's evaluation subset
    agreement: float | None = None               # fraction of predictions equal to dense's
    max_abs_diff: float | None = None            # largest |logit - dense logit| on the subset
    accuracy_changed: bool = False               # differs from dense's by more than CHANGED_POINTS
    speedup: dict = field(default_factory=dict)  # against the reference on the same device: see add_speedups
    note: str = ""
    # per layer, for a form that chose per layer (csr: {layer: {"density", "ratio": {str(batch): dense ms
    # / CSR ms}, "form": "csr" | "dense"}}, engine/deploy_csr.plan)
    layers: dict = field(default_factory=dict)

    @property
    def latency_ms(self) -> dict[int, float]:
        """Median milliseconds per call at each batch size."""
        return {b: statistics.median(s) for b, s in self.samples_ms.items() if s}

    @property
    def throughput(self) -> dict[int, float]:
        """Samples per second at each batch size (from the median call)."""
        return {b: b * 1000.0 / ms for b, ms in self.latency_ms.items() if ms > 0}


@dataclass
class DeployReport:
    run: str
    method: str
    model: str
    dataset: str
    threads: int
    batches: list[int]
    repeats: int
    measured: str = ""
    platform: dict = field(default_factory=dict)
    accuracy_on: str = ""                        # which test samples the accuracies are on
    dense_accuracy: float | None = None
    reference_source: str = ""
    compact_bytes: int | None = None             # the run's compact export (the accounted size)
    memory_note: str = ""
    notes: list[str] = field(default_factory=list)
    forms: list[FormResult] = field(default_factory=list)

    def form(self, name: str) -> FormResult:
        for f in self.forms:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_json(self) -> str:
        d = {"format": FORMAT, "version": VERSION, **asdict(self)}
        d["forms"] = [_form_json(f) for f in self.forms]
        return json.dumps(d, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> DeployReport:
        try:
            d = json.loads(text)
            if d.pop("format", None) != FORMAT:
                raise ValueError("not a deployment report")
            if d.pop("version", None) != VERSION:
                raise ValueError(f"report version is not {VERSION}")
            forms = [_form_from(f) for f in d.pop("forms")]
            return cls(**d, forms=forms)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise WorkbenchError(f"the deployment report cannot be read ({type(exc).__name__}: {exc})"
                                 .splitlines()[0]) from None


def _form_json(f: FormResult) -> dict:
    d = asdict(f)
    d["samples_ms"] = {str(b): [round(v, 6) for v in s] for b, s in f.samples_ms.items()}
    # derived figures too, so that a reader of the JSON needs no statistics of its own
    d["latency_ms"] = {str(b): v for b, v in f.latency_ms.items()}
    d["throughput"] = {str(b): v for b, v in f.throughput.items()}
    return d


def _form_from(d: dict) -> FormResult:
    d = dict(d)
    d.pop("latency_ms", None)                 # recomputed from the samples
    d.pop("throughput", None)
    d["samples_ms"] = {int(b): [float(v) for v in s] for b, s in d["samples_ms"].items()}
    return FormResult(**d)


def accuracy_changed(form: FormResult, dense_accuracy: float | None) -> bool:
    return (form.accuracy is not None and dense_accuracy is not None
            and abs(form.accuracy - dense_accuracy) * 100 > CHANGED_POINTS)


def add_speedups(report: DeployReport) -> None:
    """Each form's speed-up against the reference on its device, from the same process's medians:
    speedup = {"latency": reference ms / form ms at the smallest batch,
               "throughput": {batch: form samples/s / reference samples/s}} (keys are str in JSON)."""
    for f in report.forms:
        ref_name = "reference" if f.device == "cpu" else f"reference@{f.device}"
        try:
            ref = report.form(ref_name).latency_ms
        except KeyError:
            f.speedup = {}
            continue
        mine = f.latency_ms
        common = sorted(set(ref) & set(mine))
        f.speedup = {"against": ref_name,
                     "latency": ref[common[0]] / mine[common[0]] if common else None,
                     "throughput": {str(b): ref[b] / mine[b] for b in common}}


def format_table(report: DeployReport) -> str:
    """The report as a text table: one line per form, then what was measured how."""
    small, large = report.batches[0], report.batches[1:]
    head = [f"{'form':<22}", f"{f'ms b{small}':>9}", f"{'x ref':>6}"]
    head += [f"{f'/s b{b}':>10} {'x ref':>6}" for b in large]
    head += [f"{'file KiB':>9}", f"{'peak MB':>8}", f"{'accuracy':>9}"]
    lines = [" ".join(head)]
    for f in report.forms:
        lat, thr, up = f.latency_ms, f.throughput, f.speedup.get("throughput", {})
        row = [f"{f.name:<22}", _num(lat.get(small), 9, 3), _num(f.speedup.get("latency"), 6, 2)]
        row += [f"{_num(thr.get(b), 10, 0)} {_num(up.get(str(b)), 6, 2)}" for b in large]
        row += [_num(f.file_bytes / 1024 if f.file_bytes is not None else None, 9, 1),
                _num((f.memory or {}).get("peak_mb"), 8, 1),
                _num(f.accuracy * 100 if f.accuracy is not None else None, 8, 2)
                + ("*" if f.accuracy_changed else " ")]
        lines.append(" ".join(row))
    lines.append(f"run {report.run}: {report.method} on {report.model}, {report.dataset}; threads {report.threads}; "
                 f"median of {report.repeats} interleaved repeats; x ref: speed-up against the reference")
    lines.append(f"accuracy on {report.accuracy_on}; * differs from dense by more than {CHANGED_POINTS} points")
    if report.compact_bytes is not None:
        lines.append(f"compact export (the accounted size): {report.compact_bytes / 1024:.1f} KiB")
    lines += [report.memory_note] if report.memory_note else []
    lines += [f"{f.name}: {f.note}" for f in report.forms if f.note]
    lines += [_layers_line(f) for f in report.forms if f.layers] + report.notes
    return "\n".join(lines)


def _layers_line(f: FormResult) -> str:
    """Each layer's density, its dense ms / CSR ms at each batch size and what the form made it."""
    batches = next(iter(f.layers.values()))["ratio"].keys()
    parts = [f"{name} {d['density']:.0%} " + "/".join(f"{r:.2f}" for r in d["ratio"].values()) + f" {d['form']}"
             for name, d in f.layers.items()]
    return (f"{f.name} per layer (density, dense ms / CSR ms at batch {'/'.join(batches)}, chosen): "
            + "; ".join(parts))


def deploy_summary(report: DeployReport | None) -> dict | None:
    """The headline of a report for a table of runs: the fastest CPU form at the smallest batch measured
    (batch 1 by default) among the forms that compute the run's model, i.e. not the reference and not a
    form flagged as changing accuracy against dense. {"form", "batch", "latency_ms", "speedup" (against
    the reference, same process), "threads"}; None without a report or a timed form."""
    if report is None or not report.batches:
        return None
    batch = report.batches[0]
    timed = [f for f in report.forms if f.device == "cpu" and not f.name.startswith("reference")
             and not f.accuracy_changed and batch in f.latency_ms]
    if not timed:
        return None
    best = min(timed, key=lambda f: f.latency_ms[batch])
    return {"form": best.name, "batch": batch, "latency_ms": best.latency_ms[batch],
            "speedup": best.speedup.get("latency"), "threads": report.threads}


def _num(v, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if v is None else f"{v:>{width}.{digits}f}"


def store_report(run_path: str | os.PathLike, report: DeployReport) -> None:
    """Write the report into the run file under /deploy, replacing an earlier one.

    As the run store writes its files (core/store.py), the change is made on a copy beside the file
    (`.NAME.h5.deploy-part`) and renamed over it: a reader, a kill or a full disk meets the old file or the
    new one, never a half-written one. A run still being written is refused: its writer would replace
    the file at its next point and the report with it."""
    path = Path(run_path)
    try:
        run = read_run(path)
    except OSError as exc:
        raise WorkbenchError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    if run.attrs.get("status") == "running" and run.writer_alive:
        raise WorkbenchError(f"{path.name} is still being written: measure it once the run has ended")
    text = report.to_json()
    part = path.with_name(f".{path.name}.deploy-part")
    try:
        shutil.copyfile(path, part)
        with h5py.File(part, "a") as f:
            for stale in [k for k in f if k == GROUP or k.startswith(PENDING)]:
                del f[stale]
            g = f.create_group(GROUP)
            g.attrs["measured"] = report.measured or now_iso()
            if len(text.encode()) <= ATTR_LIMIT:
                g.attrs["report"] = text
            else:
                g.create_dataset("report_json", data=np.frombuffer(text.encode(), dtype=np.uint8),
                                 chunks=True, compression="gzip", fletcher32=True)
        os.replace(part, path)
    except OSError as exc:
        raise WorkbenchError(f"cannot store the deployment report in {path}: "
                             f"{str(exc).splitlines()[0]}") from None
    finally:
        part.unlink(missing_ok=True)


def read_report(run_path: str | os.PathLike) -> DeployReport | None:
    """The report stored in the run file, or None when it holds none."""
    try:
        with h5py.File(run_path, "r", locking=False) as f:
            if "schema_version" not in f.attrs:
                raise WorkbenchError(f"{run_path} is an HDF5 file but not a workbench run")
            names = [GROUP] if GROUP in f else sorted(k for k in f if k.startswith(PENDING))
            if not names:
                return None
            g = f[names[0]]
            if "report" in g.attrs:
                text = g.attrs["report"]
                text = text.decode() if isinstance(text, bytes) else str(text)
            else:
                text = g["report_json"][()].tobytes().decode()
    except FileNotFoundError:
        raise WorkbenchError(f"no such run file: {run_path}") from None
    except (OSError, KeyError, UnicodeDecodeError) as exc:
        raise WorkbenchError(f"{run_path}: the deployment report cannot be read "
                             f"({str(exc).splitlines()[0]})") from None
    return DeployReport.from_json(text)
