"""Peak memory of each deployment form on the CPU, measured in a fresh process.

What is measured, per form, in one child process (`python -m workbench.engine.deploy_memory SPEC`):
    resident_mb  resident memory (RSS) the process gained by loading the form from its file (weights,
                 sparse indices, an onnxruntime session), after garbage collection;
    peak_mb      the process's peak RSS while running it twice at the given batch, above the same
                 starting point: weights + activations + the runtime's workspace.
Linux only: the peak is VmHWM from /proc/self/status, reset (clear_refs 5) after each load, so each form
is measured on its own although they share one process. Large blocks (>= 64 KiB) are made to come from
and go back to the system (mallopt), so what one form freed does not hide the next one's allocations in
the heap. This runs in a child so that neither the allocator setting nor the allocations disturb the
timing in the measuring process, and so that imports and earlier forms do not count.
"""

from __future__ import annotations

import ctypes
import gc
import json
import subprocess
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_FROM = 64 * 1024


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def probe(spec: dict) -> dict:
    """In the child: {form: {"resident_mb", "peak_mb"}} for spec's forms."""
    libc = ctypes.CDLL(None)
    libc.mallopt(M_MMAP_THRESHOLD, MMAP_FROM)
    libc.mallopt(M_TRIM_THRESHOLD, MMAP_FROM)
    import torch

    from workbench.engine.deploy_forms import RunForms

    torch.set_num_threads(spec["threads"])
    if any(n.startswith("onnxruntime") for n in spec["forms"]):
        import onnxruntime  # noqa: F401 - imported before the first measurement, not counted in it
    forms = RunForms(spec["run"], spec["folder"], trust_code=spec["trust_code"])
    x = torch.randn(spec["batch"], *forms.attrs["input_shape"])
    # torch's thread pool, kernels and their first-use buffers set up once, at the measured batch; the
    # run's rebuilt model stays resident throughout, so it is part of every form's starting point
    with torch.inference_mode():
        warm = forms.load("dense")
        warm(x)
        warm(x)
        del warm
    out = {}
    for name in spec["forms"]:
        gc.collect()
        base = _status("VmRSS")
        form = forms.load(name, "cpu", spec["threads"])
        gc.collect()
        resident = _status("VmRSS") - base
        _reset_peak()
        with torch.inference_mode():
            form(x)
            form(x)
        peak = _status("VmHWM") - base
        out[name] = {"resident_mb": resident / 2**20, "peak_mb": peak / 2**20}
        del form
    return out


def measure(run_path, folder, forms: list[str], batch: int, threads: int, trust_code: bool,
            timeout: float = 900) -> tuple[dict | None, str]:
    """In the measuring process: (per-form figures or None, a note on what was measured or why not)."""
    if not sys.platform.startswith("linux"):
        return None, "peak memory not measured: it reads Linux's /proc (VmRSS, VmHWM)"
    spec = {"run": str(run_path), "folder": str(folder), "forms": forms, "batch": batch, "threads": threads,
            "trust_code": trust_code}
    try:
        done = subprocess.run([sys.executable, "-m", "workbench.engine.deploy_memory", json.dumps(spec)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"peak memory not measured: the probe took over {timeout:.0f} s"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit status {done.returncode}"]
        return None, f"peak memory not measured: {lines[-1]}"
    return json.loads(done.stdout.strip().splitlines()[-1]), (
        f"memory: RSS gained by loading each form in a fresh process (resident) and its peak RSS running "
        f"batch {batch} (peak), Linux VmRSS/VmHWM")


if __name__ == "__main__":
    try:
        print(json.dumps(probe(json.loads(sys.argv[1]))))
    except OSError as exc:          # no /proc/self/clear_refs (an old kernel, a sandbox)
        print(f"cannot read the process's memory: {exc}", file=sys.stderr)
        sys.exit(1)
