import numpy as np
import pytest

from workbench.core.errors import DataError
from workbench.data import load_dataset

Image = pytest.importorskip("PIL.Image", reason="Pillow is optional")


def _save(path, value, size=(6, 4), mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    Image.fromarray(np.full(shape, value, np.uint8), mode).save(path)


def test_folder_split_80_20(tmp_path):
    for c, value in (("cat", 10), ("dog", 200)):
        for i in range(10):
            _save(tmp_path / c / f"{i}.png", value + i)
    (tmp_path / "cat" / "notes.txt").write_text("ignored")
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.classes == ["cat", "dog"] and ds.input_shape == (1, 4, 6)
    assert len(ds.train_x) == 16 and len(ds.test_x) == 4
    assert ds.test_y.tolist().count(0) == 2
    assert load_dataset(f"folder:{tmp_path}").test_y.tolist() == ds.test_y.tolist()  # fixed seed


def test_folder_train_test_and_colour(tmp_path):
    _save(tmp_path / "train" / "a" / "1.png", 5, mode="RGB")
    _save(tmp_path / "train" / "b" / "1.jpg", 9)  # grey joins an RGB set as 3 channels
    _save(tmp_path / "test" / "b" / "1.bmp", 9, mode="RGB")
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.input_shape == (3, 4, 6) and ds.train_y.tolist() == [0, 1] and ds.test_y.tolist() == [1]
    assert len(ds.mean) == 3


def test_folder_odd_size_is_named(tmp_path):
    for i in range(3):
        _save(tmp_path / "a" / f"{i}.png", 1)
    _save(tmp_path / "a" / "odd.png", 1, size=(5, 5))
    with pytest.raises(DataError, match="odd.png is 5x5 pixels, most images are 6x4"):
        load_dataset(f"folder:{tmp_path}")


def test_folder_unreadable_and_empty(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(DataError, match="no class sub-folders"):
        load_dataset(f"folder:{tmp_path}")
    (tmp_path / "a" / "bad.png").write_bytes(b"nope")
    with pytest.raises(DataError, match="bad.png"):
        load_dataset(f"folder:{tmp_path}")
