"""Structural changes to a zoo model (thinner layers, low-rank factors), described as small JSON data.

A method that changes a model's shapes (low-rank factorisation, unit removal) records what it did as a
*structure spec*; the run file's /model attrs and the compact export carry it, and `apply_structure`
replays it on a freshly built zoo model before its state dict is loaded. A model without a spec is the
plain zoo architecture, so old run files and compact files load as before.

Spec (JSON):
    {"format": "workbench-structure", "version": 1,
     "layers": {"<layer>": {"kind": "fc"|"conv", "shape": [original weight shape], "bias": true|false,
                            "out_keep": [[start, stop], ...] | null,   # kept output units (half-open)
                            "in_keep":  [[start, stop], ...] | null,   # kept input columns / channels
                            "rank": r | null}}}                        # null: not factorised

A factorised Linear(m -> n) becomes nn.Sequential(nn.Linear(m, r, bias=False), nn.Linear(r, n)); a
Conv2d(C -> N, k) becomes nn.Sequential(nn.Conv2d(C, r, k, stride, padding, bias=False),
nn.Conv2d(r, N, 1)): stock modules, so the result runs (and exports to ONNX) without workbench code.
`in_keep` of a Linear that follows a flattened convolution lists columns (channel blocks of H*W).

Version 2 adds hashed layers (HashedNets, functional hashing: models/hashed/layers.py). An entry with a
"hashed" member replaces the layer by a HashedLinear / HashedConv2d, and the spec's "hashing" member
describes what the layers share; the seed is a tensor of the state dict (`hashing.seed`), so that the
compact file's payload holds everything the accounting counts:
    "layers": {"<layer>": {"kind", "shape", "bias",                  # as above
                           "hashed": {"id": i,                       # layer id, hashed with the seed
                                      "space": K_l | null,           # own space size; null: the shared one
                                      "dual": K2_l | null}}}         # own dual space size
    "hashing": {"u": U, "hash_bias": bool, "dual_space": bool,
                "space": K | null, "dual": K2 | null,                # shared spaces
                "g": {"widths": [...], "activation": "tanh"|"relu"|"linear", "shared": bool} | null}
Specs without hashed layers are still written as version 1, so builds that predate hashing read them.

Version 3 adds what structured pruning (methods/structured.py) removes besides plain layers' units:
    "layers": {"<conv>": {..., "depthwise": true},        # a depthwise Conv: out_keep = its channels
               "<bn>": {"kind": "norm", "shape": [C], "bias": affine, "out_keep": [...],
                        "in_keep": null, "rank": null}}   # a BatchNorm1d/2d keeps these channels
    "graph": [{"module", "op": "pad", "index", "was", "value"}, ...]   # models/graph_edits.py
and Conv1d layers as "conv" entries. Specs without these are still written as version 1 or 2.

Version 4 adds int8 layers (models/quantized.py, the `int8` stage), replayed after the layers and graph
edits above, so a factor (`fc1.0`) or a thinned layer can be quantized too:
    "quantized": {"<module path>": {"type": "Linear"|"Conv1d"|"Conv2d"|"Embedding",
                                    "shape": [weight shape as the layer has it],
                                    "per_channel": bool, "activations": bool}}
    "float_version": the version the spec has without "quantized"
Specs without it are still written as their earlier versions.
"""

from __future__ import annotations

import json
import math

import torch
from torch import nn

from workbench.core.errors import CheckpointError
from workbench.models import quantized
from workbench.models.graph_edits import apply_edits
from workbench.models.hashed import layers as hashed_layers

FORMAT, VERSION = "workbench-structure", 4
READABLE = (1, 2, 3, 4)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
ATTR = "workbench_structure"       # the applied spec, kept on the root module


def to_ranges(indices) -> list[list[int]]:
    """Sorted indices -> half-open [start, stop) runs (a kept-unit list stays short in JSON)."""
    out: list[list[int]] = []
    for i in (int(v) for v in indices):
        if out and out[-1][1] == i:
            out[-1][1] = i + 1
        else:
            out.append([i, i + 1])
    return out


def from_ranges(ranges) -> list[int]:
    return [i for start, stop in ranges for i in range(int(start), int(stop))]


def new_spec(version: int = 1) -> dict:
    return {"format": FORMAT, "version": version, "layers": {}}


