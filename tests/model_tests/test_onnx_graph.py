"""ONNX files become trainable torch modules with real layers (workbench/models/onnx_graph.py); files
outside the allowlist, external data outside the model's folder, damaged files and multi-input graphs
are refused in one line."""

import builtins
import os
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from workbench.core.errors import CheckpointError  # noqa: E402
from workbench.models.onnx_graph import ALLOWED_OPS, GraphModel, load_onnx_model  # noqa: E402

# ---- architectures (no torchvision) ---------------------------------------------------------------

class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.down is None else self.down(x)))


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.maxpool = nn.MaxPool2d(2)
        self.layer1 = nn.Sequential(Block(8, 8, 1), Block(8, 8, 1))
        self.layer2 = nn.Sequential(Block(8, 16, 2), Block(16, 16, 1))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        h = cin * t
        self.use_res = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
            nn.Conv2d(h, h, 3, stride, 1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
            nn.Conv2d(h, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
            InvertedResidual(8, 8, 1, 2), InvertedResidual(8, 16, 2, 3), InvertedResidual(16, 16, 1, 3))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(16, 10))

    def forward(self, x):
        return self.classifier(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


class Conv1dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(3, 8, 5, padding=2)
        self.bn = nn.BatchNorm1d(8)
        self.c2 = nn.Conv1d(8, 8, 3, groups=2, padding=1)
        self.pool = nn.AvgPool1d(2)
        self.fc = nn.Linear(8 * 16, 5)

    def forward(self, x):
        return self.fc(self.pool(torch.tanh(self.c2(F.relu(self.bn(self.c1(x)))))).flatten(1))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Dropout(0.5),
                                 nn.Linear(64, 32), nn.Sigmoid(), nn.Dropout(0.3), nn.Linear(32, 10))

    def forward(self, x):
        return self.net(x)


class Transformer(nn.Module):
    def __init__(self, vocab=50, d=16, heads=2, n=12, classes=3):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(1, n, d) * 0.1)
        layer = nn.TransformerEncoderLayer(d, heads, 32, dropout=0.1, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, ids):
        return self.head(self.norm(self.encoder(self.embed(ids) + self.pos)).mean(1))


ARCHS = {
    "resnet": (ResNet, lambda b: torch.randn(b, 1, 28, 28)),
    "mobilenet": (MobileNet, lambda b: torch.randn(b, 1, 28, 28)),
    "conv1d": (Conv1dNet, lambda b: torch.randn(b, 3, 32)),
    "mlp": (MLP, lambda b: torch.randn(b, 1, 28, 28)),
    "transformer": (Transformer, lambda b: torch.randint(0, 50, (b, 12))),
}
EXPECTED = {  # layer types the loaded module must contain (legacy export keeps BatchNorm)
    "resnet": {nn.Conv2d, nn.BatchNorm2d, nn.Linear},
    "mobilenet": {nn.Conv2d, nn.BatchNorm2d, nn.Linear},
    "conv1d": {nn.Conv1d, nn.BatchNorm1d, nn.Linear},
    "mlp": {nn.Linear},
    "transformer": {nn.Embedding, nn.LayerNorm, nn.Linear},
}


def build(arch: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = ARCHS[arch][0]()
    with torch.no_grad():  # distinct values everywhere, so exporters cannot share equal initializers
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn_like(m.running_mean) * 0.1)
                m.running_var.copy_(torch.rand_like(m.running_var) + 0.5)
    return model.eval()


def export(model, x, path, exporter="legacy", training=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            pytest.importorskip("onnxscript")
            torch.onnx.export(model, (x,), str(path), dynamo=True, opset_version=18, verbose=False,
                              dynamic_shapes=({0: torch.export.Dim("batch")},))
        else:
            torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17,
                              training=training or torch.onnx.TrainingMode.PRESERVE,
                              input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return path


def ort_run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0])


def layer_types(module):
    return {type(m) for m in module.modules()}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    cache = {}

    def get(arch, exporter="legacy"):
        if (arch, exporter) not in cache:
            model = build(arch)
            path = tmp_path_factory.mktemp(f"{arch}_{exporter}") / "model.onnx"
            export(model, ARCHS[arch][1](2), path, exporter)
            cache[arch, exporter] = (model, path)
        return cache[arch, exporter]
    return get


# ---- conversion ------------------------------------------------------------------------------------

@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_outputs_match_torch_and_onnxruntime(exported, arch, exporter):
    model, path = exported(arch, exporter)
    g = load_onnx_model(path)
    assert isinstance(g, GraphModel) and g.source == "onnx"
    assert isinstance(g.module, fx.GraphModule)
    x = ARCHS[arch][1](5)                       # another batch size than the export's
    with torch.no_grad():
        want = model(x)
        got = g.module.eval()(x)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got, ort_run(path, x), atol=1e-4, rtol=1e-4)
    assert g.input_shape == tuple(x.shape[1:])
    assert g.input_dtype == (torch.int64 if arch == "transformer" else torch.float32)
    assert g.num_outputs == want.shape[-1]
    assert sum(g.ops.values()) == len(onnx.load(str(path)).graph.node) and set(g.ops) <= ALLOWED_OPS
    expected = EXPECTED[arch] if exporter == "legacy" else EXPECTED[arch] - {nn.BatchNorm1d, nn.BatchNorm2d}
    assert expected <= layer_types(g.module)    # the dynamo exporter folds BatchNorm into the convs


