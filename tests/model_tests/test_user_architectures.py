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
@pytest.mark.parametrize("name", list(A.ARCHITECTURES))
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
    assert run.summary["param_ratio"] > 1.3, run.summary
    compact = export_run(fin.run_path, "compact", tmp_path / "m.cwb", trust_code=kind == "py")
    assert compact.accounted_bytes == pytest.approx(run.summary["bits"] / 8)
    assert compact.size_bytes <= compact.accounted_bytes + compact.header_bytes + 64
    stored, _, _ = _rebuild(fin.run_path, trust_code=kind == "py")
    reloaded = load_compact(compact.path, trust_code=kind == "py")
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(reloaded.eval()(x), stored(x), atol=1e-5)
