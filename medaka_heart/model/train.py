"""Training loop: Adam, seeded, resumable, one JSON line of metrics per epoch.

Output folder layout::

    out_dir/last.pt          checkpoint + optimizer state after the latest epoch (resume from it)
    out_dir/model/           best model folder by validation Dice (model.pt + config.json)
    out_dir/metrics.jsonl    {"epoch", "step", "train_loss", "val_loss", "val_dice", "lr", ...}
    out_dir/train_config.json

Randomness: epoch e draws its batches from numpy ``default_rng([seed, e])`` and seeds torch
with ``seed * 100003 + e``, so a resumed run continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import __version__
from ..io.atomic import write_text_atomic
from ..preprocess import normalise_intensity
from .checkpoint import ModelInfo, load_checkpoint, save_checkpoint, save_model_folder
from .data import (
    FramePool,
    SequenceData,
    cached,
    find_heartseg,
    find_pairs,
    find_synth,
    generate_scene_sequence,
    generate_sequence,
    load_pair_files,
    load_synth_video,
    split_by_sequence,
    toy_pairs,
    toy_scenes,
)
from .device import cpu_threads, resolve_device
from .folder import model_hash
from .inputs import COARSE, FINE, network_input, sees_beat
from .losses import get_loss
from .samples import ViewSpec, coarse_sample, fine_sample
from .train_config import SourceConfig, TrainConfig, load_train_config
from .unet import UNet, count_parameters

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """Where a run wrote its outputs and how well its best model did."""

    out_dir: Path
    model_dir: Path
    best_val_dice: float
    best_epoch: int
    epochs_run: int
    train_loss: float  # mean training loss of the last epoch


# ---------------------------------------------------------------------------- data

def view_spec(config: TrainConfig) -> ViewSpec:
    """The stored-view and sample geometry implied by the [input] section."""
    i = config.input
    return ViewSpec(size=i.size, coarse_size=i.coarse_size or i.size,
                    crop_scale=cast(tuple[float, float], tuple(i.crop_scale_range)),
                    crop_jitter=i.crop_jitter, recording_box=i.recording_box,
                    low_percentile=i.low_percentile, high_percentile=i.high_percentile)


def _pairs(src: SourceConfig, seed: int, frames_per_scene: int):
    if src.kind == "toy":
        return toy_pairs(seed)
    try:
        from ..phantom import iter_training_pairs
    except ImportError as exc:
        raise ValueError(f"phantom data source needs medaka_heart.phantom ({exc})") from None
    presets = tuple(src.presets) or ("typical",)
    return iter_training_pairs(seed=seed, preset=presets, frames_per_scene=frames_per_scene)


def _scenes(src: SourceConfig, seed: int):
    """Whole phantom scenes (frames, masks) for beat-plane models."""
    if src.kind == "toy":
        return toy_scenes(seed)
    from ..phantom import iter_training_scenes

    return iter_training_scenes(seed=seed, preset=tuple(src.presets) or ("typical",))


def uses_beat(config: TrainConfig) -> bool:
    """Whether the model takes beat planes in its fine pass (four input channels)."""
    return sees_beat(config.model.in_channels)


def _source_path(src: SourceConfig) -> str:
    """The folder of a finite source (SourceConfig requires one for these kinds)."""
    if src.path is None:
        raise ValueError(f"data source {src.kind!r} needs a path")
    return src.path


def _finite_sequences(src: SourceConfig, spec: ViewSpec) -> list[SequenceData]:
    if src.kind == "heartseg":
        files = find_heartseg(_source_path(src), src.subsets)
    elif src.kind == "pairs":
        files = find_pairs(_source_path(src))
    else:  # synth
        return [load_synth_video(name, v, m, spec, every=src.every)
                for name, v, m in find_synth(_source_path(src))]
    return [load_pair_files(f, spec) for f in files]


def _generated(src: SourceConfig, seed: int, n: int, config: TrainConfig, progress: bool,
               cache_dir: str | Path | None) -> SequenceData:
    spec, fps = view_spec(config), config.data.frames_per_scene
    key = {"source": dataclasses.asdict(src), "seed": seed, "n": n, "frames_per_scene": fps,
           "spec": dataclasses.asdict(spec), "version": __version__}
    name = f"{src.kind}/seed{seed}"
    if uses_beat(config):  # whole scenes, for their beat planes
        return cached(cache_dir, {**key, "scenes": True}, lambda: generate_scene_sequence(
            _scenes(src, seed), n, fps, spec, name, seed, progress))
    return cached(cache_dir, key, lambda: generate_sequence(
        _pairs(src, seed, fps), n, spec, name, progress))


def build_data(config: TrainConfig, progress: bool = False,
               cache_dir: str | Path | None = None
               ) -> tuple[list[FramePool], np.ndarray, list[FramePool], dict]:
    """Training pools, their sampling probabilities, validation pools, and a description.

    Finite sources are split by sequence. Generated sources give a pool of `pool_size` pairs
    from the training seed and a validation set from `data.val_seed` (+ source index), a seed
    never used for training; with `cache_dir` they are generated once and reused.
    """
    spec, d = view_spec(config), config.data
    pools, weights, val, described = [], [], [], []
    for i, src in enumerate(d.sources):
        entry: dict[str, Any] = {"kind": src.kind, "weight": src.weight}
        if src.kind in ("phantom", "toy"):
            train_seed = config.optim.seed * 1000 + i
            pools.append(FramePool([_generated(src, train_seed, d.pool_size, config, progress,
                                               cache_dir)], d.frames_per_scene))
            if d.val_generated > 0:
                val.append(FramePool([_generated(src, d.val_seed + i, d.val_generated, config,
                                                 progress, cache_dir)], d.frames_per_scene))
            entry.update(presets=list(src.presets), train_seed=train_seed, pairs=d.pool_size,
                         val_seed=d.val_seed + i)
        else:
            seqs = _finite_sequences(src, spec)
            train_seqs, val_seqs = split_by_sequence(seqs, d.val_fraction, config.optim.seed + i)
            pools.append(FramePool(train_seqs))
            if val_seqs:
                val.append(FramePool(val_seqs))
            entry.update(path=Path(_source_path(src)).name,
                         train_sequences=[s.name for s in train_seqs],
                         val_sequences=[s.name for s in val_seqs],
                         train_frames=sum(len(s) for s in train_seqs))
        weights.append(src.weight)
        described.append(entry)
    probs = np.asarray(weights, dtype=float) / sum(weights)
    return pools, probs, val, {"sources": described}


def coarse_share(config: TrainConfig) -> float:
    """Share of training samples that are whole-frame (coarse) views; 1 = a localiser."""
    return config.input.p_coarse if config.input.coarse_size else 0.0


def draw_batch(pools: list[FramePool], probs: np.ndarray, rng: np.random.Generator, n: int,
               config: TrainConfig, *, augment: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 1, S, S) float32 images (normalised as at inference) and 0/1 float32 masks.

    A share `input.p_coarse` are windows of whole-frame views, the rest crops around the heart
    (a share `input.off_target` of them centred off it).
    """
    spec = view_spec(config)
    aug = config.augment if augment else None
    p_coarse = coarse_share(config)
    uses_motion = config.model.in_channels == 3
    inputs, masks = [], []
    for k in rng.choice(len(pools), size=n, p=probs):
        data = pools[int(k)].data
        j = pools[int(k)].pick(rng)
        motion = beat = None
        if rng.random() < p_coarse:
            plane = pools[int(k)].motion_of(j) if uses_motion else None
            image, mask, motion = coarse_sample(data.coarse[j], data.coarse_masks[j], rng, spec,
                                                aug, motion=plane)
            pass_value = COARSE
        else:
            stats = data.stats_of(j) if uses_beat(config) else None
            image, mask, beat = fine_sample(data.context[j], data.context_masks[j], rng, spec,
                                            aug, config.input.off_target, stats)
            pass_value = FINE  # (unaugmented: never off target)
        inputs.append(network_input(image[None], config.model.in_channels, pass_value,
                                    motion, None if beat is None else beat[None])[0])
        masks.append(mask)
    return (torch.from_numpy(np.stack(inputs)),
            torch.from_numpy(np.stack(masks)[:, None].astype(np.float32)))


