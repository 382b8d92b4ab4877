"""Cancellation and failures end the run normally: the file is closed, marked, and keeps what it has."""

from __future__ import annotations

import importlib.util
import math
import os
import threading
import time
from pathlib import Path

import core_helpers as H
import h5py
import numpy as np
import pytest
import torch

from workbench.core.errors import ParamError, WorkbenchError
from workbench.core.events import CancelToken, Evaluated, Progress
from workbench.core.store import read_model, read_run
from workbench.engine import training
from workbench.engine.compare import compare_rows
from workbench.engine.runner import execute
from workbench.methods.plain import PlainTraining

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _file_state(path):
    with h5py.File(path, "r") as f:
        return (f.attrs["status"], f.attrs["error"], {k: ds[()] for k, ds in f["metrics"].items()},
                dict(f["summary"].attrs), "model" in f)


def test_cancel_after_first_epoch_point(tmp_path):
    token = CancelToken()
    events = []
    for e in execute(H.make_config("dns", tmp_path, epochs=5), token):
        events.append(e)
        if isinstance(e, Evaluated) and e.label == "epoch":
            token.cancel()
    fin = H.finished(events)
    assert fin.status == "cancelled" and fin.summary == {}
    labels = [e.label for e in H.evaluated(events)]
    assert labels == ["reference", "epoch"]            # no more points, no "finalized"
    status, error, metrics, summary, has_model = _file_state(fin.run_path)
    assert status == "cancelled"
    assert summary == {} and not has_model
    assert metrics["test_accuracy"].shape == (2,)
    np.testing.assert_array_equal(metrics["step"], [0, 4])
    run = read_run(fin.run_path)                      # the package's reader agrees
    assert run.status == "cancelled"
    (row,) = compare_rows([fin.run_path])              # and a partial run still compares
    assert row["status"] == "cancelled" and math.isnan(row["param_ratio"])
    with pytest.raises(WorkbenchError, match="no final model"):
        read_model(fin.run_path)


def test_cancel_on_first_progress_event(tmp_path, monkeypatch):
    monkeypatch.setattr(training, "PROGRESS_SECONDS", 0.0)
    token = CancelToken()
    events = []
    for e in execute(H.make_config("magnitude", tmp_path, epochs=3), token):
        events.append(e)
        if isinstance(e, Progress) and e.stage == 0:     # stage -1 is the reference pretraining
            token.cancel()
    fin = H.finished(events)
    assert fin.status == "cancelled"
    # the token is checked before every batch: the cancel after step 1 stops the loop before step 2
    assert [e.step for e in events if isinstance(e, Progress) and e.stage == 0] == [1]
    assert [e.label for e in H.evaluated(events)] == ["reference"]
    status, _, metrics, _, has_model = _file_state(fin.run_path)
    assert status == "cancelled" and not has_model
    assert metrics["test_accuracy"].shape == (1,)


def test_cancel_during_pretraining(tmp_path, monkeypatch):
    monkeypatch.setattr(training, "PROGRESS_SECONDS", 0.0)
    token = CancelToken()
    events = []
    # a pretraining length no other test uses, so the reference is not cached yet
    for e in execute(H.make_config("plain", tmp_path, pretrain_epochs=4), token):
        events.append(e)
        if isinstance(e, Progress):
            token.cancel()
    fin = H.finished(events)
    assert fin.status == "cancelled"
    assert H.evaluated(events) == []
    # a half-trained model must not be cached as the reference for later runs
    from workbench.data import load_dataset
    from workbench.engine.reference import recipe, reference_path

    assert not reference_path("mlp_tiny", load_dataset("tiny"), recipe("mlp_tiny", epochs=4), 0).exists()
    assert _file_state(fin.run_path)[0] == "cancelled"


def test_consumer_closing_the_generator_marks_the_run_cancelled(tmp_path):
    gen = execute(H.make_config("plain", tmp_path, epochs=3))
    for e in gen:
        if isinstance(e, Evaluated) and e.label == "epoch":
            break
    gen.close()
    (run_file,) = tmp_path.glob("*.h5")
    status, error, metrics, _, _ = _file_state(run_file)
    assert status == "cancelled" and error == "interrupted"
    assert metrics["step"].shape == (2,)


def _poison_after_first_epoch(monkeypatch, exc=None):
    original = PlainTraining.after_step

    def after_step(self, model, ctx):
        original(self, model, ctx)
        if ctx.stage >= 0 and ctx.epoch >= 1:       # the compression stage, second epoch
            if exc is not None:
                raise exc
            with torch.no_grad():
                for p in model.parameters():
                    p.fill_(float("nan"))

    monkeypatch.setattr(PlainTraining, "after_step", after_step)


