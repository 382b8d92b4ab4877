"""Magnitude pruning (Han 2015) semantics on hand-made tensors, calling the method's hooks directly.

The test weight has mean 0 and sum of squares 1+1+9+9+0.25+0.25+16+16 = 52.5 over 8 entries, so
std = sqrt(52.5 / 7) = 2.7386 (unbiased; 2.5617 with 1/n). Every threshold below is chosen so that both
conventions classify each weight the same way.
"""

from __future__ import annotations

import math

import core_helpers as H
import pytest
import torch
from torch import nn

from workbench.core import params as P
from workbench.core.config import TrainParams
from workbench.core.errors import ParamError
from workbench.engine.training import build_optimizer
from workbench.methods.magnitude import MagnitudePruning

W0 = [[1.0, -1.0, 3.0, -3.0],
      [0.5, -0.5, 4.0, -4.0]]
STD = math.sqrt(52.5 / 7)


class Net(nn.Module):
    def __init__(self, weight=W0, bias=(0.01, -0.01)):
        super().__init__()
        w = torch.tensor(weight)
        self.fc = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            self.fc.weight.copy_(w)
            self.fc.bias.copy_(torch.tensor(bias))

    def forward(self, x):
        return self.fc(x)


def kept(net):
    return (net.fc.weight != 0).int().tolist()


@pytest.mark.parametrize("q, expected", [
    (0.3, [[1, 1, 1, 1], [0, 0, 1, 1]]),     # thr 0.82: prunes +-0.5
    (1.0, [[0, 0, 1, 1], [0, 0, 1, 1]]),     # thr 2.74: prunes +-0.5, +-1
    (1.2, [[0, 0, 0, 0], [0, 0, 1, 1]]),     # thr 3.29: prunes +-3 too
])
def test_single_prune_threshold_is_q_times_std(q, expected):
    net = Net()
    m = MagnitudePruning.from_values({"q_fc": q, "iterations": 1})
    c = H.run_context(epochs=1)
    m.prepare(net, c)
    c.epoch = 0
    m.on_epoch_start(net, c)
    assert kept(net) == expected
    # kept weights are untouched, biases are not pruned by default (Han 2015 prunes weights only)
    w = torch.tensor(W0)
    assert torch.equal(net.fc.weight.detach(), w * torch.tensor(expected))
    assert torch.equal(net.fc.bias.detach(), torch.tensor([0.01, -0.01]))


def test_std_is_taken_at_the_start_of_the_stage():
    net = Net()
    m = MagnitudePruning.from_values({"q_fc": 1.0, "iterations": 1, "std_at": "start"})
    c = H.run_context(epochs=1)
    m.prepare(net, c)
    with torch.no_grad():
        net.fc.weight.mul_(10)          # training moved the weights after prepare
    c.epoch = 0
    m.on_epoch_start(net, c)
    # threshold stays 1 x 2.74 (from prepare); a recomputed std (27.4) would prune 5 and 10
    assert kept(net) == [[1, 1, 1, 1], [1, 1, 1, 1]]


def test_std_at_prune_follows_the_weights():
    net = Net()
    m = MagnitudePruning.from_values({"q_fc": 1.0, "iterations": 1})
    assert m.params.std_at == "prune"
    c = H.run_context(epochs=1)
    m.prepare(net, c)
    with torch.no_grad():
        net.fc.weight.mul_(10)          # e.g. weights grown (or, with weight decay, shrunk) since prepare
    c.epoch = 0
    m.on_epoch_start(net, c)
    # std of the scaled tensor is 27.4: the same weights as before scaling are pruned (|w| 5 and 10)
    assert kept(net) == [[0, 0, 1, 1], [0, 0, 1, 1]]


def test_std_at_prune_counts_pruned_zeros():
    # second cycle: std over the whole tensor [[0,0,0,0],[0,0,4,-4]] (zeros included) = sqrt(32/7) = 2.14
    net = Net()
    m = MagnitudePruning.from_values({"q_fc": 2.4, "iterations": 2})
    c = H.run_context(epochs=2)
    m.prepare(net, c)
    c.epoch = 0
    m.on_epoch_start(net, c)            # 1.2 x 2.74 = 3.29: keeps +-4 only
    assert kept(net) == [[0, 0, 0, 0], [0, 0, 1, 1]]
    std = net.fc.weight.detach().std().item()
    assert std == pytest.approx(math.sqrt(32 / 7))
    c.epoch = 1
    m.on_epoch_start(net, c)            # 2.4 x 2.14 = 5.13 > 4: prunes the rest
    assert kept(net) == [[0, 0, 0, 0], [0, 0, 0, 0]]


def test_iterative_schedule_prunes_at_the_right_epochs_with_growing_thresholds():
    net = Net()
    # 4 epochs, 2 cycles: prune at epochs 0 and 2 with thresholds 1.2*1/2*std = 1.64 and 1.2*std = 3.29
    m = MagnitudePruning.from_values({"q_fc": 1.2, "iterations": 2, "std_at": "start"})
    c = H.run_context(epochs=4, steps_per_epoch=3)
    m.prepare(net, c)
    history = []
    for epoch in range(4):
        c.epoch = epoch
        m.on_epoch_start(net, c)
        history.append(kept(net))
        if epoch == 0:
            with torch.no_grad():
                net.fc.weight[1, 2] = 0.001     # a kept weight shrinks: not pruned before the next cycle
    assert history[0] == [[0, 0, 1, 1], [0, 0, 1, 1]]       # below 1.64: +-0.5, +-1
    assert history[1] == [[0, 0, 1, 1], [0, 0, 1, 1]]       # epoch 1: no pruning (0.001 survives)
    assert net.fc.weight[1, 2] == 0 and history[2] == [[0, 0, 0, 0], [0, 0, 0, 1]]   # below 3.29
    assert history[3] == history[2]


