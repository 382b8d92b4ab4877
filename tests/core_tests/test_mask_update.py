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
    mask = (torch.rand(300, 784, generator=gen) > 0.4).to(torch.uint8)     # DNS holds its masks as bytes
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


@pytest.mark.parametrize("path", ["native", "torch"])
def test_out_receives_the_masked_weight_bit_for_bit(path, monkeypatch):
    if path == "torch":
        monkeypatch.setenv("WORKBENCH_NATIVE", "torch")
    elif mask_update._native() is None:
        pytest.skip(f"no native build here: {native.last_error()}")
    w, mask, a, b = _cases()
    out = torch.full_like(w, 7.0)
    mask_update.update(w, mask, a, b, torch.zeros(2, dtype=torch.long), out=out)
    product = w * mask                          # what the forward computed before: NaN * 0 = NaN, -w * 0 = -0
    assert out.view(-1)[5].isnan() and mask.view(-1)[5] == 0
    assert torch.equal(out.view(torch.int32), product.view(torch.int32))      # the same bits, signs of zeros too


class _Masked:
    """A stand-in for per_layer.MaskedValue with the same three members MaskUpdates uses."""

    def __init__(self):
        self.value, self.fresh = None, 0

    def buffer(self, w):
        if self.value is None or self.value.shape != w.shape:
            self.value = torch.empty_like(w)
        return self.value

    def mark_fresh(self, w, m, w_ptr=None, m_ptr=None):
        assert w_ptr in (None, w.data_ptr()) and m_ptr in (None, m.data_ptr())
        self.fresh += 1


@pytest.mark.parametrize("path", ["native", "torch"])
def test_mask_updates_run_all_tensors_in_one_call_and_fall_back_per_tensor(path, monkeypatch):
    if path == "torch":
        monkeypatch.setenv("WORKBENCH_NATIVE", "torch")
    elif mask_update._native() is None:
        pytest.skip(f"no native build here: {native.last_error()}")
    w, mask, a, b = _cases()
    gen = torch.Generator().manual_seed(1)
    small = torch.randn(40, generator=gen) * 0.1
    small_mask = (torch.rand(40, generator=gen) > 0.5).to(torch.uint8)
    wt, mt = w.t(), mask.t().contiguous()       # not walkable as a flat array: the PyTorch rule takes it
    tensors = [(w.clone(), mask.clone()), (small.clone(), small_mask.clone()), (wt, mt.clone())]
    counts = [torch.zeros(2, dtype=torch.long) for _ in tensors]
    bounds = [(a, b), (0.05, 0.08), (a, b)]
    values = [_Masked() for _ in tensors]
    plan = mask_update.MaskUpdates([(w_, m_, v, *ab, c) for (w_, m_), v, ab, c in zip(tensors, values, bounds, counts)])
    plan.run(True)
    for (w_, m_), v, (lo, hi), c, (w0, m0) in zip(tensors, values, bounds, counts,
                                                 [(w, mask), (small, small_mask), (wt, mt)]):
        expected = m0.clone()
        one = torch.zeros(2, dtype=torch.long)
        mask_update.update(w0, expected, lo, hi, one)       # the one-tensor rule, checked above
        assert torch.equal(m_, expected) and torch.equal(c, one)
        assert torch.equal(v.value.nan_to_num(), (w_ * m_).nan_to_num()) and v.fresh == 1
    # W moves, T does not: run(False) writes W ⊙ T with the masks as they are
    masks_before = [m_.clone() for _, m_ in tensors]
    with torch.no_grad():
        for w_, _ in tensors:
            w_.mul_(-3.0)
    plan.run(False)
    for (w_, m_), v, before, c in zip(tensors, values, masks_before, counts):
        assert torch.equal(m_, before)
        assert torch.equal(v.value.nan_to_num(), (w_ * m_).nan_to_num())
    # a weight given new storage (moved, reloaded): the pointer table is rebuilt, not written through stale
    first, first_mask = tensors[0]
    first.data = first.data.clone() * 0.5
    plan.run(False)
    assert torch.equal(values[0].value.nan_to_num(), (first * first_mask).nan_to_num())


def test_counts_add_up_across_the_kernels_count_blocks():
    # the native loop counts in int32 over blocks of 2^20 entries: 2.5 blocks here, an uneven tail
    if mask_update._native() is None:
        pytest.skip(f"no native build here: {native.last_error()}")
    gen = torch.Generator().manual_seed(2)
    w = torch.randn(5 * 2**19 + 7, generator=gen)
    mask = (torch.rand(w.shape, generator=gen) > 0.5).to(torch.uint8)
    expected, pruned, spliced = _reference(w, mask, 0.5, 1.0)
    counts, out = torch.zeros(2, dtype=torch.long), torch.empty_like(w)
    mask_update.update(w, mask, 0.5, 1.0, counts, out=out)
    assert torch.equal(mask, expected) and torch.equal(out, w * expected)
    changed, gained = counts.tolist()
    assert ((changed - gained) // 2, (changed + gained) // 2) == (pruned, spliced)
    assert pruned > 2**18 and spliced > 2**17       # both directions, many per block


def test_a_float_mask_takes_the_pytorch_rule_with_the_same_results():
    w, mask, a, b = _cases()
    as_bytes, as_float = mask.clone(), mask.float()
    counts = [torch.zeros(2, dtype=torch.long) for _ in range(2)]
    outs = [torch.empty_like(w) for _ in range(2)]
    mask_update.update(w, as_bytes, a, b, counts[0], out=outs[0])
    mask_update.update(w, as_float, a, b, counts[1], out=outs[1])
    assert as_float.dtype == torch.float32 and torch.equal(as_float, as_bytes.float())
    assert torch.equal(counts[0], counts[1])
    assert torch.equal(outs[0].view(torch.int32), outs[1].view(torch.int32))
