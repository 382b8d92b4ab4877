"""Deployment measurement (engine/deploy.py): every form a run's model can take computes what the dense
model computes, the report carries same-process speed-ups under `speedup`, round-trips through JSON and
the run file, and bad input is one line. Timings themselves are not asserted (two shared cores)."""

from __future__ import annotations

import json
import shutil

import core_helpers as H
import h5py
import numpy as np
import pytest
import torch

from workbench.core.errors import WorkbenchError
from workbench.core.events import Cancelled, CancelToken
from workbench.core.store import read_run
from workbench.engine import deploy_csr, deploy_report
from workbench.engine.deploy import DeployReport, FormResult, deploy, format_table, read_report, store_report
from workbench.engine.deploy_csr import CsrConv2d, CsrLinear
from workbench.engine.deploy_forms import GENERIC, RunForms
from workbench.engine.deploy_reference import find_reference
from workbench.engine.runner import load_data

FAST = {"batches": (1, 8), "repeats": 2, "memory": False}


def _run(tmp_path_factory, cache_root, method, model, params, name, **kw):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_CACHE", str(cache_root))
        fin = H.finished(H.run_events(H.make_config(method, tmp_path_factory.mktemp(name), model=model,
                                                    params=params, name=name, **kw)))
    assert fin.status == "completed", fin.error
    return fin.run_path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cache_root, magnitude_run):
    """name -> run file: pruned (conv and fc), truncated SVD (factorised fc1), hashed, plain."""
    return {
        "magnitude": magnitude_run[1],
        "svd": _run(tmp_path_factory, cache_root, "svd", "mlp_tiny",
                    {"energy": 0.6, "energy_of": "sigma2", "layers": "fc1"}, "svd", epochs=0),
        "hashed": _run(tmp_path_factory, cache_root, "hashed", "cnn_tiny", {"ratio": 0.2}, "hashed"),
        "plain": _run(tmp_path_factory, cache_root, "plain", "mlp_tiny", {}, "plain", epochs=1),
    }


def cost_timer(csr_cost: float, overhead_ms: float = 0.0):
    """Fake layer timings from a cost model, no clock (deploy_csr.plan's `timer`): dense ms = batch x
    entries x 1e-6; CSR ms = batch x nonzeros x csr_cost x 1e-6 + overhead_ms."""
    def timer(module, x):
        if isinstance(module, (CsrLinear, CsrConv2d)):
            return 1e-6 * x.shape[0] * module.weight.values().numel() * csr_cost + overhead_ms
        return 1e-6 * x.shape[0] * module.weight.numel()
    return timer


@pytest.fixture(scope="module")
def magnitude_report(runs):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(deploy_csr, "sample_ms", cost_timer(1.0))      # CSR faster for every pruned layer
        return deploy(runs["magnitude"], threads=1, **FAST)


def _forms(run_path, folder):
    forms = RunForms(run_path, folder)
    forms.reference, _ = find_reference(forms.config, read_run(run_path).attrs, load_data(forms.config))
    for name in forms.candidates():
        forms.write(name)
    return forms


@pytest.mark.parametrize("which, own", [("magnitude", ["csr"]), ("svd", ["lowrank"]),
                                        ("hashed", ["hashed", "hashed-regen"]), ("plain", [])])
def test_each_form_computes_what_dense_computes(runs, tmp_path, which, own):
    forms = _forms(runs[which], tmp_path)
    assert forms.candidates() == ["reference", "dense", *own, "onnxruntime", "onnxruntime-int8"]
    x, _ = H.tiny_test_set()
    with torch.no_grad():
        dense = forms.load("dense")(x)
        assert torch.equal(dense, forms.model(x)) or torch.allclose(dense, forms.model(x), atol=1e-5)
        for name in own + ["onnxruntime"]:
            torch.testing.assert_close(forms.load(name)(x), dense, atol=1e-4, rtol=1e-4, msg=name)
        # int8 weights and activations: close, not equal (per-tensor scales over the layer's range)
        int8 = forms.load("onnxruntime-int8")(x)
        assert (int8 - dense).abs().max() < 0.1 * dense.abs().max()
        assert (int8.argmax(1) == dense.argmax(1)).float().mean() > 0.9
        torch.testing.assert_close(forms.load("reference")(x), forms.reference(x))