def test_fewer_epochs_than_cycles_still_reaches_the_final_q():
    # The contract runs use 2 epochs with the default 3 cycles: prune at epochs 0 and 1, the last at q.
    net = Net()
    m = MagnitudePruning.from_values({"q_fc": 1.2, "std_at": "start"})
    assert m.params.iterations == 3
    c = H.run_context(epochs=2, steps_per_epoch=4)
    m.prepare(net, c)
    c.epoch = 0
    m.on_epoch_start(net, c)
    assert kept(net) == [[0, 0, 1, 1], [0, 0, 1, 1]]        # 0.6 * std = 1.64
    c.epoch = 1
    m.on_epoch_start(net, c)
    assert kept(net) == [[0, 0, 0, 0], [0, 0, 1, 1]]        # 1.2 * std = 3.29


def _train(net, m, optimizer, x, y, steps, hook=True):
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
        if hook:
            m.after_step(net, None)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_masked_weights_stay_zero_under_momentum_and_weight_decay(optimizer):
    def setup():
        torch.manual_seed(0)
        net = nn.Sequential()
        net.fc = nn.Linear(8, 5)
        train = P.build(TrainParams, {"optimizer": optimizer, "lr": 0.05, "momentum": 0.9,
                                      "nesterov": True, "weight_decay": 0.05})
        opt = build_optimizer(train, [{"params": list(net.parameters())}])
        return net, opt

    x, y = torch.randn(32, 8, generator=torch.Generator().manual_seed(1)), torch.arange(32) % 5
    results = []
    for hook in (True, False):
        net, opt = setup()
        m = MagnitudePruning.from_values({"q_fc": 1.0, "iterations": 1})
        _train(net, m, opt, x, y, 3, hook=False)          # momentum buffers fill up first
        c = H.run_context(epochs=1)
        m.prepare(net, c)
        c.epoch = 0
        m.on_epoch_start(net, c)
        pruned = net.fc.weight.detach() == 0
        before = net.fc.weight.detach().clone()
        _train(net, m, opt, x, y, 5, hook=hook)
        results.append((pruned, before, net.fc.weight.detach().clone()))
    (pruned, before, after), (pruned_c, _, after_c) = results
    assert 5 < int(pruned.sum()) < 35
    assert torch.all(after[pruned] == 0)                   # exactly zero, step after step
    assert torch.all(after[~pruned] != before[~pruned])    # the kept weights did train
    # control: without the re-applied mask, momentum/decay/gradients revive the pruned weights
    assert torch.equal(pruned, pruned_c)
    assert torch.all(after_c[pruned_c] != 0)


def test_q_layers_override_and_conv_q():
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 2)
            self.fc = nn.Linear(4, 2)
            with torch.no_grad():
                self.conv.weight.copy_(torch.tensor(W0).reshape(2, 1, 2, 2))
                self.fc.weight.copy_(torch.tensor(W0).T.reshape(2, 4))

    net = Mixed()
    # conv: q_conv = 0.3 -> threshold 0.82; fc: q_fc = 1 overridden by q_layers fc = 1.2 -> 3.29
    m = MagnitudePruning.from_values({"q_fc": 1.0, "q_conv": 0.3, "q_layers": "fc=1.2", "iterations": 1})
    c = H.run_context(epochs=1)
    m.prepare(net, c)
    m.on_epoch_start(net, c)
    assert int((net.conv.weight == 0).sum()) == 2            # +-0.5
    assert sorted(net.fc.weight.abs()[net.fc.weight != 0].tolist()) == [4.0, 4.0]


def test_prune_bias_uses_the_layer_threshold():
    net = Net()
    m = MagnitudePruning.from_values({"q_fc": 1.0, "iterations": 1, "prune_bias": True})
    c = H.run_context(epochs=1)
    m.prepare(net, c)
    m.on_epoch_start(net, c)
    assert torch.equal(net.fc.bias.detach(), torch.zeros(2))


def test_q_layers_naming_an_unknown_layer():
    m = MagnitudePruning.from_values({"q_layers": "fc=1,fc9=2"})
    with pytest.raises(ParamError, match="fc9"):
        m.prepare(Net(), H.run_context(epochs=1))


def test_finalize_keeps_zeros_and_leaves_a_plain_model():
    net = Net()
    m = MagnitudePruning.from_values({"q_fc": 1.0, "iterations": 1})
    c = H.run_context(epochs=1)
    m.prepare(net, c)
    m.on_epoch_start(net, c)
    with torch.no_grad():
        net.fc.weight.add_(0.5)         # a last optimizer step touched the pruned entries
    m.finalize(net, c)
    assert kept(net) == [[0, 0, 1, 1], [0, 0, 1, 1]]
    assert set(net.state_dict()) == {"fc.weight", "fc.bias"}
