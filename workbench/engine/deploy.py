"""Deployment measurement of a finished run: what its compressed model costs where it runs.

`deploy(run)` executes the run's model in each form it can take (deploy_forms.py: reference, dense, the
method's own PyTorch form, CSR, onnxruntime and its int8 quantization; on CUDA too where asked), each
loaded from its own file, and measures in one process, interleaved (every repeat runs every form once, in
a rotating order, so that a slow spell of the machine hits all forms alike):
    latency      median ms per call at each batch size; throughput = batch / median time
    speedup      against the reference on the same device, from the same medians (deploy_report)
    file_bytes   the size of the file the form runs from
    memory       resident and peak memory, measured in a fresh process (deploy_memory.py); on CUDA the
                 memory torch allocates
    accuracy     on a fixed subset of the run's test set, with agreement and logit difference to dense
The csr form holds as CSR only the layers that were faster so, timed first at these batch sizes and
threads (deploy_csr.plan; each layer's choice and ratios in the form's `layers`); where none is, the csr
form is reported with that note and not measured (no file, no times).
The caller chooses the threads (torch's intra-op threads and onnxruntime's alike: every session is made
with the same count); torch's process-wide count is restored afterwards, on an error or a cancel too.
Progress goes to a callback (done, total, text); a CancelToken ends the measurement by raising
core.events.Cancelled, with nothing stored. `store_report` / `read_report` keep it in the run file.
"""

from __future__ import annotations

import math
import platform
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

import torch

from workbench.core.errors import WorkbenchError
from workbench.core.events import CancelToken
from workbench.core.store import now_iso, read_run
from workbench.engine import deploy_csr, deploy_memory
from workbench.engine.deploy_forms import Form, RunForms, onnxruntime_available
from workbench.engine.deploy_reference import find_reference
from workbench.engine.deploy_report import (
    CHANGED_POINTS,
    DeployReport,
    FormResult,
    add_speedups,
    deploy_summary,
    format_table,
    read_report,
    store_report,
)
from workbench.engine.runner import load_data

__all__ = ["deploy", "DeployReport", "FormResult", "format_table", "store_report", "read_report", "deploy_summary"]

DEVICES = ("cpu", "cuda", "all")
MIN_SAMPLE_S = 0.005       # one timing sample repeats a call until it lasts this long (timer resolution)
MAX_CALLS = 200
EVAL_CHUNK = 256
ESSENTIAL = ("reference", "dense")   # without these nothing can be compared: their failure is the run's

Progress = Callable[[int, int, str], None]


def deploy(run_path: str | Path, *, batches: Iterable[int] = (1, 32, 256), threads: int | None = None,
           forms: Iterable[str] | None = None, device: str = "cpu", repeats: int = 15,
           eval_samples: int = 2000, memory: bool = True, trust_code: bool = False,
           progress: Progress | None = None, cancel: CancelToken | None = None) -> DeployReport:
    """Measure the run's model in each form (`forms`: names from deploy_forms, default all it can take;
    reference and dense are always measured); device "cpu", "cuda" or "all" (CPU and, where present,
    CUDA). Raises WorkbenchError (one line) on bad input, core.events.Cancelled when cancelled."""
    batches = _batches(batches)
    if device not in DEVICES:
        raise WorkbenchError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise WorkbenchError("no CUDA device here: measure on cpu")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise WorkbenchError(f"threads must be a positive whole number, got {threads!r}")
    if repeats < 1 or eval_samples < 1:
        raise WorkbenchError("repeats and eval_samples must be at least 1")
    devices = ["cpu"] * (device != "cuda") + ["cuda"] * (device != "cpu" and torch.cuda.is_available())
    cancel = cancel or CancelToken()
    progress = progress or (lambda done, total, text: None)
    root = read_run(run_path)               # a foreign or damaged file: one line here
    previous = torch.get_num_threads()
    threads = threads or previous
    torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory(prefix="workbench-deploy-") as folder:
            return _measure(run_path, root.attrs, Path(folder), batches, threads, forms, devices, repeats,
                            eval_samples, memory, trust_code, progress, cancel)
    finally:
        torch.set_num_threads(previous)


