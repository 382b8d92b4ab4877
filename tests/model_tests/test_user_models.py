"""A user's own architecture as `FILE.py:NAME`: it is code, so it runs only with the opt-in; with it, the
model runs through every stage of a run, is stored, and exports and reloads; a model that does not fit the
data set is refused in one line before any run file exists."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.core.config import RunConfig, StageConfig
from workbench.core.errors import CheckpointError, WorkbenchError
from workbench.core.store import read_model, read_run
from workbench.engine.export import export_run, load_compact
from workbench.engine.runner import execute

ARCH = '''
import pathlib
import torch
from torch import nn
import torch.nn.functional as F

pathlib.Path(__file__).with_name("ran.marker").write_text("the user's code ran")


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class SmallResNet(nn.Module):
    """A ResNet-style net: a stem, one residual block with BatchNorm, a linear head."""

    def __init__(self, num_classes=10, in_channels=1):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.block = Block(8)
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        x = self.block(F.relu(self.bn(self.stem(x))))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def three_channel(num_classes):
    return SmallResNet(num_classes, in_channels=3)
'''


@pytest.fixture
def arch_file(tmp_path) -> Path:
    folder = tmp_path / "user"
    folder.mkdir()
    path = folder / "arch.py"
    path.write_text(textwrap.dedent(ARCH))
    return path


def _config(spec, out, **kw) -> RunConfig:
    return RunConfig(dataset="tiny", model=spec, out_dir=str(out), device="cpu", pretrain_epochs=1,
                     stages=[StageConfig("dns", {"c_rate": 0.0, "gamma": 0.0}, {"epochs": 1})], **kw)


def test_python_model_needs_the_opt_in_and_nothing_runs_without_it(arch_file, tmp_path):
    out = tmp_path / "runs"
    with pytest.raises(CheckpointError, match=r"arch.py:SmallResNet is Python code.*--trust-code"):
        list(execute(_config(f"{arch_file}:SmallResNet", out)))
    assert not (arch_file.parent / "ran.marker").exists()
    assert not out.exists() or not any(out.iterdir())          # no run file either


def test_python_model_runs_exports_and_reloads(arch_file, tmp_path):
    events = list(execute(_config(f"{arch_file}:SmallResNet", tmp_path / "runs", trust_code=True)))
    fin = events[-1]
    assert fin.status == "completed", fin.error
    run = read_run(fin.run_path)
    assert run.attrs["model_spec"] == f"{arch_file}:SmallResNet"
    assert "--trust-code" in run.attrs["cli"] and "arch.py:SmallResNet" in run.attrs["cli"]
    state, attrs = read_model(fin.run_path)
    assert "block.bn2.running_var" in state and attrs["model_spec"].endswith(":SmallResNet")
    assert run.summary["param_ratio"] > 1                       # DNS pruned the user's convolutions

    with pytest.raises(CheckpointError, match="--trust-code"):   # export builds the model again: code
        export_run(fin.run_path, "compact", tmp_path / "m.cwb")
    compact = export_run(fin.run_path, "compact", tmp_path / "m.cwb", trust_code=True)
    assert compact.accounted_bytes == pytest.approx(run.summary["bits"] / 8)
    model = load_compact(compact.path, trust_code=True)
    x = torch.randn(5, 1, 8, 8)
    from workbench.engine.export import _rebuild

    stored, _, _ = _rebuild(fin.run_path, trust_code=True)
    with torch.no_grad():
        assert torch.allclose(model(x), stored(x), atol=1e-6)
    dense = export_run(fin.run_path, "dense", tmp_path / "m.safetensors", trust_code=True)
    from safetensors.torch import load_file

    weights = load_file(str(dense.path))
    assert set(weights) == set(stored.state_dict())


def test_weights_from_a_checkpoint_and_one_line_when_they_do_not_fit(arch_file, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("user_arch_for_weights", arch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(3)
    trained = module.SmallResNet(num_classes=4)
    weights = tmp_path / "weights.pt"
    torch.save(trained.state_dict(), weights)
    events = list(execute(_config(f"{arch_file}:SmallResNet", tmp_path / "runs", trust_code=True,
                                  checkpoint=str(weights))))
    assert events[-1].status == "completed", events[-1].error
    first = next(e for e in events if type(e).__name__ == "Message")
    assert "with weights from" in first.text                    # no pretraining: the given weights
    bad = tmp_path / "bad.pt"
    torch.save({k: v for k, v in trained.state_dict().items() if not k.startswith("head.")}, bad)
    with pytest.raises(CheckpointError, match=r"do not fit the model: missing head\.weight"):
        list(execute(_config(f"{arch_file}:SmallResNet", tmp_path / "runs2", trust_code=True,
                             checkpoint=str(bad))))
    assert not (tmp_path / "runs2").exists() or not any((tmp_path / "runs2").iterdir())


def test_a_model_that_does_not_fit_the_data_is_one_line_before_any_file(arch_file, tmp_path):
    out = tmp_path / "runs"
    with pytest.raises(CheckpointError, match=r"three_channel does not take tiny inputs of shape \(1, 8, 8\)"):
        list(execute(_config(f"{arch_file}:three_channel", out, trust_code=True)))
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("spec, message", [
    ("missing.py:Net", "no such file"),
    ("{dir}/arch.py:Nope", "has no class or function 'Nope'; it defines"),
    ("{dir}/arch.py", "name the class or function"),
    ("model.tflite", "unknown model"),
])
def test_bad_model_specs_are_one_line(arch_file, tmp_path, spec, message):
    with pytest.raises(WorkbenchError, match=message):
        list(execute(_config(spec.format(dir=arch_file.parent), tmp_path / "runs", trust_code=True)))


def test_the_cli_takes_a_model_file(arch_file, tmp_path, capsys):
    from workbench.cli import main

    code = main(["run", "--model", f"{arch_file}:SmallResNet", "--dataset", "tiny", "--method", "magnitude",
                 "--epochs", "1", "--pretrain-epochs", "1", "--out", str(tmp_path / "runs"), "--quiet"])
    assert code == 2 and "--trust-code" in capsys.readouterr().err
    code = main(["run", "--model", f"{arch_file}:SmallResNet", "--dataset", "tiny", "--method", "magnitude",
                 "--epochs", "1", "--pretrain-epochs", "1", "--out", str(tmp_path / "runs"), "--quiet",
                 "--trust-code", "--json"])
    assert code == 0
    assert np.isfinite(float(capsys.readouterr().out.strip().splitlines()[-1].split('"param_ratio": ')[1]
                             .split(",")[0]))


def _export_pt2(model, path, shape=(1, 8, 8)):
    from torch.export import Dim, export, save

    x = torch.randn(4, *shape)
    save(export(model.eval(), (x,), dynamic_shapes=({0: Dim("batch")},)), str(path))
    return path


@pytest.fixture
def resnet_pt2(arch_file, tmp_path):
    """The user's ResNet-style net (BatchNorm, residual add), trained a little, as a torch.export file."""
    import importlib.util

    from workbench.data import load_dataset

    spec = importlib.util.spec_from_file_location("user_arch_for_pt2", arch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    model = module.SmallResNet(num_classes=4)
    data = load_dataset("tiny")
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model.train()(data.train_x[:256]), data.train_y[:256]).backward()
        opt.step()
    return _export_pt2(model, tmp_path / "resnet.pt2"), model


