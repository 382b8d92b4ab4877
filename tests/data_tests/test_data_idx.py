import gzip

import numpy as np
import pytest
import torch

from workbench.core.errors import DataError
from workbench.data import load_dataset
from workbench.data.idx import parse_idx


@pytest.mark.parametrize("gz", [True, False])
def test_idx_set_loads(tmp_path, gz, write_idx_set):
    arrays = write_idx_set(tmp_path / "mnist", gz=gz)
    ds = load_dataset("mnist", tmp_path)
    assert ds.train_x.shape == (30, 1, 5, 5) and ds.test_x.shape == (12, 1, 5, 5)
    assert ds.train_x.dtype == torch.float32 and ds.train_y.dtype == torch.int64
    raw = torch.from_numpy(arrays["train-images-idx3-ubyte"]).float()[:, None] / 255
    assert torch.allclose(ds.train_x, (raw - 0.1307) / 0.3081, atol=1e-5)
    assert ds.train_y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert ds.num_classes == 10 and ds.mean == (0.1307,) and ds.source == str(tmp_path / "mnist")


def test_fashion_uses_its_own_normalisation_and_names(tmp_path, write_idx_set):
    write_idx_set(tmp_path / "fashion_mnist")
    ds = load_dataset("fashion-mnist", tmp_path)
    assert ds.mean == (0.2860,) and ds.std == (0.3530,) and ds.classes[0] == "T-shirt/top"


def test_repeated_load_gives_independent_tensors(tmp_path, write_idx_set):
    write_idx_set(tmp_path)  # files directly in the root also count
    a = load_dataset("mnist", tmp_path)
    a.train_x.zero_()
    assert load_dataset("mnist", tmp_path).train_x.abs().sum() > 0


def test_truncated_gzip_names_the_file(tmp_path, write_idx_set):
    write_idx_set(tmp_path)
    f = tmp_path / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:-40])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        load_dataset("mnist", tmp_path)


def test_truncated_raw_file_names_the_file(tmp_path, write_idx_set):
    write_idx_set(tmp_path, gz=False)
    f = tmp_path / "t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-7])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.*truncated"):
        load_dataset("mnist", tmp_path)


def test_wrong_magic(tmp_path, write_idx_set):
    write_idx_set(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"PK\x03\x04" + bytes(30))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.*magic"):
        load_dataset("mnist", tmp_path)


def test_images_and_labels_swapped(tmp_path, write_idx_set, idx_bytes):
    arrays = write_idx_set(tmp_path, gz=False)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(arrays["train-labels-idx1-ubyte"]))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: expected IDX images \(3-D ubyte\), but "
                                        r"this file holds IDX labels \(1-D ubyte, 30\); are the images"):
        load_dataset("mnist", tmp_path)


def test_labels_file_holding_images_says_which_is_which(tmp_path, write_idx_set, idx_bytes):
    # The message once read "expected IDX labels (ubyte, 3 dims), got uint8 with 3 dims".
    arrays = write_idx_set(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(arrays["t10k-images-idx3-ubyte"]))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: expected IDX labels \(1-D ubyte\), but "
                                        r"this file holds IDX images \(3-D ubyte, 12x5x5\); are the images "
                                        r"and labels files swapped\?"):
        load_dataset("mnist", tmp_path)


def test_label_count_mismatch(tmp_path, write_idx_set, idx_bytes):
    write_idx_set(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(11)))
    with pytest.raises(DataError, match="11 labels for 12 images"):
        load_dataset("mnist", tmp_path)


def test_label_out_of_range(tmp_path, write_idx_set, idx_bytes):
    write_idx_set(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.full(12, 10)))
    with pytest.raises(DataError, match="outside 0..9"):
        load_dataset("mnist", tmp_path)


def test_parse_idx_checks_sizes(idx_bytes):
    good = idx_bytes(np.zeros((2, 3, 3)))
    assert parse_idx(good).shape == (2, 3, 3)
    with pytest.raises(DataError, match="trailing"):
        parse_idx(good + b"\0")
    with pytest.raises(DataError, match="truncated"):
        parse_idx(good[:6])
    assert parse_idx(gzip.decompress(gzip.compress(good))).dtype == np.uint8
