"""Data sets are checked where every source comes through (make_dataset): a bad set fails at load with
one line naming the file and what is wrong, never later in training."""

import numpy as np
import pytest
import torch

from workbench.cli import main
from workbench.core.errors import DataError, ParamError
from workbench.data import load_dataset
from workbench.data.dataset import make_dataset

Image = None
try:
    from PIL import Image
except ImportError:
    pass


def _good(n_train=10, n_test=4):
    rng = np.random.default_rng(0)
    return {"x_train": rng.random((n_train, 6, 5)).astype(np.float32), "y_train": np.arange(n_train) % 3,
            "x_test": rng.random((n_test, 6, 5)).astype(np.float32), "y_test": np.arange(n_test) % 3}


def _load(tmp_path, **changes):
    arrays = {**_good(), **changes}
    np.savez(tmp_path / "x.npz", **arrays)
    return load_dataset(f"arrays:{tmp_path / 'x.npz'}")


def test_nan_and_inf_pixels_are_counted_and_named(tmp_path):
    x = _good()["x_train"]
    x.flat[[3, 7, 11]] = np.nan
    with pytest.raises(DataError, match=r"x\.npz: x_train holds 3 NaN values; pixels must be finite"):
        _load(tmp_path, x_train=x)
    xt = _good()["x_test"]
    xt.flat[0], xt.flat[1], xt.flat[2] = np.nan, np.inf, -np.inf
    with pytest.raises(DataError, match="x_test holds 1 NaN and 2 infinite values"):
        _load(tmp_path, x_test=xt)
    # beyond float32's range is infinite once converted, so it is caught too
    big = _good()["x_train"].astype(np.float64)
    big[0, 0, 0] = 1e300
    with pytest.raises(DataError, match="x_train holds 1 infinite value;"):
        _load(tmp_path, x_train=big)


def test_the_names_the_file_uses_are_the_names_in_the_message(tmp_path):
    g = _good()
    g["x_train"][0, 0, 0] = np.nan
    np.savez(tmp_path / "y.npz", train_x=g["x_train"], train_y=g["y_train"], test_x=g["x_test"],
             test_y=g["y_test"])
    with pytest.raises(DataError, match="train_x holds 1 NaN value;"):
        load_dataset(f"arrays:{tmp_path / 'y.npz'}")


def test_empty_splits_are_refused(tmp_path):
    with pytest.raises(DataError, match=r"x\.npz has no test samples \(x_test is empty\)"):
        _load(tmp_path, x_test=np.zeros((0, 6, 5), np.float32), y_test=np.zeros(0, np.int64))
    with pytest.raises(DataError, match="has no training samples"):
        _load(tmp_path, x_train=np.zeros((0, 6, 5), np.float32), y_train=np.zeros(0, np.int64))
    with pytest.raises(DataError, match="have no pixels"):
        _load(tmp_path, x_train=np.zeros((10, 0, 5), np.float32), x_test=np.zeros((4, 0, 5), np.float32))


def test_labels_are_checked(tmp_path):
    with pytest.raises(DataError, match="y_train holds label -1; labels must be 0..classes-1"):
        _load(tmp_path, y_train=np.array([0, 1, 2, -1, 0, 1, 2, 0, 1, 2]))
    with pytest.raises(DataError, match="y_test holds label 2.5; labels must be whole numbers"):
        _load(tmp_path, y_test=np.array([0, 1, 2.5, 2]))
    with pytest.raises(DataError, match="y_test holds label nan"):
        _load(tmp_path, y_test=np.array([0, 1, np.nan, 2]))
    with pytest.raises(DataError, match="y_train holds <U1 values; labels must be integers"):
        _load(tmp_path, y_train=np.array(list("abcabcabca")))
    # one stray huge label would otherwise make billions of classes
    with pytest.raises(DataError, match="y_test holds label 4000000000; labels must be class indices"):
        _load(tmp_path, y_test=np.array([0, 1, 2, 4_000_000_000], np.uint64))
    # with named classes, a label past them
    np.savez(tmp_path / "c.npz", **{**_good(), "y_test": np.array([0, 1, 2, 3])},
             classes=np.array(["a", "b", "c"]))
    with pytest.raises(DataError, match="y_test holds label 3; labels must be 0..2 for 3 classes"):
        load_dataset(f"arrays:{tmp_path / 'c.npz'}")
    # whole-number float labels are fine
    assert _load(tmp_path, y_train=(np.arange(10) % 3).astype(np.float32)).train_y.dtype == torch.int64


