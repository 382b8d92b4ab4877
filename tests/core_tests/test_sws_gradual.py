"""Soft weight-sharing's gradual snap (snap_steps): weights held at their means in steps while the rest
retrain, decided by a trial snap at the half of the stage."""

from __future__ import annotations

import core_helpers as H
import numpy as np
import torch
from test_sws import WIDE_ZERO, TwoLayer, layer_values_are_means, own_answers_context, set_mixture

from workbench.core.store import read_model, read_run
from workbench.methods.sws import SoftWeightSharing, merge_components, merge_roots
from workbench.methods.sws_gradual import HeldWeights, step_epochs


def test_steps_spread_over_the_third_quarter():
    assert step_epochs(30, 4) == [15, 16, 18, 20]   # the last quarter retrains with 93.75 % held
    assert step_epochs(40, 4) == [20, 22, 25, 27]
    assert step_epochs(8, 2) == [4, 5]
    assert step_epochs(3, 4) == [1, 2]              # more steps than epochs: one per epoch
    assert step_epochs(2, 4) == [1]


def test_each_step_holds_half_the_free_weights_largest_first():
    t = torch.tensor([[0.11, 0.3, -0.02, 0.49], [0.18, -0.5, 0.0, 0.26]])
    values = torch.tensor([0.0, 0.25, 0.5, -0.5])
    assigned = torch.tensor([[1, 1, 0, 2], [1, 3, 0, 1]])
    h = HeldWeights([t])
    h.add([t], [assigned])                          # the four largest: .49, -.5, .3, .26
    assert h.held[0].tolist() == [[False, True, False, True], [False, True, False, True]]
    assert h.fraction() == 0.5
    h.add([t], [assigned])                          # half of the four still free: .18 and .11
    assert h.held[0].tolist() == [[True, True, False, True], [True, True, False, True]]
    assert h.fraction() == 0.75
    before = t.clone()
    h.hold([t], values)
    assert torch.equal(t[h.held[0]], values[assigned][h.held[0]])
    assert torch.equal(t[~h.held[0]], before[~h.held[0]])           # the free weights untouched
    h.add([t], [assigned])
    h.add([t], [assigned])
    assert h.fraction() == 1.0                      # one left, rounded up: all held


def gradual(net, epochs=8, **values):
    m = SoftWeightSharing.from_values({"components": 3, "pi_zero": 0.99, "tau": 0.01, "snap_steps": 2,
                                       **values})
    c, said = own_answers_context(net, steps_per_epoch=10, epochs=epochs)
    m.prepare(net, c)
    set_mixture(m, *WIDE_ZERO)
    said.clear()
    return m, c, said


def test_a_costly_trial_snap_at_the_half_snaps_in_steps_and_holds_them_at_the_moving_means():
    torch.manual_seed(0)
    net = TwoLayer()
    m, c, said = gradual(net)
    m._tau, m._scale = 0.04, 0.04 / c.num_train     # as if the snap budget had raised tau 4x
    for epoch in range(4):                          # the first half: no trial, nothing held
        c.epoch = epoch
        m.on_epoch_start(net, c)
    assert m._held is None and said == []
    assert m.penalty(net, c) is not None            # training under the prior
    c.epoch = 4
    m.on_epoch_start(net, c)                        # the half: the trial costs 79 points, the first step
    assert m.penalty(net, c) is not None            # the free weights stay under the prior (sws_gradual)
    assert "at the half the snap would cost 79.1 points" in said[0] and "snap in steps" in said[0]
    assert said[1] == "soft weight-sharing: tau 0.04 -> 0.01 (as set) for the steps"
    assert (m._tau, m._scale) == (0.01, 0.01 / c.num_train)
    assert "snap step 1 of 2: 50.0% of the weights held" in said[2]
    del said[1]
    assert m.epoch_stats(net)["fc1"]["snap_held"] == 0.5
    tensors = m.prior_tensors()
    with torch.no_grad():                           # the means learn on: held weights follow them
        m.mu_free.add_(0.01)
    m.after_step(net, c)
    means = m._means()
    for t, held, index in zip(tensors, m._held.held, m._held.index):
        assert torch.equal(t[held], means[index[held]])
    c.epoch = 5
    m.on_epoch_start(net, c)
    assert "snap step 2 of 2: 75." in said[2]
    for c.epoch in (6, 7):
        m.on_epoch_start(net, c)
    assert len(said) == 3                           # the last quarter retrains, no step
    assert m.epoch_stats(net)["fc2"]["snap_held"] == 0.75


