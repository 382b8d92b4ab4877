"""The channel rules of functions and tensor methods (F.relu, torch.cat, x.view, aten.pad, onnx_slice, ...),
applied by `channel_groups._Walk` to each node with its real argument values and result.

Each rule returns where the result's channels lie (a `Chan`, None, or a tuple of them for tuple results)
and joins or freezes elements on the walk (`w.union`, `w.freeze`). The principle (channel_ops): pass
channels on only where a removed (zero) channel stays zero and can be left out one by one; freeze
them, naming the operation, wherever that is not certain.
"""

from __future__ import annotations

import torch
from torch import fx

from workbench.models import channel_ops as ops
from workbench.models.channel_ops import Chan, PadSite, arg, is_zero, norm_dim

TRANSPOSES = {"transpose", "permute", "t", "onnx_transpose"}
EXPANDS = {"expand", "expand_as", "onnx_expand"}
SLICES = {"slice", "narrow", "onnx_slice"}


def function_rule(w, n: fx.Node, name: str, args, kwargs, result):
    x = args[0] if args else None
    cx = w.chan(n.args[0]) if n.args else None
    what = f"{name} ({n.name})"
    tensor_out = isinstance(result, torch.Tensor)
    if name in ops.UNARY or _zero_preserving(name, args, kwargs):
        return cx if tensor_out else None
    if name in ops.SPATIAL:
        out = w.spatial(cx, what)
        return (out,) + (None,) * (len(result) - 1) if isinstance(result, tuple) else out
    if name in ops.ADDITIVE or name in ("mul", "div"):
        return _elementwise(w, n, name, args, kwargs, result, what) if tensor_out else None
    rule = _RULES.get(name)
    if rule is None:
        w.freeze_all([w.arg_infos(n.args), w.arg_infos(n.kwargs)], f"they feed {what}")
        return None
    if cx is None and name not in ("cat", "stack", "matmul", "scaled_dot_product_attention"):
        if name in ops.PADS:
            w.pad_count[w.module_of(n)] += 1          # every pad call counts for the site index
        return tuple(None for _ in result) if isinstance(result, (tuple, list)) else None
    return rule(w, n, name, x, cx, args, kwargs, result, what)


def _zero_preserving(name: str, args, kwargs) -> bool:
    if name == "clamp":
        lo, hi = arg(args, kwargs, 1, "min"), arg(args, kwargs, 2, "max")
        return all(v is None or isinstance(v, (int, float)) for v in (lo, hi)) and (
            lo is None or lo <= 0) and (hi is None or hi >= 0)
    if name == "hardtanh":
        lo, hi = arg(args, kwargs, 1, "min_val", -1.0), arg(args, kwargs, 2, "max_val", 1.0)
        return lo <= 0 <= hi
    if name == "pow":
        p = arg(args, kwargs, 1, "exponent")
        return isinstance(p, (int, float)) and p > 0
    return False


def _elementwise(w, n, name, args, kwargs, result, what):
    """add / sub / mul / div with broadcasting: two operands' channels on the same dimension are joined
    (both removed together, so the result's channel is zero); a constant added to channels, or per-channel
    values that could not be thinned with them, freeze them."""
    rank = result.dim()
    a, b = args[0], arg(args, kwargs, 1, "other")
    ca = w.chan(n.args[0])
    cb = w.chan(n.args[1]) if len(n.args) > 1 else w.chan(n.kwargs.get("other"))
    if ca is None and cb is None:
        return None

    def aligned(c, v):
        return c.dim + rank - v.dim()

    if ca is not None and cb is not None:
        da, db = aligned(ca, a), aligned(cb, b)
        if name != "div" and da == db and len(ca.ids) == len(cb.ids):
            for i, j in zip(ca.ids, cb.ids):
                w.union(i, j)
            return Chan(da, ca.ids)
        w.freeze(ca.ids + cb.ids, f"{what} combines channels that do not line up")
        return None
    c, v, other = (ca, a, b) if ca is not None else (cb, b, a)
    d = aligned(c, v)
    if name == "div" and c is cb:
        w.freeze(c.ids, f"{what} divides by them")
    elif ops.per_channel(other, d, rank):
        w.freeze(c.ids, f"{what} combines them with per-channel values that would not be thinned")
    elif name in ops.ADDITIVE and not is_zero(other):
        w.freeze(c.ids, f"{what} adds a constant or an untraced tensor to them (a removed channel would "
                        f"not stay zero)")
    else:
        return Chan(d, c.ids)
    return None


