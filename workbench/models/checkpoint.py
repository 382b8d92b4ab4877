"""Reference checkpoints written by `workbench train`, and loading user model files safely.

Safety rule: nothing in a user's file may run code unless the user opted in (`allow_code`: the CLI's
--trust-code, the app's "Allow code" box). torch.save files are read with `weights_only=True`;
torch.export archives are read by `_pt2` without unpickling. TorchScript is code (PyTorch has no safe
mode for `torch.jit.load`): it is loaded only with the opt-in.
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from workbench.core.errors import CheckpointError, WorkbenchError
from workbench.models import _match, _pt2, structure
from workbench.models._sniff import code_globals, sniff
from workbench.models.zoo import ZOO_CLASSES, build_model, check_input_shape, model_info, model_keys

REFERENCE_FORMAT = "compression-workbench/reference"
REFERENCE_VERSION = 1
TRUST_HINT = "opt in with --trust-code (the app's \"Allow code\" box) only if you trust its source"


@dataclass
class LoadedModel:
    model: nn.Module
    model_key: str | None
    input_shape: tuple | None
    num_classes: int | None
    meta: dict = field(default_factory=dict)
    source: str = "reference"  # "reference", "state_dict", "torchscript", "torch.export", "pickled module"


def _plain(value, where: str):
    """Only values `torch.load(weights_only=True)` accepts, so the reference loads without opt-in."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise WorkbenchError(f"{where} is a {type(value).__name__}; checkpoints hold only tensors and plain values")


