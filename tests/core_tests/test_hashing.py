"""HashedNets and functional hashing: the hash (against a numpy uint64 reference and frozen values), the
bucket gradients, U = 1 identity equivalence, the native kernel against the PyTorch path, memory kept by
autograd, budgets and knob errors, and whole runs with compact export whose payload is the accounting."""

from __future__ import annotations

import copy
import json

import core_helpers as H
import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from workbench.core.accounting import account
from workbench.core.errors import ParamError
from workbench.core.events import Cancelled
from workbench.core.store import read_model, read_run
from workbench.engine.export import export_run, load_compact, read_compact
from workbench.methods.hashing.funhash import FunctionalHashing
from workbench.methods.hashing.hashednets import HashedNets
from workbench.methods.storage import encode_state
from workbench.models import native, structure, zoo
from workbench.models.hashed import index, kernel, layers

MASK = np.uint64(0xFFFFFFFF)


# --- the hash -----------------------------------------------------------------------------------------

def np_mix32(x: np.ndarray) -> np.ndarray:
    x = x & MASK
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x21F0AAAD)) & MASK
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x735A2D97)) & MASK
    return x ^ (x >> np.uint64(15))


def np_derive(*words) -> np.uint64:
    h = np.uint64(0x243F6A88)
    for w in words:
        h = np_mix32(np.asarray([h ^ np_mix32(np.asarray([w], dtype=np.uint64))[0] ^ np.uint64(0x9E3779B9)],
                                dtype=np.uint64))[0]
    return h


def np_codes(seed, layer_id, u, start, stop, size, role=index.ROLE_VALUE):
    """The hash written out in numpy uint64 arithmetic, independent of the torch code."""
    key = np_derive(seed, layer_id, index.ROLE_LAYER)
    n = np.arange(start, stop, dtype=np.uint64)
    base = np_mix32((n + key) & MASK)
    fk = np.array([np_derive(seed, layer_id, role, k) for k in range(u)], dtype=np.uint64)
    x = np_mix32(base[None, :] ^ fk[:, None])
    return ((x >> np.uint64(1)) * np.uint64(size)) >> np.uint64(31), (x & np.uint64(1)).astype(bool)


@pytest.mark.parametrize("seed,layer_id,u,start,stop,size", [
    (0, 0, 1, 0, 5000, 625), (12345, 2, 4, 1000, 3000, 97), (2**32 - 1, 7, 3, 2**32 - 500, 2**32, 1 << 20),
])
def test_hash_equals_the_numpy_uint64_reference(seed, layer_id, u, start, stop, size):
    keys = index.layer_keys(seed, layer_id, u, dual=True)
    bucket, neg = index.codes(keys, start, stop, size, "cpu")
    ref_b, ref_n = np_codes(seed, layer_id, u, start, stop, size)
    np.testing.assert_array_equal(bucket.numpy(), ref_b.astype(np.int64))
    np.testing.assert_array_equal(neg.numpy(), ref_n)
    dual, _ = index.codes(keys, start, stop, size, "cpu", dual=True)
    np.testing.assert_array_equal(dual.numpy(), np_codes(seed, layer_id, u, start, stop, size,
                                                         index.ROLE_DUAL)[0].astype(np.int64))
    assert bucket.min() >= 0 and bucket.max() < size
    assert 0.45 < neg.float().mean() < 0.55                          # signs balanced


def test_hash_is_frozen_across_runs_and_versions():
    """Compact files rely on these exact integers: a change here makes old files load wrong weights."""
    keys = index.layer_keys(12345, 2, 2)
    assert (keys.key, keys.fkeys) == (862720569, (1203597303, 1416698096))
    bucket, neg = index.codes(keys, 0, 8, 1000, "cpu")
    assert bucket.tolist() == [[497, 741, 349, 336, 772, 54, 283, 540], [313, 636, 763, 238, 432, 178, 630, 97]]
    assert neg.int().tolist() == [[1, 0, 0, 0, 1, 1, 0, 0], [1, 1, 1, 1, 0, 1, 1, 0]]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_hash_is_the_same_on_cuda():
    keys = index.layer_keys(99, 1, 4)
    cpu = index.codes(keys, 0, 100_000, 12_345, "cpu")
    gpu = index.codes(keys, 0, 100_000, 12_345, "cuda")
    assert all(torch.equal(a, b.cpu()) for a, b in zip(cpu, gpu))


