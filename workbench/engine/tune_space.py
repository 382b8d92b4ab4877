"""A tuning study's search space, made from the knobs' declarations (core.params).

A dimension is one declared knob of one stage (or a training knob, shared by every stage) with the
range, log scale, step or choices it is searched over. Its type and its limits come from the
declaration: a `--space` text may narrow a range, never leave it, and may pick a subset of the
declared choices. Per-layer maps (LayerMap) and free text are never searched.

Text format (the CLI's `--space`, the app's dialog, the study's record):
    tau=1e-4..1e-1:log      a float (or int) range, log-uniform
    pi_zero=0.99..0.999     uniform; `:step=0.001` for a grid
    optimizer=adam|sgd      choices (also for numbers and true|false)
    tau                     the knob alone: its default range (below)
In a pipeline a name is `STAGE.K` (the stage's method key or number, as `--set`); a bare name is the
one stage that has it, or a training knob for every stage.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

from workbench.core import params as P
from workbench.core.config import RunConfig, TrainParams
from workbench.core.errors import ParamError
from workbench.methods import get_method

# The default space: each method's knobs that decide how much is compressed and how well, over the
# ranges their declarations give as `tune=` (core.params.Knob). A method declaring none gets its
# non-advanced numeric and choice knobs over ranges derived from the declaration (derived_dim).
DEFAULT_TRAIN = ("lr",)           # searched for every method, around the stage's own value
# How a result is computed, not what: never in a derived default space (still searchable by --space).
NOT_TUNED = {"layers", "seed", "kernel", "cache_indices", "prior_eval", "grid_points", "svd_solver",
             "oversample", "power_iters", "kmeans_iters", "fit_steps", "eval_every", "batch_size", "epochs"}


@dataclass(frozen=True)
class Dim:
    """One searched knob. `stage` None: a training knob set in every stage."""

    name: str                      # the trial's parameter name: `tau`, `kmeans.bits_fc`
    stage: int | None
    part: str                      # "params" (the method's knob) or "train"
    knob: str
    type: type
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()

    def distribution(self):
        import optuna.distributions as D

        if self.choices:
            return D.CategoricalDistribution(list(self.choices))
        if self.type is int:
            return D.IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return D.FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def text(self) -> str:
        if self.choices:
            return f"{self.name}={'|'.join(P.format_value(c) for c in self.choices)}"
        tail = (":log" if self.log else "") + (f":step={P.format_value(self.step)}" if self.step else "")
        return f"{self.name}={P.format_value(self.low)}..{P.format_value(self.high)}{tail}"


@dataclass(frozen=True)
class Fix:
    name: str
    stage: int | None
    part: str
    knob: str
    value: Any


@dataclass
class Space:
    dims: list[Dim] = field(default_factory=list)
    fixed: list[Fix] = field(default_factory=list)

    def describe(self) -> list[str]:
        """The space as text, one entry per dimension and fixed value (stored with the study)."""
        return [d.text() for d in self.dims] + [f"{f.name}:={P.format_value(f.value)}" for f in self.fixed]

    def distributions(self) -> dict:
        return {d.name: d.distribution() for d in self.dims}

    def values_of(self, config: RunConfig) -> dict:
        """The config's own value of every dimension ({dim name: value}): the trial that is the config
        itself (`tune --preset` enqueues it first, so the study shows the preset beside its trials)."""
        out = {}
        for d in self.dims:
            stage = config.stages[0 if d.stage is None else d.stage]
            spec = {s.name: s for s in P.specs(TrainParams if d.part == "train" else get_method(stage.method).Params)}
            out[d.name] = getattr(stage, d.part).get(d.knob, spec[d.knob].default)
        return out

    def apply(self, config: RunConfig, values: dict) -> RunConfig:
        """A copy of `config` with the fixed values and one trial's `values` ({dim name: value}) set."""
        out = copy.deepcopy(config)
        where = [(f.stage, f.part, f.knob, f.value) for f in self.fixed]
        where += [(d.stage, d.part, d.knob, values[d.name]) for d in self.dims if d.name in values]
        for stage, part, knob, value in where:
            for i in range(len(out.stages)) if stage is None else (stage,):
                getattr(out.stages[i], part)[knob] = value
        return out


def _stage_names(config: RunConfig) -> list[str]:
    """How a pipeline's stages are named in the space: the method key, or the number where a key repeats."""
    keys = [s.method for s in config.stages]
    return [k if keys.count(k) == 1 else str(i + 1) for i, k in enumerate(keys)]


