"""Mini-batches over in-memory tensors: plain slicing, much cheaper than a DataLoader here."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from workbench.core.errors import ParamError


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    if batch_size < 1:
        raise ParamError(f"batch size must be >= 1, got {batch_size}")
    return n // batch_size if drop_last else -(-n // batch_size)


def batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(xb, yb) pairs covering every sample once (the last short batch unless drop_last)."""
    # Checked here, not inside the generator, so mistakes surface at the call.
    if len(x) != len(y):
        raise ParamError(f"{len(x)} inputs but {len(y)} labels")
    count = num_batches(len(x), batch_size, drop_last)
    order = torch.randperm(len(x), generator=generator) if shuffle else None
    return _iterate(x, y, batch_size, count, order)


def _iterate(x, y, batch_size, count, order):
    for i in range(count):
        start, stop = i * batch_size, (i + 1) * batch_size
        if order is None:
            yield x[start:stop], y[start:stop]
        else:
            idx = order[start:stop].to(x.device)
            yield x[idx], y[idx.to(y.device)]
