"""Runtime helpers with ONNX semantics, called from the module that `onnx_graph` builds.

They are leaves for torch.fx (`fx.wrap` here, and the converter marks their nodes "is_wrapped" so the
GraphModule's generated code wraps them too), so a traced copy keeps them as single calls.
"""

from __future__ import annotations

import torch
from torch import fx


def ints(v) -> list[int]:
    if isinstance(v, torch.Tensor):
        return [int(i) for i in v.reshape(-1).tolist()]
    return [int(i) for i in v]


def onnx_div(a, b):
    if isinstance(a, torch.Tensor) and not a.is_floating_point() and not (
            isinstance(b, torch.Tensor) and b.is_floating_point()):
        return torch.div(a, b, rounding_mode="trunc")
    return torch.true_divide(a, b)


def onnx_mod(a, b, fmod: int = 0):
    return torch.fmod(a, b) if fmod else torch.remainder(a, b)


def onnx_cast(x, dtype: torch.dtype):
    return x.to(dtype)


def onnx_cast_like(x, like):
    return x.to(like.dtype)


def onnx_flatten(x, axis: int):
    axis = axis + x.dim() if axis < 0 else axis
    lead = 1
    for d in x.shape[:axis]:
        lead *= d
    return x.reshape(lead, -1)


def onnx_reshape(x, shape, allowzero: int = 0):
    shape = ints(shape)
    if not allowzero:
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return torch.reshape(x, shape)


def onnx_transpose(x):
    return x.permute(*reversed(range(x.dim())))


def onnx_unsqueeze(x, axes):
    axes = ints(axes)
    rank = x.dim() + len(axes)
    for a in sorted(a + rank if a < 0 else a for a in axes):
        x = x.unsqueeze(a)
    return x


def onnx_squeeze(x, axes=None):
    if axes is None:
        return x.squeeze()
    axes = [a + x.dim() if a < 0 else a for a in ints(axes)]
    for a in sorted(axes, reverse=True):
        x = x.squeeze(a)
    return x


def onnx_shape(x, start: int = 0, end: int | None = None):
    return torch.tensor(list(x.shape)[start:end], dtype=torch.int64)


def onnx_slice(x, starts, ends, axes=None, steps=None):
    starts, ends = ints(starts), ints(ends)
    axes = list(range(len(starts))) if axes is None else ints(axes)
    steps = [1] * len(starts) if steps is None else ints(steps)
    index = [slice(None)] * x.dim()
    backwards = []
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = a + x.dim() if a < 0 else a
        n = x.shape[a]
        if st == 0:
            raise RuntimeError("Slice with a step of 0")
        if st < 0:
            # Negative steps (torch's exporter reverses a pads list this way): ONNX clamps as Python's
            # slicing of range(n) does, and torch indexing has no negative steps, so select the indices.
            backwards.append((a, list(range(n))[s:e:st]))
            continue
        s = max(0, min(n, s + n if s < 0 else s))
        e = max(0, min(n, e + n if e < 0 else e))
        index[a] = slice(s, e, st)
    x = x[tuple(index)]
    for a, idx in backwards:
        x = x.index_select(a, torch.tensor(idx, dtype=torch.long, device=x.device))
    return x


def onnx_gather(data, indices, axis: int = 0):
    axis = axis + data.dim() if axis < 0 else axis
    n = data.shape[axis]
    idx = indices.long()
    idx = torch.where(idx < 0, idx + n, idx)
    out = data.index_select(axis, idx.reshape(-1))
    return out.reshape(list(data.shape[:axis]) + list(indices.shape) + list(data.shape[axis + 1:]))


def onnx_split(x, split=None, axis: int = 0, num_outputs: int = 0):
    if split is not None:
        return tuple(torch.split(x, ints(split), dim=axis))
    n = x.shape[axis]
    size = -(-n // num_outputs)
    return tuple(torch.split(x, size, dim=axis))


def onnx_expand(x, shape):
    return x.expand(torch.broadcast_shapes(tuple(x.shape), tuple(ints(shape))))


def onnx_constant_of_shape(shape, value):
    return torch.full(ints(shape), value.reshape(-1)[0].item(), dtype=value.dtype, device=value.device)


def onnx_range(start, limit, delta):
    return torch.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype, device=start.device)


def onnx_reduce(x, kind: str, axes=None, keepdims: int = 1, noop: int = 0):
    if axes is not None:
        axes = ints(axes)
    if not axes:
        if noop:
            return x
        axes = list(range(x.dim()))
    fn = torch.mean if kind == "mean" else torch.sum
    return fn(x, dim=axes, keepdim=bool(keepdims))


def onnx_reduce_max(x, axes=None, keepdims: int = 1):
    axes = list(range(x.dim())) if not axes else ints(axes)
    return torch.amax(x, dim=axes, keepdim=bool(keepdims))


def onnx_softmax_2d(x, axis: int, log: int = 0):
    """Softmax of opsets below 13: over all dims from `axis` on, flattened."""
    shape = x.shape
    flat = x.reshape(*shape[:axis], -1) if axis > 0 else x.reshape(1, -1)
    out = torch.log_softmax(flat, -1) if log else torch.softmax(flat, -1)
    return out.reshape(shape)


def onnx_global_pool(x, kind: str):
    dims = list(range(2, x.dim()))
    return x.mean(dim=dims, keepdim=True) if kind == "avg" else torch.amax(x, dim=dims, keepdim=True)


def onnx_gemm(a, b, c=None, alpha: float = 1.0, beta: float = 1.0, trans_a: int = 0, trans_b: int = 0):
    a = a.transpose(0, 1) if trans_a else a
    b = b.transpose(0, 1) if trans_b else b
    out = alpha * (a @ b)
    return out if c is None else out + beta * c


HELPERS = [name for name in list(globals()) if name.startswith("onnx_")]
for _name in HELPERS:
    fx.wrap(_name)
