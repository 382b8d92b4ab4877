"""Turning a plain model into a hashed one: bucket budgets, the structure spec, and initialisation.

Shared by `hashed` (HashedNets) and `funhash` (functional hashing); the two differ only in their knobs,
which each turns into a HashConfig.

Budgets. A ratio r stores about r buckets per virtual element (weights, plus biases when hashed). What
g and the dual space take comes out of that budget (their parameters are stored, so they count): with a
shared space, K = round(r * sum_l n_l) - |g| (once if shared, per layer if not) - K_dual; per layer,
K_l = round(r_l n_l) - |g_l| (a shared g's cost spread over the layers by size) - K_dual,l.

Initialisation. `pretrained`: each bucket starts at the mean of its members' pretrained weights, sign
corrected (xi(n) W_n: the least-squares fit of HashedNets' weights to the dense ones), over all U hash
functions; the dual space starts at 1, g with N(0, 1/fan_in) weights and zero biases; then `fit_steps`
Adam steps fit spaces and g to the dense weights (sum_l ||V_l - W_l||^2 / sum_l ||W_l||^2). `scratch`:
buckets uniform in +-1/sqrt(fan_in) (nn.Linear's default range; a shared space takes the members' mean
1/fan_in), then scaled so that the virtual weights start at nn.Linear's scale (E[V^2] = 1/(3 fan_in)),
dense biases zero. prepare calls `RunContext.check_cancelled` between chunks of the bucket means and
before every fitting step, so a cancelled run stops within one of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from workbench.core.errors import ParamError
from workbench.methods.base import Method, RunContext
from workbench.methods.per_layer import check_layer_map, choose_layers
from workbench.models import structure
from workbench.models.hashed import kernel
from workbench.models.hashed.layers import Reconstruction, hashed_layers, root_of
from workbench.models.layers import compressible_layers, layer_kind


@dataclass(frozen=True)
class HashConfig:
    ratio: float
    ratio_layers: dict = field(default_factory=dict)
    layers: str = "all"
    u: int = 1
    widths: tuple[int, ...] = ()           # g's layer widths; () = no g (the plain sum)
    activation: str = "linear"
    shared_g: bool = True
    shared_space: bool = False
    dual: bool = False
    dual_fraction: float = 0.25
    hash_bias: bool = False
    init: str = "pretrained"
    fit_steps: int = 0
    seed: int = -1
    cache_indices: bool = False
    kernel: str = "auto"
    g_grad_scale: float = -1.0             # -1: U / (buckets g's layers read); see g_gradient_scales


def parse_widths(text: str) -> tuple[int, ...]:
    """`4,2,1` -> (4, 2, 1); `none` or empty -> () (no reconstruction network: the sum)."""
    text = text.strip().lower()
    if text in ("", "none", "sum"):
        return ()
    try:
        widths = tuple(int(w) for w in text.replace("->", ",").replace(" ", "").split(",") if w)
    except ValueError:
        raise ParamError(f"g_widths: {text!r} is not a list of widths like 4,2,1 (or none)") from None
    if not widths or min(widths) < 1 or max(widths) > 64 or len(widths) > 8:
        raise ParamError(f"g_widths: {text!r}: 1 to 8 layers of 1 to 64 units")
    if widths[-1] != 1:
        raise ParamError(f"g_widths: {text!r}: g's last layer gives the weight, so it has width 1")
    return widths


def budgets(elements: dict[str, int], cfg: HashConfig) -> dict:
    """{"space": K | None, "dual": K2 | None, "layers": {name: (K_l | None, K2_l | None)}}."""
    n_g = kernel.g_param_count(cfg.u, cfg.widths) if cfg.widths else 0
    total = sum(elements.values())
    check_layer_map("ratio_layers", cfg.ratio_layers, elements, what="hashed ")

    def split(budget: float, what: str) -> tuple[int, int | None]:
        dual = round(cfg.dual_fraction * budget) if cfg.dual else None
        size = round(budget) - (dual or 0)
        if size < 1 or (dual is not None and dual < 1):
            raise ParamError(f"ratio: {what} gets {round(budget)} stored values after g's {n_g} parameters, "
                             f"too few for a space{' and a dual space' if cfg.dual else ''}; raise the ratio")
        return size, dual

    if cfg.shared_space:
        g_cost = n_g if cfg.shared_g else n_g * len(elements)
        size, dual = split(cfg.ratio * total - g_cost, "the shared space")
        return {"space": size, "dual": dual, "layers": {n: (None, None) for n in elements}}
    out = {}
    for name, n in elements.items():
        g_cost = n_g if not cfg.shared_g else n_g * n / total
        out[name] = split(cfg.ratio_layers.get(name, cfg.ratio) * n - g_cost, name)
    return {"space": None, "dual": None, "layers": out}


def hashing_entry(cfg: HashConfig, sizes: dict) -> dict:
    g = ({"widths": list(cfg.widths), "activation": cfg.activation, "shared": cfg.shared_g}
         if cfg.widths else None)
    return {"u": cfg.u, "hash_bias": cfg.hash_bias, "dual_space": cfg.dual, "space": sizes["space"],
            "dual": sizes["dual"], "g": g}


def convert(model: nn.Module, cfg: HashConfig, seed: int, log=None) -> tuple[list[str], dict, dict]:
    """Replace the chosen layers by hashed ones (fresh values). Returns (names, dense targets: the flat
    weight (+ hashed bias) each layer had, dense biases that stay dense). Layers hashing cannot take stay
    dense, each told to `log` with the reason."""
    names = choose_layers(model, cfg.layers, log)
    modules = dict(compressible_layers(model))
    targets, biases, elements = {}, {}, {}
    for name in names:
        m = modules[name]
        parts = [m.weight.detach().reshape(-1)]
        if m.bias is not None:
            if cfg.hash_bias:
                parts.append(m.bias.detach())
            else:
                biases[name] = m.bias.detach()
        targets[name] = torch.cat(parts).float()
        elements[name] = targets[name].numel()
    sizes = budgets(elements, cfg)
    spec = structure.new_hashed_spec(hashing_entry(cfg, sizes))
    for i, name in enumerate(names):
        m = modules[name]
        own, own_dual = sizes["layers"][name]
        spec["layers"][name] = {"kind": layer_kind(m), "shape": list(m.weight.shape), "bias": m.bias is not None,
                                "hashed": {"id": i, "space": own, "dual": own_dual}}
    structure.apply_structure(model, spec)
    root_of(model).set_seed(seed)
    for _, layer in hashed_layers(model):
        layer.cache_indices, layer.kernel = cfg.cache_indices, cfg.kernel
    return names, targets, biases


def _tables(model: nn.Module) -> list[nn.Parameter]:
    seen, out = set(), []
    for _, layer in hashed_layers(model):
        for t in (layer.table, layer.dual_table):
            if t is not None and id(t) not in seen:
                seen.add(id(t))
                out.append(t)
    return out


def _reconstructions(model: nn.Module) -> list[Reconstruction]:
    return [m for m in model.modules() if isinstance(m, Reconstruction)]


@torch.no_grad()
def init_pretrained(model: nn.Module, targets: dict, biases: dict, generator: torch.Generator,
                    check: Callable[[], None] = lambda: None) -> None:
    """Buckets = sign-corrected means of their members; g ~ N(0, 1/fan_in); dual space 1. `check` runs
    before each chunk of elements (RunContext.check_cancelled: it raises when the run was cancelled)."""
    layers = dict(hashed_layers(model))
    sums: dict[int, torch.Tensor] = {}
    counts: dict[int, torch.Tensor] = {}
    for name, layer in layers.items():
        table = layer.table
        t = targets[name].to(device=table.device, dtype=table.dtype)
        s = sums.setdefault(id(table), torch.zeros_like(table))
        c = counts.setdefault(id(table), torch.zeros_like(table))
        for a, b, bucket, neg in layer.code_chunks(table.device):
            check()
            vals = torch.where(neg, -t[a:b], t[a:b])
            s.index_add_(0, bucket.reshape(-1), vals.reshape(-1))
            c.index_add_(0, bucket.reshape(-1), torch.ones_like(vals).reshape(-1))
        if layer.bias is not None and name in biases:
            layer.bias.copy_(biases[name])
    for layer in layers.values():
        table = layer.table
        if id(table) in sums:
            table.copy_(sums.pop(id(table)) / counts[id(table)].clamp_min(1))
        if layer.dual_table is not None:
            layer.dual_table.fill_(1.0)
    for g in _reconstructions(model):
        g.init_lecun(generator)


@torch.no_grad()
def init_scratch(model: nn.Module, generator: torch.Generator) -> None:
    """Buckets uniform in +-sqrt(mean of 1/fan_in over their members); dense biases 0; g ~ N(0, 1/fan_in)."""
    inv_fan: dict[int, list[float]] = {}
    for _, layer in hashed_layers(model):
        fan_in = math.prod(layer.weight_shape[1:])
        acc = inv_fan.setdefault(id(layer.table), [0.0, 0.0])
        acc[0] += layer.count / fan_in
        acc[1] += layer.count
        if layer.bias is not None:
            layer.bias.zero_()
        if layer.dual_table is not None:
            layer.dual_table.fill_(1.0)
    for table in _tables(model):
        if id(table) in inv_fan:
            bound = math.sqrt(inv_fan[id(table)][0] / inv_fan[id(table)][1])
            values = torch.rand(table.shape, generator=generator) * 2 * bound - bound
            table.copy_(values.to(table.device))
    for g in _reconstructions(model):
        g.init_lecun(generator)
    calibrate(model)


@torch.no_grad()
def calibrate(model: nn.Module) -> None:
    """Scale what each g (or, without g, each space) produces to nn.Linear's initial weight scale,
    E[V^2] = 1 / (3 fan_in): a product of small random layers (4 -> 2 -> 1) can shrink the values
    several-fold, and g's output layer (no bias) scales them exactly."""
    groups: dict[int, list] = {}
    for _, layer in hashed_layers(model):
        owner = layer.recon if layer.recon is not None else layer.table
        groups.setdefault(id(owner), [owner, 0.0, 0.0])
        v = layer.virtual()
        groups[id(owner)][1] += float((v.double() ** 2).sum())
        groups[id(owner)][2] += layer.count / (3 * math.prod(layer.weight_shape[1:]))
    for owner, have, want in groups.values():
        if have > 0:
            scale = math.sqrt(want / have)
            (owner.layers[-1].weight if isinstance(owner, Reconstruction) else owner).mul_(scale)


