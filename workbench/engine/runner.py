"""The one training loop, as a generator of events.

`execute(config)` resolves data, model and device, opens the run file, runs the stages of the pipeline
(each: method.prepare -> epochs of training with the method's hooks -> method.finalize) and yields
events. The CLI prints them; the GUI's worker thread turns them into Qt signals. Cancellation is a token
checked every batch: a cancelled run ends normally, with its file closed and marked `cancelled`. Any
error closes the file as `failed` with a one-line reason, keeping everything recorded so far.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Collection, Iterator

import numpy as np
import torch

from workbench import data as data_mod
from workbench.core import params as P
from workbench.core.accounting import account
from workbench.core.config import RunConfig, train_params
from workbench.core.devices import describe, pick_device
from workbench.core.errors import WorkbenchError
from workbench.core.events import Cancelled, CancelToken, Evaluated, Finished, Message, RunStarted
from workbench.core.stats import hist_edges, layer_point
from workbench.core.store import RunFileExists, RunWriter
from workbench.engine.configure import cli_command, complete
from workbench.engine.reference import load_user_model, resolve_model
from workbench.engine.training import Clock, DeviceData, evaluate, train_epochs
from workbench.methods import get_method
from workbench.methods.base import Method, RunContext
from workbench.models import architecture, structure
from workbench.models.layers import compressible_layers, layer_kind


def load_data(config: RunConfig) -> data_mod.Dataset:
    dataset = data_mod.load_dataset(config.dataset, config.data_dir or None)
    if config.train_subset or config.test_subset:       # 0 (or None in older files): the whole split
        dataset = dataset.subset(config.train_subset or None, config.test_subset or None, seed=config.seed)
    return dataset


POINT_KINDS = ("reference", "epoch", "finalized")   # /metrics/point_kind stores the index


def run_path_for(config: RunConfig, tried: Collection[Path] = ()) -> Path:
    """The first free run-file name, NAME.h5, NAME-2.h5, ...; also past the names in `tried`: ones found
    free but taken (by another process) before the run file could be created."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = config.name or f"{stamp}-{config.model or 'model'}-{config.method_label}-s{config.seed}"
    path = Path(config.out_dir) / f"{base}.h5"
    i = 1
    while path.exists() or path in tried:
        i += 1
        path = Path(config.out_dir) / f"{base}-{i}.h5"
    return path


def _batches_for(data, batch_size: int, seed: int):
    """RunContext.train_batches: a fresh shuffled pass each call, from its own generator (the training
    loop's order is untouched)."""
    def batches():
        return data_mod.batches(data.train_x, data.train_y, batch_size, shuffle=True,
                                generator=torch.Generator().manual_seed(seed))
    return batches


def execute(config: RunConfig, cancel: CancelToken | None = None) -> Iterator[object]:
    """Run a whole pipeline; yields RunStarted, Message, Progress, Evaluated, ..., Finished."""
    cancel = cancel or CancelToken()
    complete(config)                  # the run file holds the whole validated config, whoever made it
    methods = [get_method(s.method)(P.build(get_method(s.method).Params, s.params)) for s in config.stages]
    trains = [train_params(s.train) for s in config.stages]
    device = pick_device(config.device)
    dataset = load_data(config)
    # A bad checkpoint or a model that does not fit is bad input: refuse it before a run file exists.
    brought = config.checkpoint or (config.model and architecture.is_model_file(config.model))
    preloaded = load_user_model(config, dataset, device) if brought else None
    attrs = {"config": config.to_json(), "method": config.method_label, "model": config.model or "",
             "dataset": dataset.name, "dataset_source": dataset.source, "device": describe(device),
             "seed": config.seed, "preset": config.preset or "", "cli": cli_command(config)}
    if cancel.cancelled:            # stopped while loading (e.g. SIGTERM at start-up): no run file at all
        yield Finished("", "cancelled", {}, "cancelled before the run started")
        return
    path, tried = run_path_for(config), []
    while True:
        try:
            writer = RunWriter(path, attrs)
            break
        except RunFileExists:       # created by another process since the name was chosen: the next one
            tried.append(path)
            if len(tried) >= 1000:  # not a race any more: something keeps refusing every name
                raise WorkbenchError(f"cannot create a run file in {config.out_dir}: {len(tried)} names "
                                     "refused as existing") from None
            path = run_path_for(config, tried)
    status, error, summary = "failed", "", {}
    try:
        yield from _execute(config, cancel, methods, trains, device, dataset, writer, preloaded)
        status = "completed"
        summary = dict(writer.f["summary"].attrs)
    except Cancelled:
        status = "cancelled"
    except (WorkbenchError, FloatingPointError) as exc:     # incl. DiskFull: "disk full: ...; N points kept"
        error = str(exc)
    except (GeneratorExit, KeyboardInterrupt) as exc:  # the consumer stopped listening, or a second Ctrl-C
        status, error = "cancelled", "interrupted"
        if isinstance(exc, KeyboardInterrupt):
            exc.run_path = str(path)        # the CLI names the file it kept
        raise
    except Exception as exc:  # noqa: BLE001 - record any failure in the run file, then report it
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
    finally:
        try:
            writer.finish(status, error=error)
        except WorkbenchError as exc:   # no room even for the end: the file keeps its last whole image
            if status == "failed":
                error = f"{error} (the file could not be marked failed)"
            else:
                status, error, summary = "failed", str(exc), {}
    yield Finished(str(path), status, {k: _plain(v) for k, v in summary.items()}, error)


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


