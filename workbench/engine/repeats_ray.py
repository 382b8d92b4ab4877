"""Repeats on Ray: the same set of repeats (engine.repeats) with each repeat a Ray task, as many at once as
the workers have CPUs (one each, and `gpus_per_trial` GPUs where asked), on this machine (`--ray local`)
or a cluster (`--ray ADDRESS`). Ray places the runs and reruns one whose worker died (`retries`); the
set, its names, seeds, files and summary are those of run_repeats.

A shared reference (a zoo model without --checkpoint) is pretrained here first, as run_repeats does; on a
cluster it is copied beside the run files (`--out`, a folder every worker sees at the same path) so every
worker starts from the same file. With --repeat-references each worker pretrains its seed's reference in
its own cache.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

from workbench.core.config import RunConfig
from workbench.core.errors import WorkbenchError
from workbench.core.events import Cancelled, Message
from workbench.engine.console import SIGNALS
from workbench.engine.repeats import Repeat, cancelled_before, check_repeats, reference_for_repeats, repeat_configs
from workbench.engine.tune_ray import connect, import_ray, slots


def _repeat_task(config_json: str) -> dict:
    """The Ray task: one repeat's run to its end in a worker; how it ended as a plain dict."""
    import socket

    import ray
    import torch

    from workbench.core.events import Finished
    from workbench.engine.runner import execute

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))   # one CPU per repeat
    config = RunConfig.from_json(config_json)
    where = f"{socket.gethostname()}:{os.getpid()} node {ray.get_runtime_context().get_node_id()[:8]}"
    try:
        finished = next(e for e in execute(config) if isinstance(e, Finished))
    except WorkbenchError as exc:            # refused before its run file existed
        return {"run": "", "status": "failed", "error": str(exc), "summary": {}, "worker": where}
    return {"run": finished.run_path, "status": finished.status, "error": finished.error,
            "summary": dict(finished.summary), "worker": where}


def run_repeats_ray(config: RunConfig, n: int, own_references: bool, ray_options, printer: Callable,
                    done: Callable[[Repeat, int], None] = lambda repeat, total: None) -> list[Repeat]:
    """run_repeats with each repeat a Ray task; `done` sees each repeat as it ends (in the order they
    end), the result is in seed order. Ctrl-C / SIGTERM cancel the running repeats (their files end
    `cancelled`)."""
    check_repeats(config, n, own_references)
    ray = import_ray()
    try:
        checkpoint = reference_for_repeats(config, own_references, printer)
    except Cancelled:
        return cancelled_before(config, n)
    configs = repeat_configs(config, n, checkpoint)
    out = Path(config.out_dir or "runs").resolve()          # the same path for every worker
    out.mkdir(parents=True, exist_ok=True)
    if checkpoint and ray_options.address != "local":
        shared = out / f"{Path(configs[0].name).name.rsplit('-s', 1)[0]}-reference{Path(checkpoint).suffix}"
        shutil.copyfile(checkpoint, shared)        # the cache is this machine's: the workers read --out
        checkpoint = str(shared)
    for c in configs:
        c.out_dir = str(out)
        if checkpoint:
            c.checkpoint = checkpoint
        if ray_options.gpus_per_trial and c.device == "auto":
            c.device = "cuda"                       # Ray sets CUDA_VISIBLE_DEVICES to the task's GPUs
    started = connect(ray, ray_options)
    task = ray.remote(_repeat_task).options(num_cpus=1, num_gpus=ray_options.gpus_per_trial,
                                            max_retries=ray_options.retries, retry_exceptions=False)
    printer(Message(f"{n} repeats on Ray ({ray_options.address}), {slots(ray, ray_options)} at once"))
    pending = {task.remote(c.to_json()): i for i, c in enumerate(configs)}
    results: dict[int, Repeat] = {}
    try:
        while pending:
            if SIGNALS.received:                     # Ctrl-C: the running repeats end cancelled
                for ref in pending:
                    ray.cancel(ref)
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                i = pending.pop(ref)
                try:
                    d = ray.get(ref)
                    result = Repeat(i, configs[i].seed, d["run"], d["status"], d["error"], d["summary"])
                    result.worker = d["worker"]
                except ray.exceptions.TaskCancelledError:
                    result = Repeat(i, configs[i].seed, "", "cancelled", "cancelled")
                except ray.exceptions.RayError as exc:      # its worker died past the retries
                    text = str(exc).strip().splitlines()
                    result = Repeat(i, configs[i].seed, "", "failed",
                                    f"{type(exc).__name__}: {text[0] if text else ''}"[:300])
                results[i] = result
                done(result, n)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
    return [results[i] for i in sorted(results)]
