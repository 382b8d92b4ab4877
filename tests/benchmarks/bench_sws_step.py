"""Per-step cost of soft weight-sharing against plain training, on LeNet-300-100 and LeNet-5.

    python tests/benchmarks/bench_sws_step.py [--models lenet300,lenet5] [--rounds 7] [--steps 20]
                                              [--threads N] [--budget 80]

Times full training steps (`workbench.engine.training.train_step`: forward, task loss, the method's
penalty, backward, Adam step) of plain training, SWS with the grid prior and SWS with the exact prior,
interleaving the variants round by round in one process, and prints the median milliseconds per step
and the ratio to plain training. Inputs are random tensors of MNIST's shape (batch 128 of 1x28x28, 10
classes) and the models are freshly initialised: a step's cost does not depend on the values, so no
data set or pretrained reference is needed. Times depend on the machine: run nothing else meanwhile (on a
loaded 2-core machine two intra-op threads wait on each other; --threads 1 is then the steadier measure).
The whole script stops timing further rounds once --budget seconds are spent.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import torch

from workbench.core import params as P
from workbench.core.config import TrainParams
from workbench.engine.training import optimizer_for, train_step
from workbench.methods import get_method
from workbench.methods.base import RunContext
from workbench.models import zoo

NUM_TRAIN = 60_000
BATCH = 128


def step_costs(model_key: str, rounds: int, steps: int, budget: float) -> tuple[dict[str, float], int]:
    """Median seconds per step of each variant, and the rounds counted (fewer once `budget` s is spent)."""
    torch.manual_seed(0)
    reference = zoo.build_model(model_key, (1, 28, 28), 10)
    x = torch.randn(steps * BATCH, 1, 28, 28)
    y = torch.randint(0, 10, (steps * BATCH,))
    train = P.build(TrainParams, {"optimizer": "adam", "lr": 5e-4})
    variants = {}
    for key, method_key, values in (("plain", "plain", {}),
                                    ("sws grid", "sws", {"prior_eval": "grid"}),
                                    ("sws exact", "sws", {"prior_eval": "exact"})):
        model = copy.deepcopy(reference)
        method = get_method(method_key).from_values(values)
        ctx = RunContext(device=torch.device("cpu"), steps_per_epoch=NUM_TRAIN // BATCH,
                         total_steps=10 * NUM_TRAIN // BATCH, num_train=NUM_TRAIN)
        method.prepare(model, ctx)
        model.train()
        variants[key] = (model, method, optimizer_for(model, method, train), ctx)
    times: dict[str, list[float]] = {key: [] for key in variants}
    started = time.perf_counter()
    for r in range(rounds + 1):                       # the first round warms up and is not counted
        if r >= 2 and time.perf_counter() - started > budget:
            break                                     # a loaded machine: report what was measured
        for key, (model, method, optimizer, ctx) in variants.items():
            n = max(2, steps // 4) if key == "sws exact" else steps     # exact is slow; fewer steps
            t0 = time.perf_counter()
            for i in range(n):
                train_step(model, method, optimizer, x[i * BATCH:(i + 1) * BATCH],
                           y[i * BATCH:(i + 1) * BATCH], ctx)
            times[key].append((time.perf_counter() - t0) / n)
    return {key: statistics.median(v[1:]) for key, v in times.items()}, len(times["plain"]) - 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="lenet300,lenet5")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--budget", type=float, default=80.0,
                    help="seconds for all models together; fewer rounds are timed once it is spent")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, random MNIST-shaped "
          "inputs, Adam", flush=True)
    models = args.models.split(",")
    for model_key in models:
        costs, counted = step_costs(model_key, args.rounds, args.steps, args.budget / len(models))
        base = costs["plain"]
        n = sum(p.numel() for p in zoo.build_model(model_key, (1, 28, 28), 10).parameters())
        print(f"\n{model_key} ({n:,} weights and biases under the prior, 17 components): median of "
              f"{counted} interleaved rounds, {torch.get_num_threads()} threads")
        for key, value in costs.items():
            print(f"  {key:<10}{1000 * value:9.3f} ms/step  {value / base:7.2f}x plain", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
