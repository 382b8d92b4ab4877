"""Turn an ONNX file into a trainable torch module without running anything stored in it.

An ONNX file is a protobuf: a graph of operators and tensors, no code. This module converts it itself,
over an explicit allowlist of operator types (`ALLOWED_OPS`); any other operator (a custom domain,
control flow such as `Loop` or `If`, ...) is refused in one line that names it. No maintained converter
is used (onnx2torch needs torchvision).

What comes out is a `torch.fx.GraphModule` whose nodes call real torch modules and functions, so the
compression methods find the layer types they look for and the result can be traced again:

* Conv (1-D/2-D/3-D, grouped and depthwise included) -> nn.Conv1d / nn.Conv2d / nn.Conv3d
  (asymmetric padding becomes an F.pad in front of the conv);
* Gemm with constant B and MatMul with a constant 2-D right operand -> nn.Linear (an Add of a
  constant vector right after a MatMul, its only user, becomes the Linear's bias);
* BatchNormalization -> nn.BatchNorm1d/2d/3d by the rank of its input (ONNX momentum m becomes torch
  momentum 1 - m); LayerNormalization -> nn.LayerNorm; Gather of a constant 2-D float table by
  computed indices (axis 0) -> nn.Embedding; Dropout -> nn.Dropout(ratio); pools -> nn pool modules.
* Every other constant float tensor of the file with more than one element that a computation uses
  (a positional embedding, an attention projection kept as a plain MatMul) becomes an nn.Parameter;
  other constants (shapes, indices, scalars) become buffers. Computations on constants only are folded
  while converting.

Train/eval: modules follow `module.train()` / `.eval()` like any torch model: BatchNorm uses batch
statistics and updates its running statistics in train mode and uses the stored ones in eval mode;
Dropout drops only in train mode. The file's own `training_mode` flags are ignored. An exporter
usually removes Dropout (and may fold BatchNorm into the convolution) when it exports an eval-mode
model; what is not in the file cannot come back.

Names (the rule, in order, first valid and free path wins):
1. a layer whose weight (or, failing that, bias) is an initializer named `<path>.weight`/`<path>.bias`
   with `<path>` a dotted path of Python identifiers and integers (torch's exporters keep the original
   state_dict names: "layer1.0.conv1.weight" -> submodule "layer1.0.conv1", nested);
2. the scope in the ONNX node name, as torch's TorchScript exporter writes it
   ("/layer1/layer1.0/conv1/Conv" -> "layer1.0.conv1");
3. the node name with non-identifier characters replaced by "_" (the dynamo exporter's "node_Conv_12");
4. "<optype>_<n>".
Plain parameters and buffers take their initializer's name the same way (rule 1 without the suffix
stripping), else "const_<n>". A path is free when no module, parameter or buffer has it, none of its
prefixes is a layer or tensor, and its first part does not shadow an attribute of the module class.
Tied weights (one initializer used by two layers) are untied: each layer gets its own copy.

External data: a tensor stored in an external file is read only when its location is relative, has
no "..", and resolves (symlinks followed) inside the model's folder; every location is checked before
any external file is opened, and the workbench reads the bytes itself.
"""

from __future__ import annotations

import keyword
import operator
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from workbench.core.errors import CheckpointError
from workbench.models.onnx_ops import (
    HELPERS,
    ints,
    onnx_cast,
    onnx_cast_like,
    onnx_constant_of_shape,
    onnx_div,
    onnx_expand,
    onnx_flatten,
    onnx_gather,
    onnx_gemm,
    onnx_global_pool,
    onnx_mod,
    onnx_range,
    onnx_reduce,
    onnx_reduce_max,
    onnx_reshape,
    onnx_shape,
    onnx_slice,
    onnx_softmax_2d,
    onnx_split,
    onnx_squeeze,
    onnx_transpose,
    onnx_unsqueeze,
)


@dataclass
class GraphModel:
    module: nn.Module                    # trainable; forward(batch) -> logits
    input_shape: tuple[int, ...] | None  # one sample's shape (no batch dim); None if a dim is dynamic
    input_dtype: torch.dtype             # float32 for images; int64 for token ids
    num_outputs: int | None              # last dim of the single output: the number of classes
    ops: dict[str, int] = field(default_factory=dict)  # ONNX op type -> count
    source: str = "onnx"




# --------------------------------------------------------------------------------------------------

