"""Five users' architectures (tests/model_tests/architectures.py: ResNet-18-style, MobileNetV2-style,
a transformer encoder, a 1-D conv net, a token classifier) brought in each format (.pt2, ONNX,
FILE.py:NAME) run through the real run loop, store and export: the stage completes, compresses, and the
compact file (the accounted payload plus a header) reloads to the stored model's outputs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from workbench.core.config import RunConfig, StageConfig
from workbench.core.store import read_run
from workbench.engine.export import _rebuild, export_run, load_compact
from workbench.engine.runner import execute

sys.path.insert(0, str(Path(__file__).parent))
import architectures as A  # noqa: E402
from user_model_files import KINDS, model_file  # noqa: E402


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", [*A.ARCHITECTURES, "resnet20"])
def test_architecture_format_runs_compresses_and_reloads(name, kind, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    if kind == "onnx":
        pytest.importorskip("onnx")
    spec = model_file(kind, name, tmp_path)
    config = RunConfig(dataset="tiny", model=spec, out_dir=str(tmp_path / "runs"), device="cpu",
                       trust_code=kind == "py", pretrain_epochs=1,
                       stages=[StageConfig("magnitude", {"q_fc": 1.0, "q_conv": 1.0}, {"epochs": 1})])
    fin = list(execute(config))[-1]
    assert fin.status == "completed", fin.error
    run = read_run(fin.run_path)
    # As Python code a transformer's encoder layer stays dense (models/layers.py: FUSED); as a graph it is
    # plain linear layers and is pruned like the rest.
    assert run.summary["param_ratio"] > (1.02 if (name, kind) == ("transformer", "py") else 1.3), run.summary
    compact = export_run(fin.run_path, "compact", tmp_path / "m.cwb", trust_code=kind == "py")
    assert compact.accounted_bytes == pytest.approx(run.summary["bits"] / 8)
    assert compact.size_bytes <= compact.accounted_bytes + compact.header_bytes + 64
    stored, _, _ = _rebuild(fin.run_path, trust_code=kind == "py")
    reloaded = load_compact(compact.path, trust_code=kind == "py")
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(reloaded.eval()(x), stored(x), atol=1e-5)


@pytest.mark.parametrize("method", ["kmeans", "dns", "hashed"])
def test_python_attention_keeps_its_projections_dense_and_every_method_runs(method, tmp_path, monkeypatch):
    """torch's fused attention modules read their layers' weights without calling the layers, so a hook
    or a replaced layer would not take effect: their layers stay dense, the rest is compressed."""
    from workbench.models.layers import compressible_layers

    names = [n for n, _ in compressible_layers(A.TransformerStyle(num_classes=4))]
    assert names == ["embed", "fc"]            # the encoder layer's own layers stay dense
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    config = RunConfig(dataset="tiny", model=model_file("py", "transformer", tmp_path), trust_code=True,
                       out_dir=str(tmp_path / "runs"), pretrain_epochs=1,
                       stages=[StageConfig(method, {"ratio": 0.25} if method == "hashed" else {}, {"epochs": 1})])
    fin = list(execute(config))[-1]
    assert fin.status == "completed", fin.error