def _execute(config, cancel, methods: list[Method], trains, device, dataset, writer, preloaded
             ) -> Iterator[object]:
    torch.manual_seed(config.seed)
    model, meta = yield from resolve_model(config, dataset, device, cancel, preloaded)
    writer.set_attrs(model=meta["model_key"] or "", model_spec=meta.get("model_spec", ""),
                     model_source=meta["source"], reference_accuracy=meta.get("test_accuracy", float("nan")))
    edges = {}
    for name, module in compressible_layers(model):
        edges[name] = hist_edges(module.weight)
        writer.add_layer(name, shape=tuple(module.weight.shape), kind=layer_kind(module),
                         dense_params=sum(p.numel() for p in module.parameters()), hist_edges=edges[name])
    data = DeviceData(dataset, device)
    total_steps = sum(t.epochs * data_mod.num_batches(len(data.train_x), t.batch_size) for t in trains)
    clock = Clock(total_steps)
    yield RunStarted(str(writer.path), {"config": config.to_json()}, describe(device), total_steps,
                     list(edges), edges)
    reference = _point(model, methods[0], data, edges, writer, config.huffman, stage=0, epoch=0, step=0,
                       label="reference", clock=clock, extra={"train_loss": float("nan")})
    yield reference
    gen = torch.Generator().manual_seed(config.seed)
    final = reference
    notices: list[str] = []           # warnings, kept in the run file's `warnings` attribute

    def warn(text: str) -> Message:
        """A warning for the user, kept in the run file first (a crash later does not lose it)."""
        notices.append(text)
        writer.set_attrs(warnings="\n".join(notices))
        writer.flush()
        return Message(text, warning=True)

    for stage, (method, train) in enumerate(zip(methods, trains)):
        steps_per_epoch = data_mod.num_batches(len(data.train_x), train.batch_size)
        ctx = RunContext(device=device, steps_per_epoch=steps_per_epoch,
                         total_steps=train.epochs * steps_per_epoch, num_train=len(data.train_x),
                         num_train_full=dataset.full_train, stage=stage,
                         generator=torch.Generator().manual_seed(config.seed + 1000 + stage),
                         cancel=cancel, train_batches=_batches_for(data, train.batch_size, config.seed + 2000 + stage))
        messages: list[str] = []
        ctx.log = messages.append
        cancel.check()
        method.prepare(model, ctx)

        before_final: list[float] = []      # the stage's last epoch point's accuracy (finalize_notice)

        def on_epoch_end(epoch: int, loss: float, method=method, train=train, ctx=ctx, messages=messages,
                         warned=[], before_final=before_final):
            while messages:
                yield Message(messages.pop(0))
            if epoch >= 0 and ((epoch + 1) % train.eval_every == 0 or epoch + 1 == train.epochs):
                point = _point(model, method, data, edges, writer, config.huffman, stage=ctx.stage,
                               epoch=epoch + 1, step=clock.step, label="epoch", clock=clock,
                               extra={"train_loss": loss, "lr": ctx.lr})
                yield point
                before_final[:] = [point.metrics["test_accuracy"]]
                notice = None if warned else stall_notice(point.metrics["test_accuracy"],
                                                          reference.metrics["test_accuracy"],
                                                          dataset.num_classes, method, ctx.stage, epoch + 1)
                if notice:
                    warned.append(notice)
                    yield warn(notice)

        yield from train_epochs(model, method, train, data, ctx, cancel, clock, gen, on_epoch_end)
        cancel.check()
        method.finalize(model, ctx)
        yield from on_epoch_end(-1, float("nan"))
        final = _point(model, method, data, edges, writer, config.huffman, stage=stage, epoch=train.epochs,
                       step=clock.step, label="finalized", clock=clock, extra={})
        yield final
        # the last stage's only: an earlier one's cut (low rank's truncation) is what the next stage fine-tunes
        notice = finalize_notice(before_final[0], final.metrics["test_accuracy"], method, stage) \
            if before_final and stage == len(methods) - 1 else None
        if notice:
            yield warn(notice)
    report = account(methods[-1].encode(model, huffman=config.huffman))
    summary = {
        "test_accuracy": final.metrics["test_accuracy"], "test_error": 1 - final.metrics["test_accuracy"],
        "reference_accuracy": reference.metrics["test_accuracy"], "param_ratio": report.param_ratio,
        "storage_ratio": report.storage_ratio, "bits": report.bits, "dense_bits": report.dense_bits,
        "stored_params": report.stored_params, "dense_params": report.dense_params,
        "wall_seconds": time.perf_counter() - clock.started, "train_seconds": clock.train_seconds,
        "steps": clock.step,
        "step_seconds": clock.train_seconds / clock.step if clock.step else float("nan"),
    }
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    spec = structure.structure_of(model)       # layers a method replaced, replayed when rebuilding
    writer.save_model(state, model_key=meta["model_key"] or "", model_spec=meta.get("model_spec", ""),
                      input_shape=list(dataset.input_shape),
                      num_classes=dataset.num_classes, config=config.to_json(), mean=list(dataset.mean),
                      std=list(dataset.std), **({"structure": structure.to_json(spec)} if spec else {}))
    for k, v in summary.items():
        writer.f["summary"].attrs[k] = v


