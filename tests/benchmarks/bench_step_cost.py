"""Per-step cost of the pruning methods against plain training and against `torch.nn.utils.prune`.

    python tests/benchmarks/bench_step_cost.py [--model lenet300] [--rounds 9] [--steps 20] [--threads 1]

Times full training steps (`workbench.engine.training.train_step`: forward, loss, backward, SGD step,
the method's after_step hook) of four variants, interleaved round by round in one process, and prints
the median milliseconds per step and the ratio to plain training:

- plain: no method;
- magnitude: Han 2015 after its first prune (masks re-applied after every optimizer step);
- dns: Dynamic Network Surgery early in a stage, where the paper's update probability
  (1 + gamma t)^-power is still about 1, so the masks are updated nearly every step (its costliest phase);
- torch prune: `torch.nn.utils.prune.l1_unstructured` at the same sparsity, the peer: a forward
  pre-hook that multiplies weight_orig by the mask before every forward.

Inputs are random tensors of MNIST's shape (batch 128): a step's cost does not depend on the values.
Run nothing else meanwhile; --threads 1 is the steadier measure on a shared machine.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import torch
from torch.nn.utils import prune

from workbench.core import params as P
from workbench.core.config import TrainParams
from workbench.engine.training import optimizer_for, train_step
from workbench.methods import get_method
from workbench.methods.base import RunContext
from workbench.models import zoo
from workbench.models.layers import compressible_layers

NUM_TRAIN = 60_000
BATCH = 128


def _context() -> RunContext:
    return RunContext(device=torch.device("cpu"), steps_per_epoch=NUM_TRAIN // BATCH,
                      total_steps=10 * NUM_TRAIN // BATCH, num_train=NUM_TRAIN)


def variants(model_key: str, sparsity: float) -> dict:
    torch.manual_seed(0)
    reference = zoo.build_model(model_key, (1, 28, 28), 10)
    train = P.build(TrainParams, {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4})
    out = {}
    for key, method_key in (("plain", "plain"), ("magnitude", "magnitude"), ("dns", "dns"),
                            ("torch prune", "plain")):
        model = copy.deepcopy(reference)
        method = get_method(method_key).from_values({"iterations": 1} if key == "magnitude" else {})
        ctx = _context()
        method.prepare(model, ctx)
        if key == "magnitude":
            ctx.epoch = 0
            method.on_epoch_start(model, ctx)          # the first prune: masks now hold zeros
        if key == "torch prune":
            for _, module in compressible_layers(model):
                prune.l1_unstructured(module, "weight", amount=sparsity)
        model.train()
        out[key] = (model, method, optimizer_for(model, method, train), ctx)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="lenet300")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sparsity", type=float, default=0.6, help="torch prune's pruned share")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(args.steps * BATCH, 1, 28, 28)
    y = torch.randint(0, 10, (args.steps * BATCH,))
    runs = variants(args.model, args.sparsity)
    times: dict[str, list[float]] = {key: [] for key in runs}
    for r in range(args.rounds + 1):                    # round 0 warms up and is not counted
        for key, (model, method, optimizer, ctx) in runs.items():
            t0 = time.perf_counter()
            for i in range(args.steps):
                train_step(model, method, optimizer, x[i * BATCH:(i + 1) * BATCH], y[i * BATCH:(i + 1) * BATCH], ctx)
            if r:
                times[key].append((time.perf_counter() - t0) / args.steps)
    base = statistics.median(times["plain"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.model}, batch {BATCH}, SGD "
          f"momentum 0.9; median of {args.rounds} interleaved rounds of {args.steps} steps")
    for key, values in times.items():
        med = statistics.median(values)
        print(f"  {key:<12}{1000 * med:8.3f} ms/step  {med / base:6.3f}x plain")
    return 0


if __name__ == "__main__":
    sys.exit(main())
