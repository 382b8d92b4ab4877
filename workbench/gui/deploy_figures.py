"""The figures the app shows of a deployment report: per-form rows, plot points, the Compare table's pick.

Plain Python (no Qt): the Deploy tab, its plots and the Compare table read a report through these, so
they agree on which batch is "batch 1" and which form is the fastest.
"""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass

from workbench.engine.deploy_report import DeployReport, FormResult, deploy_summary


def is_reference(form: FormResult) -> bool:
    """The uncompressed model the run started from (on CPU or CUDA): the baseline, not a form of the run."""
    return form.name.split("@")[0] == "reference"


def small_batch(report: DeployReport) -> int:
    """The batch the latency figures are at: 1 where measured, else the smallest measured."""
    return 1 if 1 in report.batches else min(report.batches)


def latency(form: FormResult, batch: int) -> float | None:
    return form.latency_ms.get(batch)


@dataclass(frozen=True)
class CompareFigures:
    latency_ms: float
    speedup: float | None
    tip: str


def compare_figures(report: DeployReport | None) -> CompareFigures | None:
    """The Compare table's "Latency ms" and "Speed-up" of a run, with the tooltip naming the form: the
    engine's pick (deploy_report.deploy_summary, which `workbench compare` prints too)."""
    best = deploy_summary(report)
    if best is None:
        return None
    form, speedup = report.form(best["form"]), best["speedup"]
    tip = (f"{form.name} ({form.runtime}), the fastest form on CPU at batch {best['batch']}: "
           f"{best['latency_ms']:.4g} ms" + (f", {speedup:.2f}x the reference" if speedup else "")
           + f"; {report.threads} thread{'s' * (report.threads != 1)}, measured {report.measured.replace('T', ' ')[:16]}")
    return CompareFigures(best["latency_ms"], speedup, tip)


@dataclass(frozen=True)
class FormRow:
    """One line of the Deploy tab's table: numbers (None: not measured) and the texts around them."""
    name: str
    description: str
    latency_ms: float | None
    throughput: float | None          # samples/s at the largest batch
    speedup: float | None             # latency speed-up against the reference on the same device
    file_kib: float | None
    peak_mb: float | None
    accuracy_pct: float | None
    changed: bool
    note: str


def form_rows(report: DeployReport) -> list[FormRow]:
    small, large = small_batch(report), max(report.batches)
    rows = []
    for f in report.forms:
        rows.append(FormRow(
            f.name, f.description, latency(f, small), f.throughput.get(large), f.speedup.get("latency"),
            f.file_bytes / 1024 if f.file_bytes is not None else None,
            (f.memory or {}).get("peak_mb"), f.accuracy * 100 if f.accuracy is not None else None,
            # the reference is the model before compression: differing from dense is what it is for
            bool(f.accuracy_changed) and not is_reference(f), f.note))
    return rows


@dataclass(frozen=True)
class Point:
    """One (run, form) point of the Deploy plots."""
    run: str                          # the run's label
    form: str
    reference: bool
    latency_ms: float | None
    file_kib: float | None
    accuracy_pct: float | None
    batch: int


def points(label: str, report: DeployReport) -> list[Point]:
    batch = small_batch(report)
    return [Point(label, f.name, is_reference(f), latency(f, batch),
                  f.file_bytes / 1024 if f.file_bytes is not None else None,
                  f.accuracy * 100 if f.accuracy is not None else None, batch) for f in report.forms]


def heading(report: DeployReport) -> str:
    """What was measured how, in one or two lines above the table: threads and machine first."""
    p = report.platform or {}
    machine = ", ".join(x for x in (
        str(p.get("processor") or p.get("machine") or _platform.machine()),
        f"{p['cpus']} CPUs" if p.get("cpus") else "", str(p.get("system", "")),
        f"torch {p['torch']}" if p.get("torch") else "",
        f"onnxruntime {p['onnxruntime']}" if p.get("onnxruntime") else "",
        f"CUDA: {p['cuda']}" if p.get("cuda") else "") if x)
    threads = f"{report.threads} thread{'s' * (report.threads != 1)}"
    lines = [f"{threads} on {machine}; median of {report.repeats} interleaved repeats; "
             f"latency at batch {small_batch(report)}, throughput at batch {max(report.batches)}; "
             f"measured {report.measured.replace('T', ' ')[:19]}"]
    extra = []
    if report.accuracy_on:
        extra.append(f"accuracy on {report.accuracy_on}")
    if report.compact_bytes is not None:
        extra.append(f"compact export (the accounted size) {report.compact_bytes / 1024:.1f} KiB")
    if extra:
        lines.append("; ".join(extra))
    return "\n".join(lines)


def notes(report: DeployReport) -> str:
    """The report's notes (memory method, skipped forms), for a tooltip."""
    return "\n".join([report.memory_note] * bool(report.memory_note) + list(report.notes)
                     + [f"{f.name}: {f.note}" for f in report.forms if f.note])
