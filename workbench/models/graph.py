"""Which layer consumes a layer's outputs: the facts unit removal needs, read from the model's FX graph.

A unit (output row / channel) of layer L can be cut out physically only when L's output flows, through
ops that treat each unit on its own and map a constant to a constant (ReLU, pooling, dropout,
flatten), into exactly one next layer: then the unit's column(s) in that layer go too, and a constant
output it still had (its bias) is folded into that layer's bias. Anything else (a residual addition, a
BatchNorm, a concatenation, the model's output) keeps L's units, with the reason.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

_RELU_MODULES = (nn.ReLU,)
_POOL_MODULES = (nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_SAME_MODULES = (nn.Dropout, nn.Identity)
_RELU_FUNCS = {F.relu, torch.relu}
_SAME_FUNCS = {F.max_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d, F.dropout}
_FLATTEN_FUNCS = {torch.flatten}


@dataclass(frozen=True)
class Successor:
    name: str              # the one compressible layer the outputs flow into
    relu: bool             # a ReLU lies between: a constant unit output c arrives as max(c, 0)
    flatten: bool          # conv -> flatten -> Linear: each channel is a block of H*W columns


def _avg_pool_keeps_constants(m: nn.Module) -> bool:
    return isinstance(m, nn.AvgPool2d) and m.padding in (0, (0, 0))


def _step(node: fx.Node, modules: dict[str, nn.Module]) -> str | None:
    """How a node treats units: 'relu', 'same', 'flatten', 'layer', or None (it mixes units)."""
    if node.op == "call_module":
        m = modules[node.target]
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            return "layer"
        if isinstance(m, _RELU_MODULES):
            return "relu"
        if isinstance(m, _POOL_MODULES + _SAME_MODULES) or _avg_pool_keeps_constants(m):
            return "same"
        if isinstance(m, nn.Flatten):
            return "flatten"
        return None
    if node.op == "call_function":
        if node.target in _RELU_FUNCS:
            return "relu"
        if node.target in _SAME_FUNCS:
            return "same"
        if node.target in _FLATTEN_FUNCS:
            return "flatten"
        return None
    if node.op == "call_method":
        return {"relu": "relu", "flatten": "flatten"}.get(node.target)
    return None


def _is_add(node: fx.Node) -> bool:
    return node.op == "call_function" and node.target in (operator.add, torch.add, operator.iadd)


def _describe(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "output":
        return "its outputs are the model's outputs"
    if _is_add(node):
        return "it feeds an addition (a residual connection)"
    if node.op == "call_module":
        what = f"it feeds {type(modules[node.target]).__name__} ({node.target})"
        after = node
        while len(after.users) == 1:                 # say where a BatchNorm's output goes on to
            after = next(iter(after.users))
            if _is_add(after):
                return what + " and then an addition (a residual connection)"
            if _step(after, modules) not in ("relu", "same"):
                break
        return what
    return f"it feeds {getattr(node.target, '__name__', node.target)}"


def successors(model: nn.Module) -> tuple[dict[str, Successor | str], list[str]]:
    """({layer: Successor or the reason it has none}, compressible layers in execution order)."""
    try:
        traced = fx.symbolic_trace(model)
    except Exception as exc:  # noqa: BLE001 - user models may not be traceable; then nothing is removed
        names = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
        reason = f"the model's graph could not be traced ({type(exc).__name__})"
        return {n: reason for n in names}, names
    modules = dict(traced.named_modules())
    layer_nodes = [n for n in traced.graph.nodes if n.op == "call_module" and _step(n, modules) == "layer"]
    counts: dict[str, int] = {}
    for n in layer_nodes:
        counts[n.target] = counts.get(n.target, 0) + 1
    out: dict[str, Successor | str] = {}
    order = []
    for node in layer_nodes:
        name = node.target
        if name in order:
            continue
        order.append(name)
        if counts[name] > 1:
            out[name] = "the layer is called more than once"
            continue
        out[name] = _follow(node, modules)
    return out, order


def _follow(node: fx.Node, modules: dict[str, nn.Module]) -> Successor | str:
    source = modules[node.target]
    relu = flatten = False
    while True:
        users = list(node.users)
        if len(users) != 1:
            return "its output is used in several places (e.g. a residual connection)" if users else \
                "its output is unused"
        node = users[0]
        step = _step(node, modules)
        if step is None:
            return _describe(node, modules)
        if step == "relu":
            relu = True
        elif step == "flatten":
            flatten = True
        elif step == "layer":
            return _check_pair(source, node.target, modules[node.target], relu, flatten)


def _check_pair(source: nn.Module, name: str, target: nn.Module, relu: bool, flatten: bool
                ) -> Successor | str:
    if isinstance(target, nn.Conv2d) and target.groups != 1:
        return f"it feeds a grouped convolution ({name})"
    if isinstance(source, nn.Conv2d):
        if isinstance(target, nn.Conv2d) and not flatten:
            return Successor(name, relu, False)
        if isinstance(target, nn.Linear) and flatten and target.in_features % source.out_channels == 0:
            return Successor(name, relu, True)
        return f"its channels do not map to {name}'s inputs one by one"
    if isinstance(target, nn.Linear):
        return Successor(name, relu, False)
    return f"it feeds a convolution ({name}) from a fully connected layer"