def save_reference(path, model: nn.Module, *, model_key: str, input_shape, num_classes: int, dataset: str,
                   test_accuracy: float, extra: dict | None = None) -> None:
    model_info(model_key)  # unknown key -> WorkbenchError listing the known ones
    payload = {
        "format": REFERENCE_FORMAT, "version": REFERENCE_VERSION, "model": model_key,
        "input_shape": [int(s) for s in check_input_shape(input_shape)], "num_classes": int(num_classes),
        "dataset": str(dataset), "test_accuracy": float(test_accuracy), "extra": _plain(extra or {}, "extra"),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    save_tensors(path, payload)


def save_tensors(path, payload: dict) -> None:
    """torch.save of tensors and plain values (readable with weights_only=True), written atomically."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")  # same dir: os.replace is atomic
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(tmp, "xb") as f:
                torch.save(payload, f)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise WorkbenchError(f"cannot write checkpoint {target}: {exc.strerror or exc}") from None


def load_state_dict_file(path, *, allow_code: bool = False) -> dict[str, torch.Tensor]:
    """The weights in a checkpoint meant for an architecture the user brought (not matched to the zoo): a
    state_dict (torch.save, safetensors, a workbench reference, a .pt2's weights), read safely; pickled
    modules and TorchScript only with the opt-in, as everywhere."""
    p = Path(path)
    name = p.name or str(p)
    kind = _foreign(p, name, sniff(p))
    return _finite(_state_dict_of(p, name, kind, allow_code), name)


def _state_dict_of(p: Path, name: str, kind: str, allow_code: bool) -> dict[str, torch.Tensor]:
    if kind in ("torch.save", "pickle"):
        obj = _torch_load(p, name, allow_code, kind)
        if isinstance(obj, nn.Module):
            return obj.state_dict()
        if isinstance(obj, dict) and obj.get("format") == REFERENCE_FORMAT:
            obj = obj.get("state_dict")
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj, dict) and not _match.is_state_dict(obj) and key in obj:
                obj = obj[key].state_dict() if isinstance(obj[key], nn.Module) else obj[key]
        if _match.is_state_dict(obj):
            return _match.strip_prefixes(obj)
        raise CheckpointError(f"{name} holds {_describe(obj)}, not a model state_dict")
    if kind == "safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(p), device="cpu")
        except Exception:
            raise CheckpointError(f"{name} is damaged or not a safetensors file") from None
        spec = _sidecar_structure(p, name)
        # A thinned model's dense export, given as weights for the architecture it came from: the removed
        # channels come back as zeros (exact), so the weights fit the user's unthinned model.
        return structure.expand_state(state, spec) if spec else state
    if kind == "torch.export":
        return _match.strip_prefixes(_load_pt2(p, name, allow_code))
    if kind == "torchscript":
        return _torchscript_state_dict(p, name, allow_code)
    raise CheckpointError(f"{name} is a zip archive but not a PyTorch checkpoint")


# Files that are not checkpoints at all, told by their first bytes so the message says what they are
# (a NumPy .npy would otherwise read as a damaged pickle "with Python objects", an HDF5 run file as junk).
_NPY_MAGIC, _HDF5_MAGIC = b"\x93NUMPY", b"\x89HDF\r\n\x1a\n"


def _foreign(p: Path, name: str, kind: str) -> str:
    """`kind` when the file may be a checkpoint; a one-line CheckpointError naming what it is otherwise."""
    if kind == "pickle":
        with open(p, "rb") as f:
            head = f.read(8)
        if head.startswith(_NPY_MAGIC):
            raise CheckpointError(f"{name} is a NumPy array file (.npy), not a model checkpoint: give the model's "
                                  "state_dict (torch.save or safetensors)")
        if head == _HDF5_MAGIC:
            raise CheckpointError(f"{name} is an HDF5 file (a workbench run file?), not a model checkpoint; a "
                                  "run's model is written by `workbench export RUN.h5 --format dense`")
    if kind == "zip":
        with zipfile.ZipFile(p) as zf:           # sniff opened it already: it is a readable zip
            names = zf.namelist()
        if names and all(n.endswith(".npy") for n in names):
            raise CheckpointError(f"{name} is a NumPy archive (.npz), not a model checkpoint: give the model's "
                                  "state_dict (torch.save or safetensors)")
    return kind


def nonfinite(state: dict) -> str | None:
    """The first tensor holding NaN or infinite values, counted ("fc1.weight holds 12 NaN values"), and
    how many more tensors do; None when every floating tensor is finite."""
    bad = []
    for key, value in state.items():
        t = torch.as_tensor(value) if isinstance(value, np.ndarray) else value
        if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex()) and not bool(t.isfinite().all()):
            bad.append((key, int(t.isnan().sum()), int(t.isinf().sum())))
    if not bad:
        return None
    key, nans, infs = bad[0]
    counts = " and ".join(([f"{nans} NaN"] if nans else []) + ([f"{infs} infinite"] if infs else []))
    plural = "s" if nans + infs > 1 else ""
    more = f" (and {len(bad) - 1} more tensor{'s' if len(bad) > 2 else ''})" if len(bad) > 1 else ""
    return f"{key} holds {counts} value{plural}{more}"


def _finite(state: dict, name: str) -> dict:
    """Weights that are NaN or infinite would fail much later (a NaN loss, "values outside the codebook"):
    refuse them at load, naming the tensor."""
    problem = nonfinite(state)
    if problem:
        raise CheckpointError(f"{name} holds NaN/inf weights: {problem}")
    return state


def load_into(model: nn.Module, state: dict, what: str) -> None:
    """Load weights strictly, with one line naming what is missing, unexpected or of another shape."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} (model: {tuple(own[k].shape)})" for k in own
             if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = ([f"missing {', '.join(missing[:3])}" + (" ..." if len(missing) > 3 else "")] if missing else []) \
        + ([f"not in the model {', '.join(extra[:3])}" + (" ..." if len(extra) > 3 else "")] if extra else []) \
        + ([f"other shapes {', '.join(wrong[:2])}" + (" ..." if len(wrong) > 2 else "")] if wrong else [])
    if problems:
        raise CheckpointError(f"{what} do not fit the model: {'; '.join(problems)}")
    model.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})


def _describe(obj) -> str:
    if isinstance(obj, dict):
        keys = [str(k) for k in obj][:5]
        return "a dict with keys " + ", ".join(keys) + (" ..." if len(obj) > 5 else "")
    return f"a {type(obj).__name__}"


def _scalars(d: dict) -> dict:
    return {k: v for k, v in d.items() if isinstance(k, str) and isinstance(v, (bool, int, float, str, type(None)))}


def _torch_load(path: Path, name: str, allow_code: bool, kind: str):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        culprit = code_globals(path, kind, exc)
    if culprit is None:
        raise CheckpointError(f"{name} is damaged or not a PyTorch checkpoint")
    if not allow_code:
        raise CheckpointError(f"{name} contains Python objects that would run code when loaded "
                              f"({culprit}); {TRUST_HINT}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise CheckpointError(f"{name} could not be loaded even with code allowed: {line}") from None


def _fit_and_load(sd, name, source, meta, model_key, input_shape, num_classes, hint="") -> LoadedModel:
    sd = _finite(_match.strip_prefixes(sd), name)
    try:
        fit = _match.match_zoo(sd, name, model_key=model_key, input_shape=input_shape, num_classes=num_classes)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}{hint}") from None
    model = _match.load_into_zoo(sd, fit, name)
    return LoadedModel(model, fit.key, fit.input_shape, fit.num_classes, meta, source)


