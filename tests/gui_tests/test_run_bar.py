"""The run bar: always in view below the Setup panel, whatever its scroll position and the window's size;
it says how a run ended (and keeps saying it); long errors wrap or end in "…" with the whole text in the
tooltip, never cut."""

from __future__ import annotations

import re

import pytest
from PySide6.QtCore import QPoint, QRect

from workbench.core.config import RunConfig, StageConfig
from workbench.core.events import Evaluated

WAIT_MS = 120_000


def _fully_shown(widget, window) -> bool:
    """Visible, inside the window and not clipped by any parent (e.g. a scroll area's viewport)."""
    if not widget.isVisible():
        return False
    top_left = widget.mapTo(window, QPoint(0, 0))
    inside = window.rect().contains(QRect(top_left, widget.size()))
    return inside and widget.visibleRegion().boundingRect() == widget.rect()


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080), (1000, 600)])
def test_run_controls_are_in_view_whatever_the_scroll_position(qtbot, window, size):
    window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    window.run_bar.set_error("run failed: something went wrong")
    scroll = window.setup_dock.scroll
    bar = scroll.verticalScrollBar()
    assert bar.maximum() > 0                         # the panel scrolls at every one of these sizes
    for position in (bar.minimum(), bar.maximum() // 2, bar.maximum()):
        bar.setValue(position)
        qtbot.wait(10)
        for widget in (window.run_button, window.cancel_button, window.progress, window.error_label):
            assert not scroll.isAncestorOf(widget)
            assert _fully_shown(widget, window), (size, position, widget)


def test_a_long_error_wraps_and_is_never_cut(qtbot, window):
    window.resize(1280, 800)
    window.show()
    qtbot.waitExposed(window)
    label = window.error_label
    path = "/home/someone/" + "a-very-long-folder-name/" * 5 + "model.pt2"   # one "word", no spaces
    window.show_error(f"run failed: {path}: no such file")
    # the layout settles on the event loop: wait for it rather than a fixed 10 ms (a GUI-thread garbage
    # collection in between made the fixed wait flaky); the label must still come to hold every line
    qtbot.waitUntil(lambda: label.height() >= label.heightForWidth(label.width()), timeout=2000)
    lines, elided = label.lines()
    assert 1 < len(lines) <= label.max_lines and not elided
    assert "".join(lines).replace(" ", "") == label.text().replace(" ", "")   # every character drawn
    assert label.height() >= label.heightForWidth(label.width())             # all lines fit
    assert _fully_shown(label, window)
    window.show_error("run failed: " + "a long explanation " * 80)
    qtbot.waitUntil(lambda: label.height() >= label.heightForWidth(label.width()), timeout=2000)
    lines, elided = label.lines()
    assert len(lines) == label.max_lines and elided and lines[-1].endswith("…")
    assert label.toolTip() == label.text()                                    # the whole text
    assert _fully_shown(label, window)
    assert label.height() >= label.heightForWidth(label.width())


def test_cancel_says_cancelled_at_its_percentage_and_keeps_saying_it(qtbot, window):
    window.methods.set_stages([StageConfig("plain", {}, {"epochs": 1000})])     # 4000 steps
    seen: list[tuple[str, str]] = []
    for name in ("started", "progress", "point", "finished", "queue_changed"):
        getattr(window.queue, name).connect(lambda *a, name=name: seen.append((name, window.progress.format())))
    points = []
    window.queue.point.connect(lambda path, ev: points.append(ev))
    window.run_button.click()
    assert window.progress.format() == "starting…"           # the last outcome gives way at once
    # cancel once training (after the reference point) has passed 1% of its steps
    ended = []
    window.queue.finished.connect(ended.append)
    bar = window.progress
    qtbot.waitUntil(lambda: bool(ended) or sum(isinstance(p, Evaluated) for p in points) >= 2
                    and bar.value() >= 0.01 * bar.maximum(), timeout=WAIT_MS)
    assert not ended, ended[0]                                # still running: it ends by the cancel below
    with qtbot.waitSignal(window.queue.finished, timeout=WAIT_MS) as blocker:
        window.cancel_button.click()
    assert blocker.args[0].status == "cancelled"
    qtbot.wait(300)                                           # whatever else the event loop had queued
    percent = round(100 * bar.value() / bar.maximum())
    assert 0 < percent < 100
    expected = f"cancelled at {percent}%"
    assert bar.format() == expected
    names = [name for name, _ in seen]
    done = names.index("finished")
    assert [f for _, f in seen[done:]] == [expected] * (len(seen) - done)   # not "idle" once the queue empties
    assert "queue_changed" in names[done:]
    assert all(f != "idle" for _, f in seen)
    # progress reports come at most every 0.25 s, so a fast run may have none: those that came had the ETA
    assert all(re.fullmatch(r"(pretraining  )?%p%  loss \d+\.\d{3}  ETA \d+:\d\d", f)
               for name, f in seen if name == "progress")
    assert not window.cancel_button.isEnabled()


def test_a_run_failing_before_it_starts_says_failed_in_the_apps_words(qtbot, window, tmp_path):
    config = RunConfig(dataset="tiny", stages=[StageConfig("plain", {}, {"epochs": 1})], out_dir=str(tmp_path))
    with qtbot.waitSignal(window.queue.finished, timeout=WAIT_MS) as blocker:
        window.queue.enqueue(config)                          # no model and no checkpoint: the core refuses
    core_message = blocker.args[0].error
    assert "--model" in core_message                          # the CLI's words...
    assert window.progress.format() == "failed"
    shown = window.error_label.text()
    assert shown.startswith("run failed: choose an Architecture") and "Checkpoint" in shown
    assert "--" not in shown and "--" not in window.statusBar().currentMessage()   # ...not the app's
