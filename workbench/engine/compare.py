"""Side-by-side comparison of run files (the CLI's `compare`, later the GUI's table)."""

from __future__ import annotations

import math
from pathlib import Path

from workbench.core.store import read_run


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
            "warnings": a.get("warnings", ""),
        })
    return rows


def _f(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, fmt)


def format_table(rows: list[dict]) -> str:
    head = (f"{'run':<34}{'method':<12}{'model':<10}{'status':<10}{'ref acc':>8}{'acc':>8}{'err%':>7}"
            f"{'params x':>10}{'bits x':>8}{'KiB':>9}{'wall s':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        kib = r["bits"] / 8192 if isinstance(r["bits"], (int, float)) else float("nan")
        lines.append(
            f"{r['name'][:33]:<34}{r['method'][:11]:<12}{r['model'][:9]:<10}{r['status']:<10}"
            f"{_f(100 * r['reference_accuracy'], '.2f'):>8}{_f(100 * r['test_accuracy'], '.2f'):>8}"
            f"{_f(100 * r['test_error'], '.2f'):>7}{_f(r['param_ratio'], '.1f'):>10}"
            f"{_f(r['storage_ratio'], '.1f'):>8}{_f(kib, '.1f'):>9}{_f(r['wall_seconds'], '.0f'):>8}")
    lines.append("params x = dense/stored parameters (Han 2015, DNS); bits x = dense fp32 bits/stored bits "
                 "(Deep Compression)")
    lines += [f"{r['name']}: {w}" for r in rows for w in r["warnings"].splitlines()]
    return "\n".join(lines)
