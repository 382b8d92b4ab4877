"""Storage encodings and the one compression calculator, checked against numbers worked out by hand.

Metadata per tensor (workbench.core.encoding): TAG 8 + NDIM 8 + 32 per dimension, and for sparse tensors
COUNT 32 + ORDER 1 on top. So for a 2-D tensor: dense meta = 8+8+64 = 80 bits, sparse meta = 80+33 = 113.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from workbench.core.accounting import account
from workbench.core.encoding import (
    count_fillers,
    decode,
    encode_auto,
    encode_dense,
    encode_sparse,
    pack_bits,
    relative_entries,
    unpack_bits,
)
from workbench.methods.storage import encode_state
from workbench.models import zoo

DENSE_META_2D = 8 + 8 + 2 * 32            # 80
SPARSE_META_2D = DENSE_META_2D + 32 + 1   # 113
SPARSE_META_4D = 8 + 8 + 4 * 32 + 33      # 177


# --- bit packing --------------------------------------------------------------------------------

@pytest.mark.parametrize("bits", range(1, 17))
def test_pack_unpack_round_trip_and_size(bits):
    rng = np.random.default_rng(bits)
    top = (1 << bits) - 1
    values = np.concatenate([[0, top, 0, top], rng.integers(0, top + 1, size=9)]).astype(np.uint32)
    n = len(values)                                    # 13: n * bits is rarely a multiple of 8
    buf = pack_bits(values, bits)
    assert buf.dtype == np.uint8
    assert len(buf) == math.ceil(n * bits / 8)
    out = unpack_bits(buf, bits, n)
    np.testing.assert_array_equal(out, values)


def test_pack_bits_layout_by_hand():
    # Little-endian stream, 2 bits each: 1 | 2<<2 | 3<<4 = 1 + 8 + 48 = 57, one byte.
    np.testing.assert_array_equal(pack_bits(np.array([1, 2, 3]), 2), [57])
    # 5 bits each: 31 | 1<<5 = 63 in the first byte, nothing else set in the second (10 bits -> 2 bytes).
    np.testing.assert_array_equal(pack_bits(np.array([31, 1]), 5), [63, 0])


# --- relative indices ---------------------------------------------------------------------------

def test_relative_entries_hand_example_with_fillers():
    # index_bits = 2 -> a gap field holds 0..3; one filler entry bridges 4 positions (3 skipped + itself).
    flat = np.zeros(12, dtype=np.float32)
    flat[[0, 9, 10]] = [1.5, 2.5, -3.0]
    # zeros skipped before each nonzero: 0, 8, 0. The 8-zero gap: 8 >> 2 = 2 fillers (8 positions),
    # then the real entry with remainder gap 8 - 2*4 = 0. Trailing zero at 11 needs no entry.
    gaps, values = relative_entries(flat, 2)
    np.testing.assert_array_equal(gaps, [0, 3, 3, 0, 0])
    np.testing.assert_array_equal(values, [1.5, 0, 0, 2.5, -3.0])
    assert count_fillers(flat, 2) == 2


@pytest.mark.parametrize("positions, expected_gaps, fillers", [
    ([0, 4], [0, 3], 0),          # gap 3 = 2^2 - 1 still fits
    ([0, 5], [0, 3, 0], 1),       # gap 4: one filler (4 positions), remainder 0
    ([7], [3, 3], 1),             # leading gap 7: one filler, remainder 3
    ([0, 13], [0, 3, 3, 3, 0], 3),  # gap 12 = 3 fillers exactly
])
def test_relative_entries_gap_boundaries(positions, expected_gaps, fillers):
    flat = np.zeros(16, dtype=np.float32)
    flat[positions] = np.arange(1, len(positions) + 1)
    gaps, values = relative_entries(flat, 2)
    np.testing.assert_array_equal(gaps, expected_gaps)
    assert np.count_nonzero(values) == len(positions)
    assert len(gaps) == len(positions) + fillers == len(values)
    assert count_fillers(flat, 2) == fillers


def _my_fillers(t: np.ndarray, order: str, index_bits: int) -> int:
    """Independent count: walk the flattened tensor and add gap // 2^b for each nonzero."""
    m = t.reshape(t.shape[0], -1)
    flat = (m.T if order == "col" else m).reshape(-1)
    total, last = 0, -1
    for p in np.flatnonzero(flat):
        total += (p - last - 1) // (1 << index_bits)
        last = p
    return total


