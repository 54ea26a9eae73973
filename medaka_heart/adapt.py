"""`adapt`: fit a model to a lab's microscope from a handful of annotated frames, honestly scored.

read the annotations (`io.annotations`) -> hold out whole recordings (or, with one recording,
a block of neighbouring frames) -> score the initial model on them -> fine-tune on the rest
(`model.adapt`) within the time budget -> score again -> write the model folder (weights,
config.json, MODEL_CARD.md, adapt.json) whole or not at all.

Held-out frames are segmented as stills (`Segmenter.segment_still`: found and outlined from
their appearance alone, without a beat), so the scores are a floor for what a video gets.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .io.annotations import Annotated, read_annotations
from .mask_scores import MaskScores, mask_scores

log = logging.getLogger(__name__)

HOLDOUT_FRACTION = 0.25  # share of recordings (or of one recording's frames) held out
DEFAULT_MINUTES = 3.0  # the issue caps adapt at 5 minutes on 2 cores
WRITE_MARGIN_S = 5.0  # of the budget kept for writing the model folder


@dataclass(frozen=True)
class Split:
    """Annotated recordings to train on and to score on (never the same frames)."""

    train: tuple[Annotated, ...]
    held_out: tuple[Annotated, ...]
    how: str  # "recordings", "frames" (a block of one recording), or "none"


@dataclass(frozen=True)
class AdaptResult:
    """What `adapt` wrote and how well the model did before and after, on held-out frames."""

    model_dir: Path
    before: MaskScores | None  # None: nothing could be held out
    after: MaskScores | None
    steps: int
    seconds: float  # wall time of the whole command, s
    train_frames: int
    held_out_frames: int
    split: str


def holdout_split(recordings: Sequence[Annotated], fraction: float = HOLDOUT_FRACTION,
                  seed: int = 0) -> Split:
    """Hold out round(fraction * n) whole recordings (at least 1, never all); with one
    recording, a block of that share of its neighbouring frames (by frame index); with one
    frame, or `fraction` 0, nothing."""
    recordings = list(recordings)
    rng = np.random.default_rng([seed, 31])
    if fraction <= 0 or not recordings:
        return Split(tuple(recordings), (), "none")
    if len(recordings) > 1:
        n = min(max(1, round(fraction * len(recordings))), len(recordings) - 1)
        held = set(rng.permutation(len(recordings))[:n].tolist())
        return Split(tuple(r for i, r in enumerate(recordings) if i not in held),
                     tuple(r for i, r in enumerate(recordings) if i in held), "recordings")
    only = recordings[0]
    if len(only) < 2:
        return Split((only,), (), "none")
    order = np.argsort(only.frames, kind="stable")
    k = min(max(1, round(fraction * len(only))), len(only) - 1)
    first = int(rng.integers(0, len(only) - k + 1))
    block = set(order[first:first + k].tolist())
    return Split((_subset(only, [i for i in order if i not in block], "train"),),
                 (_subset(only, [i for i in order if i in block], "held out"),), "frames")


def _subset(rec: Annotated, keep: Sequence[int], part: str) -> Annotated:
    return Annotated(f"{rec.name} ({part})", tuple(rec.images[i] for i in keep),
                     tuple(rec.masks[i] for i in keep), tuple(rec.frames[i] for i in keep),
                     rec.layout)


def score(model: str | Path, recordings: Sequence[Annotated], device: str = "auto"
          ) -> MaskScores | None:
    """`mask_scores` of the model's masks of every frame of `recordings`, each segmented as a
    still; None when there are no frames."""
    from .segment import Segmenter

    frames = [(image, mask) for rec in recordings
              for image, mask in zip(rec.images, rec.masks, strict=True)]
    if not frames:
        return None
    segmenter = Segmenter(model, device=device)
    pred = np.stack([segmenter.segment_still(image).masks[0] for image, _ in frames])
    return mask_scores(pred, np.stack([mask for _, mask in frames]))


def adapt(data: str | Path, out: str | Path, *, init: str | Path | None = None,
          minutes: float = DEFAULT_MINUTES, steps: int | None = None,
          holdout: float = HOLDOUT_FRACTION, seed: int = 0, device: str = "auto",
          progress: bool = True, command: str | None = None) -> AdaptResult:
    """Adapt model `init` (None = the shipped one) to the annotations under `data` and write
    the model folder `out` (take it with ``analyze --model OUT``).

    minutes : wall-time budget of the whole call (reading, scoring, training, writing); the
        training gets what the rest leaves. steps : a fixed number of training steps instead
        (reproducible on any machine). holdout : share held out for the scores. Raises
        FileNotFoundError / ValueError (naming the file) on bad input, before any training.
    """
    from .io.results import staged_folder
    from .model.adapt import AdaptSettings, finetune, view_spec_of
    from .model.checkpoint import load_checkpoint, save_model_folder
    from .model.data import views_of
    from .model.folder import model_hash
    from .runtime import default_model_path

    start = time.perf_counter()
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "model.pt").is_file():
        raise ValueError(f"{out}: exists and is not a model folder; choose a new folder")
    init = Path(init) if init is not None else default_model_path()
    info = load_checkpoint(init).info  # a bad model fails before anything else
    recordings = read_annotations(data)
    split = holdout_split(recordings, holdout, seed)
    t_score = time.perf_counter()
    before = score(init, split.held_out, device)
    scoring_s = time.perf_counter() - t_score
    spec = view_spec_of(info)
    sequences = [views_of(r.name, zip(r.images, r.masks, strict=True), spec)
                 for r in split.train]
    left = minutes * 60.0 - (time.perf_counter() - start) - scoring_s - WRITE_MARGIN_S
    settings = AdaptSettings(seconds=max(left, 1.0), steps=steps, seed=seed, device=device)
    log.info("adapting %s on %d frames of %d recording(s); %d held-out frames", init,
             sum(map(len, split.train)), len(split.train), sum(map(len, split.held_out)))
    adapted = finetune(str(init), sequences, settings, progress=progress)
    provenance = {
        "adapted_from": {"path": str(init), "sha256": model_hash(init)},
        "annotations": {"path": str(Path(data).resolve()),
                        "recordings": [_describe(r) for r in split.train]},
        "held_out": {"split": split.how, "recordings": [_describe(r) for r in split.held_out]},
        "settings": {**dataclasses.asdict(settings), "steps_run": adapted.steps},
        "command": command, "package_version": __version__,
    }
    new_info = dataclasses.replace(adapted.info, training=provenance, package_version=__version__)
    with staged_folder(out) as stage:
        save_model_folder(stage, adapted.model, new_info)
        after = score(stage, split.held_out, device)
        scores = {"before": None if before is None else before.to_dict(),
                  "after": None if after is None else after.to_dict()}
        metrics = {"held_out": scores, "train_loss": adapted.final_loss}
        save_model_folder(stage, adapted.model, dataclasses.replace(new_info, metrics=metrics))
        seconds = time.perf_counter() - start
        result = AdaptResult(out, before, after, adapted.steps, seconds,
                             sum(map(len, split.train)), sum(map(len, split.held_out)),
                             split.how)
        from .adapt_card import write_card

        write_card(stage, result, provenance)
    return result


def _describe(rec: Annotated) -> dict[str, Any]:
    return {"name": rec.name, "layout": rec.layout, "frames": list(rec.frames)}


def format_scores(result: AdaptResult) -> str:
    """The before/after table printed by the command."""
    if result.before is None or result.after is None:
        return ("no held-out frames (one annotated frame, or --holdout 0): no scores; "
                "annotate more frames or recordings to measure the gain")
    rows = [("Dice, mean", "dice_mean", "{:.3f}"), ("Dice, ED-like", "dice_ed", "{:.3f}"),
            ("Dice, ES-like", "dice_es", "{:.3f}"),
            ("area error ED-like, %", "area_error_ed_pct", "{:+.1f}"),
            ("area error ES-like, %", "area_error_es_pct", "{:+.1f}")]
    lines = [f"held-out frames: {result.held_out_frames} (by {result.split})",
             f"{'':24s}{'before':>9s}{'after':>9s}"]
    for label, key, fmt in rows:
        values = [getattr(s, key) for s in (result.before, result.after)]
        cells = ["n/a" if not math.isfinite(v) else fmt.format(v) for v in values]
        lines.append(f"{label:24s}{cells[0]:>9s}{cells[1]:>9s}")
    return "\n".join(lines)
