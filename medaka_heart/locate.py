"""Where the heart is: the crop box of each chunk of a video (coarse pass, beat map, places).

A coarse pass on every `coarse_every`-th whole frame of a chunk (resized to coarse_size^2)
proposes regions; with a known frame rate they are weighed by how much they beat (the
intensity change at heart-rate frequencies, `intensity_rate.beat_power_map`), so a still
look-alike (an eye, a blob) loses to a region that beats, and where no candidate beats, the
place that does is tried too; without a beat map (a short clip, an unknown frame rate), a
model whose fine pass sees beat planes weighs and proposes places by how much they change
instead (`HeartLocator.change_map`). Each candidate is checked by fine passes on its crop
(`HeartLocator.locate`). Along a video the previous chunk's crop competes too, and where the
chunks still settle on different places (`group_places`), the place most of them found is
used in all of them (`HeartLocator.locate_video`). Only a video's first, last and every
`search_every`-th chunk are searched so; the chunks between check the previous chunk's crop
with fine passes alone and search only where it fails. An unsure coarse pass is repeated at
twice its size (small hearts, as in plate wells). Three-channel models also get a motion plane.

A `Box` is (centre x, centre y, side) in native px; its side is `crop_scale` x the heart's
extent. Boxes whose centres lie within SAME_PLACE heart extents of each other show the same
place, and so do chains of such boxes (a heart that drifts or grows along the video).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import NamedTuple

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from .config import SegmentConfig
from .intensity_rate import beat_power_map, intensity_heart_rate
from .model.inputs import COARSE, FINE, MIN_BEAT_FRAMES, MOTION_WINDOW_S, motion_image
from .preprocess import crop_frames, thumbnails, to_gray
from .runtime import ModelRuntime, frame_confidence

log = logging.getLogger(__name__)

MIN_BOX_PX = 16.0  # smallest heart extent assumed when sizing the crop, native px
MIN_COARSE_FRAMES = 6  # the coarse pass sees at least this many frames of a chunk
MIN_COARSE_PEAK = 0.05  # below this coarse probability nothing is found
WEAK_COARSE_PEAK = 0.5  # below this the coarse pass is repeated at twice coarse_size
COARSE_LEVEL = 0.97  # coarse heart region: above this share of its peak (splits off the atrium)
CANDIDATE_LEVEL = 0.5  # with a known frame rate: regions above this share of the peak compete
MAX_CANDIDATES = 4
BEAT_THUMB_WIDTH = 64  # px, thumbnails the beat power is measured on
MIN_BEAT_SECONDS = 1.5  # shorter chunks are located without the beat power
MIN_BEAT_PERIODICITY = 0.3  # nor chunks whose intensity beats less regularly than this
MIN_CROP_FRACTION = 0.12  # first crop side at least this share of the frame's larger side
GROW = 1.6  # crop growth when the fine mask touches the crop's edge (heart cut off)
HANDED_ON_WEIGHT = 0.95  # the previous chunk's crop wins only if this much surer than the rest
SAME_PLACE = 0.5  # centres closer than this share of the larger heart extent: one place
KEEP_SCORE = 0.8  # a checked crop is kept if it scores this share of its score when searched
SIZE_OUTLIER = 1.3  # a crop this much larger than the rest of its place's: theirs instead


class Box(NamedTuple):
    """A square crop: centre and side in native px of the frame."""

    cx: float
    cy: float
    side: float


Region = tuple[float, float, float, float]  # centre x, centre y, width, height; px


class PlaceMap(NamedTuple):
    """What candidate places of a chunk are weighed by: a (h, w) map scaled to a maximum of 1
    (thumbnail px), the chunk's beat power or, where `changes`, its temporal change."""

    power: np.ndarray
    changes: bool


def heart_boxes(prob: np.ndarray, level: float, limit: int = 3) -> list[Region]:
    """Candidate hearts in (T, S, S) probabilities: (centre x, centre y, width, height) in px.

    Region: the pixelwise maximum over frames above `level`; its connected components, most
    confident first (by their highest temporal-mean probability), at most `limit`. Empty if
    the peak is below MIN_COARSE_PEAK.
    """
    import cv2

    peak = prob.max(axis=0)
    top = float(peak.max())
    if top < MIN_COARSE_PEAK:
        return []
    region = (peak > min(level, top * 0.999)).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(region, connectivity=8)
    score = np.zeros(count)
    np.maximum.at(score, labels.ravel(), prob.mean(axis=0).ravel())
    order = 1 + np.argsort(-score[1:], kind="stable")[:limit]
    return [(x + bw / 2.0, y + bh / 2.0, float(bw), float(bh))
            for x, y, bw, bh in (stats[k, :4].astype(float) for k in order)]