@pytest.mark.parametrize("order", ["row", "col", "auto"])
@pytest.mark.parametrize("index_bits", [2, 5, 8])
def test_sparse_round_trip_random(order, index_bits):
    rng = np.random.default_rng(index_bits * 7 + len(order))
    for shape in [(20, 30), (6, 3, 5, 5)]:
        for density in [0.0, 0.01, 0.1, 0.5, 1.0]:
            t = rng.standard_normal(shape).astype(np.float32)
            t[rng.random(shape) >= density] = 0
            e = encode_sparse("w", "l", "fc", t, index_bits=index_bits, order=order)
            back = decode(e.info, e.shape, e.encoding, e.arrays)
            np.testing.assert_array_equal(back, t)
            nnz = int(np.count_nonzero(t))
            used = e.info["order"]
            assert used in ("row", "col")
            fillers = _my_fillers(t, used, index_bits)
            if order == "auto":   # auto takes the order that needs fewer fillers
                assert fillers == min(_my_fillers(t, o, index_bits) for o in ("row", "col"))
            else:
                assert used == order
            entries = nnz + fillers
            assert (e.nonzeros, e.stored_params, e.fillers) == (nnz, nnz, fillers)
            assert e.info["entries"] == entries
            assert e.index_bits == index_bits * entries
            assert e.value_bits == 32 * entries
            assert len(e.arrays["index"]) == math.ceil(entries * index_bits / 8)
            assert e.dense_params == t.size


def test_auto_order_picks_column_when_it_needs_fewer_fillers():
    t = np.zeros((4, 16), dtype=np.float32)
    t[0, 0], t[3, 0] = 1.0, 2.0
    # row-major positions 0 and 48: gap 47 -> 47 >> 5 = 1 filler, 3 entries.
    # column-major positions 0 and 3: gap 2, no filler, 2 entries.
    row = encode_sparse("w", "l", "fc", t, index_bits=5, order="row")
    assert (row.fillers, row.info["entries"]) == (1, 3)
    assert row.bits == 3 * 32 + 3 * 5 + SPARSE_META_2D            # 96 + 15 + 113 = 224
    auto = encode_sparse("w", "l", "fc", t, index_bits=5, order="auto")
    assert auto.info["order"] == "col"
    assert (auto.fillers, auto.info["entries"]) == (0, 2)
    assert auto.bits == 2 * 32 + 2 * 5 + SPARSE_META_2D           # 64 + 10 + 113 = 187
    np.testing.assert_array_equal(decode(auto.info, auto.shape, "sparse", auto.arrays), t)


# --- one layer by hand --------------------------------------------------------------------------

def test_hand_computed_fc_layer():
    w = np.zeros((4, 8), dtype=np.float32)
    w[0, 0], w[0, 5], w[3, 7] = 0.5, -1.25, 2.0
    # row-major positions 0, 5, 31 -> gaps 0, 4, 25; all < 2^5, no fillers.
    e = encode_sparse("fc.weight", "fc", "fc", w, index_bits=5, value_bits=32)
    assert e.value_bits == 3 * 32 == 96
    assert e.index_bits == 3 * 5 == 15
    assert e.fillers == 0
    assert e.meta_bits == 8 + 8 + 32 * 2 + 32 + 1 == 113
    assert e.bits == 96 + 15 + 113 == 224
    assert (e.dense_params, e.stored_params, e.nonzeros) == (32, 3, 3)
    d = encode_dense("fc.weight", "fc", "fc", w)
    assert d.bits == 32 * 32 + DENSE_META_2D == 1104
    auto = encode_auto("fc.weight", "fc", "fc", w)           # fc -> 5-bit indices by default
    assert auto.encoding == "sparse" and auto.bits == 224 and auto.info["index_bits"] == 5


def test_encode_auto_crossover_by_hand():
    # 4x8 FC, the first k row-major entries nonzero (no gaps, no fillers):
    # sparse = 37 k + 113, dense = 1104. 37*26 + 113 = 1075 < 1104; 37*27 + 113 = 1112 > 1104.
    def first_k(k):
        w = np.zeros(32, dtype=np.float32)
        w[:k] = np.arange(1, k + 1)
        return w.reshape(4, 8)

    e26 = encode_auto("w", "fc", "fc", first_k(26))
    assert e26.encoding == "sparse" and e26.bits == 1075
    w27 = first_k(27)
    assert encode_sparse("w", "fc", "fc", w27, index_bits=5).bits == 1112
    e27 = encode_auto("w", "fc", "fc", w27)
    assert e27.encoding == "dense" and e27.bits == 1104
    np.testing.assert_array_equal(decode(e27.info, e27.shape, e27.encoding, e27.arrays), w27)


def test_encode_auto_conv_uses_8_bit_indices():
    w = np.zeros((2, 1, 3, 3), dtype=np.float32)
    w[1, 0, 2, 2] = 0.75
    # one entry: 32 + 8 = 40 bits + meta 8+8+4*32+33 = 177 -> 217 < dense 18*32 + 144 = 720
    e = encode_auto("c.weight", "c", "conv", w)
    assert e.encoding == "sparse" and e.info["index_bits"] == 8
    assert e.bits == 40 + SPARSE_META_4D == 217
    assert encode_dense("c.weight", "c", "conv", w).bits == 18 * 32 + 8 + 8 + 4 * 32 == 720


