"""Device choice: `auto` is CUDA when present, else Apple's MPS, else the CPU."""

from __future__ import annotations

import torch

from workbench.core.config import RunSettings
from workbench.core.errors import WorkbenchError

CHOICES = RunSettings.DEVICES


def unavailable(name: str) -> str:
    """Why a device choice cannot run here ('' when it can): the app greys such choices out."""
    if name.startswith("cuda") and not torch.cuda.is_available():
        return "no usable CUDA device on this machine"
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            return "Apple's MPS is not available on this machine"
    return ""


def pick_device(name: str = "auto") -> torch.device:
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if unavailable(name):
        raise WorkbenchError(f"device {name}: {unavailable(name)}; choose auto or cpu")
    if name.startswith("cuda") or name == "mps":
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise WorkbenchError(f"unknown device {name!r}; choose one of {', '.join(CHOICES)}")


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)
