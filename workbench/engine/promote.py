"""Promote a run to a preset: a finished run file's settings (model, data, each stage's method knobs and
training, Huffman) become a user preset, with a `measured` block saying what it gave and on which
reference, so whoever loads it knows what to expect and what the knobs were fitted to.

Every tune trial is an ordinary run file named STUDY-trial-NNNN.h5 (engine.tune), so a trial is promoted
like any run; the name says which study and trial it was.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import h5py

from workbench.core import file_image
from workbench.core.errors import WorkbenchError
from workbench.core.presets import check_new_name, save_user_preset
from workbench.engine.reference import cache_dir
from workbench.models.architecture import is_model_file

TRIAL_NAME = re.compile(r"(?P<study>.+)-trial-(?P<number>\d{4,})(?:-\d+)?")   # engine.tune's names (+ -2...)
SETTINGS_SHOWN = ("seed", "train_subset", "test_subset", "pretrain_epochs")    # what the numbers depend on


def read_header(path: str | Path) -> tuple[dict, dict]:
    """A run file's root attributes and /summary attributes, nothing else: a few hundred bytes of
    metadata whatever the run's length (its series and model are not read), so the app may call this
    on its GUI thread."""
    path = Path(path)
    if path.is_dir():
        raise WorkbenchError(f"{path} is a folder, not a run file")
    try:
        with h5py.File(path, "r", locking=False) as f:
            if "schema_version" not in f.attrs:
                raise WorkbenchError(f"{path} is an HDF5 file but not a workbench run")
            attrs = {k: _plain(v) for k, v in f.attrs.items()}
            summary = {k: _plain(v) for k, v in f["summary"].attrs.items()} if "summary" in f else {}
    except FileNotFoundError:
        raise WorkbenchError(f"no such run file: {path}") from None
    except OSError as exc:
        raise WorkbenchError(f"{path} is not a readable HDF5 run file ({exc})".splitlines()[0]) from None
    if attrs.get("status") == "running" and file_image.writer_alive(path) is False:
        attrs["status"] = "interrupted"
    return attrs, summary


def _plain(value):
    if isinstance(value, bytes):
        return value.decode()
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", 1) == 0 else value


def _finite(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _in_reference_cache(checkpoint: str) -> bool:
    """A zoo model's cached reference (repeats hand the first seed's to every repeat as its checkpoint):
    made by the zoo recipe, so anyone can make it again; not a model the user brought."""
    try:
        return Path(checkpoint).resolve().parent == (cache_dir() / "references").resolve()
    except OSError:
        return False


def needs_reference(config: dict, attrs: dict) -> str:
    """The sentence a preset carries when its knobs were fitted to a model the user brought ('' for a zoo
    model's reference, which `workbench run --preset` makes again from the recipe)."""
    model, checkpoint = config.get("model") or "", config.get("checkpoint") or ""
    acc = _finite(attrs.get("reference_accuracy"))
    at = f" ({100 * acc:.2f}% test accuracy)" if acc is not None else ""
    if model and is_model_file(model):
        weights = f" with the weights {checkpoint}" if checkpoint else ""
        return (f"tuned on the model file {model}{weights}{at}: its knobs were fitted to that model; run it "
                f"with --model {model}" + (f" --checkpoint {checkpoint}" if checkpoint else "")
                + " or a model like it")
    if checkpoint and not _in_reference_cache(checkpoint):
        what = f" ({attrs.get('model') or model})" if (attrs.get("model") or model) else ""
        return (f"tuned on the checkpoint {checkpoint}{what}{at}: its knobs were fitted to that reference; "
                f"run it with --checkpoint {checkpoint} or a model like it")
    return ""


def _reference(config: dict, attrs: dict) -> dict:
    ref = {"model": attrs.get("model") or config.get("model") or ""}
    checkpoint = config.get("checkpoint")
    if checkpoint:
        ref["checkpoint"] = checkpoint
    elif not is_model_file(ref["model"]):
        ref["pretrain_seed"] = config.get("seed", 0)      # a zoo reference is cached per seed
        if config.get("pretrain_epochs"):
            ref["pretrain_epochs"] = config["pretrain_epochs"]
    acc = _finite(attrs.get("reference_accuracy"))
    ref["accuracy"] = acc
    return ref


def _origin(path: Path, config: dict) -> str:
    match = TRIAL_NAME.fullmatch(config.get("name") or path.stem)
    if match:
        return f"tune study {match['study']} trial {int(match['number'])}"
    return "run"


def preset_from_run(run_path: str | Path, name: str, description: str = "") -> dict:
    """A preset (the shipped schema plus `measured`, and `needs_reference` where it applies) from a
    finished run file. A run that did not complete, or has no results, is refused with one line."""
    path = Path(run_path)
    attrs, summary = read_header(path)
    status = attrs.get("status", "")
    if status != "completed":
        why = f": {attrs['error']}" if attrs.get("error") else ""
        raise WorkbenchError(f"{path.name} is not a finished run (status {status or 'unknown'}{why}); only a "
                             "completed run can become a preset")
    accuracy, ratio = _finite(summary.get("test_accuracy")), _finite(summary.get("storage_ratio"))
    if accuracy is None or ratio is None:
        raise WorkbenchError(f"{path.name} holds no results (no test accuracy or storage ratio); only a "
                             "completed run with results can become a preset")
    try:
        config = json.loads(attrs.get("config") or "")
        stages = [{"method": s["method"], "params": dict(s.get("params") or {}), "train": dict(s.get("train") or {})}
                  for s in config["stages"]]
    except (ValueError, KeyError, TypeError):
        raise WorkbenchError(f"{path.name} has no readable run config; it cannot become a preset") from None
    if not stages:
        raise WorkbenchError(f"{path.name} has no stages in its config; it cannot become a preset")
    origin = _origin(path, config)
    model = config.get("model") or attrs.get("model") or ""
    label = "+".join(s["method"] for s in stages)
    source = f"promoted from {path.name} ({origin})" if origin != "run" else f"promoted from {path.name}"
    if config.get("preset"):
        source += f", which ran preset {config['preset']}"
    preset = {"name": name, "model": model, "dataset": config.get("dataset") or attrs.get("dataset", ""),
              "source": source,
              "description": description or f"{label} as run in {path.name}: "
                                            f"{100 * (1 - accuracy):.2f}% error, {ratio:.1f}x storage.",
              "huffman": bool(config.get("huffman", False))}
    if len(stages) == 1:
        preset.update(method=stages[0]["method"], params=stages[0]["params"], train=stages[0]["train"])
    else:
        preset["stages"] = stages
    settings = {k: config[k] for k in SETTINGS_SHOWN if config.get(k)}
    preset["measured"] = {
        "references": [_reference(config, attrs)], "accuracy": accuracy,
        "reference_accuracy": _finite(attrs.get("reference_accuracy")), "storage_ratio": ratio,
        "param_ratio": _finite(summary.get("param_ratio")), "n": 1, "run": path.name, "from": origin,
        **({"command": attrs["cli"]} if attrs.get("cli") else {}),
        **({"date": attrs["finished"]} if attrs.get("finished") else {}),
        **({"settings": settings} if settings else {}),
    }
    sentence = needs_reference(config, attrs)
    if sentence:
        preset["needs_reference"] = sentence
    return preset


def promote(run_path: str | Path, name: str, description: str = "", replace: bool = False
            ) -> tuple[dict, Path]:
    """Check the name first (before reading anything), build the preset and save it: (preset, its file)."""
    check_new_name(name, replace)
    preset = preset_from_run(run_path, name, description)
    return preset, save_user_preset(preset, replace=replace)
