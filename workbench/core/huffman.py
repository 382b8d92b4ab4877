"""Canonical Huffman coding of integer symbol streams (Deep Compression, Han, Mao, Dally 2016, sec. 4).

Used for the codebook indices and the sparse relative indices. A coded stream stores the code length of
every symbol of its alphabet (one byte each: the table) and the bitstream; canonical codes are rebuilt
from the lengths alone, so no code words are stored. Bit order: codes are written MSB first into a
little-endian bit stream (the same `bitorder="little"` packing as the fixed-width streams).
"""

from __future__ import annotations

import heapq

import numpy as np

TABLE_BITS_PER_SYMBOL = 8      # one code length per alphabet symbol
STREAM_HEADER_BITS = 4 + 1     # the alphabet width (in bits) and the coded/fixed flag


def code_lengths(counts: np.ndarray) -> np.ndarray:
    """Huffman code length of each symbol (0 for symbols that never occur)."""
    counts = np.asarray(counts, dtype=np.int64)
    lengths = np.zeros(len(counts), dtype=np.int64)
    used = np.flatnonzero(counts)
    if len(used) == 1:
        lengths[used] = 1          # a one-symbol stream still needs one bit per symbol to be decodable
        return lengths
    # Heap of (count, tiebreak, symbols in the subtree); every merge deepens its symbols by one.
    heap = [(int(counts[s]), i, [int(s)]) for i, s in enumerate(used)]
    heapq.heapify(heap)
    tie = len(heap)
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (c1 + c2, tie, s1 + s2))
        tie += 1
    return lengths


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical code words for the given lengths (symbols ordered by (length, symbol))."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(len(lengths), dtype=np.uint64)
    order = sorted((int(lengths[s]), s) for s in np.flatnonzero(lengths))
    code, prev = 0, 0
    for length, s in order:
        code <<= length - prev
        codes[s] = code
        code += 1
        prev = length
    return codes


def coded_bits(symbols: np.ndarray, alphabet: int) -> tuple[int, np.ndarray]:
    """(payload bits, code lengths) of a stream; the table adds alphabet x TABLE_BITS_PER_SYMBOL."""
    counts = np.bincount(np.asarray(symbols, dtype=np.int64), minlength=alphabet)
    lengths = code_lengths(counts)
    return int((counts * lengths).sum()), lengths


def encode(symbols: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The bitstream of `symbols` under the canonical code of `lengths`, packed into bytes."""
    symbols = np.asarray(symbols, dtype=np.int64)
    if len(symbols) == 0:
        return np.zeros(0, dtype=np.uint8)
    codes = canonical_codes(lengths)
    sym_len = np.asarray(lengths, dtype=np.int64)[symbols]
    sym_code = codes[symbols]
    starts = np.cumsum(sym_len) - sym_len
    owner = np.repeat(np.arange(len(symbols)), sym_len)
    k = np.arange(int(sym_len.sum())) - starts[owner]                  # bit position inside its code
    shift = (sym_len[owner] - 1 - k).astype(np.uint64)
    bits = ((sym_code[owner] >> shift) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits, bitorder="little")


def decode(buf: np.ndarray, lengths: np.ndarray, count: int) -> np.ndarray:
    """Inverse of `encode`: `count` symbols read from the packed bitstream."""
    lengths = np.asarray(lengths, dtype=np.int64)
    out = np.zeros(count, dtype=np.int64)
    if count == 0:
        return out
    bits = np.unpackbits(np.asarray(buf, dtype=np.uint8), bitorder="little")
    codes = canonical_codes(lengths)
    # Canonical decoding: per length L, codes are consecutive from first[L]; symbol by offset.
    max_len = int(lengths.max())
    by_len: dict[int, tuple[int, list[int]]] = {}
    for length in range(1, max_len + 1):
        syms = sorted((int(codes[s]), int(s)) for s in np.flatnonzero(lengths == length))
        if syms:
            by_len[length] = (syms[0][0], [s for _, s in syms])
    pos = 0
    bit_list = bits.tolist()
    n_bits = len(bit_list)
    for i in range(count):
        code = 0
        length = 0
        while True:
            if pos >= n_bits:
                raise ValueError("Huffman stream ends early")
            code = (code << 1) | bit_list[pos]
            pos += 1
            length += 1
            entry = by_len.get(length)
            if entry is not None and 0 <= code - entry[0] < len(entry[1]):
                out[i] = entry[1][code - entry[0]]
                break
            if length > max_len:
                raise ValueError("invalid Huffman code in stream")
    return out