def coarse_candidates(prob: np.ndarray, level: float, limit: int
                      ) -> list[tuple[Region, Region, float]]:
    """Competing regions in (T, S, S) coarse probabilities, most confident first.

    The connected components of the pixelwise maximum over frames above `level`, at most
    `limit`. Each gives (core, extent, score): `core` the (centre x, centre y, width, height)
    in px of the heart box inside it (`heart_boxes` at COARSE_LEVEL x its own peak), `extent`
    the same of the whole component, `score` its highest temporal-mean probability (the
    confidence `heart_boxes` ranks by).
    """
    import cv2

    peak_map = prob.max(axis=0)
    mean_map = prob.mean(axis=0)
    count, labels = cv2.connectedComponents((peak_map > level).astype(np.uint8), connectivity=8)
    found = []
    for k in range(1, count):
        inside = labels == k
        own = prob * inside
        core = heart_boxes(own, COARSE_LEVEL * float(peak_map[inside].max()), 1)
        if not core:  # below MIN_COARSE_PEAK
            continue
        ys, xs = np.nonzero(inside)
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        extent = ((x0 + x1) / 2.0, (y0 + y1) / 2.0, float(x1 - x0), float(y1 - y0))
        found.append((core[0], extent, float(mean_map[inside].max())))
    found.sort(key=lambda c: -c[2])
    return found[:limit]


def beat_at(beat: np.ndarray, box: Region, scale_x: float, scale_y: float) -> float:
    """Largest value of a (h, w) beat power map inside `box` (centre x, centre y, width,
    height in px of an image whose px are scale_x x scale_y map px), at least one map px."""
    cx, cy, bw, bh = box
    h, w = beat.shape
    x0 = int(np.clip(np.floor((cx - bw / 2) / scale_x), 0, w - 1))
    x1 = int(np.clip(np.ceil((cx + bw / 2) / scale_x), x0 + 1, w))
    y0 = int(np.clip(np.floor((cy - bh / 2) / scale_y), 0, h - 1))
    y1 = int(np.clip(np.ceil((cy + bh / 2) / scale_y), y0 + 1, h))
    return float(beat[y0:y1, x0:x1].max())


def beat_box(beat: np.ndarray, scale_x: float, scale_y: float) -> tuple[float, float, float]:
    """(centre x, centre y, extent) in px of the region around the maximum of a (h, w) beat
    power map (above half of it); map px are scale_x x scale_y image px."""
    import cv2

    _, labels = cv2.connectedComponents((beat >= 0.5 * beat.max()).astype(np.uint8))
    y, x = np.unravel_index(int(np.argmax(beat)), beat.shape)
    ys, xs = np.nonzero(labels == labels[y, x])
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    return ((x0 + x1) / 2.0 * scale_x, (y0 + y1) / 2.0 * scale_y,
            max((x1 - x0) * scale_x, (y1 - y0) * scale_y))


def same_place(a: Box, b: Box, crop_scale: float) -> bool:
    """Whether two crop boxes show the same place (see SAME_PLACE)."""
    extent = max(a[2], b[2]) / crop_scale
    return bool(np.hypot(a[0] - b[0], a[1] - b[1]) < SAME_PLACE * extent)


def group_places(boxes: Sequence[Box | None], crop_scale: float) -> list[int | None]:
    """The place of each box: 0, 1, ... in order of first appearance (None stays None).

    Boxes linked by a chain of `same_place` pairs share a place.
    """
    found = [(i, box) for i, box in enumerate(boxes) if box is not None]
    links = np.array([[same_place(a, b, crop_scale) for _, b in found] for _, a in found],
                     dtype=np.bool_).reshape(len(found), len(found))
    _, component = connected_components(csr_matrix(links), directed=False)
    names: dict[int, int] = {}
    label: list[int | None] = [None] * len(boxes)
    for (i, _), c in zip(found, component, strict=True):
        label[i] = names.setdefault(int(c), len(names))
    return label