def test_csr_form_holds_its_pruned_layers_as_sparse_matrices(runs, tmp_path):
    forms = _forms(runs["magnitude"], tmp_path)
    model = forms.load("csr").module
    assert isinstance(model.conv1, CsrConv2d) and isinstance(model.fc1, CsrLinear)
    dense = forms.load("dense").module
    for layer in (model.conv1, model.fc1):
        assert layer.weight.layout == torch.sparse_csr and layer.weight.col_indices().dtype == torch.int32
    assert model.fc1.weight.values().numel() == int(torch.count_nonzero(dense.fc1.weight))
    assert forms.path("csr").stat().st_size < forms.path("dense").stat().st_size


def test_report_figures_and_speedups_come_from_its_own_samples(runs, magnitude_report):
    r = magnitude_report
    assert [f.name for f in r.forms] == ["reference", "dense", "csr", "onnxruntime", "onnxruntime-int8"]
    assert r.threads == 1 and r.batches == [1, 8] and r.repeats == 2 and torch.get_num_threads() == 1
    run = read_run(runs["magnitude"])
    # dense is the run's final model and reference the model it started from, on all 256 test samples
    assert r.accuracy_on == "all 256 test samples of tiny"
    assert r.form("dense").accuracy == pytest.approx(run.summary["test_accuracy"])
    assert r.form("reference").accuracy == pytest.approx(run.attrs["reference_accuracy"])
    ref = r.form("reference")
    for f in r.forms:
        assert all(len(s) == 2 for s in f.samples_ms.values()) and f.file_bytes > 0
        assert f.latency_ms[1] == np.median(f.samples_ms[1])
        assert f.throughput[8] == pytest.approx(8000 / np.median(f.samples_ms[8]))
        assert f.speedup["against"] == "reference"
        assert f.speedup["latency"] == pytest.approx(ref.latency_ms[1] / f.latency_ms[1])
        assert f.speedup["throughput"]["8"] == pytest.approx(f.throughput[8] / ref.throughput[8])
        assert f.agreement is not None and f.max_abs_diff is not None
    assert r.form("dense").max_abs_diff == 0 and r.form("csr").max_abs_diff < 1e-4
    assert r.compact_bytes == pytest.approx(run.summary["bits"] / 8, abs=600)     # + the compact header
    table = format_table(r)
    assert "csr" in table and "x ref" in table and "threads 1" in table


def test_speedup_arithmetic_on_a_hand_made_report():
    def form(name, device, samples):
        return FormResult(name, "pytorch", device, samples_ms=samples)
    r = DeployReport("r.h5", "m", "mlp_tiny", "tiny", 2, [1, 32], 3, forms=[
        form("reference", "cpu", {1: [2.0, 9.0, 4.0], 32: [10.0, 12.0, 11.0]}),
        form("csr", "cpu", {1: [1.0, 1.0, 5.0], 32: [22.0, 20.0, 23.0]}),
        form("dense@cuda", "cuda", {1: [0.5, 0.5, 0.5], 32: [1.0, 1.0, 1.0]}),
        form("reference@cuda", "cuda", {1: [1.0, 1.0, 1.0], 32: [1.0, 1.0, 1.0]})])
    deploy_report.add_speedups(r)
    assert r.form("csr").speedup == {"against": "reference", "latency": 4.0, "throughput": {"1": 4.0, "32": 0.5}}
    assert r.form("dense@cuda").speedup["against"] == "reference@cuda"
    assert r.form("dense@cuda").speedup["latency"] == 2.0
    assert r.form("csr").throughput == {1: 1000.0, 32: 32000 / 22}


def test_report_round_trips_through_json(magnitude_report):
    text = magnitude_report.to_json()
    d = json.loads(text)
    assert d["format"] == "workbench-deploy" and d["forms"][2]["speedup"]["throughput"]["8"] > 0
    assert d["forms"][0]["latency_ms"]["1"] == magnitude_report.forms[0].latency_ms[1]
    assert DeployReport.from_json(text) == magnitude_report
    with pytest.raises(WorkbenchError, match="cannot be read"):
        DeployReport.from_json('{"format": "something else"}')


