"""Presets as text: the short spread column of `workbench presets`, and one preset in full (`workbench
presets NAME`, the app's promote dialog). Accuracies are fractions as run files store them (a value
above 1 is read as percent); `error_mean` is in percent points, as the schema says."""

from __future__ import annotations

import json
import math


def _num(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _percent(value) -> float | None:
    v = _num(value)
    return None if v is None else (v * 100 if abs(v) <= 1 else v)


def _ratio_digits(value: float) -> int:
    # one decimal up to 100x: a paper's 12x is missed or met in the first decimal (11.7x against 12x)
    return 0 if abs(value) >= 100 else 1 if abs(value) >= 1 else 2


def measured_numbers(measured: dict) -> dict:
    """error (%), its std, storage ratio and its std, accuracy (%) and n, from either form: a set of
    repeats (accuracy_mean/std, ratio_mean/std, error_mean) or one promoted run (accuracy, storage_ratio)."""
    acc = _percent(measured.get("accuracy_mean", measured.get("accuracy")))
    acc_std = _percent(measured.get("accuracy_std"))
    err = _num(measured.get("error_mean"))
    if err is None and acc is not None:
        err = 100 - acc
    ratio = _num(measured.get("ratio_mean", measured.get("storage_ratio")))
    n = measured.get("n")
    return {"error": err, "error_std": acc_std, "accuracy": acc, "accuracy_std": acc_std, "ratio": ratio,
            "ratio_std": _num(measured.get("ratio_std")), "n": n if isinstance(n, int) else None}


def _pm(value: float | None, std: float | None, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" + (f"±{std:.{digits}f}" if std is not None else "")


def spread_text(preset: dict) -> str:
    """e.g. "3 refs: 1.71±0.05% err, 72±3x"; '' for a preset measured nowhere."""
    measured = preset.get("measured")
    if not isinstance(measured, dict):
        return ""
    m = measured_numbers(measured)
    refs = len(measured.get("references") or [])
    n = m["n"] or max(refs, 1)
    plural = "s" if refs != 1 else ""
    who = (f"{n} run{'s' if n != 1 else ''}" if not refs else f"{refs} ref{plural}" if refs == n
           else f"{n} runs, {refs} ref{plural}")
    ratio = m["ratio"]
    ratio_text = "-" if ratio is None else _pm(ratio, m["ratio_std"], _ratio_digits(ratio)) + "x"
    if ratio is not None and measured.get("ratio_of") == "params":
        ratio_text += " params"
    return f"{who}: {_pm(m['error'], m['error_std'], 2)}% err, {ratio_text}"


def _knobs(values: dict) -> str:
    return " ".join(f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in values.items())


def reference_text(ref: dict) -> str:
    """One reference a preset was measured on: the model, how it came (pretrain seed or checkpoint), its
    accuracy."""
    if not isinstance(ref, dict):
        return str(ref)
    parts = [str(ref.get("model") or "model")]
    if ref.get("checkpoint"):
        parts.append(f"checkpoint {ref['checkpoint']}")
    if ref.get("pretrain_seed") is not None:
        parts.append(f"pretrained with seed {ref['pretrain_seed']}")
    if ref.get("pretrain_epochs"):
        parts.append(f"{ref['pretrain_epochs']} epochs")
    acc = _percent(ref.get("accuracy"))
    return ", ".join(parts) + (f": {acc:.2f}% accuracy" if acc is not None else "")


def _ratio_word(block: dict) -> str:
    """Which ratio a target or measurement gives: the storage ratio (bits) unless it says `ratio_of:
    params` (a paper that counts kept parameters, as Han 2015 and Guo 2016 do)."""
    return "parameters" if block.get("ratio_of") == "params" else "storage"


def measured_lines(measured: dict) -> list[str]:
    m = measured_numbers(measured)
    refs = [r for r in measured.get("references") or []]
    n = m["n"] or 1
    ratio = m["ratio"]
    head = (f"measured here ({n} run{'s' if n != 1 else ''} on {len(refs)} reference"
            f"{'s' if len(refs) != 1 else ''}): error {_pm(m['error'], m['error_std'], 2)}%, "
            f"{_ratio_word(measured)} "
            + ("-" if ratio is None else _pm(ratio, m["ratio_std"], _ratio_digits(ratio)) + "x"))
    lines = [head]
    if m["accuracy"] is not None:
        lines.append(f"  accuracy {_pm(m['accuracy'], m['accuracy_std'], 2)}%")
    for key, label in (("from", "from"), ("run", "run file"), ("command", "command"), ("date", "date")):
        if measured.get(key) and measured[key] != "run":        # from: "run" says nothing more
            lines.append(f"  {label}: {measured[key]}")
    settings = measured.get("settings")
    if isinstance(settings, dict) and settings:
        lines.append(f"  settings: {_knobs(settings)}")
    if refs:
        lines.append("  references:")
        lines += [f"    {reference_text(r)}" for r in refs]
    return lines


def describe(preset: dict, where: str = "") -> str:
    """One preset in full: where it comes from, what it runs, the paper's target, what it gave here, and
    the reference it needs."""
    lines = [f"{preset.get('model') or '(no model)'} on {preset.get('dataset')}: {preset.get('method')}"
             + (", Huffman coded" if preset.get("huffman") else "")]
    for key in ("source", "description"):
        if preset.get(key):
            lines.append(f"{key}: {preset[key]}")
    lines.append("stages:")
    stages = preset.get("stages") or [{"method": preset.get("method", "?"), "params": preset.get("params", {}),
                                       "train": preset.get("train", {})}]          # a one-stage preset's form
    for i, stage in enumerate(stages, 1):
        lines.append(f"  {i}. {stage['method']}: {_knobs(stage.get('params', {})) or '(defaults)'}")
        if stage.get("train"):
            lines.append(f"     train: {_knobs(stage['train'])}")
    target = preset.get("target")
    if isinstance(target, dict) and target:
        ratio, err = _num(target.get("ratio")), _num(target.get("error"))
        bits = [f"error {err:.2f}%" if err is not None else "",
                f"{_ratio_word(target)} {ratio:g}x" if ratio is not None else ""]
        lines.append("target (paper): " + ", ".join(b for b in bits if b))
    if isinstance(preset.get("measured"), dict):
        lines += measured_lines(preset["measured"])
    if preset.get("needs_reference"):
        lines.append(f"needs reference: {preset['needs_reference']}")
    title = preset["name"] + (f"  ({where})" if where else "")
    lines = [title] + [f"  {line}" for line in lines]
    return "\n".join(lines)
