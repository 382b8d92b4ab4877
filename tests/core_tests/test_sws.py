"""Soft weight-sharing on hand-made tensors (calling the hooks directly) and one short run end to end."""

from __future__ import annotations

import json
import math

import core_helpers as H
import numpy as np
import pytest
import torch
from torch import nn

from workbench.core import params as P
from workbench.core.config import TrainParams
from workbench.core.store import read_model, read_run
from workbench.engine.training import optimizer_for, train_step
from workbench.methods.sws import SoftWeightSharing, SWSParams, merge_components, symmetric_kl

Net = H.OneLayer


class TwoLayer(nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.fc1 = nn.Linear(60, 40)
        self.fc2 = nn.Linear(40, 3)
        with torch.no_grad():
            self.fc1.weight.copy_(0.2 * torch.randn(40, 60, generator=g))
            self.fc1.weight[0, :4] = torch.tensor([0.9, -0.8, 0.0, 1e-4])      # outliers and near-zeros
            self.fc2.weight.copy_(0.3 * torch.randn(3, 40, generator=g))

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


N_TRAIN = 1000          # training samples the hooks are told about (the per-sample prior divides by it)


def sws(model, **values):
    method = SoftWeightSharing.from_values(values)
    method.prepare(model, H.run_context(num_train=N_TRAIN))
    return method


def set_mixture(method, mu_free, sigma, pi_free):
    """Mixture parameters by value: mu_1.., sigma_0.., and pi_1.. (renormalised to 1 - pi_0)."""
    with torch.no_grad():
        method.mu_free.copy_(torch.tensor(mu_free))
        method.log_lambda.copy_(-2 * torch.log(torch.tensor(sigma)))
        method.rho.copy_(torch.log(torch.tensor(pi_free)))


W0 = [[0.0, 0.1, -0.3, 0.45], [0.52, -0.61, 0.2, -0.05]]
B0 = [0.07, -0.02]
MU, SIGMA, PI = [-0.5, 0.2, 0.5], [0.03, 0.1, 0.07, 0.2], [0.2, 0.3, 0.5]


def explicit_nll(values, mu, sigma, pi):
    """-sum_i log sum_j pi_j N(w_i | mu_j, sigma_j^2), one Gaussian at a time in float64 Python."""
    total = 0.0
    for w in values:
        p = sum(pj * math.exp(-(w - mj) ** 2 / (2 * sj ** 2)) / math.sqrt(2 * math.pi * sj ** 2)
                for mj, sj, pj in zip(mu, sigma, pi))
        total -= math.log(p)
    return total


def test_exact_log_density_matches_explicit_gaussians():
    net = Net(W0, B0)
    m = sws(net, components=4, pi_zero=0.9, prior_eval="exact", tau=0.5, prior_scaling="per_sample")
    set_mixture(m, MU, SIGMA, PI)
    pi = [0.9] + [0.1 * p for p in PI]
    values = [w for row in W0 for w in row] + B0          # biases are under the prior by default
    expected = explicit_nll(values, [0.0] + MU, SIGMA, pi)
    assert float(m.neg_log_prior().detach()) == pytest.approx(expected, rel=1e-6)
    # the Gamma hyperprior: -sum_j log Gamma(lambda_j | alpha_j, beta_j), (5000, 2) for the zero component
    hyper = 0.0
    for j, s in enumerate(SIGMA):
        a, b = (5000.0, 2.0) if j == 0 else (250.0, 0.1)
        lam = 1 / s ** 2
        hyper -= a * math.log(b) - math.lgamma(a) + (a - 1) * math.log(lam) - b * lam
    assert float(m.neg_log_hyperprior().detach()) == pytest.approx(hyper, rel=1e-6)
    # per_sample scaling: tau * (-log p(w) - log p(lambda)) / N_train
    c = H.run_context(num_train=N_TRAIN)
    assert float(m.penalty(net, c).detach()) == pytest.approx(0.5 * (expected + hyper) / N_TRAIN, rel=1e-6)
    summed = sws(Net(W0, B0), components=4, pi_zero=0.9, tau=0.5, prior_scaling="summed",
                 include_bias=False)
    set_mixture(summed, MU, SIGMA, PI)
    weights_only = explicit_nll([w for row in W0 for w in row], [0.0] + MU, SIGMA, pi)
    assert float(summed.penalty(net, c).detach()) == pytest.approx(0.5 * (weights_only + hyper), rel=1e-5)


def _direct_nll(tensors, method):
    """The same prior by plain autograd (float64): the reference for the hand-derived gradients."""
    p = method.params
    mu = torch.cat([torch.zeros(1, dtype=torch.float64), method.mu_free.double()])
    log_pi = torch.cat([torch.tensor([math.log(p.pi_zero)], dtype=torch.float64),
                        math.log1p(-p.pi_zero) + torch.log_softmax(method.rho.double(), 0)])
    ll = method.log_lambda.double()
    w = torch.cat([t.double().reshape(-1) for t in tensors])[:, None]
    logits = log_pi + 0.5 * ll - 0.5 * math.log(2 * math.pi) - 0.5 * ll.exp() * (w - mu) ** 2
    return -torch.logsumexp(logits, 1).sum()


def _grads(method, value):
    params = [*method.prior_tensors(), method.mu_free, method.log_lambda, method.rho]
    return [g.double() for g in torch.autograd.grad(value, params)]


@pytest.mark.parametrize("mode", ["exact", "grid"])
def test_value_and_gradients_match_autograd(mode):
    net = TwoLayer()
    m = sws(net, prior_eval=mode)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():           # a trained-looking mixture: different widths and weights
        m.log_lambda.copy_(-2 * torch.log(torch.linspace(0.02, 0.12, 17)))
        m.rho.copy_(torch.randn(16, generator=g))
    ref = _direct_nll(m.prior_tensors(), m)
    value = m.neg_log_prior()
    assert float(value.detach()) == pytest.approx(float(ref.detach()), rel=1e-5)
    for got, want in zip(_grads(m, value), _grads(m, ref)):
        scale = float(want.abs().max())
        assert float((got - want).abs().max()) <= 2e-3 * scale, (got.shape, scale)


def test_initial_means_span_the_bulk_not_the_outliers():
    """Default: evenly over +-(99.9th percentile of |w|), so one outlier cannot stretch the spacing;
    an explicit init_range wins; 17 points less the one nearest 0 (the zero component's place)."""
    w = torch.linspace(-0.2, 0.2, 4000).reshape(40, 100).clone()
    w[0, 0] = 5.0                                   # one outlier, like LeNet-300's output biases
    m = sws(Net(w), components=17)
    means = m.mu_free.detach().numpy()
    assert len(means) == 16 and 0.0 not in means
    assert means.max() == pytest.approx(0.2, abs=1e-3) and means.min() == pytest.approx(-0.2, abs=1e-3)
    steps = np.diff(means)
    np.testing.assert_allclose(steps[steps < 0.04], means.max() / 8, rtol=1e-4)   # 2r / 16, one gap at 0
    wide = sws(Net(w), components=17, init_range=0.6).mu_free.detach().numpy()
    assert wide.max() == pytest.approx(0.6) and wide.min() == pytest.approx(-0.6)


def test_grid_agrees_with_exact_mode():
    net = TwoLayer(seed=3)
    grid, exact = sws(net, prior_eval="grid"), sws(net, prior_eval="exact")
    for m in (grid, exact):
        with torch.no_grad():
            m.log_lambda.copy_(-2 * torch.log(torch.linspace(0.015, 0.1, 17)))
            m.mu_free.add_(0.01)
    vg, ve = grid.neg_log_prior(), exact.neg_log_prior()
    assert float(vg.detach()) == pytest.approx(float(ve.detach()), rel=1e-5)
    for a, b in zip(_grads(grid, vg), _grads(exact, ve)):
        assert float((a - b).abs().max()) <= 2e-3 * float(b.abs().max())


def test_grid_too_coarse_is_reported():
    net = TwoLayer()
    m = sws(net, grid_points=16, init_sigma=0.02)
    messages = []
    c = H.run_context(num_train=N_TRAIN)
    c.log = messages.append
    m.on_epoch_start(net, c)
    m.on_epoch_start(net, c)
    assert len(messages) == 1 and "grid_points" in messages[0]


def test_penalty_step_reads_nothing_back(monkeypatch):
    """No .item()/float()/bool() on a tensor in the prior's forward or backward (no GPU sync)."""
    net = TwoLayer()
    for mode in ("grid", "exact"):
        m = sws(net, prior_eval=mode)

        def refuse(*args, **kwargs):
            raise AssertionError("the prior read a tensor back to the host")

        with monkeypatch.context() as mp:
            for name in ("item", "tolist", "numpy", "__float__", "__int__", "__bool__"):
                mp.setattr(torch.Tensor, name, refuse)
            m.penalty(net, H.run_context(num_train=N_TRAIN)).backward()
        assert net.fc1.weight.grad is not None and m.mu_free.grad is not None
        net.zero_grad()


def test_zero_component_stays_fixed_while_the_rest_learn():
    torch.manual_seed(0)
    net = TwoLayer()
    m = sws(net, tau=50.0, pi_zero=0.95)
    train = P.build(TrainParams, {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.01})
    opt = optimizer_for(net, m, train)
    c = H.run_context(num_train=N_TRAIN)
    before = [t.detach().clone() for t in (m.mu_free, m.log_lambda, m.rho)]
    x, y = torch.randn(32, 60), torch.randint(0, 3, (32,))
    for _ in range(5):
        train_step(net, m, opt, x, y, c)
    after = (m.mu_free, m.log_lambda, m.rho)
    assert all(not torch.equal(a, b) for a, b in zip(before, after))       # everything else moved
    mu, var, pi = m.mixture_arrays()
    assert mu[0] == 0.0 and pi[0] == 0.95
    assert pi.sum() == pytest.approx(1.0, abs=1e-12)
    stats = m.epoch_stats(net)["fc1"]
    assert stats["mix_mean"][0] == 0.0 and stats["mix_weight"][0] == 0.95
    with torch.no_grad():
        full_mu, _, log_pi = m.mixture()
    assert float(full_mu[0]) == 0.0
    assert float(log_pi[0]) == pytest.approx(math.log(0.95), abs=1e-7)


def test_merge_components_kl_and_zero_group():
    mu = np.array([0.0, 0.5, 0.5002, -0.4, 0.001])
    var = np.array([0.02, 0.05, 0.05, 0.05, 0.02]) ** 2
    pi = np.array([0.9, 0.03, 0.01, 0.04, 0.02])
    kl = symmetric_kl(mu, var)
    # KL(a|b) + KL(b|a) with equal widths is d^2 / sigma^2
    assert kl[1, 2] == pytest.approx(0.0002 ** 2 / 0.05 ** 2)
    assert kl[0, 4] == pytest.approx(0.001 ** 2 / 0.02 ** 2)
    m_mu, m_var, m_pi = merge_components(mu, var, pi, threshold=0.01)
    assert np.isnan(m_mu[2]) and np.isnan(m_var[2]) and np.isnan(m_pi[2])      # 2 merged into 1
    assert m_mu[1] == pytest.approx((0.03 * 0.5 + 0.01 * 0.5002) / 0.04)
    assert m_pi[1] == pytest.approx(0.04)
    assert m_var[1] == pytest.approx(0.05 ** 2)
    assert m_mu[0] == 0.0 and m_pi[0] == pytest.approx(0.92) and np.isnan(m_mu[4])   # zero stays at 0
    assert m_var[0] == pytest.approx((0.9 * 0.02 ** 2 + 0.02 * 0.02 ** 2) / 0.92)
    assert m_mu[3] == -0.4
    untouched = merge_components(mu, var, pi, threshold=0.0)
    assert np.array_equal(untouched[0], mu)


def test_finalize_merges_and_snaps():
    weights = [[0.004, -0.01, 0.49, 0.52, -0.38, -0.45], [0.3, 0.0, 0.51, -0.02, 0.47, -0.41]]
    net = Net(weights, bias=[0.5, 0.001])
    m = sws(net, components=4, pi_zero=0.9, merge_kl=0.01)
    set_mixture(m, [0.5, 0.5002, -0.4], [0.02, 0.05, 0.05, 0.05], [0.3, 0.1, 0.6])
    c = H.run_context(num_train=N_TRAIN)
    m.finalize(net, c)
    mu, var, pi = m.mixture_arrays()
    merged = (0.03 * 0.5 + 0.01 * 0.5002) / 0.04
    assert np.isnan(mu[2]) and mu[1] == pytest.approx(merged, rel=1e-6) and mu[3] == pytest.approx(-0.4)
    w = net.fc.weight.detach().numpy()
    a, z, n = np.float32(merged), 0.0, np.float32(-0.4)
    expected = np.array([[z, z, a, a, n, n], [a, z, a, z, a, n]], dtype=np.float32)
    # 0.3 sits between the zero component (sigma 0.02) and 0.5 (sigma 0.05): the latter is far more
    # responsible (log-odds about +100), so it snaps to the merged mean
    np.testing.assert_array_equal(w, expected)
    assert not np.signbit(w).any() or np.all(w[np.signbit(w)] != 0)        # pruned entries are +0.0
    np.testing.assert_array_equal(net.fc.bias.detach().numpy(), np.array([a, 0.0], dtype=np.float32))
    assert set(np.unique(w)) == {0.0, a, n}
    # the finalized point's stats: merged mixture padded with NaN, fixed lengths, the scatter sample
    stats = m.epoch_stats(net)["fc"]
    assert [len(stats[k]) for k in ("mix_mean", "mix_var", "mix_weight")] == [4, 4, 4]
    assert np.isnan(stats["mix_weight"][2]) and stats["mix_weight"][1] == pytest.approx(0.04)
    assert stats["scatter_initial"].shape == stats["scatter_final"].shape == (2000,)
    init, final = stats["scatter_initial"], stats["scatter_final"]
    k = np.isfinite(init)
    assert k.sum() == 12 and np.isfinite(final).sum() == 12
    np.testing.assert_allclose(np.sort(init[k]), np.sort(np.array(weights, dtype=np.float32).ravel()))
    np.testing.assert_array_equal(np.sort(final[k]), np.sort(expected.ravel()))
    assert stats["snap_zero_fraction"] == pytest.approx(4 / 12)


def test_mixture_lr_passes_unrounded():
    for given in (5e-4, "5e-4", "0.0005"):
        params = P.build(SWSParams, {"mixture_lr": given})
        assert params.mixture_lr == 5e-4
        stored = json.loads(json.dumps(P.to_dict(params)))
        assert stored["mixture_lr"] == 5e-4
        assert P.build(SWSParams, stored).mixture_lr == 5e-4
    net = Net(W0, B0)
    m = SoftWeightSharing(P.build(SWSParams, {"mixture_lr": 5e-4, "precision_lr": 2e-3, "mixing_lr": 7e-3}))
    m.prepare(net, H.run_context(num_train=N_TRAIN))
    train = P.build(TrainParams, {"optimizer": "adam", "lr": 5e-4, "weight_decay": 1e-3})
    opt = optimizer_for(net, m, train)
    groups = opt.param_groups
    assert [g["lr"] for g in groups] == [5e-4, 5e-4, 2e-3, 7e-3]
    assert [g["base_lr"] for g in groups] == [5e-4, 5e-4, 2e-3, 7e-3]
    assert groups[1]["params"][0] is m.mu_free and groups[2]["params"][0] is m.log_lambda
    assert groups[3]["params"][0] is m.rho
    assert groups[0]["weight_decay"] == 1e-3 and [g["weight_decay"] for g in groups[1:]] == [0.0] * 3
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in net.parameters()}


