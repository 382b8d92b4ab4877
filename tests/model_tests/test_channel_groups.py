"""Coupled channel groups found by tracing (models/channel_groups.py) and their physical removal
(models/thinning.py, structure.py): which channels go together on the zoo's tiny models, ResNet-20's
option-A shortcuts and a concatenation; channels the trace cannot resolve stay, with the reason; the
thinned model computes what the masked model computes, the structure spec rebuilds it from a fresh
architecture (zoo, .pt2, ONNX), and the dense state dict loads into the original architecture."""

from __future__ import annotations

import copy
import random
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.core.errors import WorkbenchError
from workbench.models import architecture, structure, zoo
from workbench.models.channel_groups import Member, analyse
from workbench.models.thinning import masks, thin

sys.path.insert(0, str(Path(__file__).parent))
from user_model_files import model_file  # noqa: E402

SHAPE = (1, 8, 8)


class ConcatNet(nn.Module):
    """Two branches concatenated (3 + 5 channels), a residual addition onto the concatenation, a conv."""

    def __init__(self, num_classes: int = 4, in_channels: int = 1):
        super().__init__()
        self.a = nn.Conv2d(in_channels, 3, 3, padding=1, bias=False)
        self.bn_a = nn.BatchNorm2d(3)
        self.b = nn.Conv2d(in_channels, 5, 3, padding=1)
        self.s = nn.Conv2d(in_channels, 8, 1)
        self.c = nn.Conv2d(8, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 4 * 4, num_classes)

    def forward(self, x):
        y = torch.cat([F.relu(self.bn_a(self.a(x))), F.relu(self.b(x))], dim=1) + self.s(x)
        return self.fc(torch.flatten(F.max_pool2d(F.relu(self.c(y)), 2), 1))


class Awkward(nn.Module):
    """Channels the rules must leave alone: a sigmoid gate, a layer called twice, a grouped convolution, a
    LayerNorm, a channel slice, a channel pad in the model's own forward."""

    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.gate = nn.Conv2d(1, 4, 1)
        self.twice = nn.Conv2d(4, 4, 1)
        self.grouped = nn.Conv2d(4, 4, 3, padding=1, groups=2)
        self.wide = nn.Conv2d(4, 6, 1)
        self.padded = nn.Conv2d(4, 2, 1)
        self.norm_in = nn.Linear(64, 8)
        self.norm = nn.LayerNorm(8)
        self.free = nn.Conv2d(1, 3, 1)
        self.fc = nn.Linear(4 + 4 + 4 + 8 + 3, num_classes)

    def forward(self, x):
        g = torch.sigmoid(self.gate(x))
        t = self.grouped(self.twice(F.relu(self.twice(g))))
        w = self.wide(t)[:, :4]
        p = F.pad(self.padded(t), (0, 0, 0, 0, 1, 1))
        n = self.norm(self.norm_in(x.flatten(1)))
        f = F.relu(self.free(x))
        pooled = torch.cat([w, p], 1).mean((2, 3))
        return self.fc(torch.cat([pooled, t.mean((2, 3)), n, f.mean((2, 3))], 1))


def _example(shape=SHAPE, n=6):
    return (torch.randn(n, *shape, generator=torch.Generator().manual_seed(1)),)


def _group(a, name, k, role="out") -> set:
    found = [g for g in a.groups if Member(role, name, k) in g.members]
    assert len(found) == 1, (name, k, role)
    return set(found[0].members)


def test_tiny_models_groups():
    a = analyse(zoo.build_model("mlp_tiny", SHAPE, 4), _example())
    assert len(a.groups) == 32
    assert _group(a, "fc1", 5) == {Member("out", "fc1", 5), Member("in", "fc2", 5)}
    assert a.frozen_reasons == {"they are the model's outputs": ["fc2"]}

    a = analyse(zoo.build_model("cnn_tiny", SHAPE, 4), _example())
    # conv -> ReLU -> pool 2 -> flatten: channel k is the block of 4 x 4 columns k*16 .. k*16+15 of fc1
    assert {m.index for m in _group(a, "conv1", 2) if m.role == "in"} == set(range(32, 48))

    a = analyse(zoo.build_model("bn_tiny", SHAPE, 4), _example())
    # conv1 -> bn1 -> x; x + pw(bn2(dw(x))): the depthwise conv passes channel k on, the addition ties pw's
    # outputs to x's channels, so channel k of six layers is one group
    assert len(a.groups) == 8
    assert _group(a, "conv1", 3) == {Member("out", "conv1", 3), Member("bn", "bn1", 3), Member("out", "dw", 3),
                                     Member("bn", "bn2", 3), Member("in", "pw", 3), Member("out", "pw", 3),
                                     Member("in", "fc", 3)}


def test_resnet20_option_a_shortcuts_couple_the_stages():
    a = analyse(zoo.build_model("resnet20", (3, 8, 8), 4), _example((3, 8, 8)))
    assert len(a.groups) == 400          # 64 stream channels (16 + 16 + 32 by family) + 336 inner ones
    # the shortcut of layer2.0 pads 16 channels by 8 zeros on each side: stage-1 channel k is stage-2
    # channel k + 8, and stage-3 channel k + 24
    stream = _group(a, "conv1", 3)
    assert {Member("out", "layer1.2.conv2", 3), Member("out", "layer2.0.conv2", 11),
            Member("out", "layer3.2.conv2", 27), Member("in", "fc", 27)} <= stream
    # stage-2 channel 0 starts as zero padding: no stage-1 layer, but stage-3 channel 16
    edge = _group(a, "layer2.0.conv2", 0)
    assert Member("out", "layer3.0.conv2", 16) in edge and not any(m.name.startswith("layer1") for m in edge)
    # inside a block: conv1's channel k, its BatchNorm, conv2's input k
    assert _group(a, "layer2.1.conv1", 7) == {Member("out", "layer2.1.conv1", 7), Member("bn", "layer2.1.bn1", 7),
                                              Member("in", "layer2.1.conv2", 7)}
    assert [(p.module, p.index, p.arg, len(p.before), len(p.after)) for p in a.pads] == [
        ("layer2.0.shortcut", 0, [0, 0, 0, 0, 8, 8], 8, 8), ("layer3.0.shortcut", 0, [0, 0, 0, 0, 16, 16], 16, 16)]


