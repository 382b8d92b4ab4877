"""Per-layer bucket occupancy and collision statistics of hashed layers, for the run file.

A "member" is one (element, hash function) fetch: a layer with n virtual elements and U hash functions
puts n U members into its space. Per layer (series under /layers/<layer>/ in the run file):
    buckets             size of the space the layer reads (its own or the shared one)
    members_mean        members per bucket, over the buckets this layer's members reach
    members_max         the fullest bucket (counting every layer's members)
    empty_fraction      fraction of the space no member of any layer reaches
    collision_fraction  fraction of this layer's members whose bucket holds other members too
    cross_fraction      fraction of this layer's members whose bucket other layers' members reach too
                        (shared space only: how much the layers share)
    occupancy_hist      over the layer's space: how many buckets hold [0, w), [w, 2w), ... members, 33
                        bins of width w reaching past the fullest bucket
    occupancy_bin       w: 1 where no bucket holds 33 or more members; wider bins where the budget is
                        small or U is large (a shared space at U = 4 averages 32 members a bucket)
    space_rms           root mean square of the space's values (changes with training)
The hash is fixed by the seed, so the occupancy is computed once and repeated each epoch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from workbench.models.hashed.layers import hashed_layers

HIST_BINS = 33


@torch.no_grad()
def occupancy(model: nn.Module) -> dict[str, dict[str, float | np.ndarray]]:
    layers = hashed_layers(model)
    per_layer: dict[str, torch.Tensor] = {}
    total: dict[int, torch.Tensor] = {}
    for name, layer in layers:
        table = layer.table
        counts = torch.zeros(table.numel(), dtype=torch.int64, device=table.device)
        for _, _, bucket, _ in layer.code_chunks(table.device):
            counts += torch.bincount(bucket.reshape(-1), minlength=table.numel())
        per_layer[name] = counts
        total[id(table)] = total.get(id(table), torch.zeros_like(counts)) + counts
    out = {}
    for name, layer in layers:
        mine, all_ = per_layer[name], total[id(layer.table)]
        members = int(mine.sum())
        reached = mine > 0
        width = max(1, -(-(int(all_.max()) + 1) // HIST_BINS))
        hist = torch.bincount(all_ // width, minlength=HIST_BINS)
        out[name] = {
            "buckets": float(layer.table.numel()),
            "members_mean": members / max(int(reached.sum()), 1),
            "members_max": float(all_.max()),
            "empty_fraction": float((all_ == 0).float().mean()),
            "collision_fraction": float(mine[all_ > 1].sum()) / max(members, 1),
            "cross_fraction": float(mine[all_ > mine].sum()) / max(members, 1),
            "occupancy_hist": hist.double().cpu().numpy(),
            "occupancy_bin": float(width),
        }
    return out


@torch.no_grad()
def layer_stats(model: nn.Module, static: dict) -> dict[str, dict[str, float | np.ndarray]]:
    out = {}
    for name, layer in hashed_layers(model):
        entry = dict(static.get(name, {}))
        entry["space_rms"] = float(layer.table.detach().float().pow(2).mean().sqrt())
        out[name] = entry
    return out
