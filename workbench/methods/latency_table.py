"""A per-layer latency lookup table, measured on this machine, for structured pruning's latency target.

NetAdapt (Yang, Howard, Chen, Zhang, Go, Sandler, Sze, Adam, "NetAdapt: Platform-Aware Neural Network
Adaptation for Mobile Applications", ECCV 2018) predicts a network's latency as the sum of per-layer
latencies looked up in tables measured on the target platform, indexed by the layer's input and output
channel counts. Here, at the start of the stage:

* every call of a traced Linear / Conv layer (models/channel_groups.py `uses`) is timed alone, as a fresh
  layer of the same kind and geometry (kernel, stride, padding) on a random input of the shape it really
  gets, at a grid of kept channel counts: 100 %, 75 %, 50 %, 25 % and 1 channel of its outputs, times the
  same of its inputs (only along the sides pruning can change); a depthwise convolution by its channels,
  a grouped one (never thinned) once;
* each point is the median of `repeats` samples, taken round-robin over a layer's points, each sample
  long enough (several calls) to be above the timer's noise, in torch at the current thread count, on
  the model's device, at batch `batch`;
* the whole table has a time budget of a few seconds: every layer's full size is timed first; points the
  budget leaves unmeasured are the full-size time scaled by multiply-adds (and the log says how many);
* timings on a shared machine are noisy, so the table is made monotone (a cumulative maximum along both
  axes: fewer channels never predict more time) and read by bilinear interpolation between grid points,
  which keeps it monotone, so the selection's walk sees a predicted latency that only falls.

The prediction covers the conv and linear layers only (BatchNorm, activations and pooling are not timed),
so the target is a fraction of their summed latency. The timer is injectable (`build(..., timer=...)`):
tests give a deterministic one.
"""

from __future__ import annotations

import bisect
import math
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from workbench.models.channel_groups import ChannelAnalysis, LayerUse, in_size, out_size

GRID = (1.0, 0.75, 0.5, 0.25)
REPEATS = 5
BUDGET_S = 3.0
MIN_SAMPLE_S = 2e-4          # one sample lasts at least this long (several calls), above timer noise


@dataclass(frozen=True)
class LayerPoint:
    """One layer call at one kept (outputs, inputs) count: what a timer times."""
    name: str
    layer: nn.Module           # the model's layer (kind, geometry, dtype, device); the timer builds its own
    kind: str                  # "dense", "depthwise" or "fixed" (LayerUse.kind)
    input_shape: tuple         # the input of one call at full size, batch first
    out_kept: int
    in_kept: int               # for "depthwise": equal to out_kept
    macs: int                  # multiply-adds of the call at these counts, the whole batch

    def scaled_input(self) -> tuple:
        shape = list(self.input_shape)
        shape[-1 if isinstance(self.layer, nn.Linear) else 1] = self.in_kept * (
            self.layer.groups if self.kind == "fixed" and not isinstance(self.layer, nn.Linear) else 1)
        return tuple(shape)


Timer = Callable[[LayerPoint], float]        # one sample: seconds per call of the layer at that point


@dataclass
class UseTable:
    """Latency of one layer call at kept (outputs, inputs) counts, on an ascending grid."""
    outs: list[int]
    ins: list[int]
    values: list[list[float]]                # values[i][j]: outs[i] outputs, ins[j] inputs kept

    def monotone(self) -> None:
        v = self.values
        for i in range(len(self.outs)):
            for j in range(len(self.ins)):
                v[i][j] = max(v[i][j], v[i - 1][j] if i else 0.0, v[i][j - 1] if j else 0.0)

    def at(self, out_kept: int, in_kept: int) -> float:
        i, a = _segment(self.outs, out_kept)
        j, b = _segment(self.ins, in_kept)
        v = self.values
        i1, j1 = min(i + 1, len(self.outs) - 1), min(j + 1, len(self.ins) - 1)
        return ((1 - a) * ((1 - b) * v[i][j] + b * v[i][j1]) + a * ((1 - b) * v[i1][j] + b * v[i1][j1]))


def _segment(grid: list[int], x: float) -> tuple[int, float]:
    """Index of the grid interval holding x and the fraction of the way along it (clamped to the grid)."""
    if len(grid) == 1 or x <= grid[0]:
        return 0, 0.0
    if x >= grid[-1]:
        return len(grid) - 1, 0.0
    i = bisect.bisect_right(grid, x) - 1
    return i, (x - grid[i]) / (grid[i + 1] - grid[i])


