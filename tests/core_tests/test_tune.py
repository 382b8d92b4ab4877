"""`workbench tune`: the search space from the knobs' declarations, the objectives' answers, and studies
on mlp_tiny / tiny (1 epoch, 256 training samples): run files and journal, resume, pruning, cancel."""

from __future__ import annotations

import json

import optuna
import pytest

from workbench.core.config import RunConfig, StageConfig
from workbench.core.errors import ParamError, WorkbenchError
from workbench.core.events import CancelToken, Evaluated
from workbench.core.store import read_run
from workbench.engine import tune_space
from workbench.engine.tune import Tuner, _driver_lock, tune
from workbench.engine.tune_objective import TrialResult, parse_objective
from workbench.engine.tune_space import build_space, parse_dim
from workbench.engine.tune_trial import open_storage

QUICK = ["--model", "mlp_tiny", "--dataset", "tiny", "--method", "magnitude", "--epochs", "1", "--device",
         "cpu", "--pretrain-epochs", "2", "--train-subset", "256"]


def _config(*methods: str, **kw) -> RunConfig:
    return RunConfig(dataset="tiny", stages=[StageConfig(m, {}, {"epochs": 1}) for m in methods], model="mlp_tiny",
                     device="cpu", pretrain_epochs=2, train_subset=256, **kw)


def cli(argv: list[str], capsys) -> tuple[int, list[str], str]:
    """The tune subcommand as `workbench tune ...` runs it."""
    from workbench.cli import main

    rc = main(["tune", *argv])
    out, err = capsys.readouterr()
    return rc, out.strip().splitlines(), err


# --- the space ---------------------------------------------------------------------------------------

def test_default_space_is_the_knobs_tune_declarations():
    from workbench.core import params as P
    from workbench.methods import get_method

    declared = {s.name: s.knob.tune for s in P.specs(get_method("sws").Params) if s.knob.tune}
    dims = {d.name: d for d in build_space(_config("sws")).dims}
    assert set(dims) == set(declared) | {"lr"}
    assert declared["tau"] == "5e-4..5e-2:log"
    assert (dims["tau"].low, dims["tau"].high, dims["tau"].log) == (5e-4, 5e-2, True)


def test_space_from_declarations_when_a_method_declares_no_tune_range(monkeypatch):
    import dataclasses

    real = tune_space.P.specs
    monkeypatch.setattr(tune_space.P, "specs", lambda cls: [
        dataclasses.replace(s, knob=dataclasses.replace(s.knob, tune="")) for s in real(cls)])
    space = build_space(_config("kmeans"))
    dims = {d.name: d for d in space.dims}
    # kmeans' non-advanced numeric and choice knobs, as declared: no per-layer map, no advanced knob, no switch
    assert set(dims) == {"bits_fc", "bits_conv", "init", "lr"}
    assert (dims["bits_fc"].type, dims["bits_fc"].low, dims["bits_fc"].high, dims["bits_fc"].log) == (int, 1, 8, False)
    assert dims["init"].choices == ("linear", "density", "random")
    # a log knob: a decade either side of its value (lr's declared 0..10 cannot be sampled on a log scale)
    assert (dims["lr"].low, dims["lr"].high, dims["lr"].log, dims["lr"].stage) == (pytest.approx(1e-3), 0.1, True, None)
    dist = space.distributions()
    assert isinstance(dist["bits_fc"], optuna.distributions.IntDistribution)
    assert isinstance(dist["init"], optuna.distributions.CategoricalDistribution)
    assert dist["lr"].log


def test_space_overrides_and_fixes_parsed():
    config = _config("sws")
    space = build_space(config, ["tau=1e-4..1e-1:log", "pi_zero=0.99..0.999", "optimizer=adam|sgd",
                                 "components=5|9|17", "include_bias"], ["mixing_lr=0.001"])
    dims = {d.name: d for d in space.dims}
    assert (dims["tau"].low, dims["tau"].high, dims["tau"].log) == (1e-4, 0.1, True)
    assert (dims["pi_zero"].low, dims["pi_zero"].high, dims["pi_zero"].log) == (0.99, 0.999, False)
    assert dims["optimizer"].choices == ("adam", "sgd") and dims["optimizer"].part == "train"
    assert dims["components"].choices == (5, 9, 17)              # the declared type: ints, not text
    assert dims["include_bias"].choices == (False, True)
    assert "mixing_lr" not in dims and "merge_kl" in dims        # fixed out of the defaults; the rest kept
    trial = space.apply(config, {"tau": 0.02, "optimizer": "adam", "components": 9})
    assert trial.stages[0].params == {"tau": 0.02, "components": 9, "mixing_lr": 0.001}
    assert trial.stages[0].train == {"epochs": 1, "optimizer": "adam"}
    assert config.stages[0].params == {}                         # the base config is untouched
    assert "tau=0.0001..0.1:log" in space.describe() and "mixing_lr:=0.001" in space.describe()


