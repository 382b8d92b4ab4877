"""The native CPU kernel of hashed layers: kernel.c completed for one configuration, compiled with the
system C compiler, loaded by ctypes. g's parameter layout (g_layout) is defined here, and g's C code is
generated here from it (element_code); the hash itself is written in kernel.c.

Why native: a virtual weight costs one integer hash per hash function, U table reads and g's few
multiply-adds; as separate PyTorch operations each of those is a pass over memory (on LeNet-300-100 an
eager int64 hash alone took longer than a dense training step), while one fused loop per element costs
about a nanosecond per hash function (kernel.c). Nothing per element is kept between the forward and
the backward pass, so training memory stays that of the virtual weights the layer's matmul needs anyway.

One shared object per configuration (U, g's widths and activation, dual space), built on first use into
the workbench cache (`WORKBENCH_CACHE` or the platform cache dir) under a name hashing its source and
flags (models/native.py builds it); building takes about a second. Without a working C compiler (or with WORKBENCH_HASH_KERNEL=torch)
`load` returns None and the layers use the PyTorch path, which computes the same integers.
Threads: where torch runs on GNU OpenMP (its Linux wheels), the kernel is built with -fopenmp and linked to
torch's own libgomp, so a layer's elements are split over torch's intra-op threads (`torch.get_num_threads()`);
elsewhere it runs on the calling thread. A pool of our own threads would compete with torch's, which spin
for a while after every operation: with one, a two-thread backward took as long as a one-thread one.
"""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path

import torch

from workbench.models import native
from workbench.models.native import cache_dir, openmp_runtimes  # noqa: F401 - this module's API

SOURCE = Path(__file__).with_name("kernel.c")
ACTIVATIONS = {"linear": 0, "tanh": 1, "relu": 2}
FLAG_SETS = native.FLAG_SETS    # -fno-trapping-math matters here: g's tanh clamp (see native.py)
# elements per thread; with torch's OpenMP team already running, 2 threads beat 1 from 4096 elements
# (measured: 12 against 20 us forward, 25 against 38 us backward)
MIN_PER_THREAD = 1 << 12

_lock = threading.Lock()
_loaded: dict[tuple, "Kernel | None"] = {}


def g_layout(u: int, widths: tuple[int, ...]) -> list[tuple[int, int, int, int | None]]:
    """g's layers in its flat parameter vector, as (fan_in, width, weight offset, bias offset or None):
    each layer's weight (width x fan_in, row-major), then its bias, as nn.Linear holds them; the output
    layer has no bias. layers.Reconstruction builds its layers from this, and the kernel reads g by it."""
    out, fan_in, p = [], u, 0
    for i, width in enumerate(widths):
        bias = p + width * fan_in if i + 1 < len(widths) else None
        out.append((fan_in, width, p, bias))
        p += width * fan_in + (width if bias is not None else 0)
        fan_in = width
    return out


def g_param_count(u: int, widths: tuple[int, ...]) -> int:
    """Weights and biases of g's layers (g_layout)."""
    return sum(fan_in * width + (width if bias is not None else 0) for fan_in, width, _, bias in g_layout(u, widths))


def element_code(u: int, widths: tuple[int, ...], dual: bool, backward: bool) -> str:
    """Straight-line C for element e of a block: its U signed values from the fetched block arrays, g
    forward (and backward). g's one definition in C: hidden layers act(W x + b), the output layer W x
    (layers.Reconstruction.apply_to is the same network in PyTorch)."""
    lines = []
    for k in range(u):
        lines.append(f"const float s{k} = sg[{k}][e];")
        if dual:
            lines += [f"const float r{k} = s{k} * fv[{k}][e];", f"const float q{k} = dv[{k}][e];",
                      f"const float f{k} = r{k} * q{k};"]
        else:
            lines.append(f"const float f{k} = s{k} * fv[{k}][e];")
    layout = g_layout(u, widths)
    names, inputs = [f"f{k}" for k in range(u)], []
    for layer, (win, wo, w, b) in enumerate(layout):
        outs = []
        for o in range(wo):
            terms = [f"G[{w + o * win + i}] * {names[i]}" for i in range(win)]
            expr = " + ".join(([f"G[{b + o}]"] if b is not None else []) + terms)
            if layer + 1 < len(layout):
                expr = f"act({expr})"
            lines.append(f"const float a{layer}_{o} = {expr};")
            outs.append(f"a{layer}_{o}")
        inputs.append(names)
        names = outs
    lines.append(f"const float v = {' + '.join(names)};")
    if not backward:
        return "\n".join("            " + s for s in lines)
    d = ["d0"] * (1 if layout else u)
    for layer in reversed(range(len(layout))):
        win, wo, w, b = layout[layer]
        ins = inputs[layer]
        for o in range(wo):
            if b is not None:
                lines.append(f"acc[{b + o} * BS + e] += {d[o]};")
            lines += [f"acc[{w + o * win + i} * BS + e] += {d[o]} * {ins[i]};" for i in range(win)]
        nd = []
        for i in range(win):
            expr = " + ".join(f"G[{w + o * win + i}] * {d[o]}" for o in range(wo))
            if layer > 0:
                expr = f"({expr}) * dact({ins[i]})"
            lines.append(f"const float d{layer}_{i} = {expr};")
            nd.append(f"d{layer}_{i}")
        d = nd
    for k in range(u):
        lines.append(f"gv[{k}][e] = {f's{k} * q{k}' if dual else f's{k}'} * {d[k]};")
        if dual:
            lines.append(f"dgv[{k}][e] = r{k} * {d[k]};")
    lines.append("(void)v;")
    return "\n".join("            " + s for s in lines)


