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


def _pick(store, path: Path) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """The four arrays (and classes, if any), and the names the file gives the four, for messages."""
    names = set(store.keys())
    out, spelled = {}, []
    for key, spellings in _KEYS.items():
        hit = next((s for s in spellings if s in names), None)
        if hit is None:
            raise DataError(f"{path}: no array named {' or '.join(spellings)} "
                            f"(found: {', '.join(sorted(names)) or 'nothing'})")
        out[key] = np.asarray(store[hit][()])
        spelled.append(hit)
    if "classes" in names:
        out["classes"] = np.asarray(store["classes"][()])
    return out, tuple(spelled)


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a file, or an empty archive; what np.load takes for .npz
_NPY_MAGIC = b"\x93NUMPY"


def _object_member(z) -> str | None:
    """The first wanted array stored with an object dtype, read from its header alone (nothing is
    unpickled); np.load would only say "Object arrays cannot be loaded"."""
    wanted = {s for spellings in _KEYS.values() for s in spellings} | {"classes"}
    for name in z.files:
        if name not in wanted:
            continue
        with z.zip.open(name + ".npy") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) \
                else np.lib.format.read_array_header_2_0
            if read(f)[2].hasobject:
                return name
    return None


def _read_npz(path: Path):
    try:
        with path.open("rb") as f:
            head = f.read(6)
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    # Sniffed first: np.load returns a bare array for .npy content and calls anything it does not
    # recognise "pickled (object) data", which junk or a truncated download is not.
    if head == _NPY_MAGIC:
        raise DataError(f"{path}: a single .npy array; a data set is an .npz archive "
                        f"(np.savez) of x_train, y_train, x_test, y_test")
    if head[:4] not in _ZIP_MAGIC:
        raise DataError(f"{path}: damaged or not an .npz file (no zip archive header)")
    try:
        # allow_pickle=False: an object array in the file would otherwise run code on load.
        with np.load(path, allow_pickle=False) as z:
            obj = _object_member(z)
            if obj is not None:
                raise DataError(f"{path}: {obj} holds Python objects (an object array), which the "
                                f"workbench does not unpickle; save numeric arrays")
            return _pick(z, path)
    except DataError:
        raise
    except ValueError as e:
        raise DataError(f"{path}: cannot be read: {e}") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise DataError(f"{path}: damaged or not an .npz file ({type(e).__name__})") from None


def _read_h5(path: Path):
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
        a, parts = _read_npz(path)
    elif path.suffix.lower() in H5_SUFFIXES:
        a, parts = _read_h5(path)
    elif path.suffix.lower() == ".npy":
        raise DataError(f"{path}: a .npy file holds a single array; a data set is an .npz (np.savez) "
                        f"or .h5 file of x_train, y_train, x_test, y_test")
    else:
        raise DataError(f"{path}: expected a .npz or .h5 file")
    train_x = to_nchw(a["x_train"], f"{path} {parts[0]}")
    test_x = to_nchw(a["x_test"], f"{path} {parts[2]}")
    return make_dataset(f"arrays:{path}", str(path), (train_x, a["y_train"]), (test_x, a["y_test"]),
                        classes=_class_names(a.get("classes")), parts=parts)
