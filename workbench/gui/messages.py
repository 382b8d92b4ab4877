"""Messages in the app's own words: the core's one-line errors name command-line flags (`--trust-code`,
`--model`, `--set lr=...`) because the CLI shows them too; the app shows them naming its controls.

`app_words` is applied where the window displays a message (the run bar, status bar, Run's tooltip, the
setup panel's lines, form errors, the export dialog). The core's messages stay as they are: the same
text is right on the command line.
"""

from __future__ import annotations

import re
from functools import lru_cache

from workbench.core import params as P
from workbench.core.config import RunSettings, TrainParams

# Whole phrases first (the core already names the control in parentheses for some of them), then any
# flag left, by name.
PHRASES = (
    (re.compile(r"opt in with --trust-code \(the app's \"Allow code\" box\)"), 'tick "Allow code"'),
    (re.compile(r"--trust-code \(the app's \"Allow code\" box\)"), '"Allow code"'),
    (re.compile(r"\(with --trust-code\)"), '(with "Allow code" ticked)'),
    (re.compile(r"with --trust-code"), 'with "Allow code" ticked'),
    (re.compile(r"give --model (\([^)]*\) )?or --checkpoint"),
     lambda m: f"choose an Architecture {m.group(1) or ''}or a Checkpoint"),
    (re.compile(r"--set expects name=value"), "a parameter is written name=value"),
)
FLAG_CONTROLS = {
    "trust-code": '"Allow code"',
    "model": "Architecture (or Model file)",
    "checkpoint": "Checkpoint",
    "dataset": "Data set",
    "method": "Method",
    "preset": "Load a preset",
    "epochs": "Epochs",
}
_SET = re.compile(r"--set (?:\d+\.)?([A-Za-z_]\w*)(?:=(\S*))?")
# A message about one knob starts with its name ("lr: 20 is above the maximum 10"), maybe after the
# pipeline's "stage 2 (dns): ".
_KNOB_PREFIX = re.compile(r"^((?:stage \d+ \(([^)]*)\): )?)([A-Za-z_]\w*):")


@lru_cache(maxsize=1)
def knob_labels() -> dict[str, str]:
    """Every declared knob's label by name: run settings, training, then every method (first wins)."""
    from workbench.methods import get_method, method_keys

    labels: dict[str, str] = {}
    for cls in (RunSettings, TrainParams, *(get_method(k).Params for k in method_keys())):
        for spec in P.specs(cls):
            labels.setdefault(spec.name, spec.knob.label)
    return labels


def method_labels(key: str) -> dict[str, str]:
    """A method's knob labels by name ({} for a method this version does not have)."""
    from workbench.methods import get_method

    try:
        return {s.name: s.knob.label for s in P.specs(get_method(key).Params)}
    except Exception:  # noqa: BLE001 - an unknown key in a message: keep the declared labels
        return {}


def _run_setting_controls() -> dict[str, str]:
    return {s.name.replace("_", "-"): s.knob.label for s in P.specs(RunSettings)}


def _flags(text: str) -> str:
    """`--device cuda` -> `Device "cuda"`, `--trust-code` -> `"Allow code"`; unknown flags stay."""
    settings = _run_setting_controls()
    valued = [s.name.replace("_", "-") for s in P.specs(RunSettings) if s.type is not bool]
    text = re.sub(r"--(%s) ([^\s,;:)]*[^\s,;:).])" % "|".join(map(re.escape, valued)),
                  lambda m: f'{settings[m.group(1)]} "{m.group(2)}"', text)
    controls = {**FLAG_CONTROLS, **settings}
    return re.sub(r"--([a-z][a-z0-9-]*)", lambda m: controls.get(m.group(1), m.group(0)), text)


def app_words(text: str, labels: dict[str, str] | None = None) -> str:
    """`text` naming the app's controls instead of CLI flags and knob names. `labels` (name -> label)
    come before the declared ones (a form's own labels, the current method's)."""
    if not text:
        return text or ""
    names = {**knob_labels(), **(labels or {})}
    for pattern, replacement in PHRASES:
        text = pattern.sub(replacement, text)

    def knob(match: re.Match) -> str:
        label = names.get(match.group(1), match.group(1))
        return f'"{label}"' + (f" = {match.group(2)}" if match.group(2) else "")

    text = _flags(_SET.sub(knob, text))
    prefix = _KNOB_PREFIX.match(text)
    if prefix and prefix.group(2):                 # "stage 2 (dns): ...": that method's labels first
        names = {**names, **method_labels(prefix.group(2))}
    if prefix and prefix.group(3) in names:
        text = f"{prefix.group(1)}{names[prefix.group(3)]}:{text[prefix.end():]}"
    return text
