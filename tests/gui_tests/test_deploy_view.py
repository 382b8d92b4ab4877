"""The Deploy tab and the Compare table's deployment columns, offscreen, on real measurements: a finished
mlp_tiny run measured by `deploy()` (2 repeats, 64 test images, no memory processes) and stored in its
file; the button path measures through the run queue's worker; cancel stores nothing; a measurement
waits for the run in progress. Timings are never asserted (two shared cores), only that what is shown
is what the report holds."""

from __future__ import annotations

import csv
import math
import os
import shutil

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from workbench.core.config import RunConfig, StageConfig  # noqa: E402
from workbench.engine.deploy import deploy  # noqa: E402
from workbench.engine.deploy_report import (  # noqa: E402
    deploy_summary,  # noqa: E402
    read_report,
    store_report,
)
from workbench.engine.runner import execute  # noqa: E402
from workbench.gui.compare_view import COLUMNS  # noqa: E402
from workbench.gui.deploy_job import DeployJob, DeployOptions  # noqa: E402
from workbench.gui.plots.deploy_plot import EMPTY_NOTE  # noqa: E402

WAIT_MS = 120_000
FAST = DeployOptions(batches=(1, 8), threads=1, repeats=2, eval_samples=64, memory=False)
HEADERS = [name for name, _ in COLUMNS]
# Stamped as the runner names run files, so that each copy has its own label (run_trace.run_label)
NAMES = {"plain": "20260101-100001-mlp_tiny-magnitude-s0.h5", "measured": "20260101-100002-mlp_tiny-magnitude-s0.h5",
         "measured2": "20260101-100003-mlp_tiny-magnitude-s0.h5"}


