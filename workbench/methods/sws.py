"""Soft weight-sharing (Ullrich, Meeds, Welling, ICLR 2017).

Retraining adds tau * (-log p(w) - log p(lambda)) to the task loss, where
p(w) = prod_i sum_j pi_j N(w_i | mu_j, 1/lambda_j) is a Gaussian mixture prior over all weights of the
compressible layers (one mixture shared by every layer), learned jointly with the weights, and p(lambda)
puts Gamma hyperpriors on the precisions. Component 0 is fixed at mu_0 = 0 with a fixed mixing weight
pi_0; the others have learned means, log-precisions and mixing weights
pi_j = (1 - pi_0) softmax(rho)_j (j >= 1), so pi_0 stays exactly fixed and the pi sum to 1. Everything is
evaluated with log-sum-exp. After training, components closer than `merge_kl` (symmetric KL) are merged
and every weight is set to the mean of its most responsible component; members of the zero component
become exactly 0 (pruned), which leaves a plain model with a few distinct values per layer.

Snap budget (beyond the paper). Where the prior is too weak for the data the weights never gather around
the means and the snap costs most of the accuracy (Fashion-MNIST with the MNIST settings: 89% -> 45%);
`snap_budget` tries the snap during the first half of training and raises tau while it would cost too
much, and the final snap's cost is reported either way. Where that is not enough (the cost at the half is
still over the budget), `snap_steps` snaps the weights in steps over the third quarter while the rest
retrain, at tau as set (sws_gradual: incremental network quantization's schedule); on MNIST neither ever
acts.

Cost. The prior is O(weights x components) per step. `prior_eval="exact"` evaluates it directly, with
the hand-derived gradients (d/dw_i = sum_j r_ij lambda_j (w_i - mu_j), r the responsibilities) computed
in the same pass. `prior_eval="grid"` (default) uses that f(w) = -log p(w) is a smooth 1-D function: the
weights are binned onto a fine grid with cloud-in-cell (linear) weights c_k in O(N), so
sum_i f(w_i) ~ sum_k c_k f(g_k) and the mixture gradients come from the small G x J computation, and each
weight's gradient is f' linearly interpolated at the weight. Neither mode reads a value back to the host
during a step (no .item()/float()), so GPU steps are not synchronised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from workbench.core.errors import ParamError
from workbench.core.params import knob
from workbench.methods.base import Method, RunContext
from workbench.methods.registry import register
from workbench.methods.sws_gradual import HeldWeights, step_epochs
from workbench.models.layers import compressible_layers

LOG_2PI = math.log(2.0 * math.pi)
SCATTER_SAMPLES = 2000          # weights per layer in the weight-vs-initial-weight scatter (fixed size)
INIT_PERCENTILE = 99.9         # of |w|: the default half-width of the initial means' range
EXACT_CHUNK = 1 << 15           # points per chunk of the N x J (or G x J) evaluation (bounds the temporaries)
SNAP_CHECK_SAMPLES = 2048       # training samples a snap's cost in accuracy is measured on
SNAP_CHECK_POINTS = 2.0         # a final snap that costs more than this (percentage points) is reported
TAU_GROWTH = math.sqrt(2.0)     # snap_budget's step: tau x sqrt(2) at most every other epoch
TAU_GROWTH_MAX = 64.0           # snap_budget raises tau to at most this multiple of the value set
TAU_KEEP_FALLING = 0.9          # a snap cost that fell below this share of the last one is left to fall


@dataclass
class SWSParams:
    components: int = knob(17, "Components",
                           "Mixture components in total, the fixed zero component included (paper: 17 = "
                           "2^4 + 1; 64 for the wide ResNet).", min=2, max=1025, tune="9..33")
    pi_zero: float = knob(0.99, "pi_0 (zero component)",
                          "Fixed mixing weight of the zero component (mu_0 = 0, never learned). Paper: "
                          "0.99-0.999. Larger prunes more.", min=0.0, max=0.999999, step=0.001, tune="0.95..0.9995")
    init_sigma: float = knob(0.05, "Initial sigma",
                             "Initial standard deviation of every component, in weight units. Paper: "
                             "0.25. The default is narrower: with 0.25 and pi_0 = 0.99 the zero component "
                             "is the most responsible one for every weight below ~0.96 in size, so every "
                             "weight is pruned unless training has first grown the precisions (about "
                             "4 epochs at the paper's rates); this project's calibration runs also did better "
                             "on LeNet-300 with narrower initial components.",
                             min=1e-6, max=10.0, log=True, tune="0.01..0.25:log")
    init_range: float = knob(0.0, "Initial mean range",
                             "0: the other means start evenly spaced over [-r, r] with r the 99.9th "
                             "percentile of the pretrained |w|; r > 0: over [-r, r] (the paper's example: "
                             "0.6). `components` points are spaced over the range and the one nearest 0 is "
                             "dropped (the zero component covers it). Not [min, max]: a few outliers set "
                             "it (LeNet-300's output biases reach 1.17 while 99.9% of its weights are "
                             "under 0.42), which left most components where no weights are and cost "
                             "0.5 points of error here.", min=0.0, max=100.0, step=0.05)
    tau: float = knob(0.005, "tau (prior weight)",
                      "Weight of the prior term. Reference code: 0.003-0.005 with per_sample scaling; "
                      "the paper's text: 0.05 with a summed loss. The Gamma hyperprior is inside the "
                      "tau-scaled term, as in the reference code.", min=0.0, max=1e6, log=True, tune="5e-4..5e-2:log")
    prior_scaling: str = knob("per_sample", "Prior scaling",
                              "per_sample (default): loss = mean CE + tau * (-log p(w) - log p(lambda)) "
                              "/ N_train, the reference code's convention: the prior is a once-per-data-"
                              "set term, so dividing by N keeps it in proportion to a per-sample mean "
                              "task loss and tau means the same across data-set and batch sizes. N_train is "
                              "the whole training set's size, also where a run takes a quick-look subset. "
                              "summed: tau * (-log p(w) - log p(lambda)) as in the paper's text (whose "
                              "task loss is summed too); against this workbench's mean loss it weighs "
                              "the prior ~N_train times more.", choices=("per_sample", "summed"))
    zero_alpha: float = knob(5000.0, "Gamma alpha (zero)",
                             "Shape of the Gamma hyperprior on the zero component's precision lambda_0 = "
                             "1/sigma_0^2 (reference 5000; mode (alpha-1)/beta).", min=1.0, max=1e9,
                             log=True, advanced=True)
    zero_beta: float = knob(2.0, "Gamma beta (zero)",
                            "Rate of the Gamma hyperprior on lambda_0, in units of weight^2 (reference 2).",
                            min=1e-9, max=1e9, advanced=True)
    alpha: float = knob(250.0, "Gamma alpha (others)",
                        "Shape of the Gamma hyperprior on the other precisions (reference 250).",
                        min=1.0, max=1e9, log=True, advanced=True)
    beta: float = knob(0.1, "Gamma beta (others)",
                       "Rate of the Gamma hyperprior on the other precisions, in units of weight^2 "
                       "(reference 0.1).", min=1e-9, max=1e9, advanced=True)
    mixture_lr: float = knob(1e-4, "Means learning rate",
                             "Learning rate of the component means (paper: 1e-4 with Adam; the paper "
                             "calls it very sensitive). Scaled by the stage's LR schedule.",
                             min=0.0, max=10.0, log=True, tune="1e-5..1e-3:log")
    precision_lr: float = knob(3e-3, "Log-precision learning rate",
                               "Learning rate of the log-precisions log(1/sigma^2) (paper: 3e-3).",
                               min=0.0, max=10.0, log=True, tune="3e-4..3e-2:log")
    mixing_lr: float = knob(3e-3, "Log-mixing learning rate",
                            "Learning rate of the log-mixing weights of the non-zero components "
                            "(paper: 3e-3).", min=0.0, max=10.0, log=True, tune="3e-4..3e-2:log")
    include_bias: bool = knob(True, "Biases under the prior",
                              "Put the compressible layers' biases under the prior too (and snap them), as "
                              "the reference code does with all trainable weights.")
    merge_kl: float = knob(1e-3, "Merge threshold (KL)",
                           "After training, merge components whose symmetric KL divergence KL(a|b) + "
                           "KL(b|a) is below this (reference code: 1e-10, one-sided).", min=0.0, max=1e6,
                           log=True, tune="1e-6..1e-2:log")
    snap_budget: float = knob(0.0, "Snap budget (points)",
                              "0 (the paper): tau stays as set. b > 0: every other epoch of the stage's "
                              "first half the snap is tried on 2048 training samples (the weights put "
                              "back after); while it would cost more than b points of accuracy and that "
                              "cost is not falling, tau grows x sqrt(2) (not on the first check; up to "
                              "64x the value set). A snap that costs much means the weights have not "
                              "gathered around the means: the prior is too weak for this data set (on "
                              "Fashion-MNIST the sws-lenet300 settings lost 44 points at the snap; with "
                              "b = 1, 1.5), and late in training (small learning rate) no tau gathers "
                              "them any more. Not always enough: sws-lenet5 on Fashion-MNIST still lost "
                              "28 points at the snap (snap_steps then takes over). On MNIST tau never "
                              "grows: the runs are the paper's.",
                              min=0.0, max=100.0, step=0.5)
    snap_steps: int = knob(0, "Gradual snap steps",
                           "0 (the paper): every weight snaps to its mean at the end. n > 0: where a trial "
                           "snap at the half of the stage still costs over the snap budget (2 points if "
                           "that is 0), the weights snap in n steps over the third quarter, as incremental "
                           "network quantization does (Zhou 2017): at each step half of each layer's free "
                           "weights, the largest first, are held at their component's mean while the rest "
                           "retrain; the last quarter retrains, and the rest snap at the end. The free "
                           "weights retrain without the prior, the mixture fixed, where the zero component "
                           "is by then narrower than every other (the prior has parted the weights it "
                           "prunes from those it keeps); else under it at tau as set (what the budget added "
                           "is dropped), which keeps narrowing it. Where the trial snap is cheap (MNIST) "
                           "nothing changes. sws-lenet5 on Fashion-MNIST: 62.9% -> 89.9% (from 91.7%); "
                           "sws-lenet300 there without the snap budget: 45.2% -> 84.4% (from 89.8%).",
                           min=0, max=10)
    prior_eval: str = knob("grid", "Prior evaluation",
                           "grid (default): bin the weights onto a fine grid (O(weights + grid x "
                           "components) per step); exact: direct O(weights x components) evaluation.",
                           choices=("grid", "exact"))
    grid_points: int = knob(4096, "Grid points",
                            "Points of the grid spanning the weights' [min, max] in grid mode; the "
                            "spacing should stay well below the smallest sigma (a message says when "
                            "it does not).", min=16, max=4_194_304, advanced=True)

    def check(self) -> None:
        if not 0.0 < self.pi_zero < 1.0:
            raise ParamError(f"pi_zero: {self.pi_zero:g} must lie strictly between 0 and 1")
        if self.components < 2:
            raise ParamError("components: need at least 2 (the zero component and one other)")


# --- the mixture's density and its gradients ------------------------------------------------------

def mixture_terms(x: torch.Tensor, counts: torch.Tensor | None, mu: torch.Tensor, log_lambda: torch.Tensor,
                  log_pi: torch.Tensor, want_x_grad: bool = True):
    """sum_i c_i f(x_i) with f(x) = -log sum_j pi_j N(x | mu_j, 1/lambda_j), and its gradients.

    Returns (value, d/dmu, d/dlog_lambda, d/dlog_pi, f'(x) or None); c_i = 1 when counts is None. The
    gradients are the hand-derived ones: with L_ij = log pi_j + (log lambda_j - log 2 pi)/2
    - lambda_j d_ij^2 / 2, d_ij = x_i - mu_j and r = softmax_j(L) the responsibilities,
    f'(x_i) = sum_j r_ij lambda_j d_ij, df/dmu_j = -r_ij lambda_j d_ij,
    df/dlog lambda_j = r_ij (lambda_j d_ij^2 - 1) / 2, df/dlog pi_j = -r_ij.
    """
    lam = log_lambda.exp()[:, None]
    logc = (log_pi + 0.5 * (log_lambda - LOG_2PI))[:, None]
    mu = mu[:, None]
    value = x.new_zeros(())
    c_r, c_ra, c_rad = (x.new_zeros(len(mu)) for _ in range(3))
    fps = []
    # components along dim 0, points along dim 1: the reductions over components are then row additions
    step = EXACT_CHUNK
    for start in range(0, x.numel(), step):
        xs = x[start:start + step]
        w = None if counts is None else counts[start:start + step]
        d = xs - mu                                     # d_ji = x_i - mu_j
        a = d * lam                                     # lambda_j d_ji
        logits = torch.addcmul(logc, a, d, value=-0.5)  # L_ji
        lse = torch.logsumexp(logits, 0)
        r = logits.sub_(lse).exp_()                     # responsibilities (in place of the logits)
        value = value - (lse.sum() if w is None else lse @ w)
        c_r = c_r + (r.sum(1) if w is None else r @ w)
        ra = r.mul_(a)                                  # r_ji lambda_j d_ji
        if want_x_grad:
            fps.append(ra.sum(0))
        c_ra = c_ra + (ra.sum(1) if w is None else ra @ w)
        rad = ra.mul_(d)                                # r_ji lambda_j d_ji^2
        c_rad = c_rad + (rad.sum(1) if w is None else rad @ w)
    fp = (torch.cat(fps) if fps else x.new_zeros(0)) if want_x_grad else None
    return value, -c_ra, 0.5 * (c_rad - c_r), -c_r, fp


class Workspace:
    """Per-weight buffers reused from step to step (grid mode).

    Fresh megabyte-sized temporaries every step cost more than the arithmetic on this CPU (the allocator
    returns them to the system and each first touch of a page faults), so the per-weight passes write into
    these. The gradient that _PriorNLL hands back (f' per weight) is the only per-weight tensor allocated
    each step, so a second forward before the first one's backward stays correct.
    """

    def __init__(self, unit: torch.Tensor):
        self.unit = unit                   # arange(G) / (G - 1): the grid in [0, 1]
        self.numel = -1

    def buffers(self, n: int, like: torch.Tensor) -> None:
        if n != self.numel or self.flat.dtype != like.dtype or self.flat.device != like.device:
            self.flat, self.t, self.k, self.tmp = (torch.empty(n, dtype=like.dtype, device=like.device)
                                                   for _ in range(4))
            self.ki = torch.empty(n, dtype=torch.int64, device=like.device)
            self.numel = n


def grid_terms(tensors: list[torch.Tensor], ws: Workspace, mu: torch.Tensor, log_lambda: torch.Tensor,
               log_pi: torch.Tensor, want_x_grad: bool = True):
    """mixture_terms for the weights in `tensors`, approximated on a grid of G = len(ws.unit) points.

    The grid spans [min, max] of the weights. Each weight is shared between its two neighbouring grid
    points with linear (cloud-in-cell) weights, so sum_i f(w_i) ~ sum_k c_k f(g_k) and the mixture
    gradients are those of the G x J sum. The error per weight is at most h^2 max|f''| / 8
    <= h^2 max_j lambda_j / 8 = (h / sigma_min)^2 / 8 nats for grid spacing h (f'' = -d^2 log p / dw^2 is
    bounded by the largest precision). How the spacing is chosen: G is fixed (a knob, so no shape depends
    on the data and nothing is read back to the host), and the default 4096 points over pretrained LeNet
    weights spanning ~1.5 give h ~ 4e-4; the default Gamma hyperpriors put the components near
    sigma ~ 0.02 (lambda ~ (alpha - 1) / beta ~ 2500), so h / sigma ~ 0.02: an error below 1e-4 nats per
    weight. f' is evaluated at the grid points and interpolated linearly at each weight.
    """
    unit = ws.unit
    points = unit.numel()
    n = sum(t.numel() for t in tensors)
    ws.buffers(n, tensors[0])
    flat, t, k, ki = ws.flat, ws.t, ws.k, ws.ki
    torch.cat([x.detach().reshape(-1) for x in tensors], out=flat)
    lo, hi = torch.aminmax(flat)
    h = (hi - lo).clamp_min(1e-12) / (points - 1)          # a constant weight set still gets a grid
    grid = torch.addcmul(lo, unit, hi - lo)
    torch.sub(flat, lo, out=t).div_(h)
    torch.floor(t, out=k).nan_to_num_(0.0).clamp_(0, points - 2)   # NaN weights must not index past G
    frac = t.sub_(k)                                        # position within the cell, in [0, 1]
    ki.copy_(k)
    # c_k = sum over weights in cell k of (1 - frac) + sum over weights in cell k - 1 of frac
    counts = torch.zeros_like(unit).scatter_add_(0, ki, torch.neg(frac, out=ws.tmp).add_(1.0))
    counts[1:] += torch.zeros_like(unit).scatter_add_(0, ki, frac)[:-1]
    value, dmu, dll, dlp, fp_grid = mixture_terms(grid, counts, mu, log_lambda, log_pi, want_x_grad)
    fp = None
    if want_x_grad:
        slope = torch.zeros_like(fp_grid)
        slope[:-1] = fp_grid[1:] - fp_grid[:-1]
        fp = fp_grid.index_select(0, ki)
        fp.addcmul_(frac, torch.index_select(slope, 0, ki, out=ws.tmp))
    return value, dmu, dll, dlp, fp


class _PriorNLL(torch.autograd.Function):
    """-log p(w) over the given tensors, with the mixture's and the weights' gradients computed in the
    forward pass (hand-derived, see mixture_terms) and only scaled by the incoming gradient in backward."""

    @staticmethod
    def forward(ctx, ws, mu, log_lambda, log_pi, *tensors):
        want_w = any(ctx.needs_input_grad[4:])
        if ws is None:
            flat = torch.cat([t.detach().reshape(-1) for t in tensors])
            value, dmu, dll, dlp, fp = mixture_terms(flat, None, mu, log_lambda, log_pi, want_w)
        else:
            value, dmu, dll, dlp, fp = grid_terms(tensors, ws, mu, log_lambda, log_pi, want_w)
        ctx.grads = (dmu, dll, dlp, fp)
        ctx.shapes = [(t.shape, t.numel()) for t in tensors]
        return value

    @staticmethod
    def backward(ctx, grad):
        if ctx.grads is None:
            raise RuntimeError("soft weight-sharing: backward through the same prior term twice is not "
                               "supported (its gradients are scaled in place)")
        dmu, dll, dlp, fp = ctx.grads
        ctx.grads = None
        out = [None, dmu * grad, dll * grad, dlp * grad]
        if fp is None:
            return (*out, *[None] * len(ctx.shapes))
        fp.mul_(grad)           # fp is this call's own tensor
        pieces = fp.split([n for _, n in ctx.shapes])
        return (*out, *[p.view(shape) for p, (shape, _) in zip(pieces, ctx.shapes)])


def neg_log_gamma(log_lambda: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """-sum_j log Gamma(lambda_j | alpha_j, beta_j) (shape alpha, rate beta), a density over lambda."""
    log_density = (alpha * beta.log() - torch.lgamma(alpha) + (alpha - 1) * log_lambda
                   - beta * log_lambda.exp())
    return -log_density.sum()


# --- post-processing ------------------------------------------------------------------------------

def symmetric_kl(mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    """KL(a|b) + KL(b|a) between the 1-D Gaussians N(mu_a, var_a) and N(mu_b, var_b), all pairs."""
    d2 = (mu[:, None] - mu[None, :]) ** 2
    va, vb = var[:, None], var[None, :]
    return 0.5 * ((va + d2) / vb + (vb + d2) / va) - 1.0


def merge_components(mu, var, pi, threshold: float):
    """Merge components whose symmetric KL is below `threshold` (transitively).

    A merged component has the summed pi and the pi-weighted mean of mu and of sigma^2; it takes the slot
    of its lowest-numbered member and the other slots become NaN, so arrays keep their length. A group
    that contains component 0 stays the zero component (mean exactly 0). Returns (mu, var, pi) as float64.
    """
    mu, var, pi = (np.asarray(v, dtype=np.float64) for v in (mu, var, pi))
    n = len(mu)
    roots = merge_roots(mu, var, threshold)
    out = [np.full(n, np.nan) for _ in range(3)]
    for r in sorted(set(roots)):
        members = [i for i in range(n) if roots[i] == r]     # r is the lowest member
        p = pi[members]
        total = p.sum()
        out[0][r] = 0.0 if r == 0 else float((p * mu[members]).sum() / total)
        out[1][r] = float((p * var[members]).sum() / total)
        out[2][r] = float(total)
    return tuple(out)


def merge_roots(mu, var, threshold: float) -> list[int]:
    """For each component, the lowest-numbered member of its merged group (see merge_components)."""
    mu, var = (np.asarray(v, dtype=np.float64) for v in (mu, var))
    n = len(mu)
    parent = list(range(n))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    kl = symmetric_kl(mu, var)
    for a in range(n):
        for b in range(a + 1, n):
            if kl[a, b] < threshold:
                ra, rb = root(a), root(b)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    return [root(i) for i in range(n)]


def most_responsible(x: torch.Tensor, mu, var, pi) -> torch.Tensor:
    """Index (into the given arrays, NaN slots skipped) of each x's most responsible component."""
    mu, var, pi = (torch.as_tensor(np.asarray(v, dtype=np.float64), device=x.device) for v in (mu, var, pi))
    live = ~torch.isnan(mu)
    idx = live.nonzero().squeeze(1)
    m, v, p = mu[idx], var[idx], pi[idx]
    logc = p.log() - 0.5 * v.log()
    out = torch.empty(x.numel(), dtype=torch.int64, device=x.device)
    flat = x.detach().reshape(-1).double()
    for start in range(0, flat.numel(), EXACT_CHUNK):
        xs = flat[start:start + EXACT_CHUNK]
        logits = logc - 0.5 * (xs[:, None] - m) ** 2 / v
        out[start:start + EXACT_CHUNK] = idx[logits.argmax(1)]
    return out.view(x.shape)


def snap_to_means(tensors: list[torch.Tensor], mu, var, pi) -> None:
    """Set every weight to the mean of its most responsible component (the zero component's is exactly 0;
    NaN slots of a merged mixture are skipped)."""
    values = torch.as_tensor(np.nan_to_num(np.asarray(mu, dtype=np.float64)))
    with torch.no_grad():
        for t in tensors:
            t.copy_(values.to(t.device, t.dtype)[most_responsible(t, mu, var, pi)])


# --- the method -----------------------------------------------------------------------------------

@register
class SoftWeightSharing(Method):
    key = "sws"
    label = "Soft weight-sharing (Ullrich 2017)"
    summary = ("Gaussian mixture prior over all weights learned with them (zero component fixed); weights "
               "then snap to the component means. Use the adam optimizer, as the paper does.")
    paper = "Ullrich, Meeds, Welling. Soft Weight-Sharing for Neural Network Compression. ICLR 2017"
    Params = SWSParams

    def __init__(self, params=None):
        super().__init__(params)
        self.tensors: dict[str, list[nn.Parameter]] = {}      # layer -> tensors under the prior
        self.mu_free: nn.Parameter | None = None              # means of components 1..J-1
        self.log_lambda: nn.Parameter | None = None           # log-precisions of components 0..J-1
        self.rho: nn.Parameter | None = None                  # log-mixing weights of components 1..J-1
        self._workspace: Workspace | None = None              # grid mode's grid and buffers
        self._scale = 1.0
        self._prior_off = False      # the gradual snap's steps retrain without the prior (_gradual_snap)
        self._final: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None   # merged (mu, var, pi)
        self._sample: dict[str, tuple[torch.Tensor, np.ndarray]] = {}          # layer -> (index, initial)
        self._warned = False
        self._tau = 0.0                                        # tau in use (snap_budget may raise it)
        self._last_cost: float | None = None                  # the last epoch's snap cost (snap_budget)
        self._checked_cost = math.nan                         # a snap cost measured since the last stats
        self._held: HeldWeights | None = None                 # snap_steps: the weights already snapped
        self._steps: list[int] = []                           # snap_steps: epochs whose start snaps a step

    # --- mixture ---------------------------------------------------------------------------------
    def mixture(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mu, log lambda, log pi) of all J components, differentiable in the learned parameters."""
        p = self.params
        mu = torch.cat([self.mu_free.new_zeros(1), self.mu_free])
        log_pi = torch.cat([self.rho.new_full((1,), math.log(p.pi_zero)),
                            math.log1p(-p.pi_zero) + torch.log_softmax(self.rho, 0)])
        return mu, self.log_lambda, log_pi

    def mixture_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mu, sigma^2, pi) as float64 arrays of length `components` (merged after finalize)."""
        if self._final is not None:
            return self._final
        p = self.params
        mu_free, ll, rho = (t.detach().double().cpu() for t in (self.mu_free, self.log_lambda, self.rho))
        mu = torch.cat([torch.zeros(1, dtype=torch.float64), mu_free])
        pi = torch.cat([torch.full((1,), p.pi_zero, dtype=torch.float64),
                        (1.0 - p.pi_zero) * torch.softmax(rho, 0)])        # pi_0 exactly as set
        return mu.numpy(), (-ll).exp().numpy(), pi.numpy()

    def prior_tensors(self) -> list[torch.Tensor]:
        return [t for ts in self.tensors.values() for t in ts]

    def neg_log_prior(self, exact: bool | None = None) -> torch.Tensor:
        """-log p(w) over every tensor under the prior (unscaled), differentiable in weights and mixture."""
        exact = self.params.prior_eval == "exact" if exact is None else exact
        mu, ll, lp = self.mixture()
        return _PriorNLL.apply(None if exact else self._workspace, mu, ll, lp, *self.prior_tensors())

    def neg_log_hyperprior(self) -> torch.Tensor:
        return neg_log_gamma(self.log_lambda, self._alpha, self._beta)

    # --- hooks -----------------------------------------------------------------------------------
    def prepare(self, model: nn.Module, ctx: RunContext) -> None:
        p = self.params
        names = ("weight", "bias") if p.include_bias else ("weight",)
        for name, module in compressible_layers(model):
            self.tensors[name] = [getattr(module, n) for n in names if getattr(module, n, None) is not None]
        tensors = self.prior_tensors()
        if not tensors:
            raise ParamError("soft weight-sharing needs at least one Linear, Conv or Embedding layer")
        dev, dtype = ctx.device, tensors[0].dtype
        with torch.no_grad():
            flat = torch.cat([t.detach().reshape(-1) for t in tensors])
            r = p.init_range if p.init_range > 0 else float(_percentile(flat.abs(), INIT_PERCENTILE))
            lo, hi = (-r, r) if r > 0 else (-1.0, 1.0)      # an all-zero model: any spread will do
        J = p.components
        spread = np.linspace(lo, hi, J)
        means = np.delete(spread, int(np.argmin(np.abs(spread))))   # the zero component takes that place
        self.mu_free = nn.Parameter(torch.tensor(means, dtype=dtype, device=dev))
        self.log_lambda = nn.Parameter(torch.full((J,), -2.0 * math.log(p.init_sigma), dtype=dtype,
                                                  device=dev))
        self.rho = nn.Parameter(torch.zeros(J - 1, dtype=dtype, device=dev))   # equal pi_1..pi_{J-1}
        self._alpha = torch.tensor([p.zero_alpha] + [p.alpha] * (J - 1), dtype=dtype, device=dev)
        self._beta = torch.tensor([p.zero_beta] + [p.beta] * (J - 1), dtype=dtype, device=dev)
        unit = torch.arange(p.grid_points, dtype=dtype, device=dev) / (p.grid_points - 1)
        self._workspace = Workspace(unit)
        self._tau, self._last_cost = p.tau, None
        self._held, self._steps, self._prior_off = None, [], False
        self._scale = self._scale_for(p.tau, ctx)
        self._final = None
        gen = torch.Generator().manual_seed(0)
        for name, module in compressible_layers(model):
            w = module.weight.detach().reshape(-1)
            idx = torch.randperm(w.numel(), generator=gen)[:SCATTER_SAMPLES].sort().values.to(w.device)
            self._sample[name] = (idx, _padded(w[idx]))
        ctx.log(f"soft weight-sharing: {flat.numel():,} weights under a {J}-component prior, means "
                f"{means.min():.3g}..{means.max():.3g}, sigma {p.init_sigma:g}, prior scale "
                f"{self._scale:.3g} ({p.prior_scaling}), {p.prior_eval} evaluation")
        if ctx.num_train_full and p.prior_scaling == "per_sample":
            ctx.log(f"soft weight-sharing: the prior is scaled by 1/{ctx.num_train_full:,}, the whole training "
                    f"set's size: this run trains on a {ctx.num_train:,}-sample subset of it for a quick look")

    def param_groups(self, model: nn.Module) -> list[dict]:
        p = self.params
        return [
            {"params": [q for q in model.parameters() if q.requires_grad]},
            {"params": [self.mu_free], "lr": p.mixture_lr, "weight_decay": 0.0},
            {"params": [self.log_lambda], "lr": p.precision_lr, "weight_decay": 0.0},
            {"params": [self.rho], "lr": p.mixing_lr, "weight_decay": 0.0},
        ]

    def penalty(self, model: nn.Module, ctx: RunContext) -> torch.Tensor | None:
        if self._prior_off:
            return None          # no gradient reaches the mixture either: it stays as the steps found it
        return self._scale * (self.neg_log_prior() + self.neg_log_hyperprior())

    def _scale_for(self, tau: float, ctx: RunContext) -> float:
        """per_sample: tau / N with N the whole training set, also where the run trains on a quick-look subset
        of it. The prior is a once-per-data-set term; divided by the subset's size it weighed 10x more
        against the data on 6,000 of MNIST's 60,000 samples, and sws-lenet300 gave 47.7 % at 493x (snap budget
        off; 57.2 % at 273x with it) from a 95.89 % reference; divided by 60,000, 84.1 % at 218x (76.3 % at
        189x; 88.5 % at 151x with the gradual snap's narrow-zero rule since). A subset still previews a full
        run poorly: the mixture learns at per-step rates, and it has a
        tenth of the steps."""
        n = ctx.num_train_full or ctx.num_train
        return tau / max(n, 1) if self.params.prior_scaling == "per_sample" else tau

    def on_epoch_end(self, model: nn.Module, ctx: RunContext) -> None:
        """snap_budget: raise tau while trying the snap shows the weights have not gathered (see the knob).

        The weights take epochs to follow a stronger prior, so tau grows by TAU_GROWTH at most every other
        epoch, never on the first check (after one epoch the weights have not gathered even where they
        will: MNIST's trial snap cost 17.8 points then and 0.0 two epochs later), and not while the cost is
        still falling (below TAU_KEEP_FALLING of the last check's). Doubling at every epoch overshot
        (Fashion-MNIST: tau 64x within 7 epochs, 6 points lost before the snap)."""
        p = self.params
        epochs = ctx.total_steps // max(ctx.steps_per_epoch, 1)
        if p.snap_budget <= 0 or ctx.epoch + 1 > epochs // 2 or ctx.epoch % 2:
            return
        cost, before, after, seen = self._snap_cost(model, ctx)
        if not seen:
            return
        last, self._last_cost = self._last_cost, cost
        old = self._tau
        self._checked_cost = cost
        if (last is not None and cost > p.snap_budget and cost >= TAU_KEEP_FALLING * last
                and self._tau < p.tau * TAU_GROWTH_MAX):
            self._tau = min(TAU_GROWTH * self._tau, p.tau * TAU_GROWTH_MAX)
            self._scale = self._scale_for(self._tau, ctx)
        ctx.log(f"soft weight-sharing: the snap would cost {cost:.1f} points now ({before:.1%} -> {after:.1%} "
                f"on {seen} training samples; budget {p.snap_budget:g}): "
                + (f"tau {old:g} -> {self._tau:g}" if self._tau != old else f"tau stays {old:g}"))

    def _snap_cost(self, model: nn.Module, ctx: RunContext) -> tuple[float, float, float, int]:
        """(points lost, accuracy before, after, samples) if the weights snapped now; they are put back."""
        before, seen = _accuracy_on(model, ctx, SNAP_CHECK_SAMPLES)
        if not seen:
            return 0.0, before, before, 0
        kept = [t.detach().clone() for t in self.prior_tensors()]
        snap_to_means(self.prior_tensors(), *self.mixture_arrays())
        after, _ = _accuracy_on(model, ctx, SNAP_CHECK_SAMPLES)
        with torch.no_grad():
            for t, k in zip(self.prior_tensors(), kept):
                t.copy_(k)
        return 100 * (before - after), before, after, seen

    def on_epoch_start(self, model: nn.Module, ctx: RunContext) -> None:
        """The gradual snap's steps (snap_steps); says (once) when the grid is too coarse."""
        self._gradual_snap(model, ctx)
        if self.params.prior_eval != "grid" or self._warned:
            return
        with torch.no_grad():
            flat = torch.cat([t.detach().reshape(-1) for t in self.prior_tensors()])
            h = float(flat.max() - flat.min()) / (self.params.grid_points - 1)
            sigma = float((-0.5 * self.log_lambda.detach()).exp().min())
        if h > sigma / 10:
            self._warned = True
            ctx.log(f"soft weight-sharing: grid spacing {h:.3g} is over a tenth of the narrowest sigma "
                    f"{sigma:.3g}; raise grid_points or use prior_eval=exact for an accurate prior")

    def _gradual_snap(self, model: nn.Module, ctx: RunContext) -> None:
        """snap_steps: at the half, decide from a trial snap; then hold a further share at each step."""
        p = self.params
        epochs = ctx.total_steps // max(ctx.steps_per_epoch, 1)
        if p.snap_steps <= 0 or epochs < 2:
            return
        if ctx.epoch == epochs // 2 and self._held is None:
            cost, before, after, seen = self._snap_cost(model, ctx)
            limit = p.snap_budget or SNAP_CHECK_POINTS
            gradual = bool(seen) and cost > limit
            self._checked_cost = cost
            ctx.log(f"soft weight-sharing: at the half the snap would cost {cost:.1f} points ({before:.1%} -> "
                    f"{after:.1%} on {seen} training samples; limit {limit:g}): "
                    + ("the weights snap in steps from now" if gradual else "all weights snap at the end"))
            if gradual:
                self._held = HeldWeights(self.prior_tensors())
                self._steps = step_epochs(epochs, p.snap_steps)
                sigma = (-0.5 * self.log_lambda.detach()).exp()
                if sigma[0] < sigma[1:].min():
                    # The prior has parted the weights it prunes (a narrow zero component) from those it
                    # keeps, and what a snap would still cost lies in weights between the two: the data
                    # term alone moves them, as in INQ's retraining. Under the prior (tau as set) sws-lenet5
                    # on Fashion-MNIST gave 87.11 % at 98.9x, without it 89.93 % at 88.9x (sigma_0 0.0037,
                    # the others 0.016 and up; from a second reference 86.89 % at 91.3x -> 89.26 % at
                    # 95.8x). A zero component still the widest would, fixed, prune what
                    # the free weights grow into: sws-lenet300 there without the snap budget (sigma_0 0.038
                    # at the half) fell to 45.3 % without the prior and gives 84.4 % under it.
                    self._prior_off = True
                    ctx.log(f"soft weight-sharing: the zero component (sigma {float(sigma[0]):.3g}) is narrower "
                            f"than every other (from {float(sigma[1:].min()):.3g}): the free weights retrain "
                            f"without the prior during the steps, the mixture fixed")
                elif self._tau != p.tau:
                    # the budget raised tau to gather the weights for one snap; the steps hold them instead,
                    # and the raised prior kept pulling the free weights to 0 against the retraining that
                    # makes up for the held ones (sws-lenet5 on Fashion-MNIST, tau 4x: 83.5 % -> 86.9 %)
                    ctx.log(f"soft weight-sharing: tau {self._tau:g} -> {p.tau:g} (as set) for the steps")
                    self._tau = p.tau
                    self._scale = self._scale_for(self._tau, ctx)
        if self._held is None or ctx.epoch not in self._steps:
            return
        tensors = self.prior_tensors()
        mixture = self.mixture_arrays()
        assigned = [most_responsible(t, *mixture) for t in tensors]
        self._held.add(tensors, assigned)
        self._held.hold(tensors, self._means())
        cost, before, after, seen = self._snap_cost(model, ctx)
        self._checked_cost = cost
        ctx.log(f"soft weight-sharing: snap step {self._steps.index(ctx.epoch) + 1} of {len(self._steps)}: "
                f"{self._held.fraction():.1%} of the weights held at their means; snapping the rest now would "
                f"cost {cost:.1f} points ({before:.1%} -> {after:.1%})")

    def _means(self) -> torch.Tensor:
        """The component means now (the zero component's 0 first), detached."""
        return torch.cat([self.mu_free.detach().new_zeros(1), self.mu_free.detach()])

    def after_step(self, model: nn.Module, ctx: RunContext) -> None:
        if self._held is not None:
            self._held.hold(self.prior_tensors(), self._means())

    def finalize(self, model: nn.Module, ctx: RunContext) -> None:
        before, seen = _accuracy_on(model, ctx, SNAP_CHECK_SAMPLES)
        self._snap(ctx)
        after, _ = _accuracy_on(model, ctx, SNAP_CHECK_SAMPLES)
        if seen:
            self._checked_cost = 100 * (before - after)     # the final point's snap_cost: the real snap's
        if seen and before - after > SNAP_CHECK_POINTS / 100:
            ctx.log(f"soft weight-sharing: the snap cost {100 * (before - after):.1f} points of accuracy on "
                    f"{seen} training samples ({before:.1%} -> {after:.1%}): {self.finalize_hint()}")

    def finalize_hint(self) -> str:
        first = "" if self.params.snap_budget else "snap_budget (e.g. 1) raises tau while a trial snap costs much; "
        return (f"the weights had not gathered around the mixture's means (the run log has the snap checks): "
                f"{first}search tau and pi_0 on this data set (the Tune… button, `workbench tune`)")

    def _snap(self, ctx: RunContext) -> None:
        mu, var, pi = self.mixture_arrays()
        self._final = merge_components(mu, var, pi, self.params.merge_kl)
        snap_to_means(self.prior_tensors(), *self._final)
        if self._held is not None:
            # held weights keep the component they snapped to (their merged group's mean), not whichever
            # component is most responsible for that mean after merging
            merged = self._final[0][merge_roots(mu, var, self.params.merge_kl)]
            self._held.hold(self.prior_tensors(), torch.as_tensor(merged))
        kept = int(np.sum(~np.isnan(self._final[0])))
        ctx.log(f"soft weight-sharing: {kept} of {len(mu)} components after merging; weights snapped")

    def epoch_stats(self, model: nn.Module) -> dict:
        if self.mu_free is None:
            return {}       # the reference point is recorded before prepare
        mu, var, pi = self.mixture_arrays()
        checked, self._checked_cost = self._checked_cost, math.nan
        out = {}
        first = 0                                   # the index of this layer's weight among prior_tensors
        for name, tensors in self.tensors.items():
            w = tensors[0].detach()
            held = self._held.layer_fraction(first) if self._held is not None else 0.0
            first += len(tensors)
            if self._final is not None:
                zero = float((w == 0).float().mean())
            else:
                zero = float((most_responsible(w, mu, var, pi) == 0).float().mean())
            # tau in use (snap_budget may have raised it; 0 while the snap steps retrain without the prior)
            # and the trial snap's cost in points (NaN where this epoch had no check): the run file then
            # says when and why tau grew, not only the log
            out[name] = {"mix_mean": mu.copy(), "mix_var": var.copy(), "mix_weight": pi.copy(),
                         "snap_zero_fraction": zero, "tau": 0.0 if self._prior_off else self._tau,
                         "snap_cost": checked,
                         "snap_held": held}     # snap_steps: the share of the weight held at the means
            if self._final is not None and name in self._sample:
                idx, initial = self._sample[name]
                out[name]["scatter_initial"] = initial
                out[name]["scatter_final"] = _padded(w.reshape(-1)[idx])
        return out


def _accuracy_on(model: nn.Module, ctx: RunContext, limit: int) -> tuple[float, int]:
    """(accuracy, samples) on the first `limit` training samples (eval mode); (nan, 0) without data."""
    if ctx.train_batches is None:
        return math.nan, 0
    was_training = model.training
    model.eval()
    correct = seen = 0
    with torch.no_grad():
        for xb, yb in ctx.train_batches():
            take = min(len(yb), limit - seen)
            correct += int((model(xb[:take]).argmax(1) == yb[:take]).sum())
            seen += take
            if seen >= limit:
                break
    model.train(was_training)
    return (correct / seen if seen else math.nan), seen


def _percentile(values: torch.Tensor, q: float) -> torch.Tensor:
    """By sorting: torch.quantile refuses inputs over 16M entries."""
    ordered = values.reshape(-1).sort().values
    return ordered[min(int(round(q / 100 * (ordered.numel() - 1))), ordered.numel() - 1)]


def _padded(values: torch.Tensor) -> np.ndarray:
    """A fixed-length float64 array (SCATTER_SAMPLES), NaN-padded for small layers."""
    out = np.full(SCATTER_SAMPLES, np.nan)
    v = values.detach().double().cpu().numpy()
    out[:v.size] = v
    return out
