"""The deployment measurement's `csr` form: pruned layers as torch.sparse CSR matmuls, where they pay.

A layer goes CSR only where it is faster so on this machine, for its own shape, at the deployment's batch
sizes and threads: `plan` times each candidate layer (plain Linear / Conv2d at density <= CSR_MAX_DENSITY)
dense against CSR, interleaved (each repeat times both, in alternating order), on random inputs of the
layer's input shape (the time of a dense or a CSR matmul does not depend on the values multiplied). Where
CSR starts to pay depends on the CPU, the shape and the batch: tests/benchmarks/bench_deploy.py measured
CSR beating dense below about 6-10 % density at batch 1 and about 18 % at batch 256 (1 thread), so one
fixed threshold would be wrong for most layers.

`choose`: a layer goes CSR when the geometric mean over the batch sizes of dense ms / CSR ms exceeds
MIN_GAIN: the CSR form is one file for every batch size, so a layer that wins at batch 256 and loses by as
much at batch 1 stays dense. The plan records each layer's density, its ratio at each batch and the choice.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
import warnings
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from workbench.core.events import CancelToken
from workbench.models import quantized

# Above half its entries, a CSR layer holds more bytes than the dense one (a 4-byte value and a 4-byte
# column index per nonzero) and does at least as many multiply-adds with scattered reads: never timed.
CSR_MAX_DENSITY = 0.5
MIN_GAIN = 1.0            # geometric mean of dense / CSR time above which a layer goes CSR
PLAN_REPEATS = 5          # interleaved samples of each of dense and CSR per layer and batch
PLAN_SAMPLE_S = 0.001     # one sample repeats a call until it lasts this long (timer resolution)
PLAN_MAX_CALLS = 50

Timer = Callable[[nn.Module, torch.Tensor], float]      # (layer, input) -> ms per call


class CsrLinear(nn.Module):
    """A Linear layer whose weight is a sparse CSR matrix (out x in, int32 indices): y = (W x^T)^T + b."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.register_buffer("weight", weight, persistent=False)
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        y = torch.sparse.mm(self.weight, flat.t()).t()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)