def relative_error(model: nn.Module, targets: dict) -> float:
    with torch.no_grad():
        err = tot = 0.0
        for name, layer in hashed_layers(model):
            t = targets[name].to(device=layer.table.device, dtype=layer.table.dtype)
            err += float(((layer.virtual() - t) ** 2).sum())
            tot += float((t ** 2).sum())
    return math.sqrt(err / tot) if tot else 0.0


def fit(model: nn.Module, targets: dict, steps: int, check: Callable[[], None] = lambda: None) -> None:
    """Adam on spaces and g: min sum_l ||V_l - W_l||^2 / sum_l ||W_l||^2 (the pretrained weights);
    `check` runs before each step."""
    layers = hashed_layers(model)
    scale = sum(float((t ** 2).sum()) for t in targets.values()) or 1.0
    rms = math.sqrt(scale / sum(t.numel() for t in targets.values()))
    groups = [{"params": _tables(model), "lr": 0.05 * rms}]
    g_params = [p for g in _reconstructions(model) for p in g.parameters()]
    if g_params:
        groups.append({"params": g_params, "lr": 0.01})
    opt = torch.optim.Adam(groups)
    device_targets = {n: targets[n].to(device=layer.table.device, dtype=layer.table.dtype) for n, layer in layers}
    for _ in range(steps):
        check()
        loss = sum(((layer.virtual() - device_targets[n]) ** 2).sum() for n, layer in layers) / scale
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for p in model.parameters():
        p.grad = None                      # training starts from clean gradients


