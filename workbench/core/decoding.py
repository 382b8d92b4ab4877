"""Decoding what core/encoding.py and core/encoding_int8.py write: each stored tensor back to its dense
array, every size, position and code read from the data checked against what it indexes before use, so
damage is the one-line `Damaged`, never an out-of-bounds read or a wrong tensor of the right size.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np

from workbench.core import huffman as hf
from workbench.core.errors import CheckpointError

INT8_CODE_BITS = 8
INT8_OFFSET = 128                  # int8 codes are written as unsigned bytes: code + 128


def unpack_bits(buf: np.ndarray, bits: int, count: int) -> np.ndarray:
    flat = np.unpackbits(np.asarray(buf, dtype=np.uint8), bitorder="little", count=count * bits)
    weights = (np.uint32(1) << np.arange(bits, dtype=np.uint32))
    return (flat.reshape(count, bits).astype(np.uint32) * weights).sum(axis=1, dtype=np.uint32)


def _unordered(flat: np.ndarray, shape: tuple[int, ...], order: str) -> np.ndarray:
    if order == "col" and len(shape) >= 2:
        rows = shape[0]
        return flat.reshape(-1, rows).T.reshape(shape)
    return flat.reshape(shape)


class Damaged(CheckpointError):
    """Encoded data that cannot be what an encoder wrote: a size, index or code out of place. The decoder
    checks each before use, so damage is this one line, never an out-of-bounds read or a wrong tensor
    of the right size."""


def _require(ok, what: str) -> None:
    if not ok:
        raise Damaged(what)


def _count(info: dict, key: str) -> int:
    value = info.get(key)
    _require(isinstance(value, Integral) and not isinstance(value, bool) and value >= 0,
             f"{key} {value!r} is not a count")
    return value


def _stream(info: dict, arrays: dict, name: str, width_key: str) -> np.ndarray:
    count = _count(info, "entries")
    buf = np.asarray(arrays.get(name), dtype=np.uint8)
    if info.get(f"{name}_coding") == "huffman":
        lengths = np.asarray(arrays.get(f"{name}_lengths"), dtype=np.uint8)
        _require(lengths.ndim == 1 and lengths.size > 0, f"{name}: no Huffman code lengths")
        # A Huffman code's lengths satisfy Kraft's inequality and are shorter than its alphabet; others
        # would build code words past 64 bits (the canonical code's integers) or no prefix code at all.
        used = [int(n) for n in lengths if n]
        _require(used and max(used) < max(lengths.size, 2) and max(used) <= 63
                 and sum(1 << (max(used) - n) for n in used) <= 1 << max(used), f"{name}: Huffman code lengths "
                 "that no Huffman code has")
        _require(buf.ndim == 1 and buf.size * 8 >= count, f"{name}: {buf.size} bytes hold fewer than {count} "
                 "Huffman codes")          # each code word is at least one bit
        try:
            return hf.decode(buf, lengths, count)
        except ValueError as exc:                    # a stream that ends early or holds no code word
            raise Damaged(f"{name}: {exc}") from None
    width = _count(info, width_key)
    _require(1 <= width <= 32, f"{name}: width {width} bits")
    _require(buf.ndim == 1 and buf.size * 8 >= count * width, f"{name}: {buf.size} bytes hold fewer than "
             f"{count} entries of {width} bits")
    return unpack_bits(buf, width, count).astype(np.int64)


def _shape(shape) -> tuple[int, int]:
    _require(all(isinstance(d, Integral) and not isinstance(d, bool) and d >= 0 for d in shape),
             f"shape {list(shape)} is not a list of sizes")
    return tuple(shape), int(np.prod(shape, dtype=np.int64))


def _sized(values, size: int, what: str) -> np.ndarray:
    values = np.asarray(values)
    _require(values.ndim == 1 and values.size == size, f"{what}: {values.size} values for {size} entries")
    return values


def decode(info: dict, shape: tuple[int, ...], encoding: str, arrays: dict) -> np.ndarray:
    """Inverse of the encoders: the dense float32 tensor (int64 for "uint"). Every size, position and code
    read from the data is checked against what it indexes first; `Damaged` (a CheckpointError) says
    which did not fit."""
    _require(isinstance(info, dict) and isinstance(arrays, dict), "tensor record is not a mapping")
    shape, size = _shape(shape)
    if encoding == "dense":
        return _sized(arrays.get("values"), size, "values").astype(np.float32).reshape(shape)
    if encoding == "uint":
        return _sized(arrays.get("values"), size, "values").astype(np.int64).reshape(shape)
    if encoding in ("int8", "sparse_int8"):
        return _decode_int8(info, shape, size, encoding, arrays)
    _require(encoding in ("sparse", "dense_cb", "sparse_cb"), f"unknown encoding {encoding!r}")
    entries = _count(info, "entries")
    if encoding == "sparse":
        values = _sized(arrays.get("values"), entries, "values").astype(np.float32)
    else:
        book = np.asarray(arrays.get("codebook"))
        _require(book.ndim == 1 and book.dtype.kind == "f", "codebook is not a list of values")
        codes = _stream(info, arrays, "codes", "code_bits")
        _require(not len(codes) or (codes.min() >= 0 and codes.max() < len(book)), "code outside the codebook")
        values = book.astype(np.float32)[codes]
    if encoding == "dense_cb":
        _require(entries == size, f"{entries} codes for {size} entries")
        return values.reshape(shape)
    order = info.get("order")
    _require(order in ("row", "col"), f"order {order!r}")
    gaps = _stream(info, arrays, "index", "index_bits")
    positions = np.cumsum(gaps + 1) - 1
    _require(not len(positions) or positions[-1] < size, f"entries run past the tensor's {size} positions")
    flat = np.zeros(size, dtype=np.float32)
    flat[positions] = values
    return _unordered(flat, shape, order)

def per_row(v: np.ndarray, ndim: int) -> np.ndarray:
    """A per-channel (or one-element) vector shaped to broadcast over a tensor's first axis."""
    return np.asarray(v).reshape((-1,) + (1,) * (ndim - 1))


