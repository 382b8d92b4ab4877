"""A stage whose finishing step (a snap to shared values, baked masks, cut ranks) costs much test accuracy
gets one clear warning, kept with the run, with the method's hint."""

from __future__ import annotations

import core_helpers as H
import torch

from workbench.core.events import Message
from workbench.core.store import read_run
from workbench.engine import runner
from workbench.methods.plain import PlainTraining
from workbench.methods.sws import SoftWeightSharing


def test_notice_only_past_the_bound_with_the_method_hint():
    plain = PlainTraining()
    assert runner.finalize_notice(0.90, 0.89, plain, 0) is None                 # 1 point: not worth a word
    assert runner.finalize_notice(0.90, 0.91, plain, 0) is None
    text = runner.finalize_notice(0.9085, 0.6293, SoftWeightSharing.from_values({"snap_budget": 1.0}), 1)
    assert text.startswith("stage 2 (sws): finishing the stage cost 27.9 points")
    assert "90.85%" in text and "62.93%" in text and "search tau and pi_0" in text and "\n" not in text
    assert "snap_budget (e.g. 1)" not in text                 # it is set already: not offered again
    assert "snap_budget (e.g. 1)" in SoftWeightSharing.from_values({"snap_budget": 0.0}).finalize_hint()
    assert "; " not in runner.finalize_notice(0.9, 0.5, plain, 0)                # no hint: no dangling clause


def test_runner_keeps_the_warning_when_finishing_wrecks_the_model(tmp_path, monkeypatch):
    def wreck(self, model, ctx):
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()

    monkeypatch.setattr(PlainTraining, "finalize", wreck)
    events = H.run_events(H.make_config("plain", tmp_path / "wreck", epochs=1, pretrain_epochs=3))
    notes = [e.text for e in events if isinstance(e, Message) and e.warning and "finishing the stage" in e.text]
    assert len(notes) == 1 and notes[0].startswith("stage 1 (plain): finishing the stage cost")
    fin = H.finished(events)
    assert fin.status == "completed"
    assert read_run(fin.run_path).attrs["warnings"] == notes[0]


def test_no_notice_when_finishing_costs_nothing(tmp_path):
    events = H.run_events(H.make_config("plain", tmp_path / "ok", epochs=1))
    assert not [e for e in events if isinstance(e, Message) and "finishing the stage" in e.text]


def test_an_earlier_stage_is_not_warned_about(tmp_path, monkeypatch):
    """Low rank's truncation ends its first stage and the second fine-tunes it back: no warning there."""
    calls = []

    def wreck_first(self, model, ctx):
        calls.append(ctx.stage)
        if ctx.stage == 0:
            with torch.no_grad():
                for p in model.parameters():
                    p.zero_()

    monkeypatch.setattr(PlainTraining, "finalize", wreck_first)
    config = H.make_config("plain", tmp_path / "two", epochs=1, pretrain_epochs=3)
    config.stages = [config.stages[0], config.stages[0]]
    events = H.run_events(config)
    assert calls == [0, 1]
    assert not [e for e in events if isinstance(e, Message) and "finishing the stage" in e.text]
