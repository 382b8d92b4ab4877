"""GPU check: every method for a few steps on CUDA, through the core's run loop (what the app's worker
drives) and, where PySide6 is installed, through the app's worker itself, against the same runs on the
CPU in the same process. Prints, per method: status, test accuracy and ratios on both devices, the
largest difference of the final weights, wall time and speed-up, peak CUDA memory.

    PYTHONPATH=. python tests/benchmarks/gpu_check.py [--model lenet300] [--dataset mnist|tiny]
                                                     [--train 2048] [--epochs 1] [--methods a,b]

Without a CUDA device it says so and runs the CPU side only (`--cpu-only`), so the script itself is
tested on every machine (tests/core_tests/test_gpu_check.py). Exit status 1 when a run fails or a
device's results disagree beyond tolerance (accuracy 2 points, ratios 2 %).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from workbench.core.config import RunConfig, StageConfig
from workbench.core.events import Finished
from workbench.core.store import read_model
from workbench.engine.runner import execute
from workbench.methods import method_keys

# Settings that make each method do its real work within a few steps on a small model.
SETTINGS = {
    "magnitude": {"q_fc": 1.0},
    "dns": {"c_rate": 0.0, "gamma": 0.0},
    "hashed": {"ratio": 0.125},
    "funhash": {"ratio": 0.125},
}
# A second run of a method with other settings, named "key:variant": (settings, least epochs). sws:steps runs
# soft weight-sharing's gradual snap (sws_gradual), which acts only from a stage's half and only where a
# trial snap costs over 2 points there; with narrow initial components and tau 0.05 it does on 2048 MNIST
# samples (LeNet-300-100, 4 epochs: 15.8 points at the half, 80.2 % at 24.2x parameters on the CPU,
# 2026-11-29; at tau 0.005 the trial cost only 4.0 points, too near the limit for a check).
VARIANTS = {"sws:steps": ({"snap_steps": 2, "init_sigma": 0.01, "tau": 0.05}, 4)}


def run(config: RunConfig) -> tuple[Finished, float]:
    t0 = time.perf_counter()
    finished = None
    for event in execute(config):
        if isinstance(event, Finished):
            finished = event
    return finished, time.perf_counter() - t0


def run_in_worker(config: RunConfig) -> Finished | None:
    """The same config through the app's run queue (its worker thread); None without PySide6."""
    try:
        from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer

        from workbench.gui.worker import RunQueue
    except ImportError:
        return None
    app = QCoreApplication.instance() or QCoreApplication([])
    queue, done, loop = RunQueue(), [], QEventLoop()
    queue.finished.connect(lambda fin: (done.append(fin), loop.quit()))
    queue.enqueue(config)
    QTimer.singleShot(600_000, loop.quit)
    loop.exec()
    queue.shutdown()
    del app
    return done[0] if done else None


def weights_gap(path_a: str, path_b: str) -> float:
    a, _ = read_model(path_a)
    b, _ = read_model(path_b)
    return max(float(np.max(np.abs(np.asarray(a[k], dtype=np.float64) - np.asarray(b[k], dtype=np.float64))))
               for k in a if np.asarray(a[k]).dtype.kind == "f" and np.asarray(a[k]).size)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lenet300")
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--data-dir", default="")
    ap.add_argument("--train", type=int, default=2048, help="training samples")
    ap.add_argument("--test", type=int, default=1000, help="test samples")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--methods", default=",".join(method_keys()))
    ap.add_argument("--cpu-only", action="store_true", help="run the CPU side only (no CUDA device here)")
    ap.add_argument("--no-worker", action="store_true", help="skip the run through the app's worker")
    args = ap.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.cpu_only
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} CPU threads, CUDA: "
          f"{torch.cuda.get_device_name(0) if cuda else 'none (CPU side only)'}", flush=True)
    out = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    rows, bad = [], 0
    keys = [m for m in args.methods.split(",") if m]
    keys += [v for v in VARIANTS if v.split(":")[0] in keys and v not in keys]
    for key in keys:
        method = key.split(":")[0]
        settings, least = VARIANTS.get(key, (SETTINGS.get(key, {}), 1))
        results = {}
        for device in (["cpu", "cuda"] if cuda else ["cpu"]):
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            config = RunConfig(dataset=args.dataset, model=args.model, data_dir=args.data_dir, device=device,
                               train_subset=args.train, test_subset=args.test, pretrain_epochs=1, seed=0,
                               out_dir=str(out / device), stages=[StageConfig(method, dict(settings),
                                                                              {"epochs": max(args.epochs, least)})])
            fin, seconds = run(config)
            peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else float("nan")
            results[device] = (fin, seconds, peak)
        cpu_fin, cpu_s, _ = results["cpu"]
        line = {"method": key, "cpu": cpu_fin.status, "cpu acc": cpu_fin.summary.get("test_accuracy"),
                "params x": cpu_fin.summary.get("param_ratio"), "cpu s": cpu_s}
        if cpu_fin.status != "completed":
            bad += 1
            line["error"] = cpu_fin.error
        if cuda:
            gpu_fin, gpu_s, peak = results["cuda"]
            line.update({"cuda": gpu_fin.status, "cuda acc": gpu_fin.summary.get("test_accuracy"),
                         "cuda params x": gpu_fin.summary.get("param_ratio"), "cuda s": gpu_s,
                         "speed-up": cpu_s / gpu_s if gpu_s else float("nan"), "peak MiB": peak})
            if gpu_fin.status != "completed":
                bad += 1
                line["error"] = gpu_fin.error
            elif cpu_fin.status == "completed":
                line["max |w| gap"] = weights_gap(cpu_fin.run_path, gpu_fin.run_path)
                acc_gap = abs(gpu_fin.summary["test_accuracy"] - cpu_fin.summary["test_accuracy"])
                ratio_gap = abs(gpu_fin.summary["param_ratio"] / cpu_fin.summary["param_ratio"] - 1)
                if acc_gap > 0.02 or ratio_gap > 0.02:
                    bad += 1
                    line["error"] = f"devices disagree: accuracy by {acc_gap:.3f}, ratio by {ratio_gap:.1%}"
        rows.append(line)
        print("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in line.items()),
              flush=True)
    if not args.no_worker:
        device = "cuda" if cuda else "cpu"
        config = RunConfig(dataset=args.dataset, model=args.model, data_dir=args.data_dir, device=device,
                           train_subset=args.train, test_subset=args.test, pretrain_epochs=1,
                           out_dir=str(out / "worker"), stages=[StageConfig("dns", dict(SETTINGS["dns"]),
                                                                            {"epochs": args.epochs})])
        fin = run_in_worker(config)
        if fin is None:
            print("app worker: PySide6 not installed here; the core run loop above is what it drives")
        else:
            print(f"app worker on {device}: {fin.status} {fin.summary.get('test_accuracy', float('nan')):.4f} "
                  f"{fin.error}")
            bad += fin.status != "completed"
    print(f"{len(rows)} methods, {bad} problems; run files in {out}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
