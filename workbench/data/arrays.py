"""Arrays from a .npz or HDF5 file: x_train, y_train, x_test, y_test (or train_x, ...)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from workbench.core.errors import DataError
from workbench.data.dataset import Dataset, make_dataset, to_nchw

_KEYS = {  # wanted -> accepted spellings
    "x_train": ("x_train", "train_x"),
    "y_train": ("y_train", "train_y"),
    "x_test": ("x_test", "test_x"),
    "y_test": ("y_test", "test_y"),
}
H5_SUFFIXES = {".h5", ".hdf5", ".hdf"}


def _pick(store, path: Path) -> dict[str, np.ndarray]:
    names = set(store.keys())
    out = {}
    for key, spellings in _KEYS.items():
        hit = next((s for s in spellings if s in names), None)
        if hit is None:
            raise DataError(f"{path}: no array named {' or '.join(spellings)} "
                            f"(found: {', '.join(sorted(names)) or 'nothing'})")
        out[key] = np.asarray(store[hit][()])
    if "classes" in names:
        out["classes"] = np.asarray(store["classes"][()])
    return out


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        # allow_pickle=False: an object array in the file would otherwise run code on load.
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise DataError(f"{path}: a single .npy array, expected an .npz archive")
            return _pick(z, path)
    except DataError:
        raise
    except ValueError as e:
        raise DataError(f"{path}: cannot be read: {e}") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise DataError(f"{path}: damaged or not an .npz file ({type(e).__name__})") from None


def _read_h5(path: Path) -> dict[str, np.ndarray]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            store = {k: f[k] for k in f.keys() if isinstance(f[k], h5py.Dataset)}
            return _pick(store, path)
    except DataError:
        raise
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path}: damaged or not an HDF5 file ({type(e).__name__})") from None


def _class_names(raw: np.ndarray | None) -> list[str] | None:
    if raw is None:
        return None
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in raw.ravel()]


def load_arrays(path: str | Path) -> Dataset:
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise DataError(f"array file not found: {path}")
    if path.suffix.lower() == ".npz":
        a = _read_npz(path)
    elif path.suffix.lower() in H5_SUFFIXES:
        a = _read_h5(path)
    else:
        raise DataError(f"{path}: expected a .npz or .h5 file")
    train_x = to_nchw(a["x_train"], f"{path} x_train")
    test_x = to_nchw(a["x_test"], f"{path} x_test")
    return make_dataset(f"arrays:{path}", str(path), (train_x, a["y_train"]), (test_x, a["y_test"]),
                        classes=_class_names(a.get("classes")))
