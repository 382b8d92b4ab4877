"""Hashed layers: linear and conv layers whose weights are virtual, fetched from compression spaces.

HashedNets (Chen et al. 2015): V_n = xi(n) w[h(n)], one space per layer. Functional hashing (Shi, Feng,
Zhu 2016): V_n = g(xi_1(n) w[h_1(n)], ..., xi_U(n) w[h_U(n)]; alpha), g a small reconstruction network;
one space shared by all layers (HFH) or one per layer (FunHashNN), g shared or per layer; optionally
dual-space hashing, where each fetched value is scaled by a per-weight parameter of g hashed from a second
table. U = 1 with no g is HashedNets exactly. n runs over the weight (row-major) and then, when biases are
hashed, the bias.

Memory: `_Virtual` builds a layer's virtual weight vector without letting autograd keep anything per
element: the backward pass recomputes the hash (index.py) and scatter-adds into the buckets, so
training holds the virtual weights the matmul needs and no index tensor (an int64 index per weight alone
would be twice the fp32 weights). On CPU the native kernel (kernel.py, kernel.c) does both passes in one loop;
elsewhere the PyTorch path works through chunks of CHUNK elements, optionally from cached int32 codes
(`cache_indices`: bucket << 1 | sign, 4 bytes per weight and hash function, for speed where memory allows).
In eval mode without gradients the virtual weights are kept until a parameter changes, so inference
costs what the dense layer costs.

Module tree (state-dict names are part of the file formats): the model gets a `hashing` submodule
(HashingRoot: the `seed` buffer, and the shared `space`, `dual` and reconstruction net `g` where shared);
each hashed layer keeps its own `space`, `dual`, `g` where not shared, and `bias` when biases stay dense.
Layers reach the root through a plain attribute, so shared tensors appear once in the state dict.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from workbench.models.hashed import index, kernel

ROOT = "hashing"                 # the model's submodule holding the seed and the shared tensors
CHUNK = 1 << 18                  # elements per step of the PyTorch path (bounds its temporaries)
ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "linear": lambda x: x}


class Reconstruction(nn.Module):
    """g: U fetched values -> one weight; Linear layers of the given widths, the activation between them.

    The output layer has no bias: it would add one constant to every virtual weight g produces (the
    paper's one-layer g is alpha in R^U, a weighted sum without offset)."""

    def __init__(self, u: int, widths: tuple[int, ...], activation: str, device=None, dtype=None):
        super().__init__()
        if not widths or widths[-1] != 1:
            raise ValueError("the reconstruction network ends in one output")
        self.u, self.widths, self.activation = u, tuple(widths), activation
        self.layers = nn.ModuleList(nn.Linear(fan_in, width, bias=bias is not None, device=device, dtype=dtype)
                                    for fan_in, width, _, bias in kernel.g_layout(u, self.widths))

    def tensors(self) -> list[torch.Tensor]:
        """Weight, bias of each layer, the output layer's weight last: the kernel's parameter order."""
        return [t for layer in self.layers for t in (layer.weight, layer.bias) if t is not None]

    def apply_to(self, f: torch.Tensor, tensors: list[torch.Tensor]) -> torch.Tensor:
        """g of each row of f (n, U) with the given parameter tensors; (n,). g's one definition in PyTorch:
        the PyTorch path's backward differentiates this (HashedLayer.gradients); the kernel's C is
        generated from the same layout (kernel.element_code)."""
        act = ACTIVATIONS[self.activation]
        x = f
        last = len(self.widths) - 1
        for i in range(last):
            x = act(F.linear(x, tensors[2 * i], tensors[2 * i + 1]))
        return F.linear(x, tensors[2 * last])[:, 0]

    @torch.no_grad()
    def init_lecun(self, generator: torch.Generator) -> None:
        """Weights N(0, 1/fan_in), zero biases: in tanh's linear range g keeps its inputs' scale, and no
        bias adds a constant to every weight."""
        for layer in self.layers:
            w = torch.randn(layer.weight.shape, generator=generator, dtype=torch.float64)
            layer.weight.copy_(w / math.sqrt(layer.in_features))
            if layer.bias is not None:
                layer.bias.zero_()


class HashingRoot(nn.Module):
    """The seed and what the hashed layers share (space, dual space, g)."""

    def __init__(self, *, space: int | None, dual: int | None, g: Reconstruction | None, device=None,
                 dtype=None):
        super().__init__()
        # 1-D: HDF5 stores no compressed scalars
        self.register_buffer("seed", torch.zeros(1, dtype=torch.int64, device=device))
        self.space = nn.Parameter(torch.zeros(space, device=device, dtype=dtype)) if space else None
        self.dual = nn.Parameter(torch.ones(dual, device=device, dtype=dtype)) if dual else None
        self.g = g
        self.seed_value = 0

    def set_seed(self, seed: int) -> None:
        with torch.no_grad():
            self.seed.fill_(int(seed))
        self.seed_value = int(seed)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.seed_value = int(self.seed)      # once per load; the hash reads this Python int


class _Virtual(torch.autograd.Function):
    """Virtual values of one hashed layer from (space, dual space, g's tensors); stores no per-element
    tensor for the backward pass."""

    @staticmethod
    def forward(ctx, layer, table, dual, *g):
        ctx.layer = layer
        ctx.save_for_backward(table, dual, *g)
        return layer.compute(table, dual, list(g))

    @staticmethod
    def backward(ctx, grad):
        table, dual, *g = ctx.saved_tensors
        gt, gd, gg = ctx.layer.gradients(grad.contiguous(), table, dual, g)
        return (None, gt, gd, *gg)


def chunks(count: int):
    """[a, b) spans of at most CHUNK elements covering range(count): the PyTorch path's steps."""
    return ((a, min(a + CHUNK, count)) for a in range(0, count, CHUNK))


def _native_inputs(table, dual, g: list[torch.Tensor]) -> tuple:
    """(table, dual or None, g flat or None) as the kernel takes them: detached, contiguous (g float32)."""
    return (table.detach().contiguous(), dual.detach().contiguous() if dual is not None else None,
            torch.cat([t.detach().reshape(-1) for t in g]).float().contiguous() if g else None)


class HashedLayer(nn.Module):
    """What HashedLinear and HashedConv2d share: the virtual weight vector of `count` elements."""

    def __init__(self, weight_shape, has_bias: bool, *, layer_id: int, u: int, hash_bias: bool,
                 space: int | None, dual: int | None, g: Reconstruction | None, root: HashingRoot,
                 dual_space: bool, device=None, dtype=None):
        super().__init__()
        self.weight_shape = tuple(int(s) for s in weight_shape)
        self.weight_count = math.prod(self.weight_shape)
        self.layer_id, self.u = int(layer_id), int(u)
        self.hash_bias = bool(hash_bias and has_bias)
        self.has_bias = bool(has_bias)
        self.count = self.weight_count + (self.weight_shape[0] if self.hash_bias else 0)
        self.dual_space = bool(dual_space)
        kw = {"device": device, "dtype": dtype}
        self.space = nn.Parameter(torch.zeros(space, **kw)) if space else None
        self.dual = nn.Parameter(torch.ones(dual, **kw)) if dual else None
        self.g = g
        self.bias = (nn.Parameter(torch.zeros(self.weight_shape[0], **kw))
                     if has_bias and not self.hash_bias else None)
        object.__setattr__(self, "_root", root)      # not a submodule: shared tensors stay in one place
        self.cache_indices = False
        self.kernel = "auto"                         # "auto": native on CPU where it builds; "torch"
        self._keys: tuple[int, index.LayerKeys] | None = None
        self._codes: dict = {}
        self._eval: tuple | None = None
        index.check_sizes(self.count, self.size, f"layer {layer_id}")

    # --- what the layer reads ---------------------------------------------------------------------------
    @property
    def table(self) -> nn.Parameter:
        return self.space if self.space is not None else self._root.space

    @property
    def dual_table(self) -> nn.Parameter | None:
        if not self.dual_space:
            return None
        return self.dual if self.dual is not None else self._root.dual

    @property
    def recon(self) -> Reconstruction | None:
        return self.g if self.g is not None else self._root.g

    @property
    def size(self) -> int:
        return self.table.numel()

    @property
    def dual_size(self) -> int:
        d = self.dual_table
        return d.numel() if d is not None else 0

    @property
    def keys(self) -> index.LayerKeys:
        seed = self._root.seed_value
        if self._keys is None or self._keys[0] != seed:
            self._keys = (seed, index.layer_keys(seed, self.layer_id, self.u, self.dual_space))
        return self._keys[1]

    def native(self, table: torch.Tensor):
        """The native kernel where it applies (float32 on CPU), else None."""
        if self.kernel != "auto" or table.device.type != "cpu" or table.dtype != torch.float32:
            return None
        r = self.recon
        return kernel.load(self.u, r.widths if r else (), r.activation if r else "linear", self.dual_space)

    # --- the PyTorch path -------------------------------------------------------------------------------
    def codes(self, start: int, stop: int, device, dual: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(bucket (U, n) int64, negative (U, n) bool) of elements [start, stop), cached when asked."""
        size = self.dual_size if dual else self.size
        if not self.cache_indices:
            return index.codes(self.keys, start, stop, size, device, dual)
        key = (self._root.seed_value, str(device), dual, size)
        if key not in self._codes:
            self._codes = {k: v for k, v in self._codes.items() if k[1] == key[1]}   # one device at a time
            parts = []
            for a, b in chunks(self.count):
                bucket, neg = index.codes(self.keys, a, b, size, device, dual)
                parts.append(((bucket << 1) | neg.long()).to(torch.int32))
            self._codes[key] = torch.cat(parts, dim=1)
        c = self._codes[key][:, start:stop].long()
        return c >> 1, (c & 1).bool()

    def code_chunks(self, device):
        """(a, b, bucket, negative) of each chunk [a, b) of the layer's elements, in order."""
        for a, b in chunks(self.count):
            yield (a, b, *self.codes(a, b, device))

    def fetch(self, table, dual, start: int, stop: int):
        """(f, bucket, signs, raw, gate, dual bucket) of elements [start, stop), each (U, n)."""
        bucket, neg = self.codes(start, stop, table.device)
        sign = 1.0 - 2.0 * neg.to(table.dtype)
        raw = sign * table[bucket]
        if dual is None:
            return raw, bucket, sign, raw, None, None
        dbucket, _ = self.codes(start, stop, table.device, dual=True)
        gate = dual[dbucket]
        return raw * gate, bucket, sign, raw, gate, dbucket

    def compute(self, table, dual, g: list[torch.Tensor]) -> torch.Tensor:
        k = self.native(table)
        if k is not None:
            return kernel.forward(k, self.count, self.keys, self.size, self.dual_size, *_native_inputs(table, dual, g))
        out = torch.empty(self.count, dtype=table.dtype, device=table.device)
        r = self.recon
        for a, b in chunks(self.count):
            f = self.fetch(table, dual, a, b)[0]
            out[a:b] = r.apply_to(f.T, g) if r is not None else f.sum(0)
        return out

    def gradients(self, grad: torch.Tensor, table, dual, g: list[torch.Tensor]):
        k = self.native(table)
        if k is not None:
            gt, gd, gg = kernel.backward(k, grad.float(), self.keys, self.size, self.dual_size,
                                         *_native_inputs(table, dual, g))
            parts = gg.split([t.numel() for t in g]) if g else []
            return gt, gd, [part.view_as(t).to(t.dtype) for part, t in zip(parts, g)]
        gt = torch.zeros_like(table)
        gd = torch.zeros_like(dual) if dual is not None else None
        gg = [torch.zeros_like(t) for t in g]
        r = self.recon
        for a, b in chunks(self.count):
            f, bucket, sign, raw, gate, dbucket = self.fetch(table, dual, a, b)
            if r is None:
                gf = grad[a:b].expand(self.u, -1)
            else:
                with torch.enable_grad():
                    fx = f.T.detach().requires_grad_()
                    gp = [t.detach().requires_grad_() for t in g]
                    got = torch.autograd.grad(r.apply_to(fx, gp), [fx, *gp], grad[a:b])
                gf = got[0].T
                for acc, part in zip(gg, got[1:]):
                    acc += part
            # HashedNets: a bucket's gradient is the sum of its members' (sign-corrected) gradients
            gt.index_add_(0, bucket.reshape(-1), (sign * gf * (gate if gate is not None else 1)).reshape(-1))
            if gd is not None:
                gd.index_add_(0, dbucket.reshape(-1), (raw * gf).reshape(-1))
        return gt, gd, gg

    # --- the virtual weights ----------------------------------------------------------------------------
    def inputs(self) -> tuple[nn.Parameter, nn.Parameter | None, list[torch.Tensor]]:
        """What the virtual values are computed from: (space, dual space or None, g's tensors)."""
        r = self.recon
        return self.table, self.dual_table, (r.tensors() if r is not None else [])

    def virtual(self) -> torch.Tensor:
        """All `count` virtual values (weight row-major, then the hashed bias), differentiable."""
        table, dual, g = self.inputs()
        if self.training or torch.is_grad_enabled():
            self._eval = None
            return _Virtual.apply(self, table, dual, *g)
        key = (self._root.seed_value, table.device, id(table), table._version,
               None if dual is None else dual._version, tuple(t._version for t in g))
        if self._eval is None or self._eval[0] != key:
            self._eval = (key, _Virtual.apply(self, table, dual, *g))
        return self._eval[1]

    def weight_and_bias(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        v = self.virtual()
        if not self.hash_bias:
            # a view, not a slice: a slice's backward allocates and fills another vector of `count`
            return v.view(self.weight_shape), self.bias
        return v[:self.weight_count].view(self.weight_shape), v[self.weight_count:]

    @torch.no_grad()
    def dense(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(weight, bias) materialised at the original layer's shapes."""
        table, dual, g = self.inputs()
        v = _Virtual.apply(self, table, dual, *g)
        weight = v[:self.weight_count].view(self.weight_shape).clone()
        bias = v[self.weight_count:].clone() if self.hash_bias else (
            self.bias.detach().clone() if self.bias is not None else None)
        return weight, bias

    def train(self, mode: bool = True):
        self._eval = None
        return super().train(mode)

    def clear_caches(self) -> None:
        self._codes, self._eval = {}, None

    def _apply(self, fn, *args, **kwargs):
        self.clear_caches()                   # .to(device): cached codes belong to the old device
        return super()._apply(fn, *args, **kwargs)


class HashedLinear(HashedLayer):
    def __init__(self, in_features: int, out_features: int, bias: bool, **kw):
        super().__init__((out_features, in_features), bias, **kw)
        self.in_features, self.out_features = in_features, out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.weight_and_bias()
        return F.linear(x, weight, bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, buckets={self.size}"


class HashedConv2d(HashedLayer):
    def __init__(self, conv: nn.Conv2d, **kw):
        if conv.padding_mode != "zeros":
            raise ValueError("hashed convolutions support zero padding only")
        super().__init__(tuple(conv.weight.shape), conv.bias is not None, **kw)
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size, self.stride, self.padding = conv.kernel_size, conv.stride, conv.padding
        self.dilation, self.groups = conv.dilation, conv.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.weight_and_bias()
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"buckets={self.size}")


# --- building from a structure spec ------------------------------------------------------------------

def _recon(h: dict, device, dtype) -> Reconstruction | None:
    g = h.get("g")
    return (Reconstruction(int(h["u"]), tuple(int(w) for w in g["widths"]), g["activation"], device, dtype)
            if g else None)


def install_root(model: nn.Module, h: dict, device, dtype=None) -> HashingRoot:
    """Add the `hashing` submodule described by a spec's "hashing" entry; returns it."""
    if hasattr(model, ROOT):
        raise ValueError(f"the model already has a submodule named {ROOT!r}")
    shared_g = h.get("g") is not None and h["g"].get("shared", True)
    root = HashingRoot(space=h.get("space"), dual=h.get("dual"),
                       g=_recon(h, device, dtype) if shared_g else None, device=device, dtype=dtype)
    setattr(model, ROOT, root)
    return root


def replacement(module: nn.Module, entry: dict, h: dict, root: HashingRoot) -> HashedLayer:
    """The hashed layer replacing a plain Linear / Conv2d, as a spec entry describes it (fresh values)."""
    e = entry["hashed"]
    own_g = h.get("g") is not None and not h["g"].get("shared", True)
    device, dtype = module.weight.device, module.weight.dtype
    kw = dict(layer_id=e["id"], u=int(h["u"]), hash_bias=bool(h.get("hash_bias", False)),
              space=e.get("space"), dual=e.get("dual"), g=_recon(h, device, dtype) if own_g else None, root=root,
              dual_space=bool(h.get("dual_space", False)), device=device, dtype=dtype)
    if isinstance(module, nn.Linear):
        return HashedLinear(module.in_features, module.out_features, module.bias is not None, **kw)
    return HashedConv2d(module, **kw)


def hashed_layers(model: nn.Module) -> list[tuple[str, HashedLayer]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, HashedLayer)]


def root_of(model: nn.Module) -> HashingRoot | None:
    root = getattr(model, ROOT, None)
    return root if isinstance(root, HashingRoot) else None
