import os
import zipfile

import pytest
import torch

from workbench.core.errors import CheckpointError, WorkbenchError
from workbench.models.checkpoint import load_model_file, save_reference
from workbench.models.zoo import build_model

X = torch.randn(3, 1, 28, 28)


def same_outputs(a, b, x=X):
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


@pytest.fixture(scope="module")
def lenet300():
    torch.manual_seed(0)
    return build_model("lenet300").eval()


def test_reference_round_trip(tmp_path):
    torch.manual_seed(1)
    model = build_model("resnet20", (3, 32, 32), 10)
    model.train()(torch.randn(4, 3, 32, 32))  # move BatchNorm statistics away from their defaults
    path = tmp_path / "sub" / "ref.pt"
    save_reference(path, model, model_key="resnet20", input_shape=(3, 32, 32), num_classes=10,
                   dataset="cifar10", test_accuracy=0.91, extra={"epochs": 2, "lr": [0.1, 0.01]})
    loaded = load_model_file(path)
    assert (loaded.source, loaded.model_key, loaded.input_shape, loaded.num_classes) == (
        "reference", "resnet20", (3, 32, 32), 10)
    assert loaded.meta["test_accuracy"] == pytest.approx(0.91) and loaded.meta["extra"]["epochs"] == 2
    assert same_outputs(model, loaded.model, torch.randn(2, 3, 32, 32))
    assert [p.name for p in path.parent.iterdir()] == ["ref.pt"]  # no temporary file left behind


def test_save_reference_errors(tmp_path, lenet300):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(WorkbenchError, match="cannot write"):
        save_reference(blocker / "ref.pt", lenet300, model_key="lenet300", input_shape=(1, 28, 28),
                       num_classes=10, dataset="mnist", test_accuracy=0.9)
    with pytest.raises(WorkbenchError, match="plain values"):
        save_reference(tmp_path / "r.pt", lenet300, model_key="lenet300", input_shape=(1, 28, 28),
                       num_classes=10, dataset="mnist", test_accuracy=0.9, extra={"f": object()})


@pytest.mark.parametrize("wrap", ["bare", "module_prefix", "nested"])
def test_state_dict_with_inferred_model(tmp_path, wrap, lenet300):
    sd = lenet300.state_dict()
    if wrap == "module_prefix":
        sd = {"module." + k: v for k, v in sd.items()}
    obj = {"model_state_dict": sd, "epoch": 3} if wrap == "nested" else sd
    torch.save(obj, tmp_path / "w.pth")
    loaded = load_model_file(tmp_path / "w.pth")
    assert (loaded.source, loaded.model_key, loaded.num_classes) == ("state_dict", "lenet300", 10)
    assert same_outputs(lenet300, loaded.model)


def test_num_classes_and_input_shape_inferred(tmp_path):
    model = build_model("lenet5", (3, 32, 32), 100)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    loaded = load_model_file(tmp_path / "w.pt")
    assert (loaded.model_key, loaded.input_shape, loaded.num_classes) == ("lenet5", (3, 32, 32), 100)


def test_foreign_state_dict_names_the_mismatch(tmp_path):
    torch.save(build_model("lenet5").state_dict(), tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match=r"shape mismatch fc1\.weight \(500, 800\) vs \(300, 784\)"):
        load_model_file(tmp_path / "w.pt", model_key="lenet300")
    foreign = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.Linear(3, 2))
    torch.save(foreign.state_dict(), tmp_path / "f.pt")
    with pytest.raises(CheckpointError, match=r"unexpected keys: 0\.weight.*missing"):
        load_model_file(tmp_path / "f.pt")


def test_reference_from_newer_workbench_or_wrong_model(tmp_path, lenet300):
    path = tmp_path / "ref.pt"
    save_reference(path, lenet300, model_key="lenet300", input_shape=(1, 28, 28), num_classes=10,
                   dataset="mnist", test_accuracy=0.98)
    with pytest.raises(CheckpointError, match="holds a lenet300 model, not lenet5"):
        load_model_file(path, model_key="lenet5")
    record = torch.load(path, weights_only=True)
    torch.save({**record, "version": 99}, path)
    with pytest.raises(CheckpointError, match="newer workbench"):
        load_model_file(path)


def test_explicit_num_classes_that_do_not_fit(tmp_path, lenet300):
    torch.save(lenet300.state_dict(), tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match=r"fc3\.weight \(10, 100\) vs \(5, 100\)"):
        load_model_file(tmp_path / "w.pt", num_classes=5)


@pytest.mark.parametrize("content", ["truncated", "random", "text", "empty", "zip"])
def test_damaged_files(tmp_path, content, lenet300):
    path = tmp_path / "bad.pt"
    if content == "truncated":
        torch.save(lenet300.state_dict(), path)
        path.write_bytes(path.read_bytes()[:5000])
    elif content == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("readme.txt", "hello")
    else:
        path.write_bytes({"random": os.urandom(4096), "text": b"hello world", "empty": b""}[content])
    with pytest.raises(CheckpointError):
        load_model_file(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model_file(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="not a file"):
        load_model_file(tmp_path)
