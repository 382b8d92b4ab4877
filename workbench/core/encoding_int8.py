"""Storage encodings of an int8 tensor (the `int8` stage: weights on a per-channel grid, value =
(code - zero point) x scale), for the accounting and the compact export alike (core/encoding.py has the
others and the shared parts).

`int8` stores one 8-bit code per entry, `sparse_int8` one per entry of Deep Compression's relative index
stream (the kept weights; fillers coded 0), each with its dequantization table: one fp32 scale and one
int8 zero point per output channel (one of each for a per-tensor layer). Zero points are 0 (symmetric
weights) but stored and counted, as ONNX's DequantizeLinear and TFLite's int8 format hold them. A record
also restores the layer's `weight_scale` buffer (core/decoding.companions), so the scales are stored once. The code
stream is Huffman coded where asked and smaller, as the other encodings' streams are.
"""

from __future__ import annotations

import numpy as np

from workbench.core import encoding as enc  # the shared parts: headers, index streams, Huffman
from workbench.core.decoding import INT8_CODE_BITS, INT8_OFFSET, per_row
from workbench.core.encoding import Encoded

SCALE_BITS, ZERO_POINT_BITS = 32, 8


def int8_codes(name: str, t: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """The codes q (int16 holding int8 values) with t == q x scale of each row exactly in float32; a
    ValueError when `t` is not on that grid (weights of a layer that was not snapped by the int8 stage)."""
    t = np.asarray(t, dtype=np.float32)
    s = per_row(np.asarray(scales, dtype=np.float32), t.ndim)
    q = np.rint(t / s)
    if q.size and (q.min() < -INT8_OFFSET or q.max() > INT8_OFFSET - 1):
        raise ValueError(f"{name}: weights beyond 128 steps of their scale")
    q = q.astype(np.int16)
    if not np.array_equal(q.astype(np.float32) * s, t):
        raise ValueError(f"{name}: weights not on the int8 grid of their scales")
    return q


def _int8_record(name, layer, kind, shape, q, scales, sparse: bool, index_bits: int, order: str,
                 scale_tensor: str | None) -> Encoded:
    n_scales = len(scales)
    nnz = int(np.count_nonzero(q))
    if sparse:
        order = enc._pick_order(q, index_bits, order)
        gaps, codes = enc.relative_entries(enc._ordered(q, order), index_bits)
    else:
        order, gaps, codes = "row", None, q.reshape(-1)
    symbols = (codes.astype(np.int32) + INT8_OFFSET).astype(np.uint32)
    info = {"code_bits": INT8_CODE_BITS, "scales": n_scales, "order": order, "entries": len(symbols)}
    if scale_tensor:
        info["scale_tensor"] = scale_tensor
    arrays = {"scales": np.asarray(scales, dtype=np.float32), "zero_points": np.zeros(n_scales, np.int8),
              "codes": symbols.astype(np.uint8)}
    streams = {"codes": (symbols, INT8_CODE_BITS)}
    bits_index = 0
    if sparse:
        info["index_bits"] = index_bits
        streams["index"] = (gaps, index_bits)
        arrays["index"] = enc.pack_bits(gaps, index_bits)
        bits_index = index_bits * len(gaps)
    size = int(np.prod(shape, dtype=np.int64))
    # Parameters are the nonzero weights (Han 2015's convention); scales and zero points are storage.
    return Encoded(name, layer, kind, tuple(shape), "sparse_int8" if sparse else "int8", size, nnz, nnz,
                   value_bits=INT8_CODE_BITS * len(symbols), index_bits=bits_index,
                   codebook_bits=(SCALE_BITS + ZERO_POINT_BITS) * n_scales,
                   meta_bits=enc._meta_bits(tuple(shape), sparse) + enc.COUNT_BITS,     # + the number of scales
                   fillers=(len(symbols) - nnz) if sparse else 0, info=info, arrays=arrays, streams=streams)


def encode_int8(name: str, layer: str, kind: str, t: np.ndarray, scales: np.ndarray, *,
                scale_tensor: str | None = None, index_bits: int | None = None, huffman: bool = False) -> Encoded:
    """An int8 tensor in the cheaper of its dense and sparse forms (8-bit codes either way). `scales`: one
    per row of the first axis, or one for the tensor; `scale_tensor`: the state-dict name the scales are
    restored under on reading (the layer's `weight_scale`), repeated per row."""
    t = np.asarray(t, dtype=np.float32)
    scales = np.asarray(scales, dtype=np.float32).reshape(-1)
    if t.ndim < 1 or len(scales) not in (1, t.shape[0]) or not (np.isfinite(scales).all() and (scales > 0).all()):
        raise ValueError(f"{name}: {len(scales)} scales for a tensor of shape {tuple(t.shape)}")
    q = int8_codes(name, t, scales)
    default_width = index_bits or enc.INDEX_BITS.get(kind, 8)
    widths = sorted(set(enc.HUFFMAN_INDEX_WIDTHS) | {default_width}) if huffman and not index_bits else [default_width]
    args = (name, layer, kind, t.shape, q, scales)
    candidates = [_int8_record(*args, False, default_width, "row", scale_tensor)]
    nnz = np.count_nonzero(q)
    if t.size and nnz * (1 + min(widths)) < INT8_CODE_BITS * t.size:     # sparse may win
        candidates += [_int8_record(*args, True, w, "auto", scale_tensor) for w in widths]
    if huffman:
        candidates = [enc.huffman_coded(c) for c in candidates]
    return min(candidates, key=lambda c: c.bits)
