"""torch.export archives loaded as trainable modules without torch.export.load (workbench/models/pt2_graph.py)."""

import zipfile

import hostile_pt2
import pytest
import torch
from torch import fx, nn

from workbench.core.errors import CheckpointError
from workbench.models.graph import successors
from workbench.models.graph_ops import ALLOWED
from workbench.models.pt2_graph import GraphModel, load_pt2_model


# --- architectures (small widths) ------------------------------------------------------------------------
class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet18ish(nn.Module):
    def __init__(self, width=8, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths, cin, layers = [width, 2 * width, 4 * width, 8 * width], width, []
        for i, w in enumerate(widths):
            layers.append(nn.Sequential(BasicBlock(cin, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)))
            cin = w
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2ish(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(inplace=True)),
            InvertedResidual(8, 8, 1, 1), InvertedResidual(8, 12, 2, 6), InvertedResidual(12, 12, 1, 6),
            InvertedResidual(12, 16, 2, 6),
            nn.Sequential(nn.Conv2d(16, 32, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6(inplace=True)))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(32, classes))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


class Conv1dNet(nn.Module):
    def __init__(self, classes=5):
        super().__init__()
        self.conv1 = nn.Conv1d(2, 8, 5, padding=2)
        self.bn1 = nn.BatchNorm1d(8)
        self.conv2 = nn.Conv1d(8, 16, 3, stride=2, groups=2)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = nn.functional.gelu(self.conv2(x))
        return self.fc(self.drop(self.pool(x).flatten(1)))


class TinyTransformer(nn.Module):
    def __init__(self, vocab=50, dim=32, classes=4):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.encoder = nn.TransformerEncoderLayer(dim, 4, 64, dropout=0.1, activation="gelu", batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, tokens):
        return self.head(self.norm(self.encoder(self.embed(tokens))).mean(1))


ARCHS = {
    "resnet18": (ResNet18ish, lambda b: torch.randn(b, 1, 28, 28), False),
    "mobilenetv2": (MobileNetV2ish, lambda b: torch.randn(b, 1, 28, 28), False),
    "conv1d": (Conv1dNet, lambda b: torch.randn(b, 2, 40), False),
    "transformer": (TinyTransformer, lambda b: torch.randint(0, 50, (b, 12)), True),
}


def _randomize_bn(model):
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)


def export(model, example, path, dynamic=False):
    shapes = {next(iter(model.forward.__code__.co_varnames[1:2])): {0: torch.export.Dim("batch")}} if dynamic else None
    ep = torch.export.export(model.eval(), (example,), dynamic_shapes=shapes)
    torch.export.save(ep, str(path))
    return path


@pytest.fixture(scope="module", params=list(ARCHS))
def exported(request, tmp_path_factory):
    cls, make, dynamic = ARCHS[request.param]
    torch.manual_seed(0)
    model = cls()
    with torch.no_grad():
        _randomize_bn(model)
    path = export(model, make(2), tmp_path_factory.mktemp("pt2") / f"{request.param}.pt2", dynamic)
    return request.param, model.eval(), make, path


def test_loads_with_the_original_outputs_keys_and_layers(exported):
    arch, model, make, path = exported
    g = load_pt2_model(path)
    assert isinstance(g, GraphModel) and g.source == "torch.export"
    assert isinstance(g.module, fx.GraphModule)
    x = make(3)  # another batch size than the export's
    with torch.no_grad():
        assert torch.allclose(g.module.eval()(x), model(x), atol=1e-5)
    assert list(g.module.state_dict()) == list(model.state_dict())
    for key, value in model.state_dict().items():
        assert torch.equal(g.module.state_dict()[key], value), key
    mods = dict(g.module.named_modules())
    for path_, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm,
                          nn.Embedding)):
            want = nn.Linear if isinstance(m, nn.Linear) else type(m)  # MHA's out_proj is a Linear subclass
            assert isinstance(mods[path_], want), path_
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                assert (mods[path_].groups, mods[path_].stride, mods[path_].padding) == (m.groups, m.stride, m.padding)
    assert g.input_shape == tuple(make(1).shape[1:])
    assert g.input_dtype == (torch.int64 if arch == "transformer" else torch.float32)
    assert g.num_outputs == model(make(1)).shape[-1]
    assert set(g.ops) <= {"aten." + op for op in ALLOWED} | {"_operator.mul"}
    assert sum(g.ops.values()) > 0
    fx.symbolic_trace(g.module)  # the layer-successor analysis traces models with fx