def validation_arrays(val: list[FramePool], config: TrainConfig
                      ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Validation inputs (N, C, S, S) float32 and masks (N, S, S) bool, per pass.

    "fine": deterministic crops around the heart (unless every sample is coarse, a
    localiser); "coarse" (two-pass models only): the whole coarse views with their scenes'
    motion planes, as the coarse pass sees them.
    """
    spec, channels = view_spec(config), config.model.in_channels
    if not any(len(pool) for pool in val):
        return {}
    out = {}
    if coarse_share(config) < 1.0:
        rng = np.random.default_rng(0)  # unused by deterministic crops
        beat = uses_beat(config)
        pairs = [fine_sample(pool.data.context[j], pool.data.context_masks[j], rng, spec, None,
                             stats=pool.data.stats_of(j) if beat else None)
                 for pool in val for j in range(len(pool))]
        beats = [p[2] for p in pairs if p[2] is not None]
        planes = np.stack(beats) if beat and len(beats) == len(pairs) else None
        out["fine"] = (network_input(np.stack([p[0] for p in pairs]), channels, FINE,
                                     beat=planes),
                       np.stack([p[1] for p in pairs]))
    if config.input.coarse_size:
        pct = (spec.low_percentile, spec.high_percentile)
        images = np.concatenate([p.data.coarse for p in val]).astype(np.float32) / 255.0
        images = normalise_intensity(images, *pct).astype(np.float32)
        motion = (np.concatenate([p.motion[p.scene] for p in val]).astype(np.float32) / 255.0
                  if channels == 3 else None)
        out["coarse"] = (network_input(images, channels, COARSE, motion),
                         np.concatenate([p.data.coarse_masks for p in val]))
    return out


# ---------------------------------------------------------------------------- evaluation

@torch.inference_mode()
def evaluate(model: UNet, images: np.ndarray, masks: np.ndarray, loss_fn, device: torch.device,
             batch_size: int = 32, threshold: float = 0.5) -> tuple[float, float]:
    """(mean loss, mean per-image Dice at `threshold`) of (N, C, S, S) inputs against masks.

    Dice of an empty prediction on an empty mask counts as 1.
    """
    model.eval()
    losses, dices, weights = [], [], []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(images[start:start + batch_size])
        y = torch.from_numpy(masks[start:start + batch_size, None].astype(np.float32))
        logits = model(x.to(device)).float().cpu()
        losses.append(float(loss_fn(logits, y)))
        weights.append(len(x))
        pred = (torch.sigmoid(logits) > threshold).flatten(1).float()
        truth = y.flatten(1)
        inter = (pred * truth).sum(1)
        total = pred.sum(1) + truth.sum(1)
        dice = torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.ones_like(total))
        dices.extend(dice.tolist())
    if not dices:
        return math.nan, math.nan
    return float(np.average(losses, weights=weights)), float(np.mean(dices))


# ---------------------------------------------------------------------------- loop

def _lr_at(step: int, total: int, config: TrainConfig) -> float:
    o = config.optim
    if step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    if o.lr_schedule == "constant":
        return o.lr
    if o.lr_schedule != "cosine":
        raise ValueError(f"unknown lr_schedule {o.lr_schedule!r} (constant | cosine)")
    t = (step - o.warmup_steps) / max(1, total - o.warmup_steps)
    floor = o.lr * o.min_lr_fraction
    return floor + 0.5 * (o.lr - floor) * (1 + math.cos(math.pi * min(t, 1.0)))


def _info(config: TrainConfig, data_desc: dict, metrics: dict) -> ModelInfo:
    return ModelInfo(architecture=config.model, input_size=config.input.size,
                     coarse_size=config.input.coarse_size, crop_scale=config.input.crop_scale,
                     low_percentile=config.input.low_percentile,
                     high_percentile=config.input.high_percentile,
                     training={**data_desc, "seed": config.optim.seed,
                               "loss": config.optim.loss},
                     metrics=metrics, package_version=__version__)


def _load_init(model: UNet, init: str) -> None:
    """Load the weights of model folder or checkpoint `init` into `model`: the same
    architecture, or one with fewer input channels (the first convolution's new input
    channels start at zero, so the model starts out as `init` on its old inputs)."""
    ckpt = load_checkpoint(init)
    old = ckpt.info.architecture
    if dataclasses.replace(old, in_channels=model.config.in_channels) != model.config or (
            old.in_channels > model.config.in_channels):
        raise ValueError(f"{init}: its architecture {old} is not [model]'s "
                         f"{model.config}; cannot start from it")
    state = dict(ckpt.state_dict)
    own = model.state_dict()
    for key, value in state.items():
        if value.ndim == 4 and value.shape[1] == old.in_channels and own[key].shape != value.shape:
            grown = torch.zeros_like(own[key])
            grown[:, :old.in_channels] = value
            state[key] = grown
    model.load_state_dict(state)
    log.info("starting from the weights of %s", init)


def _check_resumable(old: dict, new: dict, where: Path) -> None:
    """Resuming may extend [optim] epochs (the cosine schedule stretches); nothing else."""
    old = {**old, "optim": {k: v for k, v in old["optim"].items() if k != "epochs"}}
    new = {**new, "optim": {k: v for k, v in new["optim"].items() if k != "epochs"}}
    if old != new:
        changed = sorted(f"[{s}] {k}" for s in new for k in new[s]
                         if old.get(s, {}).get(k) != new[s][k])
        raise ValueError(f"{where}: differs from the config given ({', '.join(changed)}); "
                         "cannot resume")


def train(
    config: TrainConfig | str | Path | None,
    out_dir: str | Path,
    *,
    resume: bool = False,
    device: str = "auto",
    progress: bool = True,
    max_epochs: int | None = None,
    cache_dir: str | Path | None = None,
) -> TrainResult:
    """Train a U-Net as `config` says (a TrainConfig or a TOML path) and write `out_dir`.

    resume : continue from ``out_dir/last.pt``; the config must match the one it was run with,
        except that [optim] epochs may grow (train longer).
    max_epochs : stop after this many epochs in total (for smoke runs); None = config's epochs.
    cache_dir : keep generated training/validation pairs here and reuse them in later runs.
    Returns a TrainResult; the best model folder is ``out_dir/model``.
    """
    if not isinstance(config, TrainConfig):
        config = load_train_config(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    o = config.optim
    dev = resolve_device(device)
    if dev.type == "cpu":
        torch.set_num_threads(cpu_threads(o.threads))
    torch.manual_seed(o.seed)
    config_file = out_dir / "train_config.json"
    resolved = json.dumps(config.to_dict(), indent=2) + "\n"
    last = out_dir / "last.pt"
    if resume and last.is_file() and config_file.is_file():
        _check_resumable(json.loads(config_file.read_text()), config.to_dict(), config_file)
    write_text_atomic(config_file, resolved)

    pools, probs, val, data_desc = build_data(config, progress, cache_dir)
    val_sets = validation_arrays(val, config)
    model = UNet(config.model).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    loss_fn = get_loss(o.loss)
    use_amp = o.amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    metrics_path = out_dir / "metrics.jsonl"
    start_epoch, best_dice, best_epoch = _start(model, optimizer, last if resume else None,
                                                metrics_path, o.init)
    if o.init:  # provenance: which weights the run started from
        data_desc = {**data_desc, "init": {"path": str(o.init), "sha256": model_hash(o.init)}}
    log.info("U-Net %s, %d parameters, device %s", config.model, count_parameters(model), dev)

    epochs = o.epochs if max_epochs is None else min(o.epochs, max_epochs)
    total_steps = o.epochs * o.steps_per_epoch
    train_loss = math.nan
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        steps = _EpochSteps(model, optimizer, scaler, loss_fn, dev, use_amp)
        train_loss, lr = steps.run(pools, probs, config, epoch, epochs, total_steps, progress)
        scores, val_dice, val_loss = _validate(model, val_sets, loss_fn, dev)
        improved = not math.isnan(val_dice) and val_dice > best_dice
        if improved or math.isnan(val_dice):
            best_dice, best_epoch = (val_dice if improved else best_dice), epoch
            metrics = {"val_dice": val_dice, **scores, "epoch": epoch + 1}
            save_model_folder(out_dir / "model", model, _info(config, data_desc, metrics))
        record = {"epoch": epoch + 1, "step": (epoch + 1) * o.steps_per_epoch,
                  "train_loss": train_loss, "val_loss": val_loss, "val_dice": val_dice,
                  **scores, "lr": lr, "time_s": round(time.perf_counter() - t0, 2),
                  "best": improved}
        with metrics_path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        log.info("epoch %d: train loss %.4f, val loss %.4f, val Dice %.4f (%s)%s", epoch + 1,
                 train_loss, val_loss, val_dice,
                 ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if k.endswith("_dice")),
                 " (best)" if improved else "")
        save_checkpoint(last, model, _info(config, data_desc, {"val_dice": val_dice}),
                        train_state={"optimizer": optimizer.state_dict(), "epoch": epoch,
                                     "best_val_dice": best_dice, "best_epoch": best_epoch})
    return TrainResult(out_dir, out_dir / "model", best_dice, best_epoch + 1, epochs, train_loss)


@dataclass
class _EpochSteps:
    """The optimiser steps of one epoch: what they need besides the data."""

    model: UNet
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    loss_fn: Callable[..., torch.Tensor]
    device: torch.device
    use_amp: bool

    def run(self, pools: Any, probs: Any, config: TrainConfig, epoch: int, epochs: int,
            total_steps: int, progress: bool) -> tuple[float, float]:
        """One epoch of steps, seeded by (seed, epoch): (mean training loss, last lr)."""
        o = config.optim
        rng = np.random.default_rng([o.seed, epoch])
        torch.manual_seed(o.seed * 100_003 + epoch)
        self.model.train()
        losses: list[float] = []
        lr = math.nan
        bar = tqdm(range(o.steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}",
                   disable=not progress, leave=False)
        for i in bar:
            step = epoch * o.steps_per_epoch + i
            lr = _lr_at(step, total_steps, config)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            x, y = draw_batch(pools, probs, rng, o.batch_size, config)
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            self.optimizer.zero_grad(set_to_none=True)
            amp = torch.autocast("cuda") if self.use_amp else contextlib.nullcontext()
            with amp:
                loss = self.loss_fn(self.model(x), y)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        return float(np.mean(losses)), lr


def _validate(model: UNet, val_sets: dict, loss_fn: Callable[..., torch.Tensor],
              device: torch.device) -> tuple[dict[str, float], float, float]:
    """Validation loss and Dice per pass ({val_<pass>_<loss|dice>}) and their means."""
    scores = {f"val_{k}_{m}": v for k, (x_val, y_val) in val_sets.items()
              for m, v in zip(("loss", "dice"), evaluate(model, x_val, y_val, loss_fn, device),
                              strict=True)}
    dices = [v for k, v in scores.items() if k.endswith("_dice")]
    val_dice = float(np.mean(dices)) if dices else math.nan  # mean over the passes
    losses_val = [v for k, v in scores.items() if k.endswith("_loss")]
    val_loss = float(np.mean(losses_val)) if losses_val else math.nan
    return scores, val_dice, val_loss


def _start(model: UNet, optimizer: torch.optim.Optimizer, last: Path | None, metrics_path: Path,
           init: str | None) -> tuple[int, float, int]:
    """(first epoch, best validation Dice, its epoch): from the checkpoint `last` where it
    exists (resume), else fresh, from the `init` weights if given, with no metrics yet."""
    if last is not None and last.is_file():
        ckpt = load_checkpoint(last)
        model.load_state_dict(ckpt.state_dict)
        state = ckpt.train_state or {}
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = int(state["epoch"]) + 1
        log.info("resuming %s at epoch %d", last, start_epoch)
        return start_epoch, float(state["best_val_dice"]), int(state["best_epoch"])
    if init:
        _load_init(model, init)
    if metrics_path.exists():
        metrics_path.unlink()
    return 0, -math.inf, -1
