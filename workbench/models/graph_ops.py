"""Build a trainable `fx.GraphModule` from a list of allowlisted ATen operator calls.

Format-neutral: a loader (torch.export `.pt2` in `pt2_graph.py`; an ONNX loader may map its nodes onto the
same ATen names) describes the model as `OpNode`s whose arguments are constants or `Ref`s to named values,
plus the named parameters/buffers, and `build_graph_module` turns that into an `fx.GraphModule`:

* every operator must be in `ALLOWED` (ATen ``packet.overload`` names, e.g. ``"conv2d.default"``) or
  `SYM_OPS` (integer arithmetic on sizes); anything else raises CheckpointError naming the operator.
  Nothing named in the input is ever looked up by name in Python: callables come from this module's tables;
* linear / convolution / batch norm / layer norm / embedding calls whose weight is a parameter
  ``P.weight`` become real ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d`` / ``nn.BatchNorm1d/2d`` /
  ``nn.LayerNorm`` / ``nn.Embedding`` modules at path ``P`` (they take over the original tensors, so the
  state_dict keys stay the original model's); the core-IR form ``addmm(bias, x, permute/t(weight))``
  becomes an ``nn.Linear`` too; ``dropout`` becomes ``nn.Dropout``. Batch norm and dropout therefore follow
  ``model.train()`` / ``model.eval()`` whatever mode the graph was recorded in;
* other parameters and buffers sit at their dotted path in plain ``nn.Module`` containers and are read
  with ``get_attr``, so they stay trainable (e.g. ``nn.MultiheadAttention``'s ``in_proj_weight``).
"""

from __future__ import annotations

import keyword
import operator
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from workbench.core.errors import CheckpointError


@dataclass(frozen=True)
class Ref:
    """A reference to a named value: a graph input, another node's output, a parameter or a buffer."""
    name: str


@dataclass
class OpNode:
    """One operator call. `op`: an ATen ``packet.overload`` name (``"linear.default"``) or a `SYM_OPS` name.

    `args` / `kwargs` hold constants (int, float, bool, str, None, torch.dtype, lists of these) and `Ref`s
    (also inside lists). `outputs`: the names the results get; one name for a single result, several for a
    tuple result (None for a result nobody uses); `list_output`: the op returns a list (``split``) whose
    items are named by `outputs`. `module_hint`: the dotted path of the original module the call came from,
    if known (used to place parameter-free modules such as dropout).
    """
    op: str
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    outputs: list = field(default_factory=list)
    list_output: bool = False
    module_hint: str | None = None


@dataclass
class StateEntry:
    """A parameter (trainable, `requires_grad`) or buffer of the model, at its original dotted key."""
    key: str
    tensor: torch.Tensor
    parameter: bool
    requires_grad: bool = True
    persistent: bool = True


# --- the allowlist ---------------------------------------------------------------------------------------
# Ops that become modules (handled in _Builder._module_op).
_MODULE_OPS = {
    "linear.default", "conv1d.default", "conv2d.default", "conv1d.padding", "conv2d.padding",
    "convolution.default", "batch_norm.default", "_native_batch_norm_legit_no_training.default",
    "_native_batch_norm_legit_functional.default", "native_batch_norm.default",
    "_native_batch_norm_legit.default", "layer_norm.default", "native_layer_norm.default",
    "embedding.default", "dropout.default", "addmm.default", "mm.default",
}
# Functional ops mapped onto torch functions (so FX passes that know F.relu / torch.flatten see them).
_FUNCS: dict[str, Any] = {
    "relu.default": F.relu, "sigmoid.default": torch.sigmoid, "tanh.default": torch.tanh,
    "silu.default": F.silu, "hardswish.default": F.hardswish, "flatten.using_ints": torch.flatten,
    "add.Tensor": torch.add, "mul.Tensor": torch.mul, "sub.Tensor": torch.sub, "div.Tensor": torch.div,
    "adaptive_avg_pool2d.default": F.adaptive_avg_pool2d, "_adaptive_avg_pool2d.default": F.adaptive_avg_pool2d,
    "adaptive_avg_pool1d.default": F.adaptive_avg_pool1d,
}
_INPLACE = {"relu_.default": F.relu, "silu_.default": F.silu, "hardswish_.default": F.hardswish,
            "hardtanh_.default": F.hardtanh}