def fastest_cpu_form(report):
    """The form the Compare table shows: the engine's pick (deploy_report.deploy_summary)."""
    best = deploy_summary(report)
    return None if best is None else report.form(best["form"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A finished run (no report: "plain.h5"), the same run with a stored report ("measured.h5"), and one
    with a second report of fewer forms ("measured2.h5"); the cache holds the run's reference."""
    base = tmp_path_factory.mktemp("deploy-runs")
    cache = base / "cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_CACHE", str(cache))
        config = RunConfig(dataset="tiny", model="mlp_tiny", out_dir=str(base / "out"), device="cpu",
                           pretrain_epochs=1, stages=[StageConfig("magnitude", {}, {"epochs": 1})])
        fin = list(execute(config))[-1]
        assert fin.status == "completed", fin.error
        paths = {name: base / file for name, file in NAMES.items()}
        for path in paths.values():
            shutil.copy(fin.run_path, path)
        store_report(paths["measured"], deploy(paths["measured"], batches=(1, 8), repeats=2, eval_samples=64,
                                               memory=False, threads=1))
        store_report(paths["measured2"], deploy(paths["measured2"], batches=(1, 8), repeats=2, eval_samples=64,
                                                memory=False, threads=1, forms=[]))
    return {"cache": cache, **paths}


@pytest.fixture
def files(runs, tmp_path, monkeypatch):
    """Copies of the module's runs for one test (a test may store into them), with its cache."""
    monkeypatch.setenv("WORKBENCH_CACHE", str(runs["cache"]))
    out = {}
    (tmp_path / "files").mkdir()
    for name, file in NAMES.items():
        out[name] = str(tmp_path / "files" / file)
        shutil.copy(runs[name], out[name])
    return out


def _open(window, qtbot, *paths):
    window.open_runs(list(paths))
    qtbot.waitUntil(lambda: all(p in window.traces and window.traces[p].status != "running" for p in paths),
                    timeout=WAIT_MS)


def _cell(window, path, header):
    return window.compare.table.item(window.compare._row_of(path), HEADERS.index(header))


def test_the_tab_draws_each_form_of_a_stored_report(window, qtbot, files):
    path = files["measured"]
    _open(window, qtbot, path)
    trace = window.traces[path]
    report = read_report(path)
    assert trace.deploy is not None and trace.deploy.to_json() == report.to_json()   # read with the file
    window.tabs.setCurrentWidget(window.deploy_view)
    plot = window.deploy_view.plot
    latency, size = plot.drawn("latency_ms"), plot.drawn("file_kib")
    names = [f.name for f in report.forms]
    timed = [f.name for f in report.forms if 1 in f.latency_ms]
    assert {"reference", "dense", "onnxruntime"} <= set(timed)
    assert plot.legend_names() == timed            # the reference first, then the forms as measured
    for f in report.forms:
        if f.name not in timed:                    # reported, not measured (e.g. csr where no layer wins)
            assert latency[f.name][0] == [] and f.note
            continue
        xs, ys, tips = latency[f.name]
        assert xs == pytest.approx([f.latency_ms[1]]) and ys == pytest.approx([f.accuracy * 100])
        assert size[f.name][0] == pytest.approx([f.file_bytes / 1024])
        assert tips[0].startswith(trace.label) and f"\n{f.name}: " in tips[0]
    assert all(not note.isVisible() for note in plot.notes)
    # the reference is the hollow ring, every form a filled symbol
    ref = plot._items["latency_ms"]["reference"]
    assert ref.opts["symbolBrush"] is None and ref.opts["symbol"] == "o"
    assert all(plot._items["latency_ms"][n].opts["symbolBrush"] is not None for n in timed if n != "reference")
    # the per-form table of the current run, with threads and machine above it
    view = window.deploy_view
    rows = view.table_text()
    assert [r[0] for r in rows] == names
    dense = rows[names.index("dense")]
    assert float(dense[1]) == pytest.approx(report.form("dense").latency_ms[1], rel=1e-3)
    assert float(dense[2].replace(",", "")) == pytest.approx(report.form("dense").throughput[8], rel=1e-3)
    assert float(dense[3]) == pytest.approx(report.form("dense").speedup["latency"], abs=0.006)
    assert float(dense[6]) == pytest.approx(report.form("dense").accuracy * 100, abs=0.006)
    assert dense[-1] == report.form("dense").description
    assert view.table.horizontalHeaderItem(2).text() == "Throughput\nb8 /s"
    assert "1 thread on" in view.title.text() and f"{report.platform['cpus']} CPUs" in view.title.text()
    # the Compare table: the fastest CPU form's batch-1 latency and speed-up, the form named in the tooltip
    fastest = fastest_cpu_form(report)
    assert fastest.name != "reference"
    assert float(_cell(window, path, "Latency ms").text()) == pytest.approx(fastest.latency_ms[1], rel=1e-2)
    assert float(_cell(window, path, "Speed-up").text()) == pytest.approx(fastest.speedup["latency"], abs=0.006)
    assert _cell(window, path, "Latency ms").toolTip().startswith(f"{fastest.name} (")


def test_without_a_report_the_tab_says_what_to_do(window, qtbot, files):
    _open(window, qtbot, files["plain"])
    plot = window.deploy_view.plot
    assert plot.drawn("latency_ms") == {} and plot.legend_names() == []
    assert [note.toPlainText() for note in plot.notes] == [EMPTY_NOTE, EMPTY_NOTE]
    assert "select a finished run and press Measure" in window.deploy_view.empty.text()
    assert _cell(window, files["plain"], "Latency ms").text() == ""
    assert _cell(window, files["plain"], "Speed-up").text() == ""


def test_measure_runs_in_the_worker_and_stores_the_report(window, qtbot, files):
    path = files["plain"]
    _open(window, qtbot, path)
    window.deploy_view.defaults = FAST
    window.deploy_view.batches.setText("1, 8")
    window.deploy_view.threads.setValue(1)
    window.deploy_view.repeats.setValue(2)
    steps = []
    window.queue.measure_progress.connect(lambda done, total, text: steps.append((done, total)))
    with qtbot.waitSignal(window.queue.measured, timeout=WAIT_MS) as blocker:
        window.deploy_view.measure_button.click()
        assert window.queue.measuring                         # handed to the worker, not run here
    outcome = blocker.args[0]
    assert outcome.status == "completed" and outcome.stored, outcome.error
    stored = read_report(path)
    assert stored is not None and stored.repeats == 2 and stored.batches == [1, 8] and stored.threads == 1
    assert steps and steps[-1][0] == steps[-1][1]             # progress reached its total
    assert window.progress.format() == "completed"
    assert window.traces[path].deploy is outcome.report
    assert [r[0] for r in window.deploy_view.table_text()] == [f.name for f in stored.forms]
    assert set(window.deploy_view.plot.drawn("latency_ms")) == {f.name for f in stored.forms}
    fastest = fastest_cpu_form(stored)
    assert float(_cell(window, path, "Latency ms").text()) == pytest.approx(fastest.latency_ms[1], rel=1e-2)


def test_cancel_stores_nothing(window, qtbot, files):
    path = files["plain"]
    _open(window, qtbot, path)
    window.deploy_view.defaults = FAST
    window.deploy_view.repeats.setValue(1000)        # long enough to be cancelled midway
    with qtbot.waitSignal(window.queue.measure_progress, timeout=WAIT_MS):
        window.deploy.request()
    assert window.cancel_button.isEnabled()
    with qtbot.waitSignal(window.queue.measured, timeout=WAIT_MS) as blocker:
        window.cancel_button.click()
    assert blocker.args[0].status == "cancelled"
    assert read_report(path) is None
    assert sorted(os.listdir(os.path.dirname(path))) == sorted(NAMES.values())     # no partial copy left
    assert window.progress.format().startswith("cancelled")
    assert "cancelled: nothing stored" in window.deploy_view.message.text()
    assert window.traces[path].deploy is None


def test_a_measurement_waits_for_the_run_in_progress(window, qtbot, files, monkeypatch):
    import threading

    from workbench.core.events import RunStarted
    from workbench.gui import worker

    release = threading.Event()          # the run holds after its first event until the job is queued:
    real_execute = worker.execute        # a tiny run could otherwise end before the request (seen in CI)

    def held(config, token=None):
        for event in real_execute(config, token):
            yield event
            if isinstance(event, RunStarted):          # the queue's `started`: hold until released
                release.wait(WAIT_MS / 1000)

    monkeypatch.setattr(worker, "execute", held)
    window.deploy_view.defaults = FAST
    window.methods.set_stages([StageConfig("magnitude", {}, {"epochs": 2})])
    order = []
    window.queue.finished.connect(lambda fin: order.append(("run finished", fin.run_path)))
    window.queue.measure_started.connect(lambda job: order.append(("measuring", job.run_path)))
    with qtbot.waitSignal(window.queue.started, timeout=WAIT_MS) as started:
        window.run_button.click()
    run_path = started.args[0].run_path
    job = window.deploy.request(FAST)              # the current run is the one running
    assert isinstance(job, DeployJob) and job.run_path == run_path
    assert not window.queue.measuring and window.queue.pending() == [job]
    assert window.queue_list.item(0).text() == f"queued: {job.describe()}"
    assert window.deploy.request(FAST) is None     # the same run is not queued twice
    with qtbot.waitSignal(window.queue.measured, timeout=WAIT_MS) as blocker:
        release.set()
    assert order == [("run finished", run_path), ("measuring", run_path)]
    assert blocker.args[0].stored and read_report(run_path) is not None


def test_bad_batch_sizes_are_one_line_and_queue_nothing(window, qtbot, files):
    _open(window, qtbot, files["plain"])
    window.deploy_view.batches.setText("1, big")
    window.deploy_view.measure_button.click()
    assert "batch sizes are whole numbers" in window.deploy_view.message.text()
    assert not window.queue.busy and window.queue.pending() == []


def test_compare_sorts_by_latency_and_speedup_and_exports_them(window, qtbot, files, tmp_path):
    paths = [files["plain"], files["measured"], files["measured2"]]
    _open(window, qtbot, *paths)
    table = window.compare.table
    for header in ("Latency ms", "Speed-up"):
        col = HEADERS.index(header)
        key = "latency" if header == "Speed-up" else None
        figures = {}
        for p in paths[1:]:
            form = fastest_cpu_form(read_report(p))
            figures[p] = form.speedup[key] if key else form.latency_ms[1]
        table.sortByColumn(col, Qt.AscendingOrder)
        shown = [table.item(r, 0).data(Qt.UserRole) for r in range(table.rowCount())]
        assert shown == sorted(paths[1:], key=figures.get) + [files["plain"]]   # blank sorts last
    out = tmp_path / "runs.csv"
    window.compare.write_csv(str(out))
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    by_label = {r["Run"]: r for r in rows}
    for p in paths[1:]:
        row = by_label[window.traces[p].label]
        form = fastest_cpu_form(read_report(p))
        assert math.isclose(float(row["Latency ms"]), form.latency_ms[1], rel_tol=1e-2)
        assert math.isclose(float(row["Speed-up"]), form.speedup["latency"], abs_tol=0.006)
    assert by_label[window.traces[files["plain"]].label]["Latency ms"] == ""
    assert {r["Method"] for r in rows} == {"magnitude"}          # hidden columns are exported too


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)])
def test_the_compare_table_fits_without_scrolling_sideways(window, qtbot, files, size):
    window.resize(*size)
    window.show()
    _open(window, qtbot, *files.values())
    window.tabs.setCurrentWidget(window.compare.parentWidget())
    table = window.compare.table
    qtbot.waitUntil(lambda: table.viewport().width() > 0)
    window.compare._fit_columns()
    assert table.horizontalScrollBar().maximum() == 0, (table.viewport().width(), [
        table.columnWidth(c) for c in range(table.columnCount())])
    assert [table.isColumnHidden(HEADERS.index(h)) for h in ("Method", "Model", "Data")] == [True] * 3
    run = table.item(0, 0)
    assert window.traces[run.data(Qt.UserRole)].label in run.toolTip()     # an elided name is whole there
