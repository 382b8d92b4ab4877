"""Pieces of the training loop: optimizer, learning-rate schedule, evaluation."""

from __future__ import annotations

import math
import time
from typing import Callable, Iterator

import torch
from torch import nn

from workbench import data as data_mod
from workbench.core.config import TrainParams
from workbench.core.events import CancelToken, Progress

PROGRESS_SECONDS = 0.25


class DeviceData:
    """The data set's tensors on the training device (moved once, not per batch)."""

    def __init__(self, dataset, device: torch.device):
        self.train_x = dataset.train_x.to(device)
        self.train_y = dataset.train_y.to(device)
        self.test_x = dataset.test_x.to(device)
        self.test_y = dataset.test_y.to(device)


class Clock:
    """Steps done over the whole run, for progress and ETA."""

    def __init__(self, total_steps: int):
        self.started = time.perf_counter()
        self.total = total_steps
        self.step = 0
        self.train_seconds = 0.0

    def times(self) -> tuple[float, float]:
        elapsed = time.perf_counter() - self.started
        rate = self.train_seconds / self.step if self.step else 0.0
        return elapsed, rate * (self.total - self.step)


def build_optimizer(train: TrainParams, groups: list[dict]) -> torch.optim.Optimizer:
    for g in groups:
        g.setdefault("lr", train.lr)
        g["base_lr"] = g["lr"]
    if train.optimizer == "adam":
        return torch.optim.AdamW(groups, lr=train.lr, betas=(train.momentum, 0.999),
                                 weight_decay=train.weight_decay)
    return torch.optim.SGD(groups, lr=train.lr, momentum=train.momentum,
                           nesterov=train.nesterov and train.momentum > 0, weight_decay=train.weight_decay)


def optimizer_for(model: nn.Module, method, train: TrainParams) -> torch.optim.Optimizer:
    """The method's parameter groups (e.g. mixture parameters with their own rate), else all weights."""
    groups = method.param_groups(model) or [{"params": [p for p in model.parameters() if p.requires_grad]}]
    return build_optimizer(train, groups)


def lr_factor(schedule: str, step: int, total: int) -> float:
    """Multiplier of each group's base learning rate at `step` of `total`."""
    if total <= 0 or schedule == "constant":
        return 1.0
    t = min(step / total, 1.0)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t))
    if schedule == "onecycle":
        # Smith & Topin 2019: linear warm-up over the first 30% from 1/25, then cosine annealing.
        warm = 0.3
        if t < warm:
            return 0.04 + 0.96 * t / warm
        return 0.5 * (1.0 + math.cos(math.pi * (t - warm) / (1 - warm)))
    if schedule == "step":
        return 1.0 if t < 0.5 else 0.1 if t < 0.75 else 0.01
    raise ValueError(f"unknown schedule {schedule!r}")


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> float:
    for g in optimizer.param_groups:
        g["lr"] = g["base_lr"] * factor
    return optimizer.param_groups[0]["lr"]


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000
             ) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) on the given set."""
    was_training = model.training
    model.eval()
    correct = 0
    loss = 0.0
    for i in range(0, len(x), batch_size):
        out = model(x[i:i + batch_size])
        target = y[i:i + batch_size]
        loss += float(nn.functional.cross_entropy(out, target, reduction="sum"))
        correct += int((out.argmax(1) == target).sum())
    model.train(was_training)
    n = max(len(x), 1)
    return correct / n, loss / n


def check_finite(loss: float, step: int, epoch: int, stage: int) -> None:
    # Pixels are checked finite when a data set is loaded (data.dataset.make_dataset), so a loss that
    # is not comes from training itself: the learning rate is the likely cause.
    if not math.isfinite(loss):
        raise FloatingPointError(f"training loss became {loss} at step {step} (stage {stage + 1}, "
                                 f"epoch {epoch + 1}); try a lower learning rate")


def train_step(model: nn.Module, method, optimizer: torch.optim.Optimizer, xb: torch.Tensor,
               yb: torch.Tensor, ctx) -> torch.Tensor:
    """One optimizer step with the method's hooks; returns the detached task loss (no sync)."""
    loss = nn.functional.cross_entropy(model(xb), yb)
    penalty = method.penalty(model, ctx)
    optimizer.zero_grad(set_to_none=True)
    (loss if penalty is None else loss + penalty).backward()
    optimizer.step()
    method.after_step(model, ctx)
    ctx.step += 1
    return loss.detach()


def train_epochs(model: nn.Module, method, train: TrainParams, data, ctx, cancel: CancelToken,
                 clock: Clock, generator: torch.Generator,
                 on_epoch_end: Callable[[int, float], Iterator[object]]) -> Iterator[object]:
    """The training loop of one stage: `train.epochs` passes with the method's hooks around each step.

    Yields Progress events (at most every PROGRESS_SECONDS) and whatever `on_epoch_end(epoch, loss)`
    yields. The loss is read back only at those points, so the GPU is not synchronised every step.
    """
    optimizer = optimizer_for(model, method, train)
    model.train()
    for epoch in range(train.epochs):
        ctx.epoch = epoch
        method.on_epoch_start(model, ctx)
        yield from on_epoch_end(-1, float("nan"))  # lets the caller pass on the method's messages
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=data.train_x.device)
        seen = 0
        last = t0
        for xb, yb in data_mod.batches(data.train_x, data.train_y, train.batch_size, shuffle=True,
                                       generator=generator):
            cancel.check()
            ctx.lr = set_lr(optimizer, lr_factor(train.lr_schedule, ctx.step, ctx.total_steps))
            loss_sum += train_step(model, method, optimizer, xb, yb, ctx)
            clock.step += 1
            seen += 1
            now = time.perf_counter()
            if now - last >= PROGRESS_SECONDS:
                mean = float(loss_sum) / seen
                clock.train_seconds += time.perf_counter() - t0
                check_finite(mean, clock.step, epoch, ctx.stage)
                yield Progress(ctx.stage, epoch, clock.step, clock.total, mean, ctx.lr, *clock.times())
                t0 = last = time.perf_counter()  # time spent by the consumer is not training time
        clock.train_seconds += time.perf_counter() - t0
        mean_loss = float(loss_sum) / max(seen, 1)
        check_finite(mean_loss, clock.step, epoch, ctx.stage)
        method.on_epoch_end(model, ctx)
        yield from on_epoch_end(epoch, mean_loss)
