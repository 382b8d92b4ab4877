"""A running trial's state line from its run events (gui/tune_live), as the Tune dialog's table shows it."""

from __future__ import annotations

import threading

from workbench.core.config import RunConfig, StageConfig
from workbench.core.events import Evaluated, Finished, Message, Progress, RunStarted
from workbench.gui.tune_live import LiveTrials


def _started(total_steps: int) -> RunStarted:
    config = RunConfig(dataset="tiny", model="mlp_tiny", stages=[StageConfig("magnitude", {}, {"epochs": 2}),
                                                                   StageConfig("kmeans", {}, {"epochs": 3})])
    return RunStarted("run.h5", {"config": config.to_json()}, "cpu", total_steps, [])


def test_pipeline_epochs_count_over_the_whole_run():
    live = LiveTrials()
    live.event(7, Message("pretraining mlp_tiny"))
    assert live.take() == {}                                  # nothing to show changed
    live.event(7, Progress(0, 0, 3, 10, 0.5, 0.01, 1.0, 2.0))   # before the run file: the reference's training
    assert live.take()[7].text() == "running, preparing the reference model"
    live.event(7, _started(total_steps=50))
    live.event(7, Evaluated(0, 0, 0, {"test_accuracy": 0.9, "storage_ratio": 1.0}, label="reference"))
    state = live.take()[7]
    assert state.text() == "running, 0% done" and state.accuracy is None   # the reference is not the trial's
    assert state.run == "run.h5"
    live.event(7, Evaluated(0, 2, 20, {"test_accuracy": 0.8, "storage_ratio": 5.0}))
    live.event(7, Progress(1, 1, 35, 50, 0.4, 0.01, 3.0, 1.0))     # stage 2, its second epoch under way
    state = live.take()[7]
    assert state.text() == "running, epoch 4/5, 70% done"
    assert (state.accuracy, state.storage_ratio) == (0.8, 5.0)
    assert live.take() == {}                                  # taken: only changes come back
    live.event(7, Finished("run.h5", "completed", {}))
    assert live.take() == {}
    live.forget(7)
    live.event(8, _started(10))
    assert list(live.take()) == [8]


def test_events_from_another_thread_are_seen_whole():
    live = LiveTrials()
    started = _started(1000)

    def trial(number: int) -> None:
        live.event(number, started)
        for step in range(1, 1001):
            live.event(number, Progress(0, step * 2 // 1001, step, 1000, 0.1, 0.01, 0.0, 0.0))

    threads = [threading.Thread(target=trial, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    taken = {}
    while any(t.is_alive() for t in threads):
        taken.update(live.take())
    for t in threads:
        t.join()
    taken.update(live.take())
    assert sorted(taken) == [0, 1, 2, 3]
    assert all(s.step == 1000 and s.text() == "running, epoch 2/5, 100% done" for s in taken.values())
