"""DNS's fused path (the mask update writes W ⊙ T, the forward reads it) against the rule it replaced.

The reference here is the previous implementation written out: a forward pre-hook computing W ⊙ T with a
straight-through autograd function before every forward, and eq. (3) applied with plain PyTorch indexing.
Both train the same model on the same batches; masks, weights, outputs and the pruned/spliced counts
must agree exactly after every step, through updates, skipped updates, t_stop, a splice, an edit of W in
place, a NaN weight, a state_dict restore and a fused optimizer (whose writes PyTorch does not count).
"""

from __future__ import annotations

import copy

import core_helpers as H
import pytest
import torch
from torch import nn

from workbench.methods import mask_update
from workbench.methods.dns import DynamicNetworkSurgery
from workbench.models import native


@pytest.fixture(params=["native", "torch"])
def path(request, monkeypatch):
    if request.param == "torch":
        monkeypatch.setenv("WORKBENCH_NATIVE", "torch")
    elif mask_update._native() is None:
        pytest.skip(f"no native build here: {native.last_error()}")
    return request.param


class _OldStraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, m):
        return w * m

    @staticmethod
    def backward(ctx, g):
        return g, None


class OldDNS:
    """The previous DNS step: W ⊙ T computed in each forward, eq. (3) by indexing, its own random draws."""

    def __init__(self, model: nn.Module, bounds: dict, names, gamma: float, power: float, t_stop: int, seed: int):
        self.gamma, self.power, self.t_stop = gamma, power, t_stop
        self.gen = torch.Generator().manual_seed(seed)
        self.entries = []        # (module, name, a, b)
        self.counts = {}         # layer -> [pruned, spliced]
        for layer, (a, b) in bounds.items():
            module = model.get_submodule(layer)
            self.counts[layer] = [0, 0]
            for n in names:
                w = getattr(module, n)
                del module._parameters[n]
                module.register_parameter(n + "_orig", nn.Parameter(w.detach().clone()))
                module.register_buffer(n + "_mask", (w.detach() != 0).float())
                module.register_forward_pre_hook(
                    lambda mod, _, n=n: setattr(mod, n, _OldStraightThrough.apply(getattr(mod, n + "_orig"),
                                                                                  getattr(mod, n + "_mask"))))
                self.entries.append((layer, module, n, a, b))

    def after_step(self, t: int) -> None:
        if t >= self.t_stop:
            return
        if torch.rand((), generator=self.gen).item() >= (1.0 + self.gamma * t) ** (-self.power):
            return
        with torch.no_grad():
            for layer, module, n, a, b in self.entries:
                w, mask = getattr(module, n + "_orig"), getattr(module, n + "_mask")
                new = mask.clone()
                new[w.abs() < a] = 0.0
                new[w.abs() >= b] = 1.0
                new[w.isnan()] = 0.0
                self.counts[layer][0] += int((mask.bool() & ~new.bool()).sum())
                self.counts[layer][1] += int((new.bool() & ~mask.bool()).sum())
                mask.copy_(new)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 24), nn.ReLU(), nn.Linear(24, 5))


def _pair(gamma=0.3, t_stop=18, seed=4):
    new = _net()
    old = copy.deepcopy(new)
    m = DynamicNetworkSurgery.from_values({"c_rate": 0.0, "gamma": gamma, "power": 1.0, "t_stop": t_stop})
    ctx = H.run_context(seed=seed)
    m.prepare(new, ctx)
    ref = OldDNS(old, m.bounds, ("weight", "bias"), gamma, 1.0, t_stop, seed)
    return new, m, ctx, old, ref


def _same(new: nn.Module, old: nn.Module) -> None:
    """The same state: W bit for bit (NaN where NaN), T the same 0/1 values (bytes now, floats before)."""
    sn, so = new.state_dict(), old.state_dict()
    assert sn.keys() == so.keys()
    for k in sn:
        if k.endswith("_mask"):
            assert torch.equal(sn[k].float(), so[k]), k
            continue
        assert torch.equal(sn[k].isnan(), so[k].isnan()), k
        assert torch.equal(sn[k].nan_to_num(), so[k].nan_to_num()), k


def _step(model, optimizer, x, y):
    optimizer.zero_grad(set_to_none=True)
    out = model(x)
    nn.functional.cross_entropy(out, y).backward()
    optimizer.step()
    return out.detach()


