"""Storage encodings of one tensor, shared by the accounting (bit counts) and the compact export (bytes).

Both read the same `Encoded` record, so the bits the calculator reports are the bits the export writes.

Sparse tensors use Deep Compression's relative indexing (Han, Mao, Dally 2016, sec. 2): each stored
entry keeps the number of zeros skipped since the previous entry in `index_bits` bits (5 for FC, 8 for
conv in the paper). A run of zeros longer than 2^b - 1 is bridged by explicit filler zeros, each of
which costs a full entry. The flattening order (row- or column-major of the out x in matrix) is chosen
per tensor to need fewer fillers and stored as one flag bit.

A tensor with few distinct nonzero values (k-means quantization, soft weight-sharing after snapping)
can instead store a codebook of those values (fp32 each) and one code per entry of ceil(log2 K) bits
(Deep Compression sec. 3): `dense_cb` codes every entry, `sparse_cb` codes the entries of the relative
index stream. Fillers decode to 0, so a zero code word is added to the codebook when there are fillers.

int8 tensors (`int8`, `sparse_int8`: 8-bit codes on a per-channel grid) are in core/encoding_int8.py;
the decoder of every encoding (with its checks against damage) in core/decoding.py.

The integer streams (relative indices, codes) are fixed-width by default; with `huffman=True` each is
Huffman coded when that is smaller (Deep Compression sec. 4), its code-length table counted in its bits.
The encoder picks the cheapest representation, as a real exporter would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from workbench.core import huffman as hf
from workbench.core.decoding import Damaged, decode, unpack_bits  # noqa: F401 - callers import them here

# Per-tensor metadata in bits: encoding tag, ndim, each dimension, entry count, order flag.
TAG_BITS, NDIM_BITS, DIM_BITS, COUNT_BITS, ORDER_BITS = 8, 8, 32, 32, 1
INDEX_BITS = {"fc": 5, "conv": 8}   # Deep Compression's choice per layer kind
FLOAT_DTYPES = {32: np.float32, 16: np.float16}
MAX_CODEBOOK = 256                  # codebook encodings are tried up to this many distinct values
CODEBOOK_VALUE_BITS = 32


@dataclass
class Encoded:
    """One tensor as stored: its cost in bits and the arrays that hold it."""

    name: str
    layer: str
    kind: str                    # "fc", "conv" or "other"
    shape: tuple[int, ...]
    encoding: str                # "dense" | "sparse" | "dense_cb" | "sparse_cb" | "uint" (integers)
    #                              | "int8" | "sparse_int8" (codes on a per-channel grid)
    dense_params: int            # parameters of the uncompressed tensor (0 for buffers)
    stored_params: int           # nonzero parameters kept (fillers and buffers are not parameters)
    nonzeros: int
    value_bits: int              # total bits of values (raw floats, or codes into the codebook)
    index_bits: int = 0          # total bits of indices
    codebook_bits: int = 0
    meta_bits: int = 0
    fillers: int = 0
    info: dict = field(default_factory=dict)        # JSON-able facts a decoder needs
    arrays: dict = field(default_factory=dict)      # name -> numpy array to write (uint8 or float)
    streams: dict = field(default_factory=dict)     # name -> (int symbols, fixed width): "index", "codes"
    # Set on every tensor of a layer whose shape a method changed (low-rank factors, removed units): the
    # original layer's dense parameters, which the accounting uses instead of the tensors' own sizes.
    layer_dense_params: int | None = None

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


def _ordered(t: np.ndarray, order: str) -> np.ndarray:
    if order == "col" and t.ndim >= 2:
        return t.reshape(t.shape[0], -1).T.reshape(-1)
    return t.reshape(-1)


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


def _width(symbols: int) -> int:
    """Bits of a fixed-width code for `symbols` distinct code words (at least one bit)."""
    return max(int(symbols - 1).bit_length(), 1)


def encode_dense(name: str, layer: str, kind: str, t: np.ndarray, *, is_param: bool = True,
                 value_bits: int = 32) -> Encoded:
    values = np.ascontiguousarray(t, dtype=FLOAT_DTYPES[value_bits]).reshape(-1)
    shape = tuple(t.shape)
    nnz = int(np.count_nonzero(t))
    # Parameters are counted as nonzeros whatever the format (Han 2015's convention); buffers are none.
    return Encoded(name, layer, kind, shape, "dense", t.size if is_param else 0, nnz if is_param else 0,
                   nnz, value_bits * t.size, meta_bits=_meta_bits(shape, False),
                   info={"value_bits": value_bits}, arrays={"values": values})


def encode_integers(name: str, layer: str, kind: str, t: np.ndarray, *, bits: int = 32) -> Encoded:
    """Non-negative integers below 2^bits stored as they are (e.g. a hash seed): bits, not parameters."""
    values = np.asarray(t).reshape(-1)
    if values.size and (values.min() < 0 or int(values.max()) >> bits):
        raise ValueError(f"{name}: integers outside [0, 2^{bits})")
    shape = tuple(np.shape(t))
    dtype = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}[bits]
    return Encoded(name, layer, kind, shape, "uint", 0, 0, 0, bits * values.size,
                   meta_bits=_meta_bits(shape, False), info={"bits": bits},
                   arrays={"values": values.astype(dtype)})


def _pick_order(t: np.ndarray, index_bits: int, order: str) -> str:
    if order == "auto":
        return min(("row", "col"), key=lambda o: count_fillers(_ordered(t, o), index_bits))
    return order


def encode_sparse(name: str, layer: str, kind: str, t: np.ndarray, *, index_bits: int,
                  value_bits: int = 32, order: str = "auto") -> Encoded:
    order = _pick_order(t, index_bits, order)
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
        streams={"index": (gaps, index_bits)},
    )


def codebook_of(t: np.ndarray, limit: int = MAX_CODEBOOK) -> np.ndarray | None:
    """The sorted distinct nonzero values of `t` when there are at most `limit`, else None."""
    values = np.unique(np.asarray(t, dtype=np.float32))
    values = values[values != 0]
    return values if 0 < len(values) <= limit else None


def encode_codebook(name: str, layer: str, kind: str, t: np.ndarray, codebook: np.ndarray, *,
                    sparse: bool, index_bits: int = 5, order: str = "auto") -> Encoded:
    """Codes into a shared-value codebook: every entry (dense_cb) or the sparse entries (sparse_cb)."""
    t = np.asarray(t, dtype=np.float32)
    shape = tuple(t.shape)
    nnz = int(np.count_nonzero(t))
    if sparse:
        order = _pick_order(t, index_bits, order)
        gaps, values = relative_entries(_ordered(t, order), index_bits)
    else:
        order, gaps, values = "row", None, t.reshape(-1)
    book = np.asarray(codebook, dtype=np.float32)
    if np.any(values == 0):                 # fillers, or zeros of a dense tensor: 0 needs a code word
        book = np.concatenate([[np.float32(0)], book[book != 0]])
    book = np.sort(book)
    codes = np.minimum(np.searchsorted(book, values), len(book) - 1)
    if not np.array_equal(book[codes], values):
        raise ValueError(f"{name}: values outside the codebook")
    code_bits = _width(len(book))
    info = {"code_bits": code_bits, "codebook_size": len(book), "order": order, "entries": len(values)}
    streams = {"codes": (codes.astype(np.uint32), code_bits)}
    arrays = {"codebook": book, "codes": pack_bits(codes, code_bits)}
    bits_index = 0
    if sparse:
        info["index_bits"] = index_bits
        streams["index"] = (gaps, index_bits)
        arrays["index"] = pack_bits(gaps, index_bits)
        bits_index = index_bits * len(gaps)
    # Parameters stay the kept (nonzero) weights, Han 2015's convention; the codebook is storage.
    return Encoded(name, layer, kind, shape, "sparse_cb" if sparse else "dense_cb", t.size, nnz, nnz,
                   value_bits=code_bits * len(values), index_bits=bits_index,
                   codebook_bits=CODEBOOK_VALUE_BITS * len(book),
                   meta_bits=_meta_bits(shape, sparse) + COUNT_BITS,     # + the codebook size
                   fillers=(len(values) - nnz) if sparse else 0, info=info, arrays=arrays,
                   streams=streams)


STREAM_FIELD = {"index": "index_bits", "codes": "value_bits"}


def huffman_coded(e: Encoded) -> Encoded:
    """`e` with each integer stream Huffman coded where that is smaller than fixed width.

    A coded stream costs its payload bits plus its table (one byte per alphabet symbol)."""
    if not e.streams:
        return e
    out = Encoded(**{**e.__dict__, "info": dict(e.info), "arrays": dict(e.arrays)})
    for name, (symbols, width) in e.streams.items():
        alphabet = 1 << width
        payload, lengths = hf.coded_bits(symbols, alphabet)
        cost = payload + alphabet * hf.TABLE_BITS_PER_SYMBOL + hf.STREAM_HEADER_BITS
        fixed = width * len(symbols)
        if cost >= fixed:
            continue
        setattr(out, STREAM_FIELD[name], getattr(out, STREAM_FIELD[name]) - fixed + cost)
        out.info[f"{name}_coding"] = "huffman"
        out.arrays[name] = hf.encode(symbols, lengths)
        out.arrays[f"{name}_lengths"] = lengths.astype(np.uint8)
    return out


HUFFMAN_INDEX_WIDTHS = range(4, 10)   # relative-index alphabets tried per tensor when Huffman coding


def encode_auto(name: str, layer: str, kind: str, t: np.ndarray, *, index_bits: int | None = None,
                value_bits: int = 32, huffman: bool = False) -> Encoded:
    """The cheapest of dense, sparse and (for few distinct values) codebook forms, as a real exporter
    would choose.

    Fixed-width coding keeps Deep Compression's index width (5 FC / 8 conv, or `index_bits`). With
    `huffman`, every candidate's streams are Huffman coded before comparing, and the relative-index
    alphabet width is chosen per tensor from HUFFMAN_INDEX_WIDTHS: entropy coding removes the reason
    for one fixed width, and a wider alphabet needs fewer fillers at high sparsity."""
    default_width = index_bits or INDEX_BITS.get(kind, 8)
    widths = sorted(set(HUFFMAN_INDEX_WIDTHS) | {default_width}) if huffman and not index_bits else [default_width]
    candidates = [encode_dense(name, layer, kind, t, value_bits=value_bits)]
    nnz = np.count_nonzero(t)
    book = codebook_of(t) if t.size else None
    if book is not None:
        candidates.append(encode_codebook(name, layer, kind, t, book, sparse=False))
    sparse_may_win = t.size and nnz * (1 + min(widths)) < value_bits * t.size
    for width in widths if sparse_may_win else []:
        if book is not None:
            candidates.append(encode_codebook(name, layer, kind, t, book, sparse=True, index_bits=width))
        # Raw values lose to a codebook except on tiny tensors (the codebook's own cost): with a
        # codebook, try them at the default width only.
        if (book is None or width == default_width) and nnz * (value_bits + width) < value_bits * t.size:
            candidates.append(encode_sparse(name, layer, kind, t, index_bits=width, value_bits=value_bits))
    if huffman:
        candidates = [huffman_coded(c) for c in candidates]
    return min(candidates, key=lambda c: c.bits)    # ties keep the simpler (earlier) form
