"""Compression-aware low-rank training (Alvarez & Salzmann, NIPS 2017) and the plain SVD baseline.

`lowrank` adds tau sum_l ||Theta_l||_* over the chosen layers (conv weights as N_out x C*k_h*k_w) and
optimises it by proximal SGD: after each optimizer step (or every k steps) the weights get the nuclear
norm's prox, singular-value soft-thresholding by eta tau (eta: the learning rate). The optional sparse
group Lasso lambda [(1 - alpha) sqrt(P) sum_n ||theta_n||_2 + alpha ||Theta||_1] gets its own prox and
removes whole units. At the end each layer keeps the smallest rank holding the energy threshold and
becomes two thinner layers where that saves parameters (factorize.py). The regulariser, its proximal
training and the energy-based truncation are those of Alvarez & Salzmann, "Compression-aware Training of
Deep Networks", NIPS 2017 (arXiv:1711.02638), sec. 3; the truncation is sec. 3.3. The paper's exact
settings (how often the prox runs, energy of sigma or sigma^2, tau) are not pinned down by its text:
they are knobs, and the run log records each choice.

At every evaluation point both methods record per chosen layer (`layer_spectra`), besides the spectrum,
what the Spectrum tab draws of the energy threshold, so the plot reads arrays and never re-derives them:
`energy_threshold` and `energy_power` (the knobs in force), `cumulative_energy` (the curve the threshold
cuts) and `energy_rank` (the rank it chooses).

`svd` truncates a trained network's layers to the same energy threshold with no compression-aware
training; the stage's epochs (0: pure truncation) fine-tune the factors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from workbench.core.errors import ParamError
from workbench.core.params import knob
from workbench.methods.base import Method, RunContext
from workbench.methods.factorize import compress, saves_parameters
from workbench.methods.per_layer import choose_layers
from workbench.methods.proximal import (
    SOLVERS,
    SVT,
    ProxStats,
    as_float64,
    energy_curve,
    energy_rank,
    numerical_rank,
    sparse_group_prox,
)
from workbench.methods.registry import register
from workbench.models import graph, structure
from workbench.models.layers import compressible_layers


def _energy(tune: str):
    return knob(0.9, "Energy threshold", "Per layer, keep the smallest rank holding this fraction of the "
                "energy (paper: 0.8-0.9).", min=0.01, max=1.0, step=0.01, tune=tune)


def _energy_of():
    return knob("sigma", "Energy of", "sigma: sum of sigma (the nuclear norm, which the training "
                "penalises); sigma2: sum of sigma^2 (Frobenius energy, cuts deeper). The paper's choice "
                "could not be verified.", choices=("sigma", "sigma2"))


def _layers():
    return knob("all", "Layers", "all, fc, conv, or layer names separated by commas (e.g. fc1,fc2).")


def _remove_units():
    return knob(True, "Remove dead units", "Cut units with all-zero weights out of the exported network "
                "(and their inputs in the next layer), where the next layer is unambiguous.")


def _check_plain(model: nn.Module, key: str) -> None:
    if structure.structure_of(model) is not None:
        raise ParamError(f"{key}: the model's layers were already factorised or thinned by an earlier stage")


def _dense_weight(model: nn.Module, name: str) -> torch.Tensor:
    found = structure.dense_layer(model, name)
    return found[0] if found is not None else model.get_submodule(name).weight.detach()


@torch.no_grad()
def layer_spectra(model: nn.Module, names: list[str], energy: float, energy_of: str) -> dict:
    """Per layer: all singular values (original shape, so the series keeps its length after units are
    cut), the rank (while training: the energy-threshold rank the layer would be cut to; once cut: the
    rank it has), the numerical rank, live units, and the weights stored (or to be stored) for it.

    And the energy threshold as it applies to these singular values: `energy_threshold` (the fraction
    kept), `energy_power` (1: energy sum sigma, 2: sum sigma^2), `cumulative_energy` (entry k-1: the
    fraction held by the k largest singular values; one entry per singular value) and `energy_rank` (the
    smallest rank holding the threshold, at least 1: the rank a cut now would choose)."""
    spec = structure.structure_of(model) or {"layers": {}}
    out = {}
    for name in names:
        w = _dense_weight(model, name)
        m = w.shape[0]
        mat = w.reshape(m, -1)
        sigma = torch.linalg.svdvals(as_float64(mat)).cpu()
        r = chosen = max(energy_rank(sigma, energy, energy_of), 1)
        n = mat.shape[1]
        entry = spec["layers"].get(name)
        if entry is not None:          # cut: the rank and the thinner shapes it has
            m_kept = structure.kept_count(entry, "out_keep", m)
            n_kept = structure.kept_count(entry, "in_keep", w.shape[1]) * (n // w.shape[1])   # conv: x k_h k_w
            r = entry["rank"] if entry["rank"] is not None else r
            stored = r * (m_kept + n_kept) if entry["rank"] is not None else m_kept * n_kept
        else:
            stored = r * (m + n) if saves_parameters(r, m, n) else m * n
        out[name] = {"singular_values": sigma.numpy(), "rank": float(r),
                     "numerical_rank": float(numerical_rank(sigma, mat.shape)),
                     "units": float((mat.abs().amax(1) > 0).sum()), "stored_weights": float(stored),
                     "energy_threshold": float(energy), "energy_power": 2.0 if energy_of == "sigma2" else 1.0,
                     "cumulative_energy": energy_curve(sigma, energy_of).numpy(), "energy_rank": float(chosen)}
    return out


@dataclass
class LowRankParams:
    tau: float = knob(0.01, "tau (nuclear norm)", "Weight of tau sum ||Theta||_* over the chosen layers; "
                      "the prox shrinks singular values by learning rate x tau.", min=0.0, max=100.0, log=True,
                      tune="1e-3..1e-1:log")
    prox_every: int = knob(25, "Prox every (steps)", "Apply the proximal steps every k optimizer steps, "
                           "with the k steps' threshold (1: proximal SGD proper). One CPU thread: k = 25 "
                           "cost 1.1-1.4x a plain step on LeNet-300-100 (1.05x LeNet-5), k = 1 cost "
                           "4.7-11x (1.5-2.7x); on LeNet-300-100 both ended at the same ranks and accuracy.",
                           min=1, max=100_000, tune="5..100:log")
    energy: float = _energy("0.8..0.99")
    energy_of: str = _energy_of()
    layers: str = _layers()
    group_lambda: float = knob(0.0, "Group Lasso lambda", "Sparse group Lasso weight lambda (0: off); it "
                               "removes whole units.", min=0.0, max=100.0, log=True)
    group_alpha: float = knob(0.5, "Group Lasso alpha", "Mix: lambda [(1 - alpha) sqrt(P) sum_n ||theta_n||_2 "
                              "+ alpha ||Theta||_1].", min=0.0, max=1.0, step=0.05)
    remove_units: bool = _remove_units()
    threshold_steps: str = knob("sum", "Threshold over k steps", "With prox every k > 1 steps: sum: tau x "
                                "the sum of the k learning rates (the strength of k single proxes); last: "
                                "tau x the current learning rate.", choices=("sum", "last"), advanced=True)
    svd_solver: str = knob("auto", "SVD solver", "auto: top r+p triplets by a warm-started subspace "
                           "iteration where valid (sigma_{r+p} below the threshold), else a full SVD; "
                           "full: always a full SVD; truncated: try the subspace iteration whenever "
                           "r+p fits.", choices=SOLVERS, advanced=True)
    oversample: int = knob(8, "Oversampling p", "Extra random directions of the truncated SVD.",
                           min=1, max=512, advanced=True)
    power_iters: int = knob(1, "Power iterations", "Extra subspace iterations of the truncated SVD (on "
                            "LeNet-300-100 its prox differed from a full SVD's by ~1% of the weights' norm "
                            "with 0, ~0.1% with 1, ~0.05% with 2).", min=0, max=20, advanced=True)

    def check(self) -> None:
        if not self.layers.strip():
            raise ParamError("layers: name at least one layer (or all, fc, conv)")


@register
class LowRank(Method):
    key = "lowrank"
    label = "Compression-aware low rank (Alvarez 2017)"
    summary = ("Nuclear-norm proximal SGD (optional sparse group Lasso), then per-layer energy-threshold "
               "ranks and two thinner layers where that saves parameters.")
    paper = "Alvarez, Salzmann. Compression-aware Training of Deep Networks. NIPS 2017"
    Params = LowRankParams

    def __init__(self, params=None):
        super().__init__(params)
        self.chosen: list[str] = []
        self.svt: SVT | None = None
        self.grouped: list[tuple[nn.Parameter, nn.Parameter | None]] = []
        self.group_seconds = 0.0
        self._eta_sum = 0.0
        self._since = 0
        self._unlogged = 0            # proxes since the last log line

    def prepare(self, model: nn.Module, ctx: RunContext) -> None:
        p = self.params
        _check_plain(model, self.key)
        self.chosen = choose_layers(model, p.layers, ctx.log)
        layers = dict(compressible_layers(model))
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=ctx.generator))
        self.svt = SVT({n: layers[n].weight for n in self.chosen}, p.svd_solver, p.oversample,
                       p.power_iters, seed=seed)
        how = ("tau x the sum of the learning rates since the last prox" if p.threshold_steps == "sum"
               else "tau x the current learning rate")
        ctx.log(f"lowrank: tau {p.tau:g} on {', '.join(self.chosen)}; prox every {p.prox_every} step(s), "
                f"threshold {how}; SVD {p.svd_solver} (p = {p.oversample}, {p.power_iters} power iterations); "
                f"final rank keeps {p.energy:g} of sum {'sigma^2' if p.energy_of == 'sigma2' else 'sigma'}")
        if p.group_lambda > 0:
            succ, _ = graph.successors(model)
            for name in self.chosen:
                if isinstance(succ.get(name), graph.Successor):
                    self.grouped.append((layers[name].weight, layers[name].bias))
                else:
                    ctx.log(f"{name}: no group Lasso, since {succ.get(name, 'it is not traced')}")
            ctx.log(f"sparse group Lasso: lambda {p.group_lambda:g}, alpha {p.group_alpha:g} on "
                    f"{len(self.grouped)} layer(s); a unit's group is its incoming weights and bias")

    def after_step(self, model: nn.Module, ctx: RunContext) -> None:
        self._eta_sum += ctx.lr
        self._since += 1
        if self._since >= self.params.prox_every:
            self._prox(ctx)

    def _prox(self, ctx: RunContext) -> None:
        p = self.params
        eta = self._eta_sum if p.threshold_steps == "sum" else ctx.lr
        self._eta_sum, self._since = 0.0, 0
        self._unlogged += 1
        if p.tau > 0 and self.svt is not None:
            self.svt(eta * p.tau)
        if p.group_lambda > 0:
            t0 = time.perf_counter()
            for weight, bias in self.grouped:
                sparse_group_prox(weight, bias, eta * p.group_lambda * p.group_alpha,
                                  eta * p.group_lambda * (1 - p.group_alpha))
            self.group_seconds += time.perf_counter() - t0

    def _log_prox(self, ctx: RunContext, when: str) -> None:
        """The proxes since the last call: their cost, the ranks and live units they left (nothing when
        there were none)."""
        if self.svt is None or not self._unlogged:
            return
        self._unlogged = 0
        s: ProxStats = self.svt.stats.reset()
        if s.calls:
            ranks = ", ".join(f"{n}={r}" for n, r in self.svt.ranks().items())
            ctx.log(f"{when}: {s.calls} prox steps, {1e3 * s.seconds / s.calls:.2f} ms each; SVDs {s.full} full, "
                    f"{s.truncated} truncated ({s.rejected} truncated tries rejected); ranks after the prox: "
                    f"{ranks}")
        if self.grouped:
            live = ", ".join(f"{int((w.detach().reshape(len(w), -1).abs().amax(1) > 0).sum())}/{len(w)}"
                             for w, _ in self.grouped)
            ctx.log(f"{when}: group Lasso prox {1e3 * self.group_seconds:.1f} ms in all; live units {live}")
            self.group_seconds = 0.0

    def on_epoch_end(self, model: nn.Module, ctx: RunContext) -> None:
        self._log_prox(ctx, f"epoch {ctx.epoch + 1}")      # ctx.epoch: the epoch just done, from 0

    def epoch_stats(self, model: nn.Module) -> dict:
        names = self.chosen or choose_layers(model, self.params.layers)
        return layer_spectra(model, names, self.params.energy, self.params.energy_of)

    def finish_training(self, ctx: RunContext) -> None:
        """The steps since the last prox get theirs; the proximal state is dropped."""
        if self._since:
            self._prox(ctx)
        self._log_prox(ctx, "end of training")
        self.svt = None
        self.grouped.clear()

    def finalize(self, model: nn.Module, ctx: RunContext) -> None:
        p = self.params
        self.finish_training(ctx)
        compress(model, self.chosen, energy=p.energy, energy_of=p.energy_of, remove_units=p.remove_units,
                 log=ctx.log, check=ctx.check_cancelled)


@dataclass
class SVDParams:
    energy: float = _energy("0.7..0.99")
    energy_of: str = _energy_of()
    layers: str = _layers()
    remove_units: bool = _remove_units()

    def check(self) -> None:
        if not self.layers.strip():
            raise ParamError("layers: name at least one layer (or all, fc, conv)")


@register
class SVDTruncation(Method):
    key = "svd"
    label = "SVD truncation (baseline)"
    summary = ("Truncates each layer of a trained network to its energy-threshold rank, two thinner layers "
               "where that saves parameters; the stage's epochs fine-tune the factors (0: none).")
    paper = "Baseline of Alvarez, Salzmann. Compression-aware Training of Deep Networks. NIPS 2017"
    Params = SVDParams

    def __init__(self, params=None):
        super().__init__(params)
        self.chosen: list[str] = []

    def prepare(self, model: nn.Module, ctx: RunContext) -> None:
        p = self.params
        _check_plain(model, self.key)
        self.chosen = choose_layers(model, p.layers, ctx.log)
        ctx.log(f"svd: truncating {', '.join(self.chosen)} to keep {p.energy:g} of sum "
                f"{'sigma^2' if p.energy_of == 'sigma2' else 'sigma'}; the stage's epochs fine-tune the factors")
        compress(model, self.chosen, energy=p.energy, energy_of=p.energy_of, remove_units=p.remove_units,
                 log=ctx.log, check=ctx.check_cancelled)

    def epoch_stats(self, model: nn.Module) -> dict:
        names = self.chosen or choose_layers(model, self.params.layers)
        return layer_spectra(model, names, self.params.energy, self.params.energy_of)
