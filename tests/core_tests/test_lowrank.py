"""Low-rank compression (Alvarez & Salzmann 2017) and the SVD baseline: the proximal operators, rank
selection, factorised and thinned layers, the structure in the run file, accounting and export."""

from __future__ import annotations

import json

import core_helpers as H
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.core.accounting import account
from workbench.core.errors import CheckpointError, ParamError
from workbench.core.events import Cancelled, Evaluated, Message
from workbench.core.store import read_model, read_run
from workbench.engine.export import export_run, load_compact, read_compact
from workbench.methods.factorize import compress
from workbench.methods.lowrank import LowRank, SVDTruncation
from workbench.methods.proximal import SVT, energy_curve, energy_rank, sparse_group_prox, svt_dense
from workbench.methods.storage import encode_state
from workbench.models import graph, structure, zoo


def _matrix(sigma, m, n, seed=0) -> torch.Tensor:
    """An m x n matrix with the given singular values (random orthonormal singular vectors)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.linalg.qr(torch.randn(m, len(sigma), generator=g, dtype=torch.float64)).Q
    v = torch.linalg.qr(torch.randn(n, len(sigma), generator=g, dtype=torch.float64)).Q
    return (u * torch.tensor(sigma, dtype=torch.float64)) @ v.T


# --- proximal operators --------------------------------------------------------------------------------

def test_svt_is_the_nuclear_norm_prox_of_a_direct_svd():
    w = torch.randn(7, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    u, s, vh = np.linalg.svd(w.numpy(), full_matrices=False)
    theta = float(s[2])                       # the two largest survive, shrunk; the rest vanish
    expected = u @ np.diag(np.maximum(s - theta, 0)) @ vh
    np.testing.assert_allclose(svt_dense(w, theta).numpy(), expected, atol=1e-12)
    layer = w.float().clone()
    SVT({"w": layer}, solver="full")(theta)
    np.testing.assert_allclose(layer.numpy(), expected, atol=1e-5)
    assert np.linalg.matrix_rank(layer.numpy(), tol=1e-4) == 2
    # prox optimality: W - prox(W) = theta * (U_r V_r^T + tail), the subgradient of theta ||.||_*
    np.testing.assert_allclose(np.linalg.svd(w.numpy() - expected, compute_uv=False)[:2], [theta, theta])


def test_truncated_svt_agrees_with_the_full_one_where_valid_and_falls_back_otherwise():
    theta = 0.05
    sigma = [5.0, 3.0, 2.0, 1.0] + [0.01] * 36           # rank 4 above the threshold, tail below it
    a, b = _matrix(sigma, 40, 60, seed=1).float(), _matrix(sigma, 40, 60, seed=2).float()
    wa, wb = a.clone(), b.clone()
    svt = SVT({"a": wa, "b": wb}, solver="auto", oversample=4)
    svt(theta)                                            # first prox: full, learns rank and basis
    assert svt.stats.full == 1 and svt.ranks() == {"a": 4, "b": 4}
    for w, ref in ((wa, a), (wb, b)):                     # two layers of one shape: one batched call
        np.testing.assert_allclose(w.numpy(), svt_dense(ref.double(), theta).numpy(), atol=1e-5)
    # a small step (as after an optimizer step), then the truncated prox: r + p = 8 <= 40 / 2
    noise = 1e-3 * torch.randn(40, 60, generator=torch.Generator().manual_seed(4))
    wa += noise
    expected = svt_dense(wa.double(), theta)
    svt(theta)
    assert svt.stats.truncated == 1 and svt.stats.rejected == 0
    np.testing.assert_allclose(wa.numpy(), expected.numpy(), atol=1e-4)
    # now a step that adds many directions above the threshold: sigma_{r+p} > theta, so a full SVD
    wa += _matrix([0.5] * 20, 40, 60, seed=5).float()
    expected = svt_dense(wa.double(), theta)
    svt(theta)
    assert svt.stats.rejected == 1 and svt.stats.full == 2
    np.testing.assert_allclose(wa.numpy(), expected.numpy(), atol=1e-4)


def test_energy_threshold_rank_on_a_hand_made_spectrum():
    s = [4.0, 3.0, 2.0, 1.0]          # sigma^2: 16, 9, 4, 1 of 30 -> 0.533, 0.833, 0.967, 1
    assert [energy_rank(s, e, "sigma2") for e in (0.5, 0.8, 0.9, 0.97, 1.0)] == [1, 2, 3, 4, 4]
    # sigma: 4, 3, 2, 1 of 10 -> 0.4, 0.7, 0.9, 1; a fraction reached exactly needs no more
    assert [energy_rank(s, e, "sigma") for e in (0.4, 0.7, 0.71, 0.9, 1.0)] == [1, 2, 3, 3, 4]
    assert energy_rank([1.0, 0.0, 0.0], 1.0) == 1
    assert energy_rank([0.0, 0.0], 0.9) == 0


def test_energy_curve_is_the_cumulative_fraction_the_rank_is_read_from():
    np.testing.assert_allclose(energy_curve([1.0, 3.0, 2.0, 4.0], "sigma"), [0.4, 0.7, 0.9, 1.0])  # sorted
    np.testing.assert_allclose(energy_curve([4.0, 3.0, 2.0, 1.0], "sigma2"), np.array([16, 25, 29, 30]) / 30)
    np.testing.assert_array_equal(energy_curve([0.0, 0.0], "sigma"), [0.0, 0.0])


def test_sparse_group_prox_soft_thresholds_then_removes_whole_units():
    w = torch.tensor([[3.0, -0.5, 0.2], [0.1, -0.1, 0.05], [1.0, 2.0, -2.0]])
    b = torch.tensor([1.0, 0.05, 0.0])
    l1, group = 0.1, 0.2
    expected_w = w.sign() * (w.abs() - l1).clamp_min(0)
    norms = ((expected_w ** 2).sum(1) + b ** 2).sqrt()
    scale = (1 - group * np.sqrt(4) / norms).clamp_min(0)
    sparse_group_prox(w, b, l1, group)
    assert torch.allclose(w, expected_w * scale[:, None]) and torch.allclose(b, torch.tensor([1.0, 0.05, 0]) * scale)
    assert torch.all(w[1] == 0) and b[1] == 0                 # the weak unit is gone, bias included
    assert torch.all(w[0] != 0) and w[2].abs().sum() > 0


# --- factorised and thinned layers ---------------------------------------------------------------------

def _truncated(weight: torch.Tensor, rank: int) -> torch.Tensor:
    m = weight.shape[0]
    u, s, vh = torch.linalg.svd(weight.reshape(m, -1).double(), full_matrices=False)
    return ((u[:, :rank] * s[:rank]) @ vh[:rank]).float().reshape(weight.shape)


def test_factorised_linear_and_conv_reproduce_the_truncated_weight():
    torch.manual_seed(0)
    fc = nn.Linear(30, 20)
    conv = nn.Conv2d(6, 16, 3, stride=2, padding=1)
    with torch.no_grad():
        fc.weight.copy_(_matrix([8, 4, 2, 1, 0.5] + [0.01] * 15, 20, 30).float())
        conv.weight.copy_(_matrix([6, 3, 1] + [0.02] * 13, 16, 54, seed=7).float().reshape(16, 6, 3, 3))
    model = nn.Sequential(conv, nn.Flatten(), nn.Linear(16 * 4 * 4, 30), nn.ReLU(), fc)
    w_fc, w_conv = fc.weight.detach().clone(), conv.weight.detach().clone()
    # sigma^2 energy: fc 64+16 of 85.3 = 0.938 -> rank 2 at 0.9; conv 36 + 9 of 46.0 -> rank 2
    spec = compress(model, ["0", "4"], energy=0.9, energy_of="sigma2", remove_units=False, log=lambda s: None)
    assert spec["layers"]["4"]["rank"] == 2 and spec["layers"]["0"]["rank"] == 2
    assert "2" not in spec["layers"]                                        # not chosen, untouched
    f, c = model[4], model[0]
    assert isinstance(f, nn.Sequential) and [type(m) for m in f] == [nn.Linear, nn.Linear]
    assert (f[0].in_features, f[0].out_features, f[0].bias, f[1].out_features) == (30, 2, None, 20)
    assert [type(m) for m in c] == [nn.Conv2d, nn.Conv2d]
    assert (c[0].stride, c[0].padding, c[0].out_channels, c[1].kernel_size) == ((2, 2), (1, 1), 2, (1, 1))
    x = torch.randn(5, 30)
    with torch.no_grad():
        assert torch.allclose(f(x), F.linear(x, _truncated(w_fc, 2), f[1].bias), atol=1e-5)
        xc = torch.randn(2, 6, 8, 8)
        assert torch.allclose(c(xc), F.conv2d(xc, _truncated(w_conv, 2), c[1].bias, stride=2, padding=1),
                              atol=1e-5)
    assert torch.allclose(structure.dense_layer(model, "4")[0], _truncated(w_fc, 2), atol=1e-5)


def test_a_layer_stays_whole_when_factors_would_not_save_parameters():
    model = nn.Sequential(nn.Linear(8, 6))
    with torch.no_grad():
        model[0].weight.copy_(_matrix([1.0] * 6, 6, 8).float())        # flat spectrum: rank 6 > 48/14
    messages = []
    spec = compress(model, ["0"], energy=0.9, energy_of="sigma2", remove_units=True, log=messages.append)
    assert spec["layers"] == {} and isinstance(model[0], nn.Linear)
    assert any("stays whole" in m for m in messages)


def _tiny(key):
    torch.manual_seed(0)
    return zoo.build_model(key, (1, 8, 8), 4).eval()


def test_removed_units_disappear_and_the_network_computes_the_same():
    model = _tiny("mlp_tiny")                         # fc1 (32 x 64) -> ReLU -> fc2 (4 x 32)
    with torch.no_grad():
        model.fc1.weight[[1, 5, 6, 20]] = 0
        model.fc1.bias[[1, 5]] = 0                    # silent units
        model.fc1.bias[6], model.fc1.bias[20] = 0.7, -0.4   # constant 0.7 (folded), ReLU(-0.4) = 0
        model.fc2.weight[3] = 0                       # the classifier's outputs are never removed
    x = torch.randn(9, 1, 8, 8)
    before = model(x)
    messages = []
    spec = compress(model, ["fc1"], energy=1.0, energy_of="sigma2", remove_units=True, log=messages.append)
    assert model.fc1.out_features == 28 and model.fc2.in_features == 28 and model.fc2.out_features == 4
    assert spec["layers"]["fc1"]["out_keep"] == [[0, 1], [2, 5], [7, 20], [21, 32]]
    assert spec["layers"]["fc2"]["in_keep"] == spec["layers"]["fc1"]["out_keep"]
    assert torch.allclose(model(x), before, atol=1e-5)
    assert spec["layers"]["fc1"]["rank"] is None and spec["layers"]["fc2"]["rank"] is None
    assert any("4 of 32 units removed" in m for m in messages)
    compress(_tiny("mlp_tiny"), ["fc2"], energy=1.0, energy_of="sigma2", remove_units=True, log=messages.append)
    assert "fc2: units are kept, since its outputs are the model's outputs" in messages
    # the original architecture's dense weights: removed units as zeros, same function
    dense = zoo.build_model("mlp_tiny", (1, 8, 8), 4).eval()
    dense.load_state_dict(structure.dense_state_dict(model))
    assert torch.allclose(dense(x), before, atol=1e-5)


def test_conv_channels_removed_before_a_flatten_take_their_column_blocks():
    model = _tiny("cnn_tiny")                         # conv1 (4 ch, pad 1) -> ReLU -> pool -> fc1 (4 x 64)
    with torch.no_grad():
        model.conv1.weight[2] = 0
        model.conv1.bias[2] = 0.3                     # a constant channel: folded into fc1's bias
    x = torch.randn(6, 1, 8, 8)
    before = model(x)
    spec = compress(model, ["conv1"], energy=1.0, energy_of="sigma2", remove_units=True, log=lambda s: None)
    assert model.conv1.out_channels == 3 and model.fc1.in_features == 48   # 3 channels x 4 x 4
    assert spec["layers"]["fc1"]["in_keep"] == [[0, 32], [48, 64]]
    assert torch.allclose(model(x), before, atol=1e-5)


def test_units_feeding_a_residual_addition_are_kept_with_a_reason():
    succ, order = graph.successors(zoo.build_model("resnet20", (3, 8, 8), 4))
    assert "residual" in succ["layer1.0.conv2"] and "BatchNorm2d" in succ["layer1.0.conv1"]
    assert succ["fc"] == "its outputs are the model's outputs"
    lenet5, _ = graph.successors(zoo.build_model("lenet5", (1, 28, 28), 10))
    assert lenet5["conv2"] == graph.Successor("fc1", relu=False, flatten=True)
    assert lenet5["fc1"] == graph.Successor("fc2", relu=True, flatten=False)


def test_structure_round_trip_and_misfits():
    model = _tiny("mlp_tiny")
    compress(model, ["fc1"], energy=0.5, energy_of="sigma", remove_units=False, log=lambda s: None)
    spec = structure.structure_of(model)
    fresh = structure.apply_structure(_tiny("mlp_tiny"), structure.to_json(spec))
    fresh.load_state_dict(model.state_dict())
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(fresh(x), model(x))
    with pytest.raises(CheckpointError, match="shape"):
        structure.apply_structure(zoo.build_model("mlp_tiny", (1, 4, 4), 4), spec)
    with pytest.raises(ParamError, match="already factorised"):
        LowRank().prepare(model, H.run_context())


def test_accounting_counts_factors_against_the_original_dense_layer():
    model = _tiny("mlp_tiny")
    compress(model, ["fc1"], energy=0.3, energy_of="sigma2", remove_units=False, log=lambda s: None)
    r = structure.structure_of(model)["layers"]["fc1"]["rank"]
    report = account(encode_state(model, model.state_dict()))
    fc1 = report.layer("fc1")
    assert [t.name for t in fc1.tensors] == ["fc1.0.weight", "fc1.1.weight", "fc1.1.bias"]
    assert fc1.dense_params == 32 * 64 + 32                          # m n of the original, plus bias
    assert fc1.stored_params == r * (64 + 32) + 32
    assert report.dense_params == sum(p.numel() for p in _tiny("mlp_tiny").parameters())
    assert report.dense_params == structure.dense_param_count(model)
    assert report.param_ratio == pytest.approx(report.dense_params / (r * 96 + 32 + 132))


def test_bad_layer_names_are_one_line_errors():
    with pytest.raises(ParamError, match="unknown layer"):
        LowRank.from_values({"layers": "fc1,fc9"}).prepare(_tiny("mlp_tiny"), H.run_context())
    with pytest.raises(ParamError, match="selects no layer"):
        SVDTruncation.from_values({"layers": "conv"}).prepare(_tiny("mlp_tiny"), H.run_context())
    with pytest.raises(ParamError, match="energy"):
        SVDTruncation.from_values({"energy": 0.0})


# --- cancelling the long hooks -------------------------------------------------------------------------

def test_cancelling_stops_svd_truncation_between_layers_and_leaves_the_model_untouched():
    model = _tiny("mlp_tiny")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ctx = H.run_context()
    messages = []

    def log(message):                     # the user cancels while the first layer is being cut
        messages.append(message)
        if message.startswith("fc1: rank"):
            ctx.cancel.cancel()

    ctx.log = log
    with pytest.raises(Cancelled):
        SVDTruncation.from_values({"energy": 0.5, "remove_units": False}).prepare(model, ctx)
    assert any(m.startswith("fc1: rank") for m in messages)
    assert not any(m.startswith("fc2") for m in messages)          # stopped before the next layer's SVD
    assert structure.structure_of(model) is None
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_cancelled_run_stops_lowrank_finalize_before_any_layer_is_cut():
    model = _tiny("mlp_tiny")
    method = LowRank.from_values({"energy": 0.5})
    ctx = H.run_context()
    method.prepare(model, ctx)
    ctx.cancel.cancel()
    with pytest.raises(Cancelled):
        method.finalize(model, ctx)
    assert structure.structure_of(model) is None and isinstance(model.fc1, nn.Linear)


# --- whole runs: run file, export ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def lowrank_run(tmp_path_factory):
    """A lowrank run with group Lasso strong enough to cut units and ranks within 2 epochs on `tiny`."""
    params = {"tau": 1.0, "group_lambda": 0.1, "energy": 0.9, "prox_every": 2}
    config = H.make_config("lowrank", tmp_path_factory.mktemp("lowrank"), params=params,
                           train={"lr": 0.05})
    events = H.run_events(config)
    fin = H.finished(events)
    assert fin.status == "completed", fin.error
    return events, fin


def test_run_file_records_spectra_ranks_and_the_structure(lowrank_run):
    events, fin = lowrank_run
    run = read_run(fin.run_path)
    fc1 = run.layers["fc1"]
    assert fc1["singular_values"].shape == (4, 32)        # reference, 2 epochs, finalized; min(32, 64)
    assert np.all(np.diff(fc1["singular_values"], axis=1) <= 1e-9)
    assert fc1["numerical_rank"][-2] < 32                  # the prox zeroed singular values
    assert fc1["rank"][-1] <= fc1["numerical_rank"][-2]
    # what the Spectrum tab draws of the threshold, per point: the knobs, the curve, the rank it chooses
    np.testing.assert_array_equal(fc1["energy_threshold"], [0.9] * 4)
    np.testing.assert_array_equal(fc1["energy_power"], [1.0] * 4)          # energy_of: sigma (the default)
    assert fc1["cumulative_energy"].shape == fc1["singular_values"].shape
    for sigma, curve, chosen in zip(fc1["singular_values"], fc1["cumulative_energy"], fc1["energy_rank"]):
        np.testing.assert_allclose(curve, np.cumsum(sigma) / sigma.sum())
        assert chosen == np.argmax(curve >= 0.9 - 1e-9) + 1 == energy_rank(sigma, 0.9, "sigma")
    # the cut took the last epoch's energy rank; the cut spectrum (its tail gone) reaches 0.9 sooner
    assert fc1["energy_rank"][-2] == fc1["rank"][-1] >= fc1["energy_rank"][-1]
    assert fc1["units"][-1] < 32                           # group Lasso removed units
    state, attrs = read_model(fin.run_path)
    spec = json.loads(attrs["structure"])
    assert spec["layers"]["fc1"]["rank"] == int(fc1["rank"][-1])
    kept = int(fc1["units"][-1])                            # the bias of each kept unit is stored too
    assert fc1["stored_params"][-1] == fc1["stored_weights"][-1] + kept
    assert "fc1.0.weight" in state and "fc1.weight" not in state
    messages = [e.text for e in events if type(e).__name__ == "Message"]
    assert any("prox steps" in m and "ms each" in m for m in messages)
    assert any("units removed" in m for m in messages)


def test_prox_stats_are_logged_at_each_epochs_end_before_its_point(lowrank_run):
    events, _ = lowrank_run
    order = []
    for e in events:
        if isinstance(e, Message) and "prox steps" in e.text:
            order.append(e.text.split(":")[0])
        elif isinstance(e, Evaluated):
            order.append(f"{e.label} {e.epoch}")
    # 4 steps per epoch, a prox every 2: each epoch's two proxes, none left over for finalize
    assert order == ["reference 0", "epoch 1", "epoch 1", "epoch 2", "epoch 2", "finalized 2"]
    assert all(" 2 prox steps" in e.text for e in events if isinstance(e, Message) and "prox steps" in e.text)


def test_compact_export_reloads_thinner_stock_layers_with_the_same_outputs(lowrank_run, tmp_path):
    _, fin = lowrank_run
    s = fin.summary
    info = export_run(fin.run_path, "compact", tmp_path / "m.cwbc")
    header, _ = read_compact(tmp_path / "m.cwbc")
    spec = header["structure"]
    model = load_compact(tmp_path / "m.cwbc")
    assert isinstance(model.fc1, nn.Sequential) and all(type(m) is nn.Linear for m in model.fc1)
    kept = sum(b - a for a, b in spec["layers"]["fc1"]["out_keep"])
    assert model.fc1[1].out_features == kept < 32
    assert (model.fc2[0] if spec["layers"]["fc2"]["rank"] else model.fc2).in_features == kept
    assert sum(p.numel() for p in model.parameters()) == s["stored_params"] < s["dense_params"]
    assert abs(info.size_bytes - s["bits"] / 8) <= 0.05 * s["bits"] / 8 + info.header_bytes
    x, y = H.tiny_test_set()
    assert H.accuracy(model, x, y) == pytest.approx(s["test_accuracy"])
    H.assert_stored_and_dense_match(fin.run_path, model, x, tmp_path, atol=1e-5)


def test_svd_with_no_epochs_is_pure_truncation(tmp_path):
    config = H.make_config("svd", tmp_path, params={"energy": 0.6, "energy_of": "sigma2", "layers": "fc1"}, epochs=0)
    fin = H.finished(H.run_events(config))
    assert fin.status == "completed", fin.error
    state, attrs = read_model(fin.run_path)
    rank = json.loads(attrs["structure"])["layers"]["fc1"]["rank"]
    reference = _reference(config)
    w = reference.fc1.weight.detach()
    sigma = torch.linalg.svdvals(w.double())
    assert rank == energy_rank(sigma, 0.6, "sigma2") < 21
    fc1 = read_run(fin.run_path).layers["fc1"]
    np.testing.assert_array_equal(fc1["energy_power"], [2.0, 2.0])          # reference, finalized
    assert fc1["energy_rank"][0] == rank                  # the reference's: the rank the cut took
    assert fc1["energy_rank"][1] == energy_rank(fc1["singular_values"][1], 0.6, "sigma2") < rank   # the cut one's
    np.testing.assert_allclose(fc1["cumulative_energy"][0], energy_curve(sigma, "sigma2").numpy())
    assert "fc2" in read_run(fin.run_path).layers and "energy_rank" not in read_run(fin.run_path).layers["fc2"]
    product = torch.from_numpy(state["fc1.1.weight"]) @ torch.from_numpy(state["fc1.0.weight"])
    assert torch.allclose(product, _truncated(w, rank), atol=1e-5)
    assert np.array_equal(state["fc2.weight"], reference.fc2.weight.detach().numpy())


def _reference(config):
    from workbench import data as data_mod
    from workbench.core.events import CancelToken
    from workbench.engine.reference import resolve_model

    gen = resolve_model(config, data_mod.load_dataset("tiny"), torch.device("cpu"), CancelToken())
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value[0]
