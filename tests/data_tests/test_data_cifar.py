import io
import os
import pickle
import struct

import numpy as np
import pytest
import torch

from workbench.core.errors import DataError
from workbench.data import find_dataset, load_dataset
from workbench.data.cifar import CLASSES, safe_load


def _write_batches(folder, per_batch=6, n_test=5, protocol=4, str_keys=False, meta=True):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def key(k):
        return k if str_keys else k.encode()

    def batch(n, offset):
        return {key("batch_label"): b"fake", key("data"): rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                key("labels"): [(offset + i) % 10 for i in range(n)]}

    for i in range(1, 6):
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch(per_batch, i), f, protocol=protocol)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(batch(n_test, 0), f, protocol=protocol)
    if meta:
        with open(folder / "batches.meta", "wb") as f:
            pickle.dump({key("label_names"): [c.encode() for c in CLASSES]}, f, protocol=protocol)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_fake_cifar_batches(tmp_path, protocol):
    _write_batches(tmp_path / "cifar-10-batches-py", protocol=protocol)
    ds = load_dataset("cifar10", tmp_path)
    assert ds.train_x.shape == (30, 3, 32, 32) and ds.test_x.shape == (5, 3, 32, 32)
    assert ds.classes == CLASSES and ds.num_classes == 10
    assert ds.mean == (0.4914, 0.4822, 0.4465)
    assert ds.train_y[:6].tolist() == [1, 2, 3, 4, 5, 6]  # batch 1 comes first
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "rb") as f:
        raw = pickle.load(f)[b"data"].reshape(-1, 3, 32, 32)
    expected = (torch.from_numpy(raw).float() / 255 - 0.4914) / 0.2470
    assert torch.allclose(ds.test_x[:, 0], expected[:, 0], atol=1e-5)


def test_str_keys_and_no_meta(tmp_path):
    _write_batches(tmp_path / "cifar10", str_keys=True, meta=False)
    assert find_dataset("cifar10", tmp_path) == tmp_path / "cifar10"
    assert load_dataset("cifar-10", tmp_path).classes == CLASSES


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload", ["system", "eval", "numpy_load"])
def test_malicious_pickle_is_refused_and_does_not_run(tmp_path, payload):
    folder = tmp_path / "cifar10"
    _write_batches(folder)
    marker = tmp_path / "pwned"
    evil = {"system": _Evil(marker),
            "eval": _EvalEvil(marker),
            "numpy_load": _NumpyEvil(marker)}[payload]
    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({b"data": evil, b"labels": []}, f)
    with pytest.raises(DataError, match="data_batch_3.*refuses to load code"):
        load_dataset("cifar10", tmp_path)
    assert not marker.exists()


class _EvalEvil(_Evil):
    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w')",))


class _NumpyEvil(_Evil):
    # A numpy global outside the reconstruction allow-list.
    def __reduce__(self):
        return (np.save, (str(self.marker), np.zeros(1)))


def test_damaged_and_wrong_batches(tmp_path):
    folder = tmp_path / "cifar10"
    _write_batches(folder)
    (folder / "data_batch_2").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match="data_batch_2.*damaged"):
        load_dataset("cifar10", tmp_path)
    with open(folder / "data_batch_2", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DataError, match=r"data_batch_2.*\(N, 3072\)"):
        load_dataset("cifar10", tmp_path)
    with open(folder / "data_batch_2", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, f)
    with pytest.raises(DataError, match="1 labels for 2 images"):
        load_dataset("cifar10", tmp_path)


def test_safe_load_reads_plain_data(tmp_path):
    p = tmp_path / "x.pkl"
    p.write_bytes(pickle.dumps({"a": [1, 2.5, "s", b"b", (1, None)], "n": np.arange(3)}))
    out = safe_load(p)
    assert out["a"] == [1, 2.5, "s", b"b", (1, None)] and out["n"].tolist() == [0, 1, 2]


class _Py2Pickler(pickle._Pickler):
    """Writes bytes and str the way Python 2 did (BINSTRING), like the original CIFAR batches."""

    def save_bytes(self, obj):
        head = (pickle.SHORT_BINSTRING + bytes([len(obj)]) if len(obj) < 256
                else pickle.BINSTRING + struct.pack("<i", len(obj)))
        self.write(head + obj)
        self.memoize(obj)

    def save_str(self, obj):
        self.save_bytes(obj.encode("latin1"))

    dispatch = {**pickle._Pickler.dispatch, bytes: save_bytes, str: save_str}


def test_python2_style_batch_with_old_numpy_name(tmp_path):
    folder = tmp_path / "cifar10"
    _write_batches(folder)
    data = np.arange(2 * 3072, dtype=np.uint64).astype(np.uint8).reshape(2, 3072)
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump({b"data": data, b"labels": [3, 7], b"filenames": [b"a.png"]})
    # The real batches name numpy 1's module; numpy 2 writes numpy._core.
    (folder / "test_batch").write_bytes(buf.getvalue().replace(b"numpy._core.", b"numpy.core."))
    ds = load_dataset("cifar10", tmp_path)
    assert ds.test_y.tolist() == [3, 7]
    assert torch.allclose(ds.test_x[1, 2, 31, 31], torch.tensor((255 / 255 - 0.4465) / 0.2616))
