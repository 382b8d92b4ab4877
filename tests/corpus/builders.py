"""Builders of bad inputs for the corpus. Where another test folder already builds one (IDX files, a
pickle that proves it ran), its builder is loaded from that file rather than written again here."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn

TESTS = Path(__file__).resolve().parents[1]


def _borrow(relative: str, name: str):
    """A helper module of another test folder, loaded under its own name (those folders are not packages,
    and their conftest.py would clash by name)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TESTS / relative)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


def data_builders():
    """tests/data_tests/conftest.py: idx_bytes, write_idx_set."""
    return _borrow("data_tests/conftest.py", "corpus_data_builders")


def hostile():
    """tests/model_tests/hostile_pt2.py: payload_bytes (a pickle that creates a marker file when loaded)."""
    return _borrow("model_tests/hostile_pt2.py", "corpus_hostile_pt2")


# --- what the cases start from -------------------------------------------------------------------

TINY_SHAPE, TINY_CLASSES = (1, 8, 8), 4          # the built-in `tiny` data set


def finished_run_file(folder: Path) -> Path:
    from workbench.core.config import RunConfig, StageConfig
    from workbench.core.events import Finished
    from workbench.engine.runner import execute

    config = RunConfig(dataset="tiny", model="mlp_tiny", out_dir=str(folder), device="cpu", pretrain_epochs=1,
                       stages=[StageConfig("magnitude", {"q_fc": 1.5}, {"epochs": 1})], name="done")
    finished = [e for e in execute(config) if isinstance(e, Finished)][-1]
    assert finished.status == "completed", finished.error
    return Path(finished.run_path)


def zoo_state(key: str = "mlp_tiny") -> dict[str, torch.Tensor]:
    from workbench.models.zoo import build_model

    torch.manual_seed(0)
    return build_model(key, TINY_SHAPE, TINY_CLASSES).state_dict()


def poisoned(state: dict, key: str = "fc1.weight", value: float = float("nan"), count: int = 12) -> dict:
    """`state` with `count` entries of `key` set to `value` (NaN, inf)."""
    state = {k: v.clone() for k, v in state.items()}
    state[key].view(-1)[:count] = value
    return state


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(64, 16), nn.Linear(16, TINY_CLASSES)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def graph_files(folder: Path) -> dict[str, Path]:
    """A user's small net brought as a graph: clean and NaN-weighted .pt2, NaN-weighted ONNX."""
    from torch.export import Dim, export, save

    folder.mkdir(parents=True)
    torch.manual_seed(0)
    net = SmallNet().eval()
    x = torch.randn(2, *TINY_SHAPE)
    out = {}
    for name, model in (("net", net), ("nan", _with_nan(net))):
        out[f"{name}.pt2"] = folder / f"{name}.pt2"
        save(export(model, (x,), dynamic_shapes=({0: Dim("batch")},)), str(out[f"{name}.pt2"]))
    out["nan.onnx"] = folder / "nan.onnx"
    with warnings.catch_warnings():          # the legacy exporter's deprecation notices
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(_with_nan(net), (x,), str(out["nan.onnx"]), input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          dynamo=False)
    return out


def _with_nan(net: nn.Module) -> nn.Module:
    poisoned_net = SmallNet()
    poisoned_net.load_state_dict(poisoned(net.state_dict()))
    return poisoned_net.eval()


# --- files that are not what they claim ----------------------------------------------------------

def text_file(path: Path, text: str = "not what the name says\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def empty_file(path: Path) -> Path:
    return text_file(path, "")


def truncated_copy(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    data = Path(src).read_bytes()
    dst.write_bytes(data[:int(len(data) * fraction)])
    return dst


def hdf5_not_a_run(path: Path) -> Path:
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(10.0))
        f.attrs["what"] = "an HDF5 file, but not a run"
    return path


def run_copy(src: Path, dst: Path, **model_attrs) -> Path:
    """A copy of a finished run file, its /model attributes changed."""
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        for name, value in model_attrs.items():
            f["model"].attrs[name] = value
    return dst


def run_with_nan(src: Path, dst: Path) -> Path:
    """A finished run whose stored fc1.weight holds 12 NaN values (its checksum rewritten to match)."""
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        w = f["model/fc1.weight"][...]
        w.reshape(-1)[:12] = np.nan
        f["model/fc1.weight"][...] = w
    return dst


def run_with_flipped_tensor(src: Path, dst: Path) -> Path:
    """A byte of a stored tensor's compressed chunk flipped: the HDF5 filter (checksum) read fails."""
    shutil.copy(src, dst)
    with h5py.File(dst, "r") as f:
        offset = f["model/fc1.weight"].id.get_chunk_info(0).byte_offset
    with open(dst, "r+b") as fh:
        fh.seek(offset + 40)
        value = fh.read(1)[0]
        fh.seek(offset + 40)
        fh.write(bytes([value ^ 0x20]))
    return dst


def failed_run(path: Path) -> Path:
    """A run file whose run failed before it had a model."""
    from workbench.core.store import RunWriter

    RunWriter(path, {"config": "{}", "method": "magnitude"}).finish("failed", error="stopped on purpose")
    return path


def python_model(path: Path, marker: Path) -> Path:
    """A model definition whose import would create `marker`: proof that code ran."""
    path.write_text(f"open({str(marker)!r}, 'w').close()\nimport torch\n"
                    "class Net(torch.nn.Linear):\n    def __init__(self):\n        super().__init__(64, 4)\n")
    return path


def pickle_with_marker(path: Path, marker: Path) -> Path:
    path.write_bytes(hostile().payload_bytes(marker))
    return path


def arrays_file(path: Path, **changes) -> Path:
    """An arrays: data set (.npz) of 6x5 images and 3 classes, with `changes` to its arrays."""
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.random((10, 6, 5)).astype(np.float32), "y_train": np.arange(10) % 3,
              "x_test": rng.random((4, 6, 5)).astype(np.float32), "y_test": np.arange(4) % 3, **changes}
    np.savez(path, **arrays)
    return path


def idx_folder(folder: Path, damage: str) -> Path:
    """Four IDX files (MNIST names), one damaged: `swapped` (images and labels), `labels` (out of range),
    `truncated` (an images file cut short)."""
    d = data_builders()
    arrays = d.write_idx_set(folder, gz=False)
    if damage == "swapped":
        (folder / "train-images-idx3-ubyte").write_bytes(d.idx_bytes(arrays["train-labels-idx1-ubyte"]))
        (folder / "train-labels-idx1-ubyte").write_bytes(d.idx_bytes(arrays["train-images-idx3-ubyte"]))
    elif damage == "labels":
        (folder / "t10k-labels-idx1-ubyte").write_bytes(d.idx_bytes(np.full(12, 10)))
    elif damage == "truncated":
        truncated_copy(folder / "t10k-images-idx3-ubyte", folder / "t10k-images-idx3-ubyte", 0.6)
    return folder