def test_grouped_and_depthwise_convolutions_are_conv_modules(tmp_path):
    torch.manual_seed(0)
    g = load_pt2_model(export(MobileNetV2ish(), torch.randn(2, 1, 28, 28), tmp_path / "m.pt2"))
    dw = g.module.get_submodule("features.2.conv.3")
    assert isinstance(dw, nn.Conv2d) and dw.groups == dw.in_channels == dw.out_channels == 48
    assert isinstance(g.module.get_submodule("classifier.0"), nn.Dropout)


def test_training_updates_weights_and_batch_norm_only_in_train_mode(tmp_path):
    torch.manual_seed(0)
    g = load_pt2_model(export(ResNet18ish(), torch.randn(2, 1, 28, 28), tmp_path / "r.pt2"))
    m = g.module
    bn = m.get_submodule("layer1.0.bn1")
    assert isinstance(bn, nn.BatchNorm2d)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m.eval()
    with torch.no_grad():
        m(torch.randn(4, 1, 28, 28))
    assert torch.equal(bn.running_mean, before["layer1.0.bn1.running_mean"])
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy(m(torch.randn(4, 1, 28, 28)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    opt.step()
    after = m.state_dict()
    assert not torch.equal(after["conv1.weight"], before["conv1.weight"])
    assert not torch.equal(after["fc.weight"], before["fc.weight"])
    assert not torch.equal(after["layer1.0.bn1.running_mean"], before["layer1.0.bn1.running_mean"])
    assert after["layer1.0.bn1.num_batches_tracked"] == before["layer1.0.bn1.num_batches_tracked"] + 1


def test_a_transformer_trains_through_its_attention_weights(tmp_path):
    torch.manual_seed(0)
    path = export(TinyTransformer(), torch.randint(0, 50, (2, 12)), tmp_path / "t.pt2", dynamic=True)
    m = load_pt2_model(path).module.train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    loss = nn.functional.cross_entropy(m(torch.randint(0, 50, (4, 12))), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    torch.optim.SGD(m.parameters(), lr=0.1).step()
    for key in ("embed.weight", "encoder.self_attn.in_proj_weight", "encoder.linear1.weight", "head.weight"):
        assert not torch.equal(m.state_dict()[key], before[key]), key
    assert isinstance(m.get_submodule("encoder.dropout1"), nn.Dropout)


def test_dropout_follows_train_and_eval(tmp_path):
    torch.manual_seed(0)
    g = load_pt2_model(export(Conv1dNet(), torch.randn(2, 2, 40), tmp_path / "c.pt2"))
    assert isinstance(g.module.get_submodule("drop"), nn.Dropout)
    x = torch.randn(8, 2, 40)
    with torch.no_grad():
        g.module.eval()
        assert torch.equal(g.module(x), g.module(x))
        g.module.train()
        assert not torch.equal(g.module(x), g.module(x))


def test_layer_successors_are_found_in_a_loaded_graph(tmp_path):
    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(784, 32), nn.Linear(32, 10)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))

    g = load_pt2_model(export(MLP(), torch.randn(2, 1, 28, 28), tmp_path / "mlp.pt2"))
    found, order = successors(g.module)
    assert order == ["fc1", "fc2"]
    assert found["fc1"].name == "fc2" and found["fc1"].relu


def test_core_aten_export_maps_addmm_and_native_batch_norm(tmp_path):
    torch.manual_seed(0)
    model = ResNet18ish().eval()
    with torch.no_grad():
        _randomize_bn(model)
    ep = torch.export.export(model, (torch.randn(2, 1, 28, 28),),
                             dynamic_shapes={"x": {0: torch.export.Dim("batch")}}).run_decompositions()
    torch.export.save(ep, str(tmp_path / "core.pt2"))
    g = load_pt2_model(tmp_path / "core.pt2")
    assert isinstance(g.module.get_submodule("fc"), nn.Linear)
    assert isinstance(g.module.get_submodule("layer2.0.bn1"), nn.BatchNorm2d)
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(g.module.eval()(x), model(x), atol=1e-5)


def test_batch_size_baked_into_the_graph_is_refused_in_one_line(tmp_path):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 3)

        def forward(self, x):
            return self.fc(x.view(x.shape[0], 16))  # a static export records view([2, 16])

    path = export(M(), torch.randn(2, 4, 4), tmp_path / "fixed.pt2")
    with pytest.raises(CheckpointError) as err:
        load_pt2_model(path)
    assert "batch size" in str(err.value) and "\n" not in str(err.value)


