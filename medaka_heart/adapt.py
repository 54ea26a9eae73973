"""`adapt`: fit a model to a lab's microscope from a handful of annotated frames, honestly scored.

read the annotations (`io.annotations`) -> hold out whole recordings (or, with one recording,
a block of neighbouring frames) -> score the initial model on them -> fine-tune on the rest
(`model.adapt`) within the time budget -> score again -> write the model folder (weights,
config.json, MODEL_CARD.md, adapt.json) whole or not at all.

The held-out frames of a recording are segmented together, as a clip without a frame rate
(found from their appearance and, for a beat-plane model, from how they change), so the
scores are a floor for what a whole video gets. A beat-plane model (four input channels)
trains on each recording's frames as one scene: their temporal std and median give the beat
planes, as a chunk of the recording gives them at analysis (`model.data.recording_views`);
in a recording of fewer than MIN_BEAT_FRAMES frames, or of frames of different sizes, each
frame is made into a scene of one made-up beat (`model.made_up_beat`: its ventricle
contracted and relaxed about its centroid), whose planes show a ventricle that changes at its
rim (zero planes alone teach the network a still's regime, which then fails on videos).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import __version__
from .io.annotations import Annotated, read_annotations
from .mask_scores import MaskScores, mask_scores

if TYPE_CHECKING:
    from .model.data import SequenceData
    from .model.samples import ViewSpec

log = logging.getLogger(__name__)

HOLDOUT_FRACTION = 0.25  # share of recordings (or of one recording's frames) held out
DEFAULT_MINUTES = 4.5  # the issue caps adapt at 5 minutes on 2 cores; 3 gave EF 1-2 points worse
WRITE_MARGIN_S = 20.0  # of the budget kept for writing the model folder and its ONNX export


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
    """`mask_scores` of the model's masks of every frame of `recordings`; None when there are
    no frames.

    The annotated frames of one recording are segmented together, as a clip without a frame
    rate (`Segmenter.segment_video`: one crop for all, found from all of them, as in a
    video); a recording whose frames differ in size, frame by frame as stills. The network's
    own masks are scored: annotated frames are no video to self-adapt to.
    """
    from .segment import Segmenter

    if not any(len(rec) for rec in recordings):
        return None
    segmenter = Segmenter(model, device=device, self_adapt=False)
    pred: list[np.ndarray] = []
    true: list[np.ndarray] = []
    for rec in recordings:
        if len({image.shape for image in rec.images}) == 1:
            for _, seg in segmenter.segment_video([np.stack(rec.images)]):
                pred.extend(seg.masks)
        else:
            pred.extend(segmenter.segment_still(image, check=False).masks[0]
                        for image in rec.images)
        true.extend(rec.masks)
    return mask_scores(np.stack(pred), np.stack(true))


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
    from .model.folder import model_hash
    from .model.inputs import sees_beat
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
    settings = AdaptSettings(steps=steps, seed=seed, device=device)
    spec = view_spec_of(info, settings.recording_box)
    beat = sees_beat(info.architecture.in_channels)  # beat planes to learn from
    sequences = [seq for r in split.train for seq in _training_views(r, spec, beat)]
    left = minutes * 60.0 - (time.perf_counter() - start) - scoring_s - WRITE_MARGIN_S
    settings = dataclasses.replace(settings, seconds=max(left, 1.0))
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
        _export_onnx(stage)
        seconds = time.perf_counter() - start
        result = AdaptResult(out, before, after, adapted.steps, seconds,
                             sum(map(len, split.train)), sum(map(len, split.held_out)),
                             split.how)
        from .adapt_card import write_card

        write_card(stage, result, provenance)
    return result


def _training_views(rec: Annotated, spec: ViewSpec, beat: bool) -> list[SequenceData]:
    """What one annotated recording trains as. With `beat` (a beat-plane model): its frames
    as one scene (`_is_clip`), else each frame as a scene of one made-up beat
    (`model.made_up_beat`; each such frame then weighs MADE_UP_FRAMES frames). Without: its
    frames, their contexts cut around the recording's largest heart box where
    `spec.recording_box`."""
    from .model.data import recording_views, views_of
    from .model.made_up_beat import made_up_beat
    from .model.samples import largest_box_side

    if beat and _is_clip(rec):
        return [recording_views(rec.name, rec.images, rec.masks, spec)]
    if beat:  # too few frames (or of different sizes) for beat planes
        beats = (made_up_beat(image, mask) for image, mask in zip(rec.images, rec.masks,
                                                                     strict=True))
        return [recording_views(f"{rec.name}/{i}", list(frames), list(masks), spec)
                for i, (frames, masks) in enumerate(beats)]
    side = largest_box_side(rec.masks) if spec.recording_box else None
    return [views_of(rec.name, zip(rec.images, rec.masks, strict=True), spec, side)]


def _is_clip(rec: Annotated) -> bool:
    """Whether a recording's annotated frames can stand in for a chunk of its video: at least
    MIN_BEAT_FRAMES of one size (their temporal std and median give beat planes)."""
    from .model.inputs import MIN_BEAT_FRAMES

    return len(rec) >= MIN_BEAT_FRAMES and len({image.shape for image in rec.images}) == 1


def _export_onnx(folder: Path) -> None:
    """model.onnx beside the adapted weights, so that analyze runs it without torch on a CPU;
    where the exporter is missing or fails, the folder runs on torch (slower start-up)."""
    from .runtime_onnx import export_model_folder

    try:
        export_model_folder(folder)
    except Exception as exc:  # the exporter's many failure kinds: the model works on torch
        log.warning("%s: no ONNX export (%s: %s); the model runs on torch", folder,
                    type(exc).__name__, exc)


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