def test_stored_report_replaces_the_last_and_keeps_the_run_readable(runs, magnitude_report, tmp_path):
    path = tmp_path / "run.h5"
    shutil.copy(runs["magnitude"], path)
    assert read_report(path) is None
    store_report(path, magnitude_report)
    assert read_report(path) == magnitude_report
    second = DeployReport.from_json(magnitude_report.to_json())
    second.notes = ["x" * 70_000]                # too large for an attribute: a checksummed dataset
    store_report(path, second)
    assert read_report(path) == second
    with h5py.File(path, "r") as f:
        assert [k for k in f if k.startswith("deploy")] == ["deploy"]
        assert f["deploy/report_json"].fletcher32 and "report" not in f["deploy"].attrs
        assert f["deploy"].attrs["measured"]
    store_report(path, magnitude_report)
    assert read_report(path) == magnitude_report
    run = read_run(path)
    assert run.status == "completed" and "test_accuracy" in run.metrics


def test_a_run_without_a_special_form_measures_only_the_generic_ones(runs):
    r = deploy(runs["plain"], forms=None, **FAST)
    assert [f.name for f in r.forms] == list(GENERIC)
    assert not any(f.accuracy_changed for f in r.forms[:3])


def test_hashed_and_lowrank_runs_measure_their_own_forms(runs):
    hashed = deploy(runs["hashed"], forms=["hashed", "hashed-regen"], **FAST)
    assert [f.name for f in hashed.forms] == ["reference", "dense", "hashed", "hashed-regen"]
    # the hashed files hold the buckets, not the virtual weights
    assert hashed.form("hashed").file_bytes < hashed.form("dense").file_bytes
    assert hashed.form("hashed-regen").max_abs_diff < 1e-5
    svd = deploy(runs["svd"], forms=["lowrank"], **FAST)
    assert [f.name for f in svd.forms] == ["reference", "dense", "lowrank"]
    assert svd.form("lowrank").file_bytes < svd.form("dense").file_bytes
    assert svd.form("lowrank").accuracy == svd.form("dense").accuracy


def test_memory_is_measured_per_form_in_a_fresh_process(runs):
    r = deploy(runs["plain"], forms=["onnxruntime"], batches=(64,), repeats=1)
    assert "fresh process" in r.memory_note
    for f in r.forms:
        assert f.memory["peak_mb"] >= f.memory["resident_mb"] >= 0
    # an onnxruntime session allocates its arena: more than the few KiB of a plain model's weights
    assert r.form("onnxruntime").memory["peak_mb"] > r.form("dense").memory["peak_mb"]


def test_missing_reference_weights_are_said_and_still_timed(runs, tmp_path, monkeypatch):
    path = tmp_path / "run.h5"
    shutil.copy(runs["plain"], path)
    with h5py.File(path, "a") as f:
        f.attrs["model_source"] = f"reference: {tmp_path / 'gone.pt'}"
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "empty-cache"))
    r = deploy(path, forms=["dense"], **FAST)
    ref = r.form("reference")
    assert ref.accuracy is None and ref.latency_ms[1] > 0 and "not found" in ref.note
    assert "recorded its accuracy as 100.00%" in ref.note


def test_progress_and_cancel(runs):
    seen = []
    deploy(runs["plain"], forms=["dense"], progress=lambda *a: seen.append(a), **FAST)
    assert [s[0] for s in seen] == list(range(1, len(seen) + 1)) and seen[-1][0] == seen[-1][1]
    token = CancelToken()

    def cancel_after_two(done, total, text):
        if done == 2:
            token.cancel()
    with pytest.raises(Cancelled):
        deploy(runs["plain"], progress=cancel_after_two, cancel=token, **FAST)
    assert torch.get_num_threads() == 1              # restored after a cancel too


