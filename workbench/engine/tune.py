"""Tuning studies: Optuna over a method's declared knobs, every trial an ordinary run file.

`tune(config, space, trials, objective, out_dir, ...)` (or a `Tuner`, for the app) drives a study with
Optuna's ask/tell: it asks for a trial's values, runs the trial (here, one after another; on Ray, as
many at once as there are workers: engine.tune_ray), tells the study how it went, and hands the
trial's result to `progress`. `cancel` (a CancelToken) stops it between batches: the running trials'
files are kept as `cancelled` and the trials do not count as finished. `Tuner.results()` may be read
from another thread while the study runs.

The study lives in OUT/NAME.journal beside the run files (OUT/NAME-trial-0007.h5). Running it again with
the same OUT and NAME resumes it: trials finished earlier count toward `trials`, trials a crash left
running are marked failed (`interrupted`) and do not count, so their work is done again. The study
records its objective and space; a resume that asks for others is refused. One driver at a time: a lock
file beside the journal refuses a second.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Callable

from workbench import __version__
from workbench.core.config import RunConfig
from workbench.core.errors import WorkbenchError
from workbench.core.events import CancelToken
from workbench.engine.configure import complete
from workbench.engine.tune_objective import Objective, TrialResult
from workbench.engine.tune_space import Space
from workbench.engine.tune_trial import Reporter, open_storage, run_trial

SAMPLERS = ("tpe", "gp")
PRUNERS = ("median", "none")


@dataclasses.dataclass
class RayOptions:
    """Where trials run on Ray: `address` "local" starts a Ray on this machine with `workers` CPUs (0:
    all of them); anything else is a running cluster's address."""

    address: str = "local"
    workers: int = 0
    gpus_per_trial: float = 0.0
    retries: int = 1                 # a trial whose worker died is run again this many times, then failed


@dataclasses.dataclass
class StudyResult:
    name: str
    storage: str
    objective: str
    trials: list[TrialResult]
    best: list[TrialResult]
    ran: int                          # trials run by this call
    wall_seconds: float

    def to_json(self) -> dict:
        counts = {s: sum(t.state == s for t in self.trials) for s in ("complete", "pruned", "failed")}
        return {"study": self.name, "storage": self.storage, "objective": self.objective,
                "trials": len(self.trials), **counts, "ran": self.ran, "wall_seconds": self.wall_seconds,
                "best": [t.to_dict() for t in self.best]}


def study_name_for(config: RunConfig) -> str:
    return f"{config.model or Path(config.checkpoint or 'model').stem}-{config.method_label}-{config.dataset}" \
        .replace("/", "_").replace(":", "_")


def was_interrupted(result: TrialResult) -> bool:
    """A trial the study's cancel or a crash cut short: not counted toward --trials, so a resumed study
    runs it again. A cancel can land before the trial's run starts, which the run loop reports as
    `failed` with "cancelled before the run started"; a cancelled run file says `cancelled`."""
    return result.state == "failed" and (result.error in ("cancelled", "interrupted")
                                         or result.error.startswith("cancelled")
                                         or result.run_status == "cancelled")


