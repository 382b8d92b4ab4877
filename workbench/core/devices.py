"""Device choice: `auto` is CUDA when present, else Apple's MPS, else the CPU."""

from __future__ import annotations

import torch

from workbench.core.config import RunSettings
from workbench.core.errors import WorkbenchError

CHOICES = RunSettings.DEVICES


def pick_device(name: str = "auto") -> torch.device:
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise WorkbenchError("CUDA was asked for but this machine has no usable CUDA device "
                                 "(use --device auto or cpu)")
        return torch.device(name)
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise WorkbenchError("MPS was asked for but is not available here")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise WorkbenchError(f"unknown device {name!r}; choose one of {', '.join(CHOICES)}")


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)
