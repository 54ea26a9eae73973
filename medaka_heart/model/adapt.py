"""Few-shot fine-tuning of a model folder on a lab's own annotated frames, within a time budget.

The network keeps its architecture and input geometry; it is trained further on samples cut
from the annotated frames exactly as `medaka-heart train` cuts them (`samples`): whole-frame
windows for the coarse pass that finds the heart, jittered crops around it for the fine pass
that outlines it, both augmented (flips, affine, intensity, blur, noise) so that twenty frames
go a long way. Adam (`model.adam`) with warm-up and a cosine decay over the run's steps.

The run is measured in steps when `steps` is given (reproducible anywhere), else in seconds:
it trains until the time budget is spent and its learning-rate schedule follows the clock
(the share of the budget used), so a machine that slows down or speeds up mid-run (another
job on the same cores) still gets a whole schedule, warm-up to decay, in its budget.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .adam import Adam
from .augment import AugmentConfig
from .checkpoint import ModelInfo, load_checkpoint
from .data import FramePool, SequenceData
from .device import cpu_threads, resolve_device
from .losses import get_loss
from .samples import ViewSpec
from .train import draw_batch
from .train_config import InputConfig, OptimConfig, TrainConfig
from .unet import UNet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdaptSettings:
    """How a model is adapted.

    seconds : training time budget, s (used when `steps` is None).
    steps : optimiser steps (None = as many as `seconds` allows, at most `max_steps`).
    lr : peak learning rate of Adam; warmup_steps : linear warm-up before the cosine decay.
    p_coarse : share of whole-frame (coarse pass) samples, the rest crops around the heart.
    augment : the augmentation of the samples (see `augment.AugmentConfig`).
    recording_box : size fine crops from the recording's largest heart box (see
        `samples.ViewSpec.recording_box`), not each frame's own.
    """

    seconds: float = 240.0
    steps: int | None = None
    max_steps: int = 4000
    min_steps: int = 20
    batch_size: int = 8
    lr: float = 5e-4
    min_lr_fraction: float = 0.05
    warmup_steps: int = 30
    p_coarse: float = 0.3
    loss: str = "dice_bce"
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    recording_box: bool = True


@dataclass(frozen=True)
class Adapted:
    """A fine-tuned network and how it was made."""

    model: UNet
    info: ModelInfo  # the initial model's info (geometry, threshold); training left to caller
    steps: int
    seconds: float  # training wall time
    final_loss: float  # mean training loss of the last 50 steps


def view_spec_of(info: ModelInfo, recording_box: bool = True) -> ViewSpec:
    """The sample geometry of a model (its input size, crop scale, percentiles); fine crops
    sized from the recording's largest heart box as inference sizes them (`recording_box`,
    see `samples.ViewSpec`)."""
    spread = (max(1.2, info.crop_scale - 0.5), info.crop_scale + 0.6)
    return ViewSpec(size=info.input_size, coarse_size=info.coarse_size or info.input_size,
                    crop_scale=spread, low_percentile=info.low_percentile,
                    high_percentile=info.high_percentile, recording_box=recording_box)


def _train_config(info: ModelInfo, settings: AdaptSettings) -> TrainConfig:
    spec = view_spec_of(info, settings.recording_box)
    return TrainConfig(
        model=info.architecture,
        input=InputConfig(size=info.input_size, coarse_size=info.coarse_size,
                          crop_scale=info.crop_scale, crop_scale_range=spec.crop_scale,
                          p_coarse=settings.p_coarse if info.coarse_size else 0.0,
                          recording_box=settings.recording_box,
                          low_percentile=info.low_percentile,
                          high_percentile=info.high_percentile),
        optim=OptimConfig(batch_size=settings.batch_size, lr=settings.lr, loss=settings.loss,
                          seed=settings.seed),
        augment=settings.augment)


def _lr(step: int, progress: float, settings: AdaptSettings) -> float:
    """Learning rate at optimiser step `step` and `progress` (0-1, share of the run done): a
    linear warm-up over the first `warmup_steps` steps, then a cosine decay over progress."""
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    floor = settings.lr * settings.min_lr_fraction
    return floor + 0.5 * (settings.lr - floor) * (1 + math.cos(math.pi * min(progress, 1.0)))


def finetune(init: str, sequences: Sequence[SequenceData], settings: AdaptSettings,
             *, progress: bool = True) -> Adapted:
    """Fine-tune model folder or checkpoint `init` on the views of `sequences`.

    Seeded by `settings.seed`; with a fixed `steps` the run is the same on any machine (up to
    the device's arithmetic).
    """
    ckpt = load_checkpoint(init)
    config = _train_config(ckpt.info, settings)
    device = resolve_device(settings.device)
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(settings.threads))
    torch.manual_seed(settings.seed)
    model = ckpt.build_model().to(device)
    optimizer = Adam(model.parameters(), lr=settings.lr)  # model.adam: torch.optim.Adam's steps
    loss_fn = get_loss(settings.loss)
    pools, probs = [FramePool(list(sequences))], np.ones(1)
    rng = np.random.default_rng([settings.seed, 7919])
    start = time.perf_counter()

    def step(i: int, progress: float) -> float:
        for group in optimizer.param_groups:
            group["lr"] = _lr(i, progress, settings)
        x, y = draw_batch(pools, probs, rng, settings.batch_size, config)
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    model.train()
    losses: list[float] = []
    by_steps = settings.steps is not None
    budget = float(settings.steps) if settings.steps is not None else max(settings.seconds, 1e-3)

    def used() -> float:
        """Share of the run done: of its steps, or of its seconds."""
        spent = len(losses) if by_steps else time.perf_counter() - start
        return spent / budget

    def finished() -> bool:
        n = len(losses)
        if by_steps:
            return n >= budget
        return n >= settings.max_steps or (used() >= 1.0 and n >= settings.min_steps)

    with tqdm(total=100, desc="adapting", unit="%", disable=not progress) as bar:
        while not finished():
            losses.append(step(len(losses), used()))
            bar.update(min(100, int(100 * used())) - bar.n)
            if len(losses) % 10 == 1:
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", steps=len(losses))
    total = len(losses)
    log.info("%d steps in %.0f s", total, time.perf_counter() - start)
    model.eval()
    return Adapted(model.cpu(), dataclasses.replace(ckpt.info), total,
                   time.perf_counter() - start, float(np.mean(losses[-50:])))