def test_concatenation_keeps_each_inputs_offset():
    a = analyse(ConcatNet(), _example())
    assert len(a.groups) == 8 + 6
    assert _group(a, "a", 2) == {Member("out", "a", 2), Member("bn", "bn_a", 2), Member("out", "s", 2),
                                 Member("in", "c", 2)}
    assert _group(a, "b", 4) == {Member("out", "b", 4), Member("out", "s", 7), Member("in", "c", 7)}


def test_channels_the_trace_cannot_resolve_stay_with_the_reason():
    model = Awkward()
    a = analyse(model, _example())
    families = {g.family() for g in a.groups}
    assert families == {("free",)}                      # only the plain conv -> ReLU -> mean -> fc channels
    text = "\n".join(a.messages())
    assert "sigmoid" in text and "twice is called more than once" in text and "LayerNorm (norm)" in text
    assert "grouped is a grouped convolution" in text
    assert a.macs() == _independent_macs(model, _example())      # both calls of `twice`, the grouped conv
    assert "takes some of the channels by position" in text
    assert "pads the channels in the model's own forward" in text

    class Untraceable(nn.Module):
        def forward(self, x):
            return x if float(x.sum()) > 0 else -x          # control flow on a value: torch.fx cannot follow

    with pytest.raises(WorkbenchError, match="could not be traced"):
        analyse(Untraceable(), _example())


def _independent_macs(model, example) -> int:
    """Multiply-adds per sample of every Conv / Linear call, counted from the layers' real shapes."""
    total = [0]

    def hook(m, inputs, out):
        per_output = m.in_features if isinstance(m, nn.Linear) else m.in_channels // m.groups * m.weight[0, 0].numel()
        total[0] += out.numel() // out.shape[0] * per_output

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    with torch.no_grad():
        model.eval()(*example)
    for h in handles:
        h.remove()
    return total[0]


def _builder(name: str, folder: Path):
    """(a function building the model afresh, its input shape): a zoo model, the concat model, or the
    zoo's ResNet-20 brought as a .pt2 / ONNX file (written once, loaded by the safe graph loaders)."""
    if name.startswith("resnet20."):
        spec = architecture.parse_model_spec(model_file(name.split(".")[1], "resnet20", folder, shape=(3, 8, 8)))
        return (lambda: architecture.build(spec, (3, 8, 8), 4).module), (3, 8, 8)
    if name == "concat":
        return ConcatNet, SHAPE
    shape = (3, 8, 8) if name == "resnet20" else SHAPE
    return (lambda: zoo.build_model(name, shape, 4)), shape


@pytest.mark.parametrize("name", ["mlp_tiny", "cnn_tiny", "bn_tiny", "resnet20", "concat", "resnet20.pt2",
                                  "resnet20.onnx"])
def test_thinned_model_equals_masked_model_and_rebuilds_from_its_spec(name, tmp_path):
    if name.endswith(".onnx"):
        pytest.importorskip("onnx")
    build, shape = _builder(name, tmp_path)
    torch.manual_seed(0)
    pristine = build().eval()                    # loading a graph takes seconds here: copies of one
    model = copy.deepcopy(pristine)
    with torch.no_grad():                        # BatchNorm statistics that are not the identity
        model.train()(torch.randn(32, *shape))
    model.eval()
    example = _example(shape)
    a = analyse(model, example)
    rnd, removed = random.Random(0), set()
    for family in sorted({g.family() for g in a.groups}):        # 40% of each family, at random
        ids = [g.id for g in a.groups if g.family() == family]
        removed.update(rnd.sample(ids, (2 * len(ids)) // 5))
    assert removed
    with torch.no_grad():
        for param, index in masks(a, removed):
            param.index_fill_(0, index, 0.0)
        masked = model(*example)
    dense_params = sum(p.numel() for p in model.parameters())
    spec = thin(model, a, removed)
    with torch.no_grad():
        assert torch.allclose(model(*example), masked, atol=1e-5)
    assert sum(p.numel() for p in model.parameters()) < dense_params
    assert structure.dense_param_count(model) == dense_params
    assert _independent_macs(model, example) == a.macs(removed) < a.macs()
    if name.startswith("resnet20"):          # the option-A pads now pad by the zero channels that stayed
        assert [e["was"][4:6] for e in spec["graph"]] == [[8, 8], [16, 16]]
    # a run file's model: the architecture built afresh, the spec replayed, the thinned weights loaded
    fresh = copy.deepcopy(pristine)
    dense_state = structure.dense_state_dict(model)
    fresh.load_state_dict(dense_state)           # the original architecture takes the dense state dict
    with torch.no_grad():
        assert torch.allclose(fresh(*example), masked, atol=1e-5)
    rebuilt = structure.apply_structure(copy.deepcopy(pristine), structure.to_json(spec))
    rebuilt.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.allclose(rebuilt(*example), masked, atol=1e-5)
