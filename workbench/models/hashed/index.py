"""The integer hash behind hashed layers: bucket index and sign of every virtual weight, from a seed.

HashedNets (Chen et al. 2015) store V_ij = xi(i, j) w[h(i, j)]; functional hashing (Shi et al. 2016)
fetches U such values, xi_k(i, j) w[h_k(i, j)]. Indices are never stored: they are recomputed from 32-bit
keys derived from (seed, layer id, role, k), on whichever device the layer lives on.

Element n of a layer (its flat index into the row-major weight, then the bias when that is hashed):
    base   = mix32(n + key)                  key: the layer's key
    x_k    = mix32(base ^ fkey_k)            one word per hash function k (dkey_k for the dual space)
    bucket = ((x_k >> 1) * K) >> 31         Lemire's multiply-shift reduction of the top 31 bits to [0, K)
    sign   = -1 if x_k & 1 else +1           the low bit, independent of the bits the bucket uses
Mixing `base` a second time with a per-(layer, k) word keeps hash functions and layers from being shifts
of one another (n + key alone would make layers whose keys differ by less than their sizes share runs).

mix32 is the two-multiply 32-bit integer hash from Wellons' hash-prospector (constants 0x21f0aaad,
0x735a2d97). Both constants are below 2^31, so on int64 tensors every product of a 32-bit value stays below
2^63: no signed overflow, values never negative, so right shifts are logical. The same integers come out on
CPU, CUDA, numpy and the native kernel (kernel.c) by construction, not by luck of wrapping.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MASK32 = 0xFFFFFFFF
MUL1, MUL2 = 0x21F0AAAD, 0x735A2D97
MAX_ELEMENTS = 1 << 32          # a layer's elements are numbered with 32 bits
MAX_BUCKETS = 1 << 30           # cached codes keep bucket << 1 | sign in an int32

ROLE_LAYER, ROLE_VALUE, ROLE_DUAL = 1, 2, 3


def mix32(x):
    """mix32 of x in [0, 2^32): a Python int (key derivation), or an int64 tensor, changed in place.

    One body for both: augmented assignments rebind an int and update a tensor in place (no temporaries
    beyond each shift), so the keys and the per-element words come from the same lines."""
    x ^= x >> 16
    x *= MUL1
    x &= MASK32
    x ^= x >> 15
    x *= MUL2
    x &= MASK32
    x ^= x >> 15
    return x


def derive(*words: int) -> int:
    """A 32-bit key from a sequence of integers (seed, layer id, role, k)."""
    h = 0x243F6A88                     # pi's fraction bits: any fixed start
    for w in words:
        h = mix32(h ^ mix32(int(w) & MASK32) ^ 0x9E3779B9)
    return h


@dataclass(frozen=True)
class LayerKeys:
    """The 32-bit words one layer hashes with."""

    key: int
    fkeys: tuple[int, ...]          # one per hash function
    dkeys: tuple[int, ...]          # dual space: one per hash function (empty without it)


def layer_keys(seed: int, layer_id: int, u: int, dual: bool = False) -> LayerKeys:
    return LayerKeys(derive(seed, layer_id, ROLE_LAYER),
                     tuple(derive(seed, layer_id, ROLE_VALUE, k) for k in range(u)),
                     tuple(derive(seed, layer_id, ROLE_DUAL, k) for k in range(u)) if dual else ())


def words(keys: LayerKeys, start: int, stop: int, device, dual: bool = False) -> torch.Tensor:
    """x_k for elements [start, stop): int64 (U, stop - start), values in [0, 2^32)."""
    n = torch.arange(start, stop, dtype=torch.int64, device=device)
    base = mix32(n.add_(keys.key).bitwise_and_(MASK32))
    fk = torch.tensor(keys.dkeys if dual else keys.fkeys, dtype=torch.int64, device=device)
    return mix32(base.unsqueeze(0) ^ fk.unsqueeze(1))


def buckets(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bucket index in [0, size) of hash words x: the top 31 bits scaled (product < 2^31 * 2^30)."""
    return ((x >> 1) * size) >> 31


def codes(keys: LayerKeys, start: int, stop: int, size: int, device, dual: bool = False
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """(bucket int64 (U, n), negative bool (U, n)) of elements [start, stop)."""
    x = words(keys, start, stop, device, dual)
    return buckets(x, size), (x & 1).bool()


def check_sizes(elements: int, size: int, what: str) -> None:
    if elements >= MAX_ELEMENTS:
        raise ValueError(f"{what}: {elements} elements; hashed layers number elements with 32 bits")
    if not 1 <= size < MAX_BUCKETS:
        raise ValueError(f"{what}: {size} buckets is outside 1 .. 2^30")
