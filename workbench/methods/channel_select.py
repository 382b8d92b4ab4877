"""Which coupled channel groups (models/channel_groups.py) structured pruning removes: scores, per-layer
limits and the target, a fraction of the channels or a budget of multiply-adds or of predicted latency.

* Scores. L1-norm filter pruning (Li et al. 2017) scores a group by the L1 norms of its members' filters
  (weight rows: conv filters, fc units), network slimming (Liu et al. 2017) by its members' |BatchNorm
  scale|; a group's score is the sum over its members.
* Scope. "layer": groups are ranked among their family (the same coupled layers, e.g. channel k of every
  convolution feeding one residual stream), the ratio applies per family, as Li et al. prune each layer
  by its own ratio. "global": one ranking over all groups, as slimming's global threshold; groups of
  different families have different numbers of members, so they are compared by the mean over members
  (within a family the mean orders as the sum does).
* Limits. A layer keeps at least max(1, ceil(min_keep x its outputs)) outputs (`floors`); a group whose
  removal would take a layer below that stays.
* Target. A ratio removes that fraction of the groups (per family or overall); a budget removes groups
  until the model's cost is within it: lowest scores first (global), or the smallest common ratio that
  meets it (per layer, by bisection). The cost is the conv and linear layers' multiply-adds per sample,
  or any other function of the channels removed per layer that falls as channels go (the predicted
  latency of methods/latency_table.py); the walk is the same. Groups removed by an earlier step of an
  iterative schedule stay removed.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Callable

import torch

from workbench.models.channel_groups import ChannelAnalysis, out_size


@torch.no_grad()
def l1_scores(analysis: ChannelAnalysis) -> list[tuple[float, int] | None]:
    """(sum of the members' filter L1 norms, members) per group."""
    norms = {name: m.weight.detach().abs().reshape(m.weight.shape[0], -1).sum(1).cpu()
             for name, m in analysis.layers.items() if not _is_norm(m)}
    out = []
    for g in analysis.groups:
        rows = [float(norms[m.name][m.index]) for m in g.members if m.role == "out"]
        out.append((sum(rows), len(rows)))
    return out


@torch.no_grad()
def bn_scores(analysis: ChannelAnalysis) -> list[tuple[float, int] | None]:
    """(sum of the members' |BatchNorm scale|, members) per group; None for a group without BatchNorm."""
    scales = {name: m.weight.detach().abs().cpu() for name, m in analysis.layers.items()
              if _is_norm(m) and m.affine}
    out = []
    for g in analysis.groups:
        values = [float(scales[m.name][m.index]) for m in g.members if m.role == "bn" and m.name in scales]
        out.append((sum(values), len(values)) if values else None)
    return out


def _is_norm(m) -> bool:
    return hasattr(m, "num_features")


def floors(analysis: ChannelAnalysis, min_keep: float, keep_layers: dict) -> dict[str, int]:
    """Fewest outputs each layer keeps: max(1, ceil(fraction x outputs)), the fraction per layer from
    `keep_layers` else `min_keep`."""
    return {name: max(1, math.ceil(keep_layers.get(name, min_keep) * out_size(m) - 1e-9))
            for name, m in analysis.layers.items() if not _is_norm(m)}


Cost = Callable[[Counter, Counter], float]      # (outputs removed, input columns removed) per layer -> cost


class _Removal:
    """Groups removed so far and what they take from each layer."""

    def __init__(self, analysis: ChannelAnalysis, floor: dict[str, int], cost: Cost | None = None):
        self.analysis, self.floor = analysis, floor
        self.cost_of = cost or (lambda outs, ins: analysis.macs(counts=(outs, ins)))
        self.removed: set[int] = set()
        self.outs, self.ins = Counter(), Counter()

    def allowed(self, gid: int) -> bool:
        for name, n in self.analysis.groups[gid].producers().items():
            if out_size(self.analysis.layers[name]) - self.outs[name] - n < self.floor.get(name, 1):
                return False
        return True

    def remove(self, gid: int) -> None:
        self.removed.add(gid)
        for m in self.analysis.groups[gid].members:
            if m.role in ("out", "in"):
                (self.outs if m.role == "out" else self.ins)[m.name] += 1

    def cost(self) -> float:
        return self.cost_of(self.outs, self.ins)


def select(analysis: ChannelAnalysis, scores: list, floor: dict[str, int], *, scope: str,
           ratio: float | None = None, budget: float | None = None, cost: Cost | None = None,
           keep_removed=()) -> set[int]:
    """The groups to remove (see the module's docstring); `scores[g]` is (sum, members) or None (the
    group is not a candidate); `budget` bounds `cost` (default: multiply-adds per sample), which must not
    rise as groups go; `keep_removed` are removed first whatever their scores."""
    candidates = [g for g, s in enumerate(scores) if s is not None]
    forced = set(keep_removed)

    def key(g):            # earlier removals first, then the lowest score
        total, members = scores[g]
        return (g not in forced, total / members if scope == "global" else total, g)

    if scope == "global":
        order = sorted(candidates, key=key)
        if ratio is not None:
            return _take(analysis, floor, order, forced, quota=round(ratio * len(order))).removed
        return _take(analysis, floor, order, forced, budget=budget, state=_Removal(analysis, floor, cost)).removed
    families: dict[tuple, list[int]] = defaultdict(list)
    for g in candidates:
        families[analysis.groups[g].family()].append(g)
    orders = [sorted(members, key=key) for members in families.values()]

    def per_family(r: float) -> _Removal:
        state = _Removal(analysis, floor, cost)
        for order in orders:
            _take(analysis, floor, order, forced, quota=round(r * len(order)), state=state)
        return state

    if ratio is not None:
        return per_family(ratio).removed
    if per_family(1.0).cost() > budget:          # out of reach within the limits: go as far as they allow
        return per_family(1.0).removed
    lo, hi = 0.0, 1.0
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if per_family(mid).cost() <= budget else (mid, hi)
    return per_family(hi).removed


def _take(analysis, floor, order: list[int], forced: set[int], *, quota: int | None = None,
          budget: float | None = None, state: _Removal | None = None) -> _Removal:
    state = state or _Removal(analysis, floor)
    taken = 0
    for g in order:
        if g in forced:
            state.remove(g)
            taken += 1
            continue
        if quota is not None and taken >= quota:
            break
        if budget is not None and state.cost() <= budget:
            break
        if state.allowed(g):
            state.remove(g)
            taken += 1
    return state


def prune_points(epochs: int, steps: int, start: float, span: float) -> list[tuple[int, float]]:
    """(epoch, fraction of the final target reached) of each prune: `steps` prunes spread evenly over
    `span` of the epochs, from `start` of them on; prunes that fall on one epoch are one."""
    first = min(math.floor(epochs * start + 0.5), epochs - 1)
    width = max(math.floor(epochs * span + 0.5), 1)
    points: dict[int, float] = {}
    for i in range(steps):
        points[min(first + (i * width) // steps, epochs - 1)] = (i + 1) / steps
    return sorted(points.items())