def _batches(batches: Iterable[int]) -> list[int]:
    try:
        out = sorted({int(b) for b in batches})
    except (TypeError, ValueError):
        raise WorkbenchError(f"batch sizes must be whole numbers, got {batches!r}") from None
    if not out or out[0] < 1:
        raise WorkbenchError(f"batch sizes must be at least 1, got {list(batches)}")
    return out


def _select(candidates: list[str], requested: Iterable[str] | None) -> list[str]:
    if requested is None:
        return candidates
    requested = [str(r) for r in requested]
    unknown = [r for r in requested if r not in candidates]
    if unknown:
        raise WorkbenchError(f"this run cannot be deployed as {', '.join(unknown)}; its forms are "
                             f"{', '.join(candidates)}")
    return [c for c in candidates if c in {"reference", "dense", *requested}]


class _Steps:
    """Progress: a count of done steps out of a total known up front."""

    def __init__(self, total: int, progress: Progress, cancel: CancelToken):
        self.done, self.total, self.progress, self.cancel = 0, total, progress, cancel

    def __call__(self, text: str) -> None:
        self.cancel.check()
        self.done += 1
        self.progress(self.done, self.total, text)


def _measure(run_path, root_attrs, folder, batches, threads, requested, devices, repeats, eval_samples,
             memory, trust_code, progress, cancel) -> DeployReport:
    run = RunForms(run_path, folder, trust_code=trust_code)
    notes: list[str] = []
    try:
        dataset = load_data(run.config)
    except WorkbenchError as exc:
        dataset = None
        notes.append(f"accuracy not measured: {exc}")
    run.reference, reference_source = find_reference(run.config, root_attrs, dataset, trust_code)
    names = _select(run.candidates(), requested)
    if onnxruntime_available():
        notes.append(f"onnxruntime forms left out: {onnxruntime_available()}")
    loaded = [(n, d) for d in devices for n in names if not (d == "cuda" and n.startswith("onnxruntime")
                                                              and not _ort_cuda())]
    planned = deploy_csr.csr_candidates(run.model) if "csr" in names else {}
    steps = _Steps(len(planned) + len(names) + 2 * len(loaded) + len(batches) * repeats + 2, progress, cancel)
    inputs = _inputs(dataset, run.attrs["input_shape"], batches)
    skipped = None
    if planned:
        # which layers go CSR: timed here, at this measurement's batch sizes and threads (deploy_csr.py)
        run.csr_plan = deploy_csr.plan(run.model, inputs[batches[0]], batches, cancel=cancel, progress=steps)
        steps.total -= len(planned) - len(run.csr_plan)        # layers the forward never reaches: not timed
        if not run.csr_layers():
            cut = [x for x in loaded if x[0] == "csr"]
            names.remove("csr")
            loaded = [x for x in loaded if x[0] != "csr"]
            steps.total -= 1 + 2 * len(cut)
            skipped = FormResult("csr", "pytorch", "cpu", run.describe("csr"), layers=run.csr_plan,
                                 note="not measured: no layer is faster as CSR (each layer's ratio below)")
    sizes, failed = {}, []
    for name in list(names):
        try:
            sizes[name] = run.write(name)
        except Exception as exc:  # noqa: BLE001 - one form a converter refuses must not sink the others
            if name in ESSENTIAL:           # nothing to compare with: the measurement fails, in one line
                raise WorkbenchError(f"the {name} form could not be written {_reason(exc)}") from None
            failed.append(_not_measured(run, name, "could not be written", exc))
            names.remove(name)
            cut = [x for x in loaded if x[0] == name]
            loaded = [x for x in loaded if x[0] != name]
            steps.total -= 2 * len(cut)
        steps(f"wrote the {name} form ({sizes[name] / 1024:.1f} KiB)" if name in sizes
              else f"{name}: could not be written")
    results, callables = [], []
    for name, dev in list(loaded):
        try:
            form = run.load(name, dev, threads)
        except Exception as exc:  # noqa: BLE001 - as above: the form is reported, not measured
            if name in ESSENTIAL:
                raise WorkbenchError(f"the {name} form could not be loaded {_reason(exc)}") from None
            failed.append(_not_measured(run, name, "could not be loaded", exc))
            steps(f"{name}: could not be loaded")
            continue
        result = FormResult(form.name, form.runtime, form.device, form.description, file_bytes=sizes[name],
                            layers=(run.csr_plan or {}) if name == "csr" else {})
        if dev == "cuda":
            result.memory = _cuda_memory(run, name, max(batches), threads)
        results.append(result)
        callables.append(form)
        steps(f"loaded {form.name}")
    model = root_attrs.get("model") or run.attrs.get("model_spec") or ""      # a user's model: its file
    report = DeployReport(str(run_path), str(root_attrs.get("method", "")), str(model),
                          str(root_attrs.get("dataset", "")), threads, batches, repeats, measured=now_iso(),
                          platform=_platform(), reference_source=reference_source, notes=notes, forms=results)
    if run.reference is None:
        recorded = root_attrs.get("reference_accuracy")
        known = isinstance(recorded, (int, float)) and math.isfinite(recorded)
        for result in results:
            if result.name.startswith("reference"):
                result.note = (f"{reference_source}: timed on the freshly initialised architecture"
                               + (f"; the run recorded its accuracy as {recorded:.2%}" if known else ""))
    if dataset is not None:
        _accuracies(report, callables, dataset, eval_samples, steps, skip_reference=run.reference is None)
    else:
        for _ in callables:
            steps("accuracy skipped")
    _time(results, callables, inputs, repeats, steps)
    del callables
    cpu = [r.name for r in results if r.device == "cpu"]
    if memory and cpu:
        figures, report.memory_note = deploy_memory.measure(run_path, folder, cpu, max(batches), threads,
                                                            trust_code)
        for r in results:
            if figures and r.name in figures:
                r.memory = figures[r.name]
    steps("measured memory")
    if skipped is not None:             # in the candidates' order, after the forms before it
        order = run.candidates()
        at = next((i for i, r in enumerate(results) if r.device == "cpu" and r.name in order
                   and order.index(r.name) > order.index("csr")), len(results))
        results.insert(at, skipped)
    results.extend(failed)              # reported with the reason, not measured
    add_speedups(report)
    report.compact_bytes = _compact_bytes(run_path, folder, trust_code, notes)
    steps("wrote the compact export")
    return report


