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

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])

    def subset(self, train: int | None, test: int | None, seed: int = 0) -> Dataset:
        """A random subset (None keeps a split whole); sizes above the split's size keep it whole."""
        gen = torch.Generator().manual_seed(seed)
        train_x, train_y = _pick(self.train_x, self.train_y, train, gen, "train")
        test_x, test_y = _pick(self.test_x, self.test_y, test, gen, "test")
        return replace(self, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y)


def _pick(x: torch.Tensor, y: torch.Tensor, n: int | None, gen: torch.Generator, what: str):
    if n is None or n >= len(x):
        return x, y
    if n < 0:
        raise ParamError(f"{what} subset size must be >= 0, got {n}")
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


def to_labels(y: np.ndarray, n: int, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{what}: expected {n} labels, got shape {y.shape}")
    if y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0):
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        raise DataError(f"{what}: labels must be integers, got {y.dtype}")
    if n and y.min() < 0:
        raise DataError(f"{what}: labels must be >= 0")
    return y.astype(np.int64)


def _scaled(x: np.ndarray) -> torch.Tensor:
    if x.dtype.kind not in "uif" and x.dtype != np.bool_:
        raise DataError(f"images must be numeric, got {x.dtype}")
    # astype copies: normalising happens in place and must never reach a caller's (or cached) array.
    t = torch.from_numpy(np.ascontiguousarray(x).astype(np.float32))
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
) -> Dataset:
    """NCHW arrays (uint8 is scaled to 0..1) -> normalised Dataset; mean/std from train if not given."""
    train_x, test_x = _scaled(train[0]), _scaled(test[0])
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(f"{name}: train images {tuple(train_x.shape[1:])} and test images "
                        f"{tuple(test_x.shape[1:])} differ in shape")
    if len(train_x) == 0:
        raise DataError(f"{name}: the training split is empty")
    train_y = to_labels(train[1], len(train_x), f"{name} train")
    test_y = to_labels(test[1], len(test_x), f"{name} test")
    top = int(max(train_y.max(), test_y.max() if len(test_y) else 0)) + 1
    if classes is None:
        classes = [str(i) for i in range(top)]
    elif top > len(classes):
        raise DataError(f"{name}: label {top - 1} is out of range for {len(classes)} classes")
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
