"""The corpus runs with a throwaway cache, no system data folders and no network; one finished run and a
few graph files are built once per session for the cases that damage or mimic them."""

from __future__ import annotations

import urllib.error

import pytest
import torch

from workbench.data import download, locate


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Two shared cores: one intra-op thread is faster for these tiny models."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("corpus")


def _no_network(url, timeout=None):
    raise urllib.error.URLError("the corpus never touches the network")


@pytest.fixture(autouse=True)
def isolated(session_dir, monkeypatch):
    """The reference cache and the data cache outside each case's folder (whose every file is compared
    before and after), no WORKBENCH_DATA, no /usr/share/datasets, no downloads."""
    monkeypatch.setenv("WORKBENCH_CACHE", str(session_dir / "cache"))
    monkeypatch.delenv(locate.ENV_VAR, raising=False)
    monkeypatch.setattr(locate, "cache_dir", lambda: session_dir / "data-cache")
    monkeypatch.setattr(locate, "SYSTEM_DIRS", [])
    monkeypatch.setattr(download, "fetch", _no_network)


@pytest.fixture(scope="session")
def finished_run(session_dir):
    """A completed magnitude run of mlp_tiny on `tiny` (one epoch): the run file export cases start from."""
    from corpus.builders import finished_run_file

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_CACHE", str(session_dir / "cache"))
        return finished_run_file(session_dir / "finished")


@pytest.fixture(scope="session")
def graphs(session_dir):
    """A small net as torch.export and ONNX files, clean and with NaN weights."""
    from corpus.builders import graph_files

    return graph_files(session_dir / "graphs")