# Functional ops called as the ATen operator itself (exact semantics, still traceable by torch.fx).
_ATEN = {
    "t.default", "matmul.default", "bmm.default", "gelu.default", "hardtanh.default",
    "clamp.default", "round.default", "to.dtype", "_to_copy.default", "pad.default", "constant_pad_nd.default",
    "softmax.int", "_softmax.default", "log_softmax.int", "_log_softmax.default",
    "add.Scalar", "mul.Scalar", "sub.Scalar", "div.Scalar", "rsub.Scalar", "div.Tensor_mode", "neg.default",
    "sqrt.default", "rsqrt.default", "pow.Tensor_Scalar", "exp.default", "erf.default",
    "max_pool1d.default", "max_pool2d.default", "max_pool2d_with_indices.default", "avg_pool1d.default",
    "avg_pool2d.default", "mean.dim", "mean.default", "sum.dim_IntList", "sum.default",
    "view.default", "reshape.default", "_unsafe_view.default", "permute.default", "transpose.int",
    "contiguous.default", "expand.default", "unsqueeze.default", "squeeze.dim", "squeeze.dims",
    "squeeze.default", "cat.default", "slice.Tensor", "select.int", "clone.default", "unflatten.int",
    "split.Tensor", "split_with_sizes.default", "chunk.default", "unbind.int", "alias.default",
    "scaled_dot_product_attention.default", "sym_size.int", "flatten.using_ints",
}
# Checks the exporter recorded; they compute nothing the model needs, so they are left out.
_DROPPED = {"_assert_tensor_metadata.default", "_assert_scalar.default", "_assert_async.msg",
            "sym_constrain_range_for_size.default", "sym_constrain_range.default"}
# Integer arithmetic on sizes (dynamic batch dimension).
SYM_OPS = {"_operator.mul": operator.mul, "_operator.add": operator.add, "_operator.sub": operator.sub,
           "_operator.floordiv": operator.floordiv}

ALLOWED = frozenset(_MODULE_OPS | set(_FUNCS) | set(_INPLACE) | _ATEN | _DROPPED)


def aten_op(name: str):
    """The ATen OpOverload for an allowlisted ``packet.overload`` name."""
    if name not in ALLOWED:
        raise KeyError(name)
    packet, overload = name.rsplit(".", 1)
    return getattr(getattr(torch.ops.aten, packet), overload)


def refuse_op(model_name: str, op: str) -> CheckpointError:
    return CheckpointError(f"{model_name}: operator {op} is not supported by the workbench's safe loader "
                           "(only an allowlist of ATen operators is read)")


# --- building ----------------------------------------------------------------------------------------------
_UNUSED = object()  # a tuple result that must not be read (batch-norm statistics, pooling indices)


def _strip(key: str, suffix: str) -> str | None:
    return key[: -len(suffix)] if key.endswith(suffix) and len(key) > len(suffix) else None