@dataclass
class LatencyTable:
    analysis: ChannelAnalysis
    uses: list[UseTable]
    batch: int
    threads: int
    repeats: int
    device: str
    seconds: float = 0.0                     # how long measuring took
    measured: int = 0                        # points timed
    estimated: int = 0                       # points the budget left, scaled from full size by multiply-adds
    dense: float = field(init=False, default=0.0)

    def __post_init__(self):
        self.dense = self.predict()

    def predict(self, removed=(), counts: tuple[Counter, Counter] | None = None) -> float:
        """Predicted seconds per batch of the conv / linear layers with the given groups removed."""
        outs, ins = counts if counts is not None else self.analysis.removed_counts(removed)
        total = 0.0
        for use, table in zip(self.analysis.uses, self.uses):
            m = self.analysis.layers[use.name]
            o = out_size(m) - outs[use.name]
            total += table.at(o, o if use.kind == "depthwise" else in_size(m) - ins[use.name])
        return total

    def describe(self) -> str:
        points = self.measured + self.estimated
        cut = (f"; the {BUDGET_S:g} s budget left {self.estimated} of {points} points estimated from the "
               "full-size timing by multiply-adds" if self.estimated else "")
        return (f"latency table: {len(self.uses)} conv / linear layer calls timed alone at up to "
                f"{max((len(t.outs) * len(t.ins) for t in self.uses), default=0)} channel counts each "
                f"({self.measured} points) in {self.seconds:.2f} s on {self.device}, {self.threads} threads, "
                f"batch {self.batch}, median of {self.repeats} repeats{cut}; predicted dense latency "
                f"{format_seconds(self.dense)}")


def format_seconds(s: float) -> str:
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def grid_counts(n: int, varies: bool) -> list[int]:
    """Kept counts timed for a side of n channels: the grid's fractions and 1 channel, or n alone."""
    if not varies:
        return [n]
    return sorted({max(1, round(f * n)) for f in GRID} | {1})


def input_shapes(model: nn.Module, analysis: ChannelAnalysis, example: tuple, batch: int) -> list[tuple]:
    """The input shape of each layer call of `analysis.uses` on `example`, with batch `batch`."""
    seen: dict[str, list[tuple]] = {}
    handles = []
    for name, m in analysis.layers.items():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            def hook(mod, args, name=name):
                x = args[0]
                batched = x.dim() >= 2 if isinstance(mod, nn.Linear) else x.dim() == mod.weight.dim()
                seen.setdefault(name, []).append((batch, *(x.shape[1:] if batched else x.shape)))
            handles.append(m.register_forward_pre_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*example)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    calls: Counter = Counter()
    out = []
    for use in analysis.uses:
        out.append(seen[use.name][calls[use.name]])
        calls[use.name] += 1
    return out


def _point(use: LayerUse, m: nn.Module, shape: tuple, o: int, i: int, batch: int) -> LayerPoint:
    macs = batch * use.coef * (1 if use.kind == "fixed" else o if use.kind == "depthwise" else o * i)
    return LayerPoint(use.name, m, use.kind, shape, o, i, macs)


