"""Log axes with several readable, plainly written labels at any range.

pyqtgraph labels a log axis only at whole decades and at the integers 1..9 of each: an error axis spanning
1.4-1.7 % (one run near the papers' LeNet-300-100 error) got no label at all, 1-30 % only "2" and "20".
Here tick values come from a ladder of ever finer "nice" steps inside each decade (decades, 1-2-5,
1-2-3-5, 1..9, then steps of 0.5, 0.2, 0.1, 0.05, ... of the decade's unit), labelled coarse first
wherever a label still fits at least a label's height (or width) from the others; a finer level gives
unlabelled minor ticks. Labels are plain numbers ("1.45", "20x"), not pyqtgraph's "2·10¹".
"""

from __future__ import annotations

import itertools
import math
from typing import Iterator

import numpy as np
import pyqtgraph as pg
from PySide6 import QtGui

MINOR_GAP_PX = 4          # minor ticks closer than this would paint the grid solid
MAX_LEVEL_TICKS = 5000    # a level with more ticks than this in range is never readable: the ladder ends
_EPS = 1e-9


# A level is either a set of mantissas in [1, 10) or a number of even steps per unit of mantissa
# (1: 1, 2, ..., 9; 2: 1, 1.5, 2, ...; 10: 1, 1.1, ...), coarse to fine, down to steps of 1e-6.
_SETS = ((1.0,), (1.0, 2.0, 5.0), (1.0, 2.0, 3.0, 5.0))
_UNITS = (1,) + tuple(f * 10 ** k for k in range(6) for f in (2, 5, 10))


def _levels() -> Iterator[tuple | int]:
    yield from _SETS
    yield from _UNITS


def _level_values(level: tuple | int, lo: float, hi: float) -> np.ndarray | None:
    """log10 tick positions of one level inside [lo, hi]; None when it has too many to list."""
    parts = []
    for decade in range(math.floor(lo), math.floor(hi) + 1):
        if isinstance(level, tuple):
            mantissas = np.asarray(level)
        else:
            first = max(level, math.ceil(10 ** (lo - decade) * level - 1e-6))
            last = min(10 * level - 1, math.floor(10 ** (hi - decade) * level + 1e-6))
            if last - first > MAX_LEVEL_TICKS:
                return None
            mantissas = np.arange(first, last + 1) / level
        parts.append(decade + np.log10(mantissas))
        if sum(len(p) for p in parts) > MAX_LEVEL_TICKS:
            return None
    values = np.concatenate(parts) if parts else np.array([])
    return values[(values >= lo - _EPS) & (values <= hi + _EPS)]


def _widest_gap(values: np.ndarray, lo: float, hi: float) -> float:
    """The longest stretch of lo..hi without a tick of this level."""
    return float(np.diff(np.concatenate([[lo], values, [hi]])).max())


def _decade_ticks(lo: float, hi: float, per_decade: float, min_gap_px: float):
    """Many decades: label every 2nd, 5th, 10th, ... decade; the other decades are minor ticks."""
    step = next(s * 10 ** k for k in range(400) for s in (1, 2, 5) if s * 10 ** k * per_decade >= min_gap_px)
    major = np.arange(math.ceil(lo / step), math.floor(hi / step) + 1) * step
    decades = np.arange(math.ceil(lo), math.floor(hi) + 1) if per_decade >= MINOR_GAP_PX else np.array([])
    return major.tolist(), [float(v) for v in decades if v % step]


def _refine(labels: list[float], values: np.ndarray, gap: float, units: int | None) -> list[float]:
    """Labels plus, between each two neighbouring labels (and beyond the outer ones), the level's ticks
    there at one even step: all of them, else every 2nd or 5th step (6, 8 between 5 and 10, where
    6, 7, 8, 9 crowd), if each then stays `gap` from its neighbours; none otherwise. So each stretch of
    the axis reads at one even step (0.7, 0.75, 0.8), never a ragged mix (0.7, 0.72, 0.75)."""
    bounds = [-math.inf, *labels, math.inf]
    added: list[float] = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        inside = values[(values > a + _EPS) & (values < b - _EPS)]
        if not len(inside):
            continue
        # Every 2nd or 5th step is still a nice step only on levels of steps 1, 0.1, 0.01, ...
        decimal = bool(units) and math.log10(units).is_integer()
        steps = np.rint(10 ** (inside - np.floor(inside + _EPS)) * units) if decimal else None
        for stride in (1, 2, 5) if decimal else (1,):
            chosen = inside if stride == 1 else inside[steps % stride == 0]
            ends = [[a] if math.isfinite(a) else [], chosen, [b] if math.isfinite(b) else []]
            points = np.concatenate(ends)
            if len(chosen) and (len(points) < 2 or np.diff(points).min() >= gap - _EPS):
                added += chosen.tolist()
                break
    return sorted(labels + added)


