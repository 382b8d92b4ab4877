"""Side-by-side comparison of run files (the CLI's `compare`; the app's table groups with config_key too).

Completed runs that differ only in their seed (the stored config less seed, name, out_dir and data_dir:
repeats, `run --repeats N`) form a group: one line with the mean ± sample std and n of each figure.

With a stored deployment report (`workbench deploy`), a row also has the latency at batch 1 of the
fastest CPU form that computes the run's model, its speed-up against the reference measured in the same
process, the form and the threads (deploy_report.deploy_summary); None where the run has no report.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

from workbench.core.errors import WorkbenchError
from workbench.core.store import read_run
from workbench.engine.deploy_report import deploy_summary, read_report
from workbench.engine.repeats import plus_minus, spread

# What a repeat may change without being another experiment: its seed, and where its file and data are.
NOT_COMPARED = ("seed", "name", "out_dir", "data_dir")
GROUPED = ("reference_accuracy", "test_accuracy", "test_error", "param_ratio", "storage_ratio", "bits",
           "wall_seconds", "latency_ms", "speedup")       # the figures a group gives as mean ± std


def config_key(config: dict) -> str:
    """What runs must share to be repeats of one another: a digest of their config less NOT_COMPARED
    ('' for a file without a config, which groups with nothing)."""
    if not config:
        return ""
    kept = {k: v for k, v in config.items() if k not in NOT_COMPARED}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:12]


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
            "warnings": a.get("warnings", ""), "config_key": config_key(run.config), **_deployed(path),
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


def repeat_sets(items: list, key_of, seed_of) -> list[list]:
    """`items` in sets of repeats, in the order of each set's first item: items with the same non-empty
    key (config_key) and distinct seeds. An item with an empty key is a set of its own; one whose seed
    its key's set already has (a copy, or the same repeats run again) starts or joins a later set."""
    sets: list[tuple[set, list]] = []
    by_key: dict[str, list[tuple[set, list]]] = {}      # a key's sets in order: a study's hundreds of
    for item in items:                                  # distinct keys are not each compared with every set
        key, seed = key_of(item), seed_of(item)
        home = next((s for s in by_key.get(key, ()) if seed not in s[0]), None) if key else None
        if home is None:
            home = ({seed}, [item])
            sets.append(home)
            if key:
                by_key.setdefault(key, []).append(home)
        else:
            home[0].add(seed)
            home[1].append(item)
    return [members for _, members in sets]


def group_rows(rows: list[dict]) -> list[dict]:
    """The rows as groups (repeat_sets of the completed runs; any other run alone). A group has each
    GROUPED figure's mean (under its name) and sample std (NAME_std; None for one run), n, its runs and
    seeds, and a name: its first run's, less the seed the repeats' names end with."""
    out = []
    for members in repeat_sets(rows, lambda r: r.get("config_key") if r["status"] == "completed" else "",
                               lambda r: r["seed"]):
        first = members[0]
        g = {"name": _group_name(first["name"]) if len(members) > 1 else first["name"], "n": len(members),
             "runs": [m["run"] for m in members], "seeds": [m["seed"] for m in members],
             **{k: first[k] for k in ("status", "method", "model", "dataset", "device", "config_key")}}
        for key in GROUPED:
            stats = spread(m.get(key) for m in members)
            g[key] = first.get(key) if len(members) == 1 else stats["mean"]
            g[f"{key}_std"] = stats["std"]
        out.append(g)
    return out


def _group_name(name: str) -> str:
    """A repeat's file name less its seed (`...-magnitude-s2` -> `...-magnitude`; NAME-s2-2 as well)."""
    return re.sub(r"-s\d+(-\d+)?$", "", name)


def _pm(g: dict, key: str, scale: float, digits: int) -> str:
    mean = g.get(key)
    if mean is None or (isinstance(mean, float) and not math.isfinite(mean)):
        return "-"
    return plus_minus({"mean": mean, "std": g.get(f"{key}_std")}, scale, digits)


def format_groups(groups: list[dict], rows: list[dict] = ()) -> str:
    """One line per group: mean ± sample std (n-1) of each figure and n; then the warnings of `rows`."""
    deployed = any(g.get("latency_ms") is not None for g in groups)
    head = (f"{'run':<34}{'method':<12}{'model':<10}{'n':>3}  {'status':<10}{'ref acc':>15}{'acc':>15}"
            f"{'err%':>15}{'params x':>13}{'bits x':>13}{'KiB':>9}{'wall s':>13}")
    head += f"{'b1 ms':>17}{'x ref':>13}" if deployed else ""
    lines = [head.rstrip(), "-" * len(head.rstrip())]
    for g in groups:
        line = (f"{g['name'][:33]:<34}{g['method'][:11]:<12}{g['model'][:9]:<10}{g['n']:>3}  {g['status']:<10}"
                f"{_pm(g, 'reference_accuracy', 100, 2):>15}{_pm(g, 'test_accuracy', 100, 2):>15}"
                f"{_pm(g, 'test_error', 100, 2):>15}{_pm(g, 'param_ratio', 1, 1):>13}"
                f"{_pm(g, 'storage_ratio', 1, 1):>13}{_f((g.get('bits') or math.nan) / 8192, '.1f'):>9}"
                f"{_pm(g, 'wall_seconds', 1, 1):>13}")
        if deployed:
            line += f"{_pm(g, 'latency_ms', 1, 3):>17}{_pm(g, 'speedup', 1, 2):>13}"
        lines.append(line.rstrip())
    lines.append("runs that differ only in their seed in one line: mean ± sample std (n-1); --no-group "
                 "lists each run")
    lines.append("params x = dense/stored parameters (Han 2015, DNS); bits x = dense fp32 bits/stored bits "
                 "(Deep Compression)")
    lines += [f"{r['name']}: {w}" for r in rows for w in r["warnings"].splitlines()]
    lines += [f"{r['name']}: {r['deploy_warning']}" for r in rows if r.get("deploy_warning")]
    return "\n".join(lines)
