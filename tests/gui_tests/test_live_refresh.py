"""The staggered live refresh: one job per event-loop pass, newest job per key, selective discard."""

from workbench.gui.live_refresh import StaggeredRefresh


def test_jobs_run_one_per_pass_in_order_and_a_key_keeps_only_its_newest_job(qtbot):
    refresh = StaggeredRefresh(step_ms=1)
    ran = []
    refresh.schedule("a", lambda: ran.append("a1"))
    refresh.schedule("b", lambda: ran.append("b"))
    refresh.schedule("a", lambda: ran.append("a2"))     # replaces a1, keeps a's place before b
    assert ran == [] and refresh.pending() == ["a", "b"]
    qtbot.waitUntil(lambda: len(ran) >= 1, timeout=2000)
    assert ran[0] == "a2"
    qtbot.waitUntil(lambda: not refresh.pending(), timeout=2000)
    assert ran == ["a2", "b"]


def test_flush_runs_everything_and_discard_drops_only_what_it_is_asked_to(qtbot):
    refresh = StaggeredRefresh(step_ms=1000)
    ran = []
    for key in ("plot:1", "table:1", "plot:2"):
        refresh.schedule(key, lambda key=key: ran.append(key))
    refresh.discard(lambda key: key.startswith("plot:"))
    assert refresh.pending() == ["table:1"]
    refresh.flush()
    assert ran == ["table:1"] and refresh.pending() == []


def test_a_failing_job_does_not_block_the_ones_after_it(qtbot):
    refresh = StaggeredRefresh(step_ms=1)
    ran = []

    def boom():
        raise RuntimeError("plot broke")

    refresh.schedule("bad", boom)
    refresh.schedule("good", lambda: ran.append("good"))
    try:
        refresh.flush()
    except RuntimeError:
        pass
    refresh.flush()
    assert ran == ["good"]