def _native():
    k = kernel.load(1, (), "linear", False)
    if k is None:
        pytest.skip(f"no native kernel here: {kernel.last_error()}")
    return k


def test_native_kernel_hashes_the_same_integers():
    """With table[b] = b + 1, a U = 1 kernel's output is +-(bucket + 1): bucket and sign read back."""
    native = _native()
    keys = index.layer_keys(7, 3, 1)
    size, count = 5003, 70_000
    out = kernel.forward(native, count, keys, size, 0, torch.arange(1, size + 1, dtype=torch.float32), None, None)
    ref_b, ref_n = np_codes(7, 3, 1, 0, count, size)
    np.testing.assert_array_equal(out.abs().numpy().astype(np.int64) - 1, ref_b[0].astype(np.int64))
    np.testing.assert_array_equal(out.numpy() < 0, ref_n[0])


def test_native_tanh_is_within_3e_7_of_torch():
    native = kernel.load(4, (4, 2, 1), "tanh", False)
    if native is None:
        pytest.skip("no native kernel")
    x = torch.linspace(-12, 12, 240_001)
    y = torch.empty_like(x)
    native.tanh_fn(x.data_ptr(), y.data_ptr(), x.numel())
    assert float((y - torch.tanh(x)).abs().max()) < 3e-7


# --- layers -------------------------------------------------------------------------------------------

def _tiny(key="mlp_tiny", seed=0):
    torch.manual_seed(seed)
    return zoo.build_model(key, (1, 8, 8), 4)


def _prepare(method, model, seed=3):
    messages = []
    ctx = H.run_context(seed=seed)
    ctx.log = messages.append
    method.prepare(model, ctx)
    return messages


def _torch_path(model):
    other = copy.deepcopy(model)
    for _, layer in layers.hashed_layers(other):
        layer.kernel = "torch"
    return other


