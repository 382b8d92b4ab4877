"""Parameter declarations: one dataclass per method (and one for training, one for the run settings)
gives the CLI flags, the JSON stored in run files, and the GUI form.

A field is declared with `knob(...)`, which keeps the metadata a form needs (label, range, step, log
scale, choices, help, advanced). Cross-field rules live in the dataclass's `check()` method, next to the
declaration, and are enforced by `validate()` wherever values come from.

Text is one format everywhere (CLI, run file's `cli` attribute, "Copy CLI command", forms, tables):
`format_value` writes exactly what `parse_text` reads back to the same value (a float as `%g` where that
is exact, else as its shortest exact repr), so no hop between the faces rounds a knob.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass
from typing import Any

from workbench.core.errors import ParamError


class LayerMap(dict):
    """Per-layer numbers, e.g. DNS's c_rate per layer: written `fc1=6.5,fc2=4` on the command line."""


@dataclass(frozen=True)
class Knob:
    label: str
    help: str = ""
    min: float | None = None
    max: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[str, ...] | None = None
    advanced: bool = False
    unit: str = ""
    special: str = ""          # what the minimum means when it is a sentinel (0 -> "all"), shown in forms
    # Where a tuning study searches this knob by default, in `--space` text ("5e-4..5e-2:log", "a|b"):
    # the declared min..max is what is *allowed*, often decades wider than where runs land (sampling SWS's
    # tau over [0, 1e6] would waste nearly every trial). "": not in the method's default space.
    tune: str = ""


@dataclass(frozen=True)
class Spec:
    """A declared parameter with its resolved type and default."""

    name: str
    type: type
    default: Any
    knob: Knob

    def describe(self) -> dict:
        k = self.knob
        return {
            "name": self.name, "type": self.type.__name__, "default": _jsonable(self.default),
            "label": k.label, "help": k.help, "min": k.min, "max": k.max, "step": k.step, "log": k.log,
            "choices": list(k.choices) if k.choices else None, "advanced": k.advanced, "unit": k.unit,
            "tune": k.tune or None,
        }


def knob(default: Any, label: str, help: str = "", **meta: Any) -> Any:
    """Declare a dataclass field with the metadata every face (CLI, JSON, GUI) needs."""
    factory = None
    if isinstance(default, dict):
        value = LayerMap(default)
        factory = lambda: LayerMap(value)  # noqa: E731 - mutable default needs a factory
    md = {"knob": Knob(label=label, help=help, **meta)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=md)
    return dataclasses.field(default=default, metadata=md)


def specs(cls: type) -> list[Spec]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if "knob" not in f.metadata:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        out.append(Spec(f.name, _base_type(hints[f.name]), default, f.metadata["knob"]))
    return out


def _base_type(hint: Any) -> type:
    if hint in (int, float, bool, str, LayerMap):
        return hint
    raise TypeError(f"unsupported parameter type {hint!r}")


def _jsonable(value: Any) -> Any:
    return dict(value) if isinstance(value, LayerMap) else value


def parse_text(spec: Spec, text: str) -> Any:
    """Parse a value as typed on the command line (`--set name=text`)."""
    t = spec.type
    try:
        if t is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if t is int:
            try:
                return int(text)                      # exact, whatever its size
            except ValueError:
                value = float(text)                   # "1e3", "20.0"
                if not value.is_integer():
                    raise
                return int(value)
        if t is float:
            return float(text)
        if t is LayerMap:
            return parse_layer_map(text)
        return text
    except ValueError:
        raise ParamError(f"{spec.name}: cannot read {text!r} as {t.__name__}") from None


def parse_layer_map(text: str) -> LayerMap:
    text = text.strip()
    if not text:
        return LayerMap()
    if text.startswith("{"):
        return LayerMap({str(k): float(v) for k, v in json.loads(text).items()})
    out = LayerMap()
    for part in text.replace(";", ",").split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError(part)
        out[name.strip()] = float(value)
    return out


def format_number(v: float) -> str:
    """`%g` where that reads back as exactly `v` ('0.0005', '1e-06', '4'), else the shortest exact text
    ('0.0123456789')."""
    v = float(v)
    short = f"{v:g}"
    return short if float(short) == v else repr(v)


