"""Pipelines on the command line: magnitude -> kmeans with Huffman coding (Deep Compression) in one run
file with one timeline, per-stage knobs, the repeat command, and a compact export that matches."""

from __future__ import annotations

import json
import shlex

import core_helpers as H
import numpy as np
import pytest
import torch

from workbench.cli import build_parser, config_from_args, main
from workbench.core.errors import WorkbenchError
from workbench.core.store import read_model, read_run
from workbench.engine.export import load_compact, read_compact

ARGS = ["run", "--model", "mlp_tiny", "--dataset", "tiny", "--method", "magnitude,kmeans",
        "--set", "q_fc=1.5", "--set", "1.epochs=2", "--set", "kmeans.epochs=1", "--set", "bits_fc=3",
        "--set", "lr=0.02", "--huffman", "--pretrain-epochs", "3", "--device", "cpu"]


@pytest.fixture
def pipeline_run(tmp_path, capsys):
    rc = main([*ARGS, "--out", str(tmp_path), "--name", "dc", "--json", "--quiet"])
    assert rc == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_stages_share_one_run_file_and_timeline(pipeline_run):
    run = read_run(pipeline_run["run"])
    assert run.status == "completed"
    stages = [s["method"] for s in run.config["stages"]]
    assert stages == ["magnitude", "kmeans"] and run.config["huffman"] is True
    # per-stage knobs landed where they were addressed; unprefixed training knobs in every stage
    st1, st2 = run.config["stages"]
    assert st1["train"]["epochs"] == 2 and st2["train"]["epochs"] == 1
    assert st2["params"]["bits_fc"] == 3 and "bits_fc" not in st1["params"]
    assert st1["train"]["lr"] == st2["train"]["lr"] == 0.02
    m = run.metrics
    # reference, 2 magnitude epochs + finalized, 1 kmeans epoch + finalized
    assert list(m["stage"]) == [0, 0, 0, 0, 1, 1]
    assert np.all(np.diff(m["step"]) >= 0)
    # after kmeans every layer holds at most 2^3 distinct nonzero values, zeros kept from magnitude
    state, _ = read_model(pipeline_run["run"])
    for key in ("fc1.weight", "fc2.weight"):
        w = np.asarray(state[key])
        assert len(np.unique(w[w != 0])) <= 8
    assert m["param_ratio"][-1] == pytest.approx(m["param_ratio"][3])    # kmeans keeps the zeros
    assert m["storage_ratio"][-1] > m["storage_ratio"][3]                # and shrinks the bits


def test_repeat_command_rebuilds_the_same_pipeline(pipeline_run):
    run = read_run(pipeline_run["run"])
    command = run.attrs["cli"]
    assert "--huffman" in command and "2.bits_fc=3" in command
    args = build_parser().parse_args(shlex.split(command)[1:] + ["--out", "x"])
    again = config_from_args(args)
    assert [s.__dict__ for s in again.stages] == run.config["stages"]


def test_compact_export_is_huffman_coded_and_matches_the_accounting(pipeline_run, tmp_path, capsys):
    out = tmp_path / "dc.cwb"
    assert main(["export", pipeline_run["run"], "--format", "compact", "--out", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    run = read_run(pipeline_run["run"])
    assert info["accounted_bytes"] == pytest.approx(run.summary["bits"] / 8)
    size = out.stat().st_size
    # Per-tensor metadata is accounted in bits but written in the (zlib) header; values, codes,
    # codebooks, indices and Huffman tables are the payload, byte-rounded per array.
    assert size <= run.summary["bits"] / 8 + info["header_bytes"]
    assert abs(size - run.summary["bits"] / 8) <= 0.1 * run.summary["bits"] / 8 + info["header_bytes"]
    header, _ = read_compact(out)
    codings = {t["info"].get(f"{s}_coding") for t in header["tensors"] for s in ("index", "codes")}
    assert "huffman" in codings and any(t["encoding"].endswith("_cb") for t in header["tensors"])
    model = load_compact(out)
    x, y = H.tiny_test_set()
    assert H.accuracy(model, x, y) == pytest.approx(run.summary["test_accuracy"])


@pytest.mark.parametrize("bad,message", [
    (["--set", "3.lr=0.1"], "not one stage"),
    (["--set", "dns.c_rate=1"], "not one stage"),
    (["--set", "nonsense=1"], "unknown parameter"),
])
def test_bad_stage_addresses_fail_with_one_line(bad, message, tmp_path):
    args = build_parser().parse_args([*ARGS, "--out", str(tmp_path), *bad])
    with pytest.raises(WorkbenchError, match=message):
        config_from_args(args)


def test_export_coding_override(pipeline_run, tmp_path, capsys):
    sizes = {}
    for coding in ("run", "fixed", "huffman"):
        out = tmp_path / f"{coding}.cwbc"
        assert main(["export", pipeline_run["run"], "--format", "compact", "--out", str(out),
                     "--coding", coding, "--json"]) == 0
        info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        sizes[coding] = info["accounted_bytes"]
        model = load_compact(out)                 # every coding reloads to the same weights
        x, _ = H.tiny_test_set()
        with torch.no_grad():
            assert torch.equal(model(x).argmax(1), load_compact(tmp_path / "run.cwbc")(x).argmax(1))
    assert sizes["run"] == sizes["huffman"] < sizes["fixed"]
