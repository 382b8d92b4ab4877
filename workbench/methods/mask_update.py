"""DNS's mask update (Guo et al. 2016, eq. 3) in one pass over a layer's weights, writing W ⊙ T on the way.

h_k(W, T) sets T = 0 where |W| < a_k, T = 1 where |W| >= b_k and leaves T in between. Early in a stage
the paper's update probability is about 1, so this runs after nearly every step. Written as PyTorch
operations (abs, two comparisons, masked fills, counts) it took 2.3 ms on LeNet-300-100, as long as the
rest of the training step (tests/benchmarks/bench_step_cost.py, 1 thread). The C loop below reads each
weight and mask entry once, updates the mask in place, counts what changed and writes the masked weight
W ⊙ T that the next forward reads (methods/per_layer.MaskedValue), so the forward multiplies nothing: the
whole pass costs about what the multiply alone did. The mask is held as bytes (uint8 0/1): inside a
training step, with the caches cold from the backward pass, a float mask's four bytes an entry read and
written each step cost about 0.1 ms a step more on LeNet-300-100 (and PyTorch multiplies float by uint8
nearly as fast as float by float; by bool, 5x slower). `MaskUpdates` runs the loop for all of a model's
masked tensors in one native call a step (a call per tensor cost 5-8 us of Python each, as much as the
arithmetic of a small layer). Where it cannot be built (no compiler, WORKBENCH_NATIVE=torch) or a tensor
is not contiguous on the CPU, the same rule runs in PyTorch, with the same results.
"""

from __future__ import annotations

import ctypes
import os
import threading
from typing import TYPE_CHECKING

import torch

from workbench.models import native

if TYPE_CHECKING:
    from workbench.methods.per_layer import MaskedValue

SOURCE = r"""
#include <stdint.h>
#include <math.h>
#define BLOCK (1 << 20)
/* mask: the layer's 0/1 mask as bytes, updated in place. counts[0] += entries changed, counts[1] +=
   entries kept now minus kept before. NaN weights compare false both ways and are pruned, as in the
   PyTorch path. out (when `write`): receives w * t, the W ⊙ T the forward reads, in the same pass (NaN * 0
   stays NaN and -w * 0 is -0, as PyTorch's product gives). */
static inline __attribute__((always_inline)) void pass(const float *w, uint8_t *mask, float *out, int64_t n,
                                                       float a, float b, int64_t *counts, const int write) {
    /* counted in int32 over blocks of 2^20 entries, added to the int64 totals after each: with int64
       lanes the vectorised loop widened every comparison and took 1.5x as long (68 against 44 us on
       LeNet-300-100's weights, about a plain multiply's time) */
    for (int64_t start = 0; start < n; start += BLOCK) {
        int64_t end = n - start < BLOCK ? n : start + BLOCK;
        int32_t changed = 0, gained = 0;
        #pragma omp simd reduction(+:changed,gained)
        for (int64_t i = start; i < end; i++) {
            float v = w[i], x = fabsf(v);
            int32_t k = mask[i] != 0;
            int32_t t = (x >= b) | (k & (x >= a));
            changed += t ^ k;
            gained += t - k;
            mask[i] = (uint8_t)t;
            if (write)
                out[i] = v * (float)t;
        }
        counts[0] += changed;
        counts[1] += gained;
    }
}

void dns_update(const float *w, uint8_t *mask, float *out, int64_t n, float a, float b, int64_t *counts) {
    if (out)
        pass(w, mask, out, n, a, b, counts, 1);
    else
        pass(w, mask, out, n, a, b, counts, 0);
}

/* table: `count` rows of (w, mask, out, n, counts) as integers; ab: (a, b) per row. update = 0: only
   out = w * mask (a step without a mask update still moved W). */
void dns_update_many(int64_t count, const int64_t *table, const float *ab, int update) {
    for (int64_t j = 0; j < count; j++) {
        const int64_t *r = table + 5 * j;
        const float *w = (const float *)(intptr_t)r[0];
        uint8_t *mask = (uint8_t *)(intptr_t)r[1];
        float *out = (float *)(intptr_t)r[2];
        int64_t n = r[3];
        if (update) {
            pass(w, mask, out, n, ab[2 * j], ab[2 * j + 1], (int64_t *)(intptr_t)r[4], 1);
        } else {
            #pragma omp simd
            for (int64_t i = 0; i < n; i++)
                out[i] = w[i] * (float)mask[i];
        }
    }
}
"""

_lock = threading.Lock()
_library = []           # [the loaded library or None], filled on first use


def _native():
    """The loaded kernels (dns_update, dns_update_many), or None: PyTorch does the work."""
    if os.environ.get("WORKBENCH_NATIVE", "").lower() == "torch":
        return None
    with _lock:
        if not _library:
            path = native.build(SOURCE, "dns-mask")
            lib = None
            if path is not None:
                try:
                    lib = ctypes.CDLL(str(path))
                    lib.dns_update.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                               ctypes.c_float, ctypes.c_float, ctypes.c_void_p]
                    lib.dns_update.restype = None
                    lib.dns_update_many.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
                    lib.dns_update_many.restype = None
                except (OSError, AttributeError) as exc:
                    native.note_error(f"cannot load {path}: {exc}")
                    lib = None
            _library.append(lib)
        return _library[0]