def best_place(votes: Sequence[int], scores: Sequence[Sequence[float]] | np.ndarray) -> int:
    """Index of the place found by the most chunks; among those, the highest mean score.

    votes : (P,) number of chunks that settled on each place on their own.
    scores : (P, C) array-like, the score of place p judged on chunk c (0 = nothing there).
    """
    table = np.asarray(scores, dtype=float)
    counts = np.asarray(votes)
    if table.ndim != 2 or table.shape[0] != counts.size or counts.size == 0:
        raise ValueError(f"scores must be (places, chunks) with one row per vote count, got "
                         f"{table.shape} for {counts.size} places")
    mean = table.mean(axis=1)
    return int(np.argmax(np.where(counts == counts.max(), mean, -np.inf)))


def place_count(labels: Sequence[int | None]) -> int:
    """How many places `group_places` labels name."""
    return len({label for label in labels if label is not None})


def steady_sizes(boxes: Sequence[Box | None], labels: Sequence[int | None],
                 limit: float = SIZE_OUTLIER) -> list[Box | None]:
    """`boxes` of one video's chunks, where a box more than `limit` x the median side of the
    other boxes of its place (`group_places` `labels`) takes the box of the nearest chunk of
    that place that is not so large: a heart keeps its size along a video, and an oversized
    crop (one whose fine masks took in the atrium too) shows the network more than it was
    trained to outline."""
    out = list(boxes)
    for place in {label for label in labels if label is not None}:
        members = [i for i, label in enumerate(labels) if label == place]
        if len(members) < 2:
            continue
        sides = {i: float(boxes[i][2]) for i in members}  # type: ignore[index]
        large = {i for i in members
                 if sides[i] > limit * float(np.median([sides[j] for j in members if j != i]))}
        steady = [i for i in members if i not in large]
        for i in large:
            if steady:
                out[i] = boxes[min(steady, key=lambda j: (abs(j - i), j))]
    return out


def read_again(chunks: Callable[[], Iterable[np.ndarray]], count: int
               ) -> Iterator[tuple[int, np.ndarray]]:
    """(index, frames) of each chunk of a video read once more, which gave `count` chunks
    the first time; ValueError (after the last) if it gives another number now."""
    seen = 0
    for frames in chunks():
        if seen < count:
            yield seen, np.asarray(frames)
        seen += 1
    if seen != count:
        raise ValueError(f"the video gave {count} chunks, then {seen}")