def _graph_file(kind: str, model, folder: Path) -> Path:
    """The trained net as the user would bring it: a .pt2, or ONNX with BatchNorm kept as BatchNorm
    (the exporter preserves training-mode layers)."""
    if kind == "pt2":
        return _export_pt2(model, folder / "resnet.pt2")
    pytest.importorskip("onnx")
    path = folder / "resnet.onnx"
    torch.onnx.export(model.eval(), (torch.randn(2, 1, 8, 8),), str(path), input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
                      dynamo=False, training=torch.onnx.TrainingMode.PRESERVE)
    return path


@pytest.mark.parametrize("kind, source", [("pt2", "torch.export"), ("onnx", "onnx")])
@pytest.mark.parametrize("methods, params", [
    (["dns"], [{"c_rate": 0.0, "gamma": 0.0}]),
    (["magnitude", "kmeans"], [{"q_conv": 1.0, "q_fc": 1.0}, {"bits_conv": 4, "bits_fc": 4}]),
])
def test_a_graph_model_runs_every_stage_and_exports_through_its_graph(resnet_pt2, tmp_path, methods, params,
                                                                      kind, source):
    _, original = resnet_pt2
    path = _graph_file(kind, original, tmp_path)
    stages = [StageConfig(m, p, {"epochs": 1}) for m, p in zip(methods, params)]
    config = RunConfig(dataset="tiny", model=str(path), out_dir=str(tmp_path / "runs"), device="cpu",
                       huffman=len(methods) > 1, stages=stages)
    fin = list(execute(config))[-1]
    assert fin.status == "completed", fin.error
    run = read_run(fin.run_path)
    # The graph's own weights are the reference: its accuracy is the trained model's.
    from workbench.data import load_dataset

    data = load_dataset("tiny")
    with torch.no_grad():
        acc = float((original.eval()(data.test_x).argmax(1) == data.test_y).float().mean())
    assert run.summary["reference_accuracy"] == pytest.approx(acc)
    assert run.summary["param_ratio"] > 1.2
    assert source in run.attrs["model_source"]
    compact = export_run(fin.run_path, "compact", tmp_path / "m.cwb")     # a graph needs no opt-in
    assert compact.accounted_bytes == pytest.approx(run.summary["bits"] / 8)
    reloaded = load_compact(compact.path)
    from workbench.engine.export import _rebuild

    stored, _, _ = _rebuild(fin.run_path)
    with torch.no_grad():
        assert torch.allclose(reloaded(data.test_x), stored(data.test_x), atol=1e-5)
        accuracy = float((reloaded(data.test_x).argmax(1) == data.test_y).float().mean())
    assert accuracy == pytest.approx(run.summary["test_accuracy"])


