"""Screenshots of the app for the README: the main window during a run, and the comparison view.

    xvfb-run -a -s "-screen 0 1700x1050x24" python tests/benchmarks/gui_screenshots.py RUN.h5 [RUN.h5 ...]
    xvfb-run -a -s "-screen 0 1700x1050x24" python tests/benchmarks/gui_screenshots.py \
        --tab Mixture --layer fc1 --ratio storage_ratio --name sws-mixture SWS_RUN.h5

Opens the given finished runs, starts a short DNS run on LeNet-300-100 (MNIST, WORKBENCH_DATA), grabs
the window after a few epochs, then the Compare tab with all runs selected; writes
resources/screenshots/{main-window-run,compare}.png. With --tab, it only opens the run, shows that tab
beside the histogram (Kept per layer, Mixture, Spectrum) at the run's last point and writes
resources/screenshots/NAME.png.

    xvfb-run -a -s "-screen 0 1280x800x24" bash -c 'openbox & sleep 1; \
        python tests/benchmarks/gui_screenshots.py --deploy NAME RUN.h5 [RUN.h5 ...]'

With --deploy, it opens the runs (measured with `workbench deploy` first, so their files hold reports)
maximized on the screen as it is, selects them all, and writes NAME-compare.png and NAME-deploy.png
(the Compare and Deploy tabs), and says whether the Compare table scrolls sideways.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtWidgets import QApplication

from workbench.core.presets import preset_stages
from workbench.gui.compare_view import COLUMNS
from workbench.gui.main_window import MainWindow

# WORKBENCH_SHOTS: another folder (checking a layout without touching the README's pictures)
OUT = Path(os.environ.get("WORKBENCH_SHOTS") or Path(__file__).resolve().parents[2] / "resources" / "screenshots")


def finished_run_tab(path: str, tab: str, layer: str, name: str, ratio: str) -> int:
    app = QApplication(sys.argv[:1])
    w = MainWindow(QSettings(str(Path(tempfile.mkdtemp()) / "s.ini"), QSettings.IniFormat))
    w.resize(1680, 1020)
    w.show()
    w.open_runs([path])
    side = w.kept.parentWidget().parentWidget()

    def shoot():
        if path not in w.traces:
            QTimer.singleShot(200, shoot)
            return
        titles = [side.tabText(i) for i in range(side.count())]
        side.setCurrentIndex(titles.index(tab))
        w.histogram.select(layer, -1)
        if ratio:
            w.ratio_plot.set_ratio_kind(ratio)
        w.live_refresh.flush()
        OUT.mkdir(parents=True, exist_ok=True)
        QTimer.singleShot(500, lambda: (w.grab().save(str(OUT / f"{name}.png")), app.quit()))

    QTimer.singleShot(300, shoot)
    app.exec()
    w.queue.shutdown()
    print(f"wrote {OUT / f'{name}.png'}")
    return 0


def deploy_tabs(paths: list[str], name: str) -> int:
    app = QApplication(sys.argv[:1])
    w = MainWindow(QSettings(str(Path(tempfile.mkdtemp()) / "s.ini"), QSettings.IniFormat))
    w.showMaximized()
    w.open_runs(paths)

    def shoot():
        if not all(p in w.traces for p in paths):
            QTimer.singleShot(200, shoot)
            return
        w.tabs.setCurrentWidget(w.compare.parentWidget())
        # fastest first: the first selected run (whose table the Deploy tab shows) has a report
        w.compare.table.sortByColumn([n for n, _ in COLUMNS].index("Latency ms"), Qt.AscendingOrder)
        w.compare.table.selectAll()
        OUT.mkdir(parents=True, exist_ok=True)
        QTimer.singleShot(700, compare)

    def compare():
        w.grab().save(str(OUT / f"{name}-compare.png"))
        bar = w.compare.table.horizontalScrollBar()
        print(f"window {w.width()}x{w.height()}; Compare table scrolls sideways: {bar.maximum() > 0} "
              f"(table {w.compare.table.viewport().width()} px wide, columns "
              f"{sum(w.compare.table.columnWidth(c) for c in range(w.compare.table.columnCount()))} px)")
        w.tabs.setCurrentWidget(w.deploy_view)
        QTimer.singleShot(700, deploy)

    def deploy():
        w.grab().save(str(OUT / f"{name}-deploy.png"))
        app.quit()

    QTimer.singleShot(500, shoot)
    app.exec()
    w.queue.shutdown()
    print(f"wrote {OUT / f'{name}-compare.png'} and {OUT / f'{name}-deploy.png'}")
    return 0


def main() -> int:
    if "--deploy" in sys.argv:
        ap = argparse.ArgumentParser()
        ap.add_argument("--deploy", required=True, metavar="NAME")
        ap.add_argument("runs", nargs="+")
        a = ap.parse_args()
        return deploy_tabs(a.runs, a.deploy)
    if "--tab" in sys.argv:
        ap = argparse.ArgumentParser()
        ap.add_argument("run")
        ap.add_argument("--tab", required=True)
        ap.add_argument("--layer", default="fc1")
        ap.add_argument("--name", required=True)
        ap.add_argument("--ratio", default="", help="param_ratio or storage_ratio on the ratio plot")
        a = ap.parse_args()
        return finished_run_tab(a.run, a.tab, a.layer, a.name, a.ratio)
    app = QApplication(sys.argv[:1])
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "s.ini"), QSettings.IniFormat)
    settings.setValue("out_dir", tempfile.mkdtemp())
    w = MainWindow(settings)
    w.resize(1680, 1020)
    w.show()
    w.open_runs(sys.argv[1:])
    w.setup.set_parts({"model": "lenet300", "dataset": "mnist"})
    stages = preset_stages("dns-lenet300")
    stages[0].train["epochs"] = 12
    w.methods.set_stages(stages)
    points = []

    def on_point(path, ev):
        points.append(ev)
        if len(points) == 8:
            w.live_refresh.flush()       # draw the point just added before grabbing
            w.histogram.select("fc1", -1)
            OUT.mkdir(parents=True, exist_ok=True)
            w.grab().save(str(OUT / "main-window-run.png"))
            w.queue.cancel()

    def on_finished(fin):
        QTimer.singleShot(1500, compare)

    def compare():
        w.tabs.setCurrentIndex(1)
        w.compare.table.selectAll()
        w.compare.table.resizeColumnsToContents()
        QTimer.singleShot(500, lambda: (w.grab().save(str(OUT / "compare.png")), app.quit()))

    w.queue.point.connect(on_point)
    w.queue.finished.connect(on_finished)
    QTimer.singleShot(1500, w.queue_current)
    app.exec()
    w.queue.shutdown()
    print(f"wrote {OUT / 'main-window-run.png'} and {OUT / 'compare.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