# --- the calculator -----------------------------------------------------------------------------

def _hand_layer():
    w = np.zeros((4, 8), dtype=np.float32)
    w[0, 0], w[0, 5], w[3, 7] = 0.5, -1.25, 2.0
    b = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    return [encode_auto("fc.weight", "fc", "fc", w),      # sparse: 224 bits, 3 stored of 32
            encode_auto("fc.bias", "fc", "fc", b)]        # dense: 4*32 + 8+8+32 = 176 bits


def test_account_ratios_by_hand():
    r = account(_hand_layer())
    fc = r.layer("fc")
    assert (fc.dense_params, fc.stored_params, fc.nonzeros, fc.bits) == (36, 7, 7, 224 + 176)
    assert fc.param_ratio == pytest.approx(36 / 7)
    assert fc.storage_ratio == pytest.approx(36 * 32 / 400)      # 1152 / 400 = 2.88
    assert r.param_ratio == pytest.approx(36 / 7)
    assert r.storage_ratio == pytest.approx(2.88)
    assert r.summary()["dense_bits"] == 1152


def test_account_buffers_cost_bits_but_no_dense_params():
    stats = np.arange(1, 5, dtype=np.float32)
    enc = _hand_layer() + [encode_dense("bn.running_mean", "bn", "other", stats, is_param=False)]
    r = account(enc)
    bn = r.layer("bn")
    assert bn.dense_params == 0
    assert bn.bits == 4 * 32 + 8 + 8 + 32 == 176
    assert r.dense_params == 36                                   # unchanged by the buffer
    assert r.bits == 400 + 176
    assert r.storage_ratio == pytest.approx(1152 / 576)           # = 2.0: buffers lower storage_ratio


def test_account_buffers_leave_param_ratio_alone():
    stats = np.arange(1, 5, dtype=np.float32)
    enc = _hand_layer() + [encode_dense("bn.running_mean", "bn", "other", stats, is_param=False)]
    r = account(enc)
    assert r.stored_params == 7
    assert r.param_ratio == pytest.approx(36 / 7)


def test_unpruned_batchnorm_model_has_param_ratio_one():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    with torch.no_grad():  # as after training: BatchNorm's bias starts at exactly 0, which counts as pruned
        model[1].bias.uniform_(0.1, 0.2)
    r = account(encode_state(model, model.state_dict()))
    assert r.param_ratio == 1.0
    assert r.bits > r.dense_bits  # the running statistics cost bits all the same


def test_encode_state_mlp_tiny_counts_nonzeros_set():
    torch.manual_seed(0)
    model = zoo.build_model("mlp_tiny", (1, 8, 8), 4)           # fc1: 32x64 + 32, fc2: 4x32 + 4
    rng = np.random.default_rng(1)
    keep = rng.choice(2048, size=100, replace=False)
    with torch.no_grad():
        w = model.fc1.weight.reshape(-1)
        values = w[keep].clone()
        w.zero_()
        w[keep] = values
    assert int((model.fc1.weight != 0).sum()) == 100
    assert int((model.fc1.bias != 0).sum()) == 32
    r = account(encode_state(model, model.state_dict()))
    fc1, fc2 = r.layer("fc1"), r.layer("fc2")
    assert fc1.kind == "fc"
    assert fc1.dense_params == 2048 + 32
    assert fc1.stored_params == 100 + 32                          # 100 nonzero weights + the dense bias
    assert fc1.nonzeros == 132
    weight = next(e for e in fc1.tensors if e.name == "fc1.weight")
    assert weight.encoding == "sparse"
    fillers = min(_my_fillers(model.fc1.weight.detach().numpy(), o, 5) for o in ("row", "col"))
    assert weight.fillers == fillers
    assert weight.bits == (100 + fillers) * (32 + 5) + SPARSE_META_2D
    # bias dense: 32*32 + 8+8+32 = 1072 bits
    assert fc1.bits == weight.bits + 1072
    assert (fc2.dense_params, fc2.stored_params) == (132, 132)
    assert r.param_ratio == pytest.approx((2080 + 132) / (132 + 132))


def test_encode_state_light_pruning_counts_nonzeros():
    torch.manual_seed(0)
    model = zoo.build_model("mlp_tiny", (1, 8, 8), 4)
    with torch.no_grad():
        model.fc1.weight.reshape(-1)[:100] = 0                  # 1948 of 2048 left: dense is cheaper
    r = account(encode_state(model, model.state_dict()))
    assert r.layer("fc1").stored_params == 1948 + 32