def _from_reference(obj: dict, name: str, model_key) -> LoadedModel:
    if not isinstance(obj.get("version"), int) or obj["version"] > REFERENCE_VERSION:
        raise CheckpointError(f"{name} was written by a newer workbench (format version {obj.get('version')!r})")
    key, sd = obj.get("model"), obj.get("state_dict")
    if key not in model_keys():
        raise CheckpointError(f"{name} is for model {key!r}, which this workbench does not know")
    if model_key is not None and model_key != key:
        raise CheckpointError(f"{name} holds a {key} model, not {model_key}")
    if not _match.is_state_dict(sd):
        raise CheckpointError(f"{name} is damaged: its reference record has no state_dict")
    try:
        shape, classes = check_input_shape(obj.get("input_shape")), int(obj.get("num_classes"))
    except (WorkbenchError, TypeError, ValueError):
        raise CheckpointError(f"{name} is damaged: bad input_shape or num_classes") from None
    meta = {k: v for k, v in obj.items() if k != "state_dict"}
    return _fit_and_load(sd, name, "reference", meta, key, shape, classes)


def _from_module(model: nn.Module, meta, model_key, input_shape, num_classes, name: str = "") -> LoadedModel:
    _finite(model.state_dict(), name or "the pickled model")
    key = ZOO_CLASSES.get(type(model))
    if key is not None and (input_shape is None or num_classes is None):
        try:  # recover the shape arguments of a pickled zoo model from its weights
            fit = _match.match_zoo(_match.strip_prefixes(model.state_dict()), "", model_key=key,
                                   input_shape=input_shape, num_classes=num_classes)
            input_shape, num_classes = fit.input_shape, fit.num_classes
        except CheckpointError:
            pass
    return LoadedModel(model.eval(), key or model_key, input_shape, num_classes, meta, "pickled module")


def _from_object(obj, name: str, model_key, input_shape, num_classes) -> LoadedModel:
    if isinstance(obj, nn.Module):  # only reachable with allow_code
        return _from_module(obj, {}, model_key, input_shape, num_classes, name)
    if isinstance(obj, dict) and obj.get("format") == REFERENCE_FORMAT:
        return _from_reference(obj, name, model_key)
    if isinstance(obj, dict) and isinstance(obj.get("model"), nn.Module):
        return _from_module(obj["model"], _scalars(obj), model_key, input_shape, num_classes, name)
    if _match.is_state_dict(obj):
        return _fit_and_load(obj, name, "state_dict", {}, model_key, input_shape, num_classes)
    for k in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and _match.is_state_dict(obj.get(k)):
            return _fit_and_load(obj[k], name, "state_dict", _scalars(obj), model_key, input_shape, num_classes)
    raise CheckpointError(f"{name} holds {_describe(obj)}, not a model state_dict")


_NOT_ZOO = ("; the workbench needs a state_dict of one of its architectures, or (with --trust-code) "
            "a pickled nn.Module")


def load_model_file(path, *, model_key: str | None = None, input_shape=None, num_classes=None,
                    allow_code: bool = False) -> LoadedModel:
    if model_key is not None:
        model_info(model_key)
    if input_shape is not None:
        input_shape = check_input_shape(input_shape)
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                    or num_classes < 1):
        raise WorkbenchError(f"number of classes must be a positive integer, got {num_classes!r}")
    p = Path(path)
    name = p.name or str(p)
    kind = _foreign(p, name, sniff(p))  # CheckpointError for missing, empty, unreadable, damaged, foreign
    args = (model_key, input_shape, num_classes)
    if kind in ("torch.save", "pickle"):
        return _from_object(_torch_load(p, name, allow_code, kind), name, *args)
    if kind == "safetensors":
        return _load_safetensors(p, name, *args)
    if kind == "torchscript":
        return _fit_and_load(_torchscript_state_dict(p, name, allow_code), name, "torchscript", {}, *args,
                             hint=_NOT_ZOO)
    if kind == "torch.export":
        return _fit_and_load(_load_pt2(p, name, allow_code), name, "torch.export", {}, *args, hint=_NOT_ZOO)
    raise CheckpointError(f"{name} is a zip archive but not a PyTorch checkpoint")