# --- refusals ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_archive(tmp_path_factory):
    torch.manual_seed(0)
    return export(Conv1dNet(), torch.randn(2, 2, 40), tmp_path_factory.mktemp("src") / "small.pt2")


def _refused(path) -> str:
    with pytest.raises(CheckpointError) as err:
        load_pt2_model(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(path.name)
    return msg


def test_the_payload_is_live(tmp_path):
    """The hostile files' payload really runs when unpickled, so the marker checks below mean something."""
    import pickle
    marker = tmp_path / "proof"
    pickle.loads(hostile_pt2.payload_bytes(marker))
    assert marker.exists()


def test_pickled_weights_are_refused_without_unpickling(small_archive, tmp_path):
    marker = tmp_path / "MARKER"
    path = hostile_pt2.pickled_weights(small_archive, tmp_path / "pickled.pt2", marker)
    assert "pickled" in _refused(path)
    assert not marker.exists()


def test_pickled_state_dict_is_refused_without_unpickling(small_archive, tmp_path):
    marker = tmp_path / "MARKER"
    path = hostile_pt2.pickled_state_dict(small_archive, tmp_path / "legacy.pt2", marker)
    assert "pickled" in _refused(path)
    assert not marker.exists()


@pytest.mark.parametrize("target", ["builtins.exec", "torch.ops.aten._foreach_exec.default",
                                    "torch.ops.evil.run.default", "torch.ops.higher_order.cond"])
def test_a_foreign_operator_is_refused_by_name(small_archive, tmp_path, target):
    marker = tmp_path / "MARKER"
    path = hostile_pt2.foreign_op(small_archive, tmp_path / "op.pt2", target, marker)
    msg = _refused(path)
    assert target.removeprefix("torch.ops.") in msg and "not supported" in msg
    assert not marker.exists()


def test_a_weight_name_that_would_inject_code_is_refused(small_archive, tmp_path):
    marker = tmp_path / "MARKER"
    path = hostile_pt2.injected_key(small_archive, tmp_path / "key.pt2", marker)
    assert "name" in _refused(path)
    assert not marker.exists()


def test_an_unlisted_aten_operator_is_refused_by_name(tmp_path):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(torch.cumsum(x, 1))

    msg = _refused(export(M(), torch.randn(2, 4), tmp_path / "cumsum.pt2"))
    assert "aten.cumsum.default" in msg


def test_damaged_archives_are_refused_in_one_line(small_archive, tmp_path):
    data = small_archive.read_bytes()
    cut = tmp_path / "cut.pt2"
    cut.write_bytes(data[: len(data) // 2])
    _refused(cut)
    junk = tmp_path / "junk.pt2"
    junk.write_bytes(b"not a zip at all")
    _refused(junk)
    bad_json = hostile_pt2.rewrite(small_archive, tmp_path / "json.pt2",
                                   {hostile_pt2.entry(small_archive, "models/model.json"): b"{\"graph_module\": 3"})
    _refused(bad_json)
    with zipfile.ZipFile(small_archive) as zf:
        weights = [n for n in zf.namelist() if "/data/weights/weight_" in n]
    short = hostile_pt2.rewrite(small_archive, tmp_path / "short.pt2", {weights[0]: b"\0\0"})
    _refused(short)
    with pytest.raises(CheckpointError, match="not found"):
        load_pt2_model(tmp_path / "missing.pt2")
