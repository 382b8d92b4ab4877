"""Reproduce the papers on MNIST from the stored presets and measure each method's per-step cost.

    python tests/benchmarks/bench_reproduce.py [--models lenet300,lenet5] [--methods magnitude,dns]
                                               [--presets deep-compression-lenet5,...] [--seeds 0]
                                               [--out runs/bench] [--cost-only] [--no-cost]

For each model it runs the stored presets (`<method>-<model>`, or the ones named by --presets, e.g. the
Deep Compression pipelines) through the same run loop as the CLI, starting from the cached reference
model, and prints test error, both compression ratios, the paper's target and wall time. Each finished
run is exported in the compact format and reloaded: the table shows its size on disk against the
accounted bytes and the reloaded model's test accuracy. Then it times training steps of plain
training, each method and torch.nn.utils.prune (for scale) on the same model in the same process,
interleaving the variants round by round, and prints the median step time of each as a ratio to plain
training.

Needs MNIST (WORKBENCH_DATA=../shared/datasets). Times depend on the machine: run nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from workbench.core import params as P
from workbench.core.config import RunConfig, TrainParams
from workbench.core.events import CancelToken, Evaluated, Finished, Message
from workbench.core.presets import get_preset, preset_stages
from workbench.data import batches
from workbench.engine.export import export_run, load_compact
from workbench.engine.reference import resolve_model
from workbench.engine.runner import execute, load_data
from workbench.engine.training import evaluate, optimizer_for, train_step
from workbench.methods import get_method
from workbench.methods.base import RunContext

# preset -> (max test error %, min ratio, ratio convention), from the papers' published results (the same
# points the ratio plot draws: workbench/gui/plots/published.py).
TARGETS = {
    "magnitude-lenet300": (1.6, 12, "param_ratio"),
    "dns-lenet300": (2.0, 56, "param_ratio"),
    "magnitude-lenet5": (0.8, 12, "param_ratio"),
    "dns-lenet5": (0.91, 108, "param_ratio"),
    "deep-compression-lenet300": (1.6, 40, "storage_ratio"),
    "deep-compression-lenet5": (0.8, 39, "storage_ratio"),
    "sws-lenet300": (1.94, 64, "storage_ratio"),
    "sws-lenet5": (0.97, 162, "storage_ratio"),
    "dns-kmeans-lenet5": (1.0, 162, "storage_ratio"),    # past the papers: SWS's 162x at <= 1% error
}


def reproduce(name: str, seed: int, out: str) -> dict:
    preset = get_preset(name)
    model_key = preset["model"]
    config = RunConfig(dataset=preset.get("dataset", "mnist"), stages=preset_stages(name), model=model_key,
                       seed=seed, out_dir=out, name=f"{name}-s{seed}", preset=name,
                       huffman=bool(preset.get("huffman", False)))
    finished = None
    for event in execute(config):
        if isinstance(event, Message):
            print(f"  [{name}] {event.text}", file=sys.stderr)
        elif isinstance(event, Evaluated) and event.label != "epoch":
            m = event.metrics
            print(f"  [{name}] {event.label}: acc {100 * m['test_accuracy']:.2f}% "
                  f"{m['param_ratio']:.1f}x params", file=sys.stderr)
        elif isinstance(event, Finished):
            finished = event
    if finished.status != "completed":
        raise SystemExit(f"{name} {finished.status}: {finished.error}")
    return {"model": model_key, "preset": name, "seed": seed, "run": finished.run_path, **finished.summary,
            **compact_check(finished.run_path, config)}


def compact_check(run_path: str, config: RunConfig) -> dict:
    """Export the run compactly, reload the file and measure its test accuracy."""
    out = str(run_path).replace(".h5", ".cwbc")
    result = export_run(run_path, "compact", out)
    model = load_compact(out)
    data = load_data(config)
    accuracy, _ = evaluate(model, data.test_x, data.test_y)
    return {"file_bytes": result.size_bytes, "accounted_bytes": result.accounted_bytes,
            "header_bytes": result.header_bytes, "reloaded_accuracy": accuracy}


def step_costs(model_key: str, methods: list[str], rounds: int = 7, steps: int = 40) -> dict[str, float]:
    """Median seconds per training step for plain training, each method and torch.nn.utils.prune.

    Each method's steps are timed at the middle of its preset's schedule (ctx.step = half the preset's
    steps), where DNS updates its masks with the probability the run has there; `dns@t0` times the
    start of surgery, where masks are updated on almost every step (the worst case).
    """
    config = RunConfig(dataset="mnist", stages=[], model=model_key)
    dataset = load_data(config)
    device = torch.device("cpu")
    gen = resolve_model(config, dataset, device, CancelToken())
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        reference, _ = stop.value
    x, y = dataset.train_x[: 128 * steps], dataset.train_y[: 128 * steps]
    variants = {}
    keys = ["plain", *(["plain_adam"] if "sws" in methods else []), *methods,
            *(["dns@t0"] if "dns" in methods else []), "torch_prune"]
    for key in keys:
        model = copy.deepcopy(reference)
        base = key.split("@")[0]
        preset = get_preset(f"{base}-{model_key}") if base in methods else None
        method = get_method(base if preset else "plain").from_values(
            preset["stages"][0]["params"] if preset else {})
        epochs = preset["stages"][0]["train"].get("epochs", 10) if preset else 10
        ctx = RunContext(device=device, steps_per_epoch=469, total_steps=469 * epochs, num_train=len(x))
        method.prepare(model, ctx)
        if "@" not in key:
            ctx.step = ctx.total_steps // 2
        method.on_epoch_start(model, ctx)       # magnitude prunes here
        if key == "torch_prune":
            for module in model.modules():
                if isinstance(module, (nn.Linear, nn.Conv2d)):
                    torch_prune.l1_unstructured(module, "weight", amount=0.9)
        # the preset's own optimizer (SWS needs Adam and its mixture groups), plain SGD otherwise
        # `plain_adam` is SWS's baseline: the same optimizer without the prior
        train = P.build(TrainParams, preset["stages"][0]["train"] if preset else
                        {"optimizer": "adam", "lr": 5e-4} if key == "plain_adam" else {"lr": 0.01})
        variants[key] = (model, method, optimizer_for(model, method, train), ctx)
    times = {key: [] for key in variants}
    for _ in range(rounds):
        for key, (model, method, optimizer, ctx) in variants.items():
            model.train()
            t0 = time.perf_counter()
            for xb, yb in batches(x, y, 128, shuffle=False):
                train_step(model, method, optimizer, xb, yb, ctx)
            times[key].append((time.perf_counter() - t0) / steps)
    return {key: statistics.median(v) for key, v in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="lenet300,lenet5")
    ap.add_argument("--methods", default="magnitude,dns")
    ap.add_argument("--presets", help="run these presets instead of <method>-<model> (comma-separated)")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--out", default="runs/bench")
    ap.add_argument("--cost-only", action="store_true")
    ap.add_argument("--no-cost", action="store_true")
    args = ap.parse_args()
    models, methods = args.models.split(","), args.methods.split(",")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    rows = []
    if not args.cost_only:
        names = args.presets.split(",") if args.presets else [f"{m}-{k}" for k in models for m in methods]
        for name in names:
            for seed in map(int, args.seeds.split(",")):
                rows.append(reproduce(name, seed, args.out))
        print(f"\n{'preset':<27}{'seed':>5}{'ref err%':>9}{'err%':>7}{'params x':>9}{'bits x':>8}"
              f"{'target':>24}{'met':>5}{'wall s':>8}{'file B':>9}{'acct B':>9}{'reload err%':>12}")
        for r in rows:
            max_err, min_ratio, key = TARGETS.get(r["preset"], (float("nan"), 0, "param_ratio"))
            err = 100 * (1 - r["test_accuracy"])
            met = round(err, 2) <= max_err and round(r[key], 1) >= min_ratio   # as printed
            unit = "bits" if key == "storage_ratio" else "params"
            print(f"{r['preset']:<27}{r['seed']:>5}{100 * (1 - r['reference_accuracy']):>9.2f}"
                  f"{err:>7.2f}{r['param_ratio']:>9.1f}{r['storage_ratio']:>8.1f}"
                  f"{f'<={max_err}% @>={min_ratio}x {unit}':>24}{'yes' if met else 'NO':>5}"
                  f"{r['wall_seconds']:>8.0f}{r['file_bytes']:>9}{r['accounted_bytes']:>9.0f}"
                  f"{100 * (1 - r['reloaded_accuracy']):>12.2f}")
    if not args.no_cost:
        for model_key in models:
            costs = step_costs(model_key, methods)
            base = costs["plain"]
            print(f"\nper-step cost on {model_key} (batch 128, median of interleaved rounds, "
                  f"{torch.get_num_threads()} threads)")
            for key, value in costs.items():
                print(f"  {key:<12}{1000 * value:8.3f} ms  {value / base:6.3f}x plain")
            if "plain_adam" in costs:
                print(f"  sws / plain_adam (same optimizer): {costs['sws'] / costs['plain_adam']:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
