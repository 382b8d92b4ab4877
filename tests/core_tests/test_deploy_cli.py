"""`workbench deploy RUN.h5`: the issue's contract — a table, or with --json one JSON object as the last
line with each form's figures and its speed-up under `speedup`; the report kept in the run file unless
--no-store; bad input one line."""

from __future__ import annotations

import json
import shutil

from workbench.cli import main
from workbench.engine.deploy_report import read_report

FAST = ["--batch", "1,8", "--repeats", "2", "--eval-samples", "64", "--threads", "1"]


def test_json_last_line_has_every_form_with_its_speedup_and_the_file_keeps_it(magnitude_run, tmp_path, capsys):
    run = tmp_path / "run.h5"
    shutil.copy(magnitude_run[1], run)
    assert main(["deploy", str(run), *FAST, "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    forms = {f["name"]: f for f in report["forms"]}
    assert {"reference", "dense"} <= set(forms)
    for f in forms.values():
        assert set(f["speedup"]) >= {"latency", "throughput"}, f["name"]
        if not f["latency_ms"]:            # csr where no layer was faster as CSR here: said, not timed
            assert f["name"] == "csr" and "no layer is faster as CSR" in f["note"] and f["speedup"]["latency"] is None
            continue
        # the speed-up is the reference's median over the form's, from the same measurements
        ref = forms["reference"]["latency_ms"]["1"]
        assert abs(f["speedup"]["latency"] - ref / f["latency_ms"]["1"]) < 1e-6 * f["speedup"]["latency"]
    stored = read_report(run)
    assert stored is not None and [f.name for f in stored.forms] == list(forms)


def test_table_and_no_store(magnitude_run, tmp_path, capsys):
    run = tmp_path / "run.h5"
    shutil.copy(magnitude_run[1], run)
    assert main(["deploy", str(run), *FAST, "--no-store", "--forms", "csr"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:2] == ["form", "ms"] and "\ncsr " in out
    assert read_report(run) is None


def test_bad_input_is_one_line(tmp_path, capsys):
    junk = tmp_path / "junk.h5"
    junk.write_text("not a run")
    assert main(["deploy", str(junk), *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


def test_an_int8_runs_own_form_is_int8(tmp_path):
    """An int8 run's spec has no replaced layers, only quantized ones: its own form was named "thinned"."""
    import core_helpers as H

    from workbench.engine.deploy_forms import RunForms

    fin = H.finished(H.run_events(H.make_config("int8", tmp_path / "runs", model="mlp_tiny", params={},
                                                epochs=0)))
    assert fin.status == "completed", fin.error
    forms = RunForms(fin.run_path, tmp_path)
    assert forms.own_form() == "int8" and "int8" in forms.candidates()
    assert "int8" in forms.describe("int8")


def test_storing_a_report_goes_through_a_copy_and_refuses_a_run_being_written(magnitude_run, tmp_path):
    """The report is written into a copy renamed over the run file (no partial copy left, the old file
    untouched on failure); a run whose writer is alive is refused, since its next point would replace it."""
    import pytest

    from workbench.core.errors import WorkbenchError
    from workbench.core.store import RunWriter
    from workbench.engine.deploy import deploy
    from workbench.engine.deploy_report import store_report

    run = tmp_path / "run.h5"
    shutil.copy(magnitude_run[1], run)
    report = deploy(run, batches=(1, 4), repeats=1, eval_samples=16, memory=False, threads=1, forms=[])
    store_report(run, report)
    store_report(run, report)                      # replacing the first
    assert read_report(run).to_json() == report.to_json()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]
    writer = RunWriter(tmp_path / "live.h5", {"config": "{}"})
    try:
        with pytest.raises(WorkbenchError, match="still being written"):
            store_report(tmp_path / "live.h5", report)
    finally:
        writer.finish("cancelled")
        writer.close()
