"""Method overlays on the weight histogram, as data: series name -> drawer.

A drawer gets `value(name)` (that layer's series at the selected point, None where not recorded) and
returns shapes; HistogramView turns shapes into pooled graphics items. Supporting a new method's series
(e.g. mixture components) is one function plus one entry in OVERLAYS; no Qt code needed.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np


class Band(NamedTuple):       # shaded x range
    lo: float
    hi: float
    color: tuple


class VLine(NamedTuple):      # vertical line; `label` is shown beside it (a format with {value})
    x: float
    color: tuple
    dashed: bool = False
    label: str = ""
    side: str = "right"       # which side of the line the label sits ("left" | "right")


class Curve(NamedTuple):      # any curve in data coordinates (x values, counts)
    x: np.ndarray
    y: np.ndarray
    color: tuple


DNS_COLOR = (255, 170, 40)
THRESHOLD_COLOR = (230, 70, 70)


def dns_band(value: Callable) -> list:
    """DNS hysteresis: |w| < a_k is pruned, |w| >= b_k kept, in between the mask stays as it was."""
    a, b = value("a_k"), value("b_k")
    shapes = []
    if a is not None and b is not None:
        shapes += [Band(-b, -a, DNS_COLOR + (70,)), Band(a, b, DNS_COLOR + (70,))]
    if a is not None:
        shapes += [VLine(-a, DNS_COLOR), VLine(a, DNS_COLOR, label="a_k {value:.3g}", side="left")]
    if b is not None:
        # a_k's label left of its line, b_k's right of its own: the two lines are close together.
        shapes += [VLine(-b, DNS_COLOR, True), VLine(b, DNS_COLOR, True, "b_k {value:.3g}")]
    return shapes


def magnitude_threshold(value: Callable) -> list:
    """Magnitude pruning: weights with |w| below the threshold are cut."""
    t = value("threshold")
    if t is None:
        return []
    return [VLine(-t, THRESHOLD_COLOR, True), VLine(t, THRESHOLD_COLOR, True, "threshold {value:.3g}")]


# Triggered when the layer has the key series; several drawers may apply to one layer.
OVERLAYS: dict[str, Callable] = {
    "a_k": dns_band,
    "threshold": magnitude_threshold,
}


def overlay_shapes(layer_series: dict, value: Callable) -> list:
    shapes = []
    for name, drawer in OVERLAYS.items():
        if name in layer_series:
            shapes += drawer(value)
    return shapes
