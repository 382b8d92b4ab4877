"""Shared fixtures: every test here runs with an empty cache, no system dirs and no network."""

import gzip
import os
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from workbench.data import download, locate

REPO = Path(__file__).resolve().parents[2]
# Read before any test clears the variable.
_MNIST_ROOTS = [p for p in (os.environ.get("WORKBENCH_DATA"), "/work/shared/datasets",
                            str(REPO.parent / "shared" / "datasets")) if p]


def _no_network(url, timeout=None):
    raise urllib.error.URLError("tests never touch the network")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setattr(locate, "cache_dir", lambda: cache)
    monkeypatch.setattr(locate, "SYSTEM_DIRS", [])
    monkeypatch.delenv(locate.ENV_VAR, raising=False)
    monkeypatch.setattr(download, "fetch", _no_network)
    return cache


@pytest.fixture
def mnist_dir():
    for root in _MNIST_ROOTS:
        found = locate.find_dataset("mnist", root)
        if found is not None:
            return found
    pytest.skip("real MNIST not available (set WORKBENCH_DATA)")


def idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.asarray(arr, dtype=np.uint8)
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_idx_set(folder: Path, n_train=30, n_test=12, side=5, gz=True, seed=0) -> dict:
    """Four small IDX files; returns the arrays written, keyed by base name."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.arange(n_test, dtype=np.uint8) % 10,
    }
    for base, arr in arrays.items():
        data = idx_bytes(arr)
        if gz:
            (folder / (base + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / base).write_bytes(data)
    return arrays


# Helpers reach the tests as fixtures, not imports: "conftest" is not a unique module name
# once other test folders have one too.
@pytest.fixture(name="idx_bytes")
def _idx_bytes_fixture():
    return idx_bytes


@pytest.fixture(name="write_idx_set")
def _write_idx_set_fixture():
    return write_idx_set