def _matmul(w, n, name, x, cx, args, kwargs, result, what):
    """A @ B: A's last dimension and B's second-to-last are summed over together (joined); A's rows and
    B's columns reach the product (B's are kept track of; A's frozen if both carry channels)."""
    a, b = args[0], args[1]
    ca, cb = cx, w.chan(n.args[1])
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.dim() < 2 or b.dim() < 2:
        w.freeze_all([ca, cb], f"they feed {what}")
        return None
    out, contract = None, []
    rank = result.dim()
    for c, t, rows, cols in ((ca, a, a.dim() - 2, a.dim() - 1), (cb, b, b.dim() - 1, b.dim() - 2)):
        if c is None:
            contract.append(None)
        elif c.dim == cols:                     # summed over
            contract.append(c)
        elif c.dim == rows:
            if out is not None:
                w.freeze(out.ids, f"{what} multiplies two tensors whose channels both reach its result")
            out = Chan(rank - 2 if t is a else rank - 1, c.ids)
            contract.append(None)
        else:
            w.freeze(c.ids, f"they feed {what} along a batch dimension")
            contract.append(None)
    ka, kb = contract
    if ka is not None and kb is not None:
        for i, j in zip(ka.ids, kb.ids):
            w.union(i, j)
    elif ka is not None or kb is not None:
        w.freeze((ka or kb).ids, f"{what} sums them against a tensor that would not be thinned")
    return out


def _cat(w, n, name, x, cx, args, kwargs, result, what):
    tensors, nodes = args[0], n.args[0]
    dim = norm_dim(arg(args, kwargs, 1, "dim", 0), result.dim())
    chans = [w.chan(node) for node in nodes]
    if all(c is None for c in chans):
        return None
    if name == "cat" and any(c is not None and c.dim == dim for c in chans):
        if all(c is None or c.dim == dim for c in chans):
            ids = []
            for t, c in zip(tensors, chans):      # each input's channels keep their offset
                ids.extend(c.ids if c is not None else w.fresh(t.shape[dim], f"{what} joins them with "
                                                                          f"untraced channels"))
            return Chan(dim, tuple(ids))
    elif all(c is not None for c in chans) and len({(c.dim, len(c.ids)) for c in chans}) == 1:
        for c in chans[1:]:                       # along another dimension: channel k is one channel
            for i, j in zip(chans[0].ids, c.ids):
                w.union(i, j)
        d = chans[0].dim
        return Chan(d + (1 if name == "stack" and dim <= d else 0), chans[0].ids)
    w.freeze_all(chans, f"{what} joins them with tensors whose channels differ")
    return None


def _transpose(w, n, name, x, cx, args, kwargs, result, what):
    d, ndim = cx.dim, x.dim()
    if name == "t" or name == "onnx_transpose":
        return Chan(ndim - 1 - d, cx.ids)
    if name == "transpose":
        d0, d1 = (norm_dim(int(v), ndim) for v in (arg(args, kwargs, 1, "dim0"), arg(args, kwargs, 2, "dim1")))
        return Chan(d1 if d == d0 else d0 if d == d1 else d, cx.ids)
    dims = args[1] if len(args) == 2 and isinstance(args[1], (list, tuple)) else args[1:] or kwargs.get("dims")
    return Chan([norm_dim(int(v), ndim) for v in dims].index(d), cx.ids)


def _expand(w, n, name, x, cx, args, kwargs, result, what):
    d = cx.dim + result.dim() - x.dim()
    if result.shape[d] == len(cx.ids):
        return Chan(d, cx.ids)
    w.freeze(cx.ids, f"{what} broadcasts across them")
    return None


def _regroup(w, n, name, x, cx, args, kwargs, result, what):
    mapped = w.regroup(cx, x, result, what)
    if mapped is not None and name in ops.RESHAPES:
        fixed = ops.literal_size_at(n, args, kwargs, name, mapped.dim)
        if fixed is not None:
            w.freeze(cx.ids, f"{what} reshapes to a fixed size of {fixed} on their dimension")
            return None
    return mapped


def _reduce(w, n, name, x, cx, args, kwargs, result, what):
    dims, keep = ops.reduced_dims(name, args, kwargs, x.dim())
    if dims is None or cx.dim in dims:
        kind = args[1] if name == "onnx_reduce" else name
        if kind != "sum":                         # a removed (zero) channel adds nothing to a sum
            w.freeze(cx.ids, f"{what} reduces over them")
        return None
    return Chan(cx.dim if keep else cx.dim - sum(1 for d in dims if d < cx.dim), cx.ids)


def _getitem(w, n, name, x, cx, args, kwargs, result, what):
    mapped, why = ops.index_map(cx, args[1], x.dim())
    if mapped is None:
        w.freeze(cx.ids, f"{what} {why}")
    return mapped