def test_pipeline_space_names_stages():
    config = _config("magnitude", "kmeans")
    space = build_space(config, ["kmeans.bits_fc=3..5", "2.lr=1e-3..1e-2:log"], ["magnitude.iterations=2"])
    names = [d.name for d in space.dims]
    assert "magnitude.q_fc" in names and "kmeans.bits_fc" in names and "lr" in names and "kmeans.lr" in names
    trial = space.apply(config, {"kmeans.bits_fc": 4, "lr": 0.05, "kmeans.lr": 0.002})
    assert trial.stages[0].params == {"iterations": 2} and trial.stages[0].train["lr"] == 0.05
    assert trial.stages[1].params == {"bits_fc": 4} and trial.stages[1].train["lr"] == 0.002


@pytest.mark.parametrize("entry, words", [
    ("tau=1e-1..1e-4:log", "empty"),
    ("tau=0..1e-2:log", "log range must start above 0"),
    ("pi_zero=0.5..2", "leaves the declared range"),
    ("tau=abc..1", "cannot read"),
    ("tau=1e-3", "expected LOW..HIGH"),
    ("tau=1e-3..1e-2:cubic", "unknown option"),
    ("pi_zero=0.9..0.99:step=0.5", "step"),
    ("optimizer=adam|rmsprop", "not one of"),
    ("q_layers=1..2", "unknown parameter"),
    ("nope=1..2", "unknown parameter"),
    ("prior_scaling=summed", "at least two choices"),
])
def test_bad_space_entries_one_line(entry, words):
    with pytest.raises(ParamError) as err:
        parse_dim(_config("sws"), entry)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith("--space ")


def test_bad_space_through_the_cli(capsys, tmp_path):
    rc, out, err = cli([*QUICK, "--trials", "1", "--out", str(tmp_path), "--space", "q_fc=3..1"], capsys)
    assert rc == 2 and err.strip().splitlines() == ["error: --space q_fc: the range 3..1 is empty (LOW must be "
                                                   "below HIGH)"]
    assert not any(tmp_path.iterdir())                           # nothing written
    rc, _, err = cli([*QUICK, "--trials", "1", "--out", str(tmp_path), "--fix", "q_fc=99"], capsys)
    assert rc == 2 and err.strip() == "error: --fix q_fc: 99 is above the maximum 20"


# --- objectives --------------------------------------------------------------------------------------

def _fake(n, acc, ratio, state="complete", ref=0.98):
    return TrialResult(n, {}, state, accuracy=acc, reference_accuracy=ref, storage_ratio=ratio)


def test_ratio_at_drop_picks_the_largest_ratio_within_the_drop():
    trials = [_fake(0, 0.978, 10.0), _fake(1, 0.976, 30.0), _fake(2, 0.970, 60.0),   # drops 0.2, 0.4, 1.0
              _fake(3, 0.9775, 25.0), _fake(4, 0.979, 90.0, state="pruned"), _fake(5, 0.98, None, "failed")]
    best = parse_objective("ratio-at-drop=0.5").best(trials)
    assert [t.number for t in best] == [1]
    assert [t.number for t in parse_objective("ratio-at-drop=1").best(trials)] == [2]
    assert parse_objective("ratio-at-drop=0.1").best(trials) == []
    assert [t.number for t in parse_objective("accuracy-at-ratio=20").best(trials)] == [3]
    # the constraint told to Optuna: drop - bound, <= 0 when feasible
    assert parse_objective("ratio-at-drop=0.5").constraint(trials[2]) == pytest.approx(0.5)


def test_accuracy_ratio_gives_the_pareto_front():
    trials = [_fake(0, 0.97, 10.0), _fake(1, 0.95, 40.0), _fake(2, 0.96, 9.0), _fake(3, 0.90, 40.0),
              _fake(4, 0.98, 5.0)]
    assert [t.number for t in parse_objective("accuracy-ratio").best(trials)] == [4, 0, 1]


