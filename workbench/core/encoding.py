"""Storage encodings of one tensor, shared by the accounting (bit counts) and the compact export (bytes).

Both read the same `Encoded` record, so the bits the calculator reports are the bits the export writes.

Sparse tensors use Deep Compression's relative indexing (Han, Mao, Dally 2016, sec. 2): each stored
entry keeps the number of zeros skipped since the previous entry in `index_bits` bits (5 for FC, 8 for
conv in the paper). A run of zeros longer than 2^b - 1 is bridged by explicit filler zeros, each of
which costs a full entry. The flattening order (row- or column-major of the out x in matrix) is chosen
per tensor to need fewer fillers and stored as one flag bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Per-tensor metadata in bits: encoding tag, ndim, each dimension, entry count, order flag.
TAG_BITS, NDIM_BITS, DIM_BITS, COUNT_BITS, ORDER_BITS = 8, 8, 32, 32, 1
INDEX_BITS = {"fc": 5, "conv": 8}   # Deep Compression's choice per layer kind
FLOAT_DTYPES = {32: np.float32, 16: np.float16}


@dataclass
class Encoded:
    """One tensor as stored: its cost in bits and the arrays that hold it."""

    name: str
    layer: str
    kind: str                    # "fc", "conv" or "other"
    shape: tuple[int, ...]
    encoding: str                # "dense" | "sparse"
    dense_params: int            # parameters of the uncompressed tensor (0 for buffers)
    stored_params: int           # nonzero parameters kept (fillers and buffers are not parameters)
    nonzeros: int
    value_bits: int              # total bits of values
    index_bits: int = 0          # total bits of indices
    codebook_bits: int = 0
    meta_bits: int = 0
    fillers: int = 0
    info: dict = field(default_factory=dict)        # JSON-able facts a decoder needs
    arrays: dict = field(default_factory=dict)      # name -> numpy array to write (uint8 or float)

    @property
    def bits(self) -> int:
        return self.value_bits + self.index_bits + self.codebook_bits + self.meta_bits


def _meta_bits(shape: tuple[int, ...], sparse: bool) -> int:
    return TAG_BITS + NDIM_BITS + DIM_BITS * len(shape) + (COUNT_BITS + ORDER_BITS if sparse else 0)


def pack_bits(values: np.ndarray, bits: int) -> np.ndarray:
    """Pack non-negative ints < 2**bits into a little-endian bitstream of ceil(n*bits/8) bytes."""
    v = np.asarray(values, dtype=np.uint32)
    shifts = np.arange(bits, dtype=np.uint32)
    bitmat = ((v[:, None] >> shifts) & 1).astype(np.uint8)
    return np.packbits(bitmat.reshape(-1), bitorder="little")


def unpack_bits(buf: np.ndarray, bits: int, count: int) -> np.ndarray:
    flat = np.unpackbits(np.asarray(buf, dtype=np.uint8), bitorder="little", count=count * bits)
    weights = (np.uint32(1) << np.arange(bits, dtype=np.uint32))
    return (flat.reshape(count, bits).astype(np.uint32) * weights).sum(axis=1, dtype=np.uint32)


def _ordered(t: np.ndarray, order: str) -> np.ndarray:
    if order == "col" and t.ndim >= 2:
        return t.reshape(t.shape[0], -1).T.reshape(-1)
    return t.reshape(-1)


def _unordered(flat: np.ndarray, shape: tuple[int, ...], order: str) -> np.ndarray:
    if order == "col" and len(shape) >= 2:
        rows = shape[0]
        return flat.reshape(-1, rows).T.reshape(shape)
    return flat.reshape(shape)


def relative_entries(flat: np.ndarray, index_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(gaps, values) of the entry stream, filler zeros included."""
    positions = np.flatnonzero(flat)
    gaps = np.diff(positions, prepend=-1) - 1            # zeros skipped before each nonzero
    span = 1 << index_bits
    fillers = gaps >> index_bits                           # each filler bridges `span` positions
    slots = np.cumsum(fillers + 1) - 1                     # where each real entry lands
    total = int(slots[-1]) + 1 if len(slots) else 0
    out_gaps = np.full(total, span - 1, dtype=np.uint32)
    out_vals = np.zeros(total, dtype=flat.dtype)
    out_gaps[slots] = gaps - fillers * span
    out_vals[slots] = flat[positions]
    return out_gaps, out_vals


