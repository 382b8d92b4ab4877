"""CIFAR-10 "python version" batches, read with an unpickler that cannot run code."""

from __future__ import annotations

import functools
import io
import pickle
from pathlib import Path

import numpy as np

from workbench.core.errors import DataError
from workbench.data.dataset import Dataset, make_dataset

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
    from numpy._core.numeric import _frombuffer
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct
    from numpy.core.numeric import _frombuffer

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


def _latin1_encode(text, encoding="latin1"):
    # Protocol-2 pickles written by Python 3 spell bytes as _codecs.encode(str, "latin1").
    if encoding != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError("_codecs.encode is allowed for latin1 text only")
    return text.encode("latin1")


# Everything a pickled numpy array needs, under both numpy module spellings, and nothing else.
# _frombuffer is what protocol-5 pickles use; it refuses object dtypes, so it builds plain data only.
_ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("_codecs", "encode"): _latin1_encode,
}


class _Refused(Exception):
    pass


class SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None


def safe_load(path: Path):
    """Unpickle a data file; anything but plain containers and numpy arrays is refused."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        # encoding="bytes": the original batches are Python 2 pickles whose str values are bytes.
        return SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except _Refused as e:
        raise DataError(f"{path}: wants to call {e}; the workbench refuses to load code") from None
    except Exception as e:  # any failure here is a damaged file: nothing in it could run
        raise DataError(f"{path}: damaged or not a CIFAR pickle ({type(e).__name__})") from None


def _get(d: dict, key: str):
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    return None


@functools.lru_cache(maxsize=8)
def _read_batch_cached(path: str, mtime_ns: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    batch = safe_load(Path(path))
    data = _get(batch, "data") if isinstance(batch, dict) else None
    labels = _get(batch, "labels") if isinstance(batch, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: expected 'data' as a uint8 array of shape (N, 3072)")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: 'labels' is not a list of integers") from None
    if labels.shape != (len(data),):
        raise DataError(f"{path}: {labels.size} labels for {len(data)} images")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: labels must be within 0..9")
    images = data.reshape(-1, 3, 32, 32)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> uint8 images (N,3,32,32), int64 labels. Cached per process."""
    try:
        st = path.stat()
    except OSError:
        raise DataError(f"missing file: {path}") from None
    return _read_batch_cached(str(path), st.st_mtime_ns, st.st_size)


def _class_names(folder: Path) -> list[str]:
    meta_path = folder / "batches.meta"
    if not meta_path.is_file():
        return CLASSES
    meta = safe_load(meta_path)
    names = _get(meta, "label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) != 10:
        raise DataError(f"{meta_path}: expected 'label_names' with 10 names")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names]


def load_cifar10(folder: Path) -> Dataset:
    parts = [read_batch(folder / name) for name in TRAIN_BATCHES]
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    test = read_batch(folder / "test_batch")
    return make_dataset("cifar10", str(folder), train, test, classes=_class_names(folder),
                        mean=MEAN, std=STD)
