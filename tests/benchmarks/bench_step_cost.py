"""Per-step cost of the pruning methods against plain training and against `torch.nn.utils.prune`.

    python tests/benchmarks/bench_step_cost.py [--model lenet300] [--rounds 9] [--steps 20] [--threads 1]
                                               [--fallback]

Times full training steps (`workbench.engine.training.train_step`: forward, loss, backward, SGD step,
the method's after_step hook) of the variants below, interleaved round by round in one process, and
prints the median of the steps' times (each step timed; the median, not the mean, so a step another
process preempted does not count) and the ratio to plain training, by the wall clock and by the
thread's CPU time (on a shared machine the CPU time is the steadier: time spent waiting for a core that
another process holds is not counted; what it still feels is others' use of the shared caches):

- plain: no method;
- magnitude: Han 2015 after its first prune (masks re-applied after every optimizer step);
- dns: Dynamic Network Surgery early in a stage, where the paper's update probability
  (1 + gamma t)^-power is still about 1, so the masks are updated nearly every step (its costliest phase);
- dns (before): DNS as it was before its mask update wrote W ⊙ T (commit 10b77ab): float masks, a forward
  pre-hook per masked tensor computing W ⊙ T with a straight-through autograd function, and the native
  mask update of then (its C source is copied here) called once per tensor; rebuilt here so the two are
  measured side by side in one process;
- dns (torch rule), with --fallback: DNS with WORKBENCH_NATIVE=torch (the PyTorch path, no C kernel);
- torch prune: `torch.nn.utils.prune.l1_unstructured` at the same sparsity, the peer: a forward
  pre-hook that multiplies weight_orig by the mask before every forward.

Inputs are random tensors of MNIST's shape (batch 128): a step's cost does not depend on the values.
Run nothing else meanwhile; --threads 1 is the steadier measure on a shared machine.
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import os
import statistics
import sys
import time

import torch
from torch import nn
from torch.nn.utils import prune

from workbench.core import params as P
from workbench.core.config import TrainParams
from workbench.engine.training import optimizer_for, train_step
from workbench.methods import get_method, mask_update
from workbench.methods.base import RunContext
from workbench.models import native, zoo
from workbench.models.layers import compressible_layers

NUM_TRAIN = 60_000
BATCH = 128


def _context() -> RunContext:
    return RunContext(device=torch.device("cpu"), steps_per_epoch=NUM_TRAIN // BATCH,
                      total_steps=10 * NUM_TRAIN // BATCH, num_train=NUM_TRAIN)


class _StraightThroughMask(torch.autograd.Function):
    """The previous DNS forward: W ⊙ T computed before every forward, the gradient passed to all of W."""

    @staticmethod
    def forward(ctx, weight, mask):
        return weight * mask

    @staticmethod
    def backward(ctx, grad):
        return grad, None


# The native mask update as it was (commit 10b77ab): float masks, one call per tensor, no W ⊙ T written.
PREVIOUS_SOURCE = r"""
#include <stdint.h>
#include <math.h>
void dns_update(const float *w, float *mask, int64_t n, float a, float b, int64_t *counts) {
    int64_t changed = 0, gained = 0;
    #pragma omp simd reduction(+:changed,gained)
    for (int64_t i = 0; i < n; i++) {
        float x = fabsf(w[i]);
        int k = mask[i] != 0.0f;
        int t = (x >= b) | (k & (x >= a));
        changed += t ^ k;
        gained += t - k;
        mask[i] = (float)t;
    }
    counts[0] += changed;
    counts[1] += gained;
}
"""


def _previous_kernel():
    path = native.build(PREVIOUS_SOURCE, "bench-dns-previous")
    if path is None:
        raise SystemExit(f"cannot build the previous kernel: {native.last_error()}")
    fn = ctypes.CDLL(str(path)).dns_update
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_float,
                   ctypes.c_void_p]
    fn.restype = None
    return fn


class PreviousDNS:
    """DNS's step before the fused update (commit 10b77ab): float masks, a pre-hook per masked tensor
    computing W ⊙ T, eq. (3) by the native kernel of then, called once per tensor. Masks and thresholds
    are taken from a prepared DNS (its byte masks become float buffers), so both start from the same state."""

    def __init__(self, model: nn.Module, prepared):
        self.prepared = prepared
        self.kernel = _previous_kernel()
        self.pairs = []                          # (W, T, a, b, counts)
        for name, module in prepared.layers.items():
            module._forward_pre_hooks.clear()    # the fused path's hook, replaced by the old one per tensor
            for n in prepared.names:
                if not hasattr(module, n + "_orig"):
                    continue
                module._buffers[n + "_mask"] = module._buffers[n + "_mask"].float()
                module.register_forward_pre_hook(
                    lambda mod, _, n=n: setattr(mod, n, _StraightThroughMask.apply(getattr(mod, n + "_orig"),
                                                                                   getattr(mod, n + "_mask"))))
                self.pairs.append((getattr(module, n + "_orig"), getattr(module, n + "_mask"),
                                   *prepared.bounds[name], prepared._flips[name]))

    def param_groups(self, model):
        return None

    def penalty(self, model, ctx):
        return None

    def after_step(self, model, ctx) -> None:
        p = self.prepared.params
        t = ctx.step
        if t >= p.t_stop:
            return
        if torch.rand((), generator=ctx.generator).item() >= (1.0 + p.gamma * t) ** (-p.power):
            return
        with torch.no_grad():
            for weight, mask, a, b, counts in self.pairs:
                if os.environ.get("WORKBENCH_NATIVE", "").lower() == "torch":    # as the previous code checked
                    mask_update.update(weight, mask, a, b, counts)
                else:
                    self.kernel(weight.data_ptr(), mask.data_ptr(), weight.numel(), a, b, counts.data_ptr())


def variants(model_key: str, sparsity: float, fallback: bool = False, dns_c: float = 3.0) -> dict:
    """key -> (model, method, optimizer, ctx, environment while it runs)."""
    torch.manual_seed(0)
    reference = zoo.build_model(model_key, (1, 28, 28), 10)
    train = P.build(TrainParams, {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4})
    keys = [("plain", "plain"), ("magnitude", "magnitude"), ("dns", "dns"), ("dns (before)", "dns")]
    if fallback:
        keys.append(("dns (torch rule)", "dns"))
    keys.append(("torch prune", "plain"))
    out = {}
    for key, method_key in keys:
        model = copy.deepcopy(reference)
        values = {"iterations": 1} if key == "magnitude" else {"c_rate": dns_c} if method_key == "dns" else {}
        method = get_method(method_key).from_values(values)
        ctx = _context()
        method.prepare(model, ctx)
        if key == "magnitude":
            ctx.epoch = 0
            method.on_epoch_start(model, ctx)          # the first prune: masks now hold zeros
        if key == "dns (before)":
            method = PreviousDNS(model, method)
        if key == "torch prune":
            for _, module in compressible_layers(model):
                prune.l1_unstructured(module, "weight", amount=sparsity)
        model.train()
        env = {"WORKBENCH_NATIVE": "torch"} if key == "dns (torch rule)" else {}
        out[key] = (model, method, optimizer_for(model, method, train), ctx, env)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="lenet300")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sparsity", type=float, default=0.6, help="torch prune's pruned share")
    ap.add_argument("--fallback", action="store_true", help="also time DNS on its PyTorch path")
    ap.add_argument("--dns-c", type=float, default=3.0,
                    help="DNS's c (default 3, the reference's: on the untrained net it prunes nearly all of "
                         "fc1; 0 prunes about half, nearer torch prune's share)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(args.steps * BATCH, 1, 28, 28)
    y = torch.randint(0, 10, (args.steps * BATCH,))
    runs = variants(args.model, args.sparsity, args.fallback, args.dns_c)
    wall: dict[str, list[float]] = {key: [] for key in runs}
    cpu: dict[str, list[float]] = {key: [] for key in runs}
    for r in range(args.rounds + 1):                    # round 0 warms up and is not counted
        for key, (model, method, optimizer, ctx, env) in runs.items():
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            for i in range(args.steps):
                t0, c0 = time.perf_counter(), time.thread_time()
                train_step(model, method, optimizer, x[i * BATCH:(i + 1) * BATCH], y[i * BATCH:(i + 1) * BATCH], ctx)
                t1, c1 = time.perf_counter(), time.thread_time()
                if r:
                    wall[key].append(t1 - t0)
                    cpu[key].append(c1 - c0)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    base, base_cpu = statistics.median(wall["plain"]), statistics.median(cpu["plain"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.model}, batch {BATCH}, SGD "
          f"momentum 0.9; median step of {args.rounds} interleaved rounds of {args.steps} steps; "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"  {'':<18}{'wall ms/step':>13}{'ratio':>8}{'cpu ms/step':>13}{'ratio':>8}")
    for key in runs:
        med, med_cpu = statistics.median(wall[key]), statistics.median(cpu[key])
        print(f"  {key:<18}{1000 * med:13.3f}{med / base:7.3f}x{1000 * med_cpu:13.3f}{med_cpu / base_cpu:7.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
