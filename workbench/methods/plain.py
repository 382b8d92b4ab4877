"""Plain training: no compression. Used to pretrain reference models, as a fine-tuning stage in
pipelines, and as the baseline that the benchmarks measure every method's per-step cost against."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.methods.base import Method
from workbench.methods.registry import register


@dataclass
class PlainParams:
    pass


@register
class PlainTraining(Method):
    key = "plain"
    label = "Plain training (no compression)"
    summary = "Trains or fine-tunes the model as it is; the baseline for comparisons."
    paper = ""
    Params = PlainParams