def test_depthwise_and_grouped_convolutions_stay_real_layers(exported):
    g = load_onnx_model(exported("mobilenet")[1])
    depthwise = [m for m in g.module.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert depthwise and all(m.groups == m.in_channels == m.out_channels for m in depthwise)
    g1 = load_onnx_model(exported("conv1d")[1])
    assert any(isinstance(m, nn.Conv1d) and m.groups == 2 for m in g1.module.modules())


def test_names_follow_the_exported_state_dict(exported):
    model, path = exported("resnet")
    g = load_onnx_model(path)
    modules = dict(g.module.named_modules())
    assert isinstance(modules["layer1.0.conv1"], nn.Conv2d)
    assert isinstance(modules["layer2.0.down.0"], nn.Conv2d)
    assert isinstance(modules["layer1.0.bn1"], nn.BatchNorm2d)
    assert isinstance(modules["fc"], nn.Linear)
    state = g.module.state_dict()
    for key in ("layer1.0.conv1.weight", "layer2.0.bn2.running_var", "fc.bias"):
        assert torch.equal(state[key], model.state_dict()[key])
    t = load_onnx_model(exported("transformer")[1]).module
    names = dict(t.named_modules())
    assert isinstance(names["encoder.layers.0.linear1"], nn.Linear)   # MatMul + Add became one Linear
    assert isinstance(names["embed"], nn.Embedding)
    assert isinstance(dict(t.named_parameters())["pos"], nn.Parameter)


def test_a_training_step_changes_the_weights(exported):
    g = load_onnx_model(exported("resnet")[1])
    m = g.module.train()
    before = {k: v.detach().clone() for k, v in m.named_parameters()}
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    loss = F.cross_entropy(m(torch.randn(8, 1, 28, 28)), torch.randint(0, 10, (8,)))
    loss.backward()
    opt.step()
    changed = [k for k, v in m.named_parameters() if not torch.equal(v, before[k])]
    assert "layer1.0.conv1.weight" in changed and "fc.weight" in changed and "layer1.0.bn1.weight" in changed


def test_transformer_trains(exported):
    m = load_onnx_model(exported("transformer", "dynamo")[1]).module.train()
    params = [p for p in m.parameters()]
    assert params and all(p.requires_grad for p in params)
    loss = m(torch.randint(0, 50, (4, 12))).pow(2).mean()
    loss.backward()
    emb = [mod for mod in m.modules() if isinstance(mod, nn.Embedding)][0]
    assert emb.weight.grad is not None and emb.weight.grad.abs().sum() > 0


def test_batchnorm_statistics_move_in_train_mode_only(exported):
    g = load_onnx_model(exported("resnet")[1])
    bn = dict(g.module.named_modules())["layer1.0.bn1"]
    x = torch.randn(8, 1, 28, 28) * 3 + 1
    mean = bn.running_mean.clone()
    with torch.no_grad():
        g.module.eval()(x)
    assert torch.equal(bn.running_mean, mean)
    with torch.no_grad():
        g.module.train()(x)
    assert not torch.equal(bn.running_mean, mean)
    assert int(bn.num_batches_tracked) == 1


def test_dropout_is_a_real_dropout(tmp_path):
    model = build("mlp")
    path = export(model.train(), torch.randn(2, 1, 28, 28), tmp_path / "mlp.onnx",
                  training=torch.onnx.TrainingMode.TRAINING)   # keeps Dropout in the file
    g = load_onnx_model(path)
    drops = [m for m in g.module.modules() if isinstance(m, nn.Dropout)]
    assert sorted(round(d.p, 4) for d in drops) == [0.3, 0.5]
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(g.module.eval()(x), model.eval()(x), atol=1e-4, rtol=1e-4)
        assert torch.equal(g.module(x), g.module(x))
        g.module.train()
        assert not torch.equal(g.module(x), g.module(x))


def test_the_module_can_be_traced_again(exported):
    for arch in ("transformer", "resnet"):
        g = load_onnx_model(exported(arch)[1]).module.eval()
        again = fx.symbolic_trace(g)
        x = ARCHS[arch][1](3)
        with torch.no_grad():
            torch.testing.assert_close(again(x), g(x))


def test_external_data_inside_the_folder_loads(tmp_path):
    model = build("mlp")
    path = export(model, torch.randn(2, 1, 28, 28), tmp_path / "mlp.onnx")
    proto = onnx.load(str(path))
    (tmp_path / "ext" / "weights").mkdir(parents=True)
    onnx.save_model(proto, str(tmp_path / "ext" / "mlp.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="weights/data.bin", size_threshold=0)
    assert onnx.load(str(tmp_path / "ext" / "mlp.onnx"), load_external_data=False).graph.initializer[0].external_data
    g = load_onnx_model(tmp_path / "ext" / "mlp.onnx")
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(g.module.eval()(x), model(x), atol=1e-4, rtol=1e-4)


# ---- refusals --------------------------------------------------------------------------------------

def small_model(op="Relu", domain="", inputs=1, external=None, attrs=None):
    """x[2,4] @ W[4,3] -> op -> y; W an initializer, optionally stored as external data at `external`."""
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), "W")
    if external is not None:
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
        for k, v in (("location", external), ("offset", "0"), ("length", "48")):
            e = w.external_data.add()
            e.key, e.value = k, v
    ins = [helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, ["batch", 4]) for i in range(inputs)]
    nodes = [helper.make_node("MatMul", ["x0", "W"], ["h"], name="mm")]
    src = "h"
    if inputs == 2:
        nodes.append(helper.make_node("Add", ["h", "x1"], ["h2"]))   # shapes do not matter here
        src = "h2"
    nodes.append(helper.make_node(op, [src], ["y"], name="last", domain=domain, **(attrs or {})))
    graph = helper.make_graph(nodes, "g", ins, [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
                              initializer=[w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_the_small_model_itself_loads(tmp_path):
    path = tmp_path / "ok.onnx"
    onnx.save(small_model(), str(path))
    g = load_onnx_model(path)
    x = torch.randn(2, 4)
    torch.testing.assert_close(g.module(x), torch.relu(x @ torch.arange(12.0).reshape(4, 3)))
    assert isinstance(dict(g.module.named_modules())["mm"], nn.Linear)


@pytest.mark.parametrize("op,domain,named", [("MyOp", "com.evil", "com.evil::MyOp"), ("Loop", "", "Loop"),
                                             ("If", "", "If"), ("Scan", "", "Scan")])
def test_ops_outside_the_allowlist_are_refused(tmp_path, op, domain, named):
    path = tmp_path / "bad.onnx"
    onnx.save(small_model(op, domain), str(path))
    with pytest.raises(CheckpointError) as err:
        load_onnx_model(path)
    assert named in one_line(err)


@pytest.fixture
def opened(monkeypatch):
    """Every path opened with the builtin open while loading."""
    seen = []
    real_open = builtins.open

    def spy(file, *a, **k):
        seen.append(os.path.realpath(file) if isinstance(file, (str, bytes, os.PathLike)) else file)
        return real_open(file, *a, **k)
    monkeypatch.setattr(builtins, "open", spy)
    return seen


MARKER = np.full((4, 3), 7.25, dtype=np.float32)  # what the outside file holds


def marker_file(folder):
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / "secret.bin"
    p.write_bytes(MARKER.tobytes())
    return p


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink", "nested_dotdot"])
def test_external_data_outside_the_folder_is_refused_before_any_read(tmp_path, opened, how):
    secret = marker_file(tmp_path / "outside")
    folder = tmp_path / "model"
    folder.mkdir()
    location = {"absolute": str(secret), "dotdot": "../outside/secret.bin", "symlink": "link.bin",
                "nested_dotdot": "sub/../../outside/secret.bin"}[how]
    if how == "symlink":
        os.symlink(secret, folder / "link.bin")
    path = folder / "m.onnx"
    onnx.save(small_model(external=location), str(path))
    opened.clear()
    with pytest.raises(CheckpointError) as err:
        g = load_onnx_model(path)
        # never reached; if it were, no tensor may hold the outside file's bytes
        assert not any(np.array_equal(t.detach().numpy(), MARKER) for t in g.module.state_dict().values())
    assert "outside the model's folder" in one_line(err)
    assert os.path.realpath(secret) not in opened


def test_missing_external_file_is_refused(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(small_model(external="nothere.bin"), str(path))
    with pytest.raises(CheckpointError) as err:
        load_onnx_model(path)
    assert "missing" in one_line(err)


def test_damaged_protobuf_is_refused(tmp_path, exported):
    good = exported("mlp")[1].read_bytes()
    for i, data in enumerate([good[: len(good) // 3], b"\xff\xfe not a protobuf \x00" * 10, b""]):
        path = tmp_path / f"bad{i}.onnx"
        path.write_bytes(data)
        with pytest.raises(CheckpointError) as err:
            load_onnx_model(path)
        one_line(err)


def test_two_inputs_are_refused(tmp_path):
    path = tmp_path / "two.onnx"
    onnx.save(small_model(inputs=2), str(path))
    with pytest.raises(CheckpointError) as err:
        load_onnx_model(path)
    assert "2 inputs" in one_line(err)


def test_two_outputs_are_refused(tmp_path):
    model = small_model()
    model.graph.output.append(helper.make_tensor_value_info("h", TensorProto.FLOAT, ["batch", 3]))
    path = tmp_path / "two_out.onnx"
    onnx.save(model, str(path))
    with pytest.raises(CheckpointError) as err:
        load_onnx_model(path)
    assert "2 outputs" in one_line(err)
