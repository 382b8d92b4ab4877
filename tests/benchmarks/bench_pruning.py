"""Reproduce the pruning papers on MNIST and measure each method's per-step cost.

    python tests/benchmarks/bench_pruning.py [--models lenet300,lenet5] [--methods magnitude,dns]
                                             [--seeds 0] [--out runs/bench] [--cost-only] [--no-cost]

For each model it runs the stored presets (`<method>-<model>`, resources/presets) through the same run
loop as the CLI, starting from the cached reference model, and prints test error, both compression
ratios, the paper's target and wall time. Then it times training steps of plain training, each method
and torch.nn.utils.prune (for scale) on the same model in the same process, interleaving the variants
round by round, and prints the median step time of each as a ratio to plain training.

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
from workbench.core.reference import resolve_model
from workbench.core.registry import get_method
from workbench.core.runner import execute, load_data
from workbench.core.training import optimizer_for, train_step
from workbench.data import batches
from workbench.methods.base import RunContext

# (model, method) -> (max test error %, min ratio, ratio convention), from the papers (METHODS.md).
TARGETS = {
    ("lenet300", "magnitude"): (1.6, 12, "param_ratio"),
    ("lenet300", "dns"): (2.0, 56, "param_ratio"),
    ("lenet5", "magnitude"): (0.8, 12, "param_ratio"),
    ("lenet5", "dns"): (0.91, 108, "param_ratio"),
}


def reproduce(model_key: str, method: str, seed: int, out: str) -> dict:
    name = f"{method}-{model_key}"
    preset = get_preset(name)
    config = RunConfig(dataset=preset.get("dataset", "mnist"), stages=preset_stages(name), model=model_key,
                       seed=seed, out_dir=out, name=f"{name}-s{seed}", preset=name)
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
    return {"model": model_key, "method": method, "seed": seed, "run": finished.run_path, **finished.summary}


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
    train = P.build(TrainParams, {"lr": 0.01})
    variants = {}
    keys = ["plain", *methods, *(["dns@t0"] if "dns" in methods else []), "torch_prune"]
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
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--out", default="runs/bench")
    ap.add_argument("--cost-only", action="store_true")
    ap.add_argument("--no-cost", action="store_true")
    args = ap.parse_args()
    models, methods = args.models.split(","), args.methods.split(",")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    rows = []
    if not args.cost_only:
        for model_key in models:
            for method in methods:
                for seed in map(int, args.seeds.split(",")):
                    rows.append(reproduce(model_key, method, seed, args.out))
        print(f"\n{'model':<10}{'method':<11}{'seed':>5}{'ref err%':>9}{'err%':>7}{'params x':>9}"
              f"{'bits x':>8}{'target':>17}{'met':>5}{'wall s':>8}")
        for r in rows:
            max_err, min_ratio, key = TARGETS.get((r["model"], r["method"]), (float("nan"), 0, "param_ratio"))
            err = 100 * (1 - r["test_accuracy"])
            met = round(err, 2) <= max_err and round(r[key], 1) >= min_ratio   # as printed
            print(f"{r['model']:<10}{r['method']:<11}{r['seed']:>5}{100 * (1 - r['reference_accuracy']):>9.2f}"
                  f"{err:>7.2f}{r['param_ratio']:>9.1f}{r['storage_ratio']:>8.1f}"
                  f"{f'<={max_err}% @>={min_ratio}x':>17}{'yes' if met else 'NO':>5}{r['wall_seconds']:>8.0f}")
    if not args.no_cost:
        for model_key in models:
            costs = step_costs(model_key, methods)
            base = costs["plain"]
            print(f"\nper-step cost on {model_key} (batch 128, median of interleaved rounds, "
                  f"{torch.get_num_threads()} threads)")
            for key, value in costs.items():
                print(f"  {key:<12}{1000 * value:8.3f} ms  {value / base:6.3f}x plain")
    return 0


if __name__ == "__main__":
    sys.exit(main())
