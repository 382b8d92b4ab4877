"""Coupled channel groups of a model, found by tracing its graph: what structured pruning removes together.

Every output channel (unit) of every Linear / Conv1d / Conv2d is an element of a union-find. The model
is traced with torch.fx (a graph-loaded .pt2 / ONNX model already is a GraphModule) and run once on an
example batch, node by node (`_Walk`); the rules (here for layers, `channel_rules` for functions) join
elements that must go together:
* a residual addition joins the channels it adds, index by index;
* a concatenation lays its inputs' channels side by side (each keeps its offset);
* a depthwise convolution passes its input channels on (its channel k is its input channel k);
* a BatchNorm, a ReLU, pooling, flatten (each channel then a block of columns), ... pass channels on;
* zero padding of the channel dimension (ResNet option-A shortcuts) brings always-zero channels, which
  join whatever they are added to; the pad's amounts are rewritten when channels go (thinning.py).
A group's members are layers' output units (removed: the unit's weights and bias), the input columns
they feed (removed: those columns) and BatchNorm entries. A channel that reaches an operation the rules
do not know, the model's output, or a layer called twice freezes its whole group: it stays, and
`ChannelAnalysis.messages` says which layers keep channels and why.

Nothing here changes the model; `thinning.py` removes the groups a method chose.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass

import torch
from torch import fx, nn

from workbench.core.errors import WorkbenchError
from workbench.models import channel_ops as ops
from workbench.models.channel_ops import Chan, PadSite
from workbench.models.channel_rules import function_rule

LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass(frozen=True)
class Member:
    role: str          # "out": a layer's output unit (also a depthwise channel); "in": an input column; "bn"
    name: str          # the layer's / BatchNorm's name
    index: int


@dataclass
class LayerUse:
    """One call of a layer: multiply-adds per sample = coef x kept outputs x kept inputs ("dense"),
    coef x kept channels ("depthwise"), or coef as it is ("fixed": a grouped convolution, never thinned)."""
    name: str
    coef: int
    kind: str


@dataclass
class ChannelGroup:
    id: int
    members: list[Member]

    def producers(self) -> Counter:
        """Output units per layer in the group (normally one each: channel k of each coupled layer)."""
        return Counter(m.name for m in self.members if m.role == "out")

    def family(self) -> tuple[str, ...]:
        """The coupled layers: groups of one family differ only in which channel index they hold."""
        return tuple(sorted(self.producers()))


@dataclass
class ChannelAnalysis:
    groups: list[ChannelGroup]                 # the removable groups
    frozen_reasons: dict[str, list[str]]       # reasons -> layers whose output channels they keep
    layers: dict[str, nn.Module]               # traced Linear / Conv / BatchNorm layers by name
    uses: list[LayerUse]
    pads: list[PadSite]
    element_group: dict[int, int]              # union-find element -> removable group id

    def removed_counts(self, removed) -> tuple[Counter, Counter]:
        """(output units, input columns) removed per layer."""
        outs, ins = Counter(), Counter()
        for gid in removed:
            for m in self.groups[gid].members:
                if m.role in ("out", "in"):
                    (outs if m.role == "out" else ins)[m.name] += 1
        return outs, ins

    def macs(self, removed=(), counts: tuple[Counter, Counter] | None = None) -> int:
        """Multiply-adds per sample of the Linear / Conv layers with the given groups removed."""
        outs, ins = counts if counts is not None else self.removed_counts(removed)
        total = 0
        for use in self.uses:
            m = self.layers[use.name]
            o = out_size(m) - outs[use.name]
            total += use.coef * (1 if use.kind == "fixed" else o if use.kind == "depthwise"
                                 else o * (in_size(m) - ins[use.name]))
        return total

    def messages(self, limit: int = 6) -> list[str]:
        out = []
        for reason, names in self.frozen_reasons.items():
            shown = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
            out.append(f"channels of {shown} stay: {reason}")
        return out


def out_size(m: nn.Module) -> int:
    if isinstance(m, NORMS):
        return m.num_features
    return m.out_features if isinstance(m, nn.Linear) else m.out_channels


def in_size(m: nn.Module) -> int:
    return m.in_features if isinstance(m, nn.Linear) else m.in_channels // m.groups


def analyse(model: nn.Module, example: tuple) -> ChannelAnalysis:
    """Trace `model`, run it once on `example` (the positional inputs of one forward, e.g. a batch) in
    evaluation mode without gradients, and return its coupled channel groups. A model that cannot be
    traced is a WorkbenchError (one line)."""
    if isinstance(model, fx.GraphModule):
        gm = model
    else:
        try:
            gm = fx.symbolic_trace(model)
        except Exception as exc:  # noqa: BLE001 - Python control flow on tensor values, etc.
            raise WorkbenchError(f"the model's graph could not be traced for structured pruning "
                                 f"({type(exc).__name__}: {(str(exc).splitlines() or [''])[0]})") from None
    walk = _Walk(gm, model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            walk.run(*example)
    finally:
        model.train(was_training)
    return walk.result()


class _Walk(fx.Interpreter):
    """Runs the traced graph node by node and applies the channel rules to each node's real values."""

    def __init__(self, gm: fx.GraphModule, model: nn.Module):
        super().__init__(gm)
        self.model = model
        self.parent: list[int] = []
        self.reasons: dict[int, list[str]] = {}        # root -> why its component is frozen
        self.members: dict[int, list[Member]] = defaultdict(list)
        self.info: dict[fx.Node, object] = {}
        self.layers: dict[str, nn.Module] = {}
        self.uses: list[LayerUse] = []
        self.pads: list[PadSite] = []
        self.seen: dict[str, tuple] = {}               # layer -> (its input channels, its output channels)
        self.pad_count: Counter = Counter()

    # --- union-find ----------------------------------------------------------------------------
    def fresh(self, n: int, frozen: str | None = None) -> tuple[int, ...]:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        ids = tuple(range(start, start + n))
        if frozen:
            self.freeze(ids, frozen)
        return ids

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = sorted((self.find(a), self.find(b)))
        if ra == rb:
            return
        self.parent[rb] = ra
        moved = self.reasons.pop(rb, None)
        if moved:
            bucket = self.reasons.setdefault(ra, [])
            bucket.extend(r for r in moved if r not in bucket)

    def freeze(self, ids, reason: str) -> None:
        for e in ids:
            bucket = self.reasons.setdefault(self.find(e), [])
            if reason not in bucket:
                bucket.append(reason)

    def freeze_all(self, value, reason: str) -> None:
        """Freeze the channels of every tensor in a structure of node infos (lists, tuples)."""
        if isinstance(value, Chan):
            self.freeze(value.ids, reason)
        elif isinstance(value, (list, tuple)):
            for v in value:
                self.freeze_all(v, reason)

    # --- running ---------------------------------------------------------------------------------
    def run_node(self, n: fx.Node):
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        result = getattr(self, n.op)(n.target, args, kwargs)
        self.info[n] = self.channels(n, args, kwargs, result)
        return result

    def chan(self, a) -> Chan | None:
        info = self.info.get(a) if isinstance(a, fx.Node) else None
        return info if isinstance(info, Chan) else None

    def arg_infos(self, a):
        if isinstance(a, fx.Node):
            return self.info.get(a)
        if isinstance(a, (list, tuple)):
            return [self.arg_infos(v) for v in a]
        if isinstance(a, dict):
            return [self.arg_infos(v) for v in a.values()]
        return None

    def module_of(self, n: fx.Node) -> str | None:
        """The module whose own graph holds `n`: "" for a GraphModule's own nodes, the innermost module
        of a Python model's trace, None when that is the Python model's own forward."""
        if self.model is self.module:
            return ""
        stack = n.meta.get("nn_module_stack") or {}
        return next(reversed(stack.values()))[0] if stack else None

    def channels(self, n: fx.Node, args, kwargs, result):
        if n.op in ("placeholder", "get_attr"):
            return None
        if n.op == "output":
            self.freeze_all(self.arg_infos(n.args), "they are the model's outputs")
            return None
        if n.op == "call_module":
            return self.module_rule(n, self.module.get_submodule(n.target), args, result)
        name = ops.op_name(n)
        if name == "getitem" and not isinstance(args[0], torch.Tensor):
            parts = self.info.get(n.args[0]) if isinstance(n.args[0], fx.Node) else None
            return parts[args[1]] if isinstance(parts, (list, tuple)) and isinstance(args[1], (int, slice)) else None
        if name in ops.SHAPE_QUERIES:
            return None
        return function_rule(self, n, name, args, kwargs, result)

    # --- modules -------------------------------------------------------------------------------------
    def module_rule(self, n: fx.Node, m: nn.Module, args, result):
        cx = self.chan(n.args[0]) if n.args else None
        x = args[0] if args else None
        if isinstance(m, LAYERS + NORMS):
            if n.target in self.seen:           # shared weights: both calls would have to thin alike
                why = f"{n.target} is called more than once"
                self.freeze_all([cx, *self.seen[n.target]], why)
                if isinstance(m, LAYERS):     # its multiply-adds count again, at its full size
                    macs = _positions(m, result) * _kernel(m) * out_size(m) * in_size(m)
                    self.uses.append(LayerUse(n.target, macs, "fixed"))
                return Chan(self._out_dim(m, result), self.fresh(out_size(m), why))
            self.layers[n.target] = m
        if isinstance(m, LAYERS):
            out = self.layer_rule(n.target, m, x, cx, result)
            self.seen[n.target] = (cx, out)
            return out
        if isinstance(m, NORMS):
            self.seen[n.target] = (cx,)
            if cx is None or cx.dim != 1 or len(cx.ids) != m.num_features:
                self.freeze_all(cx, f"they feed {n.target} along another dimension")
                return None
            if not m.affine:
                self.freeze(cx.ids, f"{n.target} has no scale and shift that could zero a removed channel")
            for k, e in enumerate(cx.ids):
                self.members[e].append(Member("bn", n.target, k))
            return cx
        if isinstance(m, ops.UNARY_MODULES) or (isinstance(m, nn.Hardtanh) and m.min_val <= 0 <= m.max_val):
            return cx
        if isinstance(m, ops.SPATIAL_MODULES):
            return self.spatial(cx, f"{type(m).__name__} ({n.target})")
        if isinstance(m, (nn.Flatten, nn.Unflatten)):
            return self.regroup(cx, x, result, f"{type(m).__name__} ({n.target})")
        if isinstance(m, nn.Embedding):
            return None
        self.freeze_all(self.arg_infos(n.args), f"they feed {type(m).__name__} ({n.target})")
        return None

    @staticmethod
    def _out_dim(m: nn.Module, y) -> int:
        if not isinstance(y, torch.Tensor):
            return 0
        if isinstance(m, nn.Linear):
            return y.dim() - 1
        return 1 if y.dim() == m.weight.dim() or isinstance(m, NORMS) else 0

    def layer_rule(self, name: str, m: nn.Module, x, cx: Chan | None, y: torch.Tensor) -> Chan:
        n_out = out_size(m)
        linear = isinstance(m, nn.Linear)
        in_dim, out_dim = (x.dim() - 1, y.dim() - 1) if linear else ((1, 1) if _batched(m, y) else (0, 0))
        n_in = m.in_features if linear else m.in_channels
        fits = cx is not None and cx.dim == in_dim and len(cx.ids) == n_in
        if cx is not None and not fits:
            self.freeze(cx.ids, f"they feed {name} along another dimension")
        coef = _positions(m, y) * _kernel(m)
        groups = 1 if linear else m.groups
        if groups > 1 and not (groups == m.in_channels == m.out_channels):
            why = f"{name} is a grouped convolution (its groups tie channels in blocks)"
            self.freeze_all(cx, why)
            self.uses.append(LayerUse(name, coef * n_out * in_size(m), "fixed"))
            return Chan(out_dim, self._outputs(name, self.fresh(n_out, why)))
        if groups > 1:                        # depthwise: channel k in is channel k out
            self.uses.append(LayerUse(name, coef, "depthwise"))
            if not fits:
                why = f"{name} is depthwise and its inputs cannot be removed with it"
                return Chan(out_dim, self._outputs(name, self.fresh(n_out, why)))
            return Chan(out_dim, self._outputs(name, cx.ids))
        self.uses.append(LayerUse(name, coef, "dense"))
        if fits:
            for k, e in enumerate(cx.ids):
                self.members[e].append(Member("in", name, k))
        return Chan(out_dim, self._outputs(name, self.fresh(n_out)))

    def _outputs(self, name: str, ids: tuple[int, ...]) -> tuple[int, ...]:
        for k, e in enumerate(ids):
            self.members[e].append(Member("out", name, k))
        return ids

    # --- helpers the function rules share ------------------------------------------------------------
    def spatial(self, cx: Chan | None, what: str) -> Chan | None:
        if cx is not None and cx.dim != 1:
            self.freeze(cx.ids, f"they feed {what} along the channels")
            return None
        return cx

    def regroup(self, cx: Chan | None, x, result, what: str) -> Chan | None:
        if cx is None or not isinstance(result, torch.Tensor) or not isinstance(x, torch.Tensor):
            return None
        mapped, _ = ops.reshape_map(cx, tuple(x.shape), tuple(result.shape))
        if mapped is None:
            self.freeze(cx.ids, f"{what} reshapes across them")
        return mapped

    # --- the result ----------------------------------------------------------------------------------
    def result(self) -> ChannelAnalysis:
        elements: dict[int, list[int]] = defaultdict(list)
        for e in range(len(self.parent)):
            elements[self.find(e)].append(e)
        frozen: dict[str, list[str]] = {}
        groups, element_group = [], {}
        for root in sorted(elements):
            members = [m for e in elements[root] for m in self.members.get(e, ())]
            producers = sorted({m.name for m in members if m.role == "out"})
            if root in self.reasons:
                bucket = frozen.setdefault("; ".join(self.reasons[root]), [])
                bucket.extend(p for p in producers if p not in bucket)
                continue
            if not producers:
                continue          # always-zero channels (padding) that no layer produces
            element_group.update((e, len(groups)) for e in elements[root])
            groups.append(ChannelGroup(len(groups), members))
        frozen = {r: names for r, names in frozen.items() if names}
        return ChannelAnalysis(groups, frozen, self.layers, self.uses, self.pads, element_group)


def _batched(m: nn.Module, y: torch.Tensor) -> bool:
    return y.dim() >= 2 if isinstance(m, nn.Linear) else y.dim() == m.weight.dim()


def _positions(m: nn.Module, y: torch.Tensor) -> int:
    """Output positions per sample of one call (pixels of a conv, tokens of a linear layer)."""
    return y.numel() // ((y.shape[0] if _batched(m, y) else 1) * out_size(m))


def _kernel(m: nn.Module) -> int:
    return 1 if isinstance(m, nn.Linear) else math.prod(m.kernel_size)