def _resolve(config: RunConfig, name: str, what: str) -> tuple[str, int | None, str, P.Spec]:
    """(canonical name, stage, part, spec) for a knob named as `--set` names it; one-line ParamError."""
    names = _stage_names(config)
    train = {s.name: s for s in P.specs(TrainParams)}
    knobs = [{s.name: s for s in P.specs(get_method(st.method).Params)} for st in config.stages]
    where, dot, key = name.rpartition(".")
    if dot:
        hits = [i for i, st in enumerate(config.stages) if where in (st.method, str(i + 1))]
        if len(hits) != 1:
            raise ParamError(f"{what} {name}: {where!r} is not one stage of {config.method_label} (use the "
                             f"method key or the stage number 1..{len(config.stages)})")
        i = hits[0]
        if key in knobs[i]:
            return _canonical(names, i, key), i, "params", knobs[i][key]
        if key in train:
            return _canonical(names, i, key), i, "train", train[key]
    else:
        hits = [i for i, k in enumerate(knobs) if key in k]
        if len(hits) > 1:
            raise ParamError(f"{what} {name}: several stages of {config.method_label} have {key!r}; write "
                             f"STAGE.{key}=...")
        if hits:
            return _canonical(names, hits[0], key), hits[0], "params", knobs[hits[0]][key]
        if key in train:
            return key, None, "train", train[key]
    raise ParamError(f"{what} {name}: unknown parameter for {config.method_label}; see `workbench methods`")


def _canonical(names: list[str], stage: int, key: str) -> str:
    return key if len(names) == 1 else f"{names[stage]}.{key}"


def parse_dim(config: RunConfig, text: str) -> Dim:
    """One `--space` entry read against the declarations; a one-line ParamError for anything wrong."""
    name, sep, rest = text.partition("=")
    name, rest = name.strip(), rest.strip()
    if not name:
        raise ParamError(f"--space {text!r}: expected NAME=LOW..HIGH[:log], NAME=A|B|C or NAME")
    canon, stage, part, spec = _resolve(config, name, "--space")
    if spec.type is P.LayerMap:
        raise ParamError(f"--space {name}: per-layer values are not searched; fix them with --fix {name}=...")
    if not sep:
        return derived_dim(canon, stage, part, spec, _current(config, stage, part, spec))
    if "|" in rest or spec.type in (bool, str):
        return _choice_dim(canon, stage, part, spec, rest)
    return _range_dim(canon, stage, part, spec, rest)


def _choice_dim(canon, stage, part, spec: P.Spec, rest: str) -> Dim:
    values = []
    for item in (t.strip() for t in rest.split("|")):
        try:
            value = P.parse_text(spec, item)                   # the declared type: "5" -> 5, "yes" -> True
            P.check_range(spec, value)                         # inside the declared range or choices
        except ParamError as exc:
            raise ParamError(f"--space {exc}") from None
        if value not in values:
            values.append(value)
    if len(values) < 2:
        raise ParamError(f"--space {canon}: give at least two choices, as A|B")
    return Dim(canon, stage, part, spec.name, spec.type, choices=tuple(values))


def _range_dim(canon, stage, part, spec: P.Spec, rest: str) -> Dim:
    if spec.type not in (int, float):
        raise ParamError(f"--space {canon}: a {spec.type.__name__} knob takes choices A|B, not a range")
    bounds, *flags = [t.strip() for t in rest.split(":")]
    lo_text, dots, hi_text = bounds.partition("..")
    if not dots:
        raise ParamError(f"--space {canon}={rest}: expected LOW..HIGH (e.g. 1e-4..1e-1:log) or A|B")
    log, step = False, None
    try:
        low, high = P.parse_text(spec, lo_text), P.parse_text(spec, hi_text)
        for flag in flags:
            if flag == "log":
                log = True
            elif flag.startswith("step="):
                step = P.parse_text(spec, flag[5:])
            else:
                raise ParamError(f"{canon}: unknown option {flag!r} (log or step=S)")
    except ParamError as exc:
        raise ParamError(f"--space {exc}") from None
    return _checked(Dim(canon, stage, part, spec.name, spec.type, low, high, log, step), spec)


