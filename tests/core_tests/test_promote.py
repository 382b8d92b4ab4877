"""Promote a run to a preset (issue 17): a real tiny run (mlp_tiny / tiny, 1 epoch) becomes a user preset
whose stages are the run's, and a run from that preset repeats it; the preset's `measured` block says
what it gave and on which reference; a tune trial says its study and trial; a run on a checkpoint says
the preset needs that reference; a run that did not finish is refused with one line."""

from __future__ import annotations

import shutil

import core_helpers as H
import pytest

from workbench.cli import build_parser, config_from_args, main
from workbench.core.errors import WorkbenchError
from workbench.core.events import CancelToken, RunStarted
from workbench.core.presets import get_preset, list_presets, preset_file
from workbench.core.store import read_run
from workbench.engine.promote import preset_from_run, promote
from workbench.engine.runner import execute

PARAMS = {"q_fc": 1.5, "q_conv": 1.5, "iterations": 2}



@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, cache_root):
    """A finished magnitude run on mlp_tiny / tiny, 1 epoch (a 2-epoch reference): its path."""
    out = tmp_path_factory.mktemp("promote-run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_CACHE", str(cache_root))
        fin = H.finished(H.run_events(H.make_config("magnitude", out, params=PARAMS, epochs=1, pretrain_epochs=2,
                                                    seed=3, name="tiny-mag")))
    assert fin.status == "completed", fin.error
    return fin.run_path


def test_promoted_run_loads_by_name_and_runs_the_same(folder, tiny_run, tmp_path):
    run = read_run(tiny_run)
    preset, path = promote(tiny_run, "tiny-mag-preset", "from the test")
    assert path == folder / "tiny-mag-preset.json" and preset_file("tiny-mag-preset") == path
    loaded = get_preset("tiny-mag-preset")
    assert loaded["stages"] == run.config["stages"] and loaded["description"] == "from the test"
    assert (loaded["model"], loaded["dataset"], loaded["huffman"]) == ("mlp_tiny", "tiny", False)
    m = loaded["measured"]
    assert m["accuracy"] == run.summary["test_accuracy"] and m["storage_ratio"] == run.summary["storage_ratio"]
    assert m["references"] == [{"model": "mlp_tiny", "pretrain_seed": 3, "pretrain_epochs": 2,
                                "accuracy": run.attrs["reference_accuracy"]}]
    assert (m["n"], m["run"], m["from"]) == (1, "tiny-mag.h5", "run")
    assert m["settings"] == {"seed": 3, "pretrain_epochs": 2} and m["command"] == run.attrs["cli"]
    assert "needs_reference" not in loaded

    # `workbench run --preset NAME` with the settings the preset says it was measured with
    args = build_parser().parse_args(["run", "--preset", "tiny-mag-preset", "--out", str(tmp_path / "again"),
                                      "--device", "cpu", "--seed", "3", "--pretrain-epochs", "2"])
    config = config_from_args(args)
    assert [(s.method, s.params, s.train) for s in config.stages] == \
        [(s["method"], s["params"], s["train"]) for s in run.config["stages"]]
    again = H.finished(H.run_events(config))
    assert again.status == "completed"
    assert again.summary["test_accuracy"] == m["accuracy"]            # same knobs, seed and reference (CPU)
    assert again.summary["storage_ratio"] == pytest.approx(m["storage_ratio"])


def test_promote_through_the_cli(folder, tiny_run, capsys):
    assert main(["presets", "promote", tiny_run, "cli-one", "--description", "typed"]) == 0
    assert capsys.readouterr().out.strip() == f"saved preset cli-one to {folder / 'cli-one.json'}"
    assert get_preset("cli-one")["description"] == "typed"
    assert main(["presets", "promote", tiny_run, "cli-one"]) == 2           # exists: nothing overwritten
    assert "a user preset named 'cli-one' exists" in capsys.readouterr().err
    assert main(["presets", "promote", tiny_run, "sws-lenet300"]) == 2
    assert "is the name of a shipped preset" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["cli-one.json"]
    assert main(["presets"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("cli-one "))
    assert "1 ref: " in row and "% err" in row


def test_a_tune_trial_says_its_study_and_trial(folder, tmp_path):
    from workbench.core.config import RunConfig, StageConfig
    from workbench.engine.tune import tune
    from workbench.engine.tune_objective import parse_objective
    from workbench.engine.tune_space import build_space

    config = RunConfig(dataset="tiny", stages=[StageConfig("magnitude", {}, {"epochs": 1})], model="mlp_tiny",
                       device="cpu", pretrain_epochs=2, train_subset=256)
    study = tune(config, build_space(config, ["q_fc=0.5..2"], defaults=False), 1,
                 parse_objective("ratio-at-drop=90"), tmp_path / "study", pruner="none")
    [trial] = study.trials
    preset = preset_from_run(trial.run, "from-trial")
    assert preset["measured"]["from"] == f"tune study {study.name} trial 0"
    assert preset["params"]["q_fc"] == pytest.approx(trial.params["q_fc"])
    assert f"(tune study {study.name} trial 0)" in preset["source"]
    assert preset["measured"]["settings"]["train_subset"] == 256


def test_a_checkpoint_run_says_it_needs_its_reference(folder, tiny_run, cache_root, tmp_path):
    cached = next((cache_root / "references").glob("mlp_tiny-tiny-*.pt"))
    mine = tmp_path / "my-reference.pt"
    shutil.copy(cached, mine)
    fin = H.finished(H.run_events(H.make_config("magnitude", tmp_path, params=PARAMS, epochs=1,
                                                checkpoint=str(mine), name="on-checkpoint")))
    assert fin.status == "completed", fin.error
    preset = preset_from_run(fin.run_path, "ckpt")
    assert str(mine) in preset["needs_reference"] and "fitted to that reference" in preset["needs_reference"]
    assert preset["measured"]["references"][0]["checkpoint"] == str(mine)
    # the zoo reference that --repeats hands every repeat as its checkpoint is not a model the user brought
    fin = H.finished(H.run_events(H.make_config("magnitude", tmp_path, params=PARAMS, epochs=1,
                                                checkpoint=str(cached), name="on-cached")))
    assert "needs_reference" not in preset_from_run(fin.run_path, "cached")


def test_runs_that_did_not_finish_are_refused_with_one_line(folder, tmp_path):
    token = CancelToken()
    events = []
    for event in execute(H.make_config("magnitude", tmp_path, params=PARAMS, epochs=1, name="stopped"), token):
        events.append(event)
        if isinstance(event, RunStarted):
            token.cancel()
    fin = H.finished(events)
    assert fin.status == "cancelled" and fin.run_path
    with pytest.raises(WorkbenchError, match=r"^stopped.h5 is not a finished run \(status cancelled\); only a "
                                             "completed run can become a preset$"):
        promote(fin.run_path, "never")
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    with pytest.raises(WorkbenchError, match="is not a readable HDF5 run file"):
        promote(junk, "never")
    with pytest.raises(WorkbenchError, match="no such run file"):
        promote(tmp_path / "missing.h5", "never")
    assert not folder.exists() and "never" not in {p["name"] for p in list_presets()}
