"""The real sets where this machine has them; skipped otherwise."""

from pathlib import Path

import pytest
import torch

from workbench.data import find_dataset, load_dataset

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_real_mnist(mnist_dir):
    ds = load_dataset("mnist", mnist_dir.parent)
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.test_x.shape == (10000, 1, 28, 28)
    assert torch.bincount(ds.train_y).tolist() == MNIST_TRAIN_COUNTS
    assert abs(ds.train_x.mean().item()) < 1e-3 and abs(ds.train_x.std().item() - 1) < 1e-3
    assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10


def test_real_fashion_mnist():
    root = Path("/usr/share/datasets")
    if find_dataset("fashion-mnist", root) is None:
        pytest.skip("Fashion-MNIST not installed in /usr/share/datasets")
    ds = load_dataset("fashion-mnist", root)
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.test_x.shape == (10000, 1, 28, 28)
    assert torch.bincount(ds.train_y).tolist() == [6000] * 10
    assert abs(ds.train_x.mean().item()) < 2e-3 and abs(ds.train_x.std().item() - 1) < 2e-3
