"""A deployment measurement as the app queues it: what to measure (DeployJob), how it ended (DeployOutcome),
and `measure`, which the run queue's worker thread calls (never the GUI thread).

Qt-free on purpose: the worker thread runs it, and the tests call it as the worker does. The measurement
goes through the run queue, after the current run and before any run queued later, because a run beside
it would disturb its timings and `deploy` sets torch's process-wide thread count.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from typing import Callable

from workbench.core.errors import WorkbenchError
from workbench.core.events import Cancelled, CancelToken
from workbench.engine.deploy import deploy
from workbench.engine.deploy_report import DeployReport, store_report

DEFAULT_BATCHES = (1, 32, 256)
DEFAULT_REPEATS = 15
MAX_BATCH = 65536           # a larger batch is a typo (and would allocate gigabytes of input)


def machine_cores() -> int:
    """The cores this process may use (the default thread count: what a deployment would get)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def parse_batches(text: str) -> tuple[int, ...]:
    """"1, 32,256" -> (1, 32, 256); one plain line for anything else."""
    parts = [p.strip() for p in (text or "").replace(";", ",").split(",") if p.strip()]
    if not parts:
        return DEFAULT_BATCHES
    try:
        batches = sorted({int(p) for p in parts})
    except ValueError:
        raise WorkbenchError(f"batch sizes are whole numbers separated by commas (e.g. 1,32,256), not "
                             f"{text.strip()!r}") from None
    if batches[0] < 1 or batches[-1] > MAX_BATCH:
        raise WorkbenchError(f"batch sizes go from 1 to {MAX_BATCH}, got {', '.join(map(str, batches))}")
    return tuple(batches)


def parse_forms(text: str) -> tuple[str, ...] | None:
    """"csr, onnxruntime" -> ("csr", "onnxruntime"); empty or "all" -> None (every form the run can take).
    Names the run cannot take are refused by `deploy` with the list of those it can."""
    names = [p.strip() for p in (text or "").split(",") if p.strip()]
    return None if not names or names == ["all"] else tuple(names)


@dataclass(frozen=True)
class DeployOptions:
    batches: tuple[int, ...] = DEFAULT_BATCHES
    threads: int = field(default_factory=machine_cores)
    forms: tuple[str, ...] | None = None      # None: every form the run can take
    device: str = "cpu"
    repeats: int = DEFAULT_REPEATS
    eval_samples: int = 2000
    memory: bool = True                       # peak memory per form, each in a fresh process


@dataclass(frozen=True)
class DeployJob:
    run_path: str
    label: str                                # the run's name in the app (run_trace.run_label)
    options: DeployOptions = field(default_factory=DeployOptions)
    trust_code: bool = False

    def describe(self) -> str:
        return f"deployment of {self.label}"


@dataclass
class DeployOutcome:
    job: DeployJob
    status: str                               # completed | cancelled | failed
    report: DeployReport | None = None
    error: str = ""                           # why it failed, or why a completed report was not stored
    stored: bool = False


Progress = Callable[[int, int, str], None]


def measure(job: DeployJob, cancel: CancelToken, progress: Progress | None = None) -> DeployOutcome:
    """Measure the run and store the report in its file. Never raises: a cancel stores nothing, bad input
    or a failure is one line, and a report that cannot be stored (a run still being written) is kept in
    the outcome with the line saying why."""
    o = job.options
    try:
        report = deploy(job.run_path, batches=o.batches, threads=o.threads, forms=o.forms, device=o.device,
                        repeats=o.repeats, eval_samples=o.eval_samples, memory=o.memory,
                        trust_code=job.trust_code, progress=progress, cancel=cancel)
    except Cancelled:
        return DeployOutcome(job, "cancelled")
    except WorkbenchError as exc:
        return DeployOutcome(job, "failed", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - the app stays up; the line says what broke
        traceback.print_exc()
        return DeployOutcome(job, "failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0])
    if cancel.cancelled:       # cancelled after the last step: still nothing stored
        return DeployOutcome(job, "cancelled")
    try:
        store_report(job.run_path, report)
    except WorkbenchError as exc:
        return DeployOutcome(job, "completed", report, f"not stored: {exc}")
    return DeployOutcome(job, "completed", report, stored=True)
