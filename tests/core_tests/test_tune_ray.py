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