ALLOWED_OPS = frozenset({
    "Abs", "Add", "AveragePool", "BatchNormalization", "Cast", "CastLike", "Clip", "Concat", "Constant",
    "ConstantOfShape", "Conv", "Div", "Dropout", "Equal", "Erf", "Exp", "Expand", "Flatten", "Gather",
    "Gelu", "Gemm", "GlobalAveragePool", "GlobalMaxPool", "Greater", "HardSigmoid", "HardSwish",
    "Identity", "LayerNormalization", "LeakyRelu", "Less", "Log", "LogSoftmax", "MatMul", "MaxPool",
    "Mod", "Mul", "Neg", "Not", "Pad", "Pow", "Range", "Reciprocal", "ReduceMax", "ReduceMean", "ReduceSum",
    "Relu", "Reshape", "Round", "Shape", "Sigmoid", "Slice", "Softmax", "Split", "Sqrt", "Squeeze", "Sub",
    "Tanh", "Transpose", "Unsqueeze", "Where",
})

_UNARY = {
    "Relu": torch.relu, "Sigmoid": torch.sigmoid, "Tanh": torch.tanh, "Erf": torch.erf, "Sqrt": torch.sqrt,
    "Exp": torch.exp, "Log": torch.log, "Neg": operator.neg, "Abs": torch.abs, "Reciprocal": torch.reciprocal,
    "Not": torch.logical_not, "Round": torch.round,     # ONNX Round is half-to-even, as torch.round
}
_BINARY = {
    "Add": operator.add, "Sub": operator.sub, "Mul": operator.mul, "Div": onnx_div, "Pow": torch.pow,
    "Equal": torch.eq, "Less": torch.lt, "Greater": torch.gt,
}

_NP_DTYPES = {np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16), np.dtype(np.int64),
              np.dtype(np.int32), np.dtype(np.int16), np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.bool_)}


def _onnx():
    try:
        import onnx
    except ImportError:  # pragma: no cover - depends on the environment
        raise CheckpointError("reading ONNX files needs the onnx package (pip install onnx)") from None
    return onnx


def _torch_dtype(elem_type: int) -> torch.dtype | None:
    onnx = _onnx()
    T = onnx.TensorProto
    return {T.FLOAT: torch.float32, T.DOUBLE: torch.float64, T.FLOAT16: torch.float16, T.INT64: torch.int64,
            T.INT32: torch.int32, T.INT16: torch.int16, T.INT8: torch.int8, T.UINT8: torch.uint8,
            T.BOOL: torch.bool, T.BFLOAT16: torch.bfloat16}.get(elem_type)


_PATH_PART = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+)$")
_RESERVED = set(dir(fx.GraphModule)) | {"graph", "code", "meta"}


def _valid_path(path: str) -> bool:
    parts = path.split(".")
    return bool(path) and all(_PATH_PART.match(p) and not keyword.iskeyword(p) for p in parts) \
        and not parts[0].isdigit() and parts[0] not in _RESERVED


def _scope_path(node_name: str) -> str | None:
    """"/layer1/layer1.0/conv1/Conv" -> "layer1.0.conv1" (TorchScript exporter scopes)."""
    if not node_name.startswith("/"):
        return None
    parts = [p for p in node_name.split("/")[1:-1] if p]
    path = ""
    for p in parts:
        path = p if not path or p.startswith(path + ".") else f"{path}.{p}"
    return path or None


# --------------------------------------------------------------------------------------------------
# Reading the file

def _check_external(tensors, folder: Path, name: str) -> list:
    """Check every external location first; return [(tensor, real path, offset, length)]."""
    onnx = _onnx()
    real_folder = os.path.realpath(folder)
    todo = []
    for t in tensors:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        parts = re.split(r"[\\/]+", loc)
        if (not loc or os.path.isabs(loc) or loc[:1] in "/\\" or re.match(r"^[A-Za-z]:", loc)
                or ".." in parts or "\0" in loc):
            raise CheckpointError(f"{name}: tensor {t.name!r} keeps its data at {loc!r}, outside the model's "
                                  "folder; refused")
        real = os.path.realpath(os.path.join(real_folder, loc))
        if os.path.commonpath([real, real_folder]) != real_folder:
            raise CheckpointError(f"{name}: tensor {t.name!r} keeps its data at {loc!r}, which leads outside "
                                  "the model's folder; refused")
        try:
            offset = int(info.get("offset", 0) or 0)
            length = int(info["length"]) if info.get("length") else None
        except ValueError:
            raise CheckpointError(f"{name}: tensor {t.name!r} has a damaged external-data record") from None
        todo.append((t, real, offset, length))
    for t, real, _, _ in todo:
        if not os.path.isfile(real):
            raise CheckpointError(f"{name}: tensor {t.name!r} keeps its data in {os.path.relpath(real, real_folder)!r},"
                                  " which is missing")
    return todo