def test_end_to_end_run_records_mixture_and_snaps(tmp_path):
    config = H.make_config("sws", tmp_path / "runs", params={"tau": 0.05, "prior_scaling": "per_sample"},
                           train={"optimizer": "adam", "lr": 1e-3})
    events = H.run_events(config)
    fin = H.finished(events)
    assert fin.status == "completed", fin.error
    run = read_run(fin.run_path)
    kinds = list(run.metrics["point_kind"])            # reference, epoch, epoch, finalized
    assert kinds == [0, 1, 1, 2]
    for name in ("fc1", "fc2"):
        layer = run.layers[name]
        for key in ("mix_mean", "mix_var", "mix_weight"):
            series = layer[key]
            assert series.shape == (4, 17), key
            assert np.all(np.isnan(series[0]))                  # recorded before prepare
            assert np.all(np.isfinite(series[1:3]))
        assert np.all(layer["mix_mean"][1:, 0] == 0.0)
        assert np.all(layer["mix_weight"][1:3, 0] == 0.99)
        assert np.nansum(layer["mix_weight"][3]) == pytest.approx(1.0)
        assert layer["scatter_final"].shape == (4, 2000)
        assert np.all(np.isnan(layer["scatter_final"][:3])) and np.isfinite(layer["scatter_final"][3]).any()
        assert np.all(np.isfinite(layer["snap_zero_fraction"][1:]))
    state, _ = read_model(fin.run_path)
    for name in ("fc1", "fc2"):
        w = state[f"{name}.weight"]
        assert len(np.unique(w)) <= 17 and np.any(w == 0)
        assert layer_values_are_means(w, run.layers[name]["mix_mean"][3])
    assert fin.summary["param_ratio"] > 1