def _native_ok(t: torch.Tensor, dtype: torch.dtype = torch.float32) -> bool:
    return t.device.type == "cpu" and t.dtype == dtype and t.is_contiguous()


def _counts_ok(counts: torch.Tensor) -> bool:
    return counts.device.type == "cpu" and counts.dtype == torch.int64 and counts.is_contiguous()


def update(weight: torch.Tensor, mask: torch.Tensor, a: float, b: float, counts: torch.Tensor,
           out: torch.Tensor | None = None) -> None:
    """Apply h_k to the 0/1 `mask` in place from `weight`; add [changed, gained] into the int64 tensor
    `counts` (pruned = (changed - gained) / 2, spliced = (changed + gained) / 2). `out`, if given (shaped
    like `weight`), receives weight * mask with the new mask. The native loop takes a uint8 mask (DNS's);
    a mask of another dtype, like any tensor it cannot take, gets the same rule in PyTorch."""
    lib = _native()
    if (lib is not None and _native_ok(weight) and _native_ok(mask, torch.uint8)
            and (out is None or _native_ok(out)) and _counts_ok(counts)):
        lib.dns_update(weight.data_ptr(), mask.data_ptr(), None if out is None else out.data_ptr(),
                       weight.numel(), a, b, counts.data_ptr())
        return
    w = weight.abs()
    keep = mask != 0
    new = w >= b
    new |= keep & (w >= a)
    # count_nonzero, not sum: a bool sum first converts the mask to int64. No masked_fill_ and no
    # float-by-bool product: on the CPU each took 25x a float multiply (860 against 33 us on 300x784).
    counts += torch.stack((torch.count_nonzero(new ^ keep),
                           torch.count_nonzero(new) - torch.count_nonzero(keep))).to(counts.device)
    mask.copy_(new)
    if out is not None:
        torch.mul(weight, mask, out=out)


class MaskUpdates:
    """The mask updates of several tensors, run together after each step.

    `entries`: (weight, mask, masked, a, b, counts): `masked` is the weight's per_layer.MaskedValue, the
    kept W ⊙ T its forward reads. `run(True)` applies h_k to every mask and writes W ⊙ T; `run(False)`
    only writes W ⊙ T (W moved, T did not). Either way each MaskedValue is then marked fresh. The entries
    the native kernel can take go in one call. Its table of data pointers is rebuilt whenever a tensor's
    storage changed (moved, reallocated), found by comparing the pointers each run; whether the kernel is
    used at all (WORKBENCH_NATIVE, a build) is decided when the table is built, not looked up each step:
    after the step's arithmetic, the Python around it is what costs (looking up the environment took
    about 10 us a step with the caches cold from the backward pass)."""

    def __init__(self, entries: list[tuple[torch.Tensor, torch.Tensor, MaskedValue, float, float, torch.Tensor]]):
        self.entries = list(entries)
        self._key: list[int] | None = None
        self._lib = self._table = self._ab = None
        self._count = 0
        self._rest: list = []

    def _pointers(self) -> list[int]:
        """(W, T, counts, W ⊙ T) data pointers, entry after entry."""
        return [p for w, m, v, _, _, c in self.entries
                for p in (w.data_ptr(), m.data_ptr(), c.data_ptr(), v.value.data_ptr())]

    def _build(self) -> None:
        for w, _, v, _, _, _ in self.entries:
            v.buffer(w)                    # (re)allocated like W where W moved
        self._lib = _native()
        fast = [e for e in self.entries if self._lib is not None and _native_ok(e[0])
                and _native_ok(e[1], torch.uint8) and _native_ok(e[2].value) and _counts_ok(e[5])]
        self._rest = [e for e in self.entries if not any(e is f for f in fast)]
        self._count = len(fast)
        self._table = torch.tensor([[w.data_ptr(), m.data_ptr(), v.value.data_ptr(), w.numel(), c.data_ptr()]
                                    for w, m, v, _, _, c in fast], dtype=torch.int64).reshape(-1, 5)
        self._ab = torch.tensor([[a, b] for _, _, _, a, b, _ in fast], dtype=torch.float32).reshape(-1, 2)
        self._key = self._pointers()

    def run(self, update_masks: bool) -> None:
        key = None if self._key is None else self._pointers()
        if key is None or key != self._key:
            self._build()
            key = self._key
        if self._count:
            self._lib.dns_update_many(self._count, self._table.data_ptr(), self._ab.data_ptr(), int(update_masks))
        for weight, mask, masked, a, b, counts in self._rest:
            out = masked.buffer(weight)
            if update_masks:
                update(weight, mask, a, b, counts, out)
            else:
                torch.mul(weight, mask, out=out)
        for i, (weight, mask, masked, _, _, _) in enumerate(self.entries):
            # the pointers just compared are W's and T's now (the kernel writes in place)
            masked.mark_fresh(weight, mask, key[4 * i], key[4 * i + 1])
