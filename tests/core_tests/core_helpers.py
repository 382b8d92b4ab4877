"""Helpers shared by the core tests (imported as a plain module: this folder has no __init__.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from workbench.core.config import RunConfig, StageConfig
from workbench.core.events import Evaluated, Finished
from workbench.engine.runner import execute
from workbench.methods.base import RunContext

# Settings that make each pruning method prune something within 2 epochs on `tiny`.
AGGRESSIVE = {
    "magnitude": {"q_fc": 1.5, "q_conv": 1.5},
    # c = 0: thr = mean|w|, so roughly half of each layer is below a_k = 0.9 thr. gamma = 0 makes the
    # mask-update probability exactly 1, so the last step's update decides the final mask.
    "dns": {"c_rate": 0.0, "gamma": 0.0},
}
PRUNING = ("magnitude", "dns")
STEPS_PER_EPOCH = 4          # tiny: 512 training samples / batch size 128


def make_config(method: str, out_dir, *, model: str = "mlp_tiny", params: dict | None = None,
                epochs: int = 2, pretrain_epochs: int = 3, train: dict | None = None, **kw) -> RunConfig:
    p = dict(AGGRESSIVE.get(method, {}) if params is None else params)
    t = {"epochs": epochs, **(train or {})}
    return RunConfig(dataset="tiny", stages=[StageConfig(method, p, t)], model=model,
                     out_dir=str(out_dir), device="cpu", pretrain_epochs=pretrain_epochs, **kw)


def run_events(config: RunConfig, cancel=None) -> list:
    return list(execute(config, cancel))


def evaluated(events) -> list[Evaluated]:
    return [e for e in events if isinstance(e, Evaluated)]


def finished(events) -> Finished:
    assert isinstance(events[-1], Finished)
    return events[-1]


def tiny_test_set():
    from workbench.data import load_dataset

    d = load_dataset("tiny")
    return d.test_x, d.test_y


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model.eval()(x).argmax(1) == y).float().mean())


def cli_env(cache: Path) -> dict:
    env = dict(os.environ)
    env["WORKBENCH_CACHE"] = str(cache)
    env.pop("WORKBENCH_DATA", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def cli_cmd(*args: str) -> list[str]:
    """The real command line, run by this interpreter (`python -m workbench` = the console script)."""
    return [sys.executable, "-m", "workbench", *args]


def run_cli(args, cache: Path, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cli_cmd(*args), env=cli_env(cache), capture_output=True, text=True,
                          timeout=timeout, **kw)


class OneLayer(nn.Module):
    """One Linear layer holding exactly the given weight (and bias): hand-made tensors for hook tests."""

    def __init__(self, weight, bias=None):
        super().__init__()
        w = torch.as_tensor(weight, dtype=torch.float32)
        self.fc = nn.Linear(w.shape[1], w.shape[0], bias=bias is not None)
        with torch.no_grad():
            self.fc.weight.copy_(w)
            if bias is not None:
                self.fc.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))

    def forward(self, x):
        return self.fc(x)


def run_context(*, steps_per_epoch=10, total_steps=100, num_train=100, step=0, seed=0,
                epochs: int | None = None) -> RunContext:
    """A CPU RunContext for calling a method's hooks directly; `epochs`, when given, makes the stage
    that many epochs long (total_steps = epochs x steps_per_epoch)."""
    if epochs is not None:
        total_steps = epochs * steps_per_epoch
    return RunContext(device=torch.device("cpu"), steps_per_epoch=steps_per_epoch, total_steps=total_steps,
                      num_train=num_train, step=step, generator=torch.Generator().manual_seed(seed))


def assert_stored_and_dense_match(run_path, model, x, out_dir, atol: float) -> None:
    """The run file's /model, rebuilt the way export rebuilds it (structure replayed), gives exactly the
    model's outputs; the dense export loads into the plain zoo architecture (stock PyTorch) and gives them
    to `atol` (factors or hashed weights multiplied out)."""
    import numpy as np
    from safetensors.torch import load_file

    from workbench.core.store import read_model
    from workbench.engine.export import export_run
    from workbench.models import structure, zoo

    state, attrs = read_model(run_path)
    shape, classes = tuple(int(v) for v in attrs["input_shape"]), int(attrs["num_classes"])
    stored = structure.apply_structure(zoo.build_model(attrs["model_key"], shape, classes), attrs["structure"])
    stored.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    with torch.no_grad():
        assert torch.equal(model(x), stored.eval()(x))
    path = Path(out_dir) / "dense.safetensors"
    export_run(run_path, "dense", path)
    dense = zoo.build_model(attrs["model_key"], shape, classes).eval()
    dense.load_state_dict(load_file(str(path)))
    with torch.no_grad():
        assert torch.allclose(dense(x), model(x), atol=atol)