class Tuner:
    def __init__(self, config: RunConfig, space: Space, trials: int, objective: Objective, out_dir,
                 *, name: str | None = None, sampler: str = "tpe", pruner="median", ray: RayOptions | None = None,
                 enqueue: list[dict] | None = None):
        if trials < 1:
            raise WorkbenchError(f"--trials must be at least 1, got {trials}")
        if sampler not in SAMPLERS:
            raise WorkbenchError(f"--sampler {sampler!r}: expected one of {', '.join(SAMPLERS)}")
        if isinstance(pruner, str) and pruner not in PRUNERS:
            raise WorkbenchError(f"--pruner {pruner!r}: expected one of {', '.join(PRUNERS)}")
        self.config = dataclasses.replace(config, out_dir=str(Path(out_dir).resolve()), name=None)
        self.space, self.trials, self.objective = space, trials, objective
        self.out = Path(out_dir).resolve()         # the same path for Ray's workers, whatever their folder
        self.name = name or study_name_for(config)
        self.sampler_name, self.ray = sampler, ray
        self.enqueue = list(enqueue or [])        # values tried first in a new study (a preset's own)
        if objective.multi and pruner not in (None, "none"):
            if pruner != "median":       # asked for explicitly: say why it cannot be
                raise WorkbenchError("pruning needs a single objective (Optuna cannot prune a multi-objective "
                                     "study): use --objective ratio-at-drop=X or --pruner none")
            pruner = None
        self.pruner_spec = pruner
        self._lock = threading.Lock()
        self._results: dict[int, TrialResult] = {}

    @property
    def storage_path(self) -> Path:
        return self.out / f"{self.name}.journal"

    def results(self) -> list[TrialResult]:
        """Every trial so far (earlier runs of the study included), by number; safe from any thread."""
        with self._lock:
            return [dataclasses.replace(self._results[n]) for n in sorted(self._results)]

    def _record(self, result: TrialResult) -> None:
        with self._lock:
            self._results[result.number] = result

    # --- the study ---------------------------------------------------------------------------------

    def _pruner(self):
        import optuna

        if self.pruner_spec in (None, "none"):
            return optuna.pruners.NopPruner()
        if self.pruner_spec == "median":   # a trial below the median of earlier ones at the same epoch
            return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)
        return self.pruner_spec            # an optuna pruner given by the caller

    def _open(self, done_before: int):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        seed = self.config.seed + done_before      # a resumed study does not re-propose its first trials
        if self.sampler_name == "gp":
            try:
                import scipy  # noqa: F401 - Optuna's GP sampler needs it, and says so only mid-study
            except ImportError:
                raise WorkbenchError("--sampler gp needs scipy: pip install 'compression-workbench[tune]'") from None
            sampler = optuna.samplers.GPSampler(seed=seed)
        else:
            sampler = optuna.samplers.TPESampler(seed=seed)
        return optuna.create_study(storage=open_storage(self.storage_path), study_name=self.name,
                                   directions=self.objective.directions, sampler=sampler,
                                   pruner=self._pruner(), load_if_exists=True)

    def _check_record(self, study) -> None:
        record = {"objective": self.objective.text, "space": self.space.describe()}
        attrs = study.user_attrs
        if "objective" not in attrs:
            for k, v in {**record, "method": self.config.method_label, "model": self.config.model or "",
                         "dataset": self.config.dataset, "workbench_version": __version__}.items():
                study.set_user_attr(k, v)
            return
        for key, value in record.items():
            same = attrs.get(key) == value if key == "objective" else sorted(attrs.get(key, [])) == sorted(value)
            if not same:                          # the space's order is the declarations', not a setting
                mine = value if key == "objective" else " ".join(value)
                theirs = attrs[key] if key == "objective" else " ".join(attrs[key])
                raise WorkbenchError(f"study {self.name} in {self.out} was made with {key} {theirs}, not {mine}: "
                                     "resume it with the same settings, or give another --out or --study")

    def _load(self, study) -> int:
        """Earlier trials into the results; trials a crash left running marked failed. Returns how many
        finished trials count toward `trials`."""
        import optuna
        from optuna.trial import TrialState

        counted = 0
        for frozen in study.get_trials(deepcopy=False):
            if frozen.state == TrialState.RUNNING:        # its driver is gone (we hold the lock)
                trial = optuna.trial.Trial(study, frozen._trial_id)
                result = TrialResult(frozen.number, dict(frozen.params), "failed", error="interrupted")
                trial.set_user_attr("result", result.to_dict())
                trial.set_user_attr("interrupted", True)
                study.tell(frozen.number, state=TrialState.FAIL)
            elif frozen.state == TrialState.WAITING:
                continue
            else:
                data = frozen.user_attrs.get("result") or {"number": frozen.number, "params": dict(frozen.params)}
                result = TrialResult.from_dict(data)
                result.state = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}.get(frozen.state,
                                                                                                   "failed")
                counted += not frozen.user_attrs.get("interrupted", False)
            self._record(result)
        return counted

    def _tell(self, study, trial, result: TrialResult) -> None:
        from optuna.trial import TrialState

        interrupted = was_interrupted(result)
        trial.set_user_attr("result", result.to_dict())
        bound = self.objective.constraint(result)
        if bound is not None and result.state in ("complete", "pruned"):
            trial.set_constraint("bound", bound)     # what TPE and GP learn feasibility from
        if interrupted:
            trial.set_user_attr("interrupted", True)
        if result.state == "complete":
            study.tell(trial, result.values)
        else:
            study.tell(trial, state=TrialState.PRUNED if result.state == "pruned" else TrialState.FAIL)
        self._record(result)

    # --- running -----------------------------------------------------------------------------------

    def run(self, progress: Callable[[TrialResult], None] | None = None, cancel: CancelToken | None = None,
            events: Callable[[int, object], None] | None = None) -> StudyResult:
        """Run the study to `trials` finished trials (or until cancelled); `events(trial, event)`: the
        run events of trials run in this process (live views)."""
        cancel = cancel or CancelToken()
        started = time.perf_counter()
        complete(self.space.apply(self.config, {}))  # bad input fails here once, not in every trial
        self.out.mkdir(parents=True, exist_ok=True)
        ran = 0
        with _driver_lock(self.out / f"{self.name}.lock", self.name):
            study = self._open(0)
            self._check_record(study)
            done = self._load(study)
            study = self._open(done)                 # the sampler seeded past the trials already run
            if not study.trials:                     # a new study: its given starting points first
                for values in self.enqueue:
                    study.enqueue_trial(values)
            if self.ray is not None:
                from workbench.engine.tune_ray import RayPool

                pool = RayPool(self.ray, str(self.storage_path), self.name, self._pruner())
            else:
                pool = LocalPool(self, events, cancel)
            try:
                launched: dict[int, object] = {}
                while True:
                    while (not cancel.cancelled and pool.free() and done + len(launched) < self.trials):
                        trial = study.ask(self.space.distributions())
                        config = self.space.apply(self.config, trial.params)
                        config.name = f"{self.name}-trial-{trial.number:04d}"
                        launched[trial.number] = trial
                        self._record(TrialResult(trial.number, dict(trial.params)))
                        pool.submit(trial, config, self.objective)
                    if not launched:
                        break
                    for number, result in pool.wait(cancel):
                        self._tell(study, launched.pop(number), result)
                        ran += 1
                        if not was_interrupted(result):
                            done += 1
                        if progress is not None:
                            progress(result)
            finally:
                pool.close()
        results = self.results()
        return StudyResult(self.name, str(self.storage_path), self.objective.text, results,
                           self.objective.best(results), ran, time.perf_counter() - started)


