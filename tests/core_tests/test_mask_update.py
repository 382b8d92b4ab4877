"""DNS's one-pass mask update: the native loop and the PyTorch rule agree with eq. (3) entry by entry."""

from __future__ import annotations

import pytest
import torch

from workbench.methods import mask_update
from workbench.models import native


def _reference(w: torch.Tensor, mask: torch.Tensor, a: float, b: float):
    """Eq. (3) written out: 0 below a, 1 at or above b, unchanged in the band; pruned/spliced counted."""
    out = mask.clone()
    out[w.abs() < a] = 0.0
    out[w.abs() >= b] = 1.0
    kept, now = mask.bool(), out.bool()
    return out, int((kept & ~now).sum()), int((now & ~kept).sum())


def _cases():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(300, 784, generator=gen) * 0.1
    mask = (torch.rand(300, 784, generator=gen) > 0.4).float()
    a, b = 0.05, 0.12
    w.view(-1)[:6] = torch.tensor([a, -a, b, -b, (a + b) / 2, float("nan")])   # the edges, the band, NaN
    return w, mask, a, b


@pytest.mark.parametrize("path", ["native", "torch"])
def test_update_matches_equation_3_with_counts(path, monkeypatch):
    if path == "torch":
        monkeypatch.setenv("WORKBENCH_NATIVE", "torch")
    elif mask_update._native() is None:
        pytest.skip(f"no native build here: {native.last_error()}")
    w, mask, a, b = _cases()
    expected, pruned, spliced = _reference(w, mask, a, b)
    expected.view(-1)[5] = 0.0                  # NaN: neither comparison holds, so it is pruned
    if mask.view(-1)[5]:
        pruned += 1
    counts = torch.zeros(2, dtype=torch.long)
    mask_update.update(w, mask, a, b, counts)
    assert torch.equal(mask, expected)
    changed, gained = counts.tolist()
    assert ((changed - gained) // 2, (changed + gained) // 2) == (pruned, spliced)
    assert pruned > 100 and spliced > 100       # the case exercises both directions


def test_non_contiguous_weights_take_the_torch_rule():
    w, mask, a, b = _cases()
    wt, mt = w.t(), mask.t().contiguous()       # a transposed view cannot be walked as a flat array
    expected, _, _ = _reference(wt, mt.clone(), a, b)
    expected[5, 0] = 0.0                        # the NaN entry, transposed
    counts = torch.zeros(2, dtype=torch.long)
    mask_update.update(wt, mt, a, b, counts)
    assert torch.equal(mt, expected)