def _read_external(todo, name: str) -> None:
    onnx = _onnx()
    for t, real, offset, length in todo:
        with open(real, "rb") as f:
            f.seek(offset)
            data = f.read(length) if length is not None else f.read()
        if length is not None and len(data) != length:
            raise CheckpointError(f"{name}: tensor {t.name!r}'s external data is cut short")
        t.raw_data = data
        del t.external_data[:]
        t.data_location = onnx.TensorProto.DEFAULT


def _to_torch(t, name: str) -> torch.Tensor:
    onnx = _onnx()
    from onnx import numpy_helper
    if _torch_dtype(t.data_type) == torch.bfloat16:
        raw = np.frombuffer(t.raw_data, dtype=np.uint16) if t.raw_data else np.array(t.int32_data, np.uint16)
        out = torch.from_numpy(raw.astype(np.int16).copy()).view(torch.bfloat16)
        return out.reshape(tuple(t.dims))
    try:
        arr = numpy_helper.to_array(t)
    except Exception as e:
        raise CheckpointError(f"{name}: tensor {t.name!r} cannot be read ({e.__class__.__name__})") from None
    if arr.dtype not in _NP_DTYPES:
        raise CheckpointError(f"{name}: tensor {t.name!r} has data type "
                              f"{onnx.TensorProto.DataType.Name(t.data_type)}, which the workbench cannot read")
    return torch.from_numpy(np.array(arr, copy=True))


def _all_tensors(graph):
    onnx = _onnx()
    out = list(graph.initializer)
    for node in graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                out.append(a.t)
            elif a.type == onnx.AttributeProto.TENSORS:
                out.extend(a.tensors)
    return out


def _attrs(node) -> dict:
    onnx = _onnx()
    out = {}
    for a in node.attribute:
        if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
            raise CheckpointError(f"ONNX op {node.op_type} carries a subgraph, which is not supported")
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


# --------------------------------------------------------------------------------------------------
# The converter

class _Refuse(Exception):
    pass


