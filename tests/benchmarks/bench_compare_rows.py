"""The Compare table's cost per run added, for a study's worth of runs (a watched folder of trials).

    QT_QPA_PLATFORM=offscreen python tests/benchmarks/bench_compare_rows.py [--small 100] [--large 800]

Adds `small` and then `large` runs (in-memory traces, no files) to a CompareView one by one, each with its
place in the open order as the window gives it, and lets the event loop run after every 20 (a burst of
files read by the pool), so the coalesced column fits are counted. Prints the GUI-thread time per run
added at both sizes and their ratio: about 1 means the cost per run does not grow with the table.
Measured 2026-11-29 on the 2-core machine with two 1-thread trainings running beside it: 0.77 ms per run
at 100 runs, 1.99 ms at 800 (ratio 2.6; what is left grows with the column fits, one per burst). Before
the rows kept their items, ordered from the end and fitted columns once per burst: 2.75 ms at 100 and
9.95 ms at 400 (ratio 3.6); 600 runs added without an event loop took 16 s in all.
"""

from __future__ import annotations

import argparse
import time

from PySide6.QtWidgets import QApplication

from workbench.gui.compare_view import CompareView
from workbench.gui.run_trace import RunTrace


def per_run_ms(app: QApplication, n: int) -> float:
    view = CompareView()
    view.resize(1200, 400)
    view.show()
    opened: dict[str, int] = {}
    view.order = lambda p: opened.get(p, len(opened))
    started = time.perf_counter()
    for i in range(n):
        t = RunTrace(path=f"/runs/r{i:05d}.h5", label=f"r{i:05d}", method="dns", model="lenet5",
                     status="completed")
        t.config = {"seed": 0, "lr": i}          # distinct configs: no repeats to group
        t.summary = {"test_accuracy": 0.9, "reference_accuracy": 0.99, "param_ratio": 10.0,
                     "storage_ratio": 12.0, "bits": 8192.0 * i}
        opened[t.path] = i
        view.add_or_update(t)
        if i % 20 == 19:
            app.processEvents()
    app.processEvents()
    seconds = time.perf_counter() - started
    view.close()
    return 1e3 * seconds / n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=100)
    ap.add_argument("--large", type=int, default=800)
    args = ap.parse_args(argv)
    app = QApplication.instance() or QApplication([])
    small, large = per_run_ms(app, args.small), per_run_ms(app, args.large)
    print(f"{args.small} runs: {small:.2f} ms per run added; {args.large} runs: {large:.2f} ms per run added; "
          f"ratio {large / small:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
