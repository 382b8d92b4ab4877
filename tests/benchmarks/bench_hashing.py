"""HashedNets and functional hashing on MNIST: error at a given storage against a dense network of the
same stored size, and what hashing costs per training step, per inference batch and in memory.

    python tests/benchmarks/bench_hashing.py [--quick] [--models lenet300,mlp1000] [--ratios 0.125,0.015625]
        [--seeds 0,1,2] [--epochs 20] [--lr 0.1] [--init scratch] [--rounds 5] [--steps 20]
        [--batch 128] [--cost-batches 64,128,256] [--threads 1] [--skip cost,memory,error]

(cost) Per model and ratio: full training steps (forward, loss, backward, SGD step) of the dense model,
    `hashed`, and `funhash` with a shared space (HFH) and per-layer spaces (FunHashNN), interleaved round
    by round in one process; median ms per step and the ratio to the dense step. Inference: one batch of
    --infer-batch images in eval mode, "cold" (the virtual weights rebuilt, as after a parameter change)
    and "warm" (kept, as when evaluating a trained model). Targets: hashed <= 1.5x, funhash <= 2.0x a
    dense step. --cost-batches repeats this for several batch sizes: building the virtual weights and
    summing their gradients into the buckets costs the same per step at any batch, while the dense step
    grows with the batch, so the ratio falls as the batch grows.
(memory) Peak training memory of each variant, each in a fresh process: on CPU the peak resident set
    size during training steps (VmHWM, reset after model construction and two warm-up steps; glibc
    made to return freed blocks) minus the resident size before the model existed: parameters, gradients,
    SGD momentum, activations and every temporary of a step. On CUDA max_memory_allocated. Target:
    <= the dense model's + 5%.
(error) Per model, ratio and seed: test error of hashed, funhash (shared and per-layer space) and a
    dense MLP whose hidden layers are narrowed until it stores as many parameters as hashed does (the
    baseline of Chen et al. 2015), each trained --epochs with SGD (Nesterov 0.9, one-cycle, peak --lr,
    batch --batch); mean +- std over the seeds, with the parameter and storage ratios; the last seed's
    hashed and funhash models are exported compact, reloaded and re-evaluated (file size vs accounting).

Needs MNIST (WORKBENCH_DATA=../shared/datasets). --quick runs a tiny subset (LeNet-300-100, ratio 1/8,
one seed, one epoch on 2000 images, few steps) to check that everything works, not to measure. Times
depend on the machine: run nothing else meanwhile (--threads 1 is steadier on a loaded machine).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from workbench import data as data_mod
from workbench.core import params as P
from workbench.core.accounting import account
from workbench.core.config import TrainParams
from workbench.core.events import CancelToken
from workbench.engine.export import load_compact, write_compact
from workbench.engine.reference import pretrain
from workbench.engine.training import Clock, DeviceData, evaluate, optimizer_for, train_epochs, train_step
from workbench.methods.base import RunContext
from workbench.methods.hashing.funhash import FunctionalHashing
from workbench.methods.hashing.hashednets import HashedNets
from workbench.methods.plain import PlainTraining
from workbench.methods.storage import encode_state
from workbench.models import zoo
from workbench.models.hashed.layers import hashed_layers

CPU = torch.device("cpu")
VARIANTS = ("dense", "hashed", "funhash shared", "funhash per-layer")


def quiet(_message: str) -> None:
    pass


def make_method(variant: str, ratio: float, seed: int, init: str):
    common = {"ratio": ratio, "seed": seed, "init": init}
    if variant == "hashed":
        return HashedNets.from_values(common)
    if variant == "funhash shared":
        return FunctionalHashing.from_values({**common, "space": "shared"})
    if variant == "funhash per-layer":
        return FunctionalHashing.from_values({**common, "space": "per_layer"})
    return PlainTraining()


def run_ctx(steps_per_epoch: int, epochs: int, device, seed: int = 0) -> RunContext:
    return RunContext(device=device, steps_per_epoch=steps_per_epoch, total_steps=steps_per_epoch * epochs,
                      num_train=steps_per_epoch * 128, generator=torch.Generator().manual_seed(seed), log=quiet)


def reference(model_key: str, quick: bool):
    """The cached pretrained reference (with --quick and no cache entry: one epoch of pretraining)."""
    from workbench.core.config import RunConfig, StageConfig
    from workbench.engine.reference import recipe, reference_path, resolve_model
    full = data_mod.load_dataset("mnist")
    epochs = 1 if quick and not reference_path(model_key, full, recipe(model_key), 0).exists() else 0
    config = RunConfig(dataset="mnist", stages=[StageConfig("plain")], model=model_key, device="cpu",
                       pretrain_epochs=epochs)
    gen = resolve_model(config, full, CPU, CancelToken())
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value[0].eval()


REFERENCES: dict[str, nn.Module] = {}


def hashed_model(model_key: str, variant: str, ratio: float, device, seed: int = 0, init: str = "scratch"):
    torch.manual_seed(seed)
    if init == "pretrained":
        model = copy.deepcopy(REFERENCES[model_key]).to(device)
    else:
        model = zoo.build_model(model_key).to(device)
    method = make_method(variant, ratio, seed, init)
    ctx = run_ctx(100, 1, device, seed)
    method.prepare(model, ctx)
    return model.train(), method, ctx


# --- (cost) time per step and per inference batch --------------------------------------------------------

def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def part_cost(model_key: str, ratio: float, args, device, batch: int) -> dict:
    x = torch.randn(batch * 8, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (batch * 8,), device=device)
    train = P.build(TrainParams, {"lr": 0.01, "batch_size": batch})
    state = {}
    for v in VARIANTS:
        model, method, ctx = hashed_model(model_key, v, ratio, device)
        ctx.lr = 0.01
        state[v] = (model, method, optimizer_for(model, method, train), ctx)
    steps = {v: [] for v in VARIANTS}
    for r in range(args.rounds + 1):                  # round 0 warms up and is not counted
        for v, (model, method, opt, ctx) in state.items():
            sync(device)
            t0 = time.perf_counter()
            for i in range(args.steps):
                j = i % 8
                train_step(model, method, opt, x[j * batch:(j + 1) * batch], y[j * batch:(j + 1) * batch], ctx)
            sync(device)
            if r:
                steps[v].append((time.perf_counter() - t0) / args.steps)
    xi = torch.randn(args.infer_batch, 1, 28, 28, device=device)
    cold = {v: [] for v in VARIANTS}
    warm = {v: [] for v in VARIANTS}
    with torch.no_grad():
        for r in range(args.rounds * 4 + 1):
            for v, (model, *_rest) in state.items():
                model.eval()
                for layer in (m for _, m in hashed_layers(model)):
                    layer.clear_caches()
                for times in (cold, warm):
                    sync(device)
                    t0 = time.perf_counter()
                    model(xi)
                    sync(device)
                    if r:
                        times[v].append(time.perf_counter() - t0)
    out = {}
    base = statistics.median(steps["dense"])
    base_cold, base_warm = statistics.median(cold["dense"]), statistics.median(warm["dense"])
    print(f"\n(cost) {model_key}, ratio 1/{1 / ratio:g}: median of {args.rounds} interleaved rounds of {args.steps} "
          f"training steps (batch {batch}), inference batch {args.infer_batch}; {device}, "
          f"{torch.get_num_threads()} thread(s)")
    print(f"  {'variant':<20}{'step ms':>9}{'x dense':>9}{'infer cold ms':>15}{'x dense':>9}{'infer warm ms':>15}{'x dense':>9}")
    for v in VARIANTS:
        s, c, w = (statistics.median(t[v]) for t in (steps, cold, warm))
        out[v] = {"step_ms": 1e3 * s, "step_x": s / base, "infer_cold_ms": 1e3 * c, "infer_cold_x": c / base_cold,
                  "infer_warm_ms": 1e3 * w, "infer_warm_x": w / base_warm}
        print(f"  {v:<20}{1e3 * s:>9.3f}{s / base:>9.2f}{1e3 * c:>15.3f}{c / base_cold:>9.2f}{1e3 * w:>15.3f}"
              f"{w / base_warm:>9.2f}", flush=True)
    kernel = state["hashed"][0]
    note = next(m for _, m in hashed_layers(kernel))
    print(f"  hashed layers run on: {'native CPU kernel' if note.native(note.table) else 'PyTorch path'}")
    return out


# --- (memory) peak training memory, one fresh process per variant -----------------------------------------

def _status() -> dict[str, int]:
    text = Path("/proc/self/status").read_text()
    return {k: 1024 * int(re.search(rf"{k}:\s+(\d+)", text).group(1)) for k in ("VmRSS", "VmHWM")}


def memory_probe(model_key: str, variant: str, ratio: float, batch: int, device_name: str) -> dict:
    """Runs in its own process: bytes of peak training memory above what existed before the model."""
    device = torch.device(device_name)
    x = torch.randn(batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    train = P.build(TrainParams, {"lr": 0.01, "batch_size": batch})
    # first use of matmul, autograd and the optimizer sets up library buffers (tens of MB on CPU): done
    # here on a throwaway network so that they count before, not in, the measurement
    warm = NarrowMLP([784, 64, 10]).to(device)
    warm_opt = optimizer_for(warm, PlainTraining(), train)
    for _ in range(2):
        train_step(warm, PlainTraining(), warm_opt, x, y, run_ctx(1, 1, device))
    del warm, warm_opt
    if device.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
    else:
        before = _status()["VmRSS"]
    model, method, ctx = hashed_model(model_key, variant, ratio, device)
    ctx.lr = 0.01
    opt = optimizer_for(model, method, train)
    for _ in range(2):                         # optimizer state exists from here on
        train_step(model, method, opt, x, y, ctx)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")      # reset VmHWM
    for _ in range(5):
        train_step(model, method, opt, x, y, ctx)
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = _status()["VmHWM"]
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return {"peak": peak - before, "params": params}


def part_memory(model_key: str, ratio: float, args, device) -> dict:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0",
           "OMP_NUM_THREADS": str(torch.get_num_threads())}
    out = {}
    for v in VARIANTS:
        done = subprocess.run([sys.executable, __file__, "--memory-probe", json.dumps(
            [model_key, v, ratio, args.batch, str(device)])], capture_output=True, text=True, env=env, timeout=600)
        if done.returncode:
            print(f"  memory probe {v} failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        out[v] = json.loads(done.stdout.strip().splitlines()[-1])
    if "dense" not in out:
        return out
    base = out["dense"]["peak"]
    print(f"\n(memory) {model_key}, ratio 1/{1 / ratio:g}: peak training memory above the process before the "
          f"model (batch {args.batch}, {device}{'; resident set size' if device.type == 'cpu' else ''})")
    print(f"  {'variant':<20}{'peak MB':>10}{'x dense':>9}{'params MB':>11}")
    for v, m in out.items():
        m["peak_x"] = m["peak"] / base
        print(f"  {v:<20}{m['peak'] / 2**20:>10.2f}{m['peak_x']:>9.3f}{m['params'] / 2**20:>11.2f}", flush=True)
    return out


# --- (error) accuracy at equal storage ---------------------------------------------------------------------

class NarrowMLP(nn.Module):
    def __init__(self, widths: list[int]):
        super().__init__()
        self.flatten = nn.Flatten()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x):
        x = self.flatten(x)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i + 1 < len(self.layers):
                x = torch.relu(x)
        return x


def narrow_widths(model_key: str, target: int) -> list[int]:
    """Hidden widths scaled by one factor until the MLP holds about `target` parameters."""
    full = {"lenet300": [784, 300, 100, 10], "mlp1000": [784, 1000, 1000, 10]}[model_key]

    def widths(s: float) -> list[int]:
        return [full[0]] + [max(1, round(w * s)) for w in full[1:-1]] + [full[-1]]

    def count(ws):
        return sum(a * b + b for a, b in zip(ws[:-1], ws[1:]))

    lo, hi = 1e-4, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if count(widths(mid)) < target else (lo, mid)
    return min((widths(lo), widths(hi)), key=lambda ws: abs(count(ws) - target))


def train_model(model, method, data, args, seed: int, device) -> None:
    params = P.build(TrainParams, {"epochs": args.epochs, "lr": args.lr, "lr_schedule": "onecycle",
                                   "batch_size": args.batch})
    steps = data_mod.num_batches(len(data.train_x), params.batch_size)
    ctx = run_ctx(steps, args.epochs, device, seed)
    clock = Clock(ctx.total_steps)
    for _ in train_epochs(model, method, params, data, ctx, CancelToken(), clock,
                          torch.Generator().manual_seed(seed), lambda epoch, loss: iter(())):
        pass


def progress(model_key: str, ratio: float, seed: int, variant: str, result: str, started: float) -> None:
    """One line on stderr per trained variant: the error table only prints when all seeds are done."""
    print(f"  .. {model_key} 1/{1 / ratio:g} seed {seed} {variant}: {result} "
          f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)


def part_error(model_key: str, ratio: float, dataset, args, device) -> dict:
    data = DeviceData(dataset, device)
    rows = {v: [] for v in VARIANTS}
    info, diverged = {}, {}
    for seed in args.seeds:
        stored = None
        for v in VARIANTS[1:]:
            model, method, _ = hashed_model(model_key, v, ratio, device, seed, args.init)
            started = time.perf_counter()
            try:
                train_model(model, method, data, args, seed, device)
            except FloatingPointError as exc:      # a diverged variant is a result, not the end of the table
                rows[v].append(float("nan"))
                diverged[v] = diverged.get(v, "") + f" seed {seed}: {str(exc).split(';')[0]}."
                progress(model_key, ratio, seed, v, "diverged", started)
                continue
            acc, _ = evaluate(model, data.test_x, data.test_y)
            progress(model_key, ratio, seed, v, f"{100 * (1 - acc):.2f} %", started)
            report = account(encode_state(model, model.state_dict()))
            rows[v].append(100 * (1 - acc))
            info[v] = (report.param_ratio, report.storage_ratio, report.stored_params)
            if v == "hashed" or stored is None:
                stored = report.stored_params
            if seed == args.seeds[-1]:
                info[v] += (export_check(model_key, model, method, dataset, data, acc),)
        widths = narrow_widths(model_key, stored)
        torch.manual_seed(seed)
        started = time.perf_counter()
        dense = NarrowMLP(widths).to(device)
        gen = pretrain(dense, dataset, P.build(TrainParams, {"epochs": args.epochs, "lr": args.lr,
                                                             "lr_schedule": "onecycle", "batch_size": args.batch}),
                       device, CancelToken(), seed)
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                acc = stop.value
                break
        rows["dense"].append(100 * (1 - acc))
        progress(model_key, ratio, seed, "dense", f"{100 * (1 - acc):.2f} %", started)
        n_dense = sum(p.numel() for p in dense.parameters())
        full = sum(p.numel() for p in zoo.build_model(model_key).parameters())
        info["dense"] = (full / n_dense, full / n_dense, n_dense, f"widths {'-'.join(map(str, widths))}")
    print(f"\n(error) {model_key}, ratio 1/{1 / ratio:g}: {args.epochs} epoch(s), init {args.init}, seeds "
          f"{','.join(map(str, args.seeds))}; {len(dataset.train_x)} training / {len(dataset.test_x)} test images")
    print(f"  {'variant':<20}{'error %':>16}{'stored':>10}{'params x':>10}{'bits x':>9}  export check / notes")
    out = {}
    for v in ("hashed", "funhash shared", "funhash per-layer", "dense"):
        errs = rows[v]
        finite = [e for e in errs if math.isfinite(e)]          # over the seeds that did not diverge
        mean = statistics.mean(finite) if finite else float("nan")
        std = statistics.stdev(finite) if len(finite) > 1 else 0.0
        pr, sr, n, *note = info.get(v, (float("nan"), float("nan"), 0))
        if v in diverged:
            note = [(note[0] + "; " if note else "") + "diverged:" + diverged[v]]
        out[v] = {"error_mean": mean, "error_std": std, "errors": errs, "param_ratio": pr, "storage_ratio": sr,
                  "stored": n}
        print(f"  {v if v != 'dense' else 'dense, same params':<20}{mean:>9.2f} +-{std:>5.2f}{n:>10,}{pr:>10.1f}"
              f"{sr:>9.1f}  {note[0] if note else ''}", flush=True)
    return out


def export_check(model_key, model, method, dataset, data, acc) -> str:
    attrs = {"model_key": model_key, "input_shape": list(dataset.input_shape), "num_classes": dataset.num_classes,
             "mean": list(dataset.mean), "std": list(dataset.std)}
    with tempfile.TemporaryDirectory() as tmp:
        res = write_compact(model.cpu(), method, attrs, Path(tmp) / "m.cwbc")
        reloaded = load_compact(res.path)
    model.to(data.test_x.device)
    acc2, _ = evaluate(reloaded.to(data.test_x.device), data.test_x, data.test_y)
    return (f"compact {res.size_bytes:,} B = {res.accounted_bytes:,.0f} accounted + {res.header_bytes} header; "
            f"reloaded error {100 * (1 - acc2):.2f}% ({'same' if acc2 == acc else 'DIFFERENT'})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny subset and few steps: checks, not measures")
    ap.add_argument("--models", default="lenet300,mlp1000")
    ap.add_argument("--ratios", default="0.125,0.015625")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--init", default="scratch", choices=("scratch", "pretrained"),
                    help="how hashed / funhash start: scratch (as in both papers) or from the cached "
                         "pretrained reference (pretrained with the model's recipe when not cached)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--cost-batches", default="",
                    help="training batch sizes of the cost part, comma-separated (default: --batch); the "
                         "hashing kernels cost the same per step at any batch, the dense step grows with it")
    ap.add_argument("--infer-batch", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--skip", default="", help="parts to skip: cost, memory, error")
    ap.add_argument("--json", default="", help="write all numbers to this file")
    ap.add_argument("--memory-probe", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_probe:
        if args.threads:
            torch.set_num_threads(args.threads)
        print(json.dumps(memory_probe(*json.loads(args.memory_probe))))
        return 0
    if args.quick:
        args.models, args.ratios, args.seeds, args.epochs = "lenet300", "0.125", "0", 1
        args.rounds, args.steps = 2, 5
    args.ratios = [float(v) for v in args.ratios.split(",")]
    args.seeds = [int(v) for v in args.seeds.split(",")]
    args.cost_batches = [int(v) for v in args.cost_batches.split(",")] if args.cost_batches else [args.batch]
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op thread(s), {device}"
          f"{' (--quick: a tiny subset, for checking only)' if args.quick else ''}", flush=True)
    results = {}
    full = None
    for model_key in args.models.split(","):
        if args.init == "pretrained" and "error" not in args.skip:
            REFERENCES[model_key] = reference(model_key, args.quick)
        for ratio in args.ratios:
            key = f"{model_key} 1/{1 / ratio:g}"
            results[key] = {}
            if "cost" not in args.skip:
                for batch in args.cost_batches:
                    results[key][f"cost batch {batch}"] = part_cost(model_key, ratio, args, device, batch)
            if "memory" not in args.skip:
                results[key]["memory"] = part_memory(model_key, ratio, args, device)
            if "error" not in args.skip:
                if full is None:
                    full = data_mod.load_dataset("mnist")
                dataset = full.subset(2000, 500, seed=0) if args.quick else full
                results[key]["error"] = part_error(model_key, ratio, dataset, args, device)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
