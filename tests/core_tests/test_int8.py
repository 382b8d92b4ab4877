"""int8 quantization as a stage: scales, the int8 grid, calibration, pipelines through the run loop and
their accounting counted by hand, the compact round trip, the ONNX QDQ export in onnxruntime, bad input."""

from __future__ import annotations

import copy
import math
import random

import core_helpers as H
import numpy as np
import pytest
import torch
from torch import nn

from workbench import data as data_mod
from workbench.core import encoding as E
from workbench.core.accounting import account
from workbench.core.config import RunConfig, StageConfig
from workbench.core.decoding import companions
from workbench.core.encoding_int8 import encode_int8
from workbench.core.errors import ParamError, WorkbenchError
from workbench.core.events import CancelToken
from workbench.data import load_dataset
from workbench.engine.export import _rebuild, export_run, load_compact, read_compact
from workbench.engine.reference import resolve_model
from workbench.engine.training import evaluate
from workbench.methods import get_method
from workbench.methods.base import RunContext
from workbench.methods.int8 import check_pipeline
from workbench.models import quantized as Q
from workbench.models import structure

INT8 = get_method("int8")
META = {"tag": 8, "ndim": 8, "dim": 32, "count": 32, "order": 1}     # per-tensor header bits (core/encoding.py)


def _meta(shape, sparse=False) -> int:
    return META["tag"] + META["ndim"] + META["dim"] * len(shape) + ((META["count"] + META["order"]) if sparse else 0)


def _run(tmp_path_factory, name, stages, model="mlp_tiny"):
    config = RunConfig(dataset="tiny", stages=stages, model=model, out_dir=str(tmp_path_factory.mktemp(name)),
                       device="cpu", pretrain_epochs=3)
    fin = H.finished(H.run_events(config))
    assert fin.status == "completed", fin.error
    model, _, _ = _rebuild(fin.run_path)
    return fin, model