class _Converter:
    def __init__(self, model, name: str):
        self.model = model
        self.g = model.graph
        self.name = name
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.graph = fx.Graph()
        self.root = nn.Module()
        self.env: dict[str, object] = {}
        self.origin: dict[int, str] = {}       # id(const tensor) -> initializer name
        self.keep: list[torch.Tensor] = []     # keeps ids stable
        self.const_nodes: dict[int, fx.Node] = {}
        self.kinds: dict[str, str] = {}        # path -> "container" | "module" | "tensor"
        self.counter: dict[str, int] = {}
        self.skip: set[int] = set()
        self.ranks: dict[str, int] = {}
        self.consumers: dict[str, list] = {}
        for node in self.g.node:
            for i in node.input:
                if i:
                    self.consumers.setdefault(i, []).append(node)
        self.graph_outputs = {o.name for o in self.g.output}

    # ---- naming ----
    def _free(self, path: str) -> bool:
        if not _valid_path(path) or path in self.kinds:
            return False
        parts = path.split(".")
        return all(self.kinds.get(".".join(parts[:i])) in (None, "container") for i in range(1, len(parts)))

    def _claim(self, path: str, kind: str, obj) -> None:
        parts = path.split(".")
        parent = self.root
        for i in range(1, len(parts)):
            sub = ".".join(parts[:i])
            if sub not in self.kinds:
                self.kinds[sub] = "container"
                parent.add_module(parts[i - 1], nn.Module())
            parent = getattr(parent, parts[i - 1])
        self.kinds[path] = kind
        if kind == "module":
            parent.add_module(parts[-1], obj)
        elif isinstance(obj, nn.Parameter):
            parent.register_parameter(parts[-1], obj)
        else:
            parent.register_buffer(parts[-1], obj)

    def _generated(self, stem: str) -> str:
        while True:
            n = self.counter.get(stem, 0)
            self.counter[stem] = n + 1
            path = f"{stem}_{n}"
            if self._free(path):
                return path

    def add_module(self, node, module: nn.Module, *tensors) -> str:
        cands = []
        for t, suffix in zip(tensors, (".weight", ".bias")):
            src = self.origin.get(id(t)) if isinstance(t, torch.Tensor) else None
            if src and src.endswith(suffix):
                cands.append(src[: -len(suffix)])
        scope = _scope_path(node.name)
        if scope:
            cands.append(scope)
            local = re.sub(r"\W", "_", node.name.rsplit("/", 1)[-1]).lower()
            cands.append(f"{scope}.{local}")
        if node.name:
            flat = re.sub(r"\W", "_", node.name).strip("_")
            cands.append(flat if flat and not flat[0].isdigit() else f"n_{flat}")
        path = next((c for c in cands if self._free(c)), None) or self._generated(node.op_type.lower())
        self._claim(path, "module", module)
        return path

    # ---- values ----
    def const_node(self, t: torch.Tensor) -> fx.Node:
        if id(t) in self.const_nodes:
            return self.const_nodes[id(t)]
        src = self.origin.get(id(t))
        trainable = src is not None and t.is_floating_point() and t.numel() > 1
        path = src if src and self._free(src) else self._generated("const")
        value = t.detach().clone()
        self._claim(path, "tensor", nn.Parameter(value) if trainable else value)
        node = self.graph.get_attr(path)
        self.const_nodes[id(t)] = node
        return node

    def call(self, fn, *args, **kwargs):
        dynamic = []
        fx.node.map_aggregate((args, kwargs), lambda a: dynamic.append(a) if isinstance(a, fx.Node) else None)
        if not dynamic:
            with torch.no_grad():
                return fn(*args, **kwargs)
        args, kwargs = fx.node.map_aggregate(
            (args, kwargs), lambda a: self.const_node(a) if isinstance(a, torch.Tensor) else a)
        node = self.graph.call_function(fn, tuple(args), dict(kwargs))
        if getattr(fn, "__name__", "") in HELPERS:
            node.meta["is_wrapped"] = True     # the generated code fx.wraps it: a leaf when traced again
        return node

    def module_call(self, node, module, x, *tensors):
        if not isinstance(x, fx.Node):          # constant input: fold, no layer
            with torch.no_grad():
                return module.eval()(x)
        path = self.add_module(node, module, *tensors)
        return self.graph.call_module(path, (x,))

    def const(self, v, what: str) -> torch.Tensor:
        if not isinstance(v, torch.Tensor):
            raise _Refuse(f"needs a constant {what}")
        return v

    def rank(self, name: str):
        v = self.env.get(name)
        if isinstance(v, torch.Tensor):
            return v.dim()
        return self.ranks.get(name)

    def extra_outputs_unused(self, node) -> None:
        for o in node.output[1:]:
            if o and (o in self.consumers or o in self.graph_outputs):
                raise _Refuse("has its extra outputs used, which is not supported")

    # ---- conversion ----
    def run(self):
        onnx = _onnx()
        for init in self.g.initializer:
            t = _to_torch(init, self.name)
            self.env[init.name] = t
            self.origin[id(t)] = init.name
            self.keep.append(t)
        inits = {i.name for i in self.g.initializer}
        inputs = [i for i in self.g.input if i.name not in inits]
        self.env[inputs[0].name] = self.graph.placeholder("x")
        for node in self.g.node:
            if id(node) in self.skip:
                continue
            try:
                outs = self.lower(node, onnx)
            except _Refuse as e:
                raise CheckpointError(f"{self.name}: ONNX op {node.op_type} ({node.name or 'unnamed'}) {e}") from None
            except CheckpointError:
                raise
            except Exception as e:
                raise CheckpointError(f"{self.name}: cannot convert ONNX op {node.op_type} ({node.name or 'unnamed'}): "
                                      f"{e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
            if not isinstance(outs, (list, tuple)):
                outs = [outs]
            for name, value in zip(node.output, outs):
                if name:
                    if isinstance(value, torch.Tensor):
                        self.keep.append(value)
                    self.env[name] = value
        out = self.env[self.g.output[0].name]
        if isinstance(out, torch.Tensor):
            out = self.const_node(out)
        self.graph.output(out)
        self.graph.lint()
        gm = fx.GraphModule(self.root, self.graph, class_name="OnnxGraph")
        return gm

    def ins(self, node):
        out = []
        for i in node.input:
            if not i:
                out.append(None)
            elif i not in self.env:
                raise _Refuse(f"reads {i!r}, which nothing produces")
            else:
                out.append(self.env[i])
        return out

    def lower(self, node, onnx):
        op = node.op_type
        a = _attrs(node)
        ins = self.ins(node)
        x = ins[0] if ins else None
        opt = lambda i: ins[i] if len(ins) > i else None  # noqa: E731
        if op in _UNARY:
            return self.call(_UNARY[op], x)
        if op in _BINARY:
            return self.call(_BINARY[op], x, ins[1])
        if op == "Identity":
            return x
        if op == "Constant":
            return self.constant(a, onnx)
        if op == "Mod":
            return self.call(onnx_mod, x, ins[1], int(a.get("fmod", 0)))
        if op == "Where":
            return self.call(torch.where, x, ins[1], ins[2])
        if op == "LeakyRelu":
            return self.call(F.leaky_relu, x, float(a.get("alpha", 0.01)))
        if op == "HardSigmoid":
            return self.call(torch.clamp, self.call(operator.add, self.call(operator.mul, x, float(a.get("alpha", 0.2))),
                                                    float(a.get("beta", 0.5))), 0.0, 1.0)
        if op == "HardSwish":
            return self.call(F.hardswish, x)
        if op == "Clip":
            lo, hi = (opt(1), opt(2)) if self.opset >= 11 else (a.get("min"), a.get("max"))
            lo = lo.item() if isinstance(lo, torch.Tensor) and lo.numel() == 1 else lo
            hi = hi.item() if isinstance(hi, torch.Tensor) and hi.numel() == 1 else hi
            if lo is None and hi is None:
                return x
            return self.call(torch.clamp, x, lo, hi)
        if op == "Pad":
            # ONNX pads are [x1_begin, ..., xn_begin, x1_end, ..., xn_end]; F.pad takes (begin, end) pairs
            # from the last dimension backwards.
            if self.opset >= 11 and not isinstance(ins[1], torch.Tensor):
                raise _Refuse("has pads computed in the graph")
            pads = ints(ins[1]) if self.opset >= 11 else [int(p) for p in a.get("pads", [])]
            value = opt(2) if self.opset >= 11 else a.get("value", 0.0)
            value = float(value.item()) if isinstance(value, torch.Tensor) else float(value or 0.0)
            n = len(pads) // 2
            axes = ints(opt(3)) if self.opset >= 18 and opt(3) is not None else list(range(n))
            rank = self.rank(node.input[0])
            if rank is None:
                raise _Refuse("pads an input of unknown rank")
            axes = [ax % rank for ax in axes]
            torch_pads = []
            for dim in range(rank - 1, min(axes) - 1, -1):
                i = axes.index(dim) if dim in axes else None
                torch_pads += [pads[i], pads[i + n]] if i is not None else [0, 0]
            mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}.get(
                a.get("mode", b"constant").decode() if isinstance(a.get("mode"), bytes) else a.get("mode", "constant"))
            if mode is None:
                raise _Refuse(f"uses pad mode {a.get('mode')!r}")
            return self.call(F.pad, x, tuple(torch_pads), mode, value) if mode == "constant" else \
                self.call(F.pad, x, tuple(torch_pads), mode)
        if op == "Gelu":
            return self.call(F.gelu, x, approximate=a.get("approximate", "none"))
        if op in ("Softmax", "LogSoftmax"):
            if self.opset >= 13:
                return self.call(torch.softmax if op == "Softmax" else torch.log_softmax, x, int(a.get("axis", -1)))
            axis = int(a.get("axis", 1))
            r = self.rank(node.input[0])
            if axis < 0:
                if r is None:
                    raise _Refuse("has a negative axis on an input of unknown rank")
                axis += r
            return self.call(onnx_softmax_2d, x, axis, int(op == "LogSoftmax"))
        if op == "Cast":
            dtype = _torch_dtype(int(a["to"]))
            if dtype is None:
                raise _Refuse("casts to a data type the workbench does not handle")
            return self.call(onnx_cast, x, dtype)
        if op == "CastLike":
            return self.call(onnx_cast_like, x, ins[1])
        if op == "Dropout":
            self.extra_outputs_unused(node)
            ratio = opt(1) if self.opset >= 12 else a.get("ratio", 0.5)
            ratio = 0.5 if ratio is None else float(self.const(ratio, "ratio")) if self.opset >= 12 else float(ratio)
            if isinstance(x, torch.Tensor):
                return x
            return self.module_call(node, nn.Dropout(ratio), x)
        if op == "Flatten":
            axis = int(a.get("axis", 1))
            return self.call(torch.flatten, x, 1) if axis == 1 else self.call(onnx_flatten, x, axis)
        if op == "Reshape":
            shape = ins[1]
            if isinstance(shape, torch.Tensor):
                s = ints(shape)
                if 0 not in s or a.get("allowzero", 0):
                    return self.call(torch.reshape, x, tuple(s))
                return self.call(onnx_reshape, x, s, int(a.get("allowzero", 0)))
            return self.call(onnx_reshape, x, shape, int(a.get("allowzero", 0)))
        if op == "Transpose":
            if "perm" in a:
                return self.call(torch.permute, x, tuple(int(p) for p in a["perm"]))
            return self.call(onnx_transpose, x)
        if op in ("Unsqueeze", "Squeeze"):
            axes = a.get("axes") if self.opset < 13 else opt(1)
            if isinstance(axes, torch.Tensor):
                axes = ints(axes)
            elif axes is not None and not isinstance(axes, fx.Node):
                axes = [int(v) for v in axes]
            if op == "Unsqueeze":
                if isinstance(axes, list) and len(axes) == 1 and axes[0] >= 0:
                    return self.call(torch.unsqueeze, x, axes[0])
                return self.call(onnx_unsqueeze, x, axes)
            return self.call(onnx_squeeze, x, axes)
        if op == "Concat":
            return self.call(torch.cat, list(ins), int(a["axis"]))
        if op == "Shape":
            return self.call(onnx_shape, x, int(a.get("start", 0)), a.get("end"))
        if op == "Slice":
            if self.opset < 10:
                return self.call(onnx_slice, x, a["starts"], a["ends"], a.get("axes"), None)
            return self.call(onnx_slice, x, ins[1], ins[2], opt(3), opt(4))
        if op == "Split":
            axis = int(a.get("axis", 0))
            split = a.get("split") if self.opset < 13 else opt(1)
            n = len(node.output)
            res = self.call(onnx_split, x, split, axis, int(a.get("num_outputs", n)))
            if isinstance(res, fx.Node):
                return [self.graph.call_function(operator.getitem, (res, i)) for i in range(n)]
            return list(res)
        if op == "Expand":
            return self.call(onnx_expand, x, ins[1])
        if op == "ConstantOfShape":
            value = a.get("value")
            value = _to_torch(value, self.name) if value is not None else torch.zeros(1)
            return self.call(onnx_constant_of_shape, x, value)
        if op == "Range":
            return self.call(onnx_range, x, ins[1], ins[2])
        if op in ("ReduceMean", "ReduceSum", "ReduceMax"):
            axes_as_input = self.opset >= (13 if op == "ReduceSum" else 18)
            axes = opt(1) if axes_as_input else a.get("axes")
            if isinstance(axes, torch.Tensor):
                axes = ints(axes)
            keep = int(a.get("keepdims", 1))
            if op == "ReduceMax":
                return self.call(onnx_reduce_max, x, axes, keep)
            kind = "mean" if op == "ReduceMean" else "sum"
            return self.call(onnx_reduce, x, kind, axes, keep, int(a.get("noop_with_empty_axes", 0)))
        if op in ("GlobalAveragePool", "GlobalMaxPool"):
            r = self.rank(node.input[0])
            avg = op == "GlobalAveragePool"
            if r in (3, 4) and isinstance(x, fx.Node):
                cls = {(3, True): nn.AdaptiveAvgPool1d, (4, True): nn.AdaptiveAvgPool2d,
                       (3, False): nn.AdaptiveMaxPool1d, (4, False): nn.AdaptiveMaxPool2d}[(r, avg)]
                return self.module_call(node, cls(1), x)
            return self.call(onnx_global_pool, x, "avg" if avg else "max")
        if op in ("MaxPool", "AveragePool"):
            return self.pool(node, a, x)
        if op == "Conv":
            return self.conv(node, a, ins)
        if op == "Gemm":
            return self.gemm(node, a, ins)
        if op == "MatMul":
            return self.matmul(node, ins)
        if op == "BatchNormalization":
            return self.batchnorm(node, a, ins)
        if op == "LayerNormalization":
            return self.layernorm(node, a, ins)
        if op == "Gather":
            return self.gather(node, a, ins)
        raise _Refuse("is not supported")  # unreachable: the allowlist is checked first

    def constant(self, a, onnx):
        if "value" in a:
            return _to_torch(a["value"], self.name)
        if "value_float" in a:
            return torch.tensor(a["value_float"], dtype=torch.float32)
        if "value_floats" in a:
            return torch.tensor(list(a["value_floats"]), dtype=torch.float32)
        if "value_int" in a:
            return torch.tensor(a["value_int"], dtype=torch.int64)
        if "value_ints" in a:
            return torch.tensor(list(a["value_ints"]), dtype=torch.int64)
        raise _Refuse("holds a kind of value the workbench does not read")

    def _pads(self, a, nd: int, kernel, dilations, strides):
        auto = a.get("auto_pad", "NOTSET") or "NOTSET"
        if auto == "VALID":
            return [0] * nd, [0] * nd
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            if any(s != 1 for s in strides) or any(d * (k - 1) % 2 for d, k in zip(dilations, kernel)):
                raise _Refuse(f"uses auto_pad={auto} with strides or an even kernel, which is not supported")
            p = [d * (k - 1) // 2 for d, k in zip(dilations, kernel)]
            return p, p
        if auto != "NOTSET":
            raise _Refuse(f"uses auto_pad={auto}, which is not supported")
        pads = [int(p) for p in a.get("pads", [0] * (2 * nd))]
        return pads[:nd], pads[nd:]

    def conv(self, node, a, ins):
        x, w = ins[0], ins[1]
        w = self.const(w, "weight")
        b = ins[2] if len(ins) > 2 else None
        if b is not None:
            b = self.const(b, "bias")
        nd = w.dim() - 2
        if nd not in (1, 2, 3):
            raise _Refuse(f"is a {nd}-D convolution, which is not supported")
        groups = int(a.get("group", 1))
        kernel = tuple(w.shape[2:])
        strides = [int(s) for s in a.get("strides", [1] * nd)]
        dil = [int(d) for d in a.get("dilations", [1] * nd)]
        begin, end = self._pads(a, nd, kernel, dil, strides)
        if begin != end:
            pad = []
            for bb, ee in zip(reversed(begin), reversed(end)):
                pad += [bb, ee]
            x = self.call(F.pad, x, pad)
            begin = [0] * nd
        cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[nd]
        m = cls(w.shape[1] * groups, w.shape[0], kernel, stride=tuple(strides), padding=tuple(begin),
                dilation=tuple(dil), groups=groups, bias=b is not None, dtype=w.dtype)
        with torch.no_grad():
            m.weight.copy_(w)
            if b is not None:
                m.bias.copy_(b)
        return self.module_call(node, m, x, w, b)

    def pool(self, node, a, x):
        self.extra_outputs_unused(node)
        kernel = tuple(int(k) for k in a["kernel_shape"])
        nd = len(kernel)
        if nd not in (1, 2, 3):
            raise _Refuse(f"pools over {nd} dims, which is not supported")
        strides = tuple(int(s) for s in a.get("strides", [1] * nd))
        dil = tuple(int(d) for d in a.get("dilations", [1] * nd))
        begin, end = self._pads(a, nd, kernel, dil, strides)
        if begin != end:
            raise _Refuse("pads asymmetrically, which is not supported")
        ceil = bool(a.get("ceil_mode", 0))
        if node.op_type == "MaxPool":
            cls = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}[nd]
            m = cls(kernel, strides, tuple(begin), dil, ceil_mode=ceil)
        else:
            if any(d != 1 for d in dil):
                raise _Refuse("has dilations, which is not supported")
            cls = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}[nd]
            m = cls(kernel, strides, tuple(begin), ceil_mode=ceil,
                    count_include_pad=bool(a.get("count_include_pad", 0)))
        return self.module_call(node, m, x)

    def _linear(self, node, x, weight, bias, *names):
        m = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=weight.dtype)
        with torch.no_grad():
            m.weight.copy_(weight)
            if bias is not None:
                m.bias.copy_(bias)
        return self.module_call(node, m, x, *names)

    def gemm(self, node, a, ins):
        x, b = ins[0], ins[1]
        c = ins[2] if len(ins) > 2 else None
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        ta, tb = int(a.get("transA", 0)), int(a.get("transB", 0))
        if isinstance(x, fx.Node) and isinstance(b, torch.Tensor) and not ta and b.dim() == 2 \
                and b.is_floating_point() and (c is None or isinstance(c, torch.Tensor)):
            weight = (b if tb else b.t()) * alpha
            n = weight.shape[0]
            bias = None
            if c is not None and (c.numel() == 1 or tuple(c.shape) in ((n,), (1, n))):
                bias = (c.reshape(-1).expand(n) * beta).contiguous()
                return self._linear(node, x, weight, bias, b, c)
            out = self._linear(node, x, weight, None, b)
            return out if c is None else self.call(operator.add, out, c * beta if beta != 1.0 else c)
        return self.call(onnx_gemm, x, b, c, alpha, beta, ta, tb)

    def matmul(self, node, ins):
        x, b = ins
        if isinstance(x, fx.Node) and isinstance(b, torch.Tensor) and b.dim() == 2 and b.is_floating_point():
            weight = b.t()
            n = weight.shape[0]
            users = self.consumers.get(node.output[0], [])
            bias = None
            if len(users) == 1 and users[0].op_type == "Add" and node.output[0] not in self.graph_outputs:
                add = users[0]
                other = [i for i in add.input if i != node.output[0]]
                cand = self.env.get(other[0]) if len(other) == 1 else None
                if isinstance(cand, torch.Tensor) and tuple(cand.shape) == (n,) and cand.dtype == b.dtype:
                    bias = cand
            out = self._linear(node, x, weight, bias, b, bias)
            if bias is not None:
                self.skip.add(id(users[0]))
                self.env[users[0].output[0]] = out
            return out
        return self.call(torch.matmul, x, b)

    def batchnorm(self, node, a, ins):
        self.extra_outputs_unused(node)
        x = ins[0]
        scale, bias, mean, var = (self.const(v, "statistic or affine tensor") for v in ins[1:5])
        if not int(a.get("spatial", 1)):
            raise _Refuse("uses spatial=0, which is not supported")
        r = self.rank(node.input[0])
        cls = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}.get(r)
        if cls is None:
            raise _Refuse("has an input of unknown or unsupported rank")
        m = cls(scale.numel(), eps=float(a.get("epsilon", 1e-5)), momentum=1.0 - float(a.get("momentum", 0.9)),
                dtype=scale.dtype)
        with torch.no_grad():
            m.weight.copy_(scale)
            m.bias.copy_(bias)
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
        return self.module_call(node, m, x, scale, bias)

    def layernorm(self, node, a, ins):
        self.extra_outputs_unused(node)
        x = ins[0]
        scale = self.const(ins[1], "scale")
        bias = ins[2] if len(ins) > 2 else None
        if bias is not None:
            bias = self.const(bias, "bias")
        axis = int(a.get("axis", -1))
        if axis >= 0:
            r = self.rank(node.input[0])
            if r is None:
                raise _Refuse("normalizes from a positive axis over an input of unknown rank")
            axis -= r
        n = -axis
        if scale.dim() > n:
            raise _Refuse("has a scale of a shape that nn.LayerNorm cannot hold")
        shape = tuple(scale.shape)
        if scale.dim() < n:
            raise _Refuse("has a scale that is broadcast over the normalized dims, which is not supported")
        m = nn.LayerNorm(shape, eps=float(a.get("epsilon", 1e-5)), bias=bias is not None, dtype=scale.dtype)
        with torch.no_grad():
            m.weight.copy_(scale)
            if bias is not None:
                m.bias.copy_(bias.expand(shape))
        return self.module_call(node, m, x, scale, bias)

    def gather(self, node, a, ins):
        data, idx = ins
        axis = int(a.get("axis", 0))
        if isinstance(data, torch.Tensor) and isinstance(idx, fx.Node) and axis == 0 and data.dim() == 2 \
                and data.is_floating_point():
            m = nn.Embedding(data.shape[0], data.shape[1], dtype=data.dtype)
            with torch.no_grad():
                m.weight.copy_(data)
            return self.module_call(node, m, idx, data)
        if isinstance(idx, torch.Tensor) and idx.dim() == 0:
            i = int(idx)
            return self.call(torch.select, data, axis, i) if i >= 0 else self.call(onnx_gather, data, idx, axis)
        return self.call(onnx_gather, data, idx, axis)