def stall_notice(accuracy: float, reference_accuracy: float, num_classes: int, method: Method, stage: int,
                 epoch: int) -> str | None:
    """A one-line warning when a stage's test accuracy sits at chance (within 1.5x of 1 / classes) while
    the model it started from was well above it: the run goes on, but most likely to no use."""
    chance = 1.0 / max(num_classes, 1)
    if not (accuracy <= 1.5 * chance and reference_accuracy >= 3 * chance):
        return None
    return (f"stage {stage + 1} ({method.key}): test accuracy {accuracy:.1%} after epoch {epoch} is at chance "
            f"({chance:.0%}): training has stalled; {method.stall_hint()}")


FINALIZE_DROP_POINTS = 2.0     # test accuracy lost between a stage's last epoch and its finalized point


def finalize_notice(before: float, after: float, method: Method, stage: int) -> str | None:
    """A one-line warning when finishing a stage (snapping to shared values, baking masks, cutting ranks)
    cost more than FINALIZE_DROP_POINTS of test accuracy: the trained model was good and the stored one
    is not (soft weight-sharing from the MNIST settings on Fashion-MNIST: 90.9% -> 62.9% at the snap)."""
    drop = 100 * (before - after)
    if not drop > FINALIZE_DROP_POINTS:
        return None
    hint = method.finalize_hint()
    return (f"stage {stage + 1} ({method.key}): finishing the stage cost {drop:.1f} points of test accuracy "
            f"({before:.2%} after the last epoch, {after:.2%} as stored)" + (f"; {hint}" if hint else ""))


def _point(model, method: Method, data: DeviceData, edges, writer: RunWriter, huffman: bool, *, stage, epoch,
           step, label, clock: Clock, extra: dict) -> Evaluated:
    """Evaluate, account and record one point; returns the event."""
    accuracy, test_loss = evaluate(model, data.test_x, data.test_y)
    report = account(method.encode(model, huffman=huffman))
    state = method.effective_state(model)
    metrics = {"step": step, "epoch": epoch, "stage": stage, "point_kind": POINT_KINDS.index(label),
               "test_accuracy": accuracy,
               "test_loss": test_loss, "param_ratio": report.param_ratio,
               "storage_ratio": report.storage_ratio, "bits": report.bits,
               "wall_seconds": time.perf_counter() - clock.started, **extra}
    method_stats = method.epoch_stats(model)
    layers = {}
    by_layer = {r.layer: r for r in report.layers}
    for name, e in edges.items():
        weight = state.get(f"{name}.weight")
        if weight is None:
            dense = structure.dense_layer(model, name)      # factorised / thinned: the original shape
            if dense is None:
                continue
            weight = dense[0]
        entry = layer_point(weight, e)
        if name in by_layer:
            r = by_layer[name]
            entry.update(stored_params=r.stored_params, bits=r.bits, kept_fraction=r.kept_fraction)
        entry.update(method_stats.get(name, {}))
        layers[name] = entry
    writer.append_point(metrics, layers)
    return Evaluated(stage, epoch, step, metrics, layers, label)