@pytest.fixture(scope="module", params=["mlp_tiny", "cnn_tiny"])
def int8_run(request, tmp_path_factory, cache_root):
    """A 1-epoch int8 stage (quantization-aware fine-tuning) on a pretrained tiny model."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_CACHE", str(cache_root))
        return _run(tmp_path_factory, f"int8-{request.param}", [StageConfig("int8", {}, {"epochs": 1, "lr": 0.001})],
                    model=request.param)


def _reference(model_key: str) -> tuple[nn.Module, object]:
    """The cached pretrained tiny model the runs start from, and the `tiny` data set."""
    dataset = load_dataset("tiny")
    config = H.make_config("plain", "unused", model=model_key)
    gen = resolve_model(config, dataset, torch.device("cpu"), CancelToken())
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value[0].eval(), dataset


def _ptq(model: nn.Module, dataset, **values) -> tuple[nn.Module, object]:
    """Post-training quantization through the method's hooks, with training batches in `prepare` (the
    RunContext.train_batches, as the run loop gives it)."""
    method = INT8.from_values(values)
    ctx = RunContext(device=torch.device("cpu"), steps_per_epoch=4, total_steps=0, num_train=len(dataset.train_x),
                     train_batches=lambda: data_mod.batches(dataset.train_x, dataset.train_y, 128, shuffle=True,
                                                            generator=torch.Generator().manual_seed(0)))
    method.prepare(model, ctx)
    method.finalize(model, ctx)
    return model, method


# --- the quantizer -------------------------------------------------------------------------------------

@pytest.mark.parametrize("layer", [nn.Linear(20, 6), nn.Conv2d(3, 5, 3), nn.Conv1d(4, 3, 2), nn.Embedding(9, 4)])
def test_scales_are_max_over_127_and_weights_land_on_at_most_255_values_per_channel(layer):
    torch.manual_seed(0)
    with torch.no_grad():
        layer.weight.mul_(torch.rand(layer.weight.shape[0]).reshape(-1, *[1] * (layer.weight.dim() - 1)) * 3)
        layer.weight[1] = 0                        # a pruned unit: scale 1, codes 0
    w = layer.weight.detach().clone()
    Q.quantize_module(layer)
    Q.snap(layer)
    top = w.reshape(w.shape[0], -1).abs().amax(1)
    expected = torch.where(top > 0, top / 127, torch.ones_like(top))
    assert torch.equal(layer.weight_scale, expected)
    s = layer.weight_scale.reshape(-1, *[1] * (w.dim() - 1))
    q = (layer.weight.detach() / s).round()
    assert torch.equal(q * s, layer.weight.detach()) and q.abs().max() <= 127     # exactly on the grid
    for c in range(w.shape[0]):
        assert len(torch.unique(layer.weight[c])) <= 255
        assert (layer.weight[c] - w[c]).abs().max() <= layer.weight_scale[c] / 2 * (1 + 1e-6)
        if top[c] > 0:
            assert float(layer.weight[c].abs().max()) == pytest.approx(float(top[c]), rel=1e-6)   # the max maps to 127
    assert torch.equal(layer.weight[1], torch.zeros_like(layer.weight[1]))
    again = layer.weight.detach().clone()
    assert torch.equal(layer.quantized_weight(), again)          # snapped: the forward changes nothing


def test_per_layer_scale_is_one_max_for_the_whole_tensor():
    layer = nn.Linear(8, 4)
    Q.quantize_module(layer, per_channel=False)
    Q.snap(layer)
    assert torch.all(layer.weight_scale == layer.weight.abs().max() / 127)


def test_input_quantizer_keeps_zero_exact_and_covers_the_range():
    scale, zero = Q.input_qparams(-1.0, 3.0)
    assert scale == pytest.approx(4 / 255) and zero == round(1 / scale)
    x = torch.tensor([-1.0, 0.0, 3.0, 1.234])
    y = torch.fake_quantize_per_tensor_affine(x, scale, int(zero), 0, 255)
    assert y[1] == 0 and (y - x).abs().max() <= scale / 2 + 1e-6
    assert Q.input_qparams(0.5, 2.0)[1] == 0            # a positive range still holds 0 (zero point 0)
    assert Q.input_qparams(0.0, 0.0) == (1.0, 0.0)


# --- post-training quantization --------------------------------------------------------------------------

def test_without_data_in_prepare_the_first_fine_tuning_batches_calibrate():
    """A caller that gives no training batches: the first `calibration_batches` training forwards are
    observed (inputs unquantized meanwhile), then the ranges are fixed."""
    reference, dataset = _reference("mlp_tiny")
    model = copy.deepcopy(reference)
    method = INT8.from_values({"calibration_batches": 2})
    ctx = RunContext(device=torch.device("cpu"), steps_per_epoch=4, total_steps=4, num_train=len(dataset.train_x))
    method.prepare(model, ctx)
    layers = list(Q.quantized_modules(model).values())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001)
    model.train()
    for i, (xb, yb) in enumerate(data_mod.batches(dataset.train_x, dataset.train_y, 128, shuffle=False)):
        assert all((m.observer is None) == (i >= 2) for m in layers)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        optimizer.step()
        method.after_step(model, ctx)
        ctx.step += 1
    assert all(m.observer is None and float(m.input_scale) != 1.0 for m in layers)
    # the first layer's range is the one the first two batches' pixels span
    x = dataset.train_x[:256].reshape(256, -1)
    scale, zero = Q.input_qparams(float(x.min()), float(x.max()))
    assert float(layers[0].input_scale) == pytest.approx(scale) and float(layers[0].input_zero_point) == zero
    method.finalize(model, ctx)
    assert evaluate(model, dataset.test_x, dataset.test_y)[0] >= evaluate(reference, dataset.test_x,
                                                                          dataset.test_y)[0] - 0.03


@pytest.mark.parametrize("model_key", ["mlp_tiny", "cnn_tiny"])
@pytest.mark.parametrize("observer", ["minmax", "percentile", "mse"])
def test_ptq_keeps_accuracy_within_a_few_points(model_key, observer):
    reference, dataset = _reference(model_key)
    float_accuracy = evaluate(reference, dataset.test_x, dataset.test_y)[0]
    model, method = _ptq(copy.deepcopy(reference), dataset, observer=observer)
    accuracy = evaluate(model, dataset.test_x, dataset.test_y)[0]
    assert accuracy >= float_accuracy - 0.03
    for name, m in Q.quantized_modules(model).items():
        assert m.quantize_input and m.observer is None
        assert float(m.input_scale) != 1.0                  # calibrated, not the placeholder
    # the model computes with quantized inputs: unquantized, its outputs differ
    x = dataset.test_x[:64]
    with torch.no_grad():
        quantized_out = model(x)
        with Q.float_activations(model):
            assert not torch.equal(model(x), quantized_out)
    report = account(method.encode(model))
    assert 2.5 < report.storage_ratio < 4                   # 8 of 32 bits, plus biases, scales and headers


def test_observers_clip_outliers_the_minmax_range_keeps():
    from workbench.methods.int8_observers import RangeObserver

    x = torch.cat([torch.linspace(0, 1, 100_000), torch.tensor([50.0])])
    ranges = {}
    for how in ("minmax", "percentile", "mse"):
        obs = RangeObserver(how, torch.Generator().manual_seed(0))
        obs.observe(x)
        ranges[how] = obs.range()
    assert ranges["minmax"] == (0.0, 50.0)
    assert ranges["percentile"][1] < 1.01
    assert ranges["mse"][1] < 10


def test_weight_only_ptq_is_a_zero_epoch_stage_in_the_run_loop(tmp_path_factory):
    """quantize_activations=false needs no data: 0 epochs work through the run loop today."""
    fin, model = _run(tmp_path_factory, "int8-w", [StageConfig("int8", {"quantize_activations": False},
                                                               {"epochs": 0})])
    assert fin.summary["steps"] == 0
    assert all(not m.quantize_input for m in Q.quantized_modules(model).values())
    assert abs(fin.summary["test_accuracy"] - fin.summary["reference_accuracy"]) <= 0.03


def test_ptq_with_calibrated_activations_is_a_zero_epoch_stage_in_the_run_loop(tmp_path_factory):
    fin, model = _run(tmp_path_factory, "int8-ptq", [StageConfig("int8", {"calibration_batches": 2},
                                                                 {"epochs": 0})])
    assert fin.summary["steps"] == 0
    assert all(m.quantize_input and float(m.input_scale) != 1.0 for m in Q.quantized_modules(model).values())
    assert abs(fin.summary["test_accuracy"] - fin.summary["reference_accuracy"]) <= 0.03


# --- a run's int8 model: stored, reloaded, exported ------------------------------------------------------

def test_stored_model_is_int8_and_equals_its_compact_reload(int8_run, tmp_path):
    fin, model = int8_run
    layers = Q.quantized_modules(model)
    assert layers and all(m.quantize_input for m in layers.values())
    for name, m in layers.items():
        s = m.weight_scale.reshape(-1, *[1] * (m.weight.dim() - 1))
        codes = (m.weight.detach() / s).round()
        assert torch.equal(codes * s, m.weight.detach()) and codes.abs().max() <= 127
        assert torch.equal(m.weight_scale, Q.weight_scales(m.weight))
    assert fin.summary["test_accuracy"] >= fin.summary["reference_accuracy"] - 0.03
    result = export_run(fin.run_path, "compact", tmp_path / "m.cwbc")
    assert result.accounted_bytes == pytest.approx(fin.summary["bits"] / 8)
    _, state = read_compact(result.path)
    payload = result.size_bytes - result.header_bytes
    assert result.accounted_bytes - 16 * len(state) <= payload <= result.accounted_bytes   # headers aside
    reloaded = load_compact(result.path)
    x, _ = H.tiny_test_set()
    with torch.no_grad():
        assert torch.equal(reloaded(x), model(x))
    for key, value in model.state_dict().items():
        assert torch.equal(state[key].to(value.dtype), value), key


def test_onnx_export_is_qdq_and_runs_in_onnxruntime_as_the_stored_model(int8_run, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    fin, model = int8_run
    path = export_run(fin.run_path, "onnx", tmp_path / "m.onnx").path
    graph = onnx.load(str(path)).graph
    ops = [n.op_type for n in graph.node]
    layers = Q.quantized_modules(model)
    assert ops.count("DequantizeLinear") == 2 * len(layers)            # each weight and each input
    assert ops.count("QuantizeLinear") == len(layers)                  # inputs; the weights are stored int8
    stored = {t.name: t for t in graph.initializer}
    for name, m in layers.items():             # one byte per weight in the file
        t = stored[f"{name}.weight_int8"]
        assert t.data_type == onnx.TensorProto.INT8 and len(t.raw_data) == m.weight.numel()
        assert f"{name}.weight" not in stored
    x, _ = H.tiny_test_set()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        expected = model(x).numpy()
    # ONNX Runtime may run the QDQ pairs as integer kernels (int32 accumulation, requantized outputs)
    assert np.abs(got - expected).max() <= 0.02 * np.abs(expected).max()
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.98


# --- pipelines: accounting by hand ------------------------------------------------------------------------

def _hand_bits_fc(weight: np.ndarray, scales: np.ndarray, bias: np.ndarray) -> int:
    """An int8 fc layer's bits counted from its stored tensors: the cheaper of 8-bit codes for every entry
    and 8-bit codes of the sparse entries with 5-bit relative indices (fillers for gaps past 31), in the
    cheaper order; one fp32 scale and one 8-bit zero point per row; the bias dense fp32; the input's scale
    (fp32) and zero point (8 bits); each tensor's header."""
    codes = np.rint(weight / scales[:, None])
    table = 40 * len(scales)
    dense = 8 * codes.size + table + _meta(codes.shape) + 32
    sparse = []
    for flat in (codes.reshape(-1), codes.T.reshape(-1)):
        entries, last = 0, -1
        for pos in np.flatnonzero(flat):
            entries += (pos - last - 1) // 32 + 1
            last = pos
        sparse.append(entries * (8 + 5) + table + _meta(codes.shape, sparse=True) + 32)
    return min(dense, *sparse) + (32 * bias.size + _meta(bias.shape)) + (32 + _meta((1,))) + (8 + _meta((1,)))