def test_fused_path_equals_the_previous_rule_step_by_step(path):
    new, m, ctx, old, ref = _pair()
    assert new[0].weight_mask.dtype == torch.uint8 and old[0].weight_mask.dtype == torch.float32
    opts = [torch.optim.SGD(net.parameters(), lr=0.3, momentum=0.9, weight_decay=1e-3) for net in (new, old)]
    gen = torch.Generator().manual_seed(1)
    updates = 0
    for t in range(30):
        x, y = torch.randn(16, 12, generator=gen), torch.randint(0, 5, (16,), generator=gen)
        assert torch.equal(_step(new, opts[0], x, y), _step(old, opts[1], x, y)), t
        ctx.step = t
        before = m.updates
        m.after_step(new, ctx)
        ref.after_step(t)
        updates += m.updates - before
        if t == 6:
            # a pruned weight pushed past b_k (in place, as a test or a restore would): spliced back at the
            # next update, and meanwhile the forward must see the new W, not the W ⊙ T written last step
            layer, module, _, a, b = ref.entries[0]
            pruned = tuple((module.weight_mask == 0).nonzero()[0].tolist())
            kept = tuple((module.weight_mask == 1).nonzero()[0].tolist())
            with torch.no_grad():
                for net in (new, old):
                    net.get_submodule(layer).weight_orig[pruned] = 3 * b
                    net.get_submodule(layer).weight_orig[kept] *= 1.5
        _same(new, old)
    x = torch.randn(16, 12, generator=gen)
    assert torch.equal(new(x), old(x))
    assert 3 <= updates < 18                       # some steps updated the masks, some did not
    stats = m.epoch_stats(new)
    for layer, (pruned, spliced) in ref.counts.items():
        assert (stats[layer]["mask_pruned"], stats[layer]["mask_spliced"]) == (pruned, spliced)
    assert sum(s for _, s in ref.counts.values()) >= 1 and sum(p for p, _ in ref.counts.values()) >= 10
    assert torch.equal(m.effective_state(new)["0.weight"], old[0].weight_orig.detach() * old[0].weight_mask)


def test_nan_weight_is_pruned_and_its_nan_reaches_the_forward_as_before(path):
    new, m, ctx, old, ref = _pair(gamma=0.0)
    with torch.no_grad():
        for net in (new, old):
            net[2].weight_orig[1, 3] = float("nan")
    m.after_step(new, ctx)
    ref.after_step(0)
    assert new[2].weight_mask[1, 3] == 0
    _same(new, old)
    x = torch.randn(4, 12)
    out_new, out_old = new(x), old(x)
    assert out_new[:, 1].isnan().all() and not out_new[:, [0, 2, 3, 4]].isnan().any()   # NaN * 0 is NaN
    assert torch.equal(out_new.nan_to_num(), out_old.nan_to_num())


def test_a_restored_state_forwards_with_its_own_weights(path):
    new, m, ctx, _, _ = _pair(gamma=0.0)
    opt = torch.optim.SGD(new.parameters(), lr=0.3)
    x, y = torch.randn(16, 12), torch.randint(0, 5, (16,))
    _step(new, opt, x, y)
    m.after_step(new, ctx)
    saved = copy.deepcopy(new.state_dict())
    assert all(k.endswith(("_orig", "_mask")) for k in saved)   # W and T only, as before: no W ⊙ T stored
    expected = new(x).detach()
    for t in range(1, 4):
        _step(new, opt, x, y)
        ctx.step = t
        m.after_step(new, ctx)
    assert not torch.equal(new(x), expected)
    new.load_state_dict(saved)                      # written through PyTorch: the next forward sees it
    assert torch.equal(new(x), expected)
    other, m2, _, _, _ = _pair(gamma=0.0)           # a fresh model prepared by DNS, then restored
    other.load_state_dict(saved)
    assert torch.equal(other(x), expected)
    with torch.no_grad():                           # evaluation reads the same W ⊙ T
        assert torch.equal(other(x), expected)


def test_a_write_the_version_counter_misses_is_caught_by_after_step(path):
    # A fused optimizer writes W without counting it as a write; after_step rewrites W ⊙ T every step,
    # update or not (t_stop 0: never an update), so the next forward still uses the new W.
    new, m, ctx, _, _ = _pair(t_stop=0)
    try:
        opt = torch.optim.SGD(new.parameters(), lr=0.5, fused=True)
    except (RuntimeError, TypeError) as exc:
        pytest.skip(f"no fused SGD on the CPU in this torch: {exc}")
    x, y = torch.randn(16, 12), torch.randint(0, 5, (16,))
    _step(new, opt, x, y)
    m.after_step(new, ctx)
    w = new[0].weight_orig.detach() * new[0].weight_mask
    b = new[0].bias_orig.detach() * new[0].bias_mask
    expected = new[2](torch.relu(x @ w.T + b))
    assert torch.equal(new(x), expected)


