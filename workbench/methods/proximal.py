"""Proximal operators of compression-aware training (Alvarez & Salzmann, NIPS 2017).

* Nuclear norm tau ||Theta||_*: singular-value soft-thresholding, Theta <- U max(Sigma - theta, 0) V^T
  (Cai, Candes & Shen 2010), theta = eta tau. `SVT` applies it to a fixed set of weight matrices after
  optimizer steps, batched by shape on the weights' device. After the first steps of training most
  singular values are already zero, so the exact prox needs only the top r + p triplets (r: the rank
  left by the previous prox, p: oversampling). They come from one warm-started subspace iteration
  (basis: the previous right singular vectors plus p fresh Gaussian columns, as in randomised SVD,
  Halko et al. 2011) and are used only when the smallest computed singular value sigma_{r+p} is
  already below the threshold (the rest would be zeroed anyway); otherwise, and whenever r + p is more
  than half the matrix's smaller side (where the truncated form stops paying), a full SVD runs.
* Sparse group Lasso lambda [(1 - alpha) sqrt(P) sum_n ||theta_n||_2 + alpha ||Theta||_1]: its prox is
  the l1 soft-threshold followed by group shrinkage (Simon, Friedman, Hastie & Tibshirani 2013), which
  zeroes whole units (a unit's group: its incoming weights and its bias, so a removed unit outputs 0).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

SOLVERS = ("auto", "full", "truncated")


def as_float64(t: torch.Tensor) -> torch.Tensor:
    """float64 for one-off decompositions (rank choice, factors, statistics); MPS has no float64."""
    return (t.cpu() if t.device.type == "mps" else t).double()


def svt_dense(w: torch.Tensor, theta: float) -> torch.Tensor:
    """The nuclear-norm prox of a (batch of) matrices by a direct SVD: the reference implementation."""
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    return (u * (s - theta).clamp_min(0).unsqueeze(-2)) @ vh


def energy_curve(sigma, energy_of: str = "sigma2") -> torch.Tensor:
    """The cumulative energy of a spectrum: entry k-1 is the fraction of the total energy held by the k
    leading singular values, the energy being sum sigma^2 (`sigma2`, the Frobenius energy) or sum sigma
    (`sigma`, the nuclear norm). float64, one entry per singular value; all zeros for a zero matrix."""
    s = torch.as_tensor(sigma, dtype=torch.float64).flatten().abs().sort(descending=True).values
    e = s * s if energy_of == "sigma2" else s
    total = float(e.sum())
    return torch.cumsum(e, 0) / total if total > 0 else torch.zeros_like(e)


def energy_rank(sigma, energy: float, energy_of: str = "sigma2") -> int:
    """The smallest r whose leading singular values keep `energy` of the total (see `energy_curve`).
    0 for a zero matrix."""
    cum = energy_curve(sigma, energy_of)
    if cum.numel() == 0 or float(cum[-1]) <= 0:
        return 0
    # cum[r-1] >= energy for the answer r; the tolerance keeps energy=1 from demanding rounding noise
    return min(int((cum < energy - 1e-9).sum()) + 1, len(cum))


def numerical_rank(sigma: torch.Tensor, shape) -> int:
    """Singular values above sigma_max * max(m, n) * eps(float32), as numpy's matrix_rank counts them."""
    if sigma.numel() == 0:
        return 0
    tol = float(sigma.max()) * max(shape) * torch.finfo(torch.float32).eps
    return int((sigma > tol).sum())


@dataclass
class ProxStats:
    calls: int = 0                 # prox applications (each over every group)
    full: int = 0                  # group SVDs done in full
    truncated: int = 0             # group SVDs done by the subspace iteration
    rejected: int = 0              # truncated attempts that failed the sigma_{r+p} test (then full)
    seconds: float = 0.0

    def reset(self) -> "ProxStats":
        old = ProxStats(**self.__dict__)
        self.__init__()
        return old


@dataclass
class _Group:
    weights: list[torch.Tensor]                 # the parameters, viewed as (m, n) when used
    m: int
    n: int
    rank: int | None = None                     # singular values left nonzero by the last prox
    basis: torch.Tensor | None = None           # (b, n, rank): their right singular vectors
    ranks: list[int] = field(default_factory=list)