def test_magnitude_then_int8_counts_8_bit_codes_of_the_kept_weights_and_their_indices(tmp_path_factory):
    fin, model = _run(tmp_path_factory, "mag-int8", [
        StageConfig("magnitude", {"q_fc": 1.5}, {"epochs": 2}),
        StageConfig("int8", {}, {"epochs": 1, "lr": 0.001})])
    _, pruned = _run(tmp_path_factory, "mag", [StageConfig("magnitude", {"q_fc": 1.5}, {"epochs": 2})])
    for name in ("fc1", "fc2"):                  # pruned weights stay pruned through fine-tuning
        before = pruned.get_submodule(name).weight.detach() == 0
        assert torch.all(model.get_submodule(name).weight.detach()[before] == 0)
    report = account(INT8().encode(model))
    assert report.bits == fin.summary["bits"]
    fc2 = model.fc2
    layer = report.layer("fc2")
    assert layer.bits == _hand_bits_fc(fc2.weight.detach().numpy(), fc2.weight_scale.numpy(), fc2.bias.detach().numpy())
    assert layer.dense_params == 4 * 32 + 4
    assert report.layer("fc1").tensors[0].encoding == "sparse_int8"
    assert fin.summary["param_ratio"] > 1.5                            # the zeros are kept
    assert fin.summary["storage_ratio"] > 1.5 * fin.summary["param_ratio"]   # and each costs 8 + 5 bits, not 32 + 5