@pytest.mark.parametrize("path", ["native", "torch"])
def test_bucket_gradient_is_the_sum_of_its_members_gradients(path):
    model = _tiny()
    _prepare(HashedNets.from_values({"ratio": 0.1, "seed": 5}), model)
    if path == "torch":
        model = _torch_path(model)
    elif model.fc1.native(model.fc1.table) is None:
        pytest.skip("no native kernel")
    layer = model.fc1
    v = layer.virtual()
    v.retain_grad()
    x = torch.randn(6, 1, 8, 8)
    torch.nn.functional.linear(x.flatten(1), v.view(layer.weight_shape), layer.bias).pow(2).sum().backward()
    bucket, neg = index.codes(layer.keys, 0, layer.count, layer.size, "cpu")
    sign = 1 - 2 * neg[0].float()
    expected = torch.zeros(layer.size).index_add_(0, bucket[0], sign * v.grad)
    assert torch.allclose(layer.space.grad, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(v.detach().numpy(), (sign * layer.space.detach()[bucket[0]]).numpy())


def test_functional_hashing_gradients_pass_gradcheck():
    model = _tiny("cnn_tiny").double()
    method = FunctionalHashing.from_values({"space": "per_layer", "ratio": 0.9, "shared_g": False,
                                            "dual_space": True, "bias": "hashed", "u": 3, "g_widths": "3,1"})
    _prepare(method, model)
    layer = _torch_path(model).conv1
    inputs = [layer.table, layer.dual_table, *layer.recon.tensors()]
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    assert torch.autograd.gradcheck(lambda *a: layers._Virtual.apply(layer, *a), inputs)


def test_u1_without_g_equals_hashed_exactly():
    ref = _tiny()
    hashed, funhash = copy.deepcopy(ref), copy.deepcopy(ref)
    _prepare(HashedNets.from_values({"ratio": 0.2, "seed": 11}), hashed)
    _prepare(FunctionalHashing.from_values({"ratio": 0.2, "seed": 11, "u": 1, "g_widths": "none",
                                            "space": "per_layer"}), funhash)
    hs, fs = hashed.state_dict(), funhash.state_dict()
    assert hs.keys() == fs.keys() and all(torch.equal(hs[k], fs[k]) for k in hs)
    x = torch.randn(7, 1, 8, 8)
    assert torch.equal(hashed(x), funhash(x))


def test_u1_with_an_identity_g_equals_hashed_exactly_gradients_included():
    ref = _tiny()
    ident = copy.deepcopy(ref)
    _prepare(FunctionalHashing.from_values({"ratio": 0.2, "seed": 11, "u": 1, "g_widths": "1", "fit_steps": 0,
                                            "space": "per_layer", "shared_g": False}), ident)
    with torch.no_grad():
        for layer in (ident.fc1, ident.fc2):          # g(f) = 1 * f (alpha = 1)
            layer.g.layers[0].weight.fill_(1.0)
    # g's parameter per layer comes out of the budget: give HashedNets the same bucket counts
    sizes = {"fc1": ident.fc1.size / 2048, "fc2": ident.fc2.size / 128}
    hashed = copy.deepcopy(ref)
    _prepare(HashedNets.from_values({"ratio_layers": sizes, "seed": 11}), hashed)
    assert torch.equal(hashed.fc1.space, ident.fc1.space) and torch.equal(hashed.fc2.space, ident.fc2.space)
    x = torch.randn(7, 1, 8, 8)
    for a, b in ((hashed, ident), (_torch_path(hashed), _torch_path(ident))):
        out_a, out_b = a(x), b(x)
        assert torch.equal(out_a, out_b)
        out_a.pow(2).sum().backward()
        out_b.pow(2).sum().backward()
        assert torch.equal(a.fc1.space.grad, b.fc1.space.grad) and torch.equal(a.fc2.space.grad, b.fc2.space.grad)


def test_native_kernel_agrees_with_the_torch_path():
    model = _tiny("cnn_tiny")
    method = FunctionalHashing.from_values({"space": "per_layer", "ratio": 0.9, "shared_g": False,
                                            "dual_space": True, "bias": "hashed"})
    _prepare(method, model)
    method.finalize(model, H.run_context())          # g's gradient hooks (not deep-copied) go
    if model.fc1.native(model.fc1.table) is None:
        pytest.skip("no native kernel")
    other = _torch_path(model)
    x = torch.randn(5, 1, 8, 8)
    a, b = model(x), other(x)
    assert torch.allclose(a, b, atol=1e-5)
    a.sum().backward()
    b.sum().backward()
    for (name, p), q in zip(model.named_parameters(), other.parameters()):
        # the kernel's tanh is a rational approximation (|error| < 3e-7): sums over many members differ
        assert torch.allclose(p.grad, q.grad, rtol=1e-3, atol=1e-3 * float(q.grad.abs().max())), name


def test_native_kernel_runs_on_torchs_openmp_threads():
    """A team of our own would compete with torch's spinning threads (kernel.py): where torch runs on
    one GNU OpenMP runtime the kernel links to that one, and no second runtime is loaded."""
    runtimes = kernel.openmp_runtimes()
    if len(runtimes) != 1:
        pytest.skip("torch does not run on one GNU OpenMP runtime here")
    native = kernel.load(4, (4, 2, 1), "tanh", False)
    if native is None:
        pytest.skip(f"no native kernel: {kernel.last_error()}")
    assert native.openmp
    assert kernel.openmp_runtimes() == runtimes


def test_kernel_without_openmp_runs_on_one_thread_and_agrees(tmp_path, monkeypatch):
    """Where torch has no GNU OpenMP runtime the kernel is built without -fopenmp: one thread, same values."""
    threaded = kernel.load(4, (4, 2, 1), "tanh", False)
    if threaded is None:
        pytest.skip(f"no native kernel: {kernel.last_error()}")
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "openmp_runtimes", lambda: set())   # builds and loads read it there
    plain = kernel.load(4, (4, 2, 1), "tanh", False)
    assert plain is not threaded and not plain.openmp and plain.threads(1 << 24) == 1
    keys = index.layer_keys(5, 0, 4)
    gen = torch.Generator().manual_seed(0)
    table, grad = torch.randn(300, generator=gen), torch.randn(3000, generator=gen)
    g = torch.randn(kernel.g_param_count(4, (4, 2, 1)), generator=gen)
    a, b = (kernel.forward(k, 3000, keys, 300, 0, table, None, g) for k in (threaded, plain))
    assert torch.equal(a, b)
    for x, y in zip(*(kernel.backward(k, grad, keys, 300, 0, table, None, g) for k in (threaded, plain))):
        assert (x is None and y is None) or torch.equal(x, y)


