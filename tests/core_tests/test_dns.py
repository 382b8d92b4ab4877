"""Dynamic Network Surgery semantics on hand-made tensors, calling the method's hooks directly."""

from __future__ import annotations

import math

import core_helpers as H
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from workbench.core.errors import ParamError
from workbench.methods.dns import DynamicNetworkSurgery

A, B = 0.25, 0.5      # exactly representable, so "at b_k" is exact in float32


Net = H.OneLayer


def dns(**values):
    base = {"a_k": {"fc": A}, "b_k": {"fc": B}, "prune_bias": False}
    return DynamicNetworkSurgery.from_values({**base, **values})


W0 = [[0.1, -0.1, 0.375, -0.375],
      [0.5, -0.5, 0.75, 0.2499],
      [0.25, -0.25, 0.0, 1.0]]


def mask_of(net):
    return net.fc.weight_mask.clone()


def set_orig(net, index, value):
    with torch.no_grad():
        net.fc.weight_orig[index] = value


def test_prepare_masks_start_kept_except_existing_zeros():
    net = Net(W0)
    m = dns()
    m.prepare(net, H.run_context())
    expected = torch.ones(3, 4)
    expected[2, 2] = 0                      # the weight that is already 0 starts pruned
    assert torch.equal(mask_of(net), expected)
    assert "weight_orig" in dict(net.fc.named_parameters())


def test_hysteresis_prune_keep_splice():
    net = Net(W0)
    m = dns()
    c = H.run_context()
    m.prepare(net, c)
    m.after_step(net, c)       # t = 0: probability (1 + gamma*0)^-1 = 1, so the masks update
    # |w| < 0.25 -> 0; |w| >= 0.5 -> 1; in between (incl. exactly 0.25) -> unchanged (was 1, or 0 at [2,2])
    expected = torch.tensor([[0, 0, 1, 1],
                             [1, 1, 1, 0],
                             [1, 1, 0, 1]], dtype=torch.float32)
    assert torch.equal(mask_of(net), expected)
    assert m.epoch_stats(net) == {"fc": {"a_k": A, "b_k": B, "mask_pruned": 3, "mask_spliced": 0}}

    # Training moves the weights (weight_orig keeps learning while masked):
    set_orig(net, (0, 0), 0.375)    # pruned, now between a and b -> stays pruned
    set_orig(net, (0, 1), -0.5)     # pruned, now exactly at b    -> spliced
    set_orig(net, (1, 3), 0.6)      # pruned, above b             -> spliced
    set_orig(net, (0, 2), 0.3)      # kept, still between         -> stays kept
    set_orig(net, (1, 0), 0.1)      # kept, below a               -> pruned
    set_orig(net, (2, 2), 0.45)     # pruned since the start, between -> stays pruned
    c.step = 1
    m.after_step(net, c)
    expected = torch.tensor([[0, 1, 1, 1],
                             [0, 1, 1, 1],
                             [1, 1, 0, 1]], dtype=torch.float32)
    assert torch.equal(mask_of(net), expected)
    stats = m.epoch_stats(net)["fc"]
    assert (stats["mask_pruned"], stats["mask_spliced"]) == (1, 2)
    # the counters restart after each report
    assert m.epoch_stats(net)["fc"]["mask_pruned"] == 0


def test_forward_uses_w_times_t():
    net = Net(W0, bias=[0.1, 0.2, 0.3])
    m = dns()
    c = H.run_context()
    m.prepare(net, c)
    m.after_step(net, c)
    x = torch.randn(5, 4)
    wt = net.fc.weight_orig.detach() * net.fc.weight_mask
    torch.testing.assert_close(net(x), x @ wt.T + net.fc.bias.detach())


def test_straight_through_gradient_reaches_pruned_weights():
    torch.manual_seed(0)
    net = Net(W0, bias=[0.1, 0.2, 0.3])
    m = dns()
    c = H.run_context()
    m.prepare(net, c)
    m.after_step(net, c)
    mask = mask_of(net)
    assert (mask == 0).sum() == 4

    ref = Net(W0, bias=[0.1, 0.2, 0.3])
    prune.custom_from_mask(ref.fc, "weight", mask.clone())

    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    for model in (net, ref):
        nn.functional.cross_entropy(model(x), y).backward()
    g_dns, g_torch = net.fc.weight_orig.grad, ref.fc.weight_orig.grad
    pruned = mask == 0
    assert torch.all(g_torch[pruned] == 0)               # torch's prune blocks the gradient there
    assert torch.all(g_dns[pruned] != 0)                 # DNS lets it through (eq. 3 of the paper)
    # Both are the gradient w.r.t. W*T; on kept entries they agree, and DNS's is the full one.
    torch.testing.assert_close(g_dns[~pruned], g_torch[~pruned])
    w = (ref.fc.weight_orig.detach() * mask).requires_grad_()
    nn.functional.cross_entropy(x @ w.T + ref.fc.bias.detach(), y).backward()
    torch.testing.assert_close(g_dns, w.grad)