def _torchscript_state_dict(p: Path, name: str, allow_code: bool) -> dict:
    """TorchScript is code (PyTorch has no safe mode for torch.jit.load): only with the opt-in."""
    if not allow_code:
        raise CheckpointError(f"{name} is a TorchScript archive: loading it runs the code stored in it; "
                              f"{TRUST_HINT}")
    try:
        with warnings.catch_warnings():  # torch.jit's deprecation notice is not the user's concern
            warnings.simplefilter("ignore")
            scripted = torch.jit.load(str(p), map_location="cpu")
        return {k: v.detach().clone() for k, v in scripted.state_dict().items()}
    except Exception:
        raise CheckpointError(f"{name} is damaged or not a PyTorch checkpoint (TorchScript archive)") from None


def _load_pt2(p: Path, name: str, allow_code: bool) -> dict:
    try:
        with zipfile.ZipFile(p) as zf:
            return _pt2.read_pt2_state_dict(zf, name)
    except _pt2.NeedsCode:
        pass
    except (zipfile.BadZipFile, OSError):
        raise CheckpointError(f"{name} is damaged or not a PyTorch checkpoint") from None
    if not allow_code:
        raise CheckpointError(f"{name} keeps its weights as pickled Python objects that would run code when "
                              f"loaded; {TRUST_HINT}")
    try:
        return dict(torch.export.load(str(p)).state_dict)
    except Exception:
        raise CheckpointError(f"{name} is damaged or not a PyTorch checkpoint (torch.export archive)") from None


def _thinned_spec(meta, where: str) -> dict | None:
    """The thinned structure a dense export's sidecar records (None: a plain architecture's file)."""
    spec = meta.get("structure") if isinstance(meta, dict) else None
    if spec is None:
        return None
    spec = structure.parse(spec)
    if not structure.thinned_only(spec):
        raise CheckpointError(f"{where} describes layers other than thinned ones, which a dense file does not hold")
    return spec


def _sidecar_structure(p: Path, name: str) -> dict | None:
    sidecar = p.with_suffix(".json")
    if not sidecar.is_file():
        return None
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise CheckpointError(f"{sidecar.name} (config of {name}) is unusable: not a JSON object") from None
    return _thinned_spec(meta, f"{sidecar.name} (config of {name})")


def _load_thinned(sd: dict, name: str, spec: dict, meta: dict, model_key, input_shape, num_classes) -> LoadedModel:
    """A thinned model's dense export: its architecture built, the sidecar's structure applied (thinner
    layers), then the weights loaded strictly."""
    if model_key is None or input_shape is None or num_classes is None:
        raise CheckpointError(f"{name} holds a thinned model, but its sidecar does not name its architecture, "
                              "input shape and classes")
    model = build_model(model_key, input_shape, int(num_classes))
    structure.apply_structure(model, spec)
    load_into(model, _finite(sd, name), f"{name}'s weights (thinned {model_key})")
    return LoadedModel(model.eval(), model_key, tuple(input_shape), int(num_classes), meta, "state_dict")


def _load_safetensors(p: Path, name: str, model_key, input_shape, num_classes) -> LoadedModel:
    from safetensors.torch import load_file

    try:
        sd = load_file(str(p), device="cpu")
    except Exception:
        raise CheckpointError(f"{name} is damaged or not a safetensors file") from None
    meta: dict = {}
    sidecar = p.with_suffix(".json")
    if sidecar.is_file():  # written next to the weights by the workbench's dense export
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
            if not isinstance(meta, dict):
                raise ValueError
            model_key = model_key or meta.get("model")
            if model_key is not None:
                model_info(model_key)
            input_shape = input_shape or (check_input_shape(meta["input_shape"]) if meta.get("input_shape") else None)
            num_classes = num_classes if num_classes is not None else meta.get("num_classes")
        except (OSError, ValueError, WorkbenchError) as exc:
            why = str(exc) if isinstance(exc, WorkbenchError) else "not a JSON object"
            raise CheckpointError(f"{sidecar.name} (config of {name}) is unusable: {why}") from None
    spec = _thinned_spec(meta, f"{sidecar.name} (config of {name})")
    if spec is not None:                  # a thinned model's dense export (engine/export.write_dense)
        return _load_thinned(sd, name, spec, meta, model_key, input_shape, num_classes)
    return _fit_and_load(sd, name, "state_dict", meta, model_key, input_shape, num_classes)