class LocalPool:
    """Trials in this process, one at a time (the ask/tell loop's executor without Ray)."""

    def __init__(self, tuner: Tuner, events, cancel: CancelToken):
        self.tuner, self.events, self.cancel = tuner, events, cancel
        self.queued: list = []

    def free(self) -> bool:
        return not self.queued

    def submit(self, trial, config: RunConfig, objective: Objective) -> None:
        self.queued.append((trial, config, objective))

    def wait(self, cancel: CancelToken):
        trial, config, objective = self.queued.pop()
        reporter = None if objective.multi else Reporter(trial)
        yield trial.number, run_trial(config, trial.number, dict(trial.params), objective, reporter, cancel,
                                      self.events)

    def close(self) -> None:
        pass


@contextlib.contextmanager
def _driver_lock(path: Path, name: str):
    """Hold an exclusive lock on `path` while driving the study (fcntl where it exists)."""
    try:
        import fcntl
    except ImportError:                     # no fcntl (Windows): no lock, as before this existed
        yield
        return
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise WorkbenchError(f"study {name} is being run by another `workbench tune` (it holds {path})") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tune(config: RunConfig, space: Space, trials: int, objective: Objective, out_dir, *,
         name: str | None = None, sampler: str = "tpe", pruner="median", ray: RayOptions | None = None,
         progress: Callable[[TrialResult], None] | None = None, cancel: CancelToken | None = None,
         events: Callable[[int, object], None] | None = None) -> StudyResult:
    """Run (or resume) a study; see the module docstring and Tuner."""
    return Tuner(config, space, trials, objective, out_dir, name=name, sampler=sampler, pruner=pruner,
                 ray=ray).run(progress=progress, cancel=cancel, events=events)


def format_trial(r: TrialResult) -> str:
    """One line per trial: number, params, accuracy, ratio, state, run file."""
    params = " ".join(f"{k}={_short(v)}" for k, v in r.params.items())
    acc = "--" if r.accuracy is None else f"{100 * r.accuracy:.2f}%"
    ratio = "--" if r.storage_ratio is None else f"{r.storage_ratio:.1f}x"
    tail = f"  ({r.error})" if r.error and r.state != "complete" else ""
    return f"trial {r.number:<4} {params}  accuracy {acc}  ratio {ratio}  {r.state}  {r.run or '-'}{tail}"


def _short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else json.dumps(v) if isinstance(v, bool) else str(v)