def g_gradient_scales(model: nn.Module, scale: float) -> dict[int, tuple[Reconstruction, float]]:
    """Factor on each g's gradient. g serves every weight of its layers, so its gradient is a sum over
    all of them, while a bucket's sums over its members only (U N / K of them); plain SGD at a rate that
    suits the buckets then throws g far off (LeNet-300-100 stayed at chance). `auto` (-1) scales g's
    gradient to a bucket's size: U / K, K the buckets of the spaces its layers read."""
    out: dict[int, list] = {}
    for _, layer in hashed_layers(model):
        g = layer.recon
        if g is None:
            continue
        entry = out.setdefault(id(g), [g, {}, layer.u])
        entry[1][id(layer.table)] = layer.table.numel()
    return {k: (g, scale if scale >= 0 else u / sum(tables.values())) for k, (g, tables, u) in out.items()}


def kernel_note(model: nn.Module) -> str:
    layers = hashed_layers(model)
    if not layers:
        return ""
    layer = layers[0][1]
    if layer.kernel != "auto":
        return "PyTorch path (kernel=torch)" + (", cached indices" if layer.cache_indices else "")
    if layer.table.device.type != "cpu":
        return f"PyTorch path on {layer.table.device}" + (", cached indices" if layer.cache_indices else
                                                          ", indices recomputed in chunks")
    k = layer.native(layer.table)
    if k is None:
        return f"PyTorch path (no native kernel: {kernel.last_error() or 'disabled'})"
    return f"native CPU kernel ({k.path.name}); indices recomputed, never stored"