def test_label_and_image_counts_must_match(tmp_path):
    with pytest.raises(DataError, match="y_test has 3 labels; expected 4 labels, one per image in x_test"):
        _load(tmp_path, y_test=np.array([0, 1, 2]))
    with pytest.raises(DataError, match=r"y_train has labels of shape \(10, 2\)"):
        _load(tmp_path, y_train=np.zeros((10, 2), np.int64))


def test_non_numeric_images_name_the_array():
    x = np.array([[["a"]]] * 2)[:, None]
    with pytest.raises(DataError, match="set: train images: images must be numeric"):
        make_dataset("set", "here", (x, np.zeros(2)), (x, np.zeros(2)))


def test_npy_is_not_a_data_set(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 4)))
    with pytest.raises(DataError, match=r"x\.npy: a \.npy file holds a single array; a data set is an \.npz"):
        load_dataset(f"arrays:{tmp_path / 'x.npy'}")
    # the same content under an .npz name (np.load would hand back a bare array)
    (tmp_path / "x.npz").write_bytes((tmp_path / "x.npy").read_bytes())
    with pytest.raises(DataError, match=r"x\.npz: a single \.npy array; a data set is an \.npz archive"):
        load_dataset(f"arrays:{tmp_path / 'x.npz'}")


def test_object_arrays_are_refused_without_unpickling(tmp_path, monkeypatch):
    import pickle

    g = _good()
    np.savez(tmp_path / "obj.npz", **{**g, "y_train": np.array([object()] * 10)})
    # nothing may be unpickled on the way to the refusal
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled"))
    with pytest.raises(DataError, match=r"obj\.npz: y_train holds Python objects"):
        load_dataset(f"arrays:{tmp_path / 'obj.npz'}")


def test_junk_is_not_called_python_objects(tmp_path):
    # np.load calls anything unrecognised "pickled (object) data"; junk is not
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match=r"junk\.npz: damaged or not an \.npz file") as e:
        load_dataset(f"arrays:{tmp_path / 'junk.npz'}")
    assert "pickle" not in str(e.value) and "object" not in str(e.value)
    np.savez(tmp_path / "cut.npz", **_good())
    (tmp_path / "cut.npz").write_bytes((tmp_path / "cut.npz").read_bytes()[:100])
    with pytest.raises(DataError, match=r"cut\.npz: damaged or not an \.npz file"):
        load_dataset(f"arrays:{tmp_path / 'cut.npz'}")


@pytest.mark.skipif(Image is None, reason="Pillow is optional")
def test_folder_of_single_images_says_why_there_is_no_test_split(tmp_path):
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        Image.fromarray(np.zeros((4, 4), np.uint8), "L").save(tmp_path / c / "1.png")
    with pytest.raises(DataError, match="no image left for testing: each class folder holds a single image"):
        load_dataset(f"folder:{tmp_path}")


def test_nan_set_fails_at_load_before_a_run_file(tmp_path, capsys):
    """A NaN pixel is a data error (exit 2), never a NaN loss blamed on the learning rate."""
    g = _good()
    g["x_train"][2, 3, 1] = np.nan
    np.savez(tmp_path / "nan.npz", **g)
    out = tmp_path / "runs"
    rc = main(["run", "--model", "mlp_tiny", "--dataset", f"arrays:{tmp_path / 'nan.npz'}",
               "--method", "plain", "--epochs", "1", "--device", "cpu", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip().splitlines() == [(f"error: arrays:{tmp_path / 'nan.npz'}: x_train holds 1 NaN value; "
                                         f"pixels must be finite numbers")]
    assert "learning rate" not in err
    assert not out.exists() or not list(out.rglob("*.h5"))


def test_a_zero_subset_keeps_the_split_whole():
    # RunSettings declares 0 as "all"; Dataset.subset says the same, so a subset is never empty
    ds = load_dataset("tiny")
    sub = ds.subset(0, 0, seed=1)
    assert len(sub.train_x) == len(ds.train_x) and len(sub.test_x) == len(ds.test_x)
    assert len(ds.subset(0, 3).test_x) == 3 and len(ds.subset(5, 0).test_x) == len(ds.test_x)
    with pytest.raises(ParamError, match="must be >= 0"):
        ds.subset(None, -1)
