"""`workbench tune --ray local`: a local Ray with two workers runs a study's trials as Ray tasks, each an
ordinary run file, with pruning reports from the workers through the study's journal. (A worker killed
mid-trial: tests/benchmarks/tune_ray_kill.py, too slow for here.)"""

from __future__ import annotations

import os

import optuna
import pytest

from workbench.core.config import RunConfig, StageConfig
from workbench.core.store import read_run
from workbench.engine.tune import RayOptions, tune
from workbench.engine.tune_objective import parse_objective
from workbench.engine.tune_space import build_space
from workbench.engine.tune_trial import open_storage

ray = pytest.importorskip("ray", reason="Ray is the `tune` extra (quickstart.sh and CI install it)")


def test_two_local_workers_run_two_trials(tmp_path):
    config = RunConfig(dataset="tiny", stages=[StageConfig("magnitude", {}, {"epochs": 1})], model="mlp_tiny",
                       device="cpu", pretrain_epochs=2, train_subset=256)
    space = build_space(config, ["q_fc=0.5..2"], defaults=False)
    study = tune(config, space, 2, parse_objective("ratio-at-drop=90"), tmp_path, ray=RayOptions("local", 2))
    assert not ray.is_initialized()                      # the Ray it started is shut down again
    assert [t.state for t in study.trials] == ["complete", "complete"] and study.ran == 2
    for trial in study.trials:
        run = read_run(trial.run)
        assert run.status == "completed" and run.summary["storage_ratio"] == pytest.approx(trial.storage_ratio)
        assert run.config["stages"][0]["params"]["q_fc"] == pytest.approx(trial.params["q_fc"])
        assert trial.worker.split(":")[1] != str(os.getpid())   # ran in a Ray worker
    # the workers reported each epoch to the journal (what pruning reads) before the driver told the result
    frozen = optuna.load_study(study_name=study.name, storage=open_storage(study.storage)).trials
    assert [sorted(f.intermediate_values) for f in frozen] == [[1], [1]]


def test_repeats_on_two_local_workers(tmp_path, capsys):
    """`run --repeats 2 --ray local --workers 2`: each repeat a Ray task from the one shared reference,
    the same files, seeds and summary as repeats run here."""
    from workbench.cli import main

    rc = main(["run", "--model", "mlp_tiny", "--dataset", "tiny", "--method", "magnitude", "--epochs", "1",
               "--device", "cpu", "--pretrain-epochs", "2", "--train-subset", "256", "--out", str(tmp_path),
               "--name", "rep", "--repeats", "2", "--ray", "local", "--workers", "2", "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    import json

    result = json.loads(out.out.strip().splitlines()[-1])
    assert not ray.is_initialized()
    assert [r["seed"] for r in result["runs"]] == [0, 1] and result["summary"]["completed"] == 2
    files = sorted(tmp_path.glob("rep-s*.h5"))
    assert [f.name for f in files] == ["rep-s0.h5", "rep-s1.h5"]
    runs = [read_run(f) for f in files]
    assert {r.status for r in runs} == {"completed"} and [r.config["seed"] for r in runs] == [0, 1]
    assert runs[0].config["checkpoint"] == runs[1].config["checkpoint"]        # one shared reference
    for r in result["runs"]:
        assert r["worker"].split(":")[1].split()[0] != str(os.getpid())       # ran in a Ray worker
        assert " node " in r["worker"]
    assert "(worker " in out.err                                                # the line as each ends


def test_ray_without_repeats_is_one_line(tmp_path, capsys):
    from workbench.cli import main

    rc = main(["run", "--model", "mlp_tiny", "--dataset", "tiny", "--method", "magnitude", "--ray", "local",
               "--out", str(tmp_path)])
    assert rc == 2 and "--ray runs repeats: give --repeats N" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.h5"))
