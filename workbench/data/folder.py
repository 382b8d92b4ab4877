"""A folder of class sub-folders of images: root/<class>/*.png, or root/train/<class>, root/test/<class>."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from workbench.core.errors import DataError
from workbench.data.dataset import Dataset, make_dataset

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}
TEST_FRACTION = 0.2
SPLIT_SEED = 0
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def _images_by_class(root: Path) -> dict[str, list[Path]]:
    found = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in sub.iterdir() if f.is_file() and f.suffix.lower() in SUFFIXES)
        if files:  # an empty folder is not a class: it would get an index no sample ever has
            found[sub.name] = files
    return found


def _read(paths: list[Path]) -> np.ndarray:
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise DataError("reading an image folder needs Pillow: pip install pillow") from None
    arrays = []
    for p in paths:
        try:
            with Image.open(p) as im:
                im = im.convert("L" if im.mode in _GREY_MODES else "RGB")
                a = np.asarray(im, dtype=np.uint8)
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise DataError(f"cannot read image {p}: {e}") from None
        arrays.append(a[:, :, None] if a.ndim == 2 else a)
    # The most common size is the norm, so the message names the odd file, not its first neighbour.
    sizes = Counter(a.shape[:2] for a in arrays)
    if len(sizes) > 1:
        h, w = sizes.most_common(1)[0][0]
        odd = min(p for p, a in zip(paths, arrays) if a.shape[:2] != (h, w))
        a = arrays[paths.index(odd)]
        raise DataError(f"{odd} is {a.shape[1]}x{a.shape[0]} pixels, most images are {w}x{h}: "
                        f"all images must have the same size")
    # One colour image makes the set RGB; grey images then repeat their channel.
    channels = max(a.shape[2] for a in arrays)
    stacked = np.stack([np.repeat(a, channels // a.shape[2], axis=2) for a in arrays])
    return np.ascontiguousarray(stacked.transpose(0, 3, 1, 2))


def _split_per_class(by_class: dict[str, list[Path]]):
    # Per class, so every class with two or more images lands in both splits.
    rng = np.random.default_rng(SPLIT_SEED)
    train, test = [], []
    for label, files in enumerate(by_class.values()):
        order = rng.permutation(len(files))
        n_test = max(1, round(len(files) * TEST_FRACTION)) if len(files) > 1 else 0
        test += [(files[i], label) for i in order[:n_test]]
        train += [(files[i], label) for i in order[n_test:]]
    return train, test


def load_folder(root: str | Path) -> Dataset:
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    given_split = (root / "train").is_dir() and (root / "test").is_dir()
    if given_split:
        by_class = _images_by_class(root / "train")
        test_by_class = _images_by_class(root / "test")
        unknown = sorted(set(test_by_class) - set(by_class))
        if unknown:
            raise DataError(f"{root / 'test'}: class folder '{unknown[0]}' has no match in "
                            f"{root / 'train'}")
        index = {c: i for i, c in enumerate(by_class)}
        train = [(f, i) for i, files in enumerate(by_class.values()) for f in files]
        test = [(f, index[c]) for c, files in test_by_class.items() for f in files]
    else:
        by_class = _images_by_class(root)
        train, test = _split_per_class(by_class)
    if not by_class:
        raise DataError(f"{root}: no class sub-folders with .png/.jpg/.jpeg/.bmp images")
    x = _read([f for f, _ in train] + [f for f, _ in test])
    if not test and not given_split:
        # make_dataset would refuse it too, but only this loader knows why the test split is empty.
        raise DataError(f"{root}: no image left for testing: each class folder holds a single image "
                        f"(a class needs two or more to be split; or give train/ and test/ folders)")
    y = np.array([label for _, label in train + test], dtype=np.int64)
    n = len(train)
    return make_dataset(f"folder:{root}", str(root), (x[:n], y[:n]), (x[n:], y[n:]),
                        classes=list(by_class))
