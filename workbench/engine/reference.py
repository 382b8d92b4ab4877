"""The reference (uncompressed) model a run starts from: a user's checkpoint, or a zoo model pretrained
here and cached so that every method compared on it starts from the same weights."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterator

import platformdirs
import torch
from torch import nn

from workbench import data as data_mod
from workbench.core import params as P
from workbench.core.config import RunConfig, TrainParams
from workbench.core.errors import CheckpointError, WorkbenchError
from workbench.core.events import CancelToken, Message
from workbench.engine.configure import check_layer_names
from workbench.engine.training import Clock, DeviceData, evaluate, train_epochs
from workbench.methods.base import RunContext
from workbench.methods.plain import PlainTraining
from workbench.models import architecture, zoo
from workbench.models import checkpoint as ckpt

# Pretraining recipes measured on this project's CPU machine (see README, "Reference models").
# SGD + Nesterov with a one-cycle schedule and no weight decay: decay shrinks the first layer's weights
# and made soft weight-sharing much harder afterwards (measured when calibrating its defaults).
RECIPES = {
    "lenet300": {"epochs": 30, "lr": 0.1, "lr_schedule": "onecycle", "batch_size": 128},   # 98.53%
    "lenet5": {"epochs": 20, "lr": 0.05, "lr_schedule": "onecycle", "batch_size": 128},    # 99.23%
    # lenet300's recipe; not yet measured on this machine
    "mlp1000": {"epochs": 30, "lr": 0.1, "lr_schedule": "onecycle", "batch_size": 128},
    "resnet20": {"epochs": 60, "lr": 0.1, "lr_schedule": "onecycle", "weight_decay": 5e-4},
}
DEFAULT_RECIPE = {"epochs": 10, "lr": 0.05, "lr_schedule": "onecycle"}


def recipe(model_key: str, **overrides) -> TrainParams:
    values = {**RECIPES.get(model_key, DEFAULT_RECIPE), **{k: v for k, v in overrides.items() if v is not None}}
    return P.build(TrainParams, values)


def cache_dir() -> Path:
    return Path(os.environ.get("WORKBENCH_CACHE") or platformdirs.user_cache_dir("compression-workbench"))


def reference_path(model_key: str, dataset: data_mod.Dataset, train: TrainParams, seed: int) -> Path:
    key = json.dumps({"model": model_key, "data": dataset.name, "n": len(dataset.train_x),
                      "test": len(dataset.test_x), "train": P.to_dict(train), "seed": seed}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_dir() / "references" / f"{model_key}-{dataset.name.replace(':', '_').replace('/', '_')}-{digest}.pt"


def pretrain(model: nn.Module, dataset: data_mod.Dataset, train: TrainParams, device: torch.device,
             cancel: CancelToken, seed: int, clock: Clock | None = None) -> Iterator[object]:
    """Plain training of a fresh model; yields Progress events, returns the test accuracy."""
    model.to(device)
    data = DeviceData(dataset, device)
    steps_per_epoch = data_mod.num_batches(len(data.train_x), train.batch_size)
    ctx = RunContext(device=device, steps_per_epoch=steps_per_epoch,
                     total_steps=train.epochs * steps_per_epoch, num_train=len(data.train_x), stage=-1)
    clock = clock or Clock(ctx.total_steps)
    generator = torch.Generator().manual_seed(seed)
    yield from train_epochs(model, PlainTraining(), train, data, ctx, cancel, clock, generator,
                            lambda epoch, loss: iter(()))
    accuracy, _ = evaluate(model, data.test_x, data.test_y)
    return accuracy


def load_user_model(config: RunConfig, dataset: data_mod.Dataset, device: torch.device
                    ) -> tuple[nn.Module, dict]:
    """The model the user brought (a checkpoint, a graph file or a Python definition), on the device and
    checked against the data set and against the layers the stages' knobs name: (model, meta). Called
    before a run file exists, so a model that does not fit is one line and no file."""
    if config.model and architecture.is_model_file(config.model):
        model, meta = _user_architecture(config, dataset, device)
    else:
        model, meta = load_user_checkpoint(config, dataset, device)
    check_layer_names(config, model)
    return model, meta


def _user_architecture(config: RunConfig, dataset: data_mod.Dataset, device: torch.device
                       ) -> tuple[nn.Module, dict]:
    arch = architecture.parse_model_spec(config.model)
    built = architecture.build(arch, dataset.input_shape, dataset.num_classes, allow_code=config.trust_code)
    model = built.module
    source = f"{arch.kind}: {arch.spec}"
    if config.checkpoint:
        state = ckpt.load_state_dict_file(config.checkpoint, allow_code=config.trust_code)
        ckpt.load_into(model, state, f"{Path(config.checkpoint).name} (weights for {arch.label})")
        source += f", weights {config.checkpoint}"
    else:                  # the weights a graph file carries (the checkpoint's are checked as they load)
        problem = ckpt.nonfinite(model.state_dict())
        if problem:
            raise CheckpointError(f"{arch.label} holds NaN/inf weights: {problem}")
    model = model.to(device)
    architecture.check_fits(model, tuple(dataset.input_shape), dataset.num_classes, dataset.name, arch.label,
                            declared_shape=built.input_shape)
    trained = built.pretrained or bool(config.checkpoint)
    return model, {"model_key": "", "model_spec": arch.spec, "source": source, "trained": trained,
                   "arch": arch,
                   "message": f"loaded {arch.kind} model {arch.label}"
                              + (f" with weights from {config.checkpoint}" if config.checkpoint else "")
                              + ("" if trained else " (fresh weights: pretrained first)")}


def load_user_checkpoint(config: RunConfig, dataset: data_mod.Dataset, device: torch.device
                         ) -> tuple[nn.Module, dict]:
    """The user's checkpoint on the device, checked against the data set; (model, meta)."""
    loaded = ckpt.load_model_file(config.checkpoint, model_key=config.model,
                                  input_shape=dataset.input_shape, num_classes=dataset.num_classes,
                                  allow_code=config.trust_code)
    model = loaded.model.to(device)
    _check_fits(model, dataset, config.checkpoint)
    meta = {"model_key": loaded.model_key, "source": f"{loaded.source}: {config.checkpoint}",
            "message": f"loaded {loaded.source} checkpoint {config.checkpoint}"
                       + (f" as {loaded.model_key}" if loaded.model_key else ""),
            **{k: v for k, v in loaded.meta.items() if k == "test_accuracy"}}
    return model, meta


