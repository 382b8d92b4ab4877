"""Fit a foreign state_dict to a zoo architecture, or explain in one line why none fits."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from workbench.core.errors import CheckpointError, WorkbenchError
from workbench.models.layers import compressible_layers
from workbench.models.zoo import build_model, default_input_shape, model_keys

# Prefixes added by wrappers: nn.DataParallel/DistributedDataParallel and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Input shapes tried when the caller gives none: the model's default plus the common data sets.
_COMMON_SHAPES = [(1, 28, 28), (3, 32, 32)]


def is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def strip_prefixes(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix):]: v for k, v in sd.items()}
                changed = True
    return sd


@dataclass
class _Fit:
    key: str
    input_shape: tuple
    num_classes: int
    missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple, tuple]]  # (name, shape in file, shape in model)

    @property
    def problems(self) -> int:
        return len(self.missing) + len(self.unexpected) + len(self.mismatched)


def _listing(names: list[str], limit: int = 3) -> str:
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def describe_mismatch(fit: _Fit) -> str:
    parts = []
    if fit.unexpected:
        parts.append("unexpected keys: " + _listing(fit.unexpected))
    if fit.missing:
        parts.append("missing: " + _listing(fit.missing))
    if fit.mismatched:
        shown = [f"{n} {tuple(a)} vs {tuple(b)}" for n, a, b in fit.mismatched]
        parts.append("shape mismatch " + _listing(shown, 2))
    return "; ".join(parts)


def _head_rows(key: str, sd: dict[str, torch.Tensor]) -> int | None:
    """Number of classes = output rows of the model's last Linear/Conv layer, as stored in the file."""
    with torch.device("meta"):
        probe = build_model(key, default_input_shape(key), 10)
    last = compressible_layers(probe)[-1][0] + ".weight"
    w = sd.get(last)
    return int(w.shape[0]) if isinstance(w, torch.Tensor) and w.dim() >= 1 and w.shape[0] > 0 else None


def _fit(key: str, shape: tuple, num_classes: int, sd: dict[str, torch.Tensor]) -> _Fit | None:
    try:
        with torch.device("meta"):  # no memory, no init cost: only names and shapes are compared
            expected = build_model(key, shape, num_classes).state_dict()
    except WorkbenchError:
        return None
    # Old checkpoints lack BatchNorm's step counter; it does not affect inference.
    missing = [k for k in expected if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in expected]
    mismatched = [(k, tuple(sd[k].shape), tuple(v.shape)) for k, v in expected.items()
                  if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    return _Fit(key, tuple(shape), num_classes, missing, unexpected, mismatched)


def match_zoo(sd: dict[str, torch.Tensor], name: str, *, model_key=None, input_shape=None,
              num_classes=None) -> _Fit:
    """The single zoo architecture whose keys and shapes equal the file's, else CheckpointError."""
    keys = [model_key] if model_key is not None else model_keys()
    fits: list[_Fit] = []
    closest: _Fit | None = None
    for key in keys:
        classes = num_classes if num_classes is not None else (_head_rows(key, sd) or 10)
        if input_shape is not None:
            shapes = [tuple(input_shape)]
        else:
            shapes = list(dict.fromkeys([default_input_shape(key), *_COMMON_SHAPES]))
        for shape in shapes:
            fit = _fit(key, shape, classes, sd)
            if fit is None:
                continue
            if fit.problems == 0:
                fits.append(fit)
                break
            if closest is None or fit.problems < closest.problems:
                closest = fit
    if len(fits) == 1:
        return fits[0]
    if len(fits) > 1:
        which = ", ".join(f.key for f in fits)
        raise CheckpointError(f"{name} fits several architectures ({which}); choose one with the model option")
    if closest is None:
        raise CheckpointError(f"{name} does not fit {', '.join(keys)} with input shape {input_shape}")
    target = f"the {model_key} architecture" if model_key else f"any workbench architecture ({', '.join(keys)})"
    raise CheckpointError(f"{name} does not fit {target}; closest is {closest.key} "
                          f"{closest.input_shape}: {describe_mismatch(closest)}")


def load_into_zoo(sd: dict[str, torch.Tensor], fit: _Fit, name: str) -> nn.Module:
    model = build_model(fit.key, fit.input_shape, fit.num_classes)
    own = model.state_dict()
    sd = {**{k: v for k, v in own.items() if k.endswith("num_batches_tracked")}, **sd}
    try:
        model.load_state_dict(sd, strict=True)
    except (RuntimeError, TypeError) as exc:  # e.g. a dtype that cannot be copied into float weights
        first = str(exc).strip().splitlines()[-1][:200]
        raise CheckpointError(f"{name}: weights do not load into {fit.key}: {first}") from None
    return model.eval()
