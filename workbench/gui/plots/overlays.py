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


MIXTURE_COLOR = (70, 150, 255)
CENTROID_COLOR = (90, 190, 120)
MAX_CENTROID_LINES = 64          # 8-bit conv codebooks (256 values) would paint the plot solid


def mixture_components(value: Callable) -> list:
    """Soft weight-sharing: each Gaussian component pi_j N(w | mu_j, sigma_j^2), in histogram counts
    (total count x pi_j x density x bin width), plus a line at each mean. Capped at 1.5x the tallest bar
    so the zero component (pi_0 ~ 0.99) does not flatten the histogram."""
    mu, var, pi = value("mix_mean"), value("mix_var"), value("mix_weight")
    counts, edges = value("hist_counts"), value("hist_edges")
    if any(v is None for v in (mu, var, pi, counts, edges)) or np.ndim(mu) != 1:
        return []
    counts, edges = np.asarray(counts, float), np.asarray(edges, float)
    total, width = counts.sum(), edges[1] - edges[0]
    cap = 1.5 * counts.max() if counts.size and counts.max() > 0 else 1.0
    x = np.linspace(edges[0], edges[-1], 600)
    shapes = []
    ok = np.isfinite(mu) & np.isfinite(var) & np.isfinite(pi) & (np.asarray(var, float) > 0)
    for m, v, p in zip(np.asarray(mu)[ok], np.asarray(var)[ok], np.asarray(pi)[ok]):
        y = total * p * width * np.exp(-(x - m) ** 2 / (2 * v)) / np.sqrt(2 * np.pi * v)
        shapes.append(Curve(x, np.minimum(y, cap), MIXTURE_COLOR + (220,)))
        shapes.append(VLine(float(m), MIXTURE_COLOR + (120,), True))
    return shapes


def kmeans_centroids(value: Callable) -> list:
    """Trained quantization: the shared values of the layer (a line per centroid)."""
    c = value("centroids")
    if c is None or np.ndim(c) != 1:
        return []
    c = np.asarray(c, float)
    c = c[np.isfinite(c)]
    if len(c) > MAX_CENTROID_LINES:
        return []
    return [VLine(float(v), CENTROID_COLOR + (170,)) for v in c]


# Triggered when the layer has the key series; several drawers may apply to one layer.
OVERLAYS: dict[str, Callable] = {
    "a_k": dns_band,
    "threshold": magnitude_threshold,
    "mix_mean": mixture_components,
    "centroids": kmeans_centroids,
}


def overlay_shapes(layer_series: dict, value: Callable) -> list:
    shapes = []
    for name, drawer in OVERLAYS.items():
        if name in layer_series:
            shapes += drawer(value)
    return shapes