class SVT:
    """Singular-value soft-thresholding of named weights (conv weights as N_out x C*k_h*k_w), in place."""

    def __init__(self, weights: dict[str, torch.Tensor], solver: str = "auto", oversample: int = 8,
                 power_iters: int = 1, seed: int = 0):
        if solver not in SOLVERS:
            raise ValueError(f"unknown SVD solver {solver!r}")
        self.solver, self.oversample, self.power_iters = solver, oversample, power_iters
        self.names: dict[tuple, list[str]] = {}
        self.groups: dict[tuple, _Group] = {}
        for name, w in weights.items():
            m = w.shape[0]
            key = (m, w.numel() // m, w.dtype, w.device)
            self.names.setdefault(key, []).append(name)
            self.groups.setdefault(key, _Group([], m, w.numel() // m)).weights.append(w)
        self.stats = ProxStats()
        self._generators: dict[torch.device, torch.Generator] = {}
        self._seed = seed

    def ranks(self) -> dict[str, int]:
        """Per weight: the nonzero singular values after the last prox (None before the first)."""
        return {name: r for key, names in self.names.items() for name, r in zip(names, self.groups[key].ranks)}

    @torch.no_grad()
    def __call__(self, theta: float) -> None:
        t0 = time.perf_counter()
        for group in self.groups.values():
            self._apply(group, theta)
        self.stats.calls += 1
        self.stats.seconds += time.perf_counter() - t0

    def _gaussian(self, shape, like: torch.Tensor) -> torch.Tensor:
        gen = self._generators.get(like.device)
        if gen is None:
            gen = self._generators[like.device] = torch.Generator(like.device).manual_seed(self._seed)
        return torch.randn(shape, generator=gen, device=like.device, dtype=like.dtype)

    def _apply(self, g: _Group, theta: float) -> None:
        w = torch.stack([t.reshape(g.m, g.n) for t in g.weights])          # (b, m, n), a copy
        result = None
        k = None if g.rank is None else g.rank + self.oversample
        if self.solver == "truncated" or (self.solver == "auto" and k is not None and k <= min(g.m, g.n) // 2):
            if k is not None and k <= min(g.m, g.n):
                result = self._truncated(w, g.basis, theta)
                if result is None:
                    self.stats.rejected += 1
                else:
                    self.stats.truncated += 1
        if result is None:
            result = self._full(w, theta)
            self.stats.full += 1
        new, s_new, vh = result
        counts = (s_new > 0).sum(-1)
        r = int(counts.max())
        g.rank, g.basis, g.ranks = r, vh[..., :r, :].mT, [int(c) for c in counts]
        for t, value in zip(g.weights, new):
            t.copy_(value.reshape(t.shape))

    def _full(self, w: torch.Tensor, theta: float):
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        s_new = (s - theta).clamp_min(0)
        r = int((s_new > 0).sum(-1).max())
        new = (u[..., :r] * s_new[..., None, :r]) @ vh[..., :r, :]
        return new, s_new, vh

    def _truncated(self, w: torch.Tensor, basis: torch.Tensor, theta: float):
        """The prox from the top r + p triplets, or None when sigma_{r+p} > theta (then they are not
        enough: a direction outside them could survive the threshold)."""
        b, m, n = w.shape
        x = torch.cat([basis, self._gaussian((b, n, self.oversample), w)], dim=-1)     # (b, n, k)
        for _ in range(self.power_iters):
            x = torch.linalg.qr(w.mT @ torch.linalg.qr(w @ x).Q).Q
        q = torch.linalg.qr(w @ x).Q                                                  # (b, m, k)
        uc, s, vh = torch.linalg.svd(q.mT @ w, full_matrices=False)                   # k x n problem
        if bool((s[..., -1] > theta).any()):
            return None
        s_new = (s - theta).clamp_min(0)
        r = int((s_new > 0).sum(-1).max())
        new = ((q @ uc[..., :r]) * s_new[..., None, :r]) @ vh[..., :r, :]
        return new, s_new, vh


@torch.no_grad()
def sparse_group_prox(weight: torch.Tensor, bias: torch.Tensor | None, l1: float, group: float) -> None:
    """In place: prox of l1 ||W||_1 + group sum_n sqrt(P) ||(w_n, b_n)||_2 over the units n (rows),
    P the group size: first the l1 soft-threshold of the weights, then each unit's group shrinkage."""
    w = weight.view(weight.shape[0], -1)
    if l1 > 0:
        w.copy_(w.sign() * (w.abs() - l1).clamp_min(0))
    if group > 0:
        size = w.shape[1] + (1 if bias is not None else 0)
        sq = (w * w).sum(1)
        if bias is not None:
            sq = sq + bias * bias
        scale = (1 - group * math.sqrt(size) / sq.sqrt().clamp_min(1e-30)).clamp_min(0)
        w.mul_(scale[:, None])
        if bias is not None:
            bias.mul_(scale)
