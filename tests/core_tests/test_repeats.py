"""`workbench run --repeats N` and `compare`'s groups (issue 17, "Repeats"): one run file per seed, the
summary's mean ± sample std over the stored summaries, failed and cancelled repeats, shared or own
references, and groups of runs that differ only in their seed."""

from __future__ import annotations

import contextlib
import io
import json
import re
import signal
from pathlib import Path

import numpy as np
import pytest

from workbench.cli import main
from workbench.core.config import RunConfig
from workbench.core.events import Evaluated
from workbench.core.store import read_run
from workbench.engine import console, repeats
from workbench.engine.compare import compare_rows, group_rows
from workbench.engine.reference import recipe, reference_path
from workbench.engine.runner import load_data
from workbench.methods import get_method

RUN = ["run", "--model", "mlp_tiny", "--dataset", "tiny", "--method", "magnitude", "--set", "q_fc=2.0",
       "--epochs", "1", "--pretrain-epochs", "3", "--device", "cpu", "--quiet"]
METRICS = ("test_accuracy", "test_error", "reference_accuracy", "param_ratio", "storage_ratio", "wall_seconds")


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def _main(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def three(tmp_path_factory, cache_root):
    """`--repeats 3 --json` of magnitude on mlp_tiny: (exit status, JSON document, out folder)."""
    out = tmp_path_factory.mktemp("repeats")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_CACHE", str(cache_root))
        rc, text, _ = _main([*RUN, "--out", str(out), "--name", "mag", "--repeats", "3", "--json"])
    return rc, _last_json(text), out


def test_three_repeats_three_files_with_consecutive_seeds(three):
    rc, doc, out = three
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["mag-s0.h5", "mag-s1.h5", "mag-s2.h5"]
    assert [r["seed"] for r in doc["runs"]] == [0, 1, 2]
    for r in doc["runs"]:
        run = read_run(r["run"])
        assert run.status == r["status"] == "completed"
        assert run.config["seed"] == r["seed"] and Path(r["run"]).name == f"mag-s{r['seed']}.h5"
    assert doc["summary"]["completed"] == 3 and doc["summary"]["failed"] == 0


def test_summary_is_numpys_mean_and_sample_std_of_the_stored_summaries(three):
    _, doc, _ = three
    stored = [read_run(r["run"]).summary for r in doc["runs"]]
    for key in METRICS:
        values = np.array([s[key] for s in stored])
        got = doc["summary"]["metrics"][key]
        assert got["n"] == 3
        assert got["mean"] == pytest.approx(values.mean(), rel=1e-12)
        assert got["std"] == pytest.approx(values.std(ddof=1), rel=1e-9, abs=1e-15)
        assert [r[key] for r in doc["runs"]] == pytest.approx(list(values))
    # the seeds changed the runs: the data order and the method's draws differ
    assert len({s["test_accuracy"] for s in stored} | {s["param_ratio"] for s in stored}) > 2


def test_repeats_share_the_first_seeds_reference(three, cache_root):
    _, doc, _ = three
    configs = [read_run(r["run"]).config for r in doc["runs"]]
    dataset = load_data(RunConfig(dataset="tiny", stages=[], model="mlp_tiny"))
    first = reference_path("mlp_tiny", dataset, recipe("mlp_tiny", epochs=3), 0)
    # the cached reference a plain run with seed 0 starts from, given to every repeat as its checkpoint
    assert {c["checkpoint"] for c in configs} == {str(first)} and first.exists()
    assert len({read_run(r["run"]).summary["reference_accuracy"] for r in doc["runs"]}) == 1


def test_repeat_references_pretrain_one_reference_per_seed(tmp_path, isolated_cache):
    rc, text, _ = _main([*RUN, "--out", str(tmp_path), "--seed", "4", "--repeats", "2",
                         "--repeat-references", "--json"])
    assert rc == 0
    doc = _last_json(text)
    configs = [read_run(r["run"]).config for r in doc["runs"]]
    assert [c["seed"] for c in configs] == [4, 5] and all(c["checkpoint"] is None for c in configs)
    dataset = load_data(RunConfig(dataset="tiny", stages=[], model="mlp_tiny"))
    for seed in (4, 5):
        assert reference_path("mlp_tiny", dataset, recipe("mlp_tiny", epochs=3), seed).exists()


def test_a_failed_repeat_leaves_the_others_and_is_counted(tmp_path, monkeypatch):
    real = repeats.run_with_events
    method = get_method("magnitude")

    def boom(self, model, ctx):
        raise RuntimeError("boom in the second repeat")

    def second_fails(config, printer):
        if config.seed != 1:
            return real(config, printer)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(method, "prepare", boom)
            return real(config, printer)

    monkeypatch.setattr(repeats, "run_with_events", second_fails)
    rc, out, err = _main([*RUN, "--out", str(tmp_path), "--name", "f", "--repeats", "3"])
    assert rc == 2
    assert "error: 1 of 3 repeats failed: RuntimeError: boom in the second repeat" in err
    assert re.search(r"repeat 2/3 \(seed 1\): failed: RuntimeError: boom", out)
    assert "2 of 3 repeats completed (seeds 0-2); 1 failed" in out
    assert [read_run(tmp_path / f"f-s{s}.h5").status for s in range(3)] == ["completed", "failed", "completed"]
    accuracies = [read_run(tmp_path / f"f-s{s}.h5").summary["test_accuracy"] for s in (0, 2)]
    line = next(line for line in out.splitlines() if line.strip().startswith("test accuracy"))
    mean, std = (100 * np.mean(accuracies), 100 * np.std(accuracies, ddof=1))
    assert f"{mean:.2f} ± {std:.2f} %  n=2" in line


def test_ctrl_c_cancels_the_running_repeat_and_stops_the_rest(tmp_path, monkeypatch):
    real = repeats.run_with_events

    def interrupted_in_the_second(config, printer):
        def press_ctrl_c(event):        # as the console's handler gets it, while the run goes
            if config.seed == 1 and isinstance(event, Evaluated):
                console.SIGNALS._on_signal(signal.SIGINT, None)
            printer(event)
        return real(config, press_ctrl_c)

    monkeypatch.setattr(repeats, "run_with_events", interrupted_in_the_second)
    rc, out, err = _main([*RUN, "--out", str(tmp_path), "--name", "c", "--repeats", "3", "--json"])
    assert rc == 130 and "interrupted: the remaining repeats were not run" in err
    doc = _last_json(out)
    assert [r["status"] for r in doc["runs"]] == ["completed", "cancelled"]
    s = doc["summary"]
    assert (s["completed"], s["cancelled"], s["not_run"]) == (1, 1, 1)
    assert s["metrics"]["test_accuracy"] == {"mean": doc["runs"][0]["test_accuracy"], "std": None, "n": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c-s0.h5", "c-s1.h5"]


@pytest.mark.parametrize("what, stages, preset", [
    (["--method", "magnitude,kmeans", "--set", "q_fc=1.5"], ["magnitude", "kmeans"], None),
    (["--preset", "sws-lenet300"], ["sws"], "sws-lenet300"),      # its knobs name no layer: fits mlp_tiny
])
def test_a_pipeline_and_a_preset_repeat(what, stages, preset, tmp_path):
    rc, text, _ = _main(["run", "--model", "mlp_tiny", "--dataset", "tiny", *what, "--epochs", "1",
                         "--pretrain-epochs", "3", "--device", "cpu", "--quiet", "--out", str(tmp_path),
                         "--repeats", "2", "--json"])
    assert rc == 0
    doc = _last_json(text)
    assert [r["status"] for r in doc["runs"]] == ["completed", "completed"]
    configs = [read_run(r["run"]).config for r in doc["runs"]]
    assert all([s["method"] for s in c["stages"]] == stages and c["preset"] == preset for c in configs)
    assert [c["seed"] for c in configs] == [0, 1]
    (group,) = group_rows(compare_rows([r["run"] for r in doc["runs"]]))
    assert group["n"] == 2 and group["method"] == "+".join(stages)


@pytest.mark.parametrize("argv, message", [
    (["--repeats", "0"], "--repeats must be at least 1, got 0"),
    (["--repeat-references"], "--repeat-references needs --repeats N"),
    (["--repeats", "2", "--repeat-references", "--checkpoint", "ref.pt"], "not with --checkpoint"),
])
def test_bad_repeats_are_one_line(argv, message, tmp_path):
    if "ref.pt" in argv:
        torch = pytest.importorskip("torch")
        from workbench.models import checkpoint as ckpt
        from workbench.models import zoo
        torch.manual_seed(0)
        ckpt.save_reference(tmp_path / "ref.pt", zoo.build_model("mlp_tiny"), model_key="mlp_tiny",
                            input_shape=(1, 28, 28), num_classes=10, dataset="tiny", test_accuracy=0.5)
        argv = [a if a != "ref.pt" else str(tmp_path / "ref.pt") for a in argv]
    rc, out, err = _main([*RUN, "--out", str(tmp_path / "runs"), *argv])
    assert rc == 2 and err.strip().count("\n") == 0 and message in err, err
    assert not (tmp_path / "runs").exists()


# --- compare's groups ------------------------------------------------------------------------------

def test_compare_groups_repeats_and_not_other_knobs(three, tmp_path, capsys):
    _, doc, _ = three
    other = tmp_path / "other"
    assert main([*RUN[:8], "q_fc=1.5", *RUN[9:], "--out", str(other), "--name", "q1", "--json"]) == 0
    one_more = _last_json(capsys.readouterr().out)["run"]
    paths = [r["run"] for r in doc["runs"]]
    rows = compare_rows([paths[0], one_more, *paths[1:]])
    groups = group_rows(rows)
    assert [g["n"] for g in groups] == [3, 1]
    assert groups[0]["runs"] == paths and groups[0]["seeds"] == [0, 1, 2] and groups[0]["name"] == "mag"
    stored = [read_run(p).summary for p in paths]
    for key in ("test_accuracy", "param_ratio", "storage_ratio", "wall_seconds"):
        values = np.array([s[key] for s in stored])
        assert groups[0][key] == pytest.approx(values.mean(), rel=1e-12)
        assert groups[0][f"{key}_std"] == pytest.approx(values.std(ddof=1), rel=1e-9, abs=1e-15)
    assert groups[1]["runs"] == [one_more] and groups[1]["test_accuracy_std"] is None

    assert main(["compare", *paths, one_more, "--json"]) == 0
    cli = _last_json(capsys.readouterr().out)
    assert len(cli["runs"]) == 4 and [g["n"] for g in cli["groups"]] == [3, 1]
    assert cli["groups"][0]["test_accuracy"] == pytest.approx(groups[0]["test_accuracy"])
    assert main(["compare", *paths, one_more]) == 0
    table = capsys.readouterr().out
    acc = 100 * np.array([s["test_accuracy"] for s in stored])
    assert f"{acc.mean():.2f} ± {acc.std(ddof=1):.2f}" in table
    assert len([line for line in table.splitlines() if "magnitude" in line]) == 2
    assert main(["compare", *paths, one_more, "--no-group", "--json"]) == 0
    assert "groups" not in _last_json(capsys.readouterr().out)
    assert main(["compare", *paths, one_more, "--no-group"]) == 0
    assert "±" not in (table := capsys.readouterr().out) and table.count("magnitude") == 4


def test_a_failed_run_is_not_grouped_with_completed_ones(three, tmp_path):
    _, doc, _ = three
    failed = tmp_path / "mag-s9.h5"
    failed.write_bytes(Path(doc["runs"][0]["run"]).read_bytes())
    import h5py
    with h5py.File(failed, "a") as f:
        f.attrs["status"] = "failed"
    groups = group_rows(compare_rows([r["run"] for r in doc["runs"]] + [str(failed)]))
    assert [(g["n"], g["status"]) for g in groups] == [(3, "completed"), (1, "failed")]


def test_copies_with_one_seed_are_not_repeats_but_a_second_set_of_seeds_is_a_second_group():
    from workbench.engine.compare import repeat_sets

    items = [("a", 0), ("a", 1), ("a", 0), ("b", 0), ("a", 1), ("", 3), ("", 4), ("a", 2)]
    sets = repeat_sets(items, lambda i: i[0], lambda i: i[1])
    assert sets == [[("a", 0), ("a", 1), ("a", 2)], [("a", 0), ("a", 1)], [("b", 0)], [("", 3)], [("", 4)]]