def test_lowrank_then_int8_counts_both_factors_at_8_bits(tmp_path_factory, tmp_path):
    fin, model = _run(tmp_path_factory, "lr-int8", [
        StageConfig("lowrank", {"tau": 1.0, "energy": 0.5, "prox_every": 2}, {"epochs": 1, "lr": 0.05}),
        StageConfig("int8", {"layers": "fc1"}, {"epochs": 1, "lr": 0.001})])
    spec = structure.structure_of(model)
    rank = spec["layers"]["fc1"]["rank"]
    assert rank is not None and set(spec["quantized"]) == {"fc1.0", "fc1.1"}    # `fc1` took both factors
    assert isinstance(model.fc1[0], Q.QuantLinear) and isinstance(model.fc1[1], Q.QuantLinear)
    assert not Q.is_quantized(model.fc2)
    report = account(INT8().encode(model))
    fc1 = report.layer("fc1")
    assert fc1.dense_params == 64 * 32 + 32
    weights = {e.name: e for e in fc1.tensors if e.name.endswith(".weight")}
    assert {e.encoding for e in weights.values()} <= {"int8", "sparse_int8"}
    a, b = weights["fc1.0.weight"], weights["fc1.1.weight"]
    assert a.value_bits == 8 * rank * 64 and a.codebook_bits == 40 * rank       # dense codes: r x 64 at 8 bits
    assert b.value_bits <= 8 * 32 * rank and b.codebook_bits == 40 * 32
    result = export_run(fin.run_path, "compact", tmp_path / "m.cwbc")
    x, _ = H.tiny_test_set()
    with torch.no_grad():
        assert torch.equal(load_compact(result.path)(x), model(x))


