"""Per-layer statistics recorded at every evaluation point."""

from __future__ import annotations

import numpy as np
import torch

HIST_BINS = 100


def hist_edges(weight: torch.Tensor, bins: int = HIST_BINS) -> np.ndarray:
    """Fixed, symmetric edges from the starting weights (margin for growth; outliers go in the end bins)."""
    w = weight.detach().abs().max().item() if weight.numel() else 1.0
    limit = 1.25 * w if w > 0 else 1.0
    return np.linspace(-limit, limit, bins + 1)


def layer_point(weight: torch.Tensor, edges: np.ndarray) -> dict[str, np.ndarray | float]:
    """Histogram of the nonzero weights (pruned zeros would swamp it) and the nonzero count."""
    w = weight.detach().reshape(-1).float().cpu().numpy()
    nz = w[w != 0]
    counts, _ = np.histogram(np.clip(nz, edges[0], edges[-1]), bins=edges)
    return {"hist_counts": counts.astype(np.float64), "nonzeros": float(nz.size)}