def test_straight_through_gradient_reaches_every_entry_on_the_fused_path(path):
    new, m, ctx, _, _ = _pair(gamma=0.0)
    m.after_step(new, ctx)
    mask = new[0].weight_mask
    assert (mask == 0).sum() > 20
    x, y = torch.randn(16, 12), torch.randint(0, 5, (16,))
    nn.functional.cross_entropy(new(x), y).backward()
    w = (new[0].weight_orig.detach() * mask).requires_grad_()
    h = torch.relu(x @ w.T + new[0].bias_orig.detach() * new[0].bias_mask)
    w2 = new[2].weight_orig.detach() * new[2].weight_mask
    nn.functional.cross_entropy(h @ w2.T + new[2].bias_orig.detach() * new[2].bias_mask, y).backward()
    torch.testing.assert_close(new[0].weight_orig.grad, w.grad, rtol=0, atol=0)
    assert (new[0].weight_orig.grad[mask == 0] != 0).any()     # pruned entries learn too


def test_inference_mode_and_frozen_weights_read_the_current_w_times_t(path):
    new, m, ctx, _, _ = _pair(gamma=0.0)
    m.after_step(new, ctx)
    x = torch.randn(4, 12)

    def expected():
        w = new[0].weight_orig.detach() * new[0].weight_mask
        h = torch.relu(x @ w.T + new[0].bias_orig.detach() * new[0].bias_mask)
        return h @ (new[2].weight_orig.detach() * new[2].weight_mask).T + new[2].bias_orig.detach() * new[2].bias_mask

    with torch.no_grad():
        new[0].weight_orig.mul_(2.0)                 # an edit the next forward must see, in inference mode
    with torch.inference_mode():
        assert torch.equal(new(x), expected())
    assert torch.equal(new(x), expected())           # and after it, with autograd on
    for p in new.parameters():                       # frozen: no gradient, and no error
        p.requires_grad_(False)
    assert not new(x).requires_grad and torch.equal(new(x), expected())
    for p in new.parameters():                       # unfrozen: the gradient reaches W again
        p.requires_grad_(True)
    new(x).sum().backward()
    assert new[0].weight_orig.grad is not None and new[0].weight_orig.grad.abs().sum() > 0


def test_channels_last_convolutions_take_the_pytorch_rule_and_agree(path):
    # a channels_last weight cannot be walked as a flat array: the PyTorch rule runs for it, W ⊙ T is kept
    # in W's layout (as the product was), and the results still match the previous rule step by step
    torch.manual_seed(0)
    new = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5))
    new = new.to(memory_format=torch.channels_last)
    old = copy.deepcopy(new)
    m = DynamicNetworkSurgery.from_values({"c_rate": 0.0, "gamma": 0.0})
    ctx = H.run_context()
    m.prepare(new, ctx)
    assert not new[0].weight_orig.is_contiguous()
    ref = OldDNS(old, m.bounds, ("weight", "bias"), 0.0, 1.0, 10**6, 0)
    opts = [torch.optim.SGD(net.parameters(), lr=0.2, momentum=0.9) for net in (new, old)]
    gen = torch.Generator().manual_seed(3)
    for t in range(6):
        x, y = torch.randn(4, 3, 8, 8, generator=gen), torch.randint(0, 5, (4,), generator=gen)
        assert torch.equal(_step(new, opts[0], x, y), _step(old, opts[1], x, y)), t
        ctx.step = t
        m.after_step(new, ctx)
        ref.after_step(t)
        _same(new, old)
    assert new[0].weight.stride() == new[0].weight_orig.stride()


def test_a_plain_mask_blocks_the_gradient_as_torch_prune_does():
    # attach_mask without straight-through: W * T computed in each forward, the gradient of pruned
    # entries is zero; a module may hold both kinds (one hook for both)
    from torch.nn.utils import prune

    from workbench.methods import per_layer

    torch.manual_seed(0)
    net, ref = nn.Linear(6, 4), nn.Linear(6, 4)
    ref.load_state_dict(net.state_dict())
    mask = (torch.rand(4, 6) > 0.5).float()
    per_layer.attach_mask(net, "weight", mask, straight_through=False)
    per_layer.attach_mask(net, "bias", torch.ones(4), straight_through=True)
    prune.custom_from_mask(ref, "weight", mask.clone())
    x = torch.randn(5, 6)
    net(x).pow(2).sum().backward()
    ref(x).pow(2).sum().backward()
    assert torch.equal(net.weight_orig.grad, ref.weight_orig.grad)
    assert torch.all(net.weight_orig.grad[mask == 0] == 0)
    per_layer.remove_mask(net, "weight")
    per_layer.remove_mask(net, "bias")
    assert set(dict(net.named_parameters())) == {"weight", "bias"} and not net._forward_pre_hooks
    assert torch.equal(net.weight.detach(), ref.weight.detach())