@pytest.mark.parametrize("text", ["ratio", "ratio-at-drop", "ratio-at-drop=-1", "accuracy-at-ratio=0.5",
                                  "ratio-at-drop=x"])
def test_bad_objective_one_line(text):
    with pytest.raises(ParamError) as err:
        parse_objective(text)
    assert "\n" not in str(err.value) and "--objective" in str(err.value)


# --- studies -----------------------------------------------------------------------------------------

def test_study_writes_run_files_and_journal_then_resumes(capsys, tmp_path):
    out = tmp_path / "study"
    rc, lines, _ = cli([*QUICK, "--trials", "3", "--out", str(out), "--json"], capsys)
    assert rc == 0
    first = json.loads(lines[-1])
    assert [ln.split()[:2] for ln in lines[:-1]] == [["trial", "0"], ["trial", "1"], ["trial", "2"]]
    runs = sorted(out.glob("*.h5"))
    assert len(runs) == 3 and (out / "mlp_tiny-magnitude-tiny.journal").is_file()
    assert {read_run(p).status for p in runs} == {"completed"}
    assert first["study"] == "mlp_tiny-magnitude-tiny" and first["trials"] == 3 and first["ran"] == 3
    assert first["complete"] == 3 and first["objective"] == "accuracy-ratio" and first["best"]
    for best in first["best"]:                      # the Pareto front, each with its run file
        assert set(best) >= {"number", "params", "accuracy", "storage_ratio", "run", "state"}
        assert read_run(best["run"]).summary["storage_ratio"] == pytest.approx(best["storage_ratio"])
        assert set(best["params"]) == {"q_fc", "q_conv", "iterations", "prune_span", "lr"}
    # each trial line names its run file, and the file holds the trial's values
    line = next(ln for ln in lines if ln.startswith("trial 1 "))
    path = line.split()[-1]
    config = read_run(path).config
    assert config["stages"][0]["params"]["iterations"] == int(line.split("iterations=")[1].split()[0])

    rc, lines, _ = cli([*QUICK, "--trials", "5", "--out", str(out), "--json"], capsys)
    again = json.loads(lines[-1])
    assert rc == 0 and again["trials"] == 5 and again["ran"] == 2
    assert [ln.split()[:2] for ln in lines[:-1]] == [["trial", "3"], ["trial", "4"]]
    assert len(list(out.glob("*.h5"))) == 5
    # a resume asking for another objective is refused, with nothing run
    rc, _, err = cli([*QUICK, "--trials", "6", "--out", str(out), "--objective", "ratio-at-drop=1"], capsys)
    assert rc == 2 and "made with objective accuracy-ratio, not ratio-at-drop=1" in err
    assert len(list(out.glob("*.h5"))) == 5


class PruneTrialOne(optuna.pruners.BasePruner):
    """A fake pruner policy: trial 1 is hopeless after its first epoch, every other trial is fine."""

    def prune(self, study, trial) -> bool:
        return trial.number == 1 and bool(trial.intermediate_values)


def test_pruned_trial_ends_cancelled_with_its_file(tmp_path):
    config = _config("magnitude")
    seen = []
    tuner = Tuner(config, build_space(config, ["q_fc=0.5..2"], defaults=False), 3, parse_objective("ratio-at-drop=90"),
                  tmp_path, pruner=PruneTrialOne())
    study = tuner.run(progress=lambda r: seen.append([t.number for t in tuner.results()]))
    states = {t.number: t.state for t in study.trials}
    assert states == {0: "complete", 1: "pruned", 2: "complete"}
    pruned = study.trials[1]
    assert read_run(pruned.run).status == "cancelled" and pruned.error == "pruned after epoch 1"
    assert seen[0] == [0] and seen[-1] == [0, 1, 2]                   # readable while it ran
    frozen = optuna.load_study(study_name=tuner.name, storage=open_storage(tuner.storage_path)).trials
    assert [f.state.name for f in frozen] == ["COMPLETE", "PRUNED", "COMPLETE"]
    assert frozen[1].intermediate_values == {1: pytest.approx(frozen[1].intermediate_values[1])}


