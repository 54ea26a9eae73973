"""Where a video's heart is, when the crops of its chunks disagree (pure).

A crop box is (centre x, centre y, side) in native px; its side is `crop_scale` x the heart's
extent. Boxes whose centres lie within SAME_PLACE heart extents of each other show the same
place, and so do chains of such boxes (a heart that drifts or grows along the video); boxes
farther apart show different structures, and at most one of them is the ventricle.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SAME_PLACE = 0.5  # centres closer than this share of the larger heart extent: one place

Box = tuple[float, float, float]  # crop centre x, centre y, side; native px


def same_place(a: Box, b: Box, crop_scale: float) -> bool:
    """Whether two crop boxes show the same place (see SAME_PLACE)."""
    extent = max(a[2], b[2]) / crop_scale
    return bool(np.hypot(a[0] - b[0], a[1] - b[1]) < SAME_PLACE * extent)


def group_places(boxes: Sequence[Box | None], crop_scale: float) -> list[int | None]:
    """The place of each box: 0, 1, ... in order of first appearance (None stays None).

    Boxes linked by a chain of `same_place` pairs share a place.
    """
    n = len(boxes)
    label = list(range(n))

    def root(i: int) -> int:
        while label[i] != i:
            i = label[i]
        return i

    for i in range(n):
        for j in range(i):
            if boxes[i] is not None and boxes[j] is not None and same_place(
                    boxes[i], boxes[j], crop_scale):
                label[root(i)] = root(j)
    names: dict[int, int] = {}
    return [None if box is None else names.setdefault(root(i), len(names))
            for i, box in enumerate(boxes)]


def best_place(votes: Sequence[int], scores) -> int:
    """Index of the place found by the most chunks; among those, the highest mean score.

    votes : (P,) number of chunks that settled on each place on their own.
    scores : (P, C) array-like, the score of place p judged on chunk c (0 = nothing there).
    """
    table = np.asarray(scores, dtype=float)
    votes = np.asarray(votes)
    if table.ndim != 2 or table.shape[0] != votes.size or votes.size == 0:
        raise ValueError(f"scores must be (places, chunks) with one row per vote count, got "
                         f"{table.shape} for {votes.size} places")
    mean = table.mean(axis=1)
    return int(np.argmax(np.where(votes == votes.max(), mean, -np.inf)))
