"""The Compare table's rows for many runs: each run keeps one row, found again after sorting, updating,
grouping and removing; rows follow the open order while no column sorts them."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402

from workbench.gui.compare_view import COLUMNS, CompareView  # noqa: E402
from workbench.gui.run_trace import RunTrace  # noqa: E402

HEADERS = [name for name, _ in COLUMNS]


def trace(i: int, acc: float, seed: int = 0, key: str = "") -> RunTrace:
    t = RunTrace(path=f"/runs/r{i:03d}.h5", label=f"r{i:03d}", method="dns", model="lenet5", status="completed")
    t.config = {"seed": seed, "key": key or f"k{i}"}
    t.summary = {"test_accuracy": acc, "reference_accuracy": 0.99, "param_ratio": 2.0, "storage_ratio": 2.0,
                 "bits": 8192.0}
    return t


@pytest.fixture
def view(qtbot, monkeypatch):
    import workbench.gui.compare_view as cv

    # one config per `key`, so that runs sharing a key and differing in seed are repeats
    monkeypatch.setattr(cv, "config_key", lambda config: config.get("key", ""))
    v = CompareView()
    qtbot.addWidget(v)
    return v


def paths_in_rows(v: CompareView) -> list[str]:
    return [p for p in map(v._path, range(v.table.rowCount())) if p]


def acc_of(v: CompareView, path: str) -> str:
    return v.table.item(v._row_of(path), HEADERS.index("Acc %")).text()


def test_many_runs_each_one_row_found_after_sorting_updating_and_removing(view):
    opened: dict[str, int] = {}
    view.order = lambda p: opened.get(p, len(opened))
    runs = [trace(i, 0.5 + i / 1000) for i in range(120)]
    for i, t in enumerate(runs):
        opened[t.path] = i
    for t in reversed(runs[:60]):            # the first half arrives backwards (files read in parallel),
        view.add_or_update(t)
    for t in runs[60:]:                      # the rest in order
        view.add_or_update(t)
    assert paths_in_rows(view) == [t.path for t in runs]          # the open order either way
    view.table.sortByColumn(HEADERS.index("Acc %"), Qt.DescendingOrder)
    assert paths_in_rows(view) == [t.path for t in reversed(runs)]
    assert all(view._row_of(t.path) == len(runs) - 1 - i for i, t in enumerate(runs))
    live = trace(7, 0.999)                    # a live point: the run now has the best accuracy
    view.add_or_update(live)
    assert view.table.rowCount() == len(runs)                     # updated in place, not added
    assert acc_of(view, live.path) == "99.90" and view._row_of(live.path) == 0     # and sorted to the top
    view.remove_paths([runs[3].path, runs[50].path])
    assert view._row_of(runs[3].path) == -1 and view.table.rowCount() == len(runs) - 2
    assert all(view._path(view._row_of(t.path)) == t.path for t in runs if t not in (runs[3], runs[50]))


def test_repeats_among_many_runs_are_grouped_and_their_rows_hidden(view):
    view.order = None
    singles = [trace(i, 0.6) for i in range(40)]
    repeats = [trace(100 + s, 0.7 + s / 100, seed=s, key="same") for s in range(3)]
    for t in singles[:20] + repeats + singles[20:]:
        view.add_or_update(t)
    assert view.groups() == [[t.path for t in repeats]]
    visible = [r for r in range(view.table.rowCount()) if not view.table.isRowHidden(r)]
    assert len(visible) == len(singles) + 1                       # the singles and one group row
    assert all(view.table.isRowHidden(view._row_of(t.path)) for t in repeats)
    late = trace(200, 0.9, seed=7, key="same")                    # one more repeat: hidden in the group
    view.add_or_update(late)
    assert view.table.isRowHidden(view._row_of(late.path))
    assert view.groups() == [[t.path for t in repeats] + [late.path]]
    fresh = trace(300, 0.8)                                       # a run of its own stays shown
    view.add_or_update(fresh)
    assert not view.table.isRowHidden(view._row_of(fresh.path))