def test_cancel_mid_trial_keeps_its_file_and_does_not_count(tmp_path):
    config, token = _config("magnitude"), CancelToken()
    space = build_space(config, ["q_fc=0.5..2"], defaults=False)

    def events(number, event):
        if isinstance(event, Evaluated) and event.label == "epoch":
            token.cancel()                                             # the app's Stop, mid-trial

    study = tune(config, space, 3, parse_objective("ratio-at-drop=90"), tmp_path, cancel=token, events=events)
    assert study.ran == 1 and [t.state for t in study.trials] == ["failed"]
    assert read_run(study.trials[0].run).status == "cancelled"
    again = tune(config, space, 2, parse_objective("ratio-at-drop=90"), tmp_path)
    assert again.ran == 2 and [t.state for t in again.trials] == ["failed", "complete", "complete"]


def test_a_trial_left_running_by_a_crash_is_marked_interrupted(tmp_path):
    config = _config("magnitude")
    space = build_space(config, ["q_fc=0.5..2"], defaults=False)
    tuner = Tuner(config, space, 1, parse_objective("accuracy-ratio"), tmp_path)
    study = optuna.create_study(storage=open_storage(tuner.storage_path), study_name=tuner.name,
                                directions=["maximize", "maximize"])
    study.set_user_attr("objective", "accuracy-ratio")
    study.set_user_attr("space", space.describe())
    study.ask(space.distributions())                                  # asked, never told: the driver died
    result = tuner.run()
    assert [(t.number, t.state, t.error) for t in result.trials] == [(0, "failed", "interrupted"), (1, "complete", "")]
    assert result.ran == 1


def test_one_driver_per_study(tmp_path):
    config = _config("magnitude")
    tuner = Tuner(config, build_space(config), 1, parse_objective("accuracy-ratio"), tmp_path)
    with _driver_lock(tmp_path / f"{tuner.name}.lock", tuner.name):
        with pytest.raises(WorkbenchError, match="being run by another `workbench tune`"):
            tuner.run()


def test_pruning_refused_for_two_objectives(tmp_path):
    config = _config("magnitude")
    with pytest.raises(WorkbenchError, match="pruning needs a single objective"):
        Tuner(config, build_space(config), 1, parse_objective("accuracy-ratio"), tmp_path, pruner=PruneTrialOne())


def test_a_trial_cancelled_before_its_run_started_is_interrupted_not_finished():
    # the run loop reports a cancel that lands before the run starts as failed, "cancelled before the
    # run started": counted as finished, a resumed study ran one trial too few
    from workbench.engine.tune import was_interrupted
    from workbench.engine.tune_objective import TrialResult

    assert was_interrupted(TrialResult(3, {}, "failed", error="cancelled before the run started"))
    assert was_interrupted(TrialResult(3, {}, "failed", error="interrupted"))
    assert was_interrupted(TrialResult(3, {}, "failed", error="", run_status="cancelled"))
    assert not was_interrupted(TrialResult(3, {}, "failed", error="disk full", run_status="failed"))
    assert not was_interrupted(TrialResult(3, {}, "pruned", error="pruned after epoch 1", run_status="cancelled"))


def test_a_study_from_a_preset_tries_the_preset_first(capsys, tmp_path):
    """--preset: every trial starts from the preset's settings, and trial 0 is the preset as it ships."""
    from workbench.core.presets import get_preset

    preset = get_preset("hashed-lenet300")
    out = tmp_path / "study"
    rc, lines, _ = cli(["--preset", "hashed-lenet300", "--model", "mlp_tiny", "--dataset", "tiny", "--epochs", "1",
                        "--device", "cpu", "--pretrain-epochs", "2", "--train-subset", "256", "--trials", "2",
                        "--out", str(out), "--json"], capsys)
    assert rc == 0
    assert json.loads(lines[-1])["trials"] == 2
    first = read_run(next(out.glob("*-trial-0000.h5"))).config
    stage = first["stages"][0]
    assert stage["params"]["ratio"] == preset["params"]["ratio"]
    assert stage["train"]["lr"] == preset["train"]["lr"]
    second = read_run(next(out.glob("*-trial-0001.h5"))).config["stages"][0]
    assert second["params"]["ratio"] != preset["params"]["ratio"]       # then the sampler's own proposals
    assert second["train"]["lr_schedule"] == preset["train"]["lr_schedule"] == "onecycle"   # the preset's base


def test_a_preset_for_another_method_is_refused(capsys, tmp_path):
    rc, _, err = cli(["--preset", "hashed-lenet300", "--method", "magnitude", "--model", "mlp_tiny",
                      "--trials", "1", "--out", str(tmp_path)], capsys)
    assert rc == 2 and "preset hashed-lenet300 is for hashed, not magnitude" in err
    assert not list(tmp_path.glob("*.h5"))