@pytest.mark.parametrize("values", [{}, {"dual_space": True, "g_widths": "3,1", "activation": "relu"}],
                         ids=["g421-tanh", "dual-relu"])
def test_native_kernel_agrees_over_blocks_and_threads(values, monkeypatch):
    """A layer of 700 x 200 (not a whole number of the kernel's blocks) split over two threads (where the
    kernel runs on torch's OpenMP threads): the last thread's share ends inside a block, and the
    per-thread bucket gradients are summed."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    model = H.OneLayer(torch.randn(700, 200) * 0.05, torch.zeros(700))
    method = FunctionalHashing.from_values({"space": "per_layer", "ratio": 0.125, "fit_steps": 0, **values})
    _prepare(method, model)
    method.finalize(model, H.run_context())          # g's gradient hooks (not deep-copied) go
    layer = model.fc
    if layer.native(layer.table) is None:
        pytest.skip("no native kernel")
    native = layer.native(layer.table)
    assert native.threads(layer.count) == (2 if native.openmp else 1)
    with torch.no_grad():
        layer.table.normal_(0, 0.3)
    other = _torch_path(model)
    a, b = layer.virtual(), other.fc.virtual()
    assert native.team == native.threads(layer.count)
    assert torch.allclose(a, b, atol=1e-6)
    grad = torch.randn_like(a)
    a.backward(grad)
    assert native.team == native.threads(layer.count, layer.size + layer.dual_size) == native.threads(layer.count)
    b.backward(grad)
    for (name, p), q in zip(model.named_parameters(), other.parameters()):
        if q.grad is not None:
            assert torch.allclose(p.grad, q.grad, rtol=1e-4, atol=1e-4 * float(q.grad.abs().max())), name


def test_cached_indices_give_the_same_values_and_gradients():
    model = _tiny()
    _prepare(FunctionalHashing.from_values({"seed": 4, "kernel": "torch"}), model)
    cached = copy.deepcopy(model)
    for _, layer in layers.hashed_layers(cached):
        layer.cache_indices = True
    x = torch.randn(4, 1, 8, 8)
    a, b = model(x), cached(x)
    assert torch.equal(a, b)
    a.sum().backward()
    b.sum().backward()
    assert torch.allclose(model.hashing.space.grad, cached.hashing.space.grad, atol=1e-6)
    assert cached.fc1._codes and next(iter(cached.fc1._codes.values())).dtype == torch.int32


def _saved(model, x) -> tuple[int, int]:
    """(bytes of float tensors, bytes of integer tensors) autograd keeps for the backward pass."""
    seen, floats, ints = set(), [0], [0]

    def pack(t):
        key = (t.data_ptr(), t.numel())
        if key not in seen:
            seen.add(key)
            (floats if t.is_floating_point() else ints)[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x).sum()
    return floats[0], ints[0]


@pytest.mark.parametrize("path", ["auto", "torch"])
def test_autograd_keeps_no_index_tensor_and_no_more_than_the_dense_model(path):
    dense = _tiny()
    x = torch.randn(32, 1, 8, 8)
    dense_floats, _ = _saved(dense, x)
    for method in (HashedNets.from_values({"kernel": path}), FunctionalHashing.from_values({"kernel": path})):
        model = copy.deepcopy(dense)
        _prepare(method, model)
        floats, ints = _saved(model, x)
        spaces = sum(p.numel() * 4 for p in model.parameters() if p.dim() == 1)
        assert ints == 0
        assert floats <= dense_floats + spaces          # the virtual weights replace the weights


def test_scratch_start_has_nn_linear_weight_scale():
    model = _tiny()
    _prepare(FunctionalHashing.from_values({"init": "scratch"}), model)      # shared g and space
    have = sum(float((layer.dense()[0].double() ** 2).sum()) for _, layer in layers.hashed_layers(model))
    want = 2048 / (3 * 64) + 128 / (3 * 32)                                  # E[V^2] = 1 / (3 fan_in)
    assert have == pytest.approx(want, rel=1e-4)
    assert model.fc1.bias.abs().sum() == 0


def test_g_gradient_is_scaled_to_a_bucket_size_and_the_hooks_go_at_finalize():
    model = _tiny()
    method = FunctionalHashing.from_values({"seed": 2})
    messages = _prepare(method, model)
    x = torch.randn(4, 1, 8, 8)
    model(x).sum().backward()
    scaled = model.hashing.g.layers[0].weight.grad.clone()
    model.zero_grad()
    method.finalize(model, H.run_context())
    model(x).sum().backward()
    plain = model.hashing.g.layers[0].weight.grad
    scale = 4 / model.hashing.space.numel()                                 # U / K
    assert torch.allclose(scaled, plain * scale, rtol=1e-5, atol=1e-12)
    assert any(f"scaled by {scale:.3g}" in m for m in messages)


# --- budgets and knobs --------------------------------------------------------------------------------

def test_budgets_follow_the_ratio_and_count_g():
    model = _tiny()                                     # fc1 32 x 64, fc2 4 x 32
    _prepare(HashedNets.from_values({"ratio": 0.125, "ratio_layers": {"fc2": 0.5}}), model)
    assert (model.fc1.size, model.fc2.size) == (256, 64)
    shared = _tiny()
    _prepare(FunctionalHashing.from_values({"ratio": 0.125}), shared)
    n_g = kernel.g_param_count(4, (4, 2, 1))            # 32: 4x4+4, 4x2+2, 2x1 (no output bias)
    assert n_g == 32 and shared.hashing.space.numel() == round(0.125 * (2048 + 128)) - n_g
    report = account(FunctionalHashing().encode(shared))
    assert report.stored_params == round(0.125 * 2176) + 32 + 4       # + dense biases
    assert report.dense_params == 2048 + 32 + 128 + 4
    assert report.layer("hashing").dense_params == 0


@pytest.mark.parametrize("values,message", [
    ({"ratio": 0.001}, "too few"),
    ({"g_widths": "4,2"}, "width 1"),
    ({"g_widths": "4,x,1"}, "list of widths"),
    ({"ratio_layers": {"fc1": 0.1}}, "shared space has one global ratio"),
    ({"space": "per_layer", "ratio_layers": {"fc9": 0.1}}, "unknown"),
    ({"u": 0}, "below the minimum"),
    ({"layers": "conv"}, "selects no layer"),
])
def test_impossible_values_are_one_line_param_errors(values, message):
    with pytest.raises(ParamError, match=message) as info:
        _prepare(FunctionalHashing.from_values(values), _tiny())
    assert "\n" not in str(info.value)


def test_hashing_twice_is_refused():
    model = _tiny()
    _prepare(HashedNets(), model)
    with pytest.raises(ParamError, match="already replaced"):
        _prepare(FunctionalHashing(), model)


def test_specs_without_hashing_stay_version_1():
    assert structure.new_spec()["version"] == 1
    model = _tiny()
    _prepare(HashedNets(), model)
    spec = structure.parse(structure.to_json(structure.structure_of(model)))
    assert spec["version"] == 2 and spec["layers"]["fc1"]["hashed"]["space"] == 256


# --- cancelling a long prepare ------------------------------------------------------------------------

@pytest.mark.parametrize("method", [HashedNets.from_values({}), FunctionalHashing.from_values({"fit_steps": 200})],
                         ids=["hashed", "funhash"])
def test_prepare_of_a_cancelled_run_raises_cancelled(method):
    ctx = H.run_context()
    ctx.cancel.cancel()
    with pytest.raises(Cancelled):
        method.prepare(_tiny(), ctx)


def test_cancelling_while_fitting_stops_before_the_next_step():
    """fit_steps = 200, cancelled after the third Adam step: prepare raises without taking a fourth."""
    ctx = H.run_context()
    steps = []

    def step_taken(optimizer, args, kwargs):
        steps.append(optimizer)
        if len(steps) == 3:
            ctx.cancel.cancel()

    handle = register_optimizer_step_post_hook(step_taken)
    try:
        with pytest.raises(Cancelled):
            FunctionalHashing.from_values({"fit_steps": 200}).prepare(_tiny(), ctx)
    finally:
        handle.remove()
    assert len(steps) == 3


# --- whole runs: run file, compact and dense export ---------------------------------------------------

RUNS = {"hashed": {"ratio": 0.2}, "funhash": {"ratio": 0.4, "shared_g": False, "dual_space": True}}


@pytest.fixture(scope="module", params=sorted(RUNS))
def hashing_run(request, tmp_path_factory):
    config = H.make_config(request.param, tmp_path_factory.mktemp(request.param), params=RUNS[request.param],
                           model="cnn_tiny")
    events = H.run_events(config)
    fin = H.finished(events)
    assert fin.status == "completed", fin.error
    return request.param, events, fin


def test_run_file_records_occupancy_and_collisions(hashing_run):
    method, _, fin = hashing_run
    run = read_run(fin.run_path)
    fc1 = run.layers["fc1"]
    assert fc1["occupancy_hist"].shape == (4, 33) and np.isnan(fc1["occupancy_hist"][0]).all()
    hist = fc1["occupancy_hist"][-1]
    assert hist.sum() == fc1["buckets"][-1]
    width = fc1["occupancy_bin"][-1]
    assert width >= 1 and hist[int(fc1["members_max"][-1] // width)] > 0     # the fullest bucket has a bin
    assert width == 1 or fc1["members_max"][-1] >= 33
    u = 1 if method == "hashed" else 4
    assert fc1["members_mean"][-1] >= u * 256 / fc1["buckets"][-1]       # 64 x 4 weights, hashed U times
    assert 0 < fc1["collision_fraction"][-1] <= 1
    assert (fc1["cross_fraction"][-1] == 0) == (method == "hashed")        # own spaces vs one shared
    assert np.isfinite(fc1["space_rms"][1:]).all()
    state, attrs = read_model(fin.run_path)
    assert json.loads(attrs["structure"])["hashing"]["u"] == u
    assert ("conv1.space" in state) == (method == "hashed") and "conv1.weight" not in state
    assert state["hashing.seed"].shape == (1,)


def test_compact_file_is_the_accounting_and_reloads_the_same_model(hashing_run, tmp_path):
    method, _, fin = hashing_run
    s = fin.summary
    info = export_run(fin.run_path, "compact", tmp_path / "m.cwbc")
    header, state = read_compact(tmp_path / "m.cwbc")
    payload = info.size_bytes - info.header_bytes
    stored, _ = read_model(fin.run_path)
    model = load_compact(tmp_path / "m.cwbc")
    encoded = encode_state(model, model.state_dict())
    assert sum(e.bits for e in encoded) == s["bits"]
    # every stored array is whole bytes (fp32 values, the 32-bit seed); per-tensor metadata (shapes) is in
    # the header: payload = the accounted bits less that metadata, exactly
    assert payload * 8 == s["bits"] - sum(e.meta_bits for e in encoded)
    assert abs(info.size_bytes - s["bits"] / 8) <= info.header_bytes
    assert "hashing.seed" in state and int(state["hashing.seed"][0]) == int(stored["hashing.seed"][0])
    assert not any(k.endswith(".weight") and k.count(".") == 1 for k in state)      # no dense weights
    assert sum(p.numel() for p in model.parameters()) == s["stored_params"] < s["dense_params"]
    x, y = H.tiny_test_set()
    assert H.accuracy(model, x, y) == pytest.approx(s["test_accuracy"])
    H.assert_stored_and_dense_match(fin.run_path, model, x, tmp_path, atol=1e-6)


def test_occupancy_bins_widen_to_reach_the_fullest_bucket():
    """At 1/64 a bucket averages 64 members: bins of one member would pile nearly all into the last."""
    from workbench.methods.hashing.stats import HIST_BINS, occupancy
    model = H.OneLayer(torch.randn(64, 64))
    _prepare(HashedNets.from_values({"ratio": 1 / 64, "seed": 2}), model)
    stats = occupancy(model)["fc"]
    bucket, _ = index.codes(model.fc.keys, 0, model.fc.count, model.fc.size, "cpu")
    counts = torch.bincount(bucket.reshape(-1), minlength=model.fc.size)
    width = int(stats["occupancy_bin"])
    assert width > 1 and HIST_BINS * (width - 1) <= counts.max() < HIST_BINS * width     # the narrowest that fits
    expected = torch.bincount(counts // width, minlength=HIST_BINS).double().numpy()
    np.testing.assert_array_equal(stats["occupancy_hist"], expected)
    assert stats["members_max"] == counts.max()