def test_nan_loss_fails_the_run_and_keeps_partial_metrics(tmp_path, monkeypatch):
    _poison_after_first_epoch(monkeypatch)
    events = H.run_events(H.make_config("plain", tmp_path, epochs=3))
    fin = H.finished(events)
    assert fin.status == "failed"
    assert "loss" in fin.error and "nan" in fin.error.lower()
    assert "\n" not in fin.error
    status, error, metrics, summary, has_model = _file_state(fin.run_path)
    assert status == "failed" and error == fin.error
    assert metrics["test_accuracy"].shape == (2,)      # reference + epoch 1 kept
    assert np.all(np.isfinite(metrics["test_accuracy"]))
    assert summary == {} and not has_model


def test_unexpected_exception_is_recorded_in_one_line(tmp_path, monkeypatch):
    _poison_after_first_epoch(monkeypatch, RuntimeError("boom\nsecond line"))
    fin = H.finished(H.run_events(H.make_config("plain", tmp_path, epochs=3)))
    assert fin.status == "failed" and fin.error == "RuntimeError: boom"
    status, error, metrics, _, _ = _file_state(fin.run_path)
    assert (status, error) == ("failed", "RuntimeError: boom")
    assert metrics["step"].shape == (2,)


def test_unknown_layer_names_are_refused_before_a_run_file_exists(tmp_path):
    # Completing the config builds the model and checks the layer names a knob gives (engine.configure).
    cfg = H.make_config("dns", tmp_path / "runs", params={"a_k": "fc9=0.1", "b_k": "fc9=0.2"})
    with pytest.raises(ParamError, match="fc9"):
        H.run_events(cfg)
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL needs POSIX")
def test_killed_runs_leave_every_printed_point_readable(tmp_path, cache_root):
    # DESIGN.md: a killed process leaves a readable file. The fast variant of
    # tests/benchmarks/failure_loops.py --kill: three CLI runs SIGKILLed at random moments after their first
    # epoch's point; each file opens, holds every point the run printed, and reads as interrupted (its
    # writer is gone).
    spec = importlib.util.spec_from_file_location("failure_loops", BENCHMARKS / "failure_loops.py")
    failure_loops = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(failure_loops)
    results = failure_loops.kill_loop(3, tmp_path, cache_root, seed=1, max_delay=1.0, log=lambda s: None)
    for i, r in enumerate(results):
        assert r["opened"] and r["intact"], r
        assert r["printed"] >= 2 and r["points"] >= r["printed"], r
        assert r["status"] == "interrupted", r
        (path,) = (tmp_path / f"kill-{i}").glob("*.h5")
        # a kill in the middle of writing the next image leaves at most that hidden partial copy
        assert set(r["leftovers"]) <= {f".{path.name}.part"}, r
        with h5py.File(path, "r") as f:                 # plain h5py, default locking
            assert f.attrs["status"] == "running"
            assert np.all(np.isfinite(f["metrics/test_accuracy"][()]))


class _Probe(PlainTraining):
    """Plain training that records when the run loop calls its hooks; its prepare can run long."""

    calls: list = []
    slow_prepare = False

    def prepare(self, model, ctx):
        self.calls.append(("prepare", ctx.stage))
        while self.slow_prepare:          # like fitting hash tables: long, but checks for a cancel
            ctx.check_cancelled()
            time.sleep(0.005)

    def on_epoch_start(self, model, ctx):
        self.calls.append(("start", ctx.epoch))

    def on_epoch_end(self, model, ctx):
        self.calls.append(("end", ctx.epoch, ctx.step))

    def epoch_stats(self, model):
        self.calls.append(("stats",))
        return {}

    def finalize(self, model, ctx):
        self.calls.append(("finalize",))


@pytest.fixture
def probe(monkeypatch):
    from workbench.engine import configure, runner
    from workbench.methods import get_method

    def lookup(key):
        return _Probe if key == "probe" else get_method(key)

    monkeypatch.setattr(runner, "get_method", lookup)
    monkeypatch.setattr(configure, "get_method", lookup)
    _Probe.calls, _Probe.slow_prepare = [], False
    return _Probe


def test_hooks_run_in_order_with_on_epoch_end_before_each_evaluation(tmp_path, probe):
    events = execute(H.make_config("probe", tmp_path, epochs=2, params={}))
    assert H.finished(list(events)).status == "completed"
    steps = H.STEPS_PER_EPOCH
    # The reference point is evaluated (stats) before prepare; each epoch ends before its point.
    assert probe.calls == [("stats",), ("prepare", 0), ("start", 0), ("end", 0, steps), ("stats",),
                           ("start", 1), ("end", 1, 2 * steps), ("stats",), ("finalize",), ("stats",)]


def test_a_long_hook_is_cancelled_midway(tmp_path, probe):
    probe.slow_prepare = True              # would never end by itself
    token = CancelToken()
    threading.Timer(0.3, token.cancel).start()
    t0 = time.perf_counter()
    fin = H.finished(list(execute(H.make_config("probe", tmp_path, epochs=2, params={}), token)))
    assert fin.status == "cancelled"
    assert time.perf_counter() - t0 < 30
    assert _file_state(fin.run_path)[0] == "cancelled"
    assert ("start", 0) not in probe.calls     # it stopped inside prepare