def resolve_model(config: RunConfig, dataset: data_mod.Dataset, device: torch.device,
                  cancel: CancelToken, preloaded: tuple[nn.Module, dict] | None = None
                  ) -> Iterator[object]:
    """Yields messages (and pretraining progress); returns (model on device, meta dict)."""
    if config.checkpoint or (config.model and architecture.is_model_file(config.model)):
        model, meta = preloaded or load_user_model(config, dataset, device)
        yield Message(meta["message"])
        if meta.get("trained", True):
            return model, meta
        return (yield from _pretrained_user_model(config, dataset, device, cancel, model, meta))
    if not config.model:
        raise WorkbenchError("give --model (a zoo architecture) or --checkpoint (a trained model)")
    # The initial weights come from the seed the cache key names, whoever calls (the run loop has just
    # seeded the same way, so runs are unchanged; a direct caller left the global generator anywhere, and
    # cached a seed-0 reference that seed 0 does not give)
    torch.manual_seed(config.seed)
    model = zoo.build_model(config.model, dataset.input_shape, dataset.num_classes)
    train = recipe(config.model, epochs=config.pretrain_epochs or None)
    path = reference_path(config.model, dataset, train, config.seed)
    if path.exists():
        try:
            loaded = ckpt.load_model_file(path, model_key=config.model)
            yield Message(f"using cached reference {config.model} ({loaded.meta.get('test_accuracy', 0):.2%}) "
                          f"from {path}")
            return loaded.model.to(device), {"model_key": config.model, "source": f"reference: {path}",
                                             "test_accuracy": loaded.meta.get("test_accuracy")}
        except CheckpointError:
            path.unlink(missing_ok=True)  # a damaged cache entry is rebuilt, not fatal
    yield Message(f"pretraining {config.model} on {dataset.name} for {train.epochs} epochs "
                  f"(cached for later runs at {path})")
    accuracy = yield from pretrain(model, dataset, train, device, cancel, config.seed)
    try:
        ckpt.save_reference(path, model.cpu(), model_key=config.model, input_shape=dataset.input_shape,
                            num_classes=dataset.num_classes, dataset=dataset.name, test_accuracy=accuracy,
                            extra={"recipe": json.dumps(P.to_dict(train))})
    except WorkbenchError as exc:
        yield Message(f"could not cache the reference model: {exc}")
    return model.to(device), {"model_key": config.model, "source": "pretrained in this run",
                              "test_accuracy": accuracy}


def _check_fits(model: nn.Module, dataset: data_mod.Dataset, path: str) -> None:
    """A clear error when the model does not take this data set's images or classes."""
    x = dataset.test_x[:2].to(next(model.parameters()).device)
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not take {dataset.name} inputs of shape "
                              f"{tuple(dataset.input_shape)}: {str(exc).splitlines()[0]}") from None
    if out.ndim != 2 or out.shape[1] != dataset.num_classes:
        raise CheckpointError(f"{path} predicts {out.shape[-1]} classes but {dataset.name} has "
                              f"{dataset.num_classes}")


def _pretrained_user_model(config, dataset, device, cancel, model: nn.Module, meta: dict) -> Iterator[object]:
    """A user architecture without weights: trained with the default recipe once, cached by the file's
    contents, data and seed (plain tensors, read back with weights_only)."""
    arch = meta["arch"]
    train = recipe("", epochs=config.pretrain_epochs or None)
    path = reference_path(f"user-{arch.digest().replace(':', '-')}", dataset, train, config.seed)
    if path.exists():
        try:
            cached = torch.load(path, map_location="cpu", weights_only=True)
            ckpt.load_into(model, cached["state_dict"], str(path))
            yield Message(f"using cached reference of {arch.label} ({float(cached['test_accuracy']):.2%}) "
                          f"from {path}")
            return model.to(device), {**meta, "source": f"{meta['source']}, reference {path}",
                                      "test_accuracy": float(cached["test_accuracy"])}
        except (OSError, KeyError, RuntimeError, CheckpointError, TypeError):
            path.unlink(missing_ok=True)      # a damaged cache entry is rebuilt, not fatal
    yield Message(f"pretraining {arch.label} on {dataset.name} for {train.epochs} epochs (cached for later "
                  f"runs at {path})")
    accuracy = yield from pretrain(model, dataset, train, device, cancel, config.seed)
    try:
        ckpt.save_tensors(path, {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                                 "test_accuracy": float(accuracy)})
    except WorkbenchError as exc:
        yield Message(f"could not cache the reference model: {exc}")
    return model.to(device), {**meta, "source": f"{meta['source']}, pretrained in this run",
                              "test_accuracy": accuracy}
