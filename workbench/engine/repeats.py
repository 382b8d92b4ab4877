"""Repeats: one run config run N times over consecutive seeds, and the spread of their results.

Each repeat is an ordinary run with its own file, named after the first repeat's start time and its seed
(`...-s0`, `...-s1`), so a set's files sort together. By default every repeat starts from the same
reference: the one a plain run with the first seed would use. A zoo model's cached reference is keyed by
the seed (engine.reference.reference_path), so it is made (or found) once and handed to every repeat as
its checkpoint; the run files say so (config.checkpoint). With `own_references`, each repeat runs as a
plain run with its seed and so starts from its own reference, trained with that seed and cached.

A failed repeat does not stop the others; a cancelled one (Ctrl-C, SIGTERM) stops the rest. The summary
counts only completed repeats (mean and sample standard deviation, n-1) and says how many did not.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from workbench.core.config import RunConfig
from workbench.core.errors import WorkbenchError
from workbench.core.events import Cancelled, CancelToken, Finished, Message
from workbench.engine.console import SIGNALS, run_with_events

# (summary key, label, scale, unit): what a set of repeats (and a group in `compare`) reports
METRICS = (
    ("test_accuracy", "test accuracy", 100.0, "%"),
    ("test_error", "test error", 100.0, "%"),
    ("reference_accuracy", "reference accuracy", 100.0, "%"),
    ("param_ratio", "params x (dense/stored parameters)", 1.0, "x"),
    ("storage_ratio", "bits x (dense fp32 bits/stored bits)", 1.0, "x"),
    ("wall_seconds", "wall", 1.0, "s"),
)


def spread(values) -> dict:
    """Mean, sample standard deviation (n-1; None for fewer than two) and n of the finite values."""
    xs = np.asarray([v for v in values if isinstance(v, (int, float)) and math.isfinite(v)], float)
    n = len(xs)
    return {"mean": float(xs.mean()) if n else None, "std": float(xs.std(ddof=1)) if n > 1 else None, "n": n}


def plus_minus(stats: dict, scale: float = 1.0, digits: int = 2) -> str:
    """`mean ± std` as text ('-' without a value; the mean alone for a single value)."""
    if stats.get("mean") is None:
        return "-"
    text = f"{scale * stats['mean']:.{digits}f}"
    return text + (f" ± {scale * stats['std']:.{digits}f}" if stats.get("std") is not None else "")


@dataclass
class Repeat:
    """How one repeat ended: its run file ('' when none was made), status, error and stored summary."""

    index: int
    seed: int
    run: str
    status: str
    error: str = ""
    summary: dict = field(default_factory=dict)
    worker: str = ""                  # on Ray: host:pid and node of the worker that ran it

    def as_dict(self) -> dict:
        s = self.summary
        return {"repeat": self.index, "seed": self.seed, "run": self.run, "status": self.status,
                "error": self.error, **{key: s.get(key) for key, *_ in METRICS},
                **({"worker": self.worker} if self.worker else {})}


def base_name(config: RunConfig, stamp: str | None = None) -> str:
    """The name every repeat's file starts with: the run's --name, or the time the set started and what
    it runs (as runner.run_path_for names a single run, less the seed)."""
    if config.name:
        return config.name
    what = Path(config.model).stem if config.model else Path(config.checkpoint or "model").stem
    return f"{stamp or time.strftime('%Y%m%d-%H%M%S')}-{what}-{config.method_label}"


def repeat_configs(config: RunConfig, n: int, checkpoint: str | None = None, name: str | None = None
                   ) -> list[RunConfig]:
    """`config` n times with seeds seed, seed+1, ...; named NAME-s<seed>; with `checkpoint`, every repeat
    starts from that file (the shared reference)."""
    if n < 1:
        raise WorkbenchError(f"--repeats must be at least 1, got {n}")
    name = name or base_name(config)
    out = []
    for i in range(n):
        c = copy.deepcopy(config)
        c.seed = config.seed + i
        c.name = f"{name}-s{c.seed}"
        if checkpoint:
            c.checkpoint = checkpoint
        out.append(c)
    return out


def shares_reference(config: RunConfig) -> bool:
    """Whether the repeats need a reference made for them to share: a zoo model without a checkpoint
    (a checkpoint or a model file's own weights are the same for every seed anyway)."""
    from workbench.models.architecture import is_model_file

    return bool(config.model) and not config.checkpoint and not is_model_file(config.model)


def shared_reference(config: RunConfig, printer: Callable) -> str:
    """The cached reference a plain run of `config` (with its seed) starts from, pretrained now if the
    cache lacks it (the same weights: the same seed set first, as the run loop does); returns its path.
    Ctrl-C / SIGTERM while pretraining raise Cancelled."""
    import torch

    from workbench.core.devices import pick_device
    from workbench.engine.reference import recipe, reference_path, resolve_model
    from workbench.engine.runner import load_data

    dataset = load_data(config)
    device = pick_device(config.device)
    own = SIGNALS.install()
    token = SIGNALS.token = CancelToken()
    try:
        torch.manual_seed(config.seed)
        gen = resolve_model(config, dataset, device, token)
        while True:
            try:
                printer(next(gen))
            except StopIteration:
                break
    finally:
        SIGNALS.token = None
        if own:
            SIGNALS.restore()
    path = reference_path(config.model, dataset, recipe(config.model, epochs=config.pretrain_epochs or None),
                          config.seed)
    if not path.exists():        # resolve_model said why (a message): the repeats cannot share it
        raise WorkbenchError(f"the reference of {config.model} could not be cached at {path}, so the repeats "
                             "cannot share it; free room there or use --repeat-references")
    return str(path)


def check_repeats(config: RunConfig, n: int, own_references: bool) -> None:
    """Bad input for the whole set, in one line, before anything runs."""
    if n < 1:
        raise WorkbenchError(f"--repeats must be at least 1, got {n}")
    if own_references and config.checkpoint:
        raise WorkbenchError("--repeat-references pretrains a reference per seed: not with --checkpoint "
                             "(the checkpoint is every repeat's reference)")


def reference_for_repeats(config: RunConfig, own_references: bool, printer: Callable) -> str | None:
    """The reference every repeat starts from (made now if need be), or None where each repeat has its own
    (own_references, a checkpoint, a model file). Cancelled while pretraining: raised."""
    if not own_references and shares_reference(config):
        return shared_reference(config, printer)
    if not own_references and not config.checkpoint:       # a model file: no cached reference to share
        printer(Message(f"note: {config.model} without --checkpoint: a model file without weights of its own "
                        "is pretrained per seed, so the repeats would not share a reference (give "
                        "--checkpoint to share one)"))
    return None


def cancelled_before(config: RunConfig, n: int) -> list[Repeat]:
    return [Repeat(i, config.seed + i, "", "cancelled", "cancelled before the runs started") for i in range(n)]


def run_repeats(config: RunConfig, n: int, own_references: bool, printer: Callable,
                done: Callable[[Repeat, int], None] = lambda repeat, total: None) -> list[Repeat]:
    """Run the repeats one after another (`printer` gets every event, `done` each repeat as it ends).
    A failed repeat leaves the others to run; a cancelled one (a signal) ends the set there. A repeat
    refused before its run file exists is bad input for every seed when it is the first: raised."""
    check_repeats(config, n, own_references)
    try:
        checkpoint = reference_for_repeats(config, own_references, printer)
    except Cancelled:
        return cancelled_before(config, n)
    results = []
    for i, c in enumerate(repeat_configs(config, n, checkpoint)):
        try:
            fin: Finished = run_with_events(c, printer)
            result = Repeat(i, c.seed, fin.run_path, fin.status, fin.error, dict(fin.summary))
        except WorkbenchError as exc:
            if i == 0:
                raise
            result = Repeat(i, c.seed, "", "failed", str(exc))
        results.append(result)
        done(result, n)
        if result.status == "cancelled":
            break
    return results


def summarize(repeats: list[Repeat], n: int) -> dict:
    """Per metric the mean, sample std and n over the completed repeats; how many ended otherwise."""
    completed = [r for r in repeats if r.status == "completed"]
    return {"repeats": n, "seeds": [r.seed for r in repeats], "completed": len(completed),
            "failed": sum(r.status == "failed" for r in repeats),
            "cancelled": sum(r.status == "cancelled" for r in repeats), "not_run": n - len(repeats),
            "metrics": {key: spread(r.summary.get(key) for r in completed) for key, *_ in METRICS}}


def format_repeat(r: Repeat, total: int) -> str:
    """One line as a repeat ends."""
    head = f"repeat {r.index + 1}/{total} (seed {r.seed})"
    if r.status != "completed":
        return f"{head}: {r.status}" + (f": {r.error}" if r.error else "") + (f" ({r.run})" if r.run else "")
    s = r.summary
    return (f"{head}: {r.run}: test accuracy {100 * s['test_accuracy']:.2f}% (reference "
            f"{100 * s['reference_accuracy']:.2f}%), {s['param_ratio']:.1f}x parameters, "
            f"{s['storage_ratio']:.1f}x storage bits, {s['wall_seconds']:.1f} s"
            + (f" (worker {r.worker})" if r.worker else ""))


def format_summary(summary: dict) -> str:
    """The summary as a small table: mean ± std and n per metric, and what did not complete."""
    seeds = summary["seeds"]
    span = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}" if seeds else "no seed"
    others = [f"{summary[k]} {k.replace('_', ' ')}" for k in ("failed", "cancelled", "not_run") if summary[k]]
    lines = [f"{summary['completed']} of {summary['repeats']} repeats completed ({span})"
             + (f"; {', '.join(others)}" if others else "") + (": the summary counts only completed ones"
                                                              if others else "")]
    for key, label, scale, unit in METRICS:
        stats = summary["metrics"][key]
        digits = 1 if unit == "x" else 2
        lines.append(f"  {label:<38}{plus_minus(stats, scale, digits):>18} {unit:<2} n={stats['n']}")
    lines.append("  mean ± sample standard deviation (n-1)")
    return "\n".join(lines)
