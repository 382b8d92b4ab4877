"""The contract test: every registered method through the real run loop on a tiny model.

prepare -> a few steps -> finalize -> accounting, on `tiny` with mlp_tiny and cnn_tiny; the stored final
model is read back and its accounting recomputed here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import core_helpers as H
import numpy as np
import pytest
import torch

from workbench import data as data_mod
from workbench.core import params as P
from workbench.core.accounting import account
from workbench.core.events import CancelToken, Evaluated, Finished, Message, Progress, RunStarted
from workbench.core.store import read_model, read_run
from workbench.engine.reference import resolve_model
from workbench.methods import get_method, method_keys
from workbench.models import zoo
from workbench.models.checkpoint import load_model_file
from workbench.models.layers import compressible_layers
from workbench.models.quantized import float_activations
from workbench.models.structure import apply_structure

METHODS = method_keys()
# bn_tiny: BatchNorm, depthwise conv, residual add; seq_tiny: Embedding, Conv1d; attn_tiny: attention, LayerNorm
MODELS = ["mlp_tiny", "cnn_tiny", "bn_tiny", "seq_tiny", "attn_tiny"]


def _reference_model(config):
    """The cached reference the run started from (same config -> same cache entry)."""
    dataset = data_mod.load_dataset("tiny")
    gen = resolve_model(config, dataset, torch.device("cpu"), CancelToken())
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value[0]


def _stored_model(path, model_key):
    state, attrs = read_model(path)
    model = zoo.build_model(model_key, tuple(attrs["input_shape"]), int(attrs["num_classes"]))
    if attrs.get("structure"):       # factorised / thinned layers (low rank) are replayed first
        apply_structure(model, attrs["structure"])
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    return model, state


@pytest.mark.parametrize("model_key", MODELS)
@pytest.mark.parametrize("method", METHODS)
def test_method_contract(method, model_key, tmp_path):
    params = None
    if method == "funhash" and model_key in ("bn_tiny", "seq_tiny"):
        # a few dozen hashable weights: at the default ratio g's 32 parameters leave no space
        params = {"ratio": 0.5} if model_key == "bn_tiny" else {"ratio": 0.5, "g_widths": "none"}
    config = H.make_config(method, tmp_path / "runs", model=model_key, params=params)
    events = H.run_events(config)

    # --- event order ---
    kinds = [type(e) for e in events]
    assert set(kinds) <= {RunStarted, Message, Progress, Evaluated, Finished}
    started = kinds.index(RunStarted)
    assert all(k in (Message, Progress) for k in kinds[:started])   # only pretraining chatter before
    assert kinds.count(RunStarted) == 1 and kinds.count(Finished) == 1
    fin = events[-1]
    assert isinstance(fin, Finished) and fin.status == "completed", fin.error
    assert fin.error == ""
    points = H.evaluated(events)
    labels = [e.label for e in points]
    assert labels[0] == "reference"
    assert events.index(points[0]) > started
    assert labels == ["reference", "epoch", "epoch", "finalized"]    # eval_every 1, 2 epochs
    assert [e.epoch for e in points] == [0, 1, 2, 2]
    assert [e.step for e in points] == [0, 4, 8, 8]                  # 512 / 128 = 4 steps per epoch
    assert events[started].total_steps == 8
    for e in events:      # events carry plain values, never live tensors
        for v in getattr(e, "metrics", {}).values():
            assert not isinstance(v, torch.Tensor)

    # --- run file ---
    path = Path(fin.run_path)
    assert path.is_file() and path.parent == tmp_path / "runs"
    run = read_run(path)
    assert run.status == "completed"
    s = fin.summary
    assert s == pytest.approx(run.summary)
    for key in ("test_accuracy", "param_ratio", "storage_ratio"):
        assert math.isfinite(s[key]), key
    assert s["test_accuracy"] == points[-1].metrics["test_accuracy"]
    assert s["param_ratio"] == pytest.approx(points[-1].metrics["param_ratio"])
    if method in H.PRUNING:
        assert s["param_ratio"] > 1 and s["storage_ratio"] > 1
    elif method == "plain":
        assert s["param_ratio"] == 1.0
        assert s["storage_ratio"] < 1.0          # the same weights plus per-tensor metadata
    elif method == "int8":
        assert s["param_ratio"] >= 1.0           # weights rounding to code 0 are not kept
        assert 1.0 < s["storage_ratio"] < 4.0    # 8 of 32 bits per weight, the rest (biases, BatchNorm) fp32
    else:
        assert s["param_ratio"] > 0 and s["storage_ratio"] > 0

    # --- the stored final model: plain architecture, accounting agrees with the summary ---
    model, state = _stored_model(path, model_key)
    fresh = zoo.build_model(model_key, (1, 8, 8), 4)
    assert set(state) == set(model.state_dict())
    if not hasattr(model, "workbench_structure"):
        assert set(state) == set(fresh.state_dict())
    assert not any(k.endswith(("_orig", "_mask")) for k in state)
    cls = get_method(method)
    report = account(cls(P.build(cls.Params, config.stages[0].params)).encode(model))
    assert report.bits == s["bits"]
    assert report.dense_params == s["dense_params"] == sum(p.numel() for p in fresh.parameters())
    assert report.stored_params == s["stored_params"]
    assert report.param_ratio == pytest.approx(s["param_ratio"])
    assert report.storage_ratio == pytest.approx(s["storage_ratio"])
    x, y = H.tiny_test_set()
    assert H.accuracy(model, x, y) == pytest.approx(s["test_accuracy"])

    # --- export: the compact file is the accounted payload plus a small header and reloads to the same
    # outputs; the dense file loads into the plain architecture with stock PyTorch ---
    _check_exports(path, model, x, tmp_path, s["bits"])

    if method in H.PRUNING:
        weights = [state[k] for k, _ in fresh.named_parameters()]     # buffers (BatchNorm) are not weights
        dense = sum(v.size for v in weights)
        nonzeros = sum(int(np.count_nonzero(v)) for v in weights)
        assert nonzeros < dense
        assert s["param_ratio"] == pytest.approx(dense / nonzeros)
        _check_pruned_where_expected(method, config, state, run)


def _check_pruned_where_expected(method, config, state, run):
    reference = _reference_model(config)
    for name, module in compressible_layers(reference):
        w_ref = module.weight.detach().numpy()
        w = state[f"{name}.weight"]
        if method == "magnitude":
            # 2 epochs, 3 cycles -> prunes at epochs 0 and 1; the first uses the reference weights
            # with threshold q * 1/2 * std = 0.75 std, and a pruned weight never comes back.
            std = float(module.weight.detach().std())
            first = np.abs(w_ref) < 0.75 * std
            assert first.any()
            assert np.all(w[first] == 0)
            if getattr(module, "bias", None) is not None:
                assert np.all(state[f"{name}.bias"] != 0)   # biases are not pruned by default
        else:
            # c = 0: thr = mean|w| over the reference's nonzero weight and bias entries,
            # a_k = 0.9 thr. gamma = 0: the mask is updated after every step, so every weight that
            # survives has |w| >= a_k (it was >= a_k at the last update and W*T is stored).
            bias = module.bias.detach().numpy() if getattr(module, "bias", None) is not None else np.zeros(0)
            both = np.abs(np.concatenate([w_ref.ravel(), bias]))
            a_k = 0.9 * float(both[both != 0].mean())
            stored_a = run.layers[name]["a_k"]
            assert stored_a[-1] == pytest.approx(a_k, rel=1e-5)
            assert run.layers[name]["b_k"][-1] == pytest.approx(a_k / 0.9 * 1.1, rel=1e-5)
            for t in (w, state.get(f"{name}.bias", np.zeros(0))):
                nz = np.abs(t[t != 0])
                assert np.all(nz >= a_k * (1 - 1e-6))
            assert np.count_nonzero(w == 0) > 0


def _check_exports(run_path, model, x, tmp_path, bits):
    from safetensors.torch import load_file

    from workbench.engine.export import export_run, load_compact

    compact = export_run(run_path, "compact", tmp_path / "model.cwb")
    assert compact.accounted_bytes == pytest.approx(bits / 8)
    assert compact.size_bytes <= compact.accounted_bytes + compact.header_bytes + 64
    reloaded = load_compact(compact.path).eval()
    with torch.no_grad():
        expected = model.eval()(x)
        assert torch.allclose(reloaded(x), expected, atol=1e-5)
    dense = export_run(run_path, "dense", tmp_path / "model.safetensors")
    _, attrs = read_model(run_path)
    plain = zoo.build_model(attrs["model_key"], tuple(attrs["input_shape"]), int(attrs["num_classes"])).eval()
    sidecar = json.loads(dense.path.with_suffix(".json").read_text())
    with torch.no_grad(), float_activations(model):   # int8 layers: the weights as floats, inputs unquantized
        expected = model(x)
    if "structure" in sidecar:        # a thinned model: written at its thinner shapes, stock layers all the same
        apply_structure(plain, sidecar["structure"])
        assert dense.accounted_bytes == 4 * sum(p.numel() for p in plain.parameters())
        loaded = load_model_file(dense.path).model           # the workbench's dense loader applies it too
        with torch.no_grad():
            assert torch.allclose(loaded(x), expected, atol=1e-4)
    plain.load_state_dict(load_file(str(dense.path)))
    with torch.no_grad():
        assert torch.allclose(plain(x), expected, atol=1e-4)
