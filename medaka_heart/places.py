"""Where a video's heart is, when the crops of its chunks disagree (pure).

A crop box is (centre x, centre y, side) in native px; its side is `crop_scale` x the heart's
extent. Boxes whose centres lie within SAME_PLACE heart extents of each other show the same
place, and so do chains of such boxes (a heart that drifts or grows along the video); boxes
farther apart show different structures, and at most one of them is the ventricle.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

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
    found = [i for i, box in enumerate(boxes) if box is not None]
    links = np.array([[same_place(boxes[i], boxes[j], crop_scale) for j in found]
                      for i in found], dtype=bool).reshape(len(found), len(found))
    _, component = connected_components(csr_matrix(links), directed=False)
    names: dict[int, int] = {}
    label: list[int | None] = [None] * len(boxes)
    for i, c in zip(found, component, strict=True):
        label[i] = names.setdefault(int(c), len(names))
    return label


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