def new_hashed_spec(hashing_entry: dict) -> dict:
    return {"format": FORMAT, "version": 2, "layers": {}, "hashing": hashing_entry}


def is_hashed(entry: dict) -> bool:
    return "hashed" in entry


def hashed_spec(model: nn.Module) -> dict | None:
    """The spec of a model whose layers are hashed, else None."""
    spec = structure_of(model)
    return spec if spec is not None and "hashing" in spec else None


def structure_of(model: nn.Module) -> dict | None:
    return getattr(model, ATTR, None)


def to_json(spec: dict) -> str:
    return json.dumps(spec, separators=(",", ":"), sort_keys=True)


def parse(spec: dict | str) -> dict:
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except ValueError:
            raise CheckpointError("the model's structure description is not valid JSON") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise CheckpointError("the model's structure description is not a workbench structure")
    if spec.get("version") not in READABLE:
        raise CheckpointError(f"structure version {spec.get('version')}; this build reads "
                              f"{', '.join(map(str, READABLE))}")
    return spec


def kept_count(entry: dict, key: str, full: int) -> int:
    """Units kept of `full` ("out_keep") or inputs kept ("in_keep")."""
    ranges = entry.get(key)
    return full if ranges is None else sum(int(b) - int(a) for a, b in ranges)


def _replacement(module: nn.Module, entry: dict) -> nn.Module:
    if entry.get("kind") == "norm":
        kept = kept_count(entry, "out_keep", module.num_features)
        return type(module)(kept, eps=module.eps, momentum=module.momentum, affine=module.affine,
                            track_running_stats=module.track_running_stats,
                            device=module.running_mean.device if module.running_mean is not None else None)
    weight = module.weight
    out_n = kept_count(entry, "out_keep", weight.shape[0])
    in_n = kept_count(entry, "in_keep", weight.shape[1])
    rank, bias = entry.get("rank"), module.bias is not None
    kw = {"device": weight.device, "dtype": weight.dtype}
    if isinstance(module, nn.Linear):
        if rank is None:
            return nn.Linear(in_n, out_n, bias=bias, **kw)
        return nn.Sequential(nn.Linear(in_n, rank, bias=False, **kw), nn.Linear(rank, out_n, bias=bias, **kw))
    conv = {"stride": module.stride, "padding": module.padding, "dilation": module.dilation,
            "padding_mode": module.padding_mode}
    if entry.get("depthwise"):
        return type(module)(out_n, out_n, module.kernel_size, groups=out_n, bias=bias, **conv, **kw)
    if rank is None:
        return type(module)(in_n, out_n, module.kernel_size, bias=bias, **conv, **kw)
    return nn.Sequential(nn.Conv2d(in_n, rank, module.kernel_size, bias=False, **conv, **kw),
                         nn.Conv2d(rank, out_n, 1, bias=bias, **kw))


def apply_structure(model: nn.Module, spec: dict | str) -> nn.Module:
    """Replace the spec's layers of a plain model by their thinner / factorised stock versions (fresh
    weights: load the state dict afterwards). Returns the model; raises CheckpointError on a misfit."""
    spec = parse(spec)
    if structure_of(model) is not None:
        raise CheckpointError("this model already carries a structure; apply one to a plain model")
    root = None
    if "hashing" in spec:
        try:
            first = next(p for p in model.parameters())
            root = hashed_layers.install_root(model, spec["hashing"], first.device, first.dtype)
        except (ValueError, StopIteration, KeyError, TypeError) as exc:
            raise CheckpointError(f"cannot rebuild the hashed layers: {exc}") from None
    for name, entry in spec["layers"].items():
        try:
            module = model.get_submodule(name)
        except AttributeError:
            raise CheckpointError(f"structure names layer {name!r}, which the model lacks") from None
        why = _misfit(module, entry)
        if why:
            raise CheckpointError(f"structure names {name!r}, which {why}")
        shape = [module.num_features] if isinstance(module, NORMS) else list(module.weight.shape)
        has_bias = module.affine if isinstance(module, NORMS) else module.bias is not None
        if shape != list(entry["shape"]) or has_bias != bool(entry["bias"]):
            raise CheckpointError(f"structure expects {name} of shape {tuple(entry['shape'])}, the model has "
                                  f"{tuple(shape)}")
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if is_hashed(entry):
            if root is None:
                raise CheckpointError(f"structure hashes {name} but describes no hashing")
            try:
                new = hashed_layers.replacement(module, entry, spec["hashing"], root)
            except (ValueError, KeyError, TypeError) as exc:
                raise CheckpointError(f"cannot rebuild hashed layer {name}: {exc}") from None
        else:
            new = _replacement(module, entry)
        setattr(parent, child, new.train(module.training))      # a BatchNorm's mode matters
    if spec.get("graph"):
        apply_edits(model, spec["graph"])
    if spec.get("quantized"):
        try:
            quantized.replay(model, spec["quantized"])
        except (ValueError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"cannot rebuild the int8 layers: {exc}") from None
    object.__setattr__(model, ATTR, spec)      # a plain attribute, not a submodule or buffer
    return model


