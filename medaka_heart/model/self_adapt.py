"""Per-video self-adaptation (test-time): the network taught by the video's own appearance.

On a microscope it was not trained for, the network's masks follow each pixel's majority state
over the beat: too small at end-diastole, too large at end-systole (model card, "Where the
end-systolic error lies"), so the ejection fraction comes out far too low. Its largest mask,
at end-diastole, is nearly right, though. That frame and its mask make a short made-up beat
(`made_up_beat`: the ventricle contracted about its centroid and relaxed), whose every
frame's outline is known, and the network is fine-tuned on it for a fixed number of steps:
it learns, in this video's own appearance, that the rim a contracting ventricle leaves is not
ventricle. The locating pass is not changed; only the fine pass is segmented again.

The largest mask is looked for in the video's first SEARCH_SECONDS only (its first chunks),
and the adapted network is checked on the taught frame's chunk: its masks must overlap the
first pass's (`MIN_AGREEMENT`) and their area must beat with the first pass's
(`trace_agreement` >= `MIN_TRACE_AGREEMENT`); otherwise the first pass stands.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..mask_scores import frame_agreement
from .info import ModelInfo

if TYPE_CHECKING:
    from .adapt import Adapted

PSEUDO_MAX_RATIO = 1.25  # the frame taught: the largest mask of the video (end-diastole, the
# made-up beat's first frame) not above this x the 90th percentile of its masks' areas (a
# mask that took in more than the ventricle is passed over)
MIN_AGREEMENT = 0.75  # the adapted fine pass is kept only where its masks of the taught
# frame's chunk agree with the first pass's at least this well (mean Dice): a made-up beat that
# could not be learnt destroys the masks (Dice 0.06-0.65 with the first pass), where a useful
# adaptation reshapes them (0.84-0.98)
MIN_TRACE_AGREEMENT = 0.8  # ... and only where their area trace over that chunk correlates
# with the first pass's at least this well (Pearson r): an adaptation that loses the beat
# (a typical phantom whose masks then beat at half its rate: r 0.47; the zebrafish close-up,
# masks' own rate 6 % -> 16 % off: r 0.34) is passed over, where useful ones keep it (r
# 0.91-1.00 on the typical phantoms and the real-mask videos of sequence 0000)
SEARCH_SECONDS = 5.0  # the frame taught is looked for in the first chunks covering this much
# of the video (s; the whole video where the frame rate is unknown): many beats, a fraction
# of a long video's time
SELF_ADAPT_LR = 5e-4  # peak learning rate (Adam; warm-up over a fifth of the steps)
SELF_ADAPT_SEED = 0


@dataclass(frozen=True)
class SelfAdaptation:
    """How one video's fine pass was adapted: the frame whose own mask taught it (index in
    the video, mask area in px), the optimiser steps, the training wall time (s), the mean
    loss of its last steps, the mean Dice of the adapted masks of the taught frame's chunk
    with the first pass's, the correlation of their area traces (`trace_agreement`), and
    whether the adapted pass was used (`check_adapted`)."""

    frame: int
    area_px: int
    steps: int
    seconds: float
    final_loss: float
    agreement: float
    trace: float
    used: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for provenance.json."""
        return dataclasses.asdict(self)


def pseudo_frame(areas_px: np.ndarray, max_ratio: float = PSEUDO_MAX_RATIO) -> int | None:
    """Index of the frame with the largest mask (area px, one per frame) among those not
    above `max_ratio` x the 90th percentile of the non-empty masks' areas (the first where
    several are as large); None where every mask is empty."""
    areas = np.asarray(areas_px, dtype=float)
    if not (areas > 0).any():
        return None
    limit = max_ratio * float(np.percentile(areas[areas > 0], 90))
    return int(np.argmax(np.where(areas <= limit, areas, -1.0)))


def trace_agreement(areas: np.ndarray, reference: np.ndarray) -> float:
    """Pearson correlation of two area traces (px, one per frame, same length); 0.0 where
    either is constant or shorter than 3 frames (no beat to compare)."""
    a = np.asarray(areas, dtype=float)
    b = np.asarray(reference, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"area traces differ in length: {a.shape} vs {b.shape}")
    if a.size < 3 or a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def check_adapted(adapted_masks: np.ndarray, first_masks: np.ndarray
                  ) -> tuple[float, float, bool]:
    """(mean Dice, area-trace correlation, used) of the adapted masks (T, H, W) of a chunk
    with the first pass's: used where both reach MIN_AGREEMENT and MIN_TRACE_AGREEMENT."""
    overlap = frame_agreement(adapted_masks, first_masks)
    agreement = float(overlap.dice.mean())
    trace = trace_agreement(overlap.pred_area, overlap.true_area)
    return agreement, trace, agreement >= MIN_AGREEMENT and trace >= MIN_TRACE_AGREEMENT


def search_frames(fps: float | None, seconds: float = SEARCH_SECONDS) -> int | None:
    """Frames of a video's start in which the frame taught is looked for (None: all)."""
    if fps is None or not np.isfinite(fps) or fps <= 0:
        return None
    return max(1, math.ceil(seconds * fps))


def adapt_to_frame(model: str | Path, info: ModelInfo, image: np.ndarray, mask: np.ndarray,
                   *, steps: int, device: str = "cpu", threads: int | None = None,
                   seed: int = SELF_ADAPT_SEED) -> Adapted:
    """Fine-tune the fine pass of `model` (folder or checkpoint; `info` its ModelInfo) for
    `steps` steps on the made-up beat of `image` (H, W[, C]) and its ventricle `mask` (H, W
    bool); the adapted network is on the CPU, in eval mode."""
    from .adapt import AdaptSettings, finetune, view_spec_of
    from .data import recording_views
    from .made_up_beat import made_up_beat

    if steps < 1:
        raise ValueError(f"self-adaptation needs at least one step, got {steps}")
    frames, masks = made_up_beat(image, mask)
    views = [recording_views("made-up beat", list(frames), list(masks),
                             view_spec_of(info, recording_box=True))]
    settings = AdaptSettings(steps=steps, lr=SELF_ADAPT_LR, warmup_steps=max(1, steps // 5),
                             p_coarse=0.0, seed=seed, device=device, threads=threads)
    return finetune(str(model), views, settings, progress=False)