def source(u: int, widths: tuple[int, ...], activation: str, dual: bool) -> str:
    head = (f"#define HF_U {u}\n#define HF_NG {g_param_count(u, widths)}\n"
            f"#define HF_ACT {ACTIVATIONS[activation]}\n#define HF_DUAL {int(dual)}\n")
    text = SOURCE.read_text()
    text = text.replace("/*@FORWARD@*/", element_code(u, widths, dual, backward=False))
    text = text.replace("/*@BACKWARD@*/", element_code(u, widths, dual, backward=True))
    return head + text


F = ctypes.c_void_p
I64, U32, INT = ctypes.c_int64, ctypes.c_uint32, ctypes.c_int


class Kernel:
    """The loaded functions of one configuration."""

    def __init__(self, path: Path, u: int, n_g: int):
        before = native.openmp_runtimes()
        lib = ctypes.CDLL(str(path))
        common = [I64, I64, INT, U32, F, F, I64, I64, F, F, F]
        self.forward_fn = lib.hf_forward
        self.forward_fn.argtypes = common + [F]
        self.backward_fn = lib.hf_backward
        self.backward_fn.argtypes = common + [F, F, F, F]
        for fn in (self.forward_fn, self.backward_fn):
            fn.restype = INT
        self.tanh_fn = lib.hf_tanh
        self.tanh_fn.argtypes = [F, F, I64]
        self.u, self.n_g = u, n_g
        self.path = path
        # threads only in torch's own runtime: a second one would run its team beside torch's
        self.openmp = len(before) == 1 and native.openmp_runtimes() == before and _links_openmp(path)
        self.team = 0                               # the team size of the latest call (for tests)

    def threads(self, count: int, buffer: int = 0) -> int:
        """Threads for `count` elements; in the backward pass each extra thread also zeroes and adds up
        a `buffer` of bucket gradients (the whole table), so it needs at least that many elements."""
        per = max(MIN_PER_THREAD, buffer)
        return max(1, min(torch.get_num_threads(), count // per)) if self.openmp else 1


def _links_openmp(path: Path) -> bool:
    return b"GOMP_parallel" in path.read_bytes()


def load(u: int, widths: tuple[int, ...], activation: str, dual: bool) -> Kernel | None:
    """The kernel of this configuration, built on first use; None where it cannot be built."""
    if os.environ.get("WORKBENCH_HASH_KERNEL", "").lower() == "torch":
        return None
    config = (u, tuple(widths), activation, bool(dual), str(cache_dir()))
    with _lock:
        if config not in _loaded:
            path = native.build(source(u, tuple(widths), activation, dual), "hashing", FLAG_SETS)
            try:
                _loaded[config] = Kernel(path, u, g_param_count(u, widths)) if path else None
            except OSError as exc:
                native.note_error(f"cannot load {path}: {exc}")
                _loaded[config] = None
        return _loaded[config]


def last_error() -> str:
    return native.last_error()


def _ptr(t: torch.Tensor | None):
    return None if t is None else t.data_ptr()


def _keys(values):
    return (ctypes.c_uint32 * len(values))(*[int(v) for v in values]) if values else None


def _inputs(count: int, threads: int, keys, size: int, dual_size: int, table, dual, g) -> list:
    """The arguments both entry points begin with (the key arrays go as ctypes arrays, alive for the call)."""
    return [I64(0), I64(count), INT(threads), U32(keys.key), _keys(keys.fkeys), _keys(keys.dkeys), I64(size),
            I64(dual_size), _ptr(table), _ptr(dual), _ptr(g)]


def forward(kernel: Kernel, count: int, keys, size: int, dual_size: int, table: torch.Tensor,
            dual: torch.Tensor | None, g: torch.Tensor | None) -> torch.Tensor:
    """The layer's `count` virtual values (contiguous float32 CPU tensors in, one out)."""
    out = torch.empty(count, dtype=torch.float32)
    kernel.team = kernel.forward_fn(*_inputs(count, kernel.threads(count), keys, size, dual_size, table, dual, g),
                                    _ptr(out))
    return out


def backward(kernel: Kernel, grad: torch.Tensor, keys, size: int, dual_size: int, table: torch.Tensor,
             dual: torch.Tensor | None, g: torch.Tensor | None
             ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(dL/dtable, dL/ddual, dL/dg flat) from dL/dV."""
    count = grad.numel()
    # the kernel writes (not adds) all three, zeroing them in the thread that fills them
    gt = torch.empty_like(table)
    gd = torch.empty_like(dual) if dual is not None else None
    gg = torch.empty(max(kernel.n_g, 1), dtype=torch.float32)
    threads = kernel.threads(count, size + dual_size)
    team = kernel.backward_fn(*_inputs(count, threads, keys, size, dual_size, table, dual, g), _ptr(grad), _ptr(gt),
                              _ptr(gd), _ptr(gg))
    if team < 0:
        raise MemoryError("hashed layer: no memory left for the per-thread bucket gradients")
    kernel.team = team
    return gt, gd, (gg if kernel.n_g else None)
