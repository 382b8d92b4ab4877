"""A stage whose test accuracy sits at chance gets one clear message, with the method's hint."""

from __future__ import annotations

from pathlib import Path

import core_helpers as H

from workbench.core.events import Message
from workbench.core.store import read_run
from workbench.data import load_dataset
from workbench.engine import runner
from workbench.engine.compare import compare_rows, format_table
from workbench.methods.hashing.funhash import FunctionalHashing
from workbench.methods.plain import PlainTraining


def test_notice_only_at_chance_after_a_good_start():
    plain = PlainTraining()
    assert runner.stall_notice(0.95, 0.98, 10, plain, 0, 3) is None
    assert runner.stall_notice(0.11, 0.12, 10, plain, 0, 3) is None      # never better than chance
    text = runner.stall_notice(0.113, 0.98, 10, plain, 1, 2)
    assert "stage 2 (plain)" in text and "11.3%" in text and "epoch 2" in text and "10%" in text
    assert "lower learning rate" in text and "\n" not in text


def test_funhash_hint_names_the_shared_g_when_it_applies():
    shared = FunctionalHashing.from_values({"space": "shared", "shared_g": True})
    assert "Share g" in shared.stall_hint()
    for values in ({"space": "per_layer"}, {"space": "shared", "shared_g": False},
                   {"space": "shared", "g_widths": "none"}):
        assert "Share g" not in FunctionalHashing.from_values(values).stall_hint()


def test_runner_warns_once_when_accuracy_drops_to_chance(tmp_path, monkeypatch):
    real = runner.evaluate
    calls = []
    chance = 1.0 / load_dataset("tiny").num_classes

    def at_chance_after_the_reference(model, x, y):
        acc, loss = real(model, x, y)
        calls.append(acc)
        return (acc, loss) if len(calls) == 1 else (chance, 2.3)

    monkeypatch.setattr(runner, "evaluate", at_chance_after_the_reference)
    events = H.run_events(H.make_config("plain", tmp_path / "stall", epochs=3, pretrain_epochs=3))
    notes = [e.text for e in events if isinstance(e, Message) and "training has stalled" in e.text]
    assert calls[0] >= 3 * chance and len(calls) >= 4
    assert len(notes) == 1 and notes[0].startswith("stage 1 (plain): test accuracy")
    fin = H.finished(events)
    assert fin.status == "completed"
    assert read_run(fin.run_path).attrs["warnings"] == notes[0]          # kept with the run
    [row] = compare_rows([fin.run_path])
    assert row["warnings"] == notes[0] and f"{Path(fin.run_path).stem}: {notes[0]}" in format_table([row])


def test_no_notice_on_a_normal_run(tmp_path):
    events = H.run_events(H.make_config("plain", tmp_path / "ok", epochs=2))
    assert not [e for e in events if isinstance(e, Message) and "stalled" in e.text]
    assert "warnings" not in read_run(H.finished(events).run_path).attrs
