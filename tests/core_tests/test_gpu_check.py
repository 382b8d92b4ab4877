"""The GPU check script (tests/benchmarks/gpu_check.py) keeps working where there is no GPU: its CPU
side runs the methods through the core's run loop and says what it could not check."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from workbench.core.store import read_run

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def check_cpu_side(capsys, monkeypatch, tmp_path, methods: str) -> str:
    """The script's CPU side on the tiny set for `methods`; asserts it exits 0 and returns what it printed."""
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(["--model", "mlp_tiny", "--dataset", "tiny", "--train", "256", "--test", "128",
                        "--methods", methods, "--cpu-only", "--no-worker"])
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def test_cpu_side_runs_and_reports(capsys, monkeypatch, tmp_path):
    out = check_cpu_side(capsys, monkeypatch, tmp_path, "dns,lowrank")
    assert "CUDA: none (CPU side only)" in out
    assert "method dns  cpu completed" in out and "method lowrank  cpu completed" in out
    assert "2 methods, 0 problems" in out


def test_soft_weight_sharing_is_checked_with_its_gradual_snap_acting(capsys, monkeypatch, tmp_path):
    out = check_cpu_side(capsys, monkeypatch, tmp_path, "sws")
    assert "method sws  cpu completed" in out and "method sws:steps  cpu completed" in out
    assert "2 methods, 0 problems" in out
    folder = Path(out.rsplit("run files in ", 1)[1].strip()) / "cpu"
    held = [read_run(str(f)).layers["fc1"]["snap_held"] for f in sorted(folder.glob("*.h5"))]
    assert len(held) == 2
    assert any(h[-1] == 0.75 for h in held)         # the variant's steps held 75 % (two steps)
    assert any(np.all(np.nan_to_num(h) == 0.0) for h in held)   # the plain run snapped at the end