def build(model: nn.Module, analysis: ChannelAnalysis, example: tuple, *, batch: int = 1,
          timer: Timer | None = None, repeats: int = REPEATS, budget_s: float = BUDGET_S,
          check: Callable[[], None] = lambda: None) -> LatencyTable:
    """Measure the table (see the module's docstring); `check` runs between layers (cancellation)."""
    start = time.perf_counter()
    timer = timer or TorchTimer()
    shapes = input_shapes(model, analysis, example, batch)
    outs_vary = {m.name for g in analysis.groups for m in g.members if m.role == "out"}
    ins_vary = {m.name for g in analysis.groups for m in g.members if m.role == "in"}
    grids, tables = [], []
    for use, shape in zip(analysis.uses, shapes):
        m = analysis.layers[use.name]
        outs = grid_counts(out_size(m), use.kind != "fixed" and use.name in outs_vary)
        ins = [1] if use.kind == "depthwise" else grid_counts(in_size(m), use.kind == "dense" and use.name in ins_vary)
        points = {(a, b): _point(use, m, shape, o, o if use.kind == "depthwise" else i, batch)
                  for a, o in enumerate(outs) for b, i in enumerate(ins)}
        grids.append(points)
        tables.append(UseTable(outs, ins, [[math.nan] * len(ins) for _ in outs]))
    # every layer's full size first (the dense prediction never rests on an estimate)
    fulls = [(t, (len(t.outs) - 1, len(t.ins) - 1), g[len(t.outs) - 1, len(t.ins) - 1]) for t, g in zip(tables, grids)]
    _sample(fulls, timer, repeats, check)
    measured, estimated = len(tables), 0
    for points, table in zip(grids, tables):
        rest = [(table, key, p) for key, p in points.items() if key != (len(table.outs) - 1, len(table.ins) - 1)]
        if time.perf_counter() - start < budget_s:
            _sample(rest, timer, repeats, check)
            measured += len(rest)
        else:
            full = points[len(table.outs) - 1, len(table.ins) - 1]
            for t, (a, b), p in rest:
                t.values[a][b] = t.values[-1][-1] * p.macs / max(full.macs, 1)
            estimated += len(rest)
        table.monotone()
    device = str(next((p.device for p in model.parameters()), torch.device("cpu")))
    return LatencyTable(analysis, tables, batch, torch.get_num_threads(), repeats, device,
                        time.perf_counter() - start, measured, estimated)


def _sample(points: list, timer: Timer, repeats: int, check: Callable[[], None]) -> None:
    """Median of `repeats` samples per point, taken round-robin (one sample of each point per round), so
    a burst of load from another process spreads over the points instead of raising one of them."""
    samples: list[list[float]] = [[] for _ in points]
    for _ in range(repeats):
        check()
        for k, (_, _, p) in enumerate(points):
            samples[k].append(timer(p))
    for (table, (a, b), _), values in zip(points, samples):
        table.values[a][b] = max(statistics.median(values), 1e-12)


class TorchTimer:
    """One sample: a fresh layer of the point's kind and size on a random input (built, warmed up and
    sized on a point's first sample, then kept), called enough times to last MIN_SAMPLE_S; seconds per
    call."""

    def __init__(self, keep: int = 64):
        self.keep = keep
        self.ready: dict[LayerPoint, tuple] = {}

    @torch.no_grad()
    def __call__(self, p: LayerPoint) -> float:
        if p not in self.ready:
            if len(self.ready) >= self.keep:
                self.ready.pop(next(iter(self.ready)))
            self.ready[p] = self._prepare(p)
        layer, x, number, sync = self.ready[p]
        sync()
        t0 = time.perf_counter()
        for _ in range(number):
            layer(x)
        sync()
        return (time.perf_counter() - t0) / number

    @staticmethod
    def _prepare(p: LayerPoint) -> tuple:
        layer = _fresh(p)
        x = torch.randn(p.scaled_input(), dtype=p.layer.weight.dtype, device=p.layer.weight.device)
        sync = (lambda: torch.cuda.synchronize(x.device)) if x.device.type == "cuda" else (lambda: None)
        layer(x)                     # the first call sets up kernels: not timed
        sync()
        t0 = time.perf_counter()
        layer(x)
        sync()
        once = time.perf_counter() - t0
        return layer, x, max(1, min(1000, math.ceil(MIN_SAMPLE_S / max(once, 1e-9)))), sync


def _fresh(p: LayerPoint) -> nn.Module:
    m = p.layer
    kw = {"device": m.weight.device, "dtype": m.weight.dtype, "bias": m.bias is not None}
    if isinstance(m, nn.Linear):
        return nn.Linear(p.in_kept, p.out_kept, **kw)
    groups = m.groups if p.kind == "fixed" else p.out_kept if p.kind == "depthwise" else 1
    cls = type(m) if type(m) in (nn.Conv1d, nn.Conv2d) else (nn.Conv2d if m.weight.dim() == 4 else nn.Conv1d)
    return cls(p.in_kept * (m.groups if p.kind == "fixed" else 1) if p.kind != "depthwise" else p.out_kept,
               p.out_kept, m.kernel_size, stride=m.stride, padding=m.padding, dilation=m.dilation,
               groups=groups, padding_mode=m.padding_mode, **kw)
