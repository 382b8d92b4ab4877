"""Structured pruning (methods/structured.py: L1-norm filter pruning, network slimming): which channels
each criterion removes, per-layer limits, the FLOP budget, the schedule, the slimming penalty, bad
input; and through the real run loop on `tiny`: ResNet-20 at half the multiply-adds and a concatenating
model from a Python file come out physically smaller in the run file, its compact file and its ONNX
export, with outputs equal to the stored model's."""

from __future__ import annotations

import math
import textwrap

import core_helpers as H
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.core import params as P
from workbench.core.config import RunConfig, StageConfig
from workbench.core.errors import ParamError
from workbench.core.events import Message
from workbench.core.store import read_run
from workbench.engine.export import _rebuild, export_run, load_compact
from workbench.methods import channel_select as sel
from workbench.methods.base import RunContext
from workbench.methods.structured import L1FilterPruning, NetworkSlimming
from workbench.models import structure, zoo
from workbench.models.channel_groups import analyse


class TwoConv(nn.Module):
    """conv1 (6 filters) -> ReLU -> conv2 (4 filters) -> BatchNorm -> ReLU -> pool -> fc, with filter L1
    norms and BatchNorm scales set by hand."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 1, bias=False)
        self.conv2 = nn.Conv2d(6, 4, 1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)
        with torch.no_grad():
            self.conv1.weight.copy_(torch.tensor([6.0, 1.0, 5.0, 2.0, 4.0, 3.0]).view(6, 1, 1, 1))
            self.conv2.weight.copy_(torch.tensor([1.5, 4.5, 2.5, 3.5]).view(4, 1, 1, 1) / 6)
            self.bn.weight.copy_(torch.tensor([0.5, -0.1, 0.3, 0.05]))

    def forward(self, x):
        x = F.relu(self.bn(self.conv2(F.relu(self.conv1(x)))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def _ctx(epochs=2, log=None):
    return RunContext(device=torch.device("cpu"), steps_per_epoch=4, total_steps=4 * epochs, num_train=512,
                      log=log or (lambda m: None))


def _prune_once(method_cls, model, **values):
    """prepare -> the first training batch (which traces and prunes) -> finalize, outside the run loop."""
    method = method_cls(P.build(method_cls.Params, values))
    logs: list[str] = []
    ctx = _ctx(log=logs.append)
    method.prepare(model, ctx)
    method.on_epoch_start(model, ctx)
    model.train()(torch.rand(8, 1, 4, 4))
    method.finalize(model, ctx)
    return method, logs


def _kept_filters(conv: nn.Conv2d) -> list[float]:
    return conv.weight.detach().abs().reshape(conv.weight.shape[0], -1).sum(1).mul(1e3).round().div(1e3).tolist()


def test_l1_removes_each_layers_smallest_filters_and_global_ranking_respects_min_keep():
    model = TwoConv()
    _prune_once(L1FilterPruning, model, prune_ratio=0.5)
    assert _kept_filters(model.conv1) == [6.0, 5.0, 4.0]                  # 1, 2, 3 went
    # conv2 keeps its filters of norm 4.5 and 3.5, each now reading 3 of its 6 inputs (norm halved)
    assert _kept_filters(model.conv2) == [2.25, 1.75]
    assert model.bn.num_features == 2 and model.fc.in_features == 2
    # one ranking over both layers, 6 of 10 channels: the six smallest (1, 1.5, 2, 2.5, 3, 3.5) would
    # leave conv2 one filter, but min_keep 0.3 keeps two, so conv1's next filter (4) goes instead
    model = TwoConv()
    _prune_once(L1FilterPruning, model, prune_ratio=0.6, scope="global", min_keep=0.3)
    assert _kept_filters(model.conv1) == [6.0, 5.0]
    assert _kept_filters(model.conv2) == pytest.approx([1.5, 3.5 / 3], abs=1e-3)      # 4.5 and 3.5 x 2/6


def test_slimming_removes_the_smallest_batchnorm_scales_and_penalises_them():
    model = TwoConv()
    method, logs = _prune_once(NetworkSlimming, model, prune_ratio=0.5, prune_start=0.0)
    assert model.bn.weight.detach().tolist() == pytest.approx([0.5, 0.3])           # -0.1 and 0.05 went
    assert model.conv1.out_channels == 6          # its channels have no BatchNorm scale: slimming leaves them
    # the penalty lambda sum |gamma| over the removable channels' scales, until the last prune
    model = TwoConv()
    method = NetworkSlimming(P.build(NetworkSlimming.Params, {"sparsity_lambda": 0.01, "prune_start": 0.5}))
    ctx = _ctx()
    method.prepare(model, ctx)
    method.on_epoch_start(model, ctx)
    model.train()(torch.rand(8, 1, 4, 4))                    # traces; the prune is due at epoch 2
    penalty = method.penalty(model, ctx)
    assert float(penalty) == pytest.approx(0.01 * (0.5 + 0.1 + 0.3 + 0.05))
    penalty.backward()
    assert model.bn.weight.grad.tolist() == pytest.approx([0.01, -0.01, 0.01, 0.01])


def test_flops_budget_is_met_in_both_rankings():
    model = zoo.build_model("resnet20", (3, 8, 8), 4)
    a = analyse(model, (torch.randn(2, 3, 8, 8),))
    floor = sel.floors(a, 0.1, {"conv1": 1.0})
    dense = a.macs()
    for scope in ("layer", "global"):
        removed = sel.select(a, sel.l1_scores(a), floor, scope=scope, budget=0.5 * dense)
        assert 0.45 * dense <= a.macs(removed) <= 0.5 * dense, scope
        outs, _ = a.removed_counts(removed)
        assert outs["conv1"] == 0                                   # kept whole by keep_layers
        assert all(m.out_channels - outs[n] >= max(1, math.ceil(0.1 * m.out_channels))
                   for n, m in a.layers.items() if isinstance(m, nn.Conv2d))
    # an iterative schedule: what an earlier step removed stays removed
    first = sel.select(a, sel.l1_scores(a), floor, scope="layer", ratio=0.25)
    second = sel.select(a, sel.l1_scores(a), floor, scope="layer", ratio=0.5, keep_removed=first)
    assert first < second
    assert sel.prune_points(4, 2, 0.0, 0.5) == [(0, 0.5), (1, 1.0)]
    assert sel.prune_points(4, 1, 0.5, 0.5) == [(2, 1.0)]
    assert sel.prune_points(1, 3, 0.5, 1.0) == [(0, 1.0)]


def test_bad_input_is_one_clear_line():
    with pytest.raises(ParamError, match="prune_ratio is 0"):
        P.build(L1FilterPruning.Params, {"prune_ratio": 0.0})
    method = L1FilterPruning(P.build(L1FilterPruning.Params, {"keep_layers": {"conv9": 1.0}}))
    with pytest.raises(ParamError, match="keep_layers names unknown layer"):
        method.prepare(TwoConv(), _ctx())
    with pytest.raises(ParamError, match="needs at least 1 epoch"):
        L1FilterPruning().prepare(TwoConv(), _ctx(epochs=0))
    thinned = TwoConv()
    structure.apply_structure(thinned, {"format": "workbench-structure", "version": 1, "layers": {
        "fc": {"kind": "fc", "shape": [3, 4], "bias": True, "out_keep": None, "in_keep": [[0, 2]], "rank": None}}})
    with pytest.raises(ParamError, match="already factorised, thinned or hashed"):
        L1FilterPruning().prepare(thinned, _ctx())


def _macs(model, x) -> int:
    """Multiply-adds per sample of every Conv / Linear call, counted from the layers' real shapes."""
    total = [0]

    def hook(m, inputs, out):
        per_output = m.in_features if isinstance(m, nn.Linear) else m.in_channels // m.groups * m.weight[0, 0].numel()
        total[0] += out.numel() // out.shape[0] * per_output

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    with torch.no_grad():
        model.eval()(x)
    for h in handles:
        h.remove()
    return total[0]


