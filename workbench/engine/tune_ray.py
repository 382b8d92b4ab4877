"""A study's trials as Ray tasks: the driver keeps Optuna's ask/tell loop (engine.tune) and Ray runs
each trial where there is room, one CPU (and `gpus_per_trial` GPUs) per trial.

Why ask/tell over plain Ray tasks and not Ray Tune with its OptunaSearch: the study is one Optuna
journal file beside the run files, whether the trials run here or on Ray, so resuming after a crash,
the results and the app's view are the same in both cases; Ray Tune would keep the study in its own
searcher state and experiment folder with its own resume. Ray does what a scheduler does: placing
trials on workers with free CPUs/GPUs, retrying a trial whose worker died (`retries`), connecting to a
cluster. Nothing here schedules beyond handing Ray one task per asked trial.

On a cluster, OUT must be a folder every worker sees at the same path (a shared file system): the
trials write their run files there and report to the study's journal there (for pruning). Workers need
the workbench installed, and the data sets where `--data-dir` / WORKBENCH_DATA say.
A worker killed mid-trial: Ray runs the trial again (a new run file, NAME-trial-0003-2.h5; the killed
attempt's file stays as the killed process left it, which readers show as `interrupted`); past
`retries` the trial is marked failed and the study goes on (tests/benchmarks/tune_ray_kill.py).
"""

from __future__ import annotations

import os

from workbench.core.config import RunConfig
from workbench.core.errors import WorkbenchError
from workbench.core.events import CancelToken
from workbench.engine.tune_objective import Objective, TrialResult

ENV_PASSED = ("WORKBENCH_CACHE", "WORKBENCH_DATA")     # a local Ray's workers see what this process sees


def _trial_task(config_json: str, number: int, params: dict, objective: Objective, storage: str | None,
                study_name: str, pruner) -> dict:
    """The Ray task: one trial in a worker process, its result as a plain dict."""
    import torch

    from workbench.engine.tune_trial import Reporter, run_trial

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))   # one CPU per trial
    import ray

    config = RunConfig.from_json(config_json)
    reporter = None if storage is None else Reporter.from_storage(storage, study_name, number, pruner)
    result = run_trial(config, number, params, objective, reporter)
    # host:pid names the process; on a cluster of several nodes on one host (or a node restarted on the
    # same host) the node says where Ray placed the trial
    result.worker += f" node {ray.get_runtime_context().get_node_id()[:8]}"
    return result.to_dict()


def import_ray():
    try:
        import ray
    except ImportError:
        raise WorkbenchError("--ray needs Ray: pip install 'compression-workbench[tune]' (or pip install "
                             "ray)") from None
    return ray


def connect(ray, options) -> bool:
    """Start a local Ray (`options.address` "local", `workers` CPUs) or join a cluster; True when this
    call started it (so the caller shuts it down). A tune study and a set of repeats connect alike."""
    if ray.is_initialized():
        return False
    try:
        if options.address == "local":
            ray.init(num_cpus=options.workers or os.cpu_count(), include_dashboard=False,
                     log_to_driver=False, configure_logging=False,
                     runtime_env={"env_vars": {k: os.environ[k] for k in ENV_PASSED if k in os.environ}})
        else:
            ray.init(address=options.address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise WorkbenchError(f"--ray {options.address}: cannot start or reach Ray: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return True


def slots(ray, options) -> int:
    """How many runs fit at once: one CPU each, and `gpus_per_trial` GPUs each where asked."""
    n = int(ray.cluster_resources().get("CPU", 1))
    if options.gpus_per_trial:
        gpus = ray.cluster_resources().get("GPU", 0)
        if gpus < options.gpus_per_trial:
            raise WorkbenchError(f"--gpus-per-trial {options.gpus_per_trial:g}: the Ray cluster has "
                                 f"{gpus:g} GPUs")
        n = min(n, int(gpus // options.gpus_per_trial))
    return max(n, 1)


class RayPool:
    """Trials submitted as Ray tasks; `wait` hands back those that ended."""

    def __init__(self, options, storage: str, study_name: str, pruner):
        ray = import_ray()
        self.ray, self.options = ray, options
        self.storage, self.study_name, self.pruner = storage, study_name, pruner
        self.pending: dict = {}              # ObjectRef -> (trial number, params)
        self.started = connect(ray, options)
        self.slots = slots(ray, options)
        self.task = ray.remote(_trial_task).options(num_cpus=1, num_gpus=options.gpus_per_trial,
                                                    max_retries=options.retries, retry_exceptions=False)

    def free(self) -> bool:
        return len(self.pending) < self.slots

    def submit(self, trial, config: RunConfig, objective: Objective) -> None:
        if self.options.gpus_per_trial and config.device == "auto":
            config.device = "cuda"           # Ray sets CUDA_VISIBLE_DEVICES to the trial's GPUs
        storage = None if objective.multi else self.storage
        ref = self.task.remote(config.to_json(), trial.number, dict(trial.params), objective, storage,
                               self.study_name, self.pruner)
        self.pending[ref] = (trial.number, dict(trial.params))

    def wait(self, cancel: CancelToken):
        """Yield (number, result) for trials that ended within about a second; on `cancel`, cancel the
        running tasks (their runs end `cancelled`) and yield them as failed."""
        if cancel.cancelled:
            for ref in self.pending:
                self.ray.cancel(ref)         # KeyboardInterrupt in the task: the run file closes cancelled
        ready, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=1.0)
        for ref in ready:
            number, params = self.pending.pop(ref)
            try:
                result = TrialResult.from_dict(self.ray.get(ref))
            except self.ray.exceptions.TaskCancelledError:
                result = TrialResult(number, params, "failed", error="cancelled")
            except self.ray.exceptions.RayError as exc:     # the worker died past its retries, or the task raised
                result = TrialResult(number, params, "failed", error=_first_line(exc))
            yield number, result

    def close(self) -> None:
        for ref in self.pending:
            self.ray.cancel(ref, force=True)
        self.pending.clear()
        if self.started:
            self.ray.shutdown()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
