"""A cached reference is what its seed gives, whoever pretrains it: the cache key names the seed, so the
initial weights must not depend on where the caller left torch's global generator (test_int8 pretrained
mlp_tiny unseeded and test_repeats then found a seed-0 reference that seed 0 does not give)."""

from __future__ import annotations

import core_helpers as H
import torch

from workbench.core.events import CancelToken
from workbench.data import load_dataset
from workbench.engine.reference import resolve_model


def _pretrained(seed: int, cache, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(cache))
    config = H.make_config("plain", "unused", model="mlp_tiny", seed=seed)
    gen = resolve_model(config, load_dataset("tiny"), torch.device("cpu"), CancelToken())
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return {k: v.clone() for k, v in stop.value[0].state_dict().items()}


def test_the_reference_does_not_depend_on_the_global_generator(tmp_path, monkeypatch):
    torch.manual_seed(123)
    a = _pretrained(0, tmp_path / "a", monkeypatch)
    torch.manual_seed(999)
    torch.rand(17)
    b = _pretrained(0, tmp_path / "b", monkeypatch)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    c = _pretrained(1, tmp_path / "c", monkeypatch)                  # another seed: another reference
    assert not all(torch.equal(a[k], c[k]) for k in a)