def record_quantized(model: nn.Module, names: list[str]) -> dict:
    """Add the layers `names` (already made int8 by models/quantized.py) to the model's spec, making one
    if it has none; returns the spec."""
    spec = dict(structure_of(model) or new_spec())
    spec["quantized"] = {**spec.get("quantized", {}),
                         **{name: quantized.spec_entry(model.get_submodule(name)) for name in names}}
    spec.setdefault("float_version", spec["version"])     # what the spec needs without its int8 layers
    spec["version"] = 4
    object.__setattr__(model, ATTR, spec)
    return spec


def thinned_only(spec: dict | None) -> bool:
    """Whether the spec removes channels / units and nothing else (no factors, no hashing): a dense model
    of the thinner shapes holds the same function (int8 layers aside: their weights are plain values)."""
    return bool(spec) and bool(spec["layers"]) and "hashing" not in spec and all(
        e.get("rank") is None and not is_hashed(e) for e in spec["layers"].values())


def float_spec(spec: dict) -> dict:
    """The spec without its int8 layers (what a float model of the same shapes needs)."""
    out = {k: v for k, v in spec.items() if k not in ("quantized", "float_version")}
    out["version"] = spec.get("float_version", spec["version"])
    return out


def _misfit(module: nn.Module, entry: dict) -> str | None:
    """Why `module` cannot take `entry` (None: it can)."""
    if entry.get("kind") == "norm":
        return None if isinstance(module, NORMS) else "is not a BatchNorm layer"
    if isinstance(module, nn.Linear):
        return None
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        if entry.get("rank") is not None and not isinstance(module, nn.Conv2d):
            return "is not a Conv2d layer (only those are factorised)"
        depthwise = module.groups > 1 and module.groups == module.in_channels == module.out_channels
        if module.groups == 1 or (depthwise and entry.get("depthwise")):
            return None
        return "is a grouped convolution"
    return "is not a Linear, Conv or BatchNorm layer"


def dense_params(entry: dict) -> int:
    """Parameters of the original (dense) layer: the denominator of the layer's compression ratio."""
    shape = entry["shape"]
    if entry.get("kind") == "norm":           # scale and shift when affine; running statistics are buffers
        return 2 * shape[0] if entry["bias"] else 0
    return math.prod(shape) + (shape[0] if entry["bias"] else 0)


def tensor_owners(model: nn.Module) -> dict[str, tuple[str, int]]:
    """Module prefix of each stored tensor -> (original layer name, dense parameters of that layer);
    empty for a plain model. The two factors of `fc1` (`fc1.0`, `fc1.1`) account as layer `fc1`."""
    spec = structure_of(model)
    if spec is None:
        return {}
    out = {}
    for name, entry in spec["layers"].items():
        if is_hashed(entry):
            prefixes = [name] + [n for n, _ in model.get_submodule(name).named_modules(prefix=name)][1:]
        else:
            prefixes = [f"{name}.0", f"{name}.1"] if entry.get("rank") is not None else [name]
        for prefix in prefixes:
            out[prefix] = (name, dense_params(entry))
    return out


def _expand(t: torch.Tensor, dim: int, keep, full: int, fill: float = 0.0) -> torch.Tensor:
    if keep is None:
        return t
    shape = list(t.shape)
    shape[dim] = full
    out = t.new_full(shape, fill)
    index = torch.tensor(from_ranges(keep), device=t.device)
    return out.index_copy(dim, index, t)


