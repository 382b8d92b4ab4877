"""How each operation of a traced model treats channels: the rules `channel_groups` applies node by node.

A tensor's tracked channels are one dimension (`Chan.dim`) whose every index is an element of the
union-find in `channel_groups` (`Chan.ids`); `None` means the tensor carries no channel of a layer that
could be removed (the model's input, attention scores, constants). Removing a channel group is exact
only when every element of the group is exactly zero in the masked model and stays zero through every
operation it passes, so an operation is passed through only when it maps zero channels to zero
channels one by one (ReLU, pooling, an addition of two channels that are removed together, ...). Any
operation not known here freezes the channels it touches: they stay, with the operation named as the
reason. Rules read the node's real argument values and result (the analysis runs the model once), so
shapes are exact.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import torch
from torch import fx, nn

# f(0) = 0, elementwise: a removed (zero) channel stays zero, on whichever dimension the channels lie.
UNARY = {
    "relu", "relu6", "gelu", "silu", "tanh", "hardswish", "leaky_relu", "elu", "celu", "selu", "mish",
    "softsign", "neg", "abs", "round", "sqrt", "erf", "sin", "dropout", "dropout1d", "dropout2d",
    "dropout3d", "feature_dropout", "alpha_dropout", "contiguous", "clone", "detach", "alias", "to",
    "_to_copy", "type_as", "float", "double", "half", "onnx_cast", "onnx_cast_like", "identity",
}
# Act on the dimensions after the channels (dim 1) and keep a zero channel zero.
SPATIAL = {
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d",
    "adaptive_max_pool2d", "max_pool2d_with_indices", "interpolate", "upsample_nearest2d",
    "upsample_bilinear2d", "onnx_global_pool",
}
UNARY_MODULES = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Tanh, nn.Hardswish, nn.LeakyReLU, nn.ELU, nn.CELU,
                 nn.SELU, nn.Mish, nn.Softsign, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
                 nn.AlphaDropout, nn.Identity)
SPATIAL_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
                   nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
                   nn.AdaptiveMaxPool2d, nn.Upsample)
ADDITIVE = {"add", "sub", "rsub"}
RESHAPES = {"view", "reshape", "_unsafe_view", "onnx_reshape"}         # shape given as numbers
REGROUPS = {"flatten", "onnx_flatten", "unsqueeze", "squeeze", "onnx_unsqueeze", "onnx_squeeze", "unflatten"}
SHAPE_QUERIES = {"size", "dim", "numel", "sym_size", "onnx_shape", "getattr"}
REDUCTIONS = {"mean", "sum", "amax", "amin", "onnx_reduce", "onnx_reduce_max"}
PADS = {"pad", "constant_pad_nd"}
SPLITS = {"split", "split_with_sizes", "chunk", "unbind", "onnx_split", "tensor_split"}
_RENAMED = {"iadd": "add", "isub": "sub", "imul": "mul", "itruediv": "div", "truediv": "div",
            "true_divide": "div", "onnx_div": "div", "concat": "cat", "concatenate": "cat", "bmm": "matmul",
            "mm": "matmul", "swapaxes": "transpose", "clip": "clamp", "_unsafe_view": "view"}


@dataclass(frozen=True)
class Chan:
    dim: int                    # the dimension the channels lie on (non-negative)
    ids: tuple[int, ...]        # one union-find element per index along it


@dataclass
class PadSite:
    """Zero padding of the channel dimension, rewritten when channels go (models/thinning.py)."""
    module: str                # the module whose own graph holds the pad ("": the root GraphModule)
    index: int                 # the index-th pad call directly in that module's graph
    arg: list[int]             # the pad amounts as traced
    pair: int                  # which (before, after) pair of them pads the channels
    before: list[int] = field(default_factory=list)    # elements of the zero channels it adds
    after: list[int] = field(default_factory=list)


def op_name(node: fx.Node) -> str:
    """One name per operation, whatever namespace it came from: F.relu, torch.relu, Tensor.relu_,
    aten.relu.default and operator.iadd-like spellings all read as the plain operation."""
    t = node.target
    if node.op == "call_function":
        packet = getattr(t, "overloadpacket", None)           # an ATen OpOverload (.pt2 graphs)
        name = packet.__name__ if packet is not None else getattr(t, "__name__", str(t))
    else:
        name = str(t)
    if name.endswith("_") and not name.startswith("_"):
        name = name[:-1]                                      # in-place variants: relu_, add_
    return _RENAMED.get(name, name)


def arg(args, kwargs, i: int, key: str, default=None):
    if len(args) > i:
        return args[i]
    return kwargs.get(key, default)


def norm_dim(d: int, ndim: int) -> int:
    return d + ndim if d < 0 else d


def ints_of(v) -> list[int]:
    """A list of ints from a tensor, a sequence or None (empty)."""
    if v is None:
        return []
    if isinstance(v, torch.Tensor):
        return [int(i) for i in v.reshape(-1).tolist()]
    return [int(i) for i in v]


def is_zero(v) -> bool:
    return isinstance(v, numbers.Number) and not isinstance(v, bool) and v == 0


def per_channel(value, chan_dim: int, ndim: int) -> bool:
    """Whether a tensor operand without traced channels holds its own value per channel (its size on the
    channel dimension, aligned from the right, is more than 1): it could not be thinned with them."""
    if not isinstance(value, torch.Tensor) or value.dim() == 0:
        return False
    d = chan_dim - (ndim - value.dim())
    return d >= 0 and value.shape[d] > 1


def reshape_map(chan: Chan, before: tuple[int, ...], after: tuple[int, ...]) -> tuple[Chan | None, int]:
    """Where the channels lie after a reshape: the same dimension with other dimensions merged or split
    around it, or merged with the dimensions right after it (each channel then a block of columns, as in
    conv -> flatten -> linear). (None, -1) when the reshape cuts through the channels."""
    d, c = chan.dim, before[chan.dim]
    lead, tail = math.prod(before[:d]), math.prod(before[d + 1:])
    for k in range(len(after)):
        if math.prod(after[:k]) != lead:
            continue
        if after[k] == c and math.prod(after[k + 1:]) == tail:
            return Chan(k, chan.ids), k
        for e in range(d + 2, len(before) + 1):
            if after[k] == c * math.prod(before[d + 1:e]) and after[k] > c:
                block = after[k] // c
                return Chan(k, tuple(i for i in chan.ids for _ in range(block))), k
    return None, -1


def index_map(chan: Chan, index, ndim: int) -> tuple[Chan | None, str]:
    """Channels after `tensor[index]`: passed on when the index takes all of them; (None, why) when it
    picks or slices channels (fixed positions that removal would shift) or indexes with tensors."""
    index = index if isinstance(index, tuple) else (index,)
    if any(isinstance(i, (torch.Tensor, list)) for i in index):
        return None, "indexes with a tensor"
    explicit = sum(1 for i in index if i is not None and i is not Ellipsis)
    expanded = []
    for i in index:
        expanded.extend([slice(None)] * (ndim - explicit) if i is Ellipsis else [i])
    in_dim = out_dim = 0
    for i in expanded:
        if i is None:
            out_dim += 1
            continue
        if in_dim == chan.dim:
            if isinstance(i, slice) and i.start in (None, 0) and i.step in (None, 1) and (
                    i.stop is None or i.stop >= len(chan.ids)):
                return Chan(out_dim, chan.ids), ""
            return None, "takes some of the channels by position"
        in_dim += 1
        out_dim += 0 if isinstance(i, int) else 1
    return Chan(out_dim + chan.dim - in_dim, chan.ids), ""


def reduced_dims(name: str, args, kwargs, ndim: int) -> tuple[list[int] | None, bool]:
    """(dimensions reduced (None: all), keepdim) of a reduction."""
    if name == "onnx_reduce":
        axes, keep = arg(args, kwargs, 2, "axes"), bool(arg(args, kwargs, 3, "keepdims", 1))
    elif name == "onnx_reduce_max":
        axes, keep = arg(args, kwargs, 1, "axes"), bool(arg(args, kwargs, 2, "keepdims", 1))
    else:
        axes, keep = arg(args, kwargs, 1, "dim"), bool(arg(args, kwargs, 2, "keepdim", False))
    if axes is None or (isinstance(axes, (list, tuple)) and not axes):
        return None, keep
    if isinstance(axes, torch.Tensor):
        axes = axes.reshape(-1).tolist()
    axes = [axes] if isinstance(axes, int) else list(axes)
    return [norm_dim(int(a), ndim) for a in axes], keep


def pad_args(name: str, args, kwargs) -> tuple[list[int], str, object]:
    """(the pad amounts, mode, fill value) of F.pad / aten.pad / aten.constant_pad_nd."""
    pad = [int(p) for p in arg(args, kwargs, 1, "pad")]
    if name == "constant_pad_nd":
        return pad, "constant", arg(args, kwargs, 2, "value", 0)
    return pad, arg(args, kwargs, 2, "mode", "constant"), arg(args, kwargs, 3, "value", None)


def literal_size_at(node: fx.Node, args, kwargs, name: str, position: int) -> int | None:
    """The size a reshape is told to give dimension `position` when it is a fixed number (not -1, and
    not ONNX's 0 = 'as the input'); None when it is computed or free. A fixed channel count would not fit
    once channels are removed."""
    if name == "onnx_reshape":
        shape_arg = node.args[1] if len(node.args) > 1 else None
        if not (isinstance(shape_arg, fx.Node) and shape_arg.op == "get_attr"):
            return None                               # computed from the tensors' sizes at run time
        values = [int(v) for v in args[1].reshape(-1).tolist()]
        value = values[position] if position < len(values) else None
        return None if value in (-1, 0, None) else value
    shape = args[1:] if len(args) > 1 and isinstance(args[1], int) else arg(args, kwargs, 1, "shape", ())
    raw = node.args[1:] if len(args) > 1 and isinstance(args[1], int) else arg(node.args, node.kwargs, 1, "shape", ())
    if not isinstance(raw, (list, tuple)) or position >= len(raw):
        return None
    return None if isinstance(raw[position], fx.Node) or int(shape[position]) == -1 else int(shape[position])
