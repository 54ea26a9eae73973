"""Mask agreement overall and at the ends of the beat (pure numpy).

End-systole is where segmenters fail (the masks do not shrink), and EF lives on the ratio of
the end-diastolic to the end-systolic area, so a mean Dice alone hides the error that matters.
Frames are split by their *true* area: the fifth with the largest areas is ED-like, the fifth
with the smallest ES-like (at least one frame each). That needs no beat timing, so it works for
a handful of annotated stills as for a whole video.
"""

from __future__ import annotations

import math
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
    dice = dice_scores(pred, true)
    true_area = (true.reshape(n, -1) != 0).sum(axis=1).astype(float)
    pred_area = (pred.reshape(n, -1) != 0).sum(axis=1).astype(float)
    ed, es = phase_frames(true_area, share)

    def area_error(frames: np.ndarray) -> float:
        t = true_area[frames]
        ok = t > 0
        if not ok.any():
            return math.nan
        return float(np.mean((pred_area[frames][ok] - t[ok]) / t[ok]) * 100.0)

    return MaskScores(n, float(dice.mean()), float(dice[ed].mean()), float(dice[es].mean()),
                      area_error(ed), area_error(es))