def test_bad_input_is_one_line(runs, tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not a run")
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    truncated = tmp_path / "truncated.h5"
    blob = open(runs["plain"], "rb").read()
    truncated.write_bytes(blob[: len(blob) // 2])
    cases = [(text, "not a readable HDF5"), (foreign, "not a workbench run"), (truncated, "not a readable HDF5"),
             (tmp_path / "missing.h5", "no such run file")]
    for path, words in cases:
        with pytest.raises(WorkbenchError, match=words) as err:
            deploy(path, **FAST)
        assert "\n" not in str(err.value)
    with pytest.raises(WorkbenchError, match="not a workbench run"):
        read_report(foreign)
    for kw, words in [({"forms": ["csr"]}, "cannot be deployed as csr; its forms are reference, dense"),
                      ({"batches": [0]}, "at least 1"), ({"device": "tpu"}, "unknown device"),
                      ({"threads": 0}, "positive whole number")]:
        with pytest.raises(WorkbenchError, match=words):
            deploy(runs["plain"], **{**FAST, **kw})


def test_a_form_that_changes_accuracy_says_so():
    from types import SimpleNamespace

    from workbench.engine import deploy as deploy_mod
    from workbench.engine.deploy_forms import Form

    y = torch.arange(2000) % 4
    x = torch.nn.functional.one_hot(y, 4).float()          # logits = x: every prediction right

    def wrong_first(k):
        """The identity, except that the first k samples' logits are rotated (predicted wrong)."""
        def call(batch, seen=[0]):
            out = batch.clone()
            n = max(0, min(k - seen[0], len(batch)))
            out[:n] = torch.roll(batch[:n], 1, dims=1)
            seen[0] += len(batch)
            return out
        return call
    forms = [Form(name, "pytorch", "cpu", "", wrong_first(k)) for name, k in (("dense", 0), ("a", 1), ("b", 3))]
    report = DeployReport("r.h5", "m", "x", "d", 1, [1], 1,
                          forms=[FormResult(f.name, "pytorch", "cpu") for f in forms])
    data = SimpleNamespace(test_x=x, test_y=y, name="d")
    deploy_mod._accuracies(report, forms, data, 2000, lambda text: None, skip_reference=False)
    dense, a, b = report.forms
    assert (dense.accuracy, a.accuracy, b.accuracy) == pytest.approx((1.0, 0.9995, 0.9985))
    assert a.agreement == pytest.approx(0.9995) and a.max_abs_diff == 1.0
    assert not a.accuracy_changed and b.accuracy_changed and not dense.accuracy_changed   # 0.05, 0.15 points
    assert b.note == "changes accuracy: -0.15 points against dense" and "*" in format_table(report)


# --- the csr form: CSR only where it pays ---------------------------------------------------------------

def _sparse(layer, density: float, seed: int = 0):
    with torch.no_grad():
        keep = torch.rand(layer.weight.shape, generator=torch.Generator().manual_seed(seed)) < density
        layer.weight.mul_(keep)
    return layer


def test_csr_plan_picks_csr_for_a_very_sparse_big_layer_and_dense_for_a_half_dense_one():
    """Fake timings (a cost model: CSR 4x dearer per multiply-add than dense, plus 0.05 ms a call): the
    1%-dense 512 -> 1024 layer goes CSR, the 50%-dense 1024 -> 256 one stays dense, and so does the small
    5%-dense convolution, whose call overhead outweighs its gain at batch 1 more than it wins at 256."""
    model = torch.nn.Sequential(_sparse(torch.nn.Conv2d(4, 8, 3, padding=1), 0.05), torch.nn.Flatten(),
                                _sparse(torch.nn.Linear(512, 1024), 0.01, 1), torch.nn.ReLU(),
                                _sparse(torch.nn.Linear(1024, 256), 0.5, 2)).eval()
    plan = deploy_csr.plan(model, torch.randn(3, 4, 8, 8), [1, 256], timer=cost_timer(4.0, 0.05))
    assert {k: v["form"] for k, v in plan.items()} == {"0": "dense", "2": "csr", "4": "dense"}
    for name, entry in plan.items():
        layer = model.get_submodule(name)
        nnz, size = int(torch.count_nonzero(layer.weight)), layer.weight.numel()
        assert entry["density"] == pytest.approx(nnz / size)
        for b in (1, 256):       # the ratio is dense ms / CSR ms of the layer's own shape at that batch
            assert entry["ratio"][str(b)] == pytest.approx(size / (4 * nnz + 0.05e6 / b))
    assert deploy_csr.choose({"1": 0.5, "256": 2.5}) == "csr"      # geometric mean 1.12
    assert deploy_csr.choose({"1": 0.5, "256": 1.5}) == "dense"    # 0.87: it loses more at batch 1


def test_csr_form_holds_only_the_layers_its_plan_chose(runs, tmp_path):
    forms = _forms(runs["magnitude"], tmp_path)
    forms.csr_plan = {"conv1": {"density": 0.1, "ratio": {"1": 0.5}, "form": "dense"},
                      "fc1": {"density": 0.1, "ratio": {"1": 3.0}, "form": "csr"}}
    forms.path("csr").unlink()
    forms.write("csr")
    csr = forms.load("csr")
    assert type(csr.module.conv1) is torch.nn.Conv2d and isinstance(csr.module.fc1, CsrLinear)
    assert "fc1" in csr.description and "conv1" not in csr.description
    x, _ = H.tiny_test_set()
    with torch.no_grad():
        torch.testing.assert_close(csr(x), forms.load("dense")(x), atol=1e-4, rtol=1e-4)


def test_the_chosen_layers_and_their_ratios_are_in_the_report(magnitude_report):
    csr = magnitude_report.form("csr")
    assert set(csr.layers) == {"conv1", "fc1"} and all(v["form"] == "csr" for v in csr.layers.values())
    assert all(set(v["ratio"]) == {"1", "8"} for v in csr.layers.values())
    assert "csr per layer (density, dense ms / CSR ms at batch 1/8, chosen): conv1 " in format_table(magnitude_report)


def test_a_csr_form_without_a_faster_layer_is_reported_not_measured(runs, monkeypatch):
    monkeypatch.setattr(deploy_csr, "sample_ms", cost_timer(100.0))        # CSR slower for every layer
    seen = []
    r = deploy(runs["magnitude"], progress=lambda *a: seen.append(a), threads=1, **FAST)
    assert [s[0] for s in seen] == list(range(1, len(seen) + 1)) and seen[-1][0] == seen[-1][1]
    assert [f.name for f in r.forms] == ["reference", "dense", "csr", "onnxruntime", "onnxruntime-int8"]
    csr = r.form("csr")
    assert csr.samples_ms == {} and csr.file_bytes is None and csr.accuracy is None
    assert "no layer is faster as CSR" in csr.note and csr.speedup["latency"] is None
    assert {k: v["form"] for k, v in csr.layers.items()} == {"conv1": "dense", "fc1": "dense"}
    table = format_table(r)
    assert "csr: not measured: no layer is faster as CSR" in table and "conv1" in table
    assert DeployReport.from_json(r.to_json()) == r
    assert deploy_report.deploy_summary(r)["form"] != "csr"


def test_a_form_a_converter_refuses_is_reported_and_the_others_measured(runs, monkeypatch):
    # onnxruntime's quantize_dynamic refused a ResNet-20 SWS export ("Expected onnx::Conv_322 to be an
    # initializer") and took the whole measurement down with it
    real_write = RunForms.write

    def write(self, name):
        if name == "onnxruntime-int8":
            raise ValueError("Expected onnx::Conv_322 to be an initializer\nmore lines")
        return real_write(self, name)

    monkeypatch.setattr(RunForms, "write", write)
    seen = []
    r = deploy(runs["plain"], progress=lambda *a: seen.append(a), threads=1, **FAST)
    assert [s[0] for s in seen] == list(range(1, len(seen) + 1)) and seen[-1][0] == seen[-1][1]
    refused = r.form("onnxruntime-int8")
    assert refused.samples_ms == {} and refused.file_bytes is None and refused.speedup["latency"] is None
    assert refused.note == ("not measured: could not be written (ValueError: Expected onnx::Conv_322 to be an "
                            "initializer)")
    assert r.form("onnxruntime").latency_ms and r.form("dense").latency_ms     # the others were measured
    assert "onnxruntime-int8: not measured" in format_table(r)
    assert DeployReport.from_json(r.to_json()) == r

    def broken_dense(self, name):
        if name == "dense":
            raise ValueError("no dense form")
        return real_write(self, name)

    monkeypatch.setattr(RunForms, "write", broken_dense)
    with pytest.raises(WorkbenchError, match=r"^the dense form could not be written \(ValueError: no dense"):
        deploy(runs["plain"], threads=1, **FAST)          # without dense nothing compares: one line


# --- threads --------------------------------------------------------------------------------------------

def test_threads_are_restored_after_an_error_and_a_cancel(runs, monkeypatch):
    assert torch.get_num_threads() == 1
    seen = []
    from workbench.engine import deploy as deploy_mod

    def broken(*args):
        seen.append(torch.get_num_threads())
        raise RuntimeError("a failure in the middle of the timing")
    monkeypatch.setattr(deploy_mod, "_time", broken)
    with pytest.raises(RuntimeError, match="middle"):
        deploy(runs["plain"], forms=["dense"], threads=2, **FAST)
    assert seen == [2] and torch.get_num_threads() == 1
    token = CancelToken()
    with pytest.raises(Cancelled):
        deploy(runs["plain"], threads=2, progress=lambda done, *_: done == 2 and token.cancel(), cancel=token,
               **FAST)
    assert torch.get_num_threads() == 1


def test_onnxruntime_sessions_get_the_measurements_threads(runs, monkeypatch):
    from workbench.engine import deploy_forms

    made = []
    real = deploy_forms.ort_session

    def recording(path, threads, device):
        session = real(path, threads, device)
        made.append((path.name, session.get_session_options().intra_op_num_threads, torch.get_num_threads()))
        return session
    monkeypatch.setattr(deploy_forms, "ort_session", recording)
    deploy(runs["plain"], forms=["onnxruntime", "onnxruntime-int8"], threads=2, **FAST)
    assert made == [("model.onnx", 2, 2), ("model.int8.onnx", 2, 2)]


# --- the compare table's deployment columns ----------------------------------------------------------------

def test_compare_rows_carry_the_stored_reports_fastest_form(runs, tmp_path):
    from workbench.engine.compare import compare_rows
    from workbench.engine.compare import format_table as compare_table

    path = tmp_path / "run.h5"
    shutil.copy(runs["magnitude"], path)
    report = deploy(path, batches=(1, 8), repeats=2, eval_samples=64, memory=False, threads=1)
    store_report(path, report)
    summary = deploy_report.deploy_summary(read_report(path))
    eligible = [f for f in report.forms if f.device == "cpu" and f.name != "reference" and f.latency_ms
                and not f.accuracy_changed]
    fastest = min(eligible, key=lambda f: f.latency_ms[1])
    assert summary == {"form": fastest.name, "batch": 1, "latency_ms": fastest.latency_ms[1],
                       "speedup": fastest.speedup["latency"], "threads": 1}
    with_report, without = compare_rows([str(path), runs["plain"]])
    assert (with_report["deploy_form"], with_report["latency_ms"], with_report["speedup"],
            with_report["deploy_threads"]) == (fastest.name, fastest.latency_ms[1], fastest.speedup["latency"], 1)
    assert without["latency_ms"] is None and without["speedup"] is None and without["deploy_form"] is None
    table = compare_table([with_report, without])
    assert "b1 ms" in table and f"{fastest.latency_ms[1]:.3f}" in table and f"{fastest.name} (1 thr)" in table
    assert "speed-up against the reference" in table
    assert "b1 ms" not in compare_table([without]) and "speed-up" not in compare_table([without])
    with h5py.File(path, "a") as f:                  # a damaged report: a warning on its row, not an error
        f["deploy"].attrs["report"] = "{not json"
    (damaged,) = compare_rows([str(path)])
    assert damaged["latency_ms"] is None and "cannot be read" in damaged["deploy_warning"]
    assert f"run: {damaged['deploy_warning']}" in compare_table([damaged])


def test_a_pruned_int8_convolutional_run_deploys_as_int8_and_its_qdq_onnx(tmp_path_factory, cache_root):
    """magnitude -> int8 on cnn_tiny: its layers are int8, so no CSR form (as CSR they would compute
    without their input quantization) and no onnxruntime-int8 (the ONNX export is QDQ int8 already;
    onnxruntime's dynamic quantizer refused its convolutions, failing the whole measurement)."""
    from workbench.core.config import StageConfig

    config = H.make_config("magnitude", tmp_path_factory.mktemp("mag-int8"), model="cnn_tiny", epochs=1)
    config.stages.append(StageConfig("int8", {}, {"epochs": 0}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_CACHE", str(cache_root))
        fin = H.finished(H.run_events(config))
    assert fin.status == "completed", fin.error
    r = deploy(fin.run_path, threads=1, **FAST)
    assert [f.name for f in r.forms] == ["reference", "dense", "int8", "onnxruntime"]
    assert "QuantizeLinear" in r.form("onnxruntime").description
    assert r.form("int8").accuracy == pytest.approx(fin.summary["test_accuracy"])
    assert r.form("onnxruntime").agreement >= 0.95