class HashingMethod(Method):
    """prepare / stats / finalize shared by `hashed` and `funhash`; subclasses give `hash_config`."""

    def __init__(self, params=None):
        super().__init__(params)
        self.names: list[str] = []
        self._occupancy: dict | None = None
        self._hooks: list = []

    def hash_config(self) -> HashConfig:
        raise NotImplementedError

    def prepare(self, model: nn.Module, ctx: RunContext) -> None:
        if structure.structure_of(model) is not None:
            raise ParamError(f"{self.key}: the model's layers were already replaced by an earlier stage "
                             "(factorised, thinned or hashed)")
        cfg = self.hash_config()
        seed = cfg.seed if cfg.seed >= 0 else int(torch.randint(0, 2**31 - 1, (1,), generator=ctx.generator))
        self.names, targets, biases = convert(model, cfg, seed, ctx.log)
        self._occupancy = None
        ctx.check_cancelled()
        if cfg.init == "pretrained":
            init_pretrained(model, targets, biases, ctx.generator, ctx.check_cancelled)
            before = relative_error(model, targets)
            # U = 1 without g: the member means already are the least-squares fit (HashedNets exactly)
            if cfg.fit_steps and (cfg.u > 1 or cfg.widths or cfg.dual):
                fit(model, targets, cfg.fit_steps, ctx.check_cancelled)
                ctx.log(f"{self.key}: buckets from their members' sign-corrected means (relative error "
                        f"{before:.3f} of the pretrained weights), then {cfg.fit_steps} fitting steps: "
                        f"{relative_error(model, targets):.3f}")
            else:
                ctx.log(f"{self.key}: buckets from their members' sign-corrected means; relative error "
                        f"{before:.3f} of the pretrained weights")
        else:
            init_scratch(model, ctx.generator)
            ctx.log(f"{self.key}: trained from scratch (buckets uniform in +-1/sqrt(fan_in))")
        for g, scale in g_gradient_scales(model, cfg.g_grad_scale).values():
            if scale != 1.0:
                self._hooks += [p.register_hook(lambda grad, s=scale: grad * s) for p in g.parameters()]
                ctx.log(f"{self.key}: g's gradient scaled by {scale:.3g} (g_grad_scale)")
        spec = structure.structure_of(model)
        h = spec["hashing"]
        sizes = ", ".join(f"{n} {e['hashed']['space']}" for n, e in spec["layers"].items()
                          if e["hashed"]["space"])
        ctx.log(f"{self.key}: seed {seed}; {cfg.u} hash function(s); "
                + (f"shared space of {h['space']} buckets" if h["space"] else f"buckets per layer: {sizes}")
                + (f"; dual space {h['dual'] or 'per layer'}" if cfg.dual else "")
                + (f"; g {' -> '.join(map(str, (cfg.u, *cfg.widths)))} ({cfg.activation}), "
                   f"{'shared' if cfg.shared_g else 'per layer'}" if cfg.widths else "")
                + f"; {kernel_note(model)}")
        del targets, biases

    def epoch_stats(self, model: nn.Module) -> dict:
        from workbench.methods.hashing.stats import layer_stats, occupancy
        if not self._occupancy:            # the hash is fixed: counted once, once the layers exist
            self._occupancy = occupancy(model)
        return layer_stats(model, self._occupancy)

    def finalize(self, model: nn.Module, ctx: RunContext) -> None:
        for _, layer in hashed_layers(model):
            layer.clear_caches()
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