def _shape_of(vi):
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]


def load_onnx_model(path, name: str | None = None) -> GraphModel:
    """Convert the ONNX file at `path` into a trainable GraphModel; refuse anything else in one line."""
    onnx = _onnx()
    path = Path(path)
    name = name or path.name
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{name}: cannot read the file ({e.strerror or e.__class__.__name__})") from None
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception:
        raise CheckpointError(f"{name}: not a readable ONNX file (the protobuf is damaged)") from None
    g = model.graph
    if not g.node or not g.output:
        raise CheckpointError(f"{name}: not an ONNX model (no graph)")
    ops: dict[str, int] = {}
    for node in g.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
        if node.domain not in ("", "ai.onnx"):
            raise CheckpointError(f"{name}: ONNX op {node.domain}::{node.op_type} (a custom domain) is not supported")
        if node.op_type not in ALLOWED_OPS:
            raise CheckpointError(f"{name}: ONNX op {node.op_type} is not supported by the workbench's converter")
    if len(g.sparse_initializer):
        raise CheckpointError(f"{name}: sparse initializers are not supported")
    inits = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1:
        raise CheckpointError(f"{name}: the graph has {len(inputs)} inputs; the workbench loads models with exactly one")
    if len(g.output) != 1:
        raise CheckpointError(f"{name}: the graph has {len(g.output)} outputs; the workbench loads models with exactly one")

    todo = _check_external(_all_tensors(g), path.parent, name)   # every location checked before any read
    _read_external(todo, name)

    in_vi, out_vi = inputs[0], g.output[0]
    input_dtype = _torch_dtype(in_vi.type.tensor_type.elem_type)
    if input_dtype is None or input_dtype == torch.bool:
        raise CheckpointError(f"{name}: the graph input has a data type the workbench cannot feed")
    shape = _shape_of(in_vi)
    input_shape = tuple(shape[1:]) if shape and len(shape) >= 1 and all(d for d in shape[1:]) else None
    oshape = _shape_of(out_vi)
    num_outputs = oshape[-1] if oshape and oshape[-1] else None

    conv = _Converter(model, name)
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
            s = _shape_of(vi)
            if s is not None:
                conv.ranks[vi.name] = len(s)
    except Exception:
        pass  # ranks stay unknown: ops that need them refuse in one line
    gm = conv.run()
    gm.train()
    return GraphModel(module=gm, input_shape=input_shape, input_dtype=input_dtype, num_outputs=num_outputs,
                      ops=ops, source="onnx")