class _Builder:
    def __init__(self, name: str, state: list[StateEntry], values: dict[str, str]):
        self.name = name
        self.root = nn.Module()
        self.graph = fx.Graph()
        self.env: dict[str, Any] = {}
        self.values = values                        # graph value name -> state key
        self.state = {e.key: e for e in state}
        self.producers: dict[str, OpNode] = {}
        self.leaves: dict[str, tuple] = {}          # module path -> config it was built with
        self.ops: Counter = Counter()
        self.mutated: set[str] = set()              # state keys a module updates itself (BN statistics)
        self._attrs: dict[str, fx.Node] = {}
        self._n = 0
        self.ranks: dict[str, int] = {}
        for e in state:
            self._install(e)

    # state tensors at their dotted path, in plain containers
    def _container(self, path: str) -> nn.Module:
        mod = self.root
        for part in [p for p in path.split(".") if p]:
            sub = mod._modules.get(part)
            if sub is None:
                sub = nn.Module()
                mod.add_module(part, sub)
            mod = sub
        return mod

    def _install(self, e: StateEntry) -> None:
        if not safe_path(e.key):
            # fx writes these paths into the Python source it generates: only plain names may get there
            raise CheckpointError(f"{self.name}: a weight has a name the workbench does not accept ({e.key[:60]!r})")
        parent, _, attr = e.key.rpartition(".")
        mod = self._container(parent)
        if e.parameter:
            mod._parameters[attr] = nn.Parameter(e.tensor, requires_grad=e.requires_grad)
        else:
            mod.register_buffer(attr, e.tensor, persistent=e.persistent)

    def _key(self, arg) -> str | None:
        return self.values.get(arg.name) if isinstance(arg, Ref) else None

    def _place(self, path: str, leaf: nn.Module, config: tuple) -> bool:
        """Put `leaf` at `path`, taking over the container's tensors; False if it cannot go there."""
        if path in self.leaves:
            return self.leaves[path] == config
        parent_path, _, attr = path.rpartition(".")
        parent = self._container(parent_path)
        old = parent._modules.get(attr)
        if old is None or type(old) is not nn.Module or any(p in self.leaves for p in _prefixes(parent_path)):
            return False
        for k, v in old._parameters.items():
            if k in leaf._parameters and (leaf._parameters[k] is None) != (v is None):
                return False
            if k in leaf._parameters and v is not None and leaf._parameters[k].shape != v.shape:
                return False
        for k, v in old._buffers.items():
            if k in leaf._buffers and leaf._buffers[k] is not None and leaf._buffers[k].shape != v.shape:
                return False
        leaf._parameters.update(old._parameters)
        for k, v in old._buffers.items():
            leaf.register_buffer(k, v, persistent=k not in old._non_persistent_buffers_set)
        leaf._modules.update(old._modules)
        parent._modules[attr] = leaf
        self.leaves[path] = config
        self._attrs = {k: v for k, v in self._attrs.items() if not k.startswith(path + ".")}
        return True

    # graph values
    def value(self, arg):
        if isinstance(arg, Ref):
            if arg.name in self.env:
                v = self.env[arg.name]
                if v is _UNUSED:
                    raise CheckpointError(f"{self.name}: the graph reads a by-product of an operator "
                                          "(batch-norm statistics or pooling indices) the workbench does not keep")
                return v
            key = self.values.get(arg.name)
            if key is None:
                raise CheckpointError(f"{self.name}: the graph refers to a value it never defines ({arg.name})")
            if key not in self._attrs:
                self._attrs[key] = self.graph.get_attr(key)
            return self._attrs[key]
        if isinstance(arg, (list, tuple)):
            return [self.value(a) for a in arg]
        return arg

    def _fresh(self, stem: str) -> str:
        self._n += 1
        return f"_{stem}_{self._n}"

    def bind(self, node: OpNode, result) -> None:
        if node.list_output:
            for i, out in enumerate(node.outputs):
                if out is not None:
                    self.env[out] = self.graph.call_function(operator.getitem, (result, i))
        elif len(node.outputs) == 1:
            if node.outputs[0] is not None:
                self.env[node.outputs[0]] = result
        else:
            for i, out in enumerate(node.outputs):
                if out is not None:
                    self.env[out] = self.graph.call_function(operator.getitem, (result, i))
        for out in node.outputs:
            if out is not None:
                self.producers[out] = node

    def bind_first(self, node: OpNode, result) -> None:
        """A tuple-returning op replaced by a module: its first result is the module's, the rest unusable."""
        for i, out in enumerate(node.outputs):
            if out is not None:
                self.env[out] = result if i == 0 else _UNUSED
                self.producers[out] = node

    # the operators
    def add(self, node: OpNode) -> None:
        op = node.op
        if op in SYM_OPS:
            self.ops[op] += 1
            self.bind(node, self.graph.call_function(SYM_OPS[op], tuple(self.value(node.args)),
                                                     {k: self.value(v) for k, v in node.kwargs.items()}))
            return
        if op not in ALLOWED:
            raise refuse_op(self.name, "aten." + op)
        self.ops["aten." + op] += 1
        if op in _DROPPED:
            return
        if op in _MODULE_OPS and self._module_op(node):
            return
        args = tuple(self.value(node.args))
        kwargs = {k: self.value(v) for k, v in node.kwargs.items()}
        if op in ("max_pool2d.default", "max_pool2d_with_indices.default"):
            args = args[:2] + (args[2] or None,) + args[3:] if len(args) > 2 else args  # stride [] = kernel
            out = self.graph.call_function(F.max_pool2d, args, kwargs)
            (self.bind if op == "max_pool2d.default" else self.bind_first)(node, out)
            return
        if op in _FUNCS:
            target = _FUNCS[op]
        elif op in _INPLACE:
            target, kwargs = _INPLACE[op], {**kwargs, "inplace": True}
            if op == "hardtanh_.default":
                target, kwargs = aten_op(op), {k: v for k, v in kwargs.items() if k != "inplace"}
        elif op in {"batch_norm.default", "_native_batch_norm_legit_no_training.default",
                    "_native_batch_norm_legit_functional.default", "native_batch_norm.default",
                    "_native_batch_norm_legit.default"}:
            raise CheckpointError(f"{self.name}: a batch norm whose weights and statistics are not one "
                                  "module's parameters and buffers; the workbench cannot make it trainable")
        elif op == "dropout.default":
            target = F.dropout
        else:
            target = aten_op(op)
        self.bind(node, self.graph.call_function(target, args, kwargs))

    def _call_leaf(self, path: str, inputs: tuple) -> fx.Node:
        return self.graph.call_module(path, inputs)

    def _arg(self, node: OpNode, i: int, name: str, default=None):
        if len(node.args) > i:
            return node.args[i]
        return node.kwargs.get(name, default)

    def _module_op(self, node: OpNode) -> bool:
        op = node.op
        a = lambda i, n, d=None: self._arg(node, i, n, d)
        if op == "dropout.default":
            p = float(a(1, "p", 0.5))
            path = node.module_hint if node.module_hint else self._fresh("dropout")
            if not self._place_free(path, nn.Dropout(p), ("dropout", p)):
                path = self._fresh("dropout")
                self._place_free(path, nn.Dropout(p), ("dropout", p))
            self.bind(node, self._call_leaf(path, (self.value(a(0, "input")),)))
            return True
        if op in ("linear.default", "addmm.default", "mm.default"):
            if op == "linear.default":
                x, w, b = a(0, "input"), a(1, "weight"), a(2, "bias")
            else:
                if op == "addmm.default":
                    if a(3, "beta", 1) != 1 or a(4, "alpha", 1) != 1:
                        return False
                    b, x, wt = a(0, "self"), a(1, "mat1"), a(2, "mat2")
                else:
                    b, x, wt = None, a(0, "self"), a(1, "mat2")
                prod = self.producers.get(wt.name) if isinstance(wt, Ref) else None
                if prod is None or not (prod.op == "t.default" or (prod.op == "permute.default"
                                                                   and list(self._arg(prod, 1, "dims")) == [1, 0])):
                    return False
                w = prod.args[0]
            wkey, bkey = self._key(w), self._key(b)
            path = _strip(wkey or "", ".weight")
            if path is None or (b is not None and bkey != path + ".bias"):
                return False
            wt_ = self.state[wkey].tensor
            if wt_.dim() != 2:
                return False
            cfg = ("linear", tuple(wt_.shape), b is not None)
            leaf = nn.Linear(wt_.shape[1], wt_.shape[0], bias=b is not None)
            if not self._place(path, leaf, cfg):
                return False
            self.bind(node, self._call_leaf(path, (self.value(x),)))
            return True
        if op in ("conv1d.default", "conv2d.default", "conv1d.padding", "conv2d.padding", "convolution.default"):
            x, w, b = a(0, "input"), a(1, "weight"), a(2, "bias")
            wkey, bkey = self._key(w), self._key(b)
            path = _strip(wkey or "", ".weight")
            if path is None or (b is not None and bkey != path + ".bias"):
                return False
            wt_ = self.state[wkey].tensor
            nd = wt_.dim() - 2
            if nd not in (1, 2):
                return False
            if op == "convolution.default":
                if a(6, "transposed", False) or any(a(7, "output_padding", [0]) or [0]):
                    return False
                stride, padding, dilation, groups = a(3, "stride"), a(4, "padding"), a(5, "dilation"), a(8, "groups")
            else:
                stride, padding = a(3, "stride", [1]), a(4, "padding", [0] if op.endswith("default") else "valid")
                dilation, groups = a(5, "dilation", [1]), a(6, "groups", 1)
            try:
                stride, dilation = _tup(stride, nd), _tup(dilation, nd)
                padding = padding if isinstance(padding, str) else _tup(padding, nd)
                groups = int(groups)
                cls = nn.Conv1d if nd == 1 else nn.Conv2d
                cfg = ("conv", tuple(wt_.shape), b is not None, stride, padding, dilation, groups)
                leaf = cls(wt_.shape[1] * groups, wt_.shape[0], tuple(wt_.shape[2:]), stride=stride,
                           padding=padding, dilation=dilation, groups=groups, bias=b is not None)
            except (TypeError, ValueError):
                return False
            if not self._place(path, leaf, cfg):
                return False
            self.bind(node, self._call_leaf(path, (self.value(x),)))
            return True
        if "batch_norm" in op:
            x, w, b, rm, rv = (a(i, n) for i, n in enumerate(("input", "weight", "bias", "running_mean", "running_var")))
            if op == "_native_batch_norm_legit_no_training.default":
                momentum, eps = a(5, "momentum"), a(6, "eps")
            else:
                momentum, eps = a(6, "momentum"), a(7, "eps")
            rmkey, rvkey = self._key(rm), self._key(rv)
            path = _strip(rmkey or "", ".running_mean")
            if path is None or rvkey != path + ".running_var":
                return False
            if (w is not None and self._key(w) != path + ".weight") or (b is not None and self._key(b) != path + ".bias"):
                return False
            if (w is None) != (b is None):
                return False
            rank = self._rank(x)
            cls = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d}.get(rank)
            if cls is None:
                return False
            nf = self.state[rmkey].tensor.shape[0]
            cfg = ("bn", rank, nf, momentum, eps, w is not None)
            if not self._place(path, cls(nf, eps=float(eps), momentum=momentum, affine=w is not None), cfg):
                return False
            self.mutated.update((rmkey, rvkey, path + ".num_batches_tracked"))
            out = self._call_leaf(path, (self.value(x),))
            if len(node.outputs) == 1:
                self.bind(node, out)
            else:
                self.bind_first(node, out)
            return True
        if op in ("layer_norm.default", "native_layer_norm.default"):
            x, shape, w, b = a(0, "input"), a(1, "normalized_shape"), a(2, "weight"), a(3, "bias")
            eps = a(4, "eps", 1e-5)
            path = _strip(self._key(w) or "", ".weight")
            if path is None or (b is not None and self._key(b) != path + ".bias"):
                return False
            shape = tuple(int(s) for s in shape)
            cfg = ("ln", shape, float(eps), b is not None)
            if not self._place(path, nn.LayerNorm(shape, eps=float(eps), bias=b is not None), cfg):
                return False
            out = self._call_leaf(path, (self.value(x),))
            if op == "layer_norm.default":
                self.bind(node, out)
            else:
                self.bind_first(node, out)
            return True
        if op == "embedding.default":
            w, idx = a(0, "weight"), a(1, "indices")
            pad, scale, sparse = a(2, "padding_idx", -1), a(3, "scale_grad_by_freq", False), a(4, "sparse", False)
            wkey = self._key(w)
            path = _strip(wkey or "", ".weight")
            if path is None or self.state[wkey].tensor.dim() != 2:
                return False
            n, d = self.state[wkey].tensor.shape
            pad = None if pad is None or int(pad) < 0 else int(pad)
            cfg = ("emb", n, d, pad, bool(scale), bool(sparse))
            if not self._place(path, nn.Embedding(n, d, padding_idx=pad, scale_grad_by_freq=bool(scale),
                                                  sparse=bool(sparse)), cfg):
                return False
            self.bind(node, self._call_leaf(path, (self.value(idx),)))
            return True
        return False

    def _place_free(self, path: str, leaf: nn.Module, cfg: tuple) -> bool:
        """A parameter-free module: at `path` if nothing is there yet (or the same module)."""
        if path in self.leaves:
            return self.leaves[path] == cfg
        parent_path, _, attr = path.rpartition(".")
        if any(p in self.leaves for p in _prefixes(parent_path)) or not safe_path(path):
            return False
        parent = self._container(parent_path)
        if attr in parent._modules or attr in parent._parameters or attr in parent._buffers:
            return False
        parent.add_module(attr, leaf)
        self.leaves[path] = cfg
        return True

    def _rank(self, arg) -> int | None:
        return self.ranks.get(arg.name) if isinstance(arg, Ref) else None


