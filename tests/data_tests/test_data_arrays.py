import h5py
import numpy as np
import pytest
import torch

from workbench.core.errors import DataError
from workbench.data import load_dataset


def _arrays(layout, dtype=np.uint8):
    rng = np.random.default_rng(1)
    shape = {"nhwc": (10, 6, 5, 3), "nchw": (10, 3, 6, 5), "nhw": (10, 6, 5)}[layout]
    x = rng.integers(0, 256, shape).astype(dtype)
    return x, np.arange(10) % 3, x[:4].copy(), np.array([0, 1, 2, 2])


def _check(ds, channels):
    assert ds.train_x.shape == (10, channels, 6, 5) and ds.test_x.shape == (4, channels, 6, 5)
    assert ds.num_classes == 3 and ds.train_y.dtype == torch.int64
    # mean/std come from the train split, so it is normalised exactly
    assert torch.allclose(ds.train_x.mean(dim=(0, 2, 3)), torch.zeros(channels), atol=1e-5)
    assert torch.allclose(ds.train_x.std(dim=(0, 2, 3), unbiased=False), torch.ones(channels), atol=1e-4)


@pytest.mark.parametrize("layout,channels", [("nhwc", 3), ("nchw", 3), ("nhw", 1)])
@pytest.mark.parametrize("style", ["x_train", "train_x"])
def test_npz(tmp_path, layout, channels, style):
    xtr, ytr, xte, yte = _arrays(layout)
    names = ({"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte} if style == "x_train"
             else {"train_x": xtr, "train_y": ytr, "test_x": xte, "test_y": yte})
    np.savez(tmp_path / "set.npz", **names)
    ds = load_dataset(f"arrays:{tmp_path / 'set.npz'}")
    _check(ds, channels)
    assert ds.name == f"arrays:{tmp_path / 'set.npz'}"
    if layout == "nhwc":  # channels moved, values kept: uint8 scaled to 0..1 before normalising
        pixel = ds.train_x[0, :, 0, 0] * torch.tensor(ds.std) + torch.tensor(ds.mean)
        assert torch.allclose(pixel, torch.from_numpy(xtr[0, 0, 0] / 255).float(), atol=1e-5)


@pytest.mark.parametrize("layout,channels", [("nhwc", 3), ("nchw", 3)])
def test_h5(tmp_path, layout, channels):
    xtr, ytr, xte, yte = _arrays(layout, np.float32)
    with h5py.File(tmp_path / "set.h5", "w") as f:
        for k, v in {"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte}.items():
            f[k] = v
        f["classes"] = np.array([b"a", b"b", b"c"])
    ds = load_dataset(f"arrays:{tmp_path / 'set.h5'}")
    _check(ds, channels)
    assert ds.classes == ["a", "b", "c"]


def test_bad_array_files(tmp_path):
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((2, 4, 4)), y_train=np.zeros(2))
    with pytest.raises(DataError, match="x_test or test_x"):
        load_dataset(f"arrays:{tmp_path / 'partial.npz'}")
    xtr, ytr, xte, yte = _arrays("nhw")
    np.savez(tmp_path / "obj.npz", x_train=xtr, y_train=np.array([object()] * 10), x_test=xte, y_test=yte)
    with pytest.raises(DataError, match="obj.npz"):
        load_dataset(f"arrays:{tmp_path / 'obj.npz'}")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="junk.npz"):
        load_dataset(f"arrays:{tmp_path / 'junk.npz'}")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="junk.h5"):
        load_dataset(f"arrays:{tmp_path / 'junk.h5'}")
    with pytest.raises(DataError, match="not found"):
        load_dataset(f"arrays:{tmp_path / 'missing.npz'}")
    np.savez(tmp_path / "mismatch.npz", x_train=xtr, y_train=ytr[:5], x_test=xte, y_test=yte)
    with pytest.raises(DataError, match="expected 10 labels"):
        load_dataset(f"arrays:{tmp_path / 'mismatch.npz'}")