def _count_updates(m, net, steps, seed=0):
    c = H.run_context(seed=seed)
    hits = []
    for t in steps:
        c.step = t
        before = m.updates
        m.after_step(net, c)
        hits.append(m.updates - before)
    return hits


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_mask_update_probability_follows_schedule(power):
    gamma, T = 0.1, 3000
    net = Net(W0)
    m = dns(gamma=gamma, power=power, t_stop=10**6)
    m.prepare(net, H.run_context())
    hits = _count_updates(m, net, range(T), seed=3)
    assert hits[0] == 1                                   # probability 1 at t = 0

    def check(lo, hi):
        p = [(1 + gamma * t) ** -power for t in range(lo, hi)]
        mean, sd = sum(p), math.sqrt(sum(q * (1 - q) for q in p))
        got = sum(hits[lo:hi])
        assert abs(got - mean) <= 4 * sd + 1, (lo, hi, got, mean, sd)

    check(0, 50)            # power 1: ~ 20 expected, power 2: ~ 8
    check(50, 500)          # power 1: ~ 22,          power 2: ~ 1.6
    check(500, T)           # power 1: ~ 18,          power 2: ~ 0.2
    check(0, T)
    if power == 1.0:        # the rate really falls: many more updates early than late
        assert sum(hits[:100]) > 3 * sum(hits[-100:]) + 10


def test_no_mask_update_at_or_after_t_stop():
    net = Net(W0)
    m = dns(gamma=0.0, t_stop=5)          # gamma 0: probability exactly 1 before t_stop
    c = H.run_context()
    m.prepare(net, c)
    assert _count_updates(m, net, range(5)) == [1] * 5
    frozen = mask_of(net)
    set_orig(net, (1, 2), 0.0)            # would be pruned if masks still moved
    set_orig(net, (0, 0), 0.9)            # would be spliced
    assert _count_updates(m, net, range(5, 60)) == [0] * 55
    assert torch.equal(mask_of(net), frozen)


def test_thresholds_from_c_rate():
    # No a_k/b_k: thr = mean|w| + c*std|w| over the nonzero entries of weight and bias together.
    w = [[0.1, -0.2], [0.3, 0.0]]
    b = [-0.4, 0.5]
    net = Net(w, bias=b)
    m = DynamicNetworkSurgery.from_values({"c_rate": 1.0, "band_low": 0.5, "band_high": 2.0})
    m.prepare(net, H.run_context())
    vals = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5])
    thr = float(vals.mean() + vals.std())          # 0.3 + 0.158114 (unbiased std, torch's default)
    stats = m.epoch_stats(net)["fc"]
    assert stats["a_k"] == pytest.approx(0.5 * thr) and stats["b_k"] == pytest.approx(2.0 * thr)
    assert m.params.prune_bias and hasattr(net.fc, "bias_mask")     # biases masked by default


def test_unknown_layer_names_are_rejected():
    net = Net(W0)
    with pytest.raises(ParamError, match="fc9"):
        DynamicNetworkSurgery.from_values({"a_k": "fc9=0.1", "b_k": "fc9=0.2"}).prepare(net, H.run_context())
    with pytest.raises(ParamError, match="fc9"):
        DynamicNetworkSurgery.from_values({"c_rate_layers": "fc9=1"}).prepare(net, H.run_context())


def test_finalize_leaves_plain_parameters_equal_to_w_times_t():
    net = Net(W0, bias=[0.1, -0.01, 0.6])
    m = DynamicNetworkSurgery.from_values({"a_k": {"fc": A}, "b_k": {"fc": B}})   # biases masked too
    c = H.run_context()
    m.prepare(net, c)
    m.after_step(net, c)
    w_t = (net.fc.weight_orig * net.fc.weight_mask).detach().clone()
    b_t = (net.fc.bias_orig * net.fc.bias_mask).detach().clone()
    assert torch.equal(b_t, torch.tensor([0.0, 0.0, 0.6]))
    m.finalize(net, c)
    params = dict(net.named_parameters())
    assert set(params) == {"fc.weight", "fc.bias"}
    assert set(net.state_dict()) == {"fc.weight", "fc.bias"}
    assert isinstance(net.fc.weight, nn.Parameter)
    assert torch.equal(net.fc.weight.detach(), w_t)
    assert torch.equal(net.fc.bias.detach(), b_t)
    assert len(net.fc._forward_pre_hooks) == 0
    # the parameter is really used now (no hook overwrites it): editing it changes the output
    x = torch.randn(2, 4)
    before = net(x).detach()
    with torch.no_grad():
        net.fc.weight[0, 0] += 1.0
    assert not torch.equal(net(x).detach(), before)