def test_a_pt2_model_for_other_inputs_is_one_line(tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    path = _export_pt2(model, tmp_path / "rgb.pt2", shape=(3, 8, 8))
    out = tmp_path / "runs"
    with pytest.raises(CheckpointError, match=r"rgb.pt2 takes inputs of shape \(3, 8, 8\) but tiny has \(1, 8, 8\)"):
        list(execute(RunConfig(dataset="tiny", model=str(path), out_dir=str(out), stages=[StageConfig("plain")])))
    assert not out.exists() or not any(out.iterdir())


def test_a_pt2_model_exports_back_as_pt2_and_onnx(resnet_pt2, tmp_path):
    """Dense exports in the format the model came in: a .pt2 that stock torch.export.load opens (and the
    safe loader too) and an ONNX file onnxruntime runs, both giving the compressed model's outputs."""
    path, _ = resnet_pt2
    config = RunConfig(dataset="tiny", model=str(path), out_dir=str(tmp_path / "runs"), device="cpu",
                       stages=[StageConfig("magnitude", {"q_conv": 1.0, "q_fc": 1.0}, {"epochs": 1})])
    fin = list(execute(config))[-1]
    assert fin.status == "completed", fin.error
    from workbench.engine.export import _rebuild
    from workbench.models.pt2_graph import load_pt2_model

    stored, _, _ = _rebuild(fin.run_path)
    x = torch.randn(7, 1, 8, 8)
    with torch.no_grad():
        expected = stored(x)
    out = export_run(fin.run_path, "pt2", tmp_path / "compressed.pt2")
    stock = torch.export.load(str(out.path)).module()        # our own file: stock loading is fine here
    with torch.no_grad():
        assert torch.allclose(stock(x), expected, atol=1e-5)
        assert torch.allclose(load_pt2_model(out.path).module.eval()(x), expected, atol=1e-5)
    ort = pytest.importorskip("onnxruntime")
    onnx_out = export_run(fin.run_path, "onnx", tmp_path / "compressed.onnx")
    session = ort.InferenceSession(str(onnx_out.path))
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-4)


def test_train_pretrains_a_user_architecture_for_a_later_run(arch_file, tmp_path, capsys):
    """`workbench train --model FILE.py:NAME` writes plain weights that `run --model FILE --checkpoint`
    takes; without the opt-in nothing is imported."""
    from workbench.cli import main

    out = tmp_path / "ref.pt"
    args = ["train", "--model", f"{arch_file}:SmallResNet", "--dataset", "tiny", "--epochs", "1", "--out", str(out),
            "--quiet", "--json"]
    assert main(args) == 2 and not (arch_file.parent / "ran.marker").exists() and not out.exists()
    capsys.readouterr()
    assert main(args + ["--trust-code"]) == 0
    assert out.is_file()
    state = torch.load(out, weights_only=True)                # plain tensors and values: no code
    assert "block.bn1.running_mean" in state["state_dict"]
    events = list(execute(_config(f"{arch_file}:SmallResNet", tmp_path / "runs", trust_code=True,
                                  checkpoint=str(out))))
    assert events[-1].status == "completed", events[-1].error
    run = read_run(events[-1].run_path)
    assert run.summary["reference_accuracy"] == pytest.approx(state["test_accuracy"])
