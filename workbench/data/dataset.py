"""The in-memory data set every source produces, and the one place raw arrays become one."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from workbench.core.errors import DataError, ParamError


@dataclass
class Dataset:
    name: str
    train_x: torch.Tensor  # float32 (N, C, H, W), normalised with mean/std
    train_y: torch.Tensor  # int64 (N,)
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    classes: list[str]
    source: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    # The training split's size before `subset` took a quick-look subset of it; 0 where train_x is the
    # whole split. A per-data-set term (soft weight-sharing's prior, scaled by 1/N) keeps the N of the set
    # the subset stands for.
    full_train: int = 0

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])

    def subset(self, train: int | None, test: int | None, seed: int = 0) -> Dataset:
        """A random subset. None or 0 keeps a split whole (0 is "all" in RunSettings), as does a size
        above the split's size: a subset is never empty."""
        gen = torch.Generator().manual_seed(seed)
        train_x, train_y = _pick(self.train_x, self.train_y, train, gen, "train")
        test_x, test_y = _pick(self.test_x, self.test_y, test, gen, "test")
        whole = self.full_train or len(self.train_x)
        return replace(self, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                       full_train=whole if len(train_x) < whole else 0)


def _pick(x: torch.Tensor, y: torch.Tensor, n: int | None, gen: torch.Generator, what: str):
    if n is not None and n < 0:
        raise ParamError(f"{what} subset size must be >= 0, got {n}")
    if not n or n >= len(x):
        return x, y
    # Sorted so a subset keeps the original order; the choice itself is random.
    idx = torch.randperm(len(x), generator=gen)[:n].sort().values
    return x[idx], y[idx]


def to_nchw(x: np.ndarray, what: str) -> np.ndarray:
    """(N,H,W) -> (N,1,H,W); (N,H,W,C) -> (N,C,H,W) when the last dim looks like channels."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        # A trailing 1 or 3 is channels unless dim 1 is too (then it is already NCHW).
        if x.shape[3] in (1, 3) and x.shape[1] not in (1, 3):
            return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return x
    raise DataError(f"{what}: images must be 3-D or 4-D, got shape {x.shape}")


# Labels make the class list when a source names no classes; one stray huge label would make a
# list (and an output layer) of billions. No real set comes near this.
MAX_CLASSES = 100_000


def to_labels(y: np.ndarray, n: int, what: str, images: str = "the images") -> np.ndarray:
    """Labels as int64 (N,), checked: one per image, whole numbers, >= 0 and not absurdly large."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n:
        got = f"{len(y)} labels" if y.ndim == 1 else f"labels of shape {y.shape}"
        raise DataError(f"{what} has {got}; expected {n} labels, one per image in {images}")
    if y.dtype.kind == "f":
        odd = y[~(np.isfinite(y) & (np.mod(y, 1) == 0))]
        if len(odd):
            raise DataError(f"{what} holds label {odd[0]}; labels must be whole numbers 0..classes-1")
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        raise DataError(f"{what} holds {y.dtype} values; labels must be integers 0..classes-1")
    # Checked in the array's own dtype: uint64 beyond int64 would turn negative when converted.
    if n and y.min() < 0:
        raise DataError(f"{what} holds label {int(y.min())}; labels must be 0..classes-1")
    if n and y.max() >= MAX_CLASSES:
        raise DataError(f"{what} holds label {int(y.max())}; labels must be class indices "
                        f"0..classes-1 (at most {MAX_CLASSES} classes)")
    return y.astype(np.int64)


def _scaled(x: np.ndarray, what: str) -> torch.Tensor:
    if x.dtype.kind not in "uif" and x.dtype != np.bool_:
        raise DataError(f"{what}: images must be numeric, got {x.dtype}")
    # astype copies: normalising happens in place and must never reach a caller's (or cached) array.
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, refused below
        t = torch.from_numpy(np.ascontiguousarray(x).astype(np.float32))
    if x.dtype.kind == "f":
        # Checked here, after the float32 cast, so that values beyond float32 count as infinite: a NaN
        # pixel would otherwise surface mid-training as a NaN loss, blamed on the learning rate.
        bad = int((~torch.isfinite(t)).sum())
        if bad:
            nan = int(torch.isnan(t).sum())
            parts = [f"{nan} NaN"] * bool(nan) + [f"{bad - nan} infinite"] * bool(bad - nan)
            raise DataError(f"{what} holds {' and '.join(parts)} value{'s' * (bad > 1)}; "
                            f"pixels must be finite numbers")
    return t.div_(255.0) if x.dtype == np.uint8 else t


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    # float64 accumulation: float32 sums drift visibly over tens of millions of pixels.
    count = x.numel() // x.shape[1]
    mean = x.sum(dim=(0, 2, 3), dtype=torch.float64) / count
    var = (x * x).sum(dim=(0, 2, 3), dtype=torch.float64) / count - mean * mean
    std = var.clamp_min(0).sqrt()
    # A constant channel would divide by zero; leave it unscaled instead.
    std = torch.where(std > 0, std, torch.ones_like(std))
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def make_dataset(
    name: str,
    source: str,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    classes: list[str] | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    parts: tuple[str, str, str, str] = ("train images", "train labels", "test images", "test labels"),
) -> Dataset:
    """NCHW arrays (uint8 is scaled to 0..1) -> normalised Dataset; mean/std from train if not given.

    Every source comes through here, so this is where a set is checked: finite pixels, images with
    pixels, both splits non-empty, one integer label 0..classes-1 per image. `parts` names the four
    arrays in messages as the source calls them (e.g. x_train, y_train, x_test, y_test)."""
    x_train, y_train, x_test, y_test = (f"{name}: {p}" for p in parts)
    if len(train[0]) == 0:
        raise DataError(f"{name} has no training samples ({parts[0]} is empty)")
    if len(test[0]) == 0:
        raise DataError(f"{name} has no test samples ({parts[2]} is empty)")
    train_x, test_x = _scaled(train[0], x_train), _scaled(test[0], x_test)
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(f"{name}: {parts[0]} {tuple(train_x.shape[1:])} and {parts[2]} "
                        f"{tuple(test_x.shape[1:])} differ in shape")
    if 0 in train_x.shape[1:]:
        raise DataError(f"{name}: images of shape {tuple(train_x.shape[1:])} have no pixels")
    train_y = to_labels(train[1], len(train_x), y_train, parts[0])
    test_y = to_labels(test[1], len(test_x), y_test, parts[2])
    top = int(max(train_y.max(), test_y.max())) + 1
    if classes is None:
        classes = [str(i) for i in range(top)]
    elif top > len(classes):
        which = y_train if train_y.max() + 1 == top else y_test
        raise DataError(f"{which} holds label {top - 1}; labels must be 0..{len(classes) - 1} "
                        f"for {len(classes)} classes")
    if mean is None or std is None:
        mean, std = channel_stats(train_x)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return Dataset(
        name=name,
        train_x=train_x.sub_(m).div_(s),
        train_y=torch.from_numpy(train_y),
        test_x=test_x.sub_(m).div_(s),
        test_y=torch.from_numpy(test_y),
        num_classes=len(classes),
        classes=list(classes),
        source=source,
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
    )