# --- stages after int8 ------------------------------------------------------------------------------------

def test_a_stage_after_int8_is_accounted_as_int8_and_the_compact_file_holds_exactly_that(tmp_path_factory, tmp_path):
    """A 0-epoch plain stage after int8 (the last stage's method does the accounting) counts the int8 codes,
    not fp32 values: the same bits as the pipeline without it, and the compact file's payload is those
    bits to the byte (each tensor's record rounded up to whole bytes; the per-tensor headers the
    accounting counts are in the file's JSON header instead)."""
    mag, int8 = StageConfig("magnitude", {"q_fc": 1.5}, {"epochs": 1}), StageConfig("int8", {}, {"epochs": 0})
    fin, model = _run(tmp_path_factory, "mag-int8-plain", [mag, int8, StageConfig("plain", {}, {"epochs": 0})])
    alone, _ = _run(tmp_path_factory, "mag-int8-alone", [mag, int8])
    assert fin.summary["bits"] == alone.summary["bits"]
    encoded = get_method("plain")().encode(model)
    weights = {e.name: e.encoding for e in encoded if e.name.endswith(".weight")}
    assert weights == {"fc1.weight": "sparse_int8", "fc2.weight": "sparse_int8"}
    assert account(encoded).bits == fin.summary["bits"]
    result = export_run(fin.run_path, "compact", tmp_path / "m.cwbc")
    assert result.size_bytes - result.header_bytes == sum(math.ceil((e.bits - e.meta_bits) / 8) for e in encoded)
    x, _ = H.tiny_test_set()
    with torch.no_grad():
        assert torch.equal(load_compact(result.path)(x), model(x))


def _stages(*spec):
    return [StageConfig(method, {}, {"epochs": epochs}) for method, epochs in spec]


@pytest.mark.parametrize("stages, message", [
    (_stages(("int8", 0), ("plain", 1)), r"stage 2 \(plain\) after int8: 1 epoch of training would move the weights"),
    (_stages(("magnitude", 2), ("int8", 1), ("dns", 3)), r"stage 3 \(dns\) after int8: 3 epochs of training"),
    (_stages(("int8", 0), ("kmeans", 0)), r"stage 2 \(kmeans\) after int8: it would change the int8 weights"),
    (_stages(("int8", 0), ("plain", 0), ("sws", 0)), r"stage 3 \(sws\)"),
    ([StageConfig("int8", {}, {}), StageConfig("plain", {}, {})], "10 epochs"),      # the default epochs
])
def test_a_stage_after_int8_that_cannot_keep_the_weights_int8_is_refused_in_one_line(stages, message):
    with pytest.raises(ParamError, match=message) as info:
        check_pipeline(stages)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("stages", [_stages(("magnitude", 2), ("int8", 1)), _stages(("int8", 0), ("plain", 0)),
                                    _stages(("int8", 3), ("magnitude", 0), ("dns", 0)), _stages(("kmeans", 1))])
def test_stages_that_keep_the_weights_int8_pass_the_check(stages):
    check_pipeline(stages)


def test_a_refused_pipeline_stops_before_the_run_file_exists(tmp_path):
    from workbench.engine.configure import complete

    config = RunConfig(dataset="tiny", stages=_stages(("int8", 0), ("plain", 1)), model="mlp_tiny",
                       out_dir=str(tmp_path), device="cpu")
    with pytest.raises(ParamError, match="after int8"):
        complete(config)


# --- the records: decoder and bad input ----------------------------------------------------------------

