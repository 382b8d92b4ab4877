"""Low-rank compression (Alvarez & Salzmann 2017) against the SVD baseline on MNIST: step cost, the
ratio / error table over energy thresholds, and what the factorised export weighs and costs at inference.

    python tests/benchmarks/bench_lowrank.py [--quick] [--models lenet300,lenet5] [--taus 0.01,0.05]
        [--energies 0.8,0.9,0.95] [--energy-of sigma] [--epochs 10] [--finetune 2] [--lr 0.05]
        [--prox-every 25] [--rounds 5] [--steps 50] [--threads 1]

(a) Per-step cost: full training steps (forward, loss, backward, SGD step, the method's after_step) of
    plain training and of lowrank with several prox settings, interleaved round by round in one process,
    from two states of the weights: the pretrained reference (full rank: every SVD is a full one) and
    the reference soft-thresholded to rank min(m, n) / 8 per layer (the later phase of training, where
    the truncated SVD applies). Median ms per step and the ratio to plain training.
(b) Per model: the SVD baseline (truncate the reference to each energy threshold, then --finetune
    epochs of plain training of the factors) and compression-aware training (--epochs of lowrank per tau,
    then the same truncation and fine-tuning); a table of ranks, param ratio, storage ratio and error.
    Each lowrank training is cut at every threshold from one trained copy (the cut is the same function
    the method's finalize runs).
(c) The factorised model at the middle threshold: compact export size on disk against the dense
    export, parameters of the reloaded model (stock nn.Linear / nn.Conv2d layers), and CPU inference
    latency against the dense reference at batch 1 and 256 (median, interleaved).

Needs MNIST (WORKBENCH_DATA=../shared/datasets) and uses the cached reference models (WORKBENCH_CACHE);
--quick runs a tiny subset (a few hundred steps) to check that everything works, not to measure.
Times depend on the machine: run nothing else meanwhile (--threads 1 is steadier on a loaded machine).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from workbench import data as data_mod
from workbench.core import params as P
from workbench.core.accounting import account
from workbench.core.config import RunConfig, StageConfig, TrainParams
from workbench.core.events import CancelToken
from workbench.engine.export import load_compact, write_compact, write_dense
from workbench.engine.reference import recipe, reference_path, resolve_model
from workbench.engine.training import Clock, DeviceData, evaluate, optimizer_for, train_epochs, train_step
from workbench.methods.base import RunContext
from workbench.methods.factorize import compress
from workbench.methods.lowrank import LowRank, choose_layers
from workbench.methods.plain import PlainTraining
from workbench.methods.proximal import svt_dense
from workbench.methods.storage import encode_state
from workbench.models import structure

CPU = torch.device("cpu")
BATCH = 128
DEFAULT_PROX_EVERY = next(s.default for s in P.specs(LowRank.Params) if s.name == "prox_every")


def quiet(_message: str) -> None:
    pass


def reference(model_key: str, quick: bool):
    """The cached reference (pretrained here with the model's recipe); with --quick and no cache entry,
    one epoch of pretraining instead of the whole recipe."""
    full = data_mod.load_dataset("mnist")
    epochs = None
    if quick and not reference_path(model_key, full, recipe(model_key), 0).exists():
        epochs = 1
        print(f"  (no cached {model_key} reference: --quick pretrains 1 epoch)", flush=True)
    config = RunConfig(dataset="mnist", stages=[StageConfig("plain")], model=model_key, device="cpu",
                       pretrain_epochs=epochs or 0)
    gen = resolve_model(config, full, CPU, CancelToken())
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value[0].eval(), full


def run_ctx(steps_per_epoch: int, epochs: int, log=quiet) -> RunContext:
    return RunContext(device=CPU, steps_per_epoch=steps_per_epoch, total_steps=steps_per_epoch * epochs,
                      num_train=steps_per_epoch * BATCH, log=log)


# --- (a) per-step cost ---------------------------------------------------------------------------------

LATE_RANK = 8      # later phase: rank min(m, n) / 8 (LeNet-300-100 fc1 reached ~40 of 300 in 4 epochs)


def low_rank_state(model):
    """The reference soft-thresholded per layer to rank min(m, n) / LATE_RANK: weights as in the later
    phase of compression-aware training, where the truncated SVD can apply."""
    model = copy.deepcopy(model)
    with torch.no_grad():
        for name in choose_layers(model, "all"):
            w = model.get_submodule(name).weight
            mat = w.reshape(w.shape[0], -1)
            sigma = torch.linalg.svdvals(mat.double())
            r = max(len(sigma) // LATE_RANK, 1)
            w.copy_(svt_dense(mat.double(), float(sigma[r])).float().reshape(w.shape))
    return model


def step_costs(start, x, y, variants: dict, rounds: int, steps: int, lr: float) -> dict[str, tuple[float, str]]:
    """Median seconds per step of each variant (and its SVD counts), interleaved round by round."""
    train = P.build(TrainParams, {"lr": lr})
    state = {}
    for key, (method_key, values) in variants.items():
        model = copy.deepcopy(start).train()
        method = PlainTraining() if method_key == "plain" else LowRank.from_values(values)
        ctx = run_ctx(len(x) // BATCH, 10)
        ctx.lr = lr
        method.prepare(model, ctx)
        state[key] = (model, method, optimizer_for(model, method, train), ctx)
    times: dict[str, list[float]] = {key: [] for key in variants}
    n_batches = len(x) // BATCH
    for r in range(rounds + 1):                   # round 0 warms up and is not counted
        for key, (model, method, optimizer, ctx) in state.items():
            t0 = time.perf_counter()
            for i in range(steps):
                j = (r * steps + i) % n_batches
                train_step(model, method, optimizer, x[j * BATCH:(j + 1) * BATCH], y[j * BATCH:(j + 1) * BATCH], ctx)
            if r:
                times[key].append((time.perf_counter() - t0) / steps)
    out = {}
    for key, (model, method, _, _) in state.items():
        svds = ""
        if isinstance(method, LowRank) and method.svt is not None:
            s = method.svt.stats
            svds = f"{s.full} full / {s.truncated} truncated / {s.rejected} rejected SVDs"
        out[key] = (statistics.median(times[key]), svds)
    return out


def part_a(model_key: str, ref, dataset, args) -> None:
    x, y = dataset.train_x, dataset.train_y
    k, tau = args.prox_every, args.taus[-1]
    variants = {"plain": ("plain", {}),
                f"lowrank k={k}": ("lowrank", {"prox_every": k, "tau": tau}),
                f"lowrank k={k} full SVD": ("lowrank", {"prox_every": k, "tau": tau, "svd_solver": "full"}),
                "lowrank k=1": ("lowrank", {"prox_every": 1, "tau": tau})}
    states = (("pretrained weights (full rank)", ref), (f"weights at rank min(m,n)/{LATE_RANK}", low_rank_state(ref)))
    for label, start in states:
        costs = step_costs(start, x, y, variants, args.rounds, args.steps, args.lr)
        base = costs["plain"][0]
        print(f"\n(a) {model_key}, {label}: median of {args.rounds} interleaved rounds of {args.steps} steps, "
              f"batch {BATCH}, SGD lr {args.lr:g}, tau {tau:g}, {torch.get_num_threads()} torch threads")
        for key, (value, svds) in costs.items():
            print(f"  {key:<24}{1000 * value:9.3f} ms/step {value / base:6.2f}x plain  {svds}", flush=True)


# --- (b) ratio / error table ---------------------------------------------------------------------------

def train(model, method, data, epochs: int, lr: float, log=quiet) -> tuple[float, RunContext]:
    """method.prepare, then `epochs` of training with the method's hooks (cosine rate from lr);
    returns (seconds per step, the run context)."""
    params = P.build(TrainParams, {"epochs": epochs, "lr": lr, "lr_schedule": "cosine"})
    steps = data_mod.num_batches(len(data.train_x), params.batch_size)
    ctx = run_ctx(steps, epochs, log)
    method.prepare(model, ctx)
    clock = Clock(ctx.total_steps)
    for _ in train_epochs(model, method, params, data, ctx, CancelToken(), clock, torch.Generator().manual_seed(0),
                          lambda epoch, loss: iter(())):
        pass
    return (clock.train_seconds / clock.step if clock.step else float("nan")), ctx


def measure(model, data) -> dict:
    acc, _ = evaluate(model, data.test_x, data.test_y)
    report = account(encode_state(model, model.state_dict()))
    spec = structure.structure_of(model) or {"layers": {}}
    ranks = " ".join(f"{n}={e['rank']}" for n, e in spec["layers"].items() if e["rank"] is not None) or "-"
    cut = [f"{n}:{structure.kept_count(e, 'out_keep', e['shape'][0])}/{e['shape'][0]}"
           for n, e in spec["layers"].items() if e.get("out_keep") is not None]
    ranks += f" units {' '.join(cut)}" if cut else ""
    return {"error": 100 * (1 - acc), "param_ratio": report.param_ratio, "storage_ratio": report.storage_ratio,
            "ranks": ranks}


def cut_and_finetune(trained, data, energy: float, args):
    model = copy.deepcopy(trained)
    compress(model, choose_layers(model, "all"), energy=energy, energy_of=args.energy_of, remove_units=True,
             log=quiet)
    before = measure(model, data)
    train(model, PlainTraining(), data, args.finetune, args.lr / 5)
    after = measure(model, data)
    return model, {**after, "error_cut": before["error"]}


def part_b(model_key: str, ref, data, args) -> dict:
    rows = []
    ref_error = measure(ref, data)["error"]
    plain_step, _ = train(copy.deepcopy(ref).train(), PlainTraining(), data, args.epochs, args.lr)
    keep = {}
    for energy in args.energies:
        model, row = cut_and_finetune(ref, data, energy, args)
        rows.append({"method": "svd", "tau": "-", "energy": energy, **row, "step": "-"})
    # lowrank per tau, then (what the sparse group Lasso adds) the first tau with each group lambda
    runs = [(tau, 0.0) for tau in args.taus] + [(args.taus[0], lam) for lam in args.group_lambdas]
    for tau, lam in runs:
        trained = copy.deepcopy(ref).train()
        method = LowRank.from_values({"tau": tau, "prox_every": args.prox_every, "energy_of": args.energy_of,
                                      "group_lambda": lam})
        step, ctx = train(trained, method, data, args.epochs, args.lr)
        method.finish_training(ctx)
        for energy in args.energies:
            model, row = cut_and_finetune(trained, data, energy, args)
            rows.append({"method": f"lowrank+sgl {lam:g}" if lam else "lowrank", "tau": tau, "energy": energy,
                         **row, "step": f"{step / plain_step:.2f}x" if args.epochs else "-"})
            if not lam:
                keep[(tau, energy)] = model
    print(f"\n(b) {model_key}: reference error {ref_error:.2f}%, {args.epochs} epochs of lowrank (lr {args.lr:g} "
          f"cosine, prox every {args.prox_every}), energy of {args.energy_of}, then {args.finetune} fine-tuning "
          f"epoch(s); {len(data.train_x)} training / {len(data.test_x)} test images")
    print(f"  {'method':<20}{'tau':>7}{'energy':>8}  {'ranks (factorised layers), units kept':<44}{'params x':>9}{'bits x':>8}"
          f"{'err cut %':>10}{'err ft %':>9}{'step':>7}")
    for r in rows:
        print(f"  {r['method']:<20}{r['tau']!s:>7}{r['energy']:>8g}  {r['ranks']:<44}{r['param_ratio']:>9.2f}"
              f"{r['storage_ratio']:>8.2f}{r['error_cut']:>10.2f}{r['error']:>9.2f}{r['step']:>7}", flush=True)
    middle = args.energies[len(args.energies) // 2]
    return keep.get((args.taus[-1], middle)) if keep else None


# --- (c) export size and inference latency ---------------------------------------------------------------

def latency(models: dict, x: torch.Tensor, reps: int) -> dict[str, float]:
    times = {k: [] for k in models}
    with torch.inference_mode():
        for m in models.values():
            m(x)
        for _ in range(reps):
            for k, m in models.items():
                t0 = time.perf_counter()
                m(x)
                times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def part_c(model_key: str, ref, factored, data, args) -> None:
    if factored is None:
        return
    attrs = {"model_key": model_key, "input_shape": [1, 28, 28], "num_classes": 10, "mean": [], "std": []}
    with tempfile.TemporaryDirectory() as tmp:
        compact = write_compact(factored, LowRank(), attrs, Path(tmp) / "f.cwbc")
        dense = write_dense(ref, attrs, Path(tmp) / "d.safetensors")
        reloaded = load_compact(compact.path)
    x = data.test_x[:256]
    with torch.inference_mode():
        same = torch.allclose(reloaded(x), factored.eval()(x), atol=1e-5)
    n_dense = sum(p.numel() for p in ref.parameters())
    n_fact = sum(p.numel() for p in reloaded.parameters())
    kinds = sorted({type(m).__name__ for m in reloaded.modules() if not list(m.children())})
    print(f"\n(c) {model_key}: lowrank tau {args.taus[-1]:g} at energy {args.energies[len(args.energies) // 2]:g}, "
          f"exported compact and reloaded ({', '.join(kinds)}); outputs equal the trained model: {same}")
    print(f"  parameters   dense {n_dense:>9,}   factorised {n_fact:>9,}   ({n_dense / n_fact:.2f}x)")
    print(f"  on disk      dense {dense.size_bytes:>9,} B (safetensors)   compact {compact.size_bytes:>9,} B "
          f"({dense.size_bytes / compact.size_bytes:.2f}x; accounting {compact.accounted_bytes:,.0f} B + "
          f"{compact.header_bytes} B header)")
    for batch, reps in ((1, args.latency_reps * 4), (256, args.latency_reps)):
        t = latency({"dense": ref.eval(), "factorised": reloaded}, data.test_x[:batch], reps)
        print(f"  CPU latency batch {batch:>3}: dense {1e3 * t['dense']:.3f} ms, factorised "
              f"{1e3 * t['factorised']:.3f} ms (speed-up {t['dense'] / t['factorised']:.2f}x)", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny subset and few steps: checks, not measures")
    ap.add_argument("--models", default="lenet300,lenet5")
    ap.add_argument("--taus", default="0.01,0.05")
    ap.add_argument("--energies", default="0.8,0.9,0.95")
    ap.add_argument("--group-lambdas", default="1e-4,3e-4",
                    help="sparse group Lasso lambdas (alpha 0.5) run with the first tau; empty: none")
    ap.add_argument("--energy-of", default="sigma", choices=("sigma", "sigma2"))
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--finetune", type=int, default=2)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--prox-every", type=int, default=DEFAULT_PROX_EVERY)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--latency-reps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--skip", default="", help="parts to skip, e.g. a,c")
    args = ap.parse_args()
    if args.quick:
        args.taus, args.energies, args.epochs, args.finetune = "0.05", "0.8,0.9", 1, 1
        args.rounds, args.steps, args.latency_reps = 2, args.prox_every, 10
    args.taus = [float(v) for v in args.taus.split(",")]
    args.energies = [float(v) for v in args.energies.split(",")]
    args.group_lambdas = [float(v) for v in args.group_lambdas.split(",") if v.strip()]
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads"
          f"{' (--quick: a tiny subset, for checking only)' if args.quick else ''}", flush=True)
    for model_key in args.models.split(","):
        ref, full = reference(model_key, args.quick)
        dataset = full.subset(3000, 1000, seed=0) if args.quick else full
        data = DeviceData(dataset, CPU)
        if "a" not in args.skip:
            part_a(model_key, ref, dataset if not args.quick else full.subset(args.steps * BATCH, 10), args)
        factored = part_b(model_key, ref, data, args) if "b" not in args.skip else None
        if "c" not in args.skip:
            part_c(model_key, ref, factored, data, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
