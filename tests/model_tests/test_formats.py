"""Unsafe pickles, trusted modules, TorchScript, torch.export and safetensors."""
import builtins
import json
import os
import pickle
import zipfile

import pytest
import torch
from safetensors.torch import save_file

from workbench.core.errors import CheckpointError
from workbench.models.checkpoint import load_model_file
from workbench.models.zoo import build_model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:Duplicate name")

X = torch.randn(3, 1, 28, 28)


class SystemCall:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class ExecCall(SystemCall):
    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


def same_outputs(a, b):
    with torch.no_grad():
        return torch.equal(a.eval()(X), b.eval()(X))


@pytest.fixture(scope="module")
def lenet300():
    torch.manual_seed(0)
    return build_model("lenet300").eval()


@pytest.mark.parametrize("payload", [SystemCall, ExecCall])
@pytest.mark.parametrize("writer", ["torch.save", "pickle", "torch.save legacy"])
def test_malicious_pickle_does_not_run(tmp_path, payload, writer):
    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    obj = {"state_dict": {"w": torch.zeros(1)}, "hook": payload(marker)}
    if writer == "pickle":
        path.write_bytes(pickle.dumps(obj))
    else:
        torch.save(obj, path, _use_new_zipfile_serialization=(writer == "torch.save"))
    with pytest.raises(CheckpointError, match="run code.*--trust-code"):
        load_model_file(path)
    assert not marker.exists()


def test_malicious_pickle_inside_pt2_does_not_run(tmp_path, lenet300):
    export = pytest.importorskip("torch.export")
    try:
        src = tmp_path / "ok.pt2"
        export.save(export.export(lenet300, (X,)), src)
    except Exception as exc:  # pragma: no cover - depends on the torch build
        pytest.skip(f"torch.export save unavailable: {exc}")
    marker, evil = tmp_path / "pwned", tmp_path / "evil.pt2"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(evil, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("weights_config.json"):
                config = json.loads(data)
                first = next(iter(config["config"].values()))
                first["use_pickle"] = True
                evil_name = info.filename.rsplit("/", 1)[0] + "/" + first["path_name"]
                data = json.dumps(config).encode()
            zout.writestr(info, data)
    with zipfile.ZipFile(evil, "a") as zout:  # duplicate name: the reader takes the last one
        zout.writestr(evil_name, pickle.dumps(SystemCall(marker)))
    with pytest.raises(CheckpointError, match="--trust-code"):
        load_model_file(evil)
    assert not marker.exists()


def test_pickled_module_needs_opt_in(tmp_path, lenet300):
    path = tmp_path / "model.pt"
    torch.save(lenet300, path)
    with pytest.raises(CheckpointError, match="--trust-code"):
        load_model_file(path)
    loaded = load_model_file(path, allow_code=True)
    assert (loaded.source, loaded.model_key, loaded.input_shape, loaded.num_classes) == (
        "pickled module", "lenet300", (1, 28, 28), 10)
    assert same_outputs(lenet300, loaded.model)


def test_torchscript_needs_the_opt_in(tmp_path, lenet300, monkeypatch):
    """TorchScript is code: without the opt-in torch.jit.load is never called."""
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(lenet300), str(path))
    called = []
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: called.append(a))
    with pytest.raises(CheckpointError, match="TorchScript.*--trust-code"):
        load_model_file(path)
    assert called == []


def test_torchscript_loads_into_zoo_model(tmp_path, lenet300):
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(lenet300), str(path))
    loaded = load_model_file(path, allow_code=True)
    assert (loaded.source, loaded.model_key) == ("torchscript", "lenet300")
    assert type(loaded.model).__name__ == "LeNet300"
    assert same_outputs(lenet300, loaded.model)


def test_foreign_torchscript_is_refused(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.jit.save(torch.jit.script(torch.nn.Sequential(torch.nn.Linear(4, 2))), str(path))
    with pytest.raises(CheckpointError, match="does not fit.*state_dict of one of its architectures"):
        load_model_file(path, allow_code=True)


def test_torch_export_loads_into_zoo_model(tmp_path, lenet300):
    export = pytest.importorskip("torch.export")
    path = tmp_path / "model.pt2"
    try:
        export.save(export.export(lenet300, (X,)), str(path))
    except Exception as exc:  # pragma: no cover - depends on the torch build
        pytest.skip(f"torch.export save unavailable: {exc}")
    loaded = load_model_file(path)
    assert (loaded.source, loaded.model_key) == ("torch.export", "lenet300")
    assert same_outputs(lenet300, loaded.model)


def test_safetensors_with_sidecar_config(tmp_path):
    torch.manual_seed(2)
    model = build_model("cnn_tiny", (3, 16, 16), 4).eval()
    path = tmp_path / "dense.safetensors"
    save_file(model.state_dict(), str(path))
    (tmp_path / "dense.json").write_text(json.dumps({"model": "cnn_tiny", "input_shape": [3, 16, 16],
                                                     "num_classes": 4}))
    loaded = load_model_file(path)
    assert (loaded.model_key, loaded.input_shape, loaded.num_classes) == ("cnn_tiny", (3, 16, 16), 4)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), loaded.model(x))


def test_safetensors_without_sidecar_is_inferred(tmp_path, lenet300):
    save_file(lenet300.state_dict(), str(tmp_path / "w.safetensors"))
    loaded = load_model_file(tmp_path / "w.safetensors")
    assert loaded.model_key == "lenet300" and same_outputs(lenet300, loaded.model)


def test_torchscript_weights_for_a_user_model_need_the_opt_in(tmp_path, lenet300, monkeypatch):
    """The weights path of a user architecture (load_state_dict_file) asks the same opt-in, and a damaged
    archive with the opt-in is one line."""
    from workbench.models.checkpoint import load_state_dict_file

    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(lenet300), str(path))
    with pytest.raises(CheckpointError, match="TorchScript.*--trust-code"):
        load_state_dict_file(path)
    assert set(load_state_dict_file(path, allow_code=True)) == set(lenet300.state_dict())
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("bad archive")))
    with pytest.raises(CheckpointError, match="damaged or not a PyTorch checkpoint"):
        load_state_dict_file(path, allow_code=True)