def _slice(w, n, name, x, cx, args, kwargs, result, what):
    if name == "onnx_slice":
        starts = ops.ints_of(args[1])
        axes = ops.ints_of(arg(args, kwargs, 3, "axes")) or list(range(len(starts)))
        steps = ops.ints_of(arg(args, kwargs, 4, "steps")) or [1] * len(starts)
        cut = [(norm_dim(a, x.dim()), s) for a, s in zip(axes, steps)]
    else:
        step = arg(args, kwargs, 4, "step", 1) if name == "slice" else 1
        cut = [(norm_dim(int(arg(args, kwargs, 1, "dim", 0)), x.dim()), step)]
    for d, step in cut:
        if d == cx.dim and (step != 1 or result.shape[d] != x.shape[d]):
            w.freeze(cx.ids, f"{what} takes some of the channels by position")
            return None
    return cx


def _select(w, n, name, x, cx, args, kwargs, result, what):
    d = norm_dim(int(arg(args, kwargs, 1, "dim")), x.dim())
    if d == cx.dim:
        w.freeze(cx.ids, f"{what} picks one channel")
        return None
    return Chan(cx.dim - (1 if d < cx.dim else 0), cx.ids)


def _split(w, n, name, x, cx, args, kwargs, result, what):
    key, pos = ("axis", 2) if name == "onnx_split" else ("dim", 1 if name == "unbind" else 2)
    d = norm_dim(int(arg(args, kwargs, pos, key, 0)), x.dim())
    if d == cx.dim:
        w.freeze(cx.ids, f"{what} splits them at fixed positions")
        return tuple(None for _ in result)
    part = Chan(cx.dim - (1 if name == "unbind" and d < cx.dim else 0), cx.ids)
    return tuple(part for _ in result)


def _pad(w, n, name, x, cx, args, kwargs, result, what):
    """Zero padding of the channels adds always-zero channels: passed on, and the pad site recorded so
    that its amounts follow the channels removed around it (thinning.py)."""
    module = w.module_of(n)
    index = w.pad_count[module]
    w.pad_count[module] += 1
    pad, mode, value = ops.pad_args(name, args, kwargs)
    pair = x.dim() - 1 - cx.dim
    if mode == "constant" and not (value is None or is_zero(value)):
        w.freeze(cx.ids, f"{what} pads with {value}, so a removed channel would not stay zero")
        return None
    if pair >= len(pad) // 2 or pad[2 * pair] == pad[2 * pair + 1] == 0:
        return cx
    before, after = pad[2 * pair], pad[2 * pair + 1]
    if mode != "constant" or before < 0 or after < 0:
        w.freeze(cx.ids, f"{what} pads or crops the channels other than with zeros")
        return None
    ids_before, ids_after = w.fresh(before), w.fresh(after)
    ids = ids_before + cx.ids + ids_after
    if module is None:
        w.freeze(ids, f"{what} pads the channels in the model's own forward, which cannot be rebuilt thinner")
    else:
        w.pads.append(PadSite(module, index, pad, pair, list(ids_before), list(ids_after)))
    return Chan(cx.dim, ids)


def _attention(w, n, name, x, cx, args, kwargs, result, what):
    """scaled_dot_product_attention(q, k, v): q and k are summed over together; v's channels reach the
    output."""
    cq, ck, cv = (w.chan(a) for a in n.args[:3])
    if cq is not None and ck is not None and cq.dim == args[0].dim() - 1 and ck.dim == args[1].dim() - 1:
        for i, j in zip(cq.ids, ck.ids):
            w.union(i, j)
    else:
        w.freeze_all([cq, ck], f"they feed {what}")
    w.freeze_all([w.arg_infos(n.args[3:]), w.arg_infos(n.kwargs)], f"they feed {what}")
    if cv is not None and cv.dim == args[2].dim() - 1:
        return Chan(result.dim() - 1, cv.ids)
    w.freeze_all(cv, f"they feed {what}")
    return None


_RULES = {"matmul": _matmul, "cat": _cat, "stack": _cat, "getitem": _getitem, "select": _select,
          "scaled_dot_product_attention": _attention,
          **{k: _transpose for k in TRANSPOSES}, **{k: _expand for k in EXPANDS},
          **{k: _regroup for k in ops.REGROUPS | ops.RESHAPES}, **{k: _reduce for k in ops.REDUCTIONS},
          **{k: _slice for k in SLICES}, **{k: _split for k in ops.SPLITS}, **{k: _pad for k in ops.PADS}}
