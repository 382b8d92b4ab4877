"""The end of a low-rank stage: cut dead units, truncate each layer to its energy rank, and replace it by
two thinner stock layers where that saves parameters (Alvarez & Salzmann, NIPS 2017, sec. 3.3).

Per chosen layer (weight Theta, m = outputs x n = inputs, conv as N_out x C*k_h*k_w):
1. units whose incoming weights are all zero (e.g. removed by the sparse group Lasso) are cut out, with
   their column(s) in the next layer; a constant output such a unit still has (its bias, through
   ReLU / pooling) is folded into the next layer's bias, so the network computes the same function.
   Only where the next layer is unambiguous (models/graph.py), never for the model's outputs;
2. the rank r is the smallest keeping `energy` of sum sigma^2 (or sum sigma) of the remaining matrix;
3. when r (m + n) < m n, i.e. r < mn / (m + n), the layer becomes B A with A = sqrt(S_r) V_r^T
   (r x n, no bias) and B = U_r sqrt(S_r) (m x r, the bias): the balanced split, so fine-tuning sees
   factors of equal scale. Otherwise the layer keeps its (untruncated) weight.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from workbench.methods.proximal import as_float64, energy_rank
from workbench.models import graph, structure
from workbench.models.layers import compressible_layers


def saves_parameters(rank: int, m: int, n: int) -> bool:
    return rank * (m + n) < m * n


def factors(weight: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B) with B @ A the best rank-r approximation of weight.view(m, -1); A: r x n, B: m x r."""
    m = weight.shape[0]
    u, s, vh = torch.linalg.svd(as_float64(weight.reshape(m, -1)), full_matrices=False)
    root = s[:rank].sqrt()
    a = (root[:, None] * vh[:rank]).to(weight.device, weight.dtype)
    b = (u[:, :rank] * root[None, :]).to(weight.device, weight.dtype)
    return a, b


def _removable_units(weight: torch.Tensor, bias: torch.Tensor | None, succ: graph.Successor,
                     nxt: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask of units that can go, their constant outputs as the next layer receives them)."""
    rows = weight.reshape(weight.shape[0], -1)
    dead = rows.abs().amax(1) == 0
    const = bias.detach().clone() if bias is not None else torch.zeros_like(dead, dtype=weight.dtype)
    if succ.relu:
        const = const.clamp_min(0)
    # A nonzero constant can be folded only into a bias, and not through zero padding (borders differ).
    can_fold = getattr(nxt, "bias", None) is not None and (
        isinstance(nxt, nn.Linear) or all(p == 0 for p in nxt.padding))
    removable = dead & ((const == 0) | can_fold)
    if bool(removable.all()):
        removable[0] = False          # keep one unit: a zero-width layer helps nobody
    return removable, const


def _columns(unit_mask: torch.Tensor, succ: graph.Successor, nxt: nn.Module) -> torch.Tensor:
    """The next layer's input columns (or channels) that belong to the masked units."""
    if succ.flatten:
        block = nxt.in_features // unit_mask.numel()
        return unit_mask.repeat_interleave(block)
    return unit_mask


@torch.no_grad()
def compress(model: nn.Module, chosen: list[str], *, energy: float, energy_of: str, remove_units: bool,
             log: Callable[[str], None], check: Callable[[], None] = lambda: None) -> dict:
    """Cut units, pick ranks, factorise; replaces the layers in `model` and returns the applied spec.

    `check` runs before each layer's SVD (a run's `ctx.check_cancelled`): an exception it raises leaves
    the model untouched, since the layers are replaced only after every one has been worked out."""
    layers = dict(compressible_layers(model))
    weights = {n: m.weight.detach().clone() for n, m in layers.items()}
    biases = {n: (m.bias.detach().clone() if getattr(m, "bias", None) is not None else None)
              for n, m in layers.items()}
    keep_out: dict[str, torch.Tensor] = {}
    keep_in: dict[str, torch.Tensor] = {}
    if remove_units:
        succ_of, order = graph.successors(model)
        for name in (n for n in order if n in chosen):
            succ = succ_of[name]
            if isinstance(succ, str):
                log(f"{name}: units are kept, since {succ}")
                continue
            nxt = layers[succ.name]
            gone, const = _removable_units(weights[name], biases[name], succ, nxt)
            if not bool(gone.any()):
                continue
            cols = _columns(gone, succ, nxt)
            w_next = weights[succ.name]
            folded = (w_next[:, cols].reshape(w_next.shape[0], int(gone.sum()), -1).sum(-1)
                      * const[gone]).sum(1)
            if biases[succ.name] is not None:
                biases[succ.name] += folded
            keep_out[name] = ~gone
            keep_in[succ.name] = ~cols
            log(f"{name}: {int(gone.sum())} of {gone.numel()} units removed (all-zero weights), and their "
                f"inputs in {succ.name}")
    spec = structure.new_spec()
    tensors: dict[str, torch.Tensor] = {}
    for name, module in layers.items():
        if name not in chosen and name not in keep_out and name not in keep_in:
            continue
        check()
        w, b = weights[name], biases[name]
        if name in keep_out:
            w = w[keep_out[name]]
            b = b[keep_out[name]] if b is not None else None
        if name in keep_in:
            w = w[:, keep_in[name]]
        m, n = w.shape[0], w[0].numel()
        rank = None
        if name in chosen:
            sigma = torch.linalg.svdvals(as_float64(w.reshape(m, n)))
            r = max(energy_rank(sigma, energy, energy_of), 1)
            bound = m * n / (m + n)
            if saves_parameters(r, m, n):
                rank = r
                log(f"{name}: rank {r} of {min(m, n)} keeps {energy:g} of the {_energy_name(energy_of)}; "
                    f"{m}x{n} becomes {m}x{r} + {r}x{n} ({m * n / (r * (m + n)):.1f}x fewer weights)")
            else:
                log(f"{name}: rank {r} of {min(m, n)} for {energy:g} of the {_energy_name(energy_of)} is not "
                    f"below mn/(m+n) = {bound:.1f}: the layer stays whole ({m}x{n})")
        if rank is None and name not in keep_out and name not in keep_in:
            continue
        spec["layers"][name] = {
            "kind": "fc" if isinstance(module, nn.Linear) else "conv", "shape": list(module.weight.shape),
            "bias": module.bias is not None, "rank": rank,
            "out_keep": _ranges(keep_out.get(name)), "in_keep": _ranges(keep_in.get(name)),
        }
        if rank is None:
            tensors[f"{name}.weight"] = w
            if b is not None:
                tensors[f"{name}.bias"] = b
        else:
            a, bb = factors(w, rank)
            tensors[f"{name}.0.weight"] = a.reshape((rank, *w.shape[1:]))
            tensors[f"{name}.1.weight"] = bb.reshape((m, rank) + (1,) * (w.dim() - 2))
            if b is not None:
                tensors[f"{name}.1.bias"] = b
    if spec["layers"]:
        structure.apply_structure(model, spec)
    params = dict(model.named_parameters())
    for key, value in tensors.items():
        params[key].copy_(value)
    return spec


def _ranges(mask: torch.Tensor | None) -> list[list[int]] | None:
    return None if mask is None else structure.to_ranges(mask.nonzero().flatten().tolist())


def _energy_name(energy_of: str) -> str:
    return "energy sum sigma^2" if energy_of == "sigma2" else "energy sum sigma (nuclear norm)"