@pytest.mark.parametrize("model_key,method,shapes", [
    ("mlp_tiny", "l1filter", {"fc1.weight": (16, 64), "fc2.weight": (4, 16)}),
    ("cnn_tiny", "l1filter", {"conv1.weight": (2, 1, 3, 3), "fc1.weight": (4, 32)}),
    ("bn_tiny", "slimming", {"conv1.weight": (4, 1, 3, 3), "bn1.weight": (4,), "dw.weight": (4, 1, 3, 3),
                             "bn2.running_var": (4,), "pw.weight": (4, 4, 1, 1), "fc.weight": (4, 4)}),
])
def test_tiny_models_come_out_smaller_from_one_epoch(model_key, method, shapes, tmp_path):
    config = H.make_config(method, tmp_path / "runs", model=model_key, epochs=1, params={"prune_ratio": 0.5})
    fin = H.finished(H.run_events(config))
    assert fin.status == "completed", fin.error
    model, _, _ = _rebuild(fin.run_path)
    state = model.state_dict()
    assert {k: tuple(state[k].shape) for k in shapes} == shapes
    assert fin.summary["stored_params"] == sum(p.numel() for p in model.parameters())
    assert fin.summary["dense_params"] == sum(p.numel() for p in zoo.build_model(model_key, (1, 8, 8), 4).parameters())