def _records():
    rng = np.random.default_rng(0)
    scales = (rng.random(12) + 0.5).astype(np.float32) / 127
    codes = rng.integers(-127, 128, (12, 40))
    codes[rng.random(codes.shape) < 0.85] = 0
    w = (codes.astype(np.float32) * scales[:, None]).astype(np.float32)
    sparse = encode_int8("w", "fc1", "fc", w, scales, scale_tensor="fc1.weight_scale")
    dense = encode_int8("w", "fc1", "fc", np.where(w == 0, scales[:, None], w), scales)
    assert sparse.encoding == "sparse_int8" and dense.encoding == "int8"
    return {"sparse_int8": (sparse, w), "int8": (dense, None), "huffman": (E.huffman_coded(sparse), w)}


@pytest.mark.parametrize("kind", ["sparse_int8", "int8", "huffman"])
def test_int8_records_decode_exactly_and_refuse_damage_in_one_line(kind):
    record, w = _records()[kind]
    clean = E.decode(record.info, record.shape, record.encoding, record.arrays)
    if w is not None:
        np.testing.assert_array_equal(clean, w)
        assert companions(record.info, record.shape, record.encoding, record.arrays)["fc1.weight_scale"].shape == (12,)
    rng = random.Random(kind)
    refused = 0
    for _ in range(150):
        arrays = {k: np.ascontiguousarray(v).copy() for k, v in record.arrays.items()}
        info = dict(record.info)
        name = rng.choice(sorted(arrays))
        raw = bytearray(arrays[name].tobytes())
        how = rng.choice(["flip", "cut", "count"])
        if how == "flip" and raw:
            raw[rng.randrange(len(raw))] ^= rng.randint(1, 255)
        elif how == "cut":
            raw = raw[:rng.randrange(len(raw) + 1)]
        else:
            key = rng.choice([k for k in ("entries", "scales", "code_bits", "index_bits") if k in info])
            info[key] = rng.choice([0, 1, -1, 33, info[key] + 1, info[key] * 4])
        dtype = arrays[name].dtype
        arrays[name] = np.frombuffer(bytes(raw[:len(raw) - len(raw) % dtype.itemsize]), dtype=dtype)
        try:
            value = E.decode(info, record.shape, record.encoding, arrays)
            companions(info, record.shape, record.encoding, arrays)
        except E.Damaged as exc:
            assert "\n" not in str(exc)
            refused += 1
            continue
        assert value.shape == record.shape
    assert refused > 0


def test_weights_off_the_grid_are_refused_by_the_encoder():
    with pytest.raises(ValueError, match="int8 grid"):
        encode_int8("w", "fc1", "fc", np.array([[0.1, 0.2005]], np.float32), np.array([0.1], np.float32))


@pytest.mark.parametrize("values, message", [
    ({"observer": "histogram"}, "observer"),
    ({"calibration_batches": 0}, "calibration_batches"),
    ({"per_channel": "maybe"}, "per_channel"),
])
def test_bad_knobs_are_one_line(values, message):
    with pytest.raises(ParamError, match=message) as info:
        INT8.from_values(values)
    assert "\n" not in str(info.value)


def test_bad_layers_and_unsupported_models_are_one_line():
    model = nn.Sequential(nn.Linear(4, 2))
    ctx = RunContext(device=torch.device("cpu"), steps_per_epoch=1, total_steps=1, num_train=1)
    with pytest.raises(ParamError, match="unknown layer") as info:
        INT8.from_values({"layers": "nope"}).prepare(model, ctx)
    assert "\n" not in str(info.value)
    fresh = nn.Sequential(nn.Linear(4, 2))
    INT8.from_values({"quantize_activations": False}).prepare(fresh, ctx)
    with pytest.raises(ParamError, match="int8 already"):
        INT8.from_values({}).prepare(fresh, ctx)
    with pytest.raises(ParamError, match="at least 1 epoch"):      # no data for calibration, no epochs
        INT8.from_values({}).prepare(nn.Sequential(nn.Linear(4, 2)),
                                     RunContext(device=torch.device("cpu"), steps_per_epoch=1, total_steps=0,
                                                num_train=1))


def test_a_damaged_int8_structure_is_one_line():
    model = nn.Sequential(nn.Linear(4, 2))
    spec = {**structure.new_spec(), "version": 4,
            "quantized": {"0": {"type": "Conv2d", "shape": [2, 4], "per_channel": True, "activations": True}}}
    with pytest.raises(WorkbenchError, match="int8 layers") as info:
        structure.apply_structure(model, spec)
    assert "\n" not in str(info.value)