class HeartLocator:
    """Finds the crop box of each chunk with a model's coarse and fine passes.

    settings : the [segment] keys coarse_every, refine, candidates, search_every and beat_gate
        (see config).
    """

    def __init__(self, runtime: ModelRuntime, settings: SegmentConfig):
        self.runtime = runtime
        self.coarse_every = max(1, int(settings.coarse_every))
        self.refine = max(0, int(settings.refine))
        self.candidates = max(1, int(settings.candidates)) if self.refine else 1
        self.search_every = max(1, int(settings.search_every))
        self.beat_gate = max(0.0, float(settings.beat_gate))

    def motion_plane(self, frames: np.ndarray, fps: float | None, size: int | None = None
                     ) -> np.ndarray | None:
        """The coarse pass's motion plane (size^2, default coarse_size^2) of a chunk
        (three-channel models; else None).

        `motion_image` of up to MIN_COARSE_FRAMES + 2 frames spread over the middle
        MOTION_WINDOW_S seconds of the chunk (the whole chunk if `fps` is None): the training
        scenes were that long, and over longer spans slow drift outshines the beat.
        """
        if self.runtime.coarse_channels != 3:
            return None
        t = len(frames)
        span = t if fps is None else min(t, max(2, int(round(MOTION_WINDOW_S * fps))))
        start = (t - span) // 2
        idx = np.unique(np.linspace(start, start + span - 1, MIN_COARSE_FRAMES + 2).round())
        gray = to_gray(frames[idx.astype(int)])
        return motion_image(self.runtime.normalise(gray, size or self.runtime.coarse_size))

    def beat_map(self, frames: np.ndarray, fps: float | None) -> np.ndarray | None:
        """`intensity_rate.beat_power_map` of a chunk's BEAT_THUMB_WIDTH px thumbnails, smoothed
        (Gaussian, 1 px) and scaled to a maximum of 1; None if the frame rate is unknown, the
        chunk is shorter than MIN_BEAT_SECONDS, beat_gate is 0, or the chunk's intensity beats
        irregularly (the `intensity_heart_rate` periodicity of its most changing pixels is
        below MIN_BEAT_PERIODICITY: jerks, noise or a beat too fast for the frame rate, where
        the power map points anywhere)."""
        if not self.beat_gate or fps is None or len(frames) < MIN_BEAT_SECONDS * fps:
            return None
        import cv2

        thumbs = thumbnails(frames, BEAT_THUMB_WIDTH)
        if intensity_heart_rate(thumbs, fps).periodicity < MIN_BEAT_PERIODICITY:
            return None
        beat = cv2.GaussianBlur(beat_power_map(thumbs, fps), (0, 0), 1.0)  # regions, not pixels
        top = float(beat.max())
        return beat / top if top > 0 else beat

    def place_map(self, frames: np.ndarray, fps: float | None) -> PlaceMap | None:
        """The map candidates are weighed by: the chunk's `beat_map`, or, where it has none,
        for a model whose fine pass sees beat planes, its `change_map` (a short clip still
        shows where it moves; that model can tell a ventricle from what else moves)."""
        beat = self.beat_map(frames, fps)
        if beat is not None:
            return PlaceMap(beat, changes=False)
        change = self.change_map(frames)
        return None if change is None else PlaceMap(change, changes=True)

    def change_map(self, frames: np.ndarray) -> np.ndarray | None:
        """Where a chunk changes: the temporal std of its BEAT_THUMB_WIDTH px thumbnails,
        smoothed (Gaussian, 1 px) and scaled to a maximum of 1; None for a model without beat
        planes (it cannot judge a place by its beat), a still (fewer than MIN_BEAT_FRAMES
        frames), frames that do not change, or beat_gate 0 (places not weighed)."""
        if not self.beat_gate or not self.runtime.uses_beat or len(frames) < MIN_BEAT_FRAMES:
            return None
        import cv2

        change = cv2.GaussianBlur(thumbnails(frames, BEAT_THUMB_WIDTH).std(axis=0), (0, 0), 1.0)
        top = float(change.max())
        return change / top if top > 0 else None

    def coarse_pass(self, frames: np.ndarray, motion: np.ndarray | None = None,
                    size: int | None = None) -> np.ndarray:
        """Coarse probabilities (N, S, S) of whole frames (N, H, W[, C]) at size (default
        coarse_size). `motion`: the chunk's `motion_plane` at that size (None = zeros).
        """
        size = size or self.runtime.coarse_size
        return self.runtime.predict(self.runtime.normalise(to_gray(frames), size), COARSE,
                                    motion)

    def locate(self, frames: np.ndarray, fps: float | None = None, previous: Box | None = None
               ) -> Box | None:
        """Find the heart: the crop box for this chunk (T, H, W[, C]), in native px.

        Looks at every `coarse_every`-th frame (at least MIN_COARSE_FRAMES), with the chunk's
        `motion_plane` (`fps`: frames/s, None = unknown); if its peak probability is below
        WEAK_COARSE_PEAK (a heart too small to see at coarse_size, as in plate wells), the
        coarse pass is repeated at twice that size and the stronger kept. It proposes up to
        `candidates` regions: without a `place_map` (frame rate unknown or short chunk, and a
        model without beat planes), the most confident (`heart_boxes` at COARSE_LEVEL x its
        peak); with one, up to MAX_CANDIDATES regions above CANDIDATE_LEVEL x the peak
        (`coarse_candidates`) ranked by confidence x min(1, beat power / beat_gate), and if
        none reaches beat_gate, the region that beats most (`beat_box`) competes too (for a
        beat-plane model without a beat map, the change map stands in, and the region that
        changes most always competes).
        Each is checked by `refine` fine passes
        on those frames, which re-centre the crop and size it from their own masks (or grow
        it by GROW where the mask touches the crop's edge); the candidate whose fine masks are most
        confident wins, their confidence weighed, with a place map, by min(1, its power in the
        refined box / beat_gate). `previous`, the crop of the video's previous chunk, competes
        too, its confidence x HANDED_ON_WEIGHT (it must be surer to win: a wrong crop is not
        handed on through a video whose chunks find the heart on their own). The side is
        `crop_scale` x the heart's extent, at least MIN_CROP_FRACTION and at most all of the
        frame's larger side. Where no fine pass finds a heart in any candidate, the coarse
        pass's most confident region, or None if it finds nothing either.
        """
        return self._locate(frames, fps, previous, self.place_map(frames, fps))[0]

    def _locate(self, frames: np.ndarray, fps: float | None, previous: Box | None,
                place: PlaceMap | None) -> tuple[Box | None, float]:
        """`locate` with the chunk's `place_map` given: (box, its score as judged)."""
        h, w = frames.shape[1:3]
        sample = self._coarse_sample(frames)
        prob, sc = self._coarse_probabilities(frames, sample, fps)
        found, proposal = self._proposals(prob, sc, place, h, w)
        largest = float(max(h, w))
        crop_scale = self.runtime.crop_scale
        starts = [(cx * w / sc, cy * h / sc, max(bw * w / sc, bh * h / sc))
                  for cx, cy, bw, bh in found]
        if proposal is not None:  # look where it beats (changes) too; ties go to the network's
            starts.append(proposal)
        weights = [1.0] * len(starts)
        if previous is not None:  # where the heart was a moment ago
            starts.append((previous[0], previous[1], previous[2] / crop_scale))
            weights.append(HANDED_ON_WEIGHT)
        judged = [self._judge(sample, place, self._crop_for(cx, cy, extent, largest))
                  for cx, cy, extent in starts]
        scores = [score * weight for (_, score), weight in zip(judged, weights, strict=True)]
        if not scores or max(scores) <= 0:
            # no fine pass finds a heart anywhere: keep the coarse pass's first region, if any
            return (judged[0][0], 0.0) if found else (None, 0.0)
        best = int(np.argmax(scores))
        return judged[best][0], scores[best]

    def _coarse_probabilities(self, frames: np.ndarray, sample: np.ndarray, fps: float | None
                              ) -> tuple[np.ndarray, int]:
        """The coarse pass on a chunk's sample, and the size it ran at (twice coarse_size
        where the first look is weaker than WEAK_COARSE_PEAK and the closer one stronger)."""
        sc = self.runtime.coarse_size
        prob = self.coarse_pass(sample, self.motion_plane(frames, fps))
        if prob.max() < WEAK_COARSE_PEAK:  # a small heart (plate wells): look again, closer
            closer = self.coarse_pass(sample, self.motion_plane(frames, fps, 2 * sc), 2 * sc)
            if closer.max() > prob.max():
                prob, sc = closer, 2 * sc
        return prob, sc

    def _proposals(self, prob: np.ndarray, sc: int, place: PlaceMap | None, h: int, w: int
                   ) -> tuple[list[Region], tuple[float, float, float] | None]:
        """Coarse regions to check (coarse px) and, with a `place_map` none of them beats
        enough (or a change map: always), the place that beats (changes) most (native px)."""
        if place is None:
            return heart_boxes(prob, COARSE_LEVEL * float(prob.max()), self.candidates), None
        competing = coarse_candidates(prob, CANDIDATE_LEVEL * float(prob.max()), MAX_CANDIDATES)
        beat = place.power
        bx, by = sc / beat.shape[1], sc / beat.shape[0]
        power = [beat_at(beat, extent, bx, by) for _, extent, _ in competing]
        order = np.argsort([-c[2] * self._beat_weight(b)
                            for c, b in zip(competing, power, strict=True)], kind="stable")
        found = [competing[i][0] for i in order[:self.candidates]]
        proposal = None
        if place.changes or not any(b >= self.beat_gate for b in power):
            proposal = beat_box(beat, w / beat.shape[1], h / beat.shape[0])
        return found, proposal

    def locate_video(self, chunks: Callable[[], Iterable[np.ndarray]], fps: float | None = None
                     ) -> list[Box | None]:
        """Where to segment each chunk of one video: a crop box per chunk.

        `chunks()` yields the video's chunks (T, H, W[, C]) in order; it is called a second
        time only where the chunks disagree. The first, the last and every `search_every`-th
        chunk are `locate`d (searched) with the previous chunk's crop handed on; each chunk
        between only checks that crop (`_judge`, fine passes on its coarse sample) and keeps
        it, re-centred, where it scores at least KEEP_SCORE x its score when last searched,
        else it is searched too. Where the chunks settle on more than one place
        (`group_places`), the chunks that only checked are searched too (one more read), and
        if they still disagree the place most chunks found is used in the others wherever it
        shows something, as `locate` judges a candidate (`_one_place`; among equals the
        highest mean score over all chunks): the heart does not jump within a video, and a
        chunk's coarse pass may have missed the place the others found. Last, a crop far
        larger than the others of its place takes theirs (`steady_sizes`). Models without a
        coarse_size: None for every chunk.
        """
        if not self.runtime.coarse_size:
            return [None for _ in chunks()]
        boxes: list[Box | None] = []
        beats: list[PlaceMap | None] = []  # kept for judging the places, if it comes to that
        searched: list[bool] = []  # whether a chunk's box comes from its own search
        box, found, frames = None, 0.0, None
        for frames in chunks():
            frames = np.asarray(frames)
            beats.append(self.place_map(frames, fps))
            kept = None
            if box is not None and len(boxes) % self.search_every:
                kept, score = self._judge(self._coarse_sample(frames), beats[-1], box)
                if score <= 0 or score < KEEP_SCORE * found:
                    kept = None
            if kept is None:
                box, found = self._locate(frames, fps, box, beats[-1])
            else:
                box = kept
            boxes.append(box)
            searched.append(kept is None)
        if frames is not None and not searched[-1]:  # the last chunk is always searched
            previous = boxes[-2] if len(boxes) > 1 else None
            boxes[-1], _ = self._locate(frames, fps, previous, beats[-1])
            searched[-1] = True
        labels = group_places(boxes, self.runtime.crop_scale)
        if place_count(labels) > 1 and not all(searched):  # every chunk votes, as with 1
            boxes = self._search_all(chunks, fps, boxes, searched, beats)
            labels = group_places(boxes, self.runtime.crop_scale)
        n_places = place_count(labels)
        if n_places < 2:
            return steady_sizes(boxes, labels)
        places = [box for k in range(n_places)  # each one's first box
                  if (box := boxes[labels.index(k)]) is not None]
        return steady_sizes(*self._one_place(chunks, boxes, labels, places, beats))

    def _one_place(self, chunks: Callable[[], Iterable[np.ndarray]],
                   boxes: Sequence[Box | None], labels: Sequence[int | None],
                   places: Sequence[Box], beats: Sequence[PlaceMap | None]
                   ) -> tuple[list[Box | None], list[int | None]]:
        """Where chunks settled on several `places`, the place most chunks found
        (`best_place`), judged, refined, on each chunk that settled elsewhere and used there
        wherever it shows something; (boxes, their `group_places` labels). A place found by
        more chunks than any other wins without scores, so it alone is judged, and only on
        the other chunks; in a tie every place is judged on every chunk. Either way the
        chunks are read once more."""
        votes = [labels.count(k) for k in range(len(places))]
        tied = [k for k, count in enumerate(votes) if count == max(votes)]
        if len(tied) > 1:  # scores decide: every place on every chunk
            wanted, judging = set(range(len(boxes))), list(places)
        else:  # the most found wins: it alone, where it was not found
            wanted = {i for i, label in enumerate(labels) if label != tied[0]}
            judging = [places[tied[0]]]
        judged = {i: self._judge_places(frames, beats[i], judging)
                  for i, frames in read_again(chunks, len(boxes)) if i in wanted}
        if len(tied) > 1:
            scores = [[judged[i][k][1] for i in range(len(boxes))] for k in range(len(places))]
            best = best_place(votes, scores)
            at_best = {i: found[best] for i, found in judged.items()}
            log.debug("chunks disagree: places %s, mean scores %s, kept %d", labels,
                      np.round(np.mean(scores, axis=1), 3).tolist(), best)
        else:
            best = tied[0]
            at_best = {i: found[0] for i, found in judged.items()}
            log.debug("chunks disagree: places %s, kept %d (most found)", labels, best)
        chosen = [box if label == best else (at_best[i][0] if at_best[i][1] > 0 else box)
                  for i, (box, label) in enumerate(zip(boxes, labels, strict=True))]
        return chosen, group_places(chosen, self.runtime.crop_scale)

    def _search_all(self, chunks: Callable[[], Iterable[np.ndarray]], fps: float | None,
                    boxes: Sequence[Box | None], searched: Sequence[bool],
                    beats: Sequence[PlaceMap | None]) -> list[Box | None]:
        """`boxes` with every chunk that only checked its crop searched too (`_locate`, the
        previous chunk's box handed on), in one more read of the chunks."""
        found = list(boxes)
        for i, frames in read_again(chunks, len(found)):
            if not searched[i]:
                found[i], _ = self._locate(frames, fps, found[i - 1] if i else None, beats[i])
        return found

    def _judge_places(self, frames: np.ndarray, place: PlaceMap | None,
                      places: Sequence[Box]) -> list[tuple[Box, float]]:
        """Each place's (refined box, score) on one chunk whose `place_map` is `place`, as
        `locate` judges a candidate."""
        sample, largest = self._coarse_sample(frames), max(frames.shape[1:3])
        crop_scale = self.runtime.crop_scale
        return [self._judge(sample, place, self._crop_for(cx, cy, side / crop_scale, largest))
                for cx, cy, side in places]

    def _coarse_sample(self, frames: np.ndarray) -> np.ndarray:
        """Every `coarse_every`-th frame of a chunk, evenly spread, at least MIN_COARSE_FRAMES."""
        t = len(frames)
        n = min(t, max(MIN_COARSE_FRAMES, -(-t // self.coarse_every)))
        return frames[np.unique(np.linspace(0, t - 1, n).round().astype(int))]

    def _crop_for(self, cx: float, cy: float, extent: float, largest: float) -> Box:
        """The crop box for a heart of `extent` px at (cx, cy): `crop_scale` x the extent, at
        least MIN_CROP_FRACTION and at most all of the frame's larger side `largest` px."""
        side = max(extent, MIN_BOX_PX) * self.runtime.crop_scale
        side = max(side, MIN_CROP_FRACTION * largest)  # a heart is never a speck
        return Box(cx, cy, min(side, largest))

    def _judge(self, sample: np.ndarray, place: PlaceMap | None, box: Box
               ) -> tuple[Box, float]:
        """`_refine` a crop on a chunk's coarse sample (T, H, W[, C]): (box, confidence x, with
        a `place_map`, the beat weight of the refined box)."""
        h, w = sample.shape[1:3]
        box, score = self._refine(sample, box)
        if place is not None:  # where the chunk beats regularly, a still structure loses
            beat = place.power
            heart = box.side / self.runtime.crop_scale
            power = beat_at(beat, (box.cx, box.cy, heart, heart),
                            w / beat.shape[1], h / beat.shape[0])
            score *= self._beat_weight(power)
        return box, score

    def _beat_weight(self, power: float) -> float:
        """Score factor of a place whose beat power (share of the strongest) is `power`."""
        return min(1.0, power / self.beat_gate)

    def _refine(self, sample: np.ndarray, box: Box) -> tuple[Box, float]:
        """`refine` fine passes on a candidate crop: (box, mean confidence of the last pass)."""
        runtime = self.runtime
        largest = float(max(sample.shape[1:3]))
        size, threshold = runtime.size, runtime.threshold
        score = 0.0
        for _ in range(self.refine):
            crops, (x0, y0, m) = crop_frames(sample, *box)
            images, beat = runtime.fine_input(crops)
            prob = runtime.predict(images, FINE, beat=beat)
            found = heart_boxes(prob, threshold, 1)
            if not found:
                return box, 0.0
            score = float(frame_confidence(prob, threshold).mean())
            fx, fy, fw, fh = found[0]
            k = m / size
            edge = (fx - fw / 2 <= 1 or fy - fh / 2 <= 1 or fx + fw / 2 >= size - 1
                    or fy + fh / 2 >= size - 1)
            side = (box.side * GROW if edge
                    else max(fw * k, fh * k, MIN_BOX_PX) * runtime.crop_scale)
            box = Box(x0 + fx * k, y0 + fy * k, min(side, largest))
        return box, score

