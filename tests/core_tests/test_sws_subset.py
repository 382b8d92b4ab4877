"""A quick-look training subset keeps soft weight-sharing's prior at the whole training set's 1/N."""

from __future__ import annotations

import dataclasses

import core_helpers as H
import pytest
import torch

from workbench.core.events import Message
from workbench.data import load_dataset
from workbench.methods.sws import SoftWeightSharing


def test_a_subset_remembers_the_whole_training_split():
    d = load_dataset("tiny")
    whole = len(d.train_x)
    assert d.full_train == 0                                  # the whole split: nothing to remember
    sub = d.subset(whole // 4, None)
    assert (len(sub.train_x), sub.full_train) == (whole // 4, whole)
    assert sub.subset(whole // 8, None).full_train == whole   # a subset of a subset stands for the same set
    assert d.subset(0, None).full_train == 0                  # 0 is "all"
    assert d.subset(10 * whole, None).full_train == 0         # larger than the split: the split, whole
    assert d.subset(None, 16).full_train == 0                 # a test subset alone trains on everything


def _prepared(num_train, num_train_full, **values):
    logs = []
    ctx = H.run_context(num_train=num_train)
    ctx = dataclasses.replace(ctx, num_train_full=num_train_full, log=logs.append)
    net = torch.nn.Sequential(torch.nn.Linear(8, 4))
    method = SoftWeightSharing.from_values({"tau": 0.02, **values})
    method.prepare(net, ctx)
    return method, logs


def test_the_prior_is_scaled_by_the_whole_set_on_a_subset():
    method, logs = _prepared(600, 6000)
    assert method._scale == pytest.approx(0.02 / 6000)
    assert any("scaled by 1/6,000" in line and "600-sample subset" in line for line in logs)
    method, logs = _prepared(600, 0)
    assert method._scale == pytest.approx(0.02 / 600)
    assert not any("subset" in line for line in logs)
    method, _ = _prepared(600, 6000, prior_scaling="summed")
    assert method._scale == pytest.approx(0.02)                # summed: no N at all


def test_a_run_on_a_train_subset_tells_the_prior_the_whole_size(tmp_path):
    whole = len(load_dataset("tiny").train_x)
    config = H.make_config("sws", tmp_path, params={}, epochs=1, pretrain_epochs=1, train_subset=whole // 4)
    messages = [e.text for e in H.run_events(config) if isinstance(e, Message)]
    assert any(f"scaled by 1/{whole:,}" in m and f"{whole // 4:,}-sample subset" in m for m in messages), messages