def _not_measured(run: RunForms, name: str, what: str, exc: Exception) -> FormResult:
    """A form a converter or runtime refused (e.g. onnxruntime's quantizer on a convolution whose weight
    the export computes): kept in the report with the reason, so the other forms are still measured."""
    runtime = "onnxruntime" if name.startswith("onnxruntime") else "pytorch"
    return FormResult(name, runtime, "cpu", run.describe(name), note=f"not measured: {what} {_reason(exc)}")


def _reason(exc: Exception) -> str:
    return f"({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]})"


def _ort_cuda() -> bool:
    try:
        import onnxruntime

        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    except ImportError:
        return False


def _platform() -> dict:
    try:
        import onnxruntime
        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = ""
    return {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "system": platform.system(), "torch": torch.__version__, "onnxruntime": ort_version,
            "cpus": _cpu_count(), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""}


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _accuracies(report: DeployReport, forms: list[Form], dataset, eval_samples: int, steps,
                skip_reference: bool) -> None:
    """Each form's accuracy on a fixed subset of the test set, and how its outputs differ from dense's."""
    n_test = len(dataset.test_x)
    n = min(eval_samples, n_test)
    pick = torch.randperm(n_test, generator=torch.Generator().manual_seed(0))[:n]
    x, y = dataset.test_x[pick].float(), dataset.test_y[pick]
    report.accuracy_on = (f"all {n_test} test samples of {dataset.name}" if n == n_test else
                          f"{n} of the {n_test} test samples of {dataset.name} (a fixed random subset, seed 0)")
    logits = {}
    for form, result in zip(forms, report.forms):
        with torch.inference_mode():
            out = _logits(form, x) if not (skip_reference and form.name.startswith("reference")) else None
        if out is None:
            steps(f"accuracy of {form.name} skipped")
            continue
        logits[form.name] = out
        result.accuracy = float((out.argmax(1) == y).float().mean())
        steps(f"accuracy of {form.name}: {result.accuracy:.2%}")
    dense_name = next(n for n in ("dense", "dense@cuda") if n in logits)
    dense = logits[dense_name]
    report.dense_accuracy = report.form(dense_name).accuracy
    for result in report.forms:
        if result.name in logits:
            out = logits[result.name]
            result.agreement = float((out.argmax(1) == dense.argmax(1)).float().mean())
            result.max_abs_diff = float((out - dense).abs().max())
            result.accuracy_changed = abs(result.accuracy - report.dense_accuracy) * 100 > CHANGED_POINTS
            if result.accuracy_changed and not result.name.startswith("reference"):
                change = (result.accuracy - report.dense_accuracy) * 100
                result.note = (result.note + "; " if result.note else "") + \
                    f"changes accuracy: {change:+.2f} points against dense"


