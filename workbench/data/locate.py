"""Where the named data sets live on disk: the search order and each set's expected files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

ENV_VAR = "WORKBENCH_DATA"
SYSTEM_DIRS = [Path("/usr/share/datasets")]

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
               "test_batch", "batches.meta")


@dataclass(frozen=True)
class SetSpec:
    name: str
    title: str
    subdirs: tuple[str, ...]  # relative to a search root, first one is where downloads go
    files: tuple[str, ...]  # base names; IDX files may also end in .gz
    required: tuple[str, ...]  # the subset that must exist for the folder to count


SETS = {
    "mnist": SetSpec("mnist", "MNIST", ("mnist", "MNIST/raw"), IDX_FILES, IDX_FILES),
    "fashion-mnist": SetSpec("fashion-mnist", "Fashion-MNIST",
                             ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw"),
                             IDX_FILES, IDX_FILES),
    # batches.meta only carries the class names, which are well known, so it is optional.
    "cifar10": SetSpec("cifar10", "CIFAR-10",
                       ("cifar10", "cifar-10-batches-py", "cifar10/cifar-10-batches-py"),
                       CIFAR_FILES, CIFAR_FILES[:-1]),
}

_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
            "cifar-10": "cifar10", "cifar_10": "cifar10"}


def canonical(name: str) -> str:
    key = name.strip().lower()
    return _ALIASES.get(key, key)


def cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("compression-workbench")) / "datasets"


def search_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Roots searched in order: data_dir, $WORKBENCH_DATA (os.pathsep-separated), cache, system."""
    roots: list[Path] = []
    if data_dir:
        roots.append(Path(data_dir).expanduser())
    roots += [Path(p).expanduser() for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    roots.append(cache_dir())
    roots += SYSTEM_DIRS
    unique: list[Path] = []
    for r in roots:
        if r not in unique:
            unique.append(r)
    return unique


def existing_file(folder: Path, base: str) -> Path | None:
    """The uncompressed file if present (faster to read), else its .gz."""
    for candidate in (folder / base, folder / (base + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _holds(folder: Path, spec: SetSpec) -> bool:
    return folder.is_dir() and all(existing_file(folder, f) for f in spec.required)


def _names_other_set(folder: Path, spec: SetSpec) -> bool:
    # MNIST and Fashion-MNIST share file names: a root called "mnist" must not pass as Fashion-MNIST.
    tail = {folder.name, f"{folder.parent.name}/{folder.name}"}
    return any(tail & set(other.subdirs) for other in SETS.values() if other is not spec)


def find_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Path | None:
    """The folder holding the named set's files, or None."""
    spec = SETS.get(canonical(name))
    if spec is None:
        return None
    for root in search_dirs(data_dir):
        for sub in spec.subdirs:
            if _holds(root / sub, spec):
                return root / sub
        if _holds(root, spec) and not _names_other_set(root, spec):
            return root
    return None
