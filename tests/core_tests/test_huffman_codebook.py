"""Huffman coding and codebook (shared-value) encodings, against hand-computed sizes."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.core import huffman as hf
from workbench.core.encoding import COUNT_BITS, decode, encode_auto, encode_codebook, encode_sparse, huffman_coded


def test_code_lengths_of_a_dyadic_distribution_are_minus_log2_p():
    # p = 1/2, 1/4, 1/8, 1/8 -> lengths 1, 2, 3, 3; 1.75 bits per symbol exactly (the entropy)
    symbols = np.array([0] * 400 + [1] * 200 + [2] * 100 + [3] * 100)
    payload, lengths = hf.coded_bits(symbols, alphabet=8)
    assert list(lengths[:4]) == [1, 2, 3, 3] and not lengths[4:].any()
    assert payload == 1.75 * len(symbols)
    # Kraft equality: a complete prefix code
    assert sum(2.0 ** -lengths[lengths > 0]) == 1.0


@pytest.mark.parametrize("alphabet,n,seed", [(32, 5000, 0), (256, 3000, 1), (4, 1, 2)])
def test_encode_decode_round_trip_and_payload_size(alphabet, n, seed):
    rng = np.random.default_rng(seed)
    symbols = np.minimum(rng.geometric(0.3, size=n) - 1, alphabet - 1)
    payload, lengths = hf.coded_bits(symbols, alphabet)
    buf = hf.encode(symbols, lengths)
    assert len(buf) == (payload + 7) // 8
    np.testing.assert_array_equal(hf.decode(buf, lengths, n), symbols)


def test_a_one_symbol_stream_costs_one_bit_per_symbol():
    symbols = np.full(10, 3)
    payload, lengths = hf.coded_bits(symbols, 8)
    assert payload == 10 and lengths[3] == 1
    np.testing.assert_array_equal(hf.decode(hf.encode(symbols, lengths), lengths, 10), symbols)


def _quantized(shape=(20, 40), levels=(-0.5, -0.1, 0.2, 0.7), density=0.1, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.choice(np.asarray(levels, np.float32), size=shape)
    w[rng.random(shape) > density] = 0
    return w.astype(np.float32)


def test_sparse_codebook_bits_by_hand():
    w = np.zeros((4, 8), dtype=np.float32)
    w[0, 0], w[0, 5], w[3, 7] = 0.5, -1.25, 0.5
    # row-major gaps 0, 4, 25 (< 2^5, no fillers); codebook {-1.25, 0.5}: 1-bit codes
    e = encode_codebook("fc.weight", "fc", "fc", w, np.array([-1.25, 0.5]), sparse=True, index_bits=5,
                        order="row")
    assert e.encoding == "sparse_cb" and e.fillers == 0
    assert e.value_bits == 3 * 1 and e.index_bits == 3 * 5 and e.codebook_bits == 2 * 32
    assert e.meta_bits == 8 + 8 + 32 * 2 + 32 + 1 + COUNT_BITS
    np.testing.assert_array_equal(decode(e.info, e.shape, e.encoding, e.arrays), w)


def test_fillers_get_a_zero_code_word():
    w = np.zeros((1, 100), dtype=np.float32)
    w[0, 0], w[0, 99] = 0.25, 0.75              # gap 98 > 31: three fillers with 5-bit indices
    e = encode_codebook("w", "fc", "fc", w, np.array([0.25, 0.75]), sparse=True, index_bits=5, order="row")
    assert e.fillers == 3 and e.info["codebook_size"] == 3 and e.info["code_bits"] == 2
    assert e.value_bits == 5 * 2
    np.testing.assert_array_equal(decode(e.info, e.shape, e.encoding, e.arrays), w)


def test_auto_picks_a_codebook_for_quantized_weights_and_huffman_only_shrinks():
    w = _quantized()
    fixed = encode_auto("fc.weight", "fc", "fc", w)
    assert fixed.encoding == "sparse_cb"
    assert fixed.bits < encode_sparse("fc.weight", "fc", "fc", w, index_bits=5).bits
    coded = encode_auto("fc.weight", "fc", "fc", w, huffman=True)
    assert coded.bits <= fixed.bits
    for e in (fixed, coded):
        np.testing.assert_array_equal(decode(e.info, e.shape, e.encoding, e.arrays), w)


def test_huffman_coded_stream_sizes_match_what_is_written():
    w = _quantized(shape=(50, 80), levels=(0.1,) * 20 + (0.3, -0.2), density=0.3, seed=3)  # skewed codes
    e = encode_codebook("w", "fc", "fc", w, np.unique(w[w != 0]), sparse=True, index_bits=5)
    h = huffman_coded(e)
    for stream, field in (("index", "index_bits"), ("codes", "value_bits")):
        if h.info.get(f"{stream}_coding") == "huffman":
            symbols, width = e.streams[stream]
            payload, _ = hf.coded_bits(symbols, 1 << width)
            assert getattr(h, field) == payload + (1 << width) * 8 + hf.STREAM_HEADER_BITS
            assert len(h.arrays[stream]) == (payload + 7) // 8
            assert len(h.arrays[f"{stream}_lengths"]) == 1 << width
    assert h.info.get("codes_coding") == "huffman"      # one value dominates: entropy coding wins
    assert h.bits < e.bits
    np.testing.assert_array_equal(decode(h.info, h.shape, h.encoding, h.arrays), w)


def test_a_dense_layer_with_few_values_uses_dense_codes():
    rng = np.random.default_rng(4)
    w = rng.choice(np.array([-0.3, 0.1, 0.4], np.float32), size=(30, 30))
    e = encode_auto("fc.weight", "fc", "fc", w)
    assert e.encoding == "dense_cb" and e.value_bits == 900 * 2 and e.codebook_bits == 3 * 32
    np.testing.assert_array_equal(decode(e.info, e.shape, e.encoding, e.arrays), w)
