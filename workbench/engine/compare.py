"""Side-by-side comparison of run files (the CLI's `compare`, later the GUI's table).

With a stored deployment report (`workbench deploy`), a row also has the latency at batch 1 of the
fastest CPU form that computes the run's model, its speed-up against the reference measured in the same
process, the form and the threads (deploy_report.deploy_summary); None where the run has no report.
"""

from __future__ import annotations

import math
from pathlib import Path

from workbench.core.errors import WorkbenchError
from workbench.core.store import read_run
from workbench.engine.deploy_report import deploy_summary, read_report


def compare_rows(paths: list[str]) -> list[dict]:
    rows = []
    for path in paths:
        run = read_run(path)
        s, a = run.summary, run.attrs
        acc = s.get("test_accuracy", float("nan"))
        rows.append({
            "run": str(path), "name": Path(path).stem, "status": run.status, "method": a.get("method", ""),
            "model": a.get("model", ""), "dataset": a.get("dataset", ""), "device": a.get("device", ""),
            "seed": a.get("seed"), "reference_accuracy": s.get("reference_accuracy", float("nan")),
            "test_accuracy": acc, "test_error": 1 - acc if isinstance(acc, float) else float("nan"),
            "param_ratio": s.get("param_ratio", float("nan")),
            "storage_ratio": s.get("storage_ratio", float("nan")), "bits": s.get("bits", float("nan")),
            "wall_seconds": s.get("wall_seconds", float("nan")), "error": a.get("error", ""),
            "warnings": a.get("warnings", ""), **_deployed(path),
        })
    return rows


def _deployed(path) -> dict:
    """The row's deployment figures: deploy_summary of the stored report, None each without one; an
    unreadable report is one of the row's warnings, not the end of the comparison."""
    row = {"deploy_form": None, "deploy_batch": None, "latency_ms": None, "speedup": None, "deploy_threads": None}
    try:
        summary = deploy_summary(read_report(path))
    except WorkbenchError as exc:
        return {**row, "deploy_warning": str(exc)}
    if summary:
        row.update(deploy_form=summary["form"], deploy_batch=summary["batch"], latency_ms=summary["latency_ms"],
                   speedup=summary["speedup"], deploy_threads=summary["threads"])
    return row


def _f(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, fmt)


def _form(r: dict) -> str:
    if not r.get("deploy_form"):
        return ""
    batch = f", b{r['deploy_batch']}" if r.get("deploy_batch") not in (None, 1) else ""
    return f"{r['deploy_form']} ({r['deploy_threads']} thr{batch})"


def format_table(rows: list[dict]) -> str:
    """The runs side by side; the deployment columns only where a row has a deployment report (the
    table of runs never measured stays as narrow as it was)."""
    deployed = any(r.get("latency_ms") is not None for r in rows)
    head = (f"{'run':<34}{'method':<12}{'model':<10}{'status':<10}{'ref acc':>8}{'acc':>8}{'err%':>7}"
            f"{'params x':>10}{'bits x':>8}{'KiB':>9}{'wall s':>8}")
    head += f"{'b1 ms':>9}{'x ref':>7}  {'fastest form':<16}" if deployed else ""
    lines = [head.rstrip(), "-" * len(head.rstrip())]
    for r in rows:
        kib = r["bits"] / 8192 if isinstance(r["bits"], (int, float)) else float("nan")
        line = (f"{r['name'][:33]:<34}{r['method'][:11]:<12}{r['model'][:9]:<10}{r['status']:<10}"
                f"{_f(100 * r['reference_accuracy'], '.2f'):>8}{_f(100 * r['test_accuracy'], '.2f'):>8}"
                f"{_f(100 * r['test_error'], '.2f'):>7}{_f(r['param_ratio'], '.1f'):>10}"
                f"{_f(r['storage_ratio'], '.1f'):>8}{_f(kib, '.1f'):>9}{_f(r['wall_seconds'], '.0f'):>8}")
        if deployed:
            line += f"{_f(r.get('latency_ms'), '.3f'):>9}{_f(r.get('speedup'), '.2f'):>7}  {_form(r)}"
        lines.append(line.rstrip())
    lines.append("params x = dense/stored parameters (Han 2015, DNS); bits x = dense fp32 bits/stored bits "
                 "(Deep Compression)")
    if deployed:
        lines.append("b1 ms, x ref: latency at batch 1 of the fastest CPU form (workbench deploy) and its "
                     "speed-up against the reference measured with it")
    lines += [f"{r['name']}: {w}" for r in rows for w in r["warnings"].splitlines()]
    lines += [f"{r['name']}: {r['deploy_warning']}" for r in rows if r.get("deploy_warning")]
    return "\n".join(lines)
