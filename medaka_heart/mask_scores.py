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


def dice_scores(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """(N,) Dice of (N, H, W) masks (nonzero = ventricle); two empty masks score 1."""
    p = np.asarray(pred).reshape(len(pred), -1) != 0
    t = np.asarray(true).reshape(len(true), -1) != 0
    inter = (p & t).sum(axis=1)
    total = p.sum(axis=1) + t.sum(axis=1)
    return np.where(total > 0, 2.0 * inter / np.maximum(total, 1), 1.0)


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
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.shape != true.shape:
        raise ValueError(f"predicted masks {pred.shape} and true masks {true.shape} differ")
    n = len(true)
    if n == 0:
        return MaskScores(0, *(math.nan,) * 5)
    true_area = (true.reshape(n, -1) != 0).sum(axis=1).astype(float)
    pred_area = (pred.reshape(n, -1) != 0).sum(axis=1).astype(float)
    return phase_scores(dice_scores(pred, true), pred_area, true_area, share)


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