def _logits(form: Form, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([form(x[i:i + EVAL_CHUNK].to(form.device)).float().cpu() for i in range(0, len(x), EVAL_CHUNK)])


def _inputs(dataset, shape, batches: list[int]) -> dict[int, torch.Tensor]:
    """Timing inputs: test images (repeated where the batch is larger than the test set), or noise."""
    if dataset is not None:
        pool = dataset.test_x.float()
        return {b: pool[torch.arange(b) % len(pool)].contiguous() for b in batches}
    gen = torch.Generator().manual_seed(0)
    return {b: torch.randn((b, *[int(s) for s in shape]), generator=gen) for b in batches}


def _sample(form: Form, x: torch.Tensor, calls: int) -> float:
    """Milliseconds per call, over `calls` back-to-back calls."""
    cuda = form.device == "cuda"
    if cuda:
        torch.cuda.synchronize()
    with torch.inference_mode():
        start = time.perf_counter()
        for _ in range(calls):
            form(x)
        if cuda:
            torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1000 / calls


def _time(results: list[FormResult], forms: list[Form], inputs: dict[int, torch.Tensor], repeats: int,
          steps) -> None:
    """Interleaved: per batch size, every repeat times every form once, starting one form later each
    repeat; each form is warmed up and given a call count that makes one sample last MIN_SAMPLE_S."""
    for b, x in inputs.items():
        on = {d: x.to(d) for d in {f.device for f in forms}}
        calls = []
        for form in forms:
            _sample(form, on[form.device], 1)                     # warm-up (caches, lazy init)
            once = _sample(form, on[form.device], 1) / 1000
            calls.append(max(1, min(MAX_CALLS, math.ceil(MIN_SAMPLE_S / max(once, 1e-9)))))
        for r in range(repeats):
            for i in [(r + k) % len(forms) for k in range(len(forms))]:
                ms = _sample(forms[i], on[forms[i].device], calls[i])
                results[i].samples_ms.setdefault(b, []).append(round(ms, 6))    # 1 ns: as the JSON keeps it
            steps(f"batch {b}: repeat {r + 1} of {repeats}")


def _cuda_memory(run: RunForms, name: str, batch: int, threads: int) -> dict:
    """CUDA memory torch allocates for the form: loading it (resident) and at most while running it."""
    if name.startswith("onnxruntime"):
        return {"note": "onnxruntime's CUDA memory is not visible to torch"}
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    form = run.load(name, "cuda", threads)
    resident = torch.cuda.memory_allocated() - base
    torch.cuda.reset_peak_memory_stats()
    x = torch.randn((batch, *[int(s) for s in run.attrs["input_shape"]]), device="cuda")
    with torch.inference_mode():
        form(x)
        form(x)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base - x.numel() * x.element_size()
    return {"resident_mb": resident / 2**20, "peak_mb": peak / 2**20}


def _compact_bytes(run_path, folder: Path, trust_code: bool, notes: list[str]) -> int | None:
    from workbench.engine.export import export_run

    try:
        return export_run(run_path, "compact", folder / "run.cwb", trust_code=trust_code).size_bytes
    except WorkbenchError as exc:
        notes.append(f"compact export not written: {exc}")
        return None