def log_ticks(lo: float, hi: float, size: float, min_gap_px: float) -> tuple[list[float], list[float]]:
    """(labelled, minor) tick positions, as log10 values, for the log10 range lo..hi drawn over `size`
    pixels.

    Labels come coarse level first (decades, 1-2-5, ...), each level refining the stretches between the
    labels so far where its ticks there keep `min_gap_px` apart: a decade's crowded top (0.8, 0.9, 1)
    stays coarse while its open bottom (1, 1.5, 2) gets finer labels. Minor ticks: the first level that
    holds every label, unless it is denser than MINOR_GAP_PX.
    """
    lo, hi = sorted((lo, hi))
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi - lo <= 0 or size <= 0:
        return [], []
    per_decade = size / (hi - lo)                     # pixels per decade
    if per_decade < min_gap_px:
        return _decade_ticks(lo, hi, per_decade, min_gap_px)
    gap = min_gap_px / per_decade                     # in decades
    ladder = (_level_values(level, lo, hi) for level in _levels())
    units = (None,) * len(_SETS) + _UNITS
    levels: list[np.ndarray] = []
    labels: list[float] = []
    for values in ladder:
        if values is None:
            break
        labels = _refine(labels, values, gap, units[len(levels)])
        levels.append(values)
        if labels and _widest_gap(values, lo, hi) < gap:     # no finer level fits anywhere
            break
    if len(labels) < 2:       # a very short axis: two labels closer than wished beat a single one
        for values in ladder:
            if values is None:
                break
            levels.append(values)
            if len(values) > 1:
                labels = [float(values[0]), float(values[-1])]
                break
    if not labels:
        return [], []
    marks = np.array(labels)
    for values in itertools.chain(levels, ladder):
        if values is None or (len(values) > 1 and np.diff(values).min() * per_decade < MINOR_GAP_PX):
            break
        held = np.isclose(values[:, None], marks[None, :], rtol=0, atol=1e-9).any(axis=1)
        if held.sum() == len(marks) and len(values) > len(marks):
            return labels, values[~held].tolist()
    return labels, []


def tick_text(value: float, suffix: str = "") -> str:
    """A positive value plainly: 1.45, 0.7, 20, 1000; six significant digits at most."""
    if not math.isfinite(value) or value <= 0:
        return ""
    return f"{float(f'{value:.6g}'):g}{suffix}"


class LogAxis(pg.AxisItem):
    """An axis that, in log mode, ticks with log_ticks and labels with plain numbers (and a suffix).

    In linear mode (the histogram's counts before "log counts" is ticked) it is pyqtgraph's own axis.
    """

    _MAJOR, _MINOR = 1.0, None      # the "spacing" handed back to tickStrings tells the two levels apart

    def __init__(self, orientation: str, suffix: str = "", **kwargs):
        super().__init__(orientation, **kwargs)
        self._suffix = suffix
        self.enableAutoSIPrefix(False)    # a "(x0.001)" on a log axis contradicts the printed values

    def min_label_gap(self) -> float:
        """Pixels from one label to the next: two text heights up a vertical axis, a wide label plus a
        space along a horizontal one."""
        metrics = QtGui.QFontMetrics(self.style.get("tickFont") or QtGui.QFont())
        if self.orientation in ("left", "right"):
            return 2.2 * metrics.height()
        return metrics.horizontalAdvance(f"0.000{self._suffix}") + metrics.height()

    def tickValues(self, minVal, maxVal, size):
        if not self.logMode:
            return super().tickValues(minVal, maxVal, size)
        major, minor = log_ticks(minVal, maxVal, size, self.min_label_gap())
        levels = [(self._MAJOR, major)]
        if minor:
            levels.append((self._MINOR, minor))
        return levels

    def logTickStrings(self, values, scale, spacing):
        if spacing is self._MINOR:
            return [""] * len(values)
        return [tick_text(10 ** float(v) * scale, self._suffix) for v in values]