def count_fillers(flat: np.ndarray, index_bits: int) -> int:
    positions = np.flatnonzero(flat)
    gaps = np.diff(positions, prepend=-1) - 1
    return int((gaps >> index_bits).sum())


def encode_dense(name: str, layer: str, kind: str, t: np.ndarray, *, is_param: bool = True,
                 value_bits: int = 32) -> Encoded:
    values = np.ascontiguousarray(t, dtype=FLOAT_DTYPES[value_bits]).reshape(-1)
    shape = tuple(t.shape)
    nnz = int(np.count_nonzero(t))
    # Parameters are counted as nonzeros whatever the format (Han 2015's convention); buffers are none.
    return Encoded(name, layer, kind, shape, "dense", t.size if is_param else 0, nnz if is_param else 0,
                   nnz, value_bits * t.size, meta_bits=_meta_bits(shape, False),
                   info={"value_bits": value_bits}, arrays={"values": values})


def encode_sparse(name: str, layer: str, kind: str, t: np.ndarray, *, index_bits: int,
                  value_bits: int = 32, order: str = "auto") -> Encoded:
    if order == "auto":
        order = min(("row", "col"), key=lambda o: count_fillers(_ordered(t, o), index_bits))
    flat = _ordered(np.asarray(t, dtype=np.float32), order)
    gaps, values = relative_entries(flat, index_bits)
    shape = tuple(t.shape)
    nnz = int(np.count_nonzero(flat))
    return Encoded(
        name, layer, kind, shape, "sparse", t.size, nnz, nnz,
        value_bits=value_bits * len(values), index_bits=index_bits * len(gaps),
        meta_bits=_meta_bits(shape, True), fillers=len(gaps) - nnz,
        info={"index_bits": index_bits, "value_bits": value_bits, "order": order, "entries": len(gaps)},
        arrays={"index": pack_bits(gaps, index_bits),
                "values": values.astype(FLOAT_DTYPES[value_bits])},
    )


def encode_auto(name: str, layer: str, kind: str, t: np.ndarray, *, index_bits: int | None = None,
                value_bits: int = 32) -> Encoded:
    """The cheaper of dense and sparse, as a real exporter would choose."""
    dense = encode_dense(name, layer, kind, t, value_bits=value_bits)
    index_bits = index_bits or INDEX_BITS.get(kind, 8)
    if t.size == 0 or np.count_nonzero(t) * (value_bits + index_bits) >= value_bits * t.size:
        return dense  # sparse cannot win even without fillers
    sparse = encode_sparse(name, layer, kind, t, index_bits=index_bits, value_bits=value_bits)
    return sparse if sparse.bits < dense.bits else dense


def decode(info: dict, shape: tuple[int, ...], encoding: str, arrays: dict) -> np.ndarray:
    """Inverse of the encoders: the dense float32 tensor."""
    values = np.asarray(arrays["values"]).astype(np.float32)
    if encoding == "dense":
        return values.reshape(shape)
    if encoding != "sparse":
        raise ValueError(f"unknown encoding {encoding!r}")
    count = int(info["entries"])
    gaps = unpack_bits(arrays["index"], int(info["index_bits"]), count).astype(np.int64)
    positions = np.cumsum(gaps + 1) - 1
    flat = np.zeros(int(np.prod(shape)), dtype=np.float32)
    flat[positions] = values
    return _unordered(flat, shape, info["order"])