def _checked(dim: Dim, spec: P.Spec) -> Dim:
    name, low, high = dim.name, dim.low, dim.high
    if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
        raise ParamError(f"--space {name}: the range {P.format_value(low)}..{P.format_value(high)} is empty "
                         "(LOW must be below HIGH)")
    k = spec.knob
    if (k.min is not None and low < k.min) or (k.max is not None and high > k.max):
        raise ParamError(f"--space {name}: {P.format_value(low)}..{P.format_value(high)} leaves the declared "
                         f"range {P.format_value(k.min)}..{P.format_value(k.max)}")
    if dim.log and low <= 0:
        raise ParamError(f"--space {name}: a log range must start above 0, got {P.format_value(low)}")
    if dim.step is not None and (dim.log or dim.step <= 0 or dim.step > high - low):
        raise ParamError(f"--space {name}: step {P.format_value(dim.step)} needs a linear range wider than it")
    return dim


def derived_dim(canon, stage, part, spec: P.Spec, current) -> Dim:
    """A knob's default range from its declaration: choices as declared (true|false for a switch); a log
    knob a decade either side of its current value; a linear one its declared range."""
    k = spec.knob
    if spec.type is bool:
        return Dim(canon, stage, part, spec.name, bool, choices=(False, True))
    if k.choices:
        return Dim(canon, stage, part, spec.name, spec.type, choices=tuple(k.choices))
    if spec.type not in (int, float):
        raise ParamError(f"--space {canon}: free text is not searched; give choices as {canon}=A|B")
    low, high = k.min, k.max
    if k.log:
        if not current or current <= 0:
            raise ParamError(f"--space {canon}: no default range around {P.format_value(current)}; give one, "
                             f"e.g. {canon}=1e-5..1e-2:log")
        low = current / 10 if low is None else max(low, current / 10)
        high = current * 10 if high is None else min(high, current * 10)
        if spec.type is int:
            low, high = max(1, math.floor(low)), math.ceil(high)
    if low is None or high is None:
        raise ParamError(f"--space {canon}: the declaration has no range; give one as {canon}=LOW..HIGH")
    return _checked(Dim(canon, stage, part, spec.name, spec.type, spec.type(low), spec.type(high), k.log), spec)


def _current(config: RunConfig, stage, part, spec: P.Spec):
    stage_cfg = config.stages[0 if stage is None else stage]
    return getattr(stage_cfg, part).get(spec.name, spec.default)


def default_space(config: RunConfig) -> list[Dim]:
    """Each stage's default knobs (their `tune=` ranges, else derived) and the training knobs of DEFAULT_TRAIN."""
    names = _stage_names(config)
    dims: list[Dim] = []
    for i, stage in enumerate(config.stages):
        specs = P.specs(get_method(stage.method).Params)
        table = {s.name: s.knob.tune for s in specs if s.knob.tune}
        if not table:
            table = {s.name: "" for s in specs if _derivable(s)}
        for knob, text in table.items():
            canon = _canonical(names, i, knob)
            dims.append(parse_dim(config, f"{canon}={text}" if text else canon))
    for knob in DEFAULT_TRAIN:
        dims.append(parse_dim(config, knob))
    return dims


def _derivable(spec: P.Spec) -> bool:
    k = spec.knob
    if k.advanced or spec.name in NOT_TUNED or spec.type in (bool, P.LayerMap):
        return False
    return bool(k.choices) or (spec.type in (int, float) and k.min is not None and k.max is not None)


def build_space(config: RunConfig, entries: list[str] = (), fixes: list[str] = (), *,
                defaults: bool = True) -> Space:
    """The study's space: the defaults (unless `defaults` is off), replaced or extended by `entries`
    (`--space`), less the knobs `fixes` (`--fix K=V`) pin."""
    dims: dict[str, Dim] = {d.name: d for d in default_space(config)} if defaults else {}
    for text in entries:
        dim = parse_dim(config, text)
        dims[dim.name] = dim
    fixed = []
    for text in fixes:
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise ParamError(f"--fix expects NAME=VALUE, got {text!r}")
        canon, stage, part, spec = _resolve(config, name.strip(), "--fix")
        try:
            parsed = P.coerce(spec, value.strip())
            P.check_range(spec, parsed)
        except ParamError as exc:
            raise ParamError(f"--fix {exc}") from None
        dims.pop(canon, None)
        fixed.append(Fix(canon, stage, part, spec.name, parsed))
    if not dims:
        raise ParamError("the search space is empty: give --space NAME=LOW..HIGH (see `workbench methods`)")
    return Space(list(dims.values()), fixed)