def dense_layer(model: nn.Module, name: str) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """(weight, bias) of a structured layer at its original shape: the factors multiplied out, removed
    units and inputs as zeros. None when `name` is not a structured layer."""
    spec = structure_of(model)
    if spec is None or name not in spec["layers"]:
        return None
    entry = spec["layers"][name]
    shape = entry["shape"]
    module = model.get_submodule(name)
    if is_hashed(entry):
        return module.dense()                 # the virtual weights, multiplied out
    if entry.get("kind") == "norm" and not entry["bias"]:
        return None
    with torch.no_grad():
        if entry.get("rank") is None:
            weight, bias = module.weight.detach(), module.bias
        else:
            first, second = module[0], module[1]
            a = first.weight.detach().reshape(first.weight.shape[0], -1)
            w = second.weight.detach().reshape(second.weight.shape[0], -1) @ a
            weight = w.reshape((w.shape[0], first.weight.shape[1], *shape[2:]))
            bias = second.bias
        weight = _expand(weight, 0, entry.get("out_keep"), shape[0])
        if entry.get("in_keep") is not None:
            weight = _expand(weight, 1, entry["in_keep"], shape[1])
        if bias is not None:
            bias = _expand(bias.detach(), 0, entry.get("out_keep"), shape[0])
    return weight, bias


def dense_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict of the original architecture (exact: removed units output zero, and their constant
    outputs were folded into the next layer's bias when they were removed)."""
    state = model.state_dict()
    spec = structure_of(model)
    if spec is None:
        return state
    state = quantized.strip_buffers(state, model)     # int8 weights are plain values on their grid already
    if "hashing" in spec:                    # the seed and shared spaces have no dense counterpart
        for key in [k for k in state if k.startswith(hashed_layers.ROOT + ".")]:
            del state[key]
    for name, entry in spec["layers"].items():
        own = {k[len(name) + 1:]: state.pop(k) for k in [k for k in state if k.startswith(name + ".")]}
        if entry.get("kind") == "norm":       # removed channels: zero scale and shift, so they output 0
            full, keep = entry["shape"][0], entry.get("out_keep")
            fills = {"running_mean": 0.0, "running_var": 1.0}
            for key, t in own.items():
                state[f"{name}.{key}"] = t if t.dim() == 0 else _expand(t.detach(), 0, keep, full, fills.get(key, 0.0))
            continue
        weight, bias = dense_layer(model, name)
        state[f"{name}.weight"] = weight
        if bias is not None:
            state[f"{name}.bias"] = bias
    return state


def expand_state(state: dict[str, torch.Tensor], spec: dict) -> dict[str, torch.Tensor]:
    """A thinned model's state dict (`thinned_only` spec) at the original architecture's shapes, from the
    spec alone: removed units and inputs as zeros, removed BatchNorm channels with zero scale and shift
    and neutral statistics (what `dense_state_dict` gives from the model)."""
    out = dict(state)
    for name, entry in spec["layers"].items():
        full, keep = entry["shape"], entry.get("out_keep")
        if entry.get("kind") == "norm":
            fills = {"running_mean": 0.0, "running_var": 1.0}
            for key in [k for k in out if k.startswith(name + ".") and k.count(".") == name.count(".") + 1]:
                t, leaf = out[key], key[len(name) + 1:]
                if t.dim():
                    out[key] = _expand(t, 0, keep, full[0], fills.get(leaf, 0.0))
            continue
        weight = _expand(out[f"{name}.weight"], 0, keep, full[0])
        if entry.get("in_keep") is not None:
            weight = _expand(weight, 1, entry["in_keep"], full[1])
        out[f"{name}.weight"] = weight
        if entry["bias"]:
            out[f"{name}.bias"] = _expand(out[f"{name}.bias"], 0, keep, full[0])
    return out


def dense_param_count(model: nn.Module) -> int:
    """Parameters of the original architecture (structured layers at their dense size)."""
    spec = structure_of(model)
    if spec is None:
        return sum(p.numel() for p in model.parameters())
    replaced = [name + "." for name in spec["layers"]] + ([hashed_layers.ROOT + "."] if "hashing" in spec else [])
    total = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(tuple(replaced)))
    return total + sum(dense_params(e) for e in spec["layers"].values())