def layer_values_are_means(w, means):
    live = means[np.isfinite(means)].astype(np.float32)
    return set(np.unique(w)) <= set(live.tolist())


def test_mixture_lr_passes_unrounded_through_the_cli():
    """`--set mixture_lr=5e-4` reaches the stage as the double 5e-4, and the run's repeat command
    carries it back unchanged (the GUI form's typed-value path is covered in test_forms)."""
    import shlex

    from workbench.cli import build_parser, config_from_args
    from workbench.engine.configure import cli_command

    args = build_parser().parse_args(["run", "--model", "mlp_tiny", "--dataset", "tiny", "--method", "sws",
                                      "--set", "mixture_lr=5e-4", "--set", "optimizer=adam", "--out", "x"])
    config = config_from_args(args)
    assert config.stages[0].params["mixture_lr"] == 5e-4
    again = config_from_args(build_parser().parse_args(shlex.split(cli_command(config))[1:] + ["--out", "x"]))
    assert again.stages[0].params["mixture_lr"] == 5e-4


def own_answers_context(net, **kw):
    """A run context whose training batches are 512 random inputs labelled with the model's own answers
    (100% accuracy before any snap), and a list collecting what the method logs."""
    x = torch.randn(512, 60, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = net(x).argmax(1)
    c = H.run_context(num_train=N_TRAIN, **kw)
    c.train_batches = lambda: iter([(x[i:i + 128], y[i:i + 128]) for i in range(0, 512, 128)])
    said = []
    c.log = said.append
    return c, said


WIDE_ZERO = ([-0.8, 0.8], [0.3, 0.05, 0.05], [0.5, 0.5])      # a zero component that takes nearly all


def test_a_costly_final_snap_is_reported_with_the_remedy():
    torch.manual_seed(0)
    net = TwoLayer()
    m = sws(net, components=3, pi_zero=0.99)
    set_mixture(m, *WIDE_ZERO)
    c, said = own_answers_context(net)
    m.finalize(net, c)
    cost = [t for t in said if "the snap cost" in t]
    assert len(cost) == 1 and "512 training samples (100.0% ->" in cost[0] and "snap_budget" in cost[0]
    assert "search tau and pi_0" in cost[0]                 # the same remedy as the run's warning
    # a snap that moves nothing costs nothing and says nothing
    m2 = sws(net, components=3, pi_zero=0.99)
    c, said = own_answers_context(net)
    m2.finalize(net, c)
    assert not [t for t in said if "the snap cost" in t]


def test_snap_budget_raises_tau_while_the_trial_snap_costs_more_and_puts_the_weights_back():
    from workbench.methods.sws import TAU_GROWTH
    torch.manual_seed(0)
    net = TwoLayer()
    m = SoftWeightSharing.from_values({"components": 3, "pi_zero": 0.99, "tau": 0.01, "snap_budget": 1.0})
    c, said = own_answers_context(net, steps_per_epoch=10, epochs=12)
    m.prepare(net, c)
    set_mixture(m, *WIDE_ZERO)
    said.clear()                                    # what prepare said
    weights = [t.detach().clone() for t in m.prior_tensors()]
    scale = m._scale
    c.epoch = 0
    m.on_epoch_end(net, c)                          # the first check only measures
    assert all(torch.equal(a, b) for a, b in zip(weights, m.prior_tensors()))      # put back exactly
    assert m._tau == 0.01 and "cost 79.1 points" in said[-1] and "budget 1): tau stays 0.01" in said[-1]
    stats = m.epoch_stats(net)["fc1"]               # the run file keeps the check and tau, once
    assert stats["tau"] == 0.01 and stats["snap_cost"] == pytest.approx(79.1, abs=0.05)
    assert np.isnan(m.epoch_stats(net)["fc1"]["snap_cost"])
    c.epoch = 1                                     # every other epoch only
    m.on_epoch_end(net, c)
    assert len(said) == 1
    c.epoch = 2                                     # the same cost again, not falling: tau grows
    m.on_epoch_end(net, c)
    assert m._tau == pytest.approx(0.01 * TAU_GROWTH) and m._scale == pytest.approx(scale * TAU_GROWTH)
    assert m.epoch_stats(net)["fc2"]["tau"] == pytest.approx(0.01 * TAU_GROWTH)
    assert "tau 0.01 -> 0.0141421" in said[-1]
    c.epoch = 4
    m.on_epoch_end(net, c)
    assert m._tau == pytest.approx(0.02) and len(said) == 3
    c.epoch = 6                                     # the second half of the stage: tau stays as it is
    m.on_epoch_end(net, c)
    assert m._tau == pytest.approx(0.02) and len(said) == 3
    # a cost still falling fast is left to fall; one within the budget keeps tau
    m._last_cost = 1e6
    c.epoch = 2
    m.on_epoch_end(net, c)
    assert m._tau == pytest.approx(0.02) and "tau stays 0.02" in said[-1]
    with torch.no_grad():                           # weights already at the means: the snap is free
        for t in m.prior_tensors():
            t.zero_()
    c, said = own_answers_context(net, steps_per_epoch=10, epochs=12)
    c.epoch = 2
    m.on_epoch_end(net, c)
    assert m._tau == pytest.approx(0.02) and "cost 0.0 points" in said[-1]


def test_snap_budget_off_checks_nothing():
    net = TwoLayer()
    m = SoftWeightSharing.from_values({"components": 3, "pi_zero": 0.99, "tau": 0.01})
    c, said = own_answers_context(net, steps_per_epoch=10, epochs=8)
    m.prepare(net, c)
    set_mixture(m, *WIDE_ZERO)
    said.clear()
    c.epoch = 0
    m.on_epoch_end(net, c)
    assert m._tau == 0.01 and said == []


def test_snap_budget_run_end_to_end_reports_its_checks(tmp_path):
    config = H.make_config("sws", tmp_path / "runs", params={"tau": 0.05, "snap_budget": 1.0}, epochs=4,
                           train={"optimizer": "adam", "lr": 1e-3})
    events = H.run_events(config)
    fin = H.finished(events)
    assert fin.status == "completed", fin.error
    said = [e.text for e in events if type(e).__name__ == "Message"]
    checks = [t for t in said if "the snap would cost" in t]
    assert len(checks) == 1 and "on 512 training samples" in checks[0], said     # epochs 1 (of 2 in the half)
    run = read_run(fin.run_path)
    assert list(run.metrics["point_kind"]) == [0, 1, 1, 1, 1, 2]
    tau, cost = run.layers["fc1"]["tau"], run.layers["fc1"]["snap_cost"]
    assert np.isnan(tau[0]) and np.all(tau[1:] == 0.05)             # never grew: one check only
    # the check after epoch 1 and the real snap at the end, nothing in between
    assert np.isfinite(cost[1]) and np.all(np.isnan(cost[[0, 2, 3, 4]])) and np.isfinite(cost[5])
    state, _ = read_model(fin.run_path)
    assert layer_values_are_means(state["fc1.weight"], run.layers["fc1"]["mix_mean"][-1])
