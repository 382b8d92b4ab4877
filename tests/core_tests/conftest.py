"""Core tests: every run uses a throwaway reference-model cache and writes under tmp paths."""

from __future__ import annotations

import core_helpers as H
import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Two cores, often shared: one intra-op thread is much faster for these tiny models."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory):
    """One reference cache for the whole session (pretraining is shared, nothing leaks outside tmp)."""
    return tmp_path_factory.mktemp("wb-cache")


@pytest.fixture(autouse=True)
def isolated_cache(cache_root, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(cache_root))
    monkeypatch.delenv("WORKBENCH_DATA", raising=False)
    return cache_root


def _session_run(tmp_path_factory, cache_root, method, model, name):
    out = tmp_path_factory.mktemp(f"run-{name}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_CACHE", str(cache_root))
        events = H.run_events(H.make_config(method, out, model=model, name=name))
    fin = H.finished(events)
    assert fin.status == "completed", fin.error
    return events


@pytest.fixture(scope="session")
def dns_run(tmp_path_factory, cache_root):
    """A finished DNS run on mlp_tiny: (events, path)."""
    events = _session_run(tmp_path_factory, cache_root, "dns", "mlp_tiny", "dns-mlp")
    return events, events[-1].run_path


@pytest.fixture(scope="session")
def magnitude_run(tmp_path_factory, cache_root):
    """A finished magnitude-pruning run on cnn_tiny: (events, path)."""
    events = _session_run(tmp_path_factory, cache_root, "magnitude", "cnn_tiny", "mag-cnn")
    return events, events[-1].run_path
