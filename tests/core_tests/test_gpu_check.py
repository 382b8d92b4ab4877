"""The GPU check script (tests/benchmarks/gpu_check.py) keeps working where there is no GPU: its CPU
side runs the methods through the core's run loop and says what it could not check."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_cpu_side_runs_and_reports(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(["--model", "mlp_tiny", "--dataset", "tiny", "--train", "256", "--test", "128",
                        "--methods", "dns,lowrank", "--cpu-only", "--no-worker"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "CUDA: none (CPU side only)" in out
    assert "method dns  cpu completed" in out and "method lowrank  cpu completed" in out
    assert "2 methods, 0 problems" in out
