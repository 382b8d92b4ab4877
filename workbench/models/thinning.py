"""Remove chosen channel groups (channel_groups.py) from a model physically: thinner stock layers, recorded
in the model's structure spec (structure.py) so that a run file's model, its compact file and its
exports are rebuilt smaller.

Per layer: a Linear / Conv keeps the rows (output units) and columns (inputs) of the groups that stay, a
depthwise Conv and a BatchNorm their channels, and a zero padding of the channel dimension pads by as
many zero channels as stay on each side. The masked model computes exactly the same function, since a
removed group is exactly zero there: `masks` gives the tensors to zero for it.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn

from workbench.models import structure
from workbench.models.channel_groups import NORMS, ChannelAnalysis


def masks(analysis: ChannelAnalysis, removed) -> list[tuple[nn.Parameter, torch.Tensor]]:
    """(parameter, indices along dim 0 to zero) that make the removed groups output exact zeros: each
    producing layer's weight rows and bias entries, each BatchNorm's scale and shift."""
    rows = _removed(analysis, removed)["out"]
    out = []
    for name, idx in rows.items():
        module = analysis.layers[name]
        index = torch.tensor(sorted(idx), dtype=torch.long, device=module.weight.device)
        out.extend((p, index) for p in (module.weight, getattr(module, "bias", None)) if p is not None)
    return out


def _removed(analysis: ChannelAnalysis, removed) -> dict[str, dict[str, set[int]]]:
    gone = {"out": defaultdict(set), "in": defaultdict(set)}
    for gid in removed:
        for m in analysis.groups[gid].members:
            gone["in" if m.role == "in" else "out"][m.name].add(m.index)   # a BatchNorm's channels: "out"
    return gone


def _keep(full: int, gone: set[int]) -> torch.Tensor:
    return torch.tensor([i for i in range(full) if i not in gone], dtype=torch.long)


@torch.no_grad()
def thin(model: nn.Module, analysis: ChannelAnalysis, removed) -> dict:
    """Replace the layers that lose channels by thinner ones holding the kept weights; returns the spec
    applied to `model` (see structure.py)."""
    gone = _removed(analysis, removed)
    spec = structure.new_spec()
    tensors: dict[str, torch.Tensor] = {}
    version = 1
    for name, m in analysis.layers.items():
        out_gone, in_gone = gone["out"].get(name, set()), gone["in"].get(name, set())
        if not out_gone and not in_gone:
            continue
        if isinstance(m, NORMS):
            keep = _keep(m.num_features, out_gone)
            spec["layers"][name] = {"kind": "norm", "shape": [m.num_features], "bias": m.affine,
                                    "out_keep": _ranges(keep), "in_keep": None, "rank": None}
            for key, t in list(m.named_parameters()) + list(m.named_buffers()):
                tensors[f"{name}.{key}"] = t.detach()[keep.to(t.device)] if t.dim() else t.detach()
            version = 3
            continue
        depthwise = not isinstance(m, nn.Linear) and m.groups > 1
        w = m.weight.detach()
        keep_out = _keep(w.shape[0], out_gone).to(w.device)
        entry = {"kind": "fc" if isinstance(m, nn.Linear) else "conv", "shape": list(w.shape),
                 "bias": m.bias is not None, "out_keep": _ranges(keep_out) if out_gone else None,
                 "in_keep": None, "rank": None}
        w = w[keep_out]
        if in_gone and not depthwise:
            keep_in = _keep(w.shape[1], in_gone).to(w.device)
            entry["in_keep"] = _ranges(keep_in)
            w = w[:, keep_in]
        if depthwise:
            entry["depthwise"] = True
        if depthwise or isinstance(m, nn.Conv1d):
            version = 3
        spec["layers"][name] = entry
        tensors[f"{name}.weight"] = w
        if m.bias is not None:
            tensors[f"{name}.bias"] = m.bias.detach()[keep_out]
    edits = _pad_edits(analysis, removed)
    if edits:
        spec["graph"], version = edits, 3
    spec["version"] = version
    if spec["layers"] or edits:
        structure.apply_structure(model, spec)
        own = dict(model.named_parameters()) | dict(model.named_buffers())
        for key, value in tensors.items():
            own[key].copy_(value)
    return spec


def _pad_edits(analysis: ChannelAnalysis, removed) -> list[dict]:
    removed = set(removed)
    edits = []
    for site in analysis.pads:
        before = sum(1 for e in site.before if analysis.element_group.get(e) not in removed)
        after = sum(1 for e in site.after if analysis.element_group.get(e) not in removed)
        if (before, after) == (len(site.before), len(site.after)):
            continue
        value = list(site.arg)
        value[2 * site.pair], value[2 * site.pair + 1] = before, after
        edits.append({"module": site.module, "op": "pad", "index": site.index, "was": list(site.arg),
                      "value": value})
    return edits


def _ranges(keep: torch.Tensor) -> list[list[int]]:
    return structure.to_ranges(keep.tolist())
