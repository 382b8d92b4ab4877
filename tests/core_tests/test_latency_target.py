"""Structured pruning's latency target (methods/latency_table.py, `target = latency`): with a fake,
deterministic timer the table predicts what it was given and the selection walks as the FLOP target
does; an expensive layer moves where the walk stops; noisy timings give a monotone table; the time budget falls
back to multiply-add scaling; the real timer gives positive times for every kind of layer; and a run
through the real loop logs how the table was measured and comes out smaller."""

from __future__ import annotations

import math

import core_helpers as H
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.core import params as P
from workbench.core.errors import ParamError
from workbench.core.events import Message
from workbench.engine.export import _rebuild
from workbench.methods import channel_select as sel
from workbench.methods import latency_table as lat
from workbench.methods.base import RunContext
from workbench.methods.structured import L1FilterPruning
from workbench.models import zoo
from workbench.models.channel_groups import analyse


class ThreeConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.conv3 = nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        x = F.relu(self.conv3(F.relu(self.conv2(F.relu(self.conv1(x))))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def by_macs(point: lat.LayerPoint) -> float:
    return point.macs * 1e-9


def conv2_expensive(point: lat.LayerPoint) -> float:
    return point.macs * 1e-9 * (50 if point.name == "conv2" else 1)


def _setup(model, x, timer, batch=1):
    a = analyse(model, (x,))
    return a, lat.build(model, a, (x,), batch=batch, timer=timer)


def _select(a, table, scope, target, min_keep=0.1):
    cost = None if table is None else (lambda outs, ins: table.predict(counts=(outs, ins)))
    dense = a.macs() if table is None else table.dense
    return sel.select(a, sel.l1_scores(a), sel.floors(a, min_keep, {}), scope=scope, budget=target * dense,
                      cost=cost)


def test_a_table_proportional_to_multiply_adds_predicts_them_and_selects_as_the_flops_target():
    torch.manual_seed(0)
    model = zoo.build_model("resnet20", (3, 8, 8), 4)
    x = torch.randn(2, 3, 8, 8)
    a, table = _setup(model, x, by_macs, batch=4)
    assert table.measured > len(a.uses) and table.estimated == 0
    # bilinear interpolation of a table bilinear in (outputs, inputs) is exact, between grid points too
    for removed in (set(), set(range(0, len(a.groups), 3)), set(range(0, len(a.groups), 2))):
        assert table.predict(removed) == pytest.approx(4e-9 * a.macs(removed), rel=1e-9)
    for scope in ("layer", "global"):
        chosen = _select(a, table, scope, 0.5)
        assert chosen == _select(a, None, scope, 0.5), scope
        assert table.predict(chosen) <= 0.5 * table.dense


def test_a_layer_that_dominates_the_latency_moves_where_the_walk_stops_not_the_ranking():
    """The walk is the FLOP target's: groups in score order (global) or one ratio for every family
    (per layer) until the prediction meets the budget. Which layer is expensive changes how far it goes,
    not which channels rank first."""
    torch.manual_seed(0)
    model, x = ThreeConv(), torch.randn(2, 3, 8, 8)
    a, cheap = _setup(model, x, by_macs)
    _, costly = _setup(model, x, conv2_expensive)
    assert costly.dense > 20 * cheap.dense
    # global: conv1's filters (3 x 3 x 3 weights) rank lowest; conv2 reads them, so with conv2 50x dearer
    # each one saves more of the total and fewer go
    flat, steep = _select(a, cheap, "global", 0.5), _select(a, costly, "global", 0.5)
    assert costly.predict(steep) <= 0.5 * costly.dense and cheap.predict(flat) <= 0.5 * cheap.dense
    assert a.removed_counts(steep)[1]["conv2"] < a.removed_counts(flat)[1]["conv2"]
    scores = sel.l1_scores(a)
    order = sorted(steep, key=lambda g: scores[g][0] / scores[g][1])
    assert costly.predict(set(order[:-1])) > 0.5 * costly.dense         # one group fewer would miss it
    # per layer: one ratio for every family, found by bisection, so each conv loses as many channels
    chosen = _select(a, costly, "layer", 0.5)
    outs, _ = a.removed_counts(chosen)
    assert costly.predict(chosen) <= 0.5 * costly.dense and outs["conv1"] == outs["conv2"] == outs["conv3"] > 0


def test_noisy_timings_give_a_monotone_table_and_the_budget_falls_back_to_multiply_adds():
    torch.manual_seed(0)
    model, x = ThreeConv(), torch.randn(2, 3, 8, 8)

    def noisy(point):          # deterministic noise of +-40 % around multiply-adds, as a busy machine gives
        return point.macs * (1 + 0.4 * math.sin(point.out_kept * 7.1 + point.in_kept * 3.3))

    a, table = _setup(model, x, noisy)
    for t in table.uses:
        for i in range(len(t.outs)):
            for j in range(len(t.ins)):
                assert t.values[i][j] > 0
                assert i == 0 or t.values[i][j] >= t.values[i - 1][j]
                assert j == 0 or t.values[i][j] >= t.values[i][j - 1]
    # interpolated between grid points it stays monotone: each group removed never raises the prediction
    order = sorted(range(len(a.groups)), key=lambda g: (g * 37) % len(a.groups))
    removed, last = set(), table.dense
    for g in order[: len(order) * 3 // 4]:
        removed.add(g)
        now = table.predict(removed)
        assert now <= last + 1e-12
        last = now
    # a burst of load from elsewhere (calls 3 to 9 a hundred times slower) spreads over the points, one
    # or two samples of each, so the medians do not see it
    count = [0]

    def burst(point):
        count[0] += 1
        return point.macs * (100 if 3 <= count[0] < 10 else 1)

    _, calm = _setup(model, x, lambda p: float(p.macs))
    _, hit = _setup(model, x, burst)
    assert [t.values for t in hit.uses] == [t.values for t in calm.uses]
    # no time left after the full sizes: the rest is the full-size time scaled by multiply-adds
    calls = []
    quick = lat.build(model, a, (x,), timer=lambda p: calls.append(p) or 2.0 * p.macs, budget_s=0.0)
    assert quick.measured == len(a.uses) and len(calls) == lat.REPEATS * len(a.uses) and quick.estimated > 0
    assert all((p.out_kept, p.in_kept) == (p.layer.weight.shape[0], p.layer.weight.shape[1] * p.layer.groups
                                          if isinstance(p.layer, nn.Conv2d) else p.layer.in_features)
               for p in calls)
    assert quick.predict(set(range(5))) == pytest.approx(2.0 * a.macs(set(range(5))), rel=1e-9)
    assert "estimated from the full-size timing" in quick.describe()


class Kinds(nn.Module):
    """A Conv1d, a depthwise and a grouped Conv2d, and a Linear over tokens called twice."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(1, 6, 3, padding=1)
        self.conv = nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.grouped = nn.Conv2d(8, 8, 1, groups=2)
        self.tok = nn.Linear(4, 4)
        self.fc = nn.Linear(8 + 6, 3)

    def forward(self, x):
        seq = self.c1(x.flatten(2)[:, :, :16]).mean(2)
        y = self.grouped(F.relu(self.dw(F.relu(self.conv(x)))))               # (n, 8, 4, 4)
        y = self.tok(self.tok(y))                                            # a Linear over the last axis, twice
        return self.fc(torch.cat([y.mean((2, 3)), seq], 1))


def test_the_real_timer_gives_positive_times_for_every_kind_of_layer():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)          # the machine's cores are shared: one thread keeps the test short
    try:
        for model, shape in ((zoo.build_model("bn_tiny", (1, 8, 8), 4), (1, 8, 8)), (Kinds(), (1, 8, 8))):
            x = torch.randn(2, *shape)
            a = analyse(model, (x,))
            table = lat.build(model, a, (x,), repeats=3, budget_s=2.0)
            assert table.threads == 1 and table.repeats == 3 and table.batch == 1
            assert {u.kind for u in a.uses} >= ({"dense", "depthwise", "fixed"} if isinstance(model, Kinds)
                                                else {"dense", "depthwise"})
            assert all(v > 0 for t in table.uses for row in t.values for v in row)
            assert table.dense > 0 and 0 < table.predict(set(range(len(a.groups)))) <= table.dense
    finally:
        torch.set_num_threads(previous)


def _ctx(log):
    return RunContext(device=torch.device("cpu"), steps_per_epoch=4, total_steps=8, num_train=512, log=log)


def test_the_method_prunes_to_the_predicted_latency_and_says_how_it_was_measured():
    torch.manual_seed(0)
    model = zoo.build_model("bn_tiny", (1, 8, 8), 4)
    method = L1FilterPruning(P.build(L1FilterPruning.Params, {"target": "latency", "latency_target": 0.4,
                                                              "latency_batch": 8, "scope": "global"}))
    method.latency_timer = by_macs
    logs: list[str] = []
    ctx = _ctx(logs.append)
    method.prepare(model, ctx)
    method.on_epoch_start(model, ctx)
    model.train()(torch.rand(8, 1, 8, 8))
    table = method.latency
    assert table.batch == 8 and table.threads == torch.get_num_threads()
    assert table.predict(method.removed) <= 0.4 * table.dense < table.predict(set())
    method.finalize(model, ctx)
    assert model.conv1.out_channels < 8 and model.fc.in_features == model.conv1.out_channels
    text = "\n".join(logs)
    assert "keep 0.4 of the latency at batch 8" in text
    assert f"{torch.get_num_threads()} threads, batch 8, median of 5 repeats" in text
    assert "predicted latency (batch 8" in text and "thinned: parameters" in text
    # a model without a removable channel: nothing is timed, nothing removed
    single, logs = nn.Sequential(nn.Flatten(), nn.Linear(64, 4)), []
    method = L1FilterPruning(P.build(L1FilterPruning.Params, {"target": "latency"}))
    method.latency_timer = by_macs
    method.prepare(single, _ctx(logs.append))
    method.on_epoch_start(single, _ctx(logs.append))
    single.train()(torch.rand(8, 1, 8, 8))
    method.finalize(single, _ctx(logs.append))
    assert method.latency is None and "no channel was removed" in logs[-1]
    with pytest.raises(ParamError, match="latency_target is 1"):
        P.build(L1FilterPruning.Params, {"target": "latency", "latency_target": 1.0})
    with pytest.raises(ParamError):
        P.build(L1FilterPruning.Params, {"latency_batch": 0})


def test_latency_target_through_the_run_loop_with_the_real_timer(tmp_path):
    config = H.make_config("l1filter", tmp_path / "runs", model="cnn_tiny", epochs=1,
                           params={"target": "latency", "latency_target": 0.5})
    events = H.run_events(config)
    fin = H.finished(events)
    assert fin.status == "completed", fin.error
    text = "\n".join(e.text for e in events if isinstance(e, Message))
    assert "latency table: 2 conv / linear layer calls timed alone" in text and "predicted latency" in text
    model, _, _ = _rebuild(fin.run_path)
    assert model.conv1.out_channels < 4
