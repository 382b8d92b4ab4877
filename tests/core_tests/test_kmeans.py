"""Trained quantization (Deep Compression) on hand-made layers, calling the method's hooks directly."""

from __future__ import annotations

import core_helpers as H
import pytest
import torch
from torch import nn

from workbench.core.errors import ParamError
from workbench.methods.kmeans import TrainedQuantization, init_centroids, lloyd_1d


def test_linear_init_spans_min_to_max_evenly():
    w = torch.tensor([-1.0, 0.2, 3.0, 0.5])
    c = init_centroids(w, 5, "linear", torch.Generator())
    assert torch.allclose(c, torch.tensor([-1.0, 0.0, 1.0, 2.0, 3.0]))


def test_lloyd_finds_the_cluster_means_of_a_hand_made_set():
    w = torch.tensor([-1.1, -1.0, -0.9, 0.45, 0.5, 0.55, 1.9, 2.1])
    c, assign = lloyd_1d(w, torch.tensor([-1.1, 0.4, 1.0]), iters=20)
    assert torch.allclose(c, torch.tensor([-1.0, 0.5, 2.0]), atol=1e-6)
    assert assign.tolist() == [0, 0, 0, 1, 1, 1, 2, 2]


def _layer():
    fc = nn.Linear(4, 2)
    with torch.no_grad():
        fc.weight.copy_(torch.tensor([[-1.0, 0.0, -0.9, 0.5], [0.55, 0.0, 2.0, 2.1]]))
    return nn.Sequential(fc)


def test_shared_weights_zeros_stay_pruned_and_centroids_get_summed_gradients():
    model = _layer()
    method = TrainedQuantization.from_values({"bits_fc": 2, "init": "linear"})   # 4 clusters
    method.prepare(model, H.run_context())
    fc = model[0]
    w = fc.weight
    assert w[0, 1] == 0 and w[1, 1] == 0                 # pruned entries stay exactly zero
    assert len(torch.unique(w[w != 0])) <= 4
    x = torch.randn(3, 4)
    out = model(x)
    grad_out = torch.randn_like(out)
    (out * grad_out).sum().backward()
    # d loss / d W for a linear layer is grad_out^T x; each centroid gets the sum over its members
    dw = grad_out.T @ x
    assign = fc.weight_assign
    expected = torch.zeros(len(fc.weight_centroids))
    for k in range(len(expected)):
        expected[k] = dw[assign == k].sum()
    assert torch.allclose(fc.weight_centroids.grad, expected, atol=1e-5)
    with torch.no_grad():                                   # a training step moves whole clusters
        fc.weight_centroids -= 0.1 * fc.weight_centroids.grad
    state = method.effective_state(model)
    w2 = state["0.weight"]
    assert w2[0, 1] == 0 and w2[1, 1] == 0
    assert torch.equal(w2[assign == assign[0, 0]], w2[0, 0].expand(int((assign == assign[0, 0]).sum())))


def test_an_already_shared_layer_keeps_its_values_as_the_centroids():
    """After soft weight-sharing a layer holds a few values; k-means from a linear init put -0.02 and 0.01
    in one cluster (both nearest -0.14 of 8 centroids over [-1, 2]) and moved them to their mean."""
    fc = nn.Linear(5, 2)
    values = torch.tensor([[-1.0, -0.02, 0.01, 0.6, 2.0], [0.0, 0.6, -0.02, 0.0, 0.01]])
    with torch.no_grad():
        fc.weight.copy_(values)
    model = nn.Sequential(fc)
    method = TrainedQuantization.from_values({"bits_fc": 3, "init": "linear"})
    method.prepare(model, H.run_context())
    assert torch.equal(fc.weight_centroids.detach(), torch.tensor([-1.0, -0.02, 0.01, 0.6, 2.0]))
    assert torch.equal(method.effective_state(model)["0.weight"], values)
    x = torch.randn(3, 5)
    model(x).sum().backward()                                 # the five values are what fine-tuning trains
    assert fc.weight_centroids.grad.shape == (5,)


def test_finalize_leaves_a_plain_layer_with_at_most_2_to_the_b_values():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(30, 20))
    with torch.no_grad():
        model[0].weight[model[0].weight.abs() < 0.05] = 0
    zeros = model[0].weight == 0
    method = TrainedQuantization.from_values({"bits_fc": 3})
    method.prepare(model, H.run_context())
    before = method.effective_state(model)["0.weight"].clone()
    method.finalize(model, H.run_context())
    w = model[0].weight
    assert isinstance(w, nn.Parameter) and not hasattr(model[0], "weight_centroids")
    assert torch.equal(w.detach(), before)
    assert len(torch.unique(w[w != 0])) <= 8 and torch.equal(w == 0, zeros)
    assert set(model.state_dict()) == {"0.weight", "0.bias"}


def test_biases_pruned_by_an_earlier_stage_stay_zero_through_training():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 4))
    with torch.no_grad():
        model[0].bias[:2] = 0
    method = TrainedQuantization.from_values({"bits_fc": 2})
    c = H.run_context()
    method.prepare(model, c)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(8, 6)).pow(2).sum().backward()
        optimizer.step()
        method.after_step(model, c)
    bias = model[0].bias.detach()
    assert torch.equal(bias[:2], torch.zeros(2)) and bool((bias[2:] != 0).all())


def test_bits_layers_naming_an_unknown_layer():
    model = _layer()                                        # one layer, named "0"
    method = TrainedQuantization.from_values({"bits_layers": "0=3,fc9=4"})
    with pytest.raises(ParamError, match="fc9"):
        method.prepare(model, H.run_context())
    assert isinstance(model[0].weight, nn.Parameter) and not method.layers    # nothing was replaced


def test_density_init_sits_at_the_weights_quantiles():
    c = init_centroids(torch.arange(100.0), 4, "density", torch.Generator())
    assert c.tolist() == [12.0, 37.0, 62.0, 87.0]       # the 12.5/37.5/62.5/87.5 % ranks