def safe_path(path: str) -> bool:
    return all((p.isidentifier() and not keyword.iskeyword(p)) or (p.isdigit() and p.isascii())
               for p in path.split("."))


def _prefixes(path: str) -> list[str]:
    parts = [p for p in path.split(".") if p]
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _tup(v, n: int) -> tuple[int, ...]:
    if isinstance(v, int):
        return (v,) * n
    v = tuple(int(x) for x in v)
    if len(v) == 1:
        return v * n
    if len(v) != n:
        raise ValueError(v)
    return v


def build_graph_module(name: str, inputs: list[str], nodes: list[OpNode], output: str,
                       state: list[StateEntry], values: dict[str, str],
                       ranks: dict[str, int] | None = None) -> tuple[fx.GraphModule, Counter, set[str]]:
    """The trainable module computing `output` from the graph inputs `inputs` through `nodes`.

    `state`: every parameter and buffer (installed at its key, so ``state_dict()`` has the original keys);
    `values`: which graph value names stand for which state key; `ranks`: tensor rank per value name where
    known (batch norm needs it to choose BatchNorm1d or 2d). Returns the module (in training mode), the
    operator counts (``"aten.conv2d.default" -> 3``) and the state keys modules update themselves (batch
    norm statistics). Raises CheckpointError (one line) for an operator outside the allowlist.
    """
    b = _Builder(name, state, values)
    b.ranks = dict(ranks or {})
    for inp in inputs:
        b.env[inp] = b.graph.placeholder(inp if safe_path(inp) and not inp.isdigit() else b._fresh("input"))
    for node in nodes:
        b.add(node)
    b.graph.output(b.value(Ref(output)))
    gm = fx.GraphModule(b.root, b.graph, class_name="ExportedGraph")
    gm.graph.eliminate_dead_code()
    gm.recompile()
    # GraphModule copies only what the graph uses; keep every original tensor (unused ones included) so the
    # state_dict has all the original keys.
    gm._modules.update(b.root._modules)
    gm._parameters.update(b.root._parameters)
    for k, v in b.root._buffers.items():
        gm.register_buffer(k, v, persistent=k not in b.root._non_persistent_buffers_set)
    gm.train()
    return gm, b.ops, b.mutated
