"""A run keeps its name in the legends from its first live point to its file: one function names it from
its config and file path, for the live trace and for the trace read back from the finished file."""

import json
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from workbench.core.config import RunConfig, StageConfig  # noqa: E402
from workbench.core.events import Evaluated, RunStarted  # noqa: E402
from workbench.core.store import read_run  # noqa: E402
from workbench.engine.runner import execute  # noqa: E402
from workbench.gui.run_trace import RunTrace, run_label  # noqa: E402


def tiny_config(out, **kw):
    return RunConfig(dataset="tiny", model="mlp_tiny", out_dir=str(out), device="cpu", pretrain_epochs=1,
                     stages=[StageConfig("magnitude", {}, {"epochs": 1})], **kw)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")       # one pretrained reference for this module's runs


@pytest.fixture
def cache(cache_dir, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(cache_dir))


def test_live_label_is_the_finished_files_label(tmp_path, cache):
    config = tiny_config(tmp_path / "runs")
    live = None
    for ev in execute(config):
        if isinstance(ev, RunStarted):
            # what the window holds when the run starts: the queue's config and the event's path
            live = run_label(json.loads(config.to_json()), ev.run_path)
            started = RunTrace.started(ev)
        elif isinstance(ev, Evaluated):
            started.add_point(ev)
    assert ev.status == "completed", ev.error
    finished = RunTrace.from_run(read_run(ev.run_path))
    assert live == started.label == finished.label
    assert live.startswith("magnitude mlp_tiny tiny s0 ")          # what ran, on what, with which seed
    for field in ("method", "model", "dataset", "points", "hist_edges"):
        a, b = getattr(started, field), getattr(finished, field)
        assert (a.keys() == b.keys()) if field == "hist_edges" else a == b, field


def test_repeated_runs_get_different_labels(tmp_path, cache):
    """Same method, model, data and seed (a sweep over a knob): the legend must still tell them apart."""
    labels = []
    for name in (None, None, "mine", "mine"):
        fin = list(execute(tiny_config(tmp_path / "runs", name=name)))[-1]
        labels.append(RunTrace.from_run(read_run(fin.run_path)).label)
    assert len(set(labels)) == 4, labels
    assert labels[2:] == ["mine", "mine-2"]                         # a chosen name, as its file has it


def test_label_of_configs_without_a_zoo_model():
    stages = [{"method": "magnitude"}, {"method": "kmeans"}]
    assert run_label({"dataset": "mnist", "checkpoint": "/ck/lenet-ref.pt", "seed": 3, "stages": stages},
                     "/runs/20240102-030405-model-magnitude+kmeans-s3.h5") == \
        "magnitude+kmeans lenet-ref mnist s3 03:04:05"
    assert run_label({}, "/runs/old-file.h5") == "old-file"                 # a file without a config
    assert run_label({"dataset": "tiny", "model": "/m/net.pt2", "seed": 0, "stages": stages},
                     "/runs/20240102-030405-net.pt2-magnitude+kmeans-s0-3.h5") == \
        "magnitude+kmeans net.pt2 tiny s0 03:04:05 #3"
