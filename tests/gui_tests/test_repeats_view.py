"""Repeats in the app: the Run settings' Repeats box queues runs over consecutive seeds; the Compare table
shows them as one row of mean ± std (sortable by the mean, its runs in the tooltip and selected with it);
the ratio plots draw the spread of their final points as error bars."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from workbench.core.config import StageConfig  # noqa: E402
from workbench.core.store import read_run  # noqa: E402
from workbench.gui.compare_view import COLUMNS  # noqa: E402
from workbench.gui.plots.ratio_plot import Spread, bar_segments  # noqa: E402

WAIT_MS = 120_000
HEADERS = [name for name, _ in COLUMNS]


def _visible_rows(table) -> list[int]:
    return [r for r in range(table.rowCount()) if not table.isRowHidden(r)]


def test_three_repeats_one_grouped_row_and_error_bars(qtbot, window):
    window.methods.set_stages([StageConfig("magnitude", {"q_fc": 2.0}, {"epochs": 1})])
    window.setup.set_parts({"seed": 3})
    window.setup.repeats_box.setValue(3)
    finished = []
    window.queue.finished.connect(finished.append)
    window.run_button.click()
    assert [c.seed for c in window.queue.pending()] == [4, 5]       # the first one is running
    qtbot.waitUntil(lambda: len(finished) == 3, timeout=WAIT_MS)
    assert [f.status for f in finished] == ["completed"] * 3, [f.error for f in finished]
    paths = [f.run_path for f in finished]
    qtbot.waitUntil(lambda: all(p in window.traces and window.traces[p].status == "completed" for p in paths),
                    timeout=WAIT_MS)
    stored = [read_run(p) for p in paths]
    assert [r.config["seed"] for r in stored] == [3, 4, 5]

    compare, table = window.compare, window.compare.table
    assert compare.groups() == [paths]
    (row,) = _visible_rows(table)                            # the members' own rows are hidden
    assert compare._members(row) == paths
    acc = 100 * np.array([r.summary["test_accuracy"] for r in stored])
    ratio = np.array([r.summary["param_ratio"] for r in stored])
    assert acc.std(ddof=1) > 0 and ratio.std(ddof=1) > 0    # each seed its own reference: both vary
    cell = table.item(row, HEADERS.index("Acc %"))
    assert cell.text() == f"{acc.mean():.2f}\n±{acc.std(ddof=1):.2f}"
    assert cell.value == pytest.approx(acc.mean())          # sorted by the mean
    assert table.item(row, HEADERS.index("Params x")).text() == f"{ratio.mean():.1f}\n±{ratio.std(ddof=1):.1f}"
    assert "n=3" in table.item(row, HEADERS.index("Status")).text()
    latency = table.item(row, HEADERS.index("Latency ms"))
    assert latency.text() == "" and "no repeat's deployment" in latency.toolTip()
    tip = table.item(row, 0).toolTip()
    assert all(p in tip for p in paths)
    table.selectRow(row)
    assert compare.selected_paths() == paths

    # the ratio plots: a cross at the mean of the final points, bars one sample std each way
    for plot in (window.compare_plot, window.ratio_plot):
        window.live_refresh.flush()
        (group,) = plot.repeat_spreads()
        error = 100 - acc
        assert group.paths == paths
        assert (group.ratio, group.ratio_std) == pytest.approx((ratio.mean(), ratio.std(ddof=1)))
        assert (group.error, group.error_std) == pytest.approx((error.mean(), error.std(ddof=1)))
        xs, ys = plot.spread_bars.getOriginalDataset()
        assert len(xs) == 4
        assert xs[1] - xs[0] == pytest.approx(2 * ratio.std(ddof=1)) and ys[0] == ys[1] == pytest.approx(error.mean())
        assert ys[3] - ys[2] == pytest.approx(2 * error.std(ddof=1)) and xs[2] == xs[3] == pytest.approx(ratio.mean())
        assert "repeats: mean ± std" in [label.text for _, label in plot.legend.items]

    compare.group_box.setChecked(False)                      # each run's own row again, no group row
    assert sorted(compare._path(r) for r in _visible_rows(table)) == sorted(paths)
    assert table.rowCount() == 3
    compare.group_box.setChecked(True)
    table.clearSelection()
    table.selectRow(_visible_rows(table)[0])
    compare.remove_selected()                                # removing the group removes its runs
    assert table.rowCount() == 0 and compare.groups() == []


def test_a_bar_past_zero_stops_short_of_it_on_the_log_axis():
    xs, ys = bar_segments([Spread(["a", "b"], ratio=10.0, ratio_std=2.0, error=1.0, error_std=1.5)])
    assert list(xs) == [8.0, 12.0, 10.0, 10.0]
    assert list(ys) == [1.0, 1.0, 0.01, 2.5]


def test_group_row_latency_is_over_the_measured_repeats(qapp):
    from types import SimpleNamespace

    from workbench.engine.deploy_report import DeployReport, FormResult, add_speedups
    from workbench.gui.compare_view import CompareView

    def report(ref_ms, dense_ms):
        r = DeployReport("run.h5", "magnitude", "mlp_tiny", "tiny", threads=1, batches=[1], repeats=3,
                         forms=[FormResult("reference", "pytorch", "cpu", samples_ms={1: [ref_ms] * 3}),
                                FormResult("dense", "pytorch", "cpu", samples_ms={1: [dense_ms] * 3})])
        add_speedups(r)
        return r

    traces = [SimpleNamespace(deploy=report(2.0, 1.0)), SimpleNamespace(deploy=report(3.0, 1.5)),
              SimpleNamespace(deploy=None)]
    latency, speedup = CompareView._group_deploy(traces)
    assert latency.value == pytest.approx(1.25) and latency.text() == f"1.25\n±{np.std([1.0, 1.5], ddof=1):.3g}"
    assert speedup.value == pytest.approx(2.0) and speedup.text() == "2.00\n±0.00"
    assert "2 of 3 repeats" in latency.toolTip()


def test_fit_columns_shrinks_the_capped_columns_when_the_table_is_too_narrow(qtbot):
    from PySide6.QtWidgets import QTableWidget, QTableWidgetItem

    from workbench.gui.compare_view import fit_columns

    headers = ["Run", "Acc", "Key parameters"]
    table = QTableWidget(1, 3)
    qtbot.addWidget(table)
    table.resize(300, 200)
    table.show()
    for col, text in enumerate(["a long run name " * 4, "99.99", "target=flops, flops_target=0.5 " * 4]):
        table.setItem(0, col, QTableWidgetItem(text))
    fit_columns(table, headers, {"Run": 175, "Key parameters": 260}, least=40)
    widths = [table.columnWidth(c) for c in range(3)]
    assert sum(widths) <= table.viewport().width()          # no sideways scrolling
    assert widths[1] >= table.sizeHintForColumn(1)          # the number keeps its width
    assert widths[2] == 40 or widths[0] == 175              # the last capped column gave way first
    table.resize(1200, 200)
    fit_columns(table, headers, {"Run": 175, "Key parameters": 260}, least=40)
    assert table.columnWidth(0) >= 175                      # room again: back to (at least) the cap