def _int8_table(info: dict, shape: tuple[int, ...], arrays: dict) -> tuple[np.ndarray, np.ndarray]:
    """(scales, zero points) of an int8 record, checked: one per row or one in all, scales finite and > 0."""
    _require(len(shape) >= 1, "an int8 tensor without a first axis")
    n = _count(info, "scales")
    _require(n in (1, shape[0]), f"{n} scales for {shape[0]} rows")
    scales = np.asarray(arrays.get("scales"))
    _require(scales.dtype.kind == "f", "scales are not floats")
    scales = _sized(scales, n, "scales").astype(np.float32)
    _require(bool(np.isfinite(scales).all() and (scales > 0).all()), "a scale that is not a positive number")
    zeros = _sized(arrays.get("zero_points"), n, "zero_points").astype(np.int16)
    return scales, zeros


def _decode_int8(info: dict, shape: tuple[int, ...], size: int, encoding: str, arrays: dict) -> np.ndarray:
    scales, zeros = _int8_table(info, shape, arrays)
    entries = _count(info, "entries")
    _require(info.get("code_bits", INT8_CODE_BITS) == INT8_CODE_BITS or info.get("codes_coding") == "huffman",
             f"code width {info.get('code_bits')!r} bits, not 8")
    codes = _stream(info, arrays, "codes", "code_bits")
    _require(len(codes) == entries and (not len(codes) or codes.max() < 1 << INT8_CODE_BITS),
             "int8 codes out of range")
    q = codes.astype(np.int16) - INT8_OFFSET
    if encoding == "int8":
        _require(entries == size, f"{entries} codes for {size} entries")
        full = q.reshape(shape)
    else:
        _require(not zeros.any(), "a sparse int8 tensor with nonzero zero points")   # absent entries are 0
        order = info.get("order")
        _require(order in ("row", "col"), f"order {order!r}")
        gaps = _stream(info, arrays, "index", "index_bits")
        _require(len(gaps) == entries, f"{len(gaps)} indices for {entries} codes")
        positions = np.cumsum(gaps + 1) - 1
        _require(not len(positions) or positions[-1] < size, f"entries run past the tensor's {size} positions")
        flat = np.zeros(size, dtype=np.int16)
        flat[positions] = q
        full = _unordered(flat, shape, order)
    ndim = len(shape)
    # (code - zero point) x scale in float32, as torch.fake_quantize_* computes it: the exact stored weights.
    return (full - per_row(zeros, ndim)).astype(np.float32) * per_row(scales, ndim)


def companions(info: dict, shape: tuple[int, ...], encoding: str, arrays: dict) -> dict[str, np.ndarray]:
    """Tensors a record restores besides its own: an int8 record's scales under the name it gives (one per
    row of the tensor, as the layer's `weight_scale` buffer holds them)."""
    if encoding not in ("int8", "sparse_int8") or not info.get("scale_tensor"):
        return {}
    name = info["scale_tensor"]
    _require(isinstance(name, str), "scale_tensor is not a name")
    shape, _ = _shape(shape)
    scales, _ = _int8_table(info, shape, arrays)
    return {name: np.broadcast_to(scales, (shape[0],)).astype(np.float32)}
