"""The dense export of a thinned model (structured pruning removed channels): written at its thinner
shapes with the structure in the sidecar, smaller on disk than the dense model's, and read back by the
dense loader to the run's outputs; as weights for the unthinned architecture, it reads back with zeros."""

from __future__ import annotations

import json

import core_helpers as H
import pytest
import torch

from workbench.core.config import RunConfig, StageConfig
from workbench.core.errors import CheckpointError
from workbench.engine.export import _rebuild, export_run
from workbench.models import checkpoint, quantized, structure, zoo


def _run(tmp_path, stages, model="cnn_tiny"):
    config = RunConfig(dataset="tiny", stages=stages, model=model, out_dir=str(tmp_path / "runs"), device="cpu",
                       pretrain_epochs=2)
    fin = H.finished(H.run_events(config))
    assert fin.status == "completed", fin.error
    return fin


@pytest.fixture(scope="module")
def l1filter_run(tmp_path_factory, cache_root):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_CACHE", str(cache_root))
        return _run(tmp_path_factory.mktemp("l1"), [StageConfig("l1filter", {"prune_ratio": 0.5}, {"epochs": 1})])


def test_thinned_dense_export_is_smaller_and_reloads_to_the_runs_outputs(l1filter_run, tmp_path):
    model, _, _ = _rebuild(l1filter_run.run_path)
    assert structure.thinned_only(structure.structure_of(model))
    result = export_run(l1filter_run.run_path, "dense", tmp_path / "thin.safetensors")
    sidecar = json.loads(result.path.with_suffix(".json").read_text())
    assert sidecar["structure"] == structure.structure_of(model)
    # the same architecture unthinned, written the same way, is larger on disk
    from safetensors.torch import save_file

    full = zoo.build_model("cnn_tiny", (1, 8, 8), 4)
    save_file({k: v.contiguous() for k, v in full.state_dict().items()}, str(tmp_path / "full.safetensors"))
    assert result.size_bytes < (tmp_path / "full.safetensors").stat().st_size
    assert result.accounted_bytes == 4 * sum(p.numel() for p in model.parameters()) \
        < 4 * sum(p.numel() for p in full.parameters())
    loaded = checkpoint.load_model_file(result.path)
    assert loaded.model_key == "cnn_tiny" and structure.structure_of(loaded.model) is not None
    assert loaded.model.conv1.out_channels == model.conv1.out_channels < 4
    x, _ = H.tiny_test_set()
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), model(x), atol=1e-6)
    # given as weights for the unthinned architecture (a user's model), the removed channels come back as zeros
    state = checkpoint.load_state_dict_file(result.path)
    full.load_state_dict(state)
    with torch.no_grad():
        assert torch.allclose(full.eval()(x), model(x), atol=1e-5)


def test_thinned_int8_dense_export_is_the_thinned_float_model(l1filter_run, tmp_path, cache_root):
    fin = _run(tmp_path, [StageConfig("l1filter", {"prune_ratio": 0.5}, {"epochs": 1}),
                          StageConfig("int8", {}, {"epochs": 1, "lr": 0.001})])
    model, _, _ = _rebuild(fin.run_path)
    assert quantized.quantized_modules(model)
    result = export_run(fin.run_path, "dense", tmp_path / "thin8.safetensors")
    sidecar = json.loads(result.path.with_suffix(".json").read_text())
    assert "quantized" not in sidecar["structure"] and "int8" in sidecar
    loaded = checkpoint.load_model_file(result.path).model
    assert not quantized.quantized_modules(loaded)
    x, _ = H.tiny_test_set()
    with torch.no_grad(), quantized.float_activations(model):
        assert torch.allclose(loaded(x), model(x), atol=1e-6)


def test_factorised_models_still_export_the_original_architecture(tmp_path):
    fin = _run(tmp_path, [StageConfig("lowrank", {"tau": 1.0, "energy": 0.5, "prox_every": 2},
                                      {"epochs": 1, "lr": 0.05})], model="mlp_tiny")
    result = export_run(fin.run_path, "dense", tmp_path / "lr.safetensors")
    assert "structure" not in json.loads(result.path.with_suffix(".json").read_text())
    plain = zoo.build_model("mlp_tiny", (1, 8, 8), 4)
    plain.load_state_dict(checkpoint.load_state_dict_file(result.path))


def test_a_sidecar_structure_that_does_not_fit_is_one_line(l1filter_run, tmp_path):
    result = export_run(l1filter_run.run_path, "dense", tmp_path / "thin.safetensors")
    sidecar = result.path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta["structure"]["layers"]["conv1"]["rank"] = 2             # factors are not in a dense file
    sidecar.write_text(json.dumps(meta))
    for load in (checkpoint.load_model_file, checkpoint.load_state_dict_file):
        with pytest.raises(CheckpointError, match="other than thinned") as info:
            load(result.path)
        assert "\n" not in str(info.value)
    meta["structure"]["layers"]["conv1"]["rank"] = None
    meta["structure"]["layers"]["conv1"]["shape"] = [9, 1, 3, 3]   # not this architecture's conv1
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="conv1") as info:
        checkpoint.load_model_file(result.path)
    assert "\n" not in str(info.value)