def format_layer_map(value: dict) -> str:
    """`fc1=6.5,fc2=0.0123456789`: reads back exactly through parse_layer_map."""
    return ",".join(f"{k}={format_number(v)}" for k, v in value.items())


def format_value(value: Any) -> str:
    """A knob's value as typed on the command line; parse_text gives the same value back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return format_layer_map(value)
    if isinstance(value, float):
        return format_number(value)
    return str(value)


def changed(cls: type, values: dict) -> dict:
    """The values that differ from the declared defaults, in declaration order (what makes a stage or a
    run itself: table columns, summaries, the shortest exact command line). Unreadable values count as
    changed."""
    out = {}
    for spec in specs(cls):
        if spec.name not in values:
            continue
        try:
            same = coerce(spec, values[spec.name]) == spec.default
        except ParamError:
            same = False
        if not same:
            out[spec.name] = values[spec.name]
    return out


def coerce(spec: Spec, value: Any) -> Any:
    """Bring a JSON or Python value to the declared type, or raise ParamError."""
    if isinstance(value, str) and spec.type is not str:
        return parse_text(spec, value)
    t = spec.type
    if t is bool:
        if not isinstance(value, bool):
            raise ParamError(f"{spec.name}: expected true/false, got {value!r}")
        return value
    if t is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
            raise ParamError(f"{spec.name}: expected a whole number, got {value!r}")
        return int(value)
    if t is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamError(f"{spec.name}: expected a number, got {value!r}")
        return float(value)
    if t is LayerMap:
        if not isinstance(value, dict):
            raise ParamError(f"{spec.name}: expected per-layer values like fc1=1.5,fc2=2, got {value!r}")
        try:
            return LayerMap({str(k): float(v) for k, v in value.items()})
        except (TypeError, ValueError):
            raise ParamError(f"{spec.name}: per-layer values must be numbers, got {value!r}") from None
    return str(value)


def check_range(spec: Spec, value: Any) -> None:
    k = spec.knob
    values = value.values() if isinstance(value, dict) else [value]
    for v in values:
        if isinstance(v, float) and not math.isfinite(v):
            raise ParamError(f"{spec.name}: must be a finite number, got {v}")
        if k.min is not None and v < k.min:
            raise ParamError(f"{spec.name}: {v:g} is below the minimum {k.min:g}")
        if k.max is not None and v > k.max:
            raise ParamError(f"{spec.name}: {v:g} is above the maximum {k.max:g}")
    if k.choices and value not in k.choices:
        raise ParamError(f"{spec.name}: {value!r} is not one of {', '.join(k.choices)}")


def validate(obj: Any) -> Any:
    """Check every field's type and range, then the cross-field rules (`check()`); return obj."""
    for spec in specs(type(obj)):
        value = coerce(spec, getattr(obj, spec.name))
        check_range(spec, value)
        object.__setattr__(obj, spec.name, value)
    check = getattr(obj, "check", None)
    if check is not None:
        check()
    return obj


def build(cls: type, values: dict | None = None) -> Any:
    """Make a validated instance from a mapping of names to values (JSON or text); unknown names fail."""
    values = dict(values or {})
    known = {s.name: s for s in specs(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ParamError(f"unknown parameter {unknown[0]!r}; known: {', '.join(known)}")
    kwargs = {name: coerce(known[name], v) for name, v in values.items()}
    return validate(cls(**kwargs))


def to_dict(obj: Any) -> dict:
    return {s.name: _jsonable(getattr(obj, s.name)) for s in specs(type(obj))}


def describe(cls: type) -> list[dict]:
    return [s.describe() for s in specs(cls)]


def parse_assignments(items: list[str]) -> dict[str, str]:
    """`['lr=0.01', 'a_k=fc1=0.1', 'a_k=fc2=0.2']` -> {'lr': '0.01', 'a_k': 'fc1=0.1,fc2=0.2'}."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise ParamError(f"--set expects name=value, got {item!r}")
        if "=" in value and "=" in out.get(name, ""):
            value = f"{out[name]},{value}"  # per-layer values given in several --set merge
        out[name] = value
    return out
