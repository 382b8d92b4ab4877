"""Measure deployment, wired: the Deploy tab's button (and the Run menu's action) queue a DeployJob for the
current run in the run queue, the run bar shows its progress and Cancel stops it, and the report comes
back into the run's trace, the Compare table and the Deploy tab.

A measurement is queued behind the run in progress (and runs queued after it wait for it), never run
beside one: each would disturb the other's timing, and `deploy` sets torch's process-wide thread count.
The worker thread measures and stores the report in the run file (deploy_job.measure); nothing here
touches a file or a model.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject

from workbench.core.errors import WorkbenchError
from workbench.core.events import Finished
from workbench.gui.deploy_job import DeployJob, DeployOptions, DeployOutcome

NO_RUN = "select a finished run in the Compare tab, then press Measure deployment"
UNMEASURABLE = ("failed",)        # a failed run may have no final model; an interrupted one keeps its last


class DeployControl(QObject):
    def __init__(self, window):
        super().__init__(window)
        self.w = window
        self.view = window.deploy_view
        self.view.measure_requested.connect(self.request)
        window.queue.measure_started.connect(self._started)
        window.queue.measure_progress.connect(self._progress)
        window.queue.measured.connect(self._measured)

    def request(self, options: DeployOptions | None = None) -> DeployJob | None:
        """Queue a measurement of the current run with `options` (the Deploy tab's choices when None).
        Returns the job, or None when it was refused (the reason is shown as one line)."""
        w = self.w
        trace = w.traces.get(w.focus_path)
        if trace is None:
            return self._refuse(NO_RUN)
        if trace.status in UNMEASURABLE:
            return self._refuse(f"{trace.label} {trace.status}: measure a completed, cancelled or interrupted run")
        if any(isinstance(j, DeployJob) and j.run_path == trace.path
               for j in [w.queue.current, *w.queue.pending()]):
            return self._refuse(f"the deployment of {trace.label} is already being measured or queued")
        if options is None:
            try:
                options = self.view.options()
            except WorkbenchError as exc:
                return self._refuse(str(exc))
        job = DeployJob(trace.path, trace.label, options, trust_code=bool(w.setup.config_parts().get("trust_code")))
        if w.queue.busy:
            self.view.say(f"queued: the {job.describe()} waits for the current {self._what_runs()} to end "
                          "(side by side, each would disturb the other's timing)")
        else:
            w.run_bar.queued()
            self.view.say(f"starting the {job.describe()}…")
        w.run_bar.set_error("")
        w.queue.enqueue(job)
        return job

    # --- from the queue ------------------------------------------------------------------------------
    def _started(self, job: DeployJob) -> None:
        o = job.options
        self.w.run_bar.started(f"measuring the {job.describe()}\n{o.threads} thread{'s' * (o.threads != 1)} · "
                               f"{Path(job.run_path).name}", 1)
        self.view.set_measuring(True)
        self.view.say(f"measuring the {job.describe()}…")

    def _progress(self, done: int, total: int, text: str) -> None:
        bar = self.w.progress
        if bar.maximum() != total:
            bar.setRange(0, max(total, 1))
        bar.setValue(done)
        bar.setFormat(f"%p%  {text}")
        self.view.say(f"{done}/{total}: {text}")

    def _measured(self, outcome: DeployOutcome) -> None:
        w, job = self.w, outcome.job
        self.view.set_measuring(False)
        w.run_bar.finished(Finished(job.run_path, outcome.status, {}, outcome.error))
        if outcome.status == "cancelled":
            self.view.say(f"the {job.describe()} was cancelled: nothing stored")
            w.show_status(f"deployment measurement cancelled; nothing stored in {Path(job.run_path).name}")
            return
        if outcome.status == "failed":
            self.view.say(f"the {job.describe()} failed: {outcome.error}", error=True)
            w.show_error(f"deployment of {job.label} failed: {outcome.error}")
            return
        trace = w.traces.get(job.run_path)
        if trace is not None:
            trace.deploy, trace.deploy_error = outcome.report, ""
            w.compare.add_or_update(trace)
        if outcome.stored:
            self.view.say(f"measured the {job.describe()}; stored in {Path(job.run_path).name}")
            w.show_status(f"deployment measured and stored in {Path(job.run_path).name}")
        else:                  # measured but not kept in the file (a run still being written)
            self.view.say(f"{job.label}: {outcome.error}", error=True)
            w.show_error(f"{job.label}: {outcome.error}")
        w.refresh_views()

    def _what_runs(self) -> str:
        return "measurement" if self.w.queue.measuring else "run"

    def _refuse(self, text: str) -> None:
        self.view.say(text, error=True)
        self.w.show_status(text)
        return None