class CsrConv2d(nn.Module):
    """A Conv2d (groups 1, zero padding) as im2col (F.unfold) and one sparse CSR matmul per batch; the
    weight is the CSR matrix out x (C k k)."""

    def __init__(self, conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.out_channels = weight.shape[0]
        self.geometry = {"kernel_size": conv.kernel_size, "dilation": conv.dilation, "padding": conv.padding,
                         "stride": conv.stride}
        self.register_buffer("weight", weight, persistent=False)
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        cols = F.unfold(x, **self.geometry)                                   # (N, C k k, L)
        y = torch.sparse.mm(self.weight, cols.transpose(0, 1).reshape(cols.shape[1], -1))   # (O, N L)
        k, d, p, s = (self.geometry[key] for key in ("kernel_size", "dilation", "padding", "stride"))
        oh = (h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
        ow = (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
        y = y.reshape(self.out_channels, n, oh * ow).transpose(0, 1)
        if self.bias is not None:
            y = y + self.bias[:, None]
        return y.reshape(n, self.out_channels, oh, ow)


def csr_tensor(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape) -> torch.Tensor:
    with warnings.catch_warnings():    # torch warns that sparse CSR is beta on every construction
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, tuple(shape))


def to_csr(weight: torch.Tensor) -> torch.Tensor:
    """A 2-D weight as CSR with int32 indices (half the index bytes of torch's default int64)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        csr = weight.detach().to_sparse_csr()
    return csr_tensor(csr.crow_indices().int(), csr.col_indices().int(), csr.values(), csr.shape)


def matrix_shape(module: nn.Module) -> tuple[int, int]:
    """A layer's weight as the 2-D matrix its CSR form multiplies (conv: out x C k k)."""
    w = module.weight
    return w.shape[0], w[0].numel()


def csr_module(module: nn.Module) -> nn.Module:
    """The CSR version of a plain Linear / Conv2d (its weight and bias as they are)."""
    weight = to_csr(module.weight.detach().reshape(matrix_shape(module)))
    bias = module.bias.detach() if module.bias is not None else None
    return CsrLinear(weight, bias) if isinstance(module, nn.Linear) else CsrConv2d(module, weight, bias)


def csr_candidates(model: nn.Module) -> dict[str, float]:
    """Layer -> density of the plain Linear / Conv2d layers sparse enough to time as CSR. An int8 layer
    is left to the int8 form: as CSR it would compute without its input quantization, another model."""
    out = {}
    for name, m in model.named_modules():
        plain_conv = isinstance(m, nn.Conv2d) and m.groups == 1 and m.padding_mode == "zeros" \
            and not isinstance(m.padding, str)
        if (isinstance(m, nn.Linear) or plain_conv) and not quantized.is_quantized(m):
            density = float(torch.count_nonzero(m.weight)) / max(m.weight.numel(), 1)
            if density <= CSR_MAX_DENSITY:
                out[name] = density
    return out


def choose(ratios: dict) -> str:
    """"csr" when the geometric mean of dense ms / CSR ms over the batch sizes exceeds MIN_GAIN."""
    values = [r for r in ratios.values() if r and r > 0 and math.isfinite(r)]
    if not values:
        return "dense"
    return "csr" if math.exp(sum(map(math.log, values)) / len(values)) > MIN_GAIN else "dense"


def sample_ms(module: nn.Module, x: torch.Tensor) -> float:
    """Milliseconds per call: calls repeated until one sample lasts PLAN_SAMPLE_S (after a warm-up call)."""
    with torch.inference_mode():
        start = time.perf_counter()
        module(x)
        once = time.perf_counter() - start
        calls = max(1, min(PLAN_MAX_CALLS, math.ceil(PLAN_SAMPLE_S / max(once, 1e-9))))
        start = time.perf_counter()
        for _ in range(calls):
            module(x)
        return (time.perf_counter() - start) * 1000 / calls


def input_shapes(model: nn.Module, example: torch.Tensor, layers: Iterable[str]) -> dict[str, tuple]:
    """Each layer's input shape for one sample (a batch-1 forward of `example` with hooks)."""
    shapes, hooks, was_training = {}, [], model.training
    model.eval()                         # BatchNorm's running statistics stay as they are
    for name in layers:
        def hook(module, args, name=name):
            shapes[name] = tuple(args[0].shape[1:])
        hooks.append(model.get_submodule(name).register_forward_pre_hook(hook))
    try:
        with torch.inference_mode():
            model(example[:1])
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return shapes


def plan(model: nn.Module, example: torch.Tensor, batches: Iterable[int], *, timer: Timer | None = None,
         repeats: int = PLAN_REPEATS, cancel: CancelToken | None = None,
         progress: Callable[[str], None] | None = None) -> dict[str, dict]:
    """{layer: {"density", "ratio": {str(batch): dense ms / CSR ms}, "form": "csr" | "dense"}} for every
    CSR candidate of `model` (in evaluation mode), at the caller's torch threads. `example`: a batch of
    the model's input (its first sample gives each layer's input shape); `timer`: sample_ms, looked up
    when called (tests put fake timings in its place)."""
    timer = timer or sample_ms
    candidates = csr_candidates(model)
    if not candidates:
        return {}
    shapes = input_shapes(model, example, candidates)
    gen = torch.Generator().manual_seed(0)
    out = {}
    for name, density in candidates.items():
        if cancel is not None:
            cancel.check()
        if name not in shapes:          # a layer the forward never calls: nothing to gain or lose
            continue
        dense = copy.deepcopy(model.get_submodule(name)).eval()
        sparse = csr_module(dense).eval()
        ratios = {}
        for b in batches:
            x = torch.randn((b, *shapes[name]), generator=gen)
            times: dict[str, list[float]] = {"dense": [], "csr": []}
            for r in range(repeats):
                pair = (("dense", dense), ("csr", sparse))
                for kind, module in pair if r % 2 == 0 else pair[::-1]:
                    times[kind].append(timer(module, x))
            dense_ms, csr_ms = statistics.median(times["dense"]), statistics.median(times["csr"])
            ratios[str(b)] = dense_ms / csr_ms if csr_ms > 0 else float("nan")
        out[name] = {"density": density, "ratio": ratios, "form": choose(ratios)}
        if progress is not None:
            progress(f"timed {name} dense against CSR: {out[name]['form']}")
    return out

