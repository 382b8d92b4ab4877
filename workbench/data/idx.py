"""MNIST-style IDX files (optionally gzipped), parsed with numpy alone."""

from __future__ import annotations

import functools
import gzip
import zlib
from pathlib import Path

import numpy as np

from workbench.core.errors import DataError
from workbench.data.dataset import Dataset, make_dataset
from workbench.data.locate import existing_file

# IDX type byte -> big-endian numpy dtype.
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MAGIC = {"images": 0x0803, "labels": 0x0801}  # ubyte, 3 dims / ubyte, 1 dim

MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
NORMALISATION = {"mnist": ((0.1307,), (0.3081,)), "fashion-mnist": ((0.2860,), (0.3530,))}


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    # Sniff rather than trust the suffix: people gunzip files and keep the name, or the reverse.
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error):
        raise DataError(f"{path}: damaged or truncated gzip file") from None


def parse_idx(data: bytes, where: str = "IDX data") -> np.ndarray:
    """Bytes of one IDX file -> array in native byte order; checks the header against the size."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise DataError(f"{where}: not an IDX file (bad magic number)")
    dtype = np.dtype(_DTYPES[data[2]])
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataError(f"{where}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataError(f"{where}: {state} ({len(data)} bytes, header says {expected})")
    return np.frombuffer(data, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


@functools.lru_cache(maxsize=8)
def _read_idx_cached(path: str, mtime_ns: int, size: int) -> np.ndarray:
    # mtime and size are part of the key so a replaced file is read again.
    arr = parse_idx(_read_bytes(Path(path)), path)
    arr.flags.writeable = False  # shared between loads; make_dataset copies before changing it
    return arr


def read_idx(path: str | Path, kind: str | None = None) -> np.ndarray:
    """One IDX file; kind ("images"/"labels") also checks its magic number. Cached per process."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        raise DataError(f"missing file: {path}") from None
    arr = _read_idx_cached(str(path), st.st_mtime_ns, st.st_size)
    if kind is not None and (arr.dtype != np.uint8 or (0x08 << 8) | arr.ndim != _MAGIC[kind]):
        # Says what the file holds, so images and labels files swapped (or misnamed) read as such.
        want = _MAGIC[kind] & 0xFF
        shape = "x".join(str(d) for d in arr.shape)
        held = {1: "labels", 3: "images"}.get(arr.ndim) if arr.dtype == np.uint8 else None
        what = f"IDX {held} ({arr.ndim}-D ubyte, {shape})" if held else \
            f"an IDX array of {arr.dtype} ({arr.ndim}-D, {shape})"
        hint = "; are the images and labels files swapped?" if held else ""
        raise DataError(f"{path}: expected IDX {kind} ({want}-D ubyte), but this file holds {what}{hint}")
    return arr


def _split(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    img_base, lbl_base = f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
    img_path, lbl_path = existing_file(folder, img_base), existing_file(folder, lbl_base)
    for base, p in ((img_base, img_path), (lbl_base, lbl_path)):
        if p is None:
            raise DataError(f"missing file: {folder / base}(.gz)")
    images, labels = read_idx(img_path, "images"), read_idx(lbl_path, "labels")
    if len(images) != len(labels):
        raise DataError(f"{lbl_path}: {len(labels)} labels for {len(images)} images in {img_path}")
    if len(labels) and labels.max() > 9:
        raise DataError(f"{lbl_path}: label {int(labels.max())} is outside 0..9")
    return images, labels


def load_idx_set(name: str, folder: Path) -> Dataset:
    """MNIST or Fashion-MNIST (by name) from a folder holding the four IDX files."""
    mean, std = NORMALISATION[name]
    classes = FASHION_CLASSES if name == "fashion-mnist" else MNIST_CLASSES
    train = _split(folder, "train")
    test = _split(folder, "t10k")
    return make_dataset(name, str(folder), (train[0][:, None], train[1]), (test[0][:, None], test[1]),
                        classes=classes, mean=mean, std=std)