def test_held_weights_keep_their_component_through_the_final_snap():
    torch.manual_seed(0)
    net = TwoLayer()
    m, c, said = gradual(net)
    c.epoch = 4
    m.on_epoch_start(net, c)
    # component 1's mean moves next to 0 with a tiny weight: at that mean the zero component is the most
    # responsible one, so a plain snap would prune the weights held there
    set_mixture(m, [0.02, 0.8], [0.3, 0.01, 0.05], [1e-6, 1.0 - 1e-6])
    mu, var, pi = m.mixture_arrays()
    m.after_step(net, c)
    on_one = [(t, held & (index == 1)) for t, held, index in zip(m.prior_tensors(), m._held.held, m._held.index)]
    assert sum(int(sel.sum()) for _, sel in on_one) > 0
    m.finalize(net, c)
    merged = merge_components(mu, var, pi, m.params.merge_kl)[0][merge_roots(mu, var, m.params.merge_kl)]
    assert merged[1] != 0.0
    for t, sel in on_one:
        assert torch.all(t[sel] == torch.tensor(merged[1], dtype=t.dtype))


def test_a_cheap_trial_snap_changes_nothing():
    net = TwoLayer()
    m, c, said = gradual(net)
    m._tau, m._scale = 0.04, 0.04 / c.num_train     # raised by the budget: kept where nothing snaps in steps
    with torch.no_grad():                           # weights already at the means: the snap is free
        for t in m.prior_tensors():
            t.zero_()
    for epoch in range(8):
        c.epoch = epoch
        m.on_epoch_start(net, c)
    assert m._held is None and len(said) == 1 and "all weights snap at the end" in said[0]
    assert m._tau == 0.04
    assert m.epoch_stats(net)["fc1"]["snap_held"] == 0.0


def test_gradual_snap_off_tries_nothing():
    net = TwoLayer()
    m, c, said = gradual(net, snap_steps=0)
    for epoch in range(8):
        c.epoch = epoch
        m.on_epoch_start(net, c)
    assert m._held is None and said == []


def test_a_run_with_gradual_snap_records_the_held_share(tmp_path):
    # tau so small that the prior gathers nothing, and the paper's wide initial components under a heavy
    # zero component: at the half the trial snap prunes nearly everything, on any data
    config = H.make_config("sws", tmp_path / "runs", params={"tau": 1e-6, "snap_steps": 2, "init_sigma": 0.25,
                                                                 "pi_zero": 0.9999},
                           epochs=4, train={"optimizer": "adam", "lr": 1e-3})
    events = H.run_events(config)
    fin = H.finished(events)
    assert fin.status == "completed", fin.error
    said = [e.text for e in events if type(e).__name__ == "Message"]
    assert any("the weights snap in steps" in t for t in said), said
    run = read_run(fin.run_path)
    assert list(run.metrics["point_kind"]) == [0, 1, 1, 1, 1, 2]
    held = run.layers["fc1"]["snap_held"]
    assert np.isnan(held[0]) and list(held[1:]) == [0.0, 0.0, 0.5, 0.75, 0.75]
    state, _ = read_model(fin.run_path)
    assert layer_values_are_means(state["fc1.weight"], run.layers["fc1"]["mix_mean"][-1])


def test_a_narrow_zero_component_lets_the_free_weights_retrain_without_the_prior():
    """Where the prior has parted pruned from kept weights (zero narrower than every other component), the
    steps retrain the free weights on the data term alone and the mixture stays as it is; a wide zero keeps
    the prior on (the test above)."""
    torch.manual_seed(0)
    net = TwoLayer()
    m, c, said = gradual(net)
    m._tau, m._scale = 0.04, 0.04 / c.num_train     # as if the snap budget had raised tau
    set_mixture(m, [-0.8, 0.8], [0.001, 0.05, 0.05], [0.5, 0.5])     # narrow zero: fc1's weights fall outside
    c.epoch = 4
    m.on_epoch_start(net, c)
    assert "snap in steps" in said[0]
    assert said[1].startswith("soft weight-sharing: the zero component (sigma 0.001) is narrower than every "
                              "other (from 0.05): the free weights retrain without the prior")
    assert m.penalty(net, c) is None                # nothing pulls the free weights, nothing moves the mixture
    assert m._tau == 0.04                           # no tau to reset: it is not used
    assert m.epoch_stats(net)["fc1"]["tau"] == 0.0  # the run file says the prior was off (the mixture tab)
    assert "snap step 1 of 2" in said[2]
    mixture = [t.detach().clone() for t in (m.mu_free, m.log_lambda, m.rho)]
    optimizer = torch.optim.Adam([{"params": list(net.parameters())}, *m.param_groups(net)[1:]], lr=0.01)
    x, y = torch.randn(16, 60), torch.randint(0, 3, (16,))
    for _ in range(3):                              # the run loop's step: the penalty is None, so the task loss
        optimizer.zero_grad(set_to_none=True)       # alone trains
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
        m.after_step(net, c)
    assert all(torch.equal(a, b.detach()) for a, b in zip(mixture, (m.mu_free, m.log_lambda, m.rho)))
    means = m._means()
    for t, held, index in zip(m.prior_tensors(), m._held.held, m._held.index):
        assert torch.equal(t[held], means[index[held]])    # the held weights stay at the fixed means