def test_a_later_stage_measures_thinned_batchnorm_against_its_original_size(tmp_path):
    """slimming -> kmeans: the k-means stage encodes the model, and a thinned BatchNorm's dense size is
    still its original one (the shared encoder undercounted it: 268 of bn_tiny's 284 parameters)."""
    config = H.make_config("slimming", tmp_path / "runs", model="bn_tiny", epochs=1, params={"prune_ratio": 0.5})
    config.stages.append(StageConfig("kmeans", {}, {"epochs": 1}))
    fin = H.finished(H.run_events(config))
    assert fin.status == "completed", fin.error
    dense = sum(p.numel() for p in zoo.build_model("bn_tiny", (1, 8, 8), 4).parameters())
    assert fin.summary["dense_params"] == dense


def test_resnet20_at_half_the_multiply_adds_through_the_run_loop(tmp_path):
    config = H.make_config("l1filter", tmp_path / "runs", model="resnet20", epochs=1, pretrain_epochs=2,
                           params={"target": "flops", "flops_target": 0.5})
    events = H.run_events(config)
    fin = H.finished(events)
    assert fin.status == "completed", fin.error
    text = "\n".join(e.text for e in events if isinstance(e, Message))
    assert "thinned: parameters" in text and "outputs equal the masked model's" in text
    model, attrs, _ = _rebuild(fin.run_path)
    shape = tuple(int(v) for v in attrs["input_shape"])
    dense_model = zoo.build_model("resnet20", shape, 4)
    x, _ = H.tiny_test_set()
    assert 0.4 * _macs(dense_model, x[:2]) <= _macs(model, x[:2]) <= 0.5 * _macs(dense_model, x[:2])
    # the run file's model is the smaller one, and the accounting counts what it holds
    stored = sum(p.numel() for p in model.parameters())
    assert fin.summary["stored_params"] == stored < 0.7 * sum(p.numel() for p in dense_model.parameters())
    assert fin.summary["dense_params"] == sum(p.numel() for p in dense_model.parameters())
    # the option-A shortcut pads the thinned stage-1 stream to the thinned stage-2 width
    with torch.no_grad():
        assert model.layer2[0].shortcut(torch.zeros(1, model.conv1.out_channels, 8, 8)).shape[1] == \
            model.layer2[0].bn2.num_features
    run = read_run(fin.run_path)
    assert run.layers["layer1.0.conv1"]["kept_units"][-1] == model.layer1[0].conv1.out_channels
    with torch.no_grad():
        expected = model(x)
    compact = export_run(fin.run_path, "compact", tmp_path / "m.cwb")
    with torch.no_grad():
        assert torch.allclose(load_compact(compact.path)(x), expected, atol=1e-5)
    ort = pytest.importorskip("onnxruntime")
    onnx_file = export_run(fin.run_path, "onnx", tmp_path / "m.onnx")
    session = ort.InferenceSession(str(onnx_file.path))
    out = session.run(None, {"input": x.numpy()})[0]
    assert np.allclose(out, expected.numpy(), atol=1e-4)
    assert onnx_file.size_bytes < 0.7 * 4 * fin.summary["dense_params"]


CONCAT_FILE = '''
import torch
import torch.nn.functional as F
from torch import nn


class ConcatNet(nn.Module):
    def __init__(self, input_shape, num_classes):
        super().__init__()
        c, h, w = input_shape
        self.a = nn.Conv2d(c, 6, 3, padding=1, bias=False)
        self.bn_a = nn.BatchNorm2d(6)
        self.b = nn.Conv2d(c, 10, 3, padding=1)
        self.s = nn.Conv2d(c, 16, 1)
        self.c = nn.Conv2d(16, 12, 3, padding=1)
        self.fc = nn.Linear(12, num_classes)

    def forward(self, x):
        y = torch.cat([F.relu(self.bn_a(self.a(x))), F.relu(self.b(x))], dim=1) + self.s(x)
        return self.fc(F.adaptive_avg_pool2d(F.relu(self.c(y)), 1).flatten(1))
'''


def test_a_concatenating_python_model_through_the_run_loop(tmp_path):
    source = tmp_path / "concat_net.py"
    source.write_text(textwrap.dedent(CONCAT_FILE))
    config = RunConfig(dataset="tiny", model=f"{source}:ConcatNet", trust_code=True, out_dir=str(tmp_path / "runs"),
                       device="cpu", pretrain_epochs=1,
                       stages=[StageConfig("l1filter", {"prune_ratio": 0.5}, {"epochs": 1})])
    fin = H.finished(H.run_events(config))
    assert fin.status == "completed", fin.error
    model, _, _ = _rebuild(fin.run_path, trust_code=True)
    # a's and b's channels keep their offsets in the concatenation that s is added to and c reads
    assert (model.a.out_channels, model.b.out_channels) == (3, 5)
    assert model.s.out_channels == model.c.in_channels == 8 and model.c.out_channels == 6
    x, _ = H.tiny_test_set()
    compact = export_run(fin.run_path, "compact", tmp_path / "m.cwb", trust_code=True)
    with torch.no_grad():
        assert torch.allclose(load_compact(compact.path, trust_code=True)(x), model(x), atol=1e-5)
