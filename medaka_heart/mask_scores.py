"""Mask agreement overall and at the ends of the beat (pure numpy).

End-systole is where segmenters fail (the masks do not shrink), and EF lives on the ratio of
the end-diastolic to the end-systolic area, so a mean Dice alone hides the error that matters.
Frames are split by their *true* area: the fifth with the largest areas is ED-like, the fifth
with the smallest ES-like (at least one frame each). That needs no beat timing, so it works for
a handful of annotated stills as for a whole video.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

PHASE_SHARE = 0.2  # share of frames counted as ED-like (largest true area) and ES-like


@dataclass(frozen=True)
class MaskScores:
    """Dice (0-1) and signed area error (% of the true area; + = too large) of masks.

    `dice_ed`, `area_error_ed_pct`: over ED-like frames; `_es`: ES-like frames (see module).
    NaN where there are no frames.
    """

    n_frames: int
    dice_mean: float
    dice_ed: float
    dice_es: float
    area_error_ed_pct: float
    area_error_es_pct: float

    def to_dict(self) -> dict[str, float | int]:
        """Plain values (NaN kept), for JSON and tables."""
        return asdict(self)


class FrameAgreement(NamedTuple):
    """Per-frame agreement of predicted with true masks: Dice (1 where both are empty) and
    the two masks' areas, px."""

    dice: np.ndarray
    pred_area: np.ndarray
    true_area: np.ndarray


def frame_agreement(pred_masks, true_masks) -> FrameAgreement:
    """Dice 2|P & T| / (|P| + |T|) and both areas of each frame.

    Parameters
    ----------
    pred_masks, true_masks : (T, H, W) or (H, W) arrays of any dtype
        Nonzero = ventricle. Both must have the same shape; call once per chunk of frames
        to stream long videos (`evaluate.agreement_stream`).

    Returns
    -------
    FrameAgreement of (T,) arrays; Dice 1.0 by convention where both masks are empty
    (nothing to find and nothing found).
    """
    p = np.asarray(pred_masks) != 0
    t = np.asarray(true_masks) != 0
    if p.shape != t.shape:
        raise ValueError(f"mask shapes differ: pred {p.shape} vs truth {t.shape}")
    if p.ndim == 2:
        p, t = p[None], t[None]
    if p.ndim != 3:
        raise ValueError(f"masks must be (T, H, W) or (H, W), got shape {p.shape}")
    inter = np.count_nonzero(p & t, axis=(1, 2)).astype(float)
    pred_area = np.count_nonzero(p, axis=(1, 2)).astype(float)
    true_area = np.count_nonzero(t, axis=(1, 2)).astype(float)
    total = pred_area + true_area
    dice = np.ones(p.shape[0])
    nonempty = total > 0
    dice[nonempty] = 2.0 * inter[nonempty] / total[nonempty]
    return FrameAgreement(dice, pred_area, true_area)


def phase_frames(true_area: np.ndarray, share: float = PHASE_SHARE
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ED-like (largest true area) and ES-like (smallest) frames.

    Each holds ceil(share * N) frames, at least 1 (none for N = 0); with a single frame it is
    both.
    """
    area = np.asarray(true_area, dtype=float)
    if area.size == 0:
        empty = np.zeros(0, dtype=int)
        return empty, empty
    k = max(1, math.ceil(share * area.size))
    order = np.argsort(area, kind="stable")
    return np.sort(order[-k:]), np.sort(order[:k])


def mask_scores(pred: np.ndarray, true: np.ndarray, share: float = PHASE_SHARE) -> MaskScores:
    """Scores of predicted against true masks, both (N, H, W) (nonzero = ventricle)."""
    return phase_scores(*frame_agreement(pred, true), share)


def phase_scores(dice: np.ndarray, pred_area: np.ndarray, true_area: np.ndarray,
                 share: float = PHASE_SHARE) -> MaskScores:
    """`MaskScores` of one video's frames from their Dice and predicted and true areas (px)."""
    return pooled_phase_scores([(dice, pred_area, true_area)], share)


def pooled_phase_scores(videos: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                        share: float = PHASE_SHARE) -> MaskScores:
    """`MaskScores` over several videos, each given as (Dice, predicted area, true area) per
    frame: each video's own ED-like and ES-like frames (`phase_frames`), pooled."""
    dice_all: list[np.ndarray] = []
    dice_ed: list[np.ndarray] = []
    dice_es: list[np.ndarray] = []
    error_ed: list[np.ndarray] = []
    error_es: list[np.ndarray] = []
    for dice, pred_area, true_area in videos:
        dice, pred_area = np.asarray(dice, float), np.asarray(pred_area, float)
        true_area = np.asarray(true_area, float)
        ed, es = phase_frames(true_area, share)
        dice_all.append(dice)
        dice_ed.append(dice[ed])
        dice_es.append(dice[es])
        for frames, errors in ((ed, error_ed), (es, error_es)):
            t = true_area[frames]
            ok = t > 0
            errors.append((pred_area[frames][ok] - t[ok]) / t[ok] * 100.0)

    def mean(parts: list[np.ndarray]) -> float:
        values = np.concatenate(parts) if parts else np.zeros(0)
        return float(values.mean()) if values.size else math.nan

    return MaskScores(sum(len(d) for d in dice_all), mean(dice_all), mean(dice_ed),
                      mean(dice_es), mean(error_ed), mean(error_es))
