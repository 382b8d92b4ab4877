"""A run's configuration made whole, and the command line that repeats it.

`complete` is the one place a config is validated, whichever face made it (CLI, app, preset, a run
file): every stage's method and training knobs are checked (types, ranges, cross-field rules), typed and
filled in with their declared defaults, and the run settings are checked, so a run file holds the
complete configuration. `cli_command` writes the `workbench run` line that repeats it exactly
(params.format_value): the knobs and settings that differ from their defaults.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from torch import nn

from workbench.core import params as P
from workbench.core.config import RunConfig, RunSettings, TrainParams
from workbench.core.errors import WorkbenchError
from workbench.methods import get_method
from workbench.methods.int8 import check_pipeline
from workbench.methods.per_layer import check_named_layers
from workbench.models import architecture, zoo
from workbench.models.layers import compressible_layers

SELECTIONS = ("all", "fc", "conv")       # a `layers` knob's kinds; anything else is a list of names


def complete(config: RunConfig) -> RunConfig:
    """Validate and fill in `config` in place (raises a one-line ParamError / WorkbenchError); returns it."""
    defaults = {s.name: s.default for s in P.specs(RunSettings)}
    for name, default in defaults.items():
        if getattr(config, name) is None:           # "none" as older files and callers wrote it
            setattr(config, name, default)
    P.validate(config)                               # the run settings' knobs (RunSettings' fields)
    _check_out_dir(config.out_dir)
    if config.model:
        architecture.parse_model_spec(config.model)  # a zoo key or a model file that exists
    elif not config.checkpoint:
        raise WorkbenchError("give --model (a zoo architecture or a model file) or --checkpoint")
    for stage in config.stages:
        stage.params = P.to_dict(P.build(get_method(stage.method).Params, stage.params))
        stage.train = P.to_dict(P.build(TrainParams, stage.train))
    check_pipeline(config.stages)                    # what may follow an int8 stage, before a run file exists
    if config.model and not architecture.is_model_file(config.model) and _named_layers(config):
        # A zoo architecture's layer names do not depend on the data set's image size or classes, so its
        # default shape tells them now, before a run file exists (a model file or a checkpoint is checked
        # where it is loaded, also before: engine.reference.load_user_model).
        check_layer_names(config, zoo.build_model(config.model, zoo.default_input_shape(config.model)))
    return config


def _check_out_dir(out_dir) -> None:
    """The run file's folder is a folder, or can become one: no file in the way, found before any work
    (the run file's creation would otherwise take the file for a name already taken)."""
    folder = Path(out_dir or ".")
    for place in (folder, *folder.parents):
        if place.exists():
            if not place.is_dir():
                where = "is a file" if place == folder else f"is inside {place}, a file"
                raise WorkbenchError(f"--out {folder} {where}, not a folder for run files")
            return


def _named_layers(config: RunConfig) -> list[tuple[int, str, list[str]]]:
    """(stage index, knob, layer names) of every knob that names layers: per-layer maps (`q_layers=fc1=2`)
    and a `layers` knob given as names (`layers=fc1,fc2`)."""
    out = []
    for i, stage in enumerate(config.stages):
        for spec in P.specs(get_method(stage.method).Params):
            value = stage.params.get(spec.name)
            if spec.type is P.LayerMap and value:
                out.append((i, spec.name, [str(k) for k in value]))
            elif spec.name == "layers" and isinstance(value, str) and value.strip() not in SELECTIONS:
                out.append((i, spec.name, [n.strip() for n in value.split(",") if n.strip()]))
    return out


def check_layer_names(config: RunConfig, model: nn.Module) -> None:
    """Every layer a stage's knobs name is a compressible layer of `model` (the run's model before its
    first stage); one ParamError listing the layers there are otherwise. Called before the run file is
    created, so a mistyped name costs no file and no pretraining."""
    known = [n for n, _ in compressible_layers(model)]
    several = len(config.stages) > 1
    for i, knob, names in _named_layers(config):
        where = f"stage {i + 1} ({config.stages[i].method}): " if several else ""
        check_named_layers(knob, names, known, replaced=i > 0, where=where)


def cli_command(config: RunConfig) -> str:
    """The `workbench run` command line that repeats this run; a pipeline's knobs carry their stage number
    (`--set 2.bits_fc=5`). Values are written exactly, so the command parses back to the same config."""
    args = ["workbench", "run"]
    if config.checkpoint:
        args += ["--checkpoint", config.checkpoint]
        if config.model:
            args += ["--model", config.model]
    else:
        args += ["--model", str(config.model)]
    if config.trust_code:
        args.append("--trust-code")
    args += ["--dataset", config.dataset, "--method", ",".join(s.method for s in config.stages)]
    for i, stage in enumerate(config.stages):
        prefix = f"{i + 1}." if len(config.stages) > 1 else ""
        knobs = {**P.changed(get_method(stage.method).Params, stage.params),
                 **P.changed(TrainParams, stage.train)}
        args += [a for k, v in knobs.items() for a in ("--set", f"{prefix}{k}={P.format_value(v)}")]
    for name, value in P.changed(RunSettings, config.settings()).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args += [flag] if value else []
        else:
            args += [flag, P.format_value(value)]
    return shlex.join(args)
