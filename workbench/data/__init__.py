"""Data sets as in-memory tensors: named sets (MNIST, Fashion-MNIST, CIFAR-10), image folders,
array files and a built-in synthetic set.

    load_dataset("mnist")                  # searched for in search_dirs(), downloaded if allowed
    load_dataset("folder:/path/to/root")   # root/<class>/*.png or root/{train,test}/<class>/...
    load_dataset("arrays:/path/set.npz")   # or .h5: x_train, y_train, x_test, y_test
    load_dataset("tiny")                   # 1x8x8, 4 classes, no files needed
"""

from __future__ import annotations

import os
from pathlib import Path

from workbench.core.errors import DataError
from workbench.data import download as _download
from workbench.data import locate as _locate
from workbench.data.batching import batches, num_batches
from workbench.data.dataset import Dataset
from workbench.data.locate import find_dataset, search_dirs

__all__ = ["Dataset", "load_dataset", "dataset_names", "find_dataset", "search_dirs",
           "batches", "num_batches"]

TINY = "tiny"


def dataset_names() -> list[str]:
    """The sets loadable by name alone (folder: and arrays: take a path)."""
    return [*_locate.SETS, TINY]


def _not_found(name: str, data_dir, why: str) -> DataError:
    spec = _locate.SETS[name]
    if name == "cifar10":
        files = "data_batch_1..data_batch_5, test_batch, batches.meta (from cifar-10-python.tar.gz)"
    else:
        files = ", ".join(f + ".gz" for f in spec.files)
    where = ", ".join(str(root / spec.subdirs[0]) for root in search_dirs(data_dir))
    return DataError(f"{spec.title} not found{why}: put {files} into one of: {where} "
                     f"(or set {_locate.ENV_VAR})")


def _load_named(name: str, data_dir, download: bool) -> Dataset:
    folder = find_dataset(name, data_dir)
    if folder is None:
        if not _download.downloadable(name):
            why = " (it cannot be downloaded automatically)" if download else ""
            raise _not_found(name, data_dir, why)
        if not download:
            raise _not_found(name, data_dir, "")
        try:
            folder = _download.download(name)
        except _download.Offline:
            raise _not_found(name, data_dir, " and could not be downloaded (offline?)") from None
    if name == "cifar10":
        from workbench.data.cifar import load_cifar10

        return load_cifar10(folder)
    from workbench.data.idx import load_idx_set

    return load_idx_set(name, folder)


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *,
                 download: bool = True) -> Dataset:
    """Load a data set by name: see dataset_names(), or "folder:<path>" / "arrays:<path>"."""
    if not isinstance(name, str) or not name.strip():
        raise DataError("no data set name given")
    kind, sep, rest = name.partition(":")
    if sep and kind.strip().lower() in ("folder", "arrays"):
        if not rest.strip():
            raise DataError(f"'{name}' needs a path after the colon")
        if kind.strip().lower() == "folder":
            from workbench.data.folder import load_folder

            return load_folder(Path(rest.strip()))
        from workbench.data.arrays import load_arrays

        return load_arrays(Path(rest.strip()))
    key = _locate.canonical(name)
    if key == TINY:
        from workbench.data.tiny import load_tiny

        return load_tiny()
    if key in _locate.SETS:
        return _load_named(key, data_dir, download)
    raise DataError(f"unknown data set '{name}': use one of {', '.join(dataset_names())}, "
                    f"folder:<path> or arrays:<path.npz|.h5>")
